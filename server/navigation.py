"""Navigation (being written)."""

from __future__ import annotations

from lsprotocol import types as lsp
from mljob.server.features import FeatureContext
from mljob.server.store import OpenDocument


def definition(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> list[lsp.Location]:
    return []


def references(doc: OpenDocument, line: int, character: int, include_declaration: bool,
               ctx: FeatureContext) -> list[lsp.Location]:
    return []


def prepare_rename(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> lsp.Range | None:
    return None


def rename(doc: OpenDocument, line: int, character: int, new_name: str,
           ctx: FeatureContext) -> lsp.WorkspaceEdit | None:
    return None
