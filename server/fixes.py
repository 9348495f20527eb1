"""Quick fixes (being written)."""

from __future__ import annotations

from lsprotocol import types as lsp
from mljob.server.features import FeatureContext
from mljob.server.store import OpenDocument


def code_actions(doc: OpenDocument, rng: lsp.Range, diagnostics: list[lsp.Diagnostic],
                 ctx: FeatureContext) -> list[lsp.CodeAction]:
    return []
