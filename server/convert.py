"""Our diagnostics and ranges → LSP types (columns in UTF-16 units)."""

from __future__ import annotations

from lsprotocol import types as lsp
from mljob.runner.diagnostics import Diagnostic, Range
from mljob.runner.document import Document

_TAGS = {"deprecated": lsp.DiagnosticTag.Deprecated, "unnecessary": lsp.DiagnosticTag.Unnecessary}


def to_range(positions: Document, rng: Range) -> lsp.Range:
    return lsp.Range(
        start=lsp.Position(line=rng.start.line, character=positions.utf16_column(rng.start.line, rng.start.column)),
        end=lsp.Position(line=rng.end.line, character=positions.utf16_column(rng.end.line, rng.end.column)),
    )


def to_diagnostic(positions: Document, diagnostic: Diagnostic) -> lsp.Diagnostic:
    return lsp.Diagnostic(
        range=to_range(positions, diagnostic.range),
        message=diagnostic.message,
        severity=lsp.DiagnosticSeverity(int(diagnostic.severity)),
        code=diagnostic.code,
        source="mljob",
        tags=[_TAGS[t] for t in diagnostic.tags if t in _TAGS] or None,
        data=dict(diagnostic.data) if diagnostic.data else None,
    )
