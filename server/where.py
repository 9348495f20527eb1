"""Where things are in a parsed job file: which document holds a line, which nodes hold a position, where a node's
content really ends. Positions are (line, column) in code points, as libyaml's marks count them.

libyaml ends a block collection where the next token starts (after trailing comments and blank lines) and a block
scalar after its trailing line breaks; editors want the last character that belongs to the node, so every feature
asks `content_end` instead of reading `end_mark`.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from mljob.runner.document import MappingNode, Node, ScalarNode, SequenceNode
from mljob.runner.validate import Analysis, DocumentReport

Pos = tuple[int, int]


def lines_of(text: str) -> list[str]:
    """Lines as libyaml and LSP number them for "\\n" and "\\r\\n" files, without their line breaks."""
    lines = text.split("\n")
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def start(node: Node) -> Pos:
    return node.start_mark.line, node.start_mark.column


def end(node: Node) -> Pos:
    return node.end_mark.line, node.end_mark.column


def is_alias(key: Node, value: Node) -> bool:
    """`key: *anchor` composes to the anchored node itself, whose marks sit where the anchor was written."""
    return value.start_mark.index < key.start_mark.index


def content_end(node: Node, lines: list[str]) -> Pos:
    """The position just after the last character that belongs to the node."""
    while True:
        if isinstance(node, ScalarNode):
            if node.style in ("|", ">"):
                return _block_scalar_end(node, lines)
            return end(node)
        if getattr(node, "flow_style", False) or not node.value:
            return end(node)
        if isinstance(node, MappingNode):
            key, value = node.value[-1]
            if is_alias(key, value):
                line = key.start_mark.line  # `key: *anchor` sits on one line
                return (line, len(lines[line].rstrip())) if line < len(lines) else end(key)
            node = value
        else:
            node = node.value[-1]


def _block_scalar_end(node: ScalarNode, lines: list[str]) -> Pos:
    first = node.start_mark.line
    line = node.end_mark.line - 1 if node.end_mark.column == 0 else node.end_mark.line
    line = min(line, len(lines) - 1)
    while line > first and not lines[line].strip():
        line -= 1
    if line == first:
        return end(node) if node.end_mark.line == first else (first, len(lines[first].rstrip()))
    return line, len(lines[line].rstrip())


def last_line(node: Node, lines: list[str]) -> int:
    line, column = content_end(node, lines)
    if column == 0 and line > node.start_mark.line:
        return line - 1
    return line


def report_at(analysis: Analysis, line: int) -> DocumentReport | None:
    """The document of a multi-document file that holds a line (the one that starts last at or before it)."""
    found: DocumentReport | None = None
    for report in analysis.reports:
        root = report.yaml_doc.root
        if root is None:
            continue
        if found is None or root.start_mark.line <= line:
            found = report
        if root.start_mark.line > line:
            break
    return found


@dataclass(frozen=True, slots=True)
class Step:
    """One level of the way from a document's root to a position: `node` is reached through `key` (a mapping
    entry), through a list item (`key` None), or is the root."""

    key: ScalarNode | None
    node: Node
    parent: Node | None


def path_at(root: Node, pos: Pos, lines: list[str]) -> tuple[list[Step], bool]:
    """The nodes that hold `pos`, outermost first, and whether the position is on the innermost entry's key."""
    steps = [Step(None, root, None)]
    node = root
    while True:
        if isinstance(node, MappingNode):
            entry = _entry_at(node, pos, lines)
            if entry is None:
                return steps, False
            key, value = entry
            if start(key) <= pos <= end(key):
                steps.append(Step(key, value, node))
                return steps, True
            steps.append(Step(key, value, node))
            if is_alias(key, value) or not start(value) <= pos:
                return steps, False
            node = value
        elif isinstance(node, SequenceNode):
            item = _item_at(node, pos, lines)
            if item is None:
                return steps, False
            steps.append(Step(None, item, node))
            node = item
        else:
            return steps, False


def _entry_at(node: MappingNode, pos: Pos, lines: list[str]) -> tuple[ScalarNode, Node] | None:
    found = None
    for key, value in node.value:
        if not isinstance(key, ScalarNode):
            continue
        if start(key) > pos:
            break
        found = (key, value)
    if found is None:
        return None
    key, value = found
    stop = end(key) if is_alias(key, value) else max(end(key), content_end(value, lines))
    return found if pos <= stop else None


def _item_at(node: SequenceNode, pos: Pos, lines: list[str]) -> Node | None:
    found = None
    for item in node.value:
        item_start = start(item)
        if item_start <= pos:
            found = item
            continue
        if not node.flow_style and item_start[0] == pos[0]:
            found = item  # the cursor on `- ` belongs to the item the dash introduces
        break
    if found is None or found.start_mark.index < node.start_mark.index:
        return None
    return found if pos <= content_end(found, lines) else None


def node_at_path(root: Node | None, path: list[str | int]) -> tuple[Node | None, ScalarNode | None]:
    """The node at a key path and the key that holds it (None for the root and for list items)."""
    node, key = root, None
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, SequenceNode) or not 0 <= part < len(node.value):
                return None, None
            node, key = node.value[part], None
            continue
        if not isinstance(node, MappingNode):
            return None, None
        found = None
        for k, v in node.value:
            if isinstance(k, ScalarNode) and k.value == part:
                found = (k, v)
        if found is None:
            return None, None
        key, node = found
    return node, key


class ScalarSource:
    """A scalar's text as written in the file, with offsets inside it mapped back to file positions."""

    __slots__ = ("text", "line", "column", "_breaks")

    def __init__(self, document_text: str, node: ScalarNode) -> None:
        self.text = document_text[node.start_mark.index:node.end_mark.index]
        self.line, self.column = start(node)
        self._breaks: list[int] | None = None

    def position(self, offset: int) -> Pos:
        before = bisect.bisect_left(self._line_breaks(), offset)  # line breaks before the offset
        if before == 0:
            return self.line, self.column + offset
        return self.line + before, offset - self._line_breaks()[before - 1] - 1

    def _line_breaks(self) -> list[int]:
        if self._breaks is None:
            # A 400-line command holds hundreds of references: index its line breaks once.
            self._breaks = [m.start() for m in _NEWLINE.finditer(self.text)]
        return self._breaks

    def offset(self, pos: Pos) -> int | None:
        """The offset inside the source of a file position, or None when the position is outside it."""
        line, column = pos
        if line < self.line:
            return None
        if line == self.line:
            at = column - self.column
        else:
            breaks = self._line_breaks()
            index = line - self.line - 1
            if index >= len(breaks):
                return None
            at = breaks[index] + 1 + column
        return at if 0 <= at <= len(self.text) else None


_NEWLINE = re.compile("\n")
