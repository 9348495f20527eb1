"""Go to definition, find references, rename: over the names index (server/names.py) and local paths
(server/targets.py). Everything stays inside the YAML document under the cursor: the documents of a multi-document
file are separate jobs, so an input of one is never renamed because another has the same name."""

from __future__ import annotations

import re

from lsprotocol import types as lsp
from mljob.server import names, targets
from mljob.server.features import FeatureContext
from mljob.server.store import OpenDocument
from mljob.server.where import Pos, lines_of, path_at, report_at

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _range(doc: OpenDocument, span: tuple[Pos, Pos]) -> lsp.Range:
    (sl, sc), (el, ec) = span
    return lsp.Range(start=lsp.Position(line=sl, character=doc.character(sl, sc)),
                     end=lsp.Position(line=el, character=doc.character(el, ec)))


def _at(doc: OpenDocument, line: int, character: int,
        ctx: FeatureContext) -> tuple[names.Index, names.Symbol, tuple[Pos, Pos]] | None:
    analysis = doc.analysis(ctx.settings.validation(), ctx.generation)
    report = report_at(analysis, line)
    if report is None:
        return None
    index = names.build(report, analysis.document.text)
    found = index.at((line, doc.column(line, character)))
    if found is None:
        return None
    return index, found[0], found[1]


def definition(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> list[lsp.Location]:
    found = _at(doc, line, character, ctx)
    if found is not None:
        index, symbol, _ = found
        key = index.definition(symbol)
        if key is None:
            return []
        span = ((key.start_mark.line, key.start_mark.column), (key.end_mark.line, key.end_mark.column))
        return [lsp.Location(uri=doc.uri, range=_range(doc, span))]
    return _path_definition(doc, line, character, ctx)


def _path_definition(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> list[lsp.Location]:
    analysis = doc.analysis(ctx.settings.validation(), ctx.generation)
    report = report_at(analysis, line)
    if report is None or report.yaml_doc.root is None:
        return []
    text = analysis.document.text
    steps, on_key = path_at(report.yaml_doc.root, (line, doc.column(line, character)), lines_of(text))
    if on_key:
        return []
    path = targets.target(steps, doc.path.parent if doc.path else None)
    if path is None:
        return []
    start = lsp.Position(line=0, character=0)
    return [lsp.Location(uri=path.as_uri(), range=lsp.Range(start=start, end=start))]


def references(doc: OpenDocument, line: int, character: int, include_declaration: bool,
               ctx: FeatureContext) -> list[lsp.Location]:
    found = _at(doc, line, character, ctx)
    if found is None:
        return []
    index, symbol, _ = found
    locations: list[lsp.Location] = []
    key = index.definitions.get(symbol)
    if include_declaration and key is not None:
        span = ((key.start_mark.line, key.start_mark.column), (key.end_mark.line, key.end_mark.column))
        locations.append(lsp.Location(uri=doc.uri, range=_range(doc, span)))
    locations.extend(lsp.Location(uri=doc.uri, range=_range(doc, use.name)) for use in index.uses_of(symbol))
    return locations


def prepare_rename(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> lsp.Range | None:
    found = _at(doc, line, character, ctx)
    if found is None:
        return None
    index, symbol, span = found
    if not index.renamable(symbol):
        return None
    return _range(doc, _name_span(doc, index, symbol, span))


def rename(doc: OpenDocument, line: int, character: int, new_name: str,
           ctx: FeatureContext) -> lsp.WorkspaceEdit | None:
    found = _at(doc, line, character, ctx)
    if found is None:
        return None
    index, symbol, _ = found
    # Names go into `${{inputs.NAME}}` and become command-line values: only identifiers survive both.
    if not index.renamable(symbol) or not _IDENTIFIER.match(new_name):
        return None
    if new_name != symbol.name and names.Symbol(symbol.scope, symbol.namespace, new_name) in index.definitions:
        return None  # would make a duplicate key
    key = index.definitions[symbol]
    key_span = ((key.start_mark.line, key.start_mark.column), (key.end_mark.line, key.end_mark.column))
    spans = [_name_span(doc, index, symbol, key_span)] + [use.name for use in index.uses_of(symbol)]
    edits = [lsp.TextEdit(range=_range(doc, span), new_text=new_name) for span in spans]
    return lsp.WorkspaceEdit(changes={doc.uri: edits})


def _name_span(doc: OpenDocument, index: names.Index, symbol: names.Symbol,
               span: tuple[Pos, Pos]) -> tuple[Pos, Pos]:
    """A quoted key (`"lr":`) is renamed inside its quotes (unless escapes make the text differ from the name)."""
    key = index.definitions.get(symbol)
    if key is None or span != ((key.start_mark.line, key.start_mark.column), (key.end_mark.line, key.end_mark.column)):
        return span
    written = key.end_mark.column - key.start_mark.column
    if key.style in ("'", '"') and key.end_mark.line == key.start_mark.line and written == len(symbol.name) + 2:
        (line, column), _ = span
        return (line, column + 1), (line, column + 1 + len(symbol.name))
    return span
