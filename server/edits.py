"""Text edits on a job file that keep its look: the file's own line breaks and indentation, minimal changes (so the
editor keeps the cursor, folds and undo steps), YAML written the way a person would write it."""

from __future__ import annotations

import difflib
import math
from typing import Any

import yaml
from lsprotocol import types as lsp
from mljob.runner.document import MappingNode, Node
from mljob.server.where import Pos, last_line


def line_break(text: str) -> str:
    at = text.find("\n")
    return "\r\n" if at > 0 and text[at - 1] == "\r" else "\n"


def utf16_length(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def position(lines: list[str], pos: Pos) -> lsp.Position:
    """A code-point position → LSP (UTF-16) position."""
    line, column = pos
    text = lines[line] if 0 <= line < len(lines) else ""
    return lsp.Position(line=line, character=utf16_length(text[:column]) if not text.isascii() else column)


def span(lines: list[str], begin: Pos, finish: Pos) -> lsp.Range:
    return lsp.Range(start=position(lines, begin), end=position(lines, finish))


def end_of_line(lines: list[str], line: int) -> Pos:
    return line, len(lines[line]) if 0 <= line < len(lines) else 0


def render(key: str, value: Any, indent: int, br: str) -> str:
    """`key: value` as block YAML at an indentation, without a trailing line break."""
    dumped = yaml.safe_dump({key: value}, default_flow_style=False, sort_keys=False, allow_unicode=True,
                            width=math.inf, indent=2)
    lines = dumped.rstrip("\n").split("\n")
    # PyYAML writes `key: null` for an empty value; a person writes `key:`.
    lines = [line[:-5] if line.endswith(": null") else line for line in lines]
    return br.join(" " * indent + line for line in lines)


def render_flow(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=math.inf).strip().removesuffix(
        "\n...").removesuffix("...").strip()


def insert_entry(lines: list[str], br: str, mapping: MappingNode, key: str, value: Any) -> lsp.TextEdit | None:
    """Add `key: value` as the last entry of a mapping, lined up with its other keys."""
    if not mapping.value:
        return None
    if mapping.flow_style:
        close = mapping.end_mark
        if close.column < 1:
            return None
        inside = f"{key}: {render_flow(value)}"
        at = (close.line, close.column - 1)
        return lsp.TextEdit(range=span(lines, at, at), new_text=", " + inside)
    indent = mapping.value[0][0].start_mark.column
    return append_after(lines, br, last_line(mapping, lines), render(key, value, indent, br))


def append_after(lines: list[str], br: str, line: int, block: str) -> lsp.TextEdit:
    """New lines after a line (at its end, so that a file without a final line break still works)."""
    at = end_of_line(lines, line)
    return lsp.TextEdit(range=span(lines, at, at), new_text=br + block)


def delete_lines(lines: list[str], first: int, last: int) -> lsp.TextEdit:
    """Remove whole lines first..last, with their line break."""
    if last + 1 < len(lines):
        return lsp.TextEdit(range=span(lines, (first, 0), (last + 1, 0)), new_text="")
    if first > 0:  # the last lines of a file without a final line break: take the break before them
        return lsp.TextEdit(range=span(lines, end_of_line(lines, first - 1), end_of_line(lines, last)), new_text="")
    return lsp.TextEdit(range=span(lines, (first, 0), end_of_line(lines, last)), new_text="")


def starts_line(lines: list[str], node: Node) -> bool:
    """Whether only indentation comes before the node on its line (so its lines can be removed whole)."""
    line, column = node.start_mark.line, node.start_mark.column
    return 0 <= line < len(lines) and not lines[line][:column].strip()


def diff(old: str, new: str) -> list[lsp.TextEdit]:
    """The smallest line-wise edits that turn `old` into `new`."""
    old_lines = old.splitlines(keepends=True)
    new_lines = new.splitlines(keepends=True)
    plain = [line.rstrip("\r\n") for line in old_lines] or [""]
    edits = []
    matcher = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        begin = _line_start(old_lines, plain, i1)
        finish = _line_start(old_lines, plain, i2)
        edits.append(lsp.TextEdit(range=lsp.Range(start=begin, end=finish), new_text="".join(new_lines[j1:j2])))
    return edits


def _line_start(old_lines: list[str], plain: list[str], index: int) -> lsp.Position:
    if index < len(old_lines):
        return lsp.Position(line=index, character=0)
    if old_lines and not old_lines[-1].endswith(("\n", "\r")):
        last = len(old_lines) - 1  # no final line break: the end is the end of the last line
        return lsp.Position(line=last, character=utf16_length(plain[last]))
    return lsp.Position(line=len(old_lines), character=0)


def apply(text: str, edits: list[lsp.TextEdit]) -> str:
    """Apply LSP edits (UTF-16 positions, non-overlapping) as an editor would; for tests and checks."""
    starts = [0]
    for i, ch in enumerate(text):
        if ch == "\n":
            starts.append(i + 1)

    def offset(pos: lsp.Position) -> int:
        if pos.line >= len(starts):
            return len(text)
        begin = starts[pos.line]
        stop = starts[pos.line + 1] - 1 if pos.line + 1 < len(starts) else len(text)
        units = 0
        for i in range(begin, stop):
            if units >= pos.character:
                return i
            units += 2 if ord(text[i]) > 0xFFFF else 1
        return stop

    ordered = sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True)
    for edit in ordered:
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text
