"""Symbols (being written)."""

from __future__ import annotations

from lsprotocol import types as lsp
from mljob.server.features import FeatureContext
from mljob.server.store import OpenDocument


def document_symbols(doc: OpenDocument, ctx: FeatureContext) -> list[lsp.DocumentSymbol]:
    return []


def folding_ranges(doc: OpenDocument, ctx: FeatureContext) -> list[lsp.FoldingRange]:
    return []


def selection_ranges(doc: OpenDocument, positions: list[lsp.Position], ctx: FeatureContext) -> list[lsp.SelectionRange]:
    return []
