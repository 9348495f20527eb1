"""The outline (document symbols), folding ranges and selection ranges of a job file, from its parsed nodes."""

from __future__ import annotations

import re

from lsprotocol import types as lsp
from mljob.runner.anatomy import anatomy
from mljob.runner.document import MappingNode, Node, ScalarNode, SequenceNode, get, scalar
from mljob.runner.expressions import GA, PREVIEW
from mljob.runner.validate import Analysis
from mljob.server.features import FeatureContext
from mljob.server.store import OpenDocument
from mljob.server.where import (
    Pos,
    ScalarSource,
    content_end,
    end,
    is_alias,
    last_line,
    lines_of,
    path_at,
    report_at,
    start,
)

# --- document symbols ----------------------------------------------------------------------------------------------

_DETAIL_LENGTH = 60


def document_symbols(doc: OpenDocument, ctx: FeatureContext) -> list[lsp.DocumentSymbol]:
    analysis = doc.analysis(ctx.settings.validation(), ctx.generation)
    lines = lines_of(analysis.document.text)
    convert = _Converter(doc)
    found: list[lsp.DocumentSymbol] = []
    for report in analysis.reports:
        root = report.yaml_doc.root
        if not isinstance(root, MappingNode) or not root.value:
            continue
        kind = report.kind
        named: dict[int, lsp.SymbolKind] = {}
        if kind is not None:
            parts = anatomy(root, kind.job, kind.entry.kind if kind.entry else None)
            for container in (parts.inputs, parts.outputs, parts.search_space):
                if container is not None:
                    named[id(container)] = lsp.SymbolKind.Variable
        detail = next((scalar(get(root, k)) for k in ("display_name", "name", "experiment_name")
                       if scalar(get(root, k))), None)
        children = _mapping_symbols(root, lines, convert, named, 0)
        first = root.value[0][0]
        found.append(lsp.DocumentSymbol(
            name=kind.label if kind is not None else "YAML document",
            detail=detail, kind=lsp.SymbolKind.Class if kind is not None else lsp.SymbolKind.Module,
            range=convert.range(start(first), content_end(root, lines)),
            selection_range=convert.range(start(first), end(first)), children=children))
    return found


def _mapping_symbols(node: MappingNode, lines: list[str], convert: _Converter, named: dict[int, lsp.SymbolKind],
                     depth: int) -> list[lsp.DocumentSymbol]:
    entry_kind = named.get(id(node))
    symbols: list[lsp.DocumentSymbol] = []
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        alias = is_alias(key, value)
        stop = end(key) if alias else max(end(key), content_end(value, lines))
        children = None if alias else _children(value, lines, convert, named, depth + 1)
        symbols.append(lsp.DocumentSymbol(
            name=str(key.value) or '""', detail=_detail(value) if not alias else "alias",
            kind=entry_kind or _kind_of(value), range=convert.range(start(key), stop),
            selection_range=convert.range(start(key), end(key)), children=children))
    return symbols


def _children(node: Node, lines: list[str], convert: _Converter, named: dict[int, lsp.SymbolKind],
              depth: int) -> list[lsp.DocumentSymbol] | None:
    if depth > 40:
        return None  # deeper than any job; keeps a pathological file from costing the whole outline
    if isinstance(node, MappingNode):
        return _mapping_symbols(node, lines, convert, named, depth) or None
    if isinstance(node, SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            if item.start_mark.index < node.start_mark.index:
                continue  # an alias
            label = _item_label(item) or str(i)
            items.append(lsp.DocumentSymbol(
                name=label, detail=_detail(item), kind=_kind_of(item),
                range=convert.range(start(item), content_end(item, lines)),
                selection_range=convert.range(start(item), start(item) if not isinstance(item, ScalarNode)
                                              else end(item)),
                children=_children(item, lines, convert, named, depth + 1)))
        return items or None
    return None


def _item_label(item: Node) -> str | None:
    if isinstance(item, ScalarNode):
        return _short(item.value) or None
    for key in ("name", "type", "image"):
        value = scalar(get(item, key))
        if value:
            return f"{key}: {_short(value)}"
    return None


def _detail(node: Node) -> str | None:
    if isinstance(node, ScalarNode):
        return _short(node.value) or None
    return None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_LENGTH else text[:_DETAIL_LENGTH - 1] + "…"


def _kind_of(node: Node) -> lsp.SymbolKind:
    if isinstance(node, MappingNode):
        return lsp.SymbolKind.Object
    if isinstance(node, SequenceNode):
        return lsp.SymbolKind.Array
    tag = node.tag.rsplit(":", 1)[-1]
    return {"int": lsp.SymbolKind.Number, "float": lsp.SymbolKind.Number, "bool": lsp.SymbolKind.Boolean,
            "null": lsp.SymbolKind.Null}.get(tag, lsp.SymbolKind.String)


class _Converter:
    """(line, code-point column) → LSP positions. Only characters beyond the BMP count twice in UTF-16; lines
    without any (nearly all) need no conversion, which keeps a 3,000-line outline cheap."""

    def __init__(self, doc: OpenDocument) -> None:
        self.doc = doc
        text = doc.text
        self.astral: set[int] = set()
        self.made: dict[Pos, lsp.Position] = {}
        if not text.isascii():
            line, last = 0, 0
            for match in _ASTRAL.finditer(text):
                line += text.count("\n", last, match.start())
                last = match.start()
                self.astral.add(line)

    def position(self, pos: Pos) -> lsp.Position:
        # Ranges share their ends with neighbours (a symbol's range and selection range start together): one
        # Position object per place halves the cost of building thousands of them.
        found = self.made.get(pos)
        if found is None:
            line, column = pos
            if line in self.astral:
                column = self.doc.character(line, column)
            found = self.made[pos] = lsp.Position(line=line, character=column)
        return found

    def range(self, begin: Pos, finish: Pos) -> lsp.Range:
        return lsp.Range(start=self.position(begin), end=self.position(max(begin, finish)))


_ASTRAL = re.compile("[\U00010000-\U0010FFFF]")


# --- folding ranges ------------------------------------------------------------------------------------------------


def folding_ranges(doc: OpenDocument, ctx: FeatureContext) -> list[lsp.FoldingRange]:
    analysis = doc.analysis(ctx.settings.validation(), ctx.generation)
    lines = lines_of(analysis.document.text)
    found: list[lsp.FoldingRange] = []
    text_spans: list[tuple[int, int]] = []  # lines inside multi-line scalars: a `#` there is text, not a comment
    for report in analysis.reports:
        root = report.yaml_doc.root
        if root is not None:
            _fold(root, lines, found, text_spans)
    found.extend(_comment_blocks(lines, text_spans))
    return found


def _fold(root: Node, lines: list[str], out: list[lsp.FoldingRange], text_spans: list[tuple[int, int]]) -> None:
    seen: set[int] = set()
    stack: list[tuple[int, Node]] = [(root.start_mark.line, root)]
    while stack:
        first, node = stack.pop()
        if isinstance(node, ScalarNode):
            if node.end_mark.line > node.start_mark.line:
                last = last_line(node, lines)
                text_spans.append((node.start_mark.line, last))
                if last > first:
                    out.append(lsp.FoldingRange(start_line=first, end_line=last))
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node is not root:  # the whole document is not worth a fold of its own
            last = last_line(node, lines)
            if last > first:
                out.append(lsp.FoldingRange(start_line=first, end_line=last))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if not is_alias(key, value):
                    stack.append((key.start_mark.line, value))
        else:
            for item in node.value:
                if item.start_mark.index >= node.start_mark.index:
                    stack.append((item.start_mark.line, item))


def _comment_blocks(lines: list[str], text_spans: list[tuple[int, int]]) -> list[lsp.FoldingRange]:
    inside = set()
    for first, last in text_spans:
        inside.update(range(first + 1, last + 1))
    found = []
    block_start = -1
    for number, line in enumerate([*lines, ""]):
        is_comment = number not in inside and line.lstrip().startswith("#")
        if is_comment and block_start < 0:
            block_start = number
        elif not is_comment and block_start >= 0:
            if number - 1 > block_start:
                found.append(lsp.FoldingRange(start_line=block_start, end_line=number - 1,
                                              kind=lsp.FoldingRangeKind.Comment))
            block_start = -1
    return found


# --- selection ranges ----------------------------------------------------------------------------------------------

_WORD = re.compile(r"[\w.-]+")


def selection_ranges(doc: OpenDocument, positions: list[lsp.Position],
                     ctx: FeatureContext) -> list[lsp.SelectionRange]:
    analysis = doc.analysis(ctx.settings.validation(), ctx.generation)
    text = analysis.document.text
    lines = lines_of(text)
    convert = _Converter(doc)
    found = []
    for position in positions:
        pos = (position.line, doc.column(position.line, position.character))
        spans = [span for span in _spans_at(analysis, text, lines, pos) if span[0] <= pos <= span[1]]
        found.append(_chain(convert, spans, position))
    return found


def _spans_at(analysis: Analysis, text: str, lines: list[str], pos: Pos) -> list[tuple[Pos, Pos]]:
    """Innermost first: word, expression, scalar, key: value, the mapping or list holding it, its entry, …"""
    report = report_at(analysis, pos[0])
    root = report.yaml_doc.root if report is not None else None
    if root is None:
        return []
    steps, on_key = path_at(root, pos, lines)
    spans: list[tuple[Pos, Pos]] = []
    last = steps[-1]
    leaf: Node | None = last.key if on_key else last.node
    if isinstance(leaf, ScalarNode) and (on_key or len(steps) > 1) and start(leaf) <= pos <= content_end(leaf, lines):
        spans.extend(_inside_scalar(text, leaf, pos))
        spans.append((start(leaf), content_end(leaf, lines)))
    for step in reversed(steps):
        if step.key is not None:
            stop = end(step.key) if is_alias(step.key, step.node) else content_end(step.node, lines)
            spans.append((start(step.key), max(end(step.key), stop)))
        else:
            spans.append((start(step.node), content_end(step.node, lines)))
        parent = step.parent
        if isinstance(parent, MappingNode) and parent.value:
            spans.append((start(parent.value[0][0]), content_end(parent, lines)))
        elif isinstance(parent, SequenceNode):
            spans.append((start(parent), content_end(parent, lines)))
    return spans


def _inside_scalar(text: str, node: ScalarNode, pos: Pos) -> list[tuple[Pos, Pos]]:
    source = ScalarSource(text, node)
    at = source.offset(pos)
    if at is None:
        return []
    spans: list[tuple[Pos, Pos]] = []
    for match in _WORD.finditer(source.text):
        if match.start() <= at <= match.end():
            spans.append((source.position(match.start()), source.position(match.end())))
            break
    if "{" in source.text:
        for pattern in (GA, PREVIEW):
            for match in pattern.finditer(source.text):
                if match.start() <= at <= match.end():
                    spans.append((source.position(match.start()), source.position(match.end())))
    line_start = source.text.rfind("\n", 0, at) + 1
    line_end = source.text.find("\n", at)
    line_end = len(source.text) if line_end < 0 else line_end
    segment = source.text[line_start:line_end]
    stripped_start = line_start + len(segment) - len(segment.lstrip())
    stripped_end = line_start + len(segment.rstrip())
    if "\n" in source.text and stripped_start <= at <= stripped_end:
        spans.append((source.position(stripped_start), source.position(stripped_end)))  # one line of a command
    return spans


def _chain(convert: _Converter, spans: list[tuple[Pos, Pos]], position: lsp.Position) -> lsp.SelectionRange:
    # Each range must contain the position and the one before it; equal ranges would make "expand selection" do
    # nothing.
    kept: list[tuple[Pos, Pos]] = []
    for span in spans:
        if span[1] < span[0]:
            continue
        if kept and not (span[0] <= kept[-1][0] and kept[-1][1] <= span[1]):
            continue
        if kept and span == kept[-1]:
            continue
        kept.append(span)
    result: lsp.SelectionRange | None = None
    for span in reversed(kept):
        result = lsp.SelectionRange(range=convert.range(*span), parent=result)
    if result is None:
        result = lsp.SelectionRange(range=lsp.Range(start=position, end=position))
    return result
