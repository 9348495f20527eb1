"""What the cursor is in, read from the text alone: the key path, key or value position, the word being typed.

The text is usually broken while someone types (`  co`, an unclosed `[`, a tab), so nothing here parses YAML:
structure comes from indentation, `- ` item markers, `key:` colons and flow brackets, as a person reads it.
Only the lines around the cursor are read (its ancestors above and, lazily, the siblings of a mapping), so a
request on a 3,000-line file costs what the block around the cursor costs.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

ITEM = -1  # a list item in a key path; which item does not matter to a schema
PathPart = str | int
KeyPath = tuple[PathPart, ...]

_BLOCK_SCALAR = re.compile(r"^[|>][0-9+-]*$")
_PROPERTIES = re.compile(r"(?:[&!][^\s]*(?:[ \t]+|$))*")  # anchors and tags before a value: `&base`, `!!str`


def indent_of(line: str) -> int:
    # Tabs count as one column: YAML forbids them in indentation, but the user still means "deeper".
    return len(line) - len(line.lstrip(" \t"))


def is_content(line: str) -> bool:
    stripped = line.lstrip(" \t")
    return bool(stripped) and not stripped.startswith("#")


def is_separator(line: str) -> bool:
    """`---` or `...` at column 0: the end of one YAML document and the start of another."""
    return (line.startswith("---") or line.startswith("...")) and (len(line) == 3 or line[3] in " \t#")


def unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1]
        return inner.replace("''", "'") if text[0] == "'" else inner.replace('\\"', '"')
    return text


# --- positions -----------------------------------------------------------------------------------------------------


def utf16_to_column(text: str, character: int) -> int:
    """An LSP (UTF-16) offset on a line → a code-point column."""
    if character <= 0:
        return 0
    if text.isascii():
        return min(character, len(text))
    units = 0
    for i, ch in enumerate(text):
        if units >= character:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(text)


def column_to_utf16(text: str, column: int) -> int:
    prefix = text[:column]
    if prefix.isascii():
        return column
    return len(prefix) + sum(1 for ch in prefix if ord(ch) > 0xFFFF)


# --- one line -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """The block structure of one line: `- ` markers, then a key with its value, or a bare scalar."""

    indent: int
    dashes: tuple[int, ...]  # columns of leading `- ` item markers
    content: int  # column after the markers (where a key or scalar starts); len(text) when none
    key: str | None  # unquoted key text
    key_end: int  # column just after the key text
    colon: int  # column of the key's colon; -1 when the line has no key
    value_col: int  # column where the inline value starts (after `: ` and anchors/tags)
    value: str  # inline value with any trailing comment removed

    @property
    def value_kind(self) -> Literal["none", "block", "flow", "scalar"]:
        if not self.value:
            return "none"
        if _BLOCK_SCALAR.match(self.value):
            return "block"
        if self.value[0] in "{[":
            return "flow"
        return "scalar"


def _comment_start(text: str, start: int) -> int:
    """Column of a `#` comment at or after `start` (outside quotes), or len(text)."""
    quote = ""
    i = start
    n = len(text)
    while i < n:
        ch = text[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"" and (i == start or text[i - 1] in " \t[{,:"):
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return i
        i += 1
    return n


def _key_colon(text: str, start: int) -> tuple[int, int]:
    """(end of key text, colon column) of a `key:` at `start`, or (-1, -1)."""
    n = len(text)
    if start >= n or text[start] in "[]{},#|>&*!%@`?:":
        return -1, -1
    if text[start] in "'\"":
        quote = text[start]
        i = start + 1
        while i < n:
            if text[i] == "\\" and quote == '"':
                i += 2
                continue
            if text[i] == quote:
                if quote == "'" and i + 1 < n and text[i + 1] == "'":
                    i += 2
                    continue
                break
            i += 1
        end = i + 1
        j = end
        while j < n and text[j] in " \t":
            j += 1
        if j < n and text[j] == ":" and (j + 1 == n or text[j + 1] in " \t"):
            return end, j
        return -1, -1
    i = start
    while True:
        i = text.find(":", i)
        if i < 0:
            return -1, -1
        hash_at = text.find(" #", start, i)
        if hash_at >= 0:
            return -1, -1
        if i + 1 == n or text[i + 1] in " \t":
            end = i
            while end > start and text[end - 1] in " \t":
                end -= 1
            return end, i
        i += 1


def parse_line(text: str) -> Line | None:
    """The structure of a line; None for blank lines and comments."""
    indent = indent_of(text)
    n = len(text)
    if indent == n or text[indent] == "#":
        return None
    dashes: list[int] = []
    i = indent
    while i < n and text[i] == "-" and (i + 1 == n or text[i + 1] in " \t"):
        dashes.append(i)
        i += 1
        while i < n and text[i] in " \t":
            i += 1
    content = i
    if content >= n or text[content] == "#":
        return Line(indent, tuple(dashes), n, None, n, -1, n, "")
    key_end, colon = _key_colon(text, content)
    if colon < 0:
        stop = _comment_start(text, content)
        return Line(indent, tuple(dashes), content, None, content, -1, content, text[content:stop].rstrip())
    value_col = colon + 1
    while value_col < n and text[value_col] in " \t":
        value_col += 1
    value_col = _PROPERTIES.match(text, value_col).end()  # type: ignore[union-attr]  # it matches empty text
    stop = _comment_start(text, value_col)
    return Line(indent, tuple(dashes), content, unquote(text[content:key_end]), key_end, colon, value_col,
                text[value_col:stop].rstrip())


# --- documents ------------------------------------------------------------------------------------------------------


def document_bounds(lines: Sequence[str], line: int) -> tuple[int, int]:
    """[first, end) lines of the YAML document (between `---` / `...` separators) that holds `line`."""
    scans = memo(lines)
    separators = scans.get(("separators",))
    if separators is None:
        separators = [n for n, text in enumerate(lines) if text[:3] in ("---", "...") and is_separator(text)]
        scans[("separators",)] = separators
    at = bisect.bisect_right(separators, line)
    top = separators[at - 1] + 1 if at else 0
    return top, separators[at] if at < len(separators) else len(lines)


def is_empty_document(lines: Sequence[str], top: int, end: int) -> bool:
    return not any(is_content(lines[n]) and not lines[n].startswith("%") for n in range(top, end))


# --- mappings found by indentation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    line: int
    col: int
    value: str  # inline value ('' when it is a block below)


_memos: list[tuple[Sequence[str], dict[tuple[object, ...], Any]]] = []


def memo(lines: Sequence[str]) -> dict[tuple[object, ...], Any]:
    """What has been read from one version of the text (the store makes a new list of lines per version, so the
    list's identity is the version). Kept for a few lists: several documents may be open."""
    for kept, found in _memos:
        if kept is lines:
            return found
    fresh: dict[tuple[object, ...], Any] = {}
    _memos.insert(0, (lines, fresh))
    del _memos[4:]
    return fresh


def mapping_entries(lines: Sequence[str], start: int, end: int, col: int, first: Line | None = None,
                    first_line: int = -1) -> dict[str, Entry]:
    """Keys at column `col` of the block mapping whose lines begin at `start`; it ends at a line indented less.

    `first` is the line that opens an item mapping (`- name: x`): its key belongs to the mapping too.
    """
    scans = memo(lines)
    key = ("mapping", start, end, col, first_line if first is not None else -1)
    found = scans.get(key)
    if found is not None:
        return found
    found = {}
    if first is not None and first.key is not None and first.content == col:
        found[first.key] = Entry(first.key, first_line, col, first.value)
    for n in range(start, end):
        text = lines[n]
        stripped = text.lstrip(" \t")
        if not stripped:
            continue
        ind = len(text) - len(stripped)
        if ind < col:
            if stripped[0] == "#":
                continue
            break
        if ind > col or stripped[0] == "#" or stripped[0] == "-" and (len(stripped) == 1 or stripped[1] in " \t"):
            continue  # deeper, a comment, or a sequence written at its key's own indentation
        key_end, colon = _key_colon(text, ind)
        if colon < 0:
            continue
        name = unquote(text[ind:key_end])
        value = text[colon + 1:].strip(" \t")
        if "#" in value:
            value = value[:_comment_start(value, 0)].rstrip()
        if value[:1] in ("&", "!"):
            value = _PROPERTIES.sub("", value, count=1)
        found[name] = Entry(name, n, col, value)
    scans[key] = found
    return found


def child_column(lines: Sequence[str], after: int, end: int, parent_col: int) -> tuple[int, int] | None:
    """(line, column) of the first content line below `after` when it is deeper than the parent."""
    for n in range(after + 1, end):
        if is_content(lines[n]):
            col = indent_of(lines[n])
            return (n, col) if col > parent_col else None
    return None


def find_mapping(lines: Sequence[str], top: int, end: int, path: Sequence[str]) -> dict[str, Entry] | None:
    """The entries of the block mapping at a key path of the document (None when there is no such block)."""
    first = child_column(lines, top - 1, end, -1)
    if first is None:
        return None
    entries = mapping_entries(lines, first[0], end, first[1])
    for name in path:
        entry = entries.get(name)
        if entry is None:
            return None
        if entry.value:
            if entry.value.startswith("{"):
                flow = flow_keys(entry.value)
                return {k: Entry(k, entry.line, -1, "") for k in flow}
            return None
        below = child_column(lines, entry.line, end, entry.col)
        if below is None:
            return {}
        entries = mapping_entries(lines, below[0], end, below[1])
    return entries


def block_text(lines: Sequence[str], entry: Entry, end: int) -> list[str]:
    """The lines of one entry: its key line and every deeper line after it (trailing blanks and comments dropped:
    they introduce what follows)."""
    out = [lines[entry.line]]
    for n in range(entry.line + 1, end):
        text = lines[n]
        if is_content(text) and indent_of(text) <= entry.col:
            break
        out.append(text)
    while len(out) > 1 and not is_content(out[-1]):
        out.pop()
    return out


# --- flow collections ----------------------------------------------------------------------------------------------


@dataclass
class _Frame:
    kind: Literal["map", "seq"]
    keys: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # the key whose value is being read (map)
    in_value: bool = False


@dataclass
class FlowState:
    """Where the end of a piece of flow text (`{a: 1, b: [x, `) stands."""

    path: KeyPath  # inside the flow collection, relative to where it starts
    at: Literal["key", "value", "item"]
    word: str  # the partial scalar being typed
    keys: tuple[str, ...]  # keys already in the innermost mapping
    values: dict[str, str]  # their scalar values, where known


def _quoted_end(text: str, i: int) -> int:
    """Index just after the quoted scalar starting at `i` (len(text) when it is not closed)."""
    quote = text[i]
    j = i + 1
    n = len(text)
    while j < n:
        if text[j] == "\\" and quote == '"':
            j += 2
            continue
        if text[j] == quote:
            if quote == "'" and j + 1 < n and text[j + 1] == "'":
                j += 2
                continue
            return j + 1
        j += 1
    return n


def _scan_flow(text: str) -> tuple[list[_Frame], str, bool]:
    """Frames still open at the end of `text`, the word being typed, and whether the outer bracket closed."""
    stack: list[_Frame] = []
    word = ""
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"" and not word.strip():
            end = _quoted_end(text, i)
            word = unquote(text[i:end]) if end <= n and text[end - 1:end] == ch and end - i > 1 else text[i + 1:end]
            i = end
            continue
        if ch == "#" and (i == 0 or text[i - 1] in " \t\n"):
            nl = text.find("\n", i)
            i = n if nl < 0 else nl
            continue
        if ch in "{[":
            stack.append(_Frame("map" if ch == "{" else "seq"))
            word = ""
        elif ch in "}]" or ch == ",":
            if stack and stack[-1].kind == "map":
                frame = stack[-1]
                if frame.in_value and frame.key is not None:
                    frame.values[frame.key] = word.strip()
                elif word.strip():
                    frame.keys.append(word.strip())
                frame.in_value, frame.key = False, None
            if ch != ",":
                if stack:
                    stack.pop()
                if not stack:
                    return [], "", True
            word = ""
        elif ch == ":" and stack and stack[-1].kind == "map" and not stack[-1].in_value and (
                i + 1 == n or text[i + 1] in " \t\n,]}" or (i > 0 and text[i - 1] in "'\"")):
            frame = stack[-1]
            frame.key = word.strip()
            frame.keys.append(frame.key)
            frame.in_value = True
            word = ""
        elif ch == "\n":
            word += " "
        else:
            word += ch
        i += 1
    return stack, word, False


def flow_state(text: str, after: str = "") -> FlowState | None:
    """The state at the end of `text` (which starts with `{` or `[`); None when the collection closed before it.

    `after` is the rest of the line: keys written after the cursor are present too.
    """
    stack, word, closed = _scan_flow(text)
    if closed or not stack:
        return None
    path: list[PathPart] = []
    for frame in stack[:-1]:
        if frame.kind == "seq":
            path.append(ITEM)
        elif frame.key is not None:
            path.append(frame.key)
    inner = stack[-1]
    word = word.lstrip()
    if inner.kind == "seq":
        return FlowState((*path, ITEM), "item", word, (), {})
    keys = tuple(inner.keys) + (tuple(_keys_after(after)) if after else ())
    if inner.in_value:
        return FlowState((*path, inner.key or ""), "value", word, keys, inner.values)
    return FlowState(tuple(path), "key", word, keys, inner.values)


def _keys_after(text: str) -> list[str]:
    """Keys of the same flow mapping written after the cursor (up to its closing brace)."""
    depth = 0
    keys: list[str] = []
    word = ""
    in_value = False
    for i, ch in enumerate(text):
        if ch in "{[":
            depth += 1
        elif ch in "}]":
            if depth == 0:
                break
            depth -= 1
        elif depth == 0 and ch == ",":
            in_value, word = False, ""
            continue
        elif depth == 0 and ch == ":" and not in_value and (i + 1 == len(text) or text[i + 1] in " ,}"):
            if word.strip():
                keys.append(unquote(word.strip()))
            in_value = True
            continue
        if depth == 0 and not in_value:
            word += ch
    return keys


def flow_keys(text: str) -> list[str]:
    """Keys of a one-line flow mapping (`{a: 1, b: 2}`)."""
    return _keys_after(text[1:]) if text.startswith("{") else []


# --- the cursor ---------------------------------------------------------------------------------------------------


Frame = tuple[int, int]  # (line, column) where a key path part is written


@dataclass
class Cursor:
    """The context at a position. Columns are code points on the cursor's line."""

    line: int
    column: int
    top: int  # first line of the YAML document
    end: int  # line after its last
    at: Literal["key", "value"]
    path: KeyPath  # key position: the mapping's path; value position: the value's path (ends with its key)
    word: str  # the partial word before the cursor
    start: int  # column where the word starts (replace from here)
    stop: int  # column where the word ends (the rest of the word after the cursor)
    indent: int  # column of a key at this position (nested inserts indent from here)
    lines: Sequence[str]
    frames: tuple[Frame, ...] = ()  # where each block part of the path is written, outermost first
    style: Literal["block", "flow", "plain", "quoted", "literal"] = "block"
    has_colon: bool = False  # key position on a key that already has its `:`
    maybe_scalar: bool = False  # a bare word: a new key, or a scalar (a list item, a value below its key)
    value_text: str = ""  # the value's text on this line before the cursor (expressions, paths)
    flow_keys: tuple[str, ...] | None = None  # keys of the flow mapping at the cursor
    flow_values: dict[str, str] = field(default_factory=dict)
    _siblings: dict[str, Entry] | None = None

    @property
    def key(self) -> str | None:
        """For a value: the key it belongs to."""
        last = self.path[-1] if self.path else None
        return last if isinstance(last, str) and self.at == "value" else None

    @property
    def depth(self) -> int:
        """Path length of the mapping at the cursor (the one that holds the key being typed or the value's key)."""
        return len(self.path) if self.at == "key" else len(self.path) - 1

    def knows(self, depth: int) -> bool:
        """Whether the keys of the mapping at `depth` can be read from the text (block mappings and the flow
        mapping at the cursor; not the outer levels of a flow collection)."""
        if depth == self.depth:
            return True
        return depth < len(self.frames) and depth < len(self.path) and isinstance(self.path[depth], str)

    def siblings(self) -> dict[str, Entry]:
        """Keys already present in the mapping at the cursor (the word being typed is not one of them)."""
        if self._siblings is None:
            if self.flow_keys is not None:
                self._siblings = {k: Entry(k, self.line, -1, self.flow_values.get(k, "")) for k in self.flow_keys}
            elif self.at == "key":
                found = self._block_mapping(len(self.path), self.line, self.indent)
                # The key being typed (or renamed) is not present yet.
                self._siblings = {k: e for k, e in found.items() if e.line != self.line}
            else:
                self._siblings = self.mapping_at(self.depth)
        return self._siblings

    def mapping_at(self, depth: int) -> dict[str, Entry]:
        """Entries of the block mapping that holds path part `depth` (0: the document's root mapping)."""
        if depth == self.depth and (self.flow_keys is not None or self.at == "key"):
            return self.siblings()
        if depth >= len(self.frames) or isinstance(self.path[depth], int):
            return {}
        line, col = self.frames[depth]
        return self._block_mapping(depth, line, col)

    def _block_mapping(self, depth: int, line: int, col: int) -> dict[str, Entry]:
        if depth == 0:
            return mapping_entries(self.lines, self.top, self.end, col)
        start = self.frames[depth - 1][0]
        opener = parse_line(self.lines[start])
        # `- name: x`: an item's first key sits on its marker's line.
        first = opener if opener is not None and opener.dashes else None
        return mapping_entries(self.lines, start + 1, self.end, col, first, start)

    def value_of(self, depth: int, key: str) -> str | None:
        """Inline scalar value of `key` in the mapping at `depth` (a discriminator such as `type`)."""
        entry = self.mapping_at(depth).get(key)
        if entry is None or not entry.value or entry.value[0] in "{[|>":
            return None
        return unquote(entry.value)


def _frames_above(lines: Sequence[str], line: int, top: int, col: int, item: bool
                  ) -> tuple[list[tuple[PathPart, int, int]], tuple[str, int] | None]:
    """Key path parts above an entity at `col` (a key, or a list item when `item`), outermost first.

    Also says when the entity is really inside a value that started on a line above: ("block" | "scalar" |
    "flow", line of its key). That key is then the innermost part.
    """
    parts: list[tuple[PathPart, int, int]] = []
    inside: tuple[str, int] | None = None
    for n in range(line - 1, top - 1, -1):
        if col <= 0 and not item:
            break
        text = lines[n]
        stripped = text.lstrip(" \t")
        if not stripped or stripped[0] == "#":
            continue
        ind = len(text) - len(stripped)
        if ind > col or (ind == col and not item):
            continue  # deeper lines, siblings, and a sibling's list written at its key's own indentation
        shape = parse_line(text)
        if shape is None:
            continue
        if ind == col:  # the entity is a list item: `key:` with its list at the same indentation is its parent
            if not shape.dashes and shape.key is not None and shape.value_kind == "none":
                parts.append((shape.key, n, col))
                item = False
            continue
        if shape.key is not None and shape.content < col:
            if shape.value_kind != "none" and not parts:
                # The cursor's line continues this key's value (a block scalar, plain text, or a flow collection).
                inside = (shape.value_kind, n)
            parts.append((shape.key, n, shape.content))
            col, item = shape.content, False
        for d in reversed(shape.dashes):
            if d < col:
                parts.append((ITEM, n, d))
                col, item = d, True
        # A bare scalar above (a broken line, or a plain scalar's continuation) is not structure: skipped.
    parts.reverse()
    return parts, inside


_AFTER_WORD = re.compile(r"[^\s:,\[\]{}#]*")
_AFTER_VALUE = re.compile(r"\S*")
_AFTER_QUOTED = re.compile(r"[^'\"]*")


def _stop(pattern: re.Pattern[str], text: str, column: int) -> int:
    match = pattern.match(text, column)
    return match.end() if match else column


def at(lines: Sequence[str], line: int, column: int) -> Cursor | None:
    """The context at (line, column); None where nothing can be completed (a comment, leading whitespace)."""
    if line < 0 or line >= len(lines):
        return None
    text = lines[line]
    column = max(0, min(column, len(text)))
    top, end = document_bounds(lines, line)
    if line < top or is_separator(text) or text.startswith("%"):
        return None
    base = {"line": line, "column": column, "top": top, "end": end, "lines": lines}

    if not text[:column].strip(" \t"):
        rest = text[column:].lstrip(" \t")
        if rest and not rest.startswith("#"):
            return None  # in the indentation of a line that has content
        above, inside = _frames_above(lines, line, top, column, False)
        if inside is not None:
            return _inside(base, above, inside)
        return Cursor(at="key", path=tuple(p for p, _, _ in above), word="", start=column, stop=column,
                      indent=column, maybe_scalar=True, frames=tuple((ln, c) for _, ln, c in above), **base)

    shape = parse_line(text)
    if shape is None or _comment_start(text, shape.indent) < column:
        return None  # in a comment
    entity = shape.content if shape.key is not None else min(shape.content, column)
    here = [(ITEM, line, d) for d in shape.dashes if d < entity]
    above, inside = _frames_above(lines, line, top, here[0][2] if here else entity, bool(here))
    if inside is not None:
        return _inside(base, above, inside)
    parts = above + here
    path = tuple(p for p, _, _ in parts)
    frames = tuple((ln, c) for _, ln, c in parts)

    if shape.key is not None and column > shape.colon:
        value_col = min(shape.value_col, column)
        vpath, vframes = (*path, shape.key), (*frames, (line, shape.content))
        if text[value_col:value_col + 1] in ("{", "["):
            return _flow_cursor(base, vpath, vframes, text[value_col:column], text[column:], shape.content)
        style: Literal["plain", "quoted"] = "plain"
        start = value_col
        if text[value_col:value_col + 1] in ("'", '"') and column > value_col:
            style, start = "quoted", value_col + 1
        stop = _stop(_AFTER_QUOTED if style == "quoted" else _AFTER_VALUE, text, column)
        return Cursor(at="value", path=vpath, word=text[start:column], start=start, stop=stop, indent=shape.content,
                      style=style, value_text=text[start:column], frames=vframes, **base)

    if shape.key is None and entity < len(text) and text[entity] in "{[":
        return _flow_cursor(base, path, frames, text[entity:column], text[column:], entity)
    stop = _stop(_AFTER_WORD, text, column)
    if shape.key is not None:
        stop = max(stop, shape.key_end)
    return Cursor(at="key", path=path, word=text[entity:column], start=entity, stop=stop, indent=entity,
                  has_colon=shape.key is not None, maybe_scalar=shape.key is None, frames=frames,
                  value_text=text[entity:column], **base)


def _flow_cursor(base: dict, path: KeyPath, frames: tuple[Frame, ...], flow_text: str, after: str,
                 indent: int) -> Cursor | None:
    state = flow_state(flow_text, after)
    if state is None:
        return None
    column = base["column"]
    start = column - len(state.word)
    stop = column + _stop(_AFTER_WORD, after, 0)
    full = (*path, *state.path)
    if state.at == "key":
        return Cursor(at="key", path=full, word=state.word, start=start, stop=stop, indent=indent, style="flow",
                      flow_keys=state.keys, flow_values=state.values, frames=frames, **base)
    if state.at == "item":
        return Cursor(at="key", path=full, word=state.word, start=start, stop=stop, indent=indent, style="flow",
                      maybe_scalar=True, flow_keys=(), frames=frames, value_text=state.word, **base)
    return Cursor(at="value", path=full, word=state.word, start=start, stop=stop, indent=indent, style="flow",
                  value_text=state.word, flow_keys=state.keys, flow_values=state.values, frames=frames, **base)


def _inside(base: dict, above: list[tuple[PathPart, int, int]], inside: tuple[str, int]) -> Cursor | None:
    """The cursor is in a value that began on a line above: a block or plain scalar, or a flow collection."""
    kind, owner = inside
    lines: Sequence[str] = base["lines"]
    line, column = base["line"], base["column"]
    text = lines[line]
    path = tuple(p for p, _, _ in above)
    frames = tuple((ln, c) for _, ln, c in above)
    if kind == "flow":
        shape = parse_line(lines[owner])
        if shape is None:
            return None
        joined = "\n".join([lines[owner][shape.value_col:], *lines[owner + 1:line], text[:column]])
        return _flow_cursor(base, path, frames, joined, text[column:], frames[-1][1])
    # A block scalar (`command: >-`) or a plain scalar continued on this line: the value is text.
    start = indent_of(text)
    if start > column:
        start = column
    return Cursor(at="value", path=path, word=text[start:column], start=start, stop=_stop(_AFTER_VALUE, text, column),
                  indent=frames[-1][1], style="literal" if kind == "block" else "plain",
                  value_text=text[:column], frames=frames, **base)
