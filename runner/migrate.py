"""Rewrite Azure ML job files from the May-2021 preview syntax into today's GA syntax.

The file keeps its look: the tree is edited in ruamel.yaml's round-trip mode, so comments, key order, quoting,
block scalars and blank lines survive, and a document that needs no change is copied through byte for byte.

Most of this module is comment bookkeeping. ruamel does not attach a comment to the key it describes but to
the *end of the entry before it*: the token stored after `a: 1` holds `a`'s end-of-line comment **and** every
whole comment/blank line up to the next key. Moving or deleting a key therefore moves or deletes comments that
belong to its neighbours unless they are handed over explicitly; `_Comments`, `_detach`, `_insert`,
`_collapse` and `_remove` are that hand-over.
"""

from __future__ import annotations

import io
import math
import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.scalarstring import FoldedScalarString, LiteralScalarString, ScalarString
from ruamel.yaml.tokens import CommentToken

__all__ = ["Change", "Migration", "MigrationError", "migrate_text"]


@dataclass(frozen=True)
class Change:
    """One rewrite. `line` is 0-based in the ORIGINAL text and points at the old form."""

    line: int
    message: str


@dataclass(frozen=True)
class Migration:
    text: str
    changes: list[Change]


class MigrationError(ValueError):
    """The text cannot be migrated: not YAML (MLJ002), or beyond the limits `mljob validate` has (MLJ001, MLJ005).
    `line`/`column` are 0-based; the message shows them 1-based, as editors do; `reason` is the message without
    them."""

    def __init__(self, message: str, line: int, column: int, code: str = "MLJ002", reason: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.code = code
        self.reason = reason if reason is not None else message.split(": ", 1)[-1]


def _check_bounds(text: str) -> None:
    """Refuse what `mljob validate` refuses before reading it as YAML: more than 4 MiB, or aliases that expand past
    the limit (ruamel's tree shares an alias's values, but the migration walks them all: a 400-byte bomb would
    walk for ever). Checked on libyaml's node graph, as validation does (runner/document.py)."""
    from mljob.runner import document

    if len(text) > document.MAX_BYTES or len(text.encode("utf-8", "surrogatepass")) > document.MAX_BYTES:
        raise MigrationError(f"line 1, column 1: the text is more than {document.MAX_BYTES // 2**20} MiB; job "
                             "files are not that large: not migrated", 0, 0, "MLJ001")
    problem = document.alias_problem(text)
    if problem is not None:
        start = problem.range.start
        raise MigrationError(f"line {start.line + 1}, column {start.column + 1}: {problem.message}",
                             start.line, start.column, problem.code, problem.message)


def migrate_text(text: str) -> Migration:
    """Return `text` in GA syntax plus one `Change` per rewrite; GA text comes back identical. Raises
    MigrationError for text that is not YAML or is beyond validation's limits."""
    _check_bounds(text)
    had_bom = text.startswith("\ufeff")
    body = text[1:] if had_bom else text
    crlf = _first_line_break(body) == "\r\n"
    body = body.replace("\r\n", "\n")
    changes: list[Change] = []
    pieces: list[str] = []
    for doc in _split_documents(body):
        pieces.append(doc.prefix)
        pieces.append(_migrate_document(doc, changes))
    if not changes:
        return Migration(text, [])
    out = "".join(pieces)
    if crlf:
        out = out.replace("\n", "\r\n")
    # A BOM is never written: YAML does not need one and the CLI's loader has choked on it.
    return Migration(out, sorted(changes, key=lambda c: c.line))


# ------------------------------------------------------------------------------------------------------------
# Documents: split the stream ourselves so that untouched documents are copied verbatim.

_DOC_MARKER = re.compile(r"(?:---|\.\.\.)(?=[ \t]|$)")


@dataclass
class _Document:
    prefix: str  # `---`/`...`/directive lines before the body, copied as they are
    body: str
    start_line: int
    explicit_start: bool = False  # the body itself begins with `--- <content>`


def _first_line_break(text: str) -> str:
    at = text.find("\n")
    return "\r\n" if at > 0 and text[at - 1] == "\r" else "\n"


def _split_documents(text: str) -> list[_Document]:
    # Only "\n" splits lines here: str.splitlines would also split on U+2028 etc. inside scalars.
    lines = re.findall(r"[^\n]*\n|[^\n]+\Z", text)
    docs: list[_Document] = []
    prefix: list[str] = []
    body: list[str] = []
    start = 0
    explicit = False
    for number, line in enumerate(lines):
        bare = line.rstrip("\n")
        marker = _DOC_MARKER.match(bare)
        is_directive = bare.startswith("%") and not body
        if marker or is_directive:
            rest = bare[marker.end() :].strip() if marker else ""
            if body:
                docs.append(_Document("".join(prefix), "".join(body), start, explicit))
                prefix, body, explicit = [], [], False
            if rest and not rest.startswith("#") and bare.startswith("---"):
                body, start, explicit = [line], number, True  # `--- {a: 1}`: the content needs the marker
            else:
                prefix.append(line)
            continue
        if not body:
            start = number
        body.append(line)
    if body or prefix:
        docs.append(_Document("".join(prefix), "".join(body), start, explicit))
    return docs


def _new_yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines; folded scalars keep their own folds
    return yaml


def _parse(doc: _Document) -> Any:
    try:
        return _new_yaml().load(doc.body)
    except Exception as exc:  # ruamel raises several unrelated types; none of them may escape as a traceback
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = doc.start_line + (mark.line if mark is not None else 0)
        column = mark.column if mark is not None else 0
        raise MigrationError(
            f"line {line + 1}, column {column + 1}: not valid YAML, cannot migrate: {_describe(exc)}",
            line,
            column,
        ) from None


def _describe(exc: Exception) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    if isinstance(exc, YAMLError) and problem:
        return f"{problem} ({context})" if context else str(problem)
    first = str(exc).strip().splitlines()
    return first[0] if first else type(exc).__name__


def _migrate_document(doc: _Document, changes: list[Change]) -> str:
    root = _parse(doc)
    if not isinstance(root, CommentedMap):
        return doc.body
    indent = _guess_indent(root)  # before any edit: moved entries keep the columns of where they were
    _normalize_comments(root)
    ctx = _Context(doc.start_line)
    _rewrite_expressions(root, ctx)
    if _is_sweep(root):
        _migrate_sweep(root, ctx)
    else:
        _migrate_job(root, ctx, _Where(), _RootHeader(root))
    if not ctx.changes:
        return doc.body
    changes.extend(ctx.changes)
    out = _dump(root, doc, indent)
    if not doc.body.endswith("\n"):
        out = out.rstrip("\n")
    return out


# ------------------------------------------------------------------------------------------------------------
# Serialising a changed document.

# A private-use character standing in for a space at the end of a folded line (see `_keep_trailing_spaces`).
_SPACE_STAND_IN = "\ue000"


def _dump(root: CommentedMap, doc: _Document, indent: tuple[int, int, int]) -> str:
    yaml = _new_yaml()
    mapping, sequence, offset = indent
    yaml.indent(mapping=mapping, sequence=sequence, offset=offset)
    yaml.explicit_start = doc.explicit_start
    stand_in = _SPACE_STAND_IN not in doc.body
    if stand_in:
        _keep_trailing_spaces(root)
    stream = io.StringIO()
    yaml.dump(root, stream)
    out = stream.getvalue()
    return out.replace(_SPACE_STAND_IN, " ") if stand_in else out


def _keep_trailing_spaces(node: Any) -> None:
    """Keep `python main.py ⏎--x` folded where the author folded it.

    A source line that ends in a space folds into two spaces; ruamel then refuses to fold there again (it
    never writes trailing whitespace) and joins the lines. Hiding the first space behind a non-space stand-in
    lets it fold; the stand-in becomes a space again after dumping, which restores the original line exactly.
    """
    for holder, key, value in list(_walk_values(node)):
        if not isinstance(value, FoldedScalarString):
            continue
        chars = list(value)
        for pos in getattr(value, "fold_pos", []):
            if pos + 1 >= len(chars) or chars[pos + 1] == " ":
                continue  # ruamel cannot fold before a space either way
            before = pos - 1
            while before >= 0 and chars[before] == " ":
                chars[before] = _SPACE_STAND_IN
                before -= 1
        if chars != list(value):
            holder[key] = _same_style(value, "".join(chars))


def _guess_indent(root: CommentedMap) -> tuple[int, int, int]:
    """(mapping, sequence, offset) as ruamel's `indent()` wants them, read off the first nested blocks."""
    mapping: int | None = None
    seq: tuple[int, int] | None = None
    for holder, key, value in _walk_values(root):
        if not isinstance(holder, CommentedMap) or not _is_block(value):
            continue
        parent_col = _column_of(holder, key)
        if mapping is None and isinstance(value, CommentedMap):
            mapping = _column_of(value, next(iter(value))) - parent_col
        if seq is None and isinstance(value, CommentedSeq) and value.lc.col is not None:
            dash = value.lc.col - parent_col
            seq = (_column_of(value, 0) - parent_col, dash)
        if mapping is not None and seq is not None:
            break
    mapping = mapping if mapping and mapping > 0 else 2
    sequence, offset = seq if seq and seq[0] >= seq[1] + 2 and seq[1] >= 0 else (2, 0)
    return mapping, sequence, offset


# ------------------------------------------------------------------------------------------------------------
# Tree helpers.


def _walk_values(node: Any) -> Iterator[tuple[Any, Any, Any]]:
    """Every (container, key, value) below `node`, depth first, in document order."""
    if isinstance(node, CommentedMap):
        entries: Any = list(node.items())
    elif isinstance(node, CommentedSeq):
        entries = list(enumerate(node))
    else:
        return
    for key, value in entries:
        yield node, key, value
        yield from _walk_values(value)


def _is_block(node: Any) -> bool:
    """A non-empty block-style collection: its entries (and comments) sit on their own lines."""
    return isinstance(node, (CommentedMap, CommentedSeq)) and len(node) > 0 and not node.fa.flow_style()


def _column_of(node: Any, key: Any) -> int:
    try:
        return int(node.lc.key(key)[1] if isinstance(node, CommentedMap) else node.lc.item(key)[1])
    except (AttributeError, KeyError, TypeError, IndexError):
        return 0


def _retext(old: Any, text: str, shift: Callable[[int], int | None]) -> Any:
    """`text` with `old`'s scalar style (quotes, `|`, `>` and its folds), indicator comment and anchor."""
    if not isinstance(old, ScalarString):
        return text
    new = type(old)(text)
    if isinstance(old, FoldedScalarString):
        moved = (shift(p) for p in getattr(old, "fold_pos", []))
        new.fold_pos = [p for p in moved if p is not None and 0 < p < len(text) and text[p] == " "]
    if getattr(old, "comment", None) is not None:
        new.comment = old.comment
    anchor = old.yaml_anchor()
    if anchor is not None:
        new.yaml_set_anchor(anchor.value, always_dump=anchor.always_dump)
    return new


def _same_style(old: Any, text: str) -> Any:
    return _retext(old, text, lambda p: p)


def _show(value: Any) -> str:
    """A value as a reader would write it in flow style, for messages."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    text = str(value)
    return text if len(text) <= 100 else text[:99] + "…"


# ------------------------------------------------------------------------------------------------------------
# Comment bookkeeping (see the module docstring).


@dataclass
class _Comments:
    """What follows one entry: an end-of-line comment (at column `col`), then whole lines ("" is blank)."""

    eol: str | None = None
    col: int = 0
    lines: list[str] = field(default_factory=list)


class _Slot(Protocol):
    def read(self) -> _Comments: ...

    def write(self, comments: _Comments) -> None: ...


_BLOCK_SCALARS = (LiteralScalarString, FoldedScalarString)


def _token_parts(token: CommentToken) -> list[str]:
    parts = token.value.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return parts


def _whole_lines(token: CommentToken) -> list[str]:
    parts = _token_parts(token)
    if parts and parts[0]:
        parts[0] = " " * token.start_mark.column + parts[0]  # the first line's indentation lives in the mark
    return parts


def _token(text: str, column: int) -> CommentToken:
    return CommentToken(text, CommentMark(column), None)


class _ItemSlot:
    """The comments after entry `key` of a mapping or sequence (before the first child, for a collection)."""

    def __init__(self, node: CommentedMap | CommentedSeq, key: Any) -> None:
        self.node = node
        self.key = key
        # ruamel keeps a mapping entry's trailing comment at index 2, a sequence item's at index 0.
        self.pos = 2 if isinstance(node, CommentedMap) else 0

    def read(self) -> _Comments:
        out = _Comments()
        entry = self.node.ca.items.get(self.key)
        if not entry:
            return out
        value = self.node[self.key]
        token = entry[self.pos]
        if token is not None and isinstance(value, _BLOCK_SCALARS):
            out.lines = _whole_lines(token)  # a block scalar ends its own line: only whole lines follow
        elif token is not None:
            parts = _token_parts(token)
            if parts and parts[0].strip():
                out.eol, out.col = parts[0].strip(), token.start_mark.column
            out.lines = parts[1:]
        if self._owns_pre_lines(value) and entry[3]:
            for pre in entry[3]:
                out.lines += _whole_lines(pre)
        return out

    def write(self, comments: _Comments) -> None:
        value = self.node[self.key]
        entry = self.node.ca.items.setdefault(self.key, [None, None, None, None])
        if isinstance(value, _BLOCK_SCALARS):
            indent = " " * _column_of(self.node, self.key)
            lines = ([indent + comments.eol] if comments.eol else []) + comments.lines
            entry[self.pos] = _token("".join(f"{line}\n" for line in lines), 0) if lines else None
        elif comments.eol or comments.lines:
            text = (comments.eol or "") + "\n" + "".join(f"{line}\n" for line in comments.lines)
            entry[self.pos] = _token(text, self._eol_column(comments.col) if comments.eol else 0)
        else:
            entry[self.pos] = None
        if self._owns_pre_lines(value):
            entry[3] = None  # folded into entry[2] above
            if value.ca.comment:
                # ruamel's copy of entry[2]/[3] on the child; the emitter ignores it but must still find a list
                value.ca.comment[:] = [None] * len(value.ca.comment)
        if not any(entry):
            del self.node.ca.items[self.key]

    def _eol_column(self, col: int) -> int:
        """`col`, or two columns past the value if a rewritten (longer) value now reaches the comment.

        ruamel would otherwise squeeze the comment to one space after the value: `path: data # data`.
        """
        value = self.node[self.key]
        if isinstance(value, (CommentedMap, CommentedSeq)) or not isinstance(self.node, CommentedMap):
            return col
        quotes = 2 if isinstance(value, ScalarString) and not isinstance(value, _BLOCK_SCALARS) else 0
        shown = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        end = self._key_column() + len(str(self.key)) + 2 + len(shown) + quotes
        return col if col > end else end + 2

    def _key_column(self) -> int:
        """The key's column; a key we inserted has none recorded, so borrow a sibling's."""
        for key in [self.key, *self.node]:
            try:
                return int(self.node.lc.key(key)[1])
            except (AttributeError, KeyError, TypeError, IndexError):
                continue
        return 0

    def _owns_pre_lines(self, value: Any) -> bool:
        return isinstance(self.node, CommentedMap) and _is_block(value)


class _RootHeader:
    """The comment lines above a document's first key."""

    def __init__(self, root: CommentedMap) -> None:
        self.root = root

    def read(self) -> _Comments:
        comment = self.root.ca.comment
        tokens = comment[1] if comment and len(comment) > 1 and comment[1] else []
        return _Comments(lines=[line for token in tokens for line in _whole_lines(token)])

    def write(self, comments: _Comments) -> None:
        lines = ([comments.eol] if comments.eol else []) + comments.lines
        token = _token("".join(f"{line}\n" for line in lines), 0) if lines else None
        if self.root.ca.comment is None:
            self.root.ca.comment = [None, None]
        self.root.ca.comment[1] = [token] if token else None


def _normalize_comments(root: CommentedMap) -> None:
    """Move the comments ruamel parks elsewhere into the slot after the entry they follow.

    A comment after a flow collection becomes a "pre" comment of the next key (`ca.items[key][1]`) or an
    "end" comment of the enclosing collection (`ca.end`). The bookkeeping above assumes one place only.
    """
    containers: list[tuple[Any, _Slot]] = [(root, _RootHeader(root))]
    containers += [(value, _ItemSlot(holder, key)) for holder, key, value in _walk_values(root) if _is_block(value)]
    for node, header in containers:
        if isinstance(node, CommentedMap):
            for key in list(node):
                entry = node.ca.items.get(key)
                if entry and entry[1]:
                    lines = [line for token in entry[1] for line in _whole_lines(token)]
                    entry[1] = None
                    previous = _previous(node, key, header)
                    before = previous.read()
                    previous.write(replace(before, lines=before.lines + lines))
        if node.ca.end and len(node):
            lines = [line for token in node.ca.end for line in _whole_lines(token)]
            node.ca.end = []
            last = next(reversed(node)) if isinstance(node, CommentedMap) else len(node) - 1
            tail = _tail(node, last)
            after = tail.read()
            tail.write(replace(after, lines=after.lines + lines))


def _tail(node: CommentedMap | CommentedSeq, key: Any) -> _ItemSlot:
    """The slot after the last line of entry `key`: it holds the lines up to the next entry."""
    value = node[key]
    while _is_block(value):
        node, key = value, (next(reversed(value)) if isinstance(value, CommentedMap) else len(value) - 1)
        value = node[key]
    return _ItemSlot(node, key)


def _previous(mapping: CommentedMap, key: Any, header: _Slot) -> _Slot:
    keys = list(mapping)
    at = keys.index(key)
    return _tail(mapping, keys[at - 1]) if at else header


def _split_lead(lines: list[str]) -> tuple[list[str], list[str]]:
    """Split off the comment lines directly above the next key (no blank line between): they describe it."""
    at = len(lines)
    while at > 0 and lines[at - 1].strip():
        at -= 1
    return lines[:at], lines[at:]


@dataclass
class _Moved:
    """An entry taken out of a mapping together with its own comments."""

    key: Any
    value: Any
    head: _Comments = field(default_factory=_Comments)  # its end-of-line comment (+ lines above its children)
    lead: list[str] = field(default_factory=list)  # the comment lines that were directly above it


def _detach(mapping: CommentedMap, key: Any, header: _Slot) -> _Moved:
    """Remove `key`; the lines after it stay where they were, the comment lines right above it go with it."""
    previous = _previous(mapping, key, header)
    tail = _tail(mapping, key)
    after = tail.read()
    tail.write(replace(after, lines=[]))
    head = _ItemSlot(mapping, key).read()
    before = previous.read()
    keep, lead = _split_lead(before.lines)
    previous.write(replace(before, lines=keep + after.lines))
    value = mapping[key]
    mapping.ca.items.pop(key, None)
    del mapping[key]
    return _Moved(key, value, head, lead)


def _insert(mapping: CommentedMap, index: int, moved: _Moved, header: _Slot) -> None:
    """Insert `moved` at `index`; the lines that followed the entry before it now follow `moved`."""
    keys = list(mapping)
    previous = _tail(mapping, keys[index - 1]) if index else header
    before = previous.read()
    previous.write(replace(before, lines=moved.lead))
    mapping.insert(index, moved.key, moved.value)
    _record_column(mapping, moved.key, header)
    _ItemSlot(mapping, moved.key).write(moved.head)
    tail = _tail(mapping, moved.key)
    after = tail.read()
    tail.write(replace(after, lines=after.lines + before.lines))


def _record_column(mapping: CommentedMap, key: Any, header: _Slot) -> None:
    """Note where an inserted key will be written, so that `_eol_column` can keep comments clear of it.

    Lines stay None: an inserted key has no line in the original text.
    """
    columns = [_column_of(mapping, k) for k in mapping if k != key and _has_position(mapping, k)]
    if columns:
        column = columns[0]
    elif isinstance(header, _ItemSlot) and _has_position(header.node, header.key):
        column = _column_of(header.node, header.key) + 2
    else:
        column = 0
    mapping.lc.add_kv_line_col(key, [None, column, None, None])


def _has_position(node: Any, key: Any) -> bool:
    data = node.lc.data if isinstance(node, CommentedMap) else None
    return isinstance(data, dict) and key in data and data[key][1] is not None


def _harvest(node: CommentedMap | CommentedSeq, key: Any) -> list[tuple[str, int | None, int]]:
    """Every comment of entry `key` and below, in document order: (text, eol column or None, indentation)."""
    found = _ItemSlot(node, key).read()
    bits: list[tuple[str, int | None, int]] = []
    if found.eol:
        bits.append((found.eol, found.col, _column_of(node, key)))
    bits += [(line, None, 0) for line in found.lines]
    value = node[key]
    if _is_block(value):
        for child in list(value) if isinstance(value, CommentedMap) else range(len(value)):
            bits += _harvest(value, child)
    return bits


def _flatten(bits: list[tuple[str, int | None, int]], keep_eol: bool) -> _Comments:
    out = _Comments()
    for text, eol_col, indent in bits:
        if eol_col is not None and keep_eol and out.eol is None:
            out.eol, out.col = text, eol_col
        elif eol_col is not None:
            out.lines.append(" " * indent + text)
        else:
            out.lines.append(text)
    return out


def _collapse(mapping: CommentedMap, key: Any, value: Any) -> None:
    """Replace a collection by a scalar; its comments all end up after the scalar, none is lost."""
    own_eol = _ItemSlot(mapping, key).read().eol
    bits = _harvest(mapping, key)
    mapping.ca.items.pop(key, None)
    mapping[key] = value
    comments = _flatten(bits, keep_eol=True)
    if comments.eol is not None and comments.eol != own_eol:
        comments.col = 0  # a child's comment sat far right of the child; put it just after the new value
    _ItemSlot(mapping, key).write(comments)


def _remove(mapping: CommentedMap, key: Any, header: _Slot) -> None:
    """Delete `key`; its comments stay at its place as whole lines."""
    bits = _harvest(mapping, key)
    previous = _previous(mapping, key, header)
    mapping.ca.items.pop(key, None)
    del mapping[key]
    before = previous.read()
    previous.write(replace(before, lines=before.lines + _flatten(bits, keep_eol=False).lines))


def _rename(mapping: CommentedMap, old: Any, new: Any) -> None:
    at = list(mapping).index(old)
    value = mapping[old]
    entry = mapping.ca.items.pop(old, None)
    position = mapping.lc.data.get(old) if isinstance(mapping.lc.data, dict) else None
    del mapping[old]
    mapping.insert(at, new, value)
    if entry is not None:
        mapping.ca.items[new] = entry
    if position is not None:
        mapping.lc.data[new] = position
    _refresh(mapping, new)


def _set(mapping: CommentedMap, key: Any, value: Any) -> None:
    """Replace a value in place, keeping its end-of-line comment clear of a longer value."""
    mapping[key] = value
    _refresh(mapping, key)


def _refresh(mapping: CommentedMap, key: Any) -> None:
    if key in mapping.ca.items:
        slot = _ItemSlot(mapping, key)
        slot.write(slot.read())


def _replace_by_child(mapping: CommentedMap, key: Any, header: _Slot) -> None:
    """`key: {child: v}` → `child: v` in place; comments above the child stay above it."""
    inner_map = mapping[key]
    child = next(iter(inner_map))
    outer = _ItemSlot(mapping, key).read()
    inner = _ItemSlot(inner_map, child).read()
    delta = _column_of(mapping, key) - _column_of(inner_map, child)
    above = [" " * _column_of(mapping, key) + outer.eol] if outer.eol and inner.eol else []
    above += _shift_comment_lines(outer.lines, delta)
    eol, col = (inner.eol, inner.col + delta) if inner.eol else (outer.eol, outer.col)
    value = inner_map[child]
    previous = _previous(mapping, key, header)
    before = previous.read()
    previous.write(replace(before, lines=before.lines + above))
    mapping.ca.items.pop(key, None)
    inner_map.ca.items.pop(child, None)
    mapping[key] = value
    _rename(mapping, key, child)
    _reindent_tree(value, delta)
    _ItemSlot(mapping, child).write(_Comments(eol, col, _shift_comment_lines(inner.lines, delta)))


def _shift_comment_lines(lines: list[str], delta: int) -> list[str]:
    out = []
    for line in lines:
        bare = line.lstrip(" ")
        out.append(" " * max(0, len(line) - len(bare) + delta) + bare if bare.startswith("#") else line)
    return out


def _reindent_tree(value: Any, delta: int) -> None:
    """Shift the whole comment lines inside a subtree that moved `delta` columns, so they line up again."""
    for holder, key, _value in list(_walk_values(value)):
        _shift_position(holder, key, delta)
    for holder, key, _value in list(_walk_values(value)):
        slot = _ItemSlot(holder, key)
        found = slot.read()
        if found.lines or found.eol:
            col = max(0, found.col + delta)
            slot.write(replace(found, col=col, lines=_shift_comment_lines(found.lines, delta)))


def _shift_position(node: CommentedMap | CommentedSeq, key: Any, delta: int) -> None:
    """Keep the recorded columns true to where a moved entry will be written (`_eol_column` reads them)."""
    data = node.lc.data
    position = data.get(key) if isinstance(data, dict) else None
    if position is None:
        return
    data[key] = [p + delta if i % 2 and isinstance(p, int) else p for i, p in enumerate(position)]


def _reindent(moved: _Moved, delta: int) -> None:
    head = moved.head
    moved.head = replace(head, col=max(0, head.col + delta), lines=_shift_comment_lines(head.lines, delta))
    moved.lead = _shift_comment_lines(moved.lead, delta)
    _reindent_tree(moved.value, delta)


# ------------------------------------------------------------------------------------------------------------
# The rewrites.


@dataclass
class _Context:
    offset: int  # first line of this document in the whole text
    changes: list[Change] = field(default_factory=list)

    def add(self, line: int, message: str) -> None:
        self.changes.append(Change(line, message))

    def key_line(self, node: Any, key: Any) -> int:
        try:
            pos = node.lc.key(key) if isinstance(node, CommentedMap) else node.lc.item(key)
            return int(pos[0]) + self.offset
        except (AttributeError, KeyError, TypeError, IndexError):
            return self.node_line(node)

    def value_line(self, node: Any, key: Any) -> int:
        try:
            pos = node.lc.value(key) if isinstance(node, CommentedMap) else node.lc.item(key)
            return int(pos[0]) + self.offset
        except (AttributeError, KeyError, TypeError, IndexError):
            return self.key_line(node, key)

    def node_line(self, node: Any) -> int:
        try:
            return int(node.lc.line) + self.offset
        except (AttributeError, TypeError):
            return self.offset


def _is_sweep(root: CommentedMap) -> bool:
    return root.get("type") in ("sweep_job", "sweep") or (
        "type" not in root and isinstance(root.get("trial"), CommentedMap)
    )


@dataclass(frozen=True)
class _Where:
    """Message prefixes: `old` where a job's keys were, `top` where GA wants compute, inputs and outputs."""

    old: str = ""
    top: str = ""


def _migrate_job(job: CommentedMap, ctx: _Context, where: _Where, header: _Slot) -> None:
    """A command job, or a 2021 sweep's `trial`."""
    if job.get("type") == "command_job":
        ctx.add(ctx.value_line(job, "type"), f"`{where.old}type: command_job` → `{where.old}type: command`")
        _set(job, "type", _same_style(job["type"], "command"))
    _migrate_code(job, ctx, where.old)
    _migrate_environment(job, ctx, where.old)
    _migrate_compute(job, ctx, where, header, (job, header))
    _migrate_data(job, ctx, where, "inputs")
    _migrate_data(job, ctx, where, "outputs")
    _migrate_distribution(job, ctx, where.old)


def _strip_file(value: Any) -> Any:
    """`file:environment.yml` → `environment.yml`; `file://…` URIs are left alone."""
    if isinstance(value, str) and value.startswith("file:") and not value.startswith("file://"):
        return _same_style(value, value[len("file:") :])
    return value


def _strip_file_at(node: CommentedMap, key: str, ctx: _Context, label: str) -> None:
    old = node.get(key)
    new = _strip_file(old)
    if new is not old:
        ctx.add(ctx.value_line(node, key), f"`{label}: {old}` → `{label}: {new}` (no `file:` prefix)")
        _set(node, key, new)


def _migrate_code(job: CommentedMap, ctx: _Context, where: str) -> None:
    code = job.get("code")
    if isinstance(code, CommentedMap) and "local_path" in code:
        old = code["local_path"]
        new = _strip_file(old)
        dropped = [str(k) for k in code if k != "local_path"]
        note = f" (dropped `{'`, `'.join(dropped)}`: GA has no such keys)" if dropped else ""
        line = ctx.key_line(code, "local_path")
        ctx.add(line, f"`{where}code.local_path: {old}` → `{where}code: {new}`{note}")
        _collapse(job, "code", new)
    elif isinstance(code, str):
        _strip_file_at(job, "code", ctx, f"{where}code")


def _migrate_environment(job: CommentedMap, ctx: _Context, where: str) -> None:
    env = job.get("environment")
    if not isinstance(env, CommentedMap):
        return
    _strip_file_at(env, "conda_file", ctx, f"{where}environment.conda_file")
    docker = env.get("docker")
    if not isinstance(docker, CommentedMap) or not docker:
        return
    for key in docker:
        old, new = _show(docker[key]), _show(docker[key])
        if key == "build" and isinstance(docker[key], CommentedMap):
            old = f"{{dockerfile: {_show(docker[key].get('dockerfile'))}}}"
            _migrate_build(docker[key])
            new = _show(docker[key])
        line = ctx.key_line(docker, key)
        ctx.add(line, f"`{where}environment.docker.{key}: {old}` → `{where}environment.{key}: {new}`")
    # Every child of `docker` becomes a sibling in its place: the first one replaces `docker` itself.
    env_slot = _ItemSlot(job, "environment")
    at = list(env).index("docker")
    for offset, key in enumerate(list(docker)[1:], start=1):
        delta = _column_of(env, "docker") - _column_of(docker, key)
        moved = _detach(docker, key, _ItemSlot(env, "docker"))
        _reindent(moved, delta)
        _insert(env, at + offset, moved, env_slot)
    _replace_by_child(env, "docker", env_slot)


def _migrate_build(build: CommentedMap) -> None:
    """2021 `dockerfile: file:DOCKERFILE` names a file next to the job; GA names a context folder + a file."""
    if "dockerfile" not in build:
        return
    _set(build, "dockerfile", _strip_file(build["dockerfile"]))
    _rename(build, "dockerfile", "dockerfile_path")
    if "path" not in build:
        build.insert(0, "path", ".")  # GA wants a build context: the job's folder, which holds the Dockerfile


def _migrate_compute(
    job: CommentedMap, ctx: _Context, where: _Where, header: _Slot, home: tuple[CommentedMap, _Slot]
) -> None:
    """`compute: {target: X, instance_count: N}` → `compute: X`, and `resources: {instance_count: N}` go to
    `home` (the job itself, or a sweep's trial)."""
    compute = job.get("compute")
    if not isinstance(compute, CommentedMap):
        return
    old = f"{where.old}compute"
    owner, owner_header = home
    resources_label = f"{where.old}resources" if owner is job else "trial.resources"
    extras: list[_Moved] = []
    for key in [k for k in compute if k != "target"]:
        shown = _show(compute[key])
        ctx.add(ctx.key_line(compute, key), f"`{old}.{key}: {shown}` → `{resources_label}.{key}: {shown}`")
        extras.append(_detach(compute, key, _ItemSlot(job, "compute")))
    line = ctx.node_line(compute)
    if "target" in compute:
        target = compute["target"]
        ctx.add(ctx.key_line(compute, "target"), f"`{old}.target: {target}` → `{where.top}compute: {target}`")
        _collapse(job, "compute", target)
    else:
        ctx.add(line, f"`{old}` without a `target` removed (GA names the compute directly)")
        _remove(job, "compute", header)
    if extras:
        after = "compute" if owner is job and "compute" in job else None
        _add_resources(owner, owner_header, after, extras, ctx, line)


def _add_resources(
    owner: CommentedMap, header: _Slot, after: str | None, moved: list[_Moved], ctx: _Context, line: int
) -> None:
    resources = owner.get("resources")
    if resources is None:
        at = list(owner).index(after) + 1 if after is not None else len(owner)
        _insert(owner, at, _Moved("resources", CommentedMap()), header)
        resources = owner["resources"]
    if not isinstance(resources, CommentedMap):
        ctx.add(line, "`resources` is not a mapping, so the settings from `compute` were dropped")
        return
    for item in moved:
        if item.key not in resources:
            _insert(resources, len(resources), item, _ItemSlot(owner, "resources"))
        elif resources[item.key] != item.value:
            ctx.add(
                line,
                f"kept `resources.{item.key}: {_show(resources[item.key])}` and dropped "
                f"`compute.{item.key}: {_show(item.value)}`, which contradicts it",
            )


def _migrate_data(job: CommentedMap, ctx: _Context, where: _Where, kind: str) -> None:
    """2021 `{data: {path|local_path: P}, mode: mount}` → `{type: uri_…, path: P, mode: ro_mount}`."""
    entries = job.get(kind)
    if not isinstance(entries, CommentedMap):
        return
    for name in list(entries):
        if isinstance(entries[name], CommentedMap):
            labels = (f"{where.old}{kind}.{name}", f"{where.top}{kind}.{name}")
            _migrate_data_spec(entries, name, ctx, labels, kind)


def _migrate_data_spec(entries: CommentedMap, name: Any, ctx: _Context, labels: tuple[str, str], kind: str) -> None:
    spec: CommentedMap = entries[name]
    old, new = labels
    if "data" in spec:
        path, note = _data_path(spec["data"])
        if path is not None:
            line = ctx.key_line(spec, "data")
            was = _show(spec["data"])
            _collapse(spec, "data", path)
            _rename(spec, "data", "path")
            shown = f"path: {path}"
            if kind == "inputs" and "type" not in spec:
                kind_of = _input_type(str(path))
                _insert(spec, 0, _Moved("type", kind_of), _ItemSlot(entries, name))
                shown = f"type: {kind_of}, {shown}"
            ctx.add(line, f"`{old}.data: {was}` → `{new}: {{{shown}}}`{note}")
    elif "path" in spec:
        _strip_file_at(spec, "path", ctx, f"{old}.path")
    mode = spec.get("mode")
    if mode == "mount":
        mounted = "ro_mount" if kind == "inputs" else "rw_mount"
        ctx.add(ctx.value_line(spec, "mode"), f"`{old}.mode: mount` → `{new}.mode: {mounted}`")
        _set(spec, "mode", _same_style(mode, mounted))


def _data_path(data: Any) -> tuple[Any, str]:
    """The GA `path` for a 2021 `data` value (None for a form we do not know), and a note for the message."""
    asset_note = " (a registered data asset: check that the type matches it)"
    if isinstance(data, str):
        return _strip_file(data), asset_note if data.startswith("azureml:") else ""
    if not isinstance(data, CommentedMap):
        return None, ""
    path = data.get("path", data.get("local_path"))
    datastore = data.get("datastore")
    if isinstance(datastore, str) and isinstance(path, str):
        store = datastore.removeprefix("azureml:")
        return f"azureml://datastores/{store}/paths/{path.lstrip('/')}", ""
    if isinstance(path, str):
        return _strip_file(path), ""
    name = data.get("name")
    if isinstance(name, str):
        version = data.get("version")
        return (f"azureml:{name}:{version}" if version is not None else f"azureml:{name}@latest"), asset_note
    return None, ""


def _input_type(path: str) -> str:
    """`uri_file` when the last path segment has a file extension (iris.csv), else `uri_folder`."""
    segment = posixpath.basename((urlsplit(path).path if "://" in path else path).rstrip("/"))
    return "uri_file" if posixpath.splitext(segment)[1] else "uri_folder"


def _migrate_distribution(job: CommentedMap, ctx: _Context, where: str) -> None:
    """2021 `process_count` was the TOTAL number of processes; GA counts them per instance."""
    dist = job.get("distribution")
    if not isinstance(dist, CommentedMap) or "process_count" not in dist:
        return
    if dist.get("type") not in ("pytorch", "mpi"):
        return
    label = f"{where}distribution"
    total = dist["process_count"]
    line = ctx.key_line(dist, "process_count")
    if "process_count_per_instance" in dist:
        ctx.add(line, f"`{label}.process_count` removed: `process_count_per_instance` is already set")
        _remove(dist, "process_count", _ItemSlot(job, "distribution"))
        return
    resources = job.get("resources")
    instances = resources.get("instance_count", 1) if isinstance(resources, CommentedMap) else 1
    if not _is_int(total) or not _is_int(instances) or instances < 1:
        ctx.add(
            line,
            f"`{label}.process_count` → `{label}.process_count_per_instance`, value unchanged: it was the "
            "total over all instances, divide it by the instance count",
        )
        _rename(dist, "process_count", "process_count_per_instance")
        return
    per_instance = math.ceil(total / instances)
    plural = "s" if instances != 1 else ""
    ctx.add(
        line,
        f"`{label}.process_count: {total}` (in total) → `{label}.process_count_per_instance: {per_instance}` "
        f"(on each of {instances} instance{plural})",
    )
    if total % instances:
        ctx.add(
            line,
            f"`{label}.process_count: {total}` does not divide over {instances} instances: rounded up to "
            f"{per_instance} per instance, so {per_instance * instances} processes run instead of {total}",
        )
    _set(dist, "process_count", per_instance)
    _rename(dist, "process_count", "process_count_per_instance")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_LIMIT_KEYS = ("max_total_trials", "max_concurrent_trials", "timeout_minutes")


def _migrate_sweep(root: CommentedMap, ctx: _Context) -> None:
    header = _RootHeader(root)
    if root.get("type") == "sweep_job":
        ctx.add(ctx.value_line(root, "type"), "`type: sweep_job` → `type: sweep`")
        _set(root, "type", _same_style(root["type"], "sweep"))
    if "algorithm" in root:
        _migrate_algorithm(root, ctx, header)
    trial = root.get("trial")
    if isinstance(trial, CommentedMap):
        trial_slot = _ItemSlot(root, "trial")
        _migrate_job(trial, ctx, _Where("trial.", ""), trial_slot)
        if isinstance(root.get("compute"), CommentedMap):
            _migrate_compute(root, ctx, _Where(), header, (trial, trial_slot))
        after = _hoist(root, trial, "inputs", "trial", ctx)
        after = _hoist(root, trial, "outputs", after, ctx)
        _hoist(root, trial, "compute", after, ctx)
    _migrate_data(root, ctx, _Where(), "inputs")
    _migrate_data(root, ctx, _Where(), "outputs")
    _migrate_limits(root, ctx, header)


def _migrate_algorithm(root: CommentedMap, ctx: _Context, header: _Slot) -> None:
    line = ctx.key_line(root, "algorithm")
    if "sampling_algorithm" in root:
        ctx.add(line, "`algorithm` removed: `sampling_algorithm` is already set")
        _remove(root, "algorithm", header)
        return
    shown = _show(root["algorithm"])
    ctx.add(line, f"`algorithm: {shown}` → `sampling_algorithm: {shown}`")
    _rename(root, "algorithm", "sampling_algorithm")


def _hoist(root: CommentedMap, trial: CommentedMap, key: str, after: str, ctx: _Context) -> str:
    """Move `trial.<key>` to the sweep's top level, where GA keeps inputs, outputs and compute.

    Returns the key that the next hoisted entry follows, so that they keep their order right after `trial`.
    """
    if key not in trial:
        return after
    line = ctx.key_line(trial, key)
    trial_slot = _ItemSlot(root, "trial")
    existing = root.get(key)
    if existing is None:
        ctx.add(line, f"`trial.{key}` → `{key}` (a sweep takes its {key} at the top level)")
        delta = _column_of(root, "trial") - _column_of(trial, key)
        moved = _detach(trial, key, trial_slot)
        _reindent(moved, delta)
        _insert(root, list(root).index(after) + 1, moved, _RootHeader(root))
        return key
    if isinstance(existing, CommentedMap) and isinstance(trial[key], CommentedMap):
        ctx.add(line, f"`trial.{key}` merged into the top-level `{key}`")
        inner = trial[key]
        for name in list(inner):
            if name in existing:
                ctx.add(ctx.key_line(inner, name), f"kept `{key}.{name}`, dropped `trial.{key}.{name}`")
                continue
            moved = _detach(inner, name, _ItemSlot(trial, key))
            _insert(existing, len(existing), moved, _ItemSlot(root, key))
    elif existing != trial[key]:
        ctx.add(line, f"kept `{key}: {_show(existing)}`, dropped `trial.{key}: {_show(trial[key])}`")
    else:
        ctx.add(line, f"`trial.{key}` removed: the same `{key}` is set at the top level")
    _remove(trial, key, trial_slot)
    return after


def _migrate_limits(root: CommentedMap, ctx: _Context, header: _Slot) -> None:
    """Top-level 2021 trial limits → one `limits:` mapping where the first of them was."""
    present = [k for k in root if k in _LIMIT_KEYS]
    if not present:
        return
    at = list(root).index(present[0])
    moved: list[_Moved] = []
    for key in present:
        value = root[key]
        line = ctx.key_line(root, key)
        item = _detach(root, key, header)
        if key == "timeout_minutes" and isinstance(value, (int, float)) and not isinstance(value, bool):
            seconds = round(value * 60)
            ctx.add(line, f"`timeout_minutes: {value}` → `limits.timeout: {seconds}` (seconds)")
            item = replace(item, key="timeout", value=seconds)
        else:
            ctx.add(line, f"`{key}: {_show(value)}` → `limits.{key}: {_show(value)}`")
        _reindent(item, 2)
        moved.append(item)
    limits = root.get("limits")
    if limits is None:
        _insert(root, at, _Moved("limits", CommentedMap()), header)
        limits = root["limits"]
    if not isinstance(limits, CommentedMap):
        ctx.add(ctx.key_line(root, "limits"), "`limits` is not a mapping: the sweep limits were dropped")
        return
    for item in moved:
        if item.key in limits:
            ctx.add(ctx.key_line(limits, item.key), f"kept `limits.{item.key}`, dropped the top-level one")
            continue
        _insert(limits, len(limits), item, _ItemSlot(root, "limits"))


# ------------------------------------------------------------------------------------------------------------
# `{inputs.x}` → `${{inputs.x}}` in every string value.

# A lone brace pair around a 2021 reference. `${{inputs.x}}`, `{{inputs.x}}` and `${inputs.x}` are left alone,
# and so is any other brace (`{}` in Python code, `${VAR}`).
_OLD_EXPRESSION = re.compile(r"(?<![{$])\{\s*((?:inputs|outputs|search_space)\.[A-Za-z_][\w.-]*?)\s*\}(?!\})")


def _rewrite_expressions(root: CommentedMap, ctx: _Context) -> None:
    for holder, key, value in list(_walk_values(root)):
        if not isinstance(value, str):
            continue
        matches = list(_OLD_EXPRESSION.finditer(value))
        if not matches:
            continue
        for match in matches:
            new = "${{" + match.group(1) + "}}"
            ctx.add(_expression_line(holder, key, value, match.start(), ctx), f"`{match.group(0)}` → `{new}`")
        if isinstance(holder, CommentedMap):
            _set(holder, key, _substitute(value, matches))
        else:
            holder[key] = _substitute(value, matches)


def _substitute(value: str, matches: list[re.Match[str]]) -> Any:
    pieces: list[str] = []
    spans: list[tuple[int, int, int]] = []  # (start, end, growth) of each replacement in the old text
    last = 0
    for match in matches:
        new = "${{" + match.group(1) + "}}"
        pieces += [value[last : match.start()], new]
        spans.append((match.start(), match.end(), len(new) - len(match.group(0))))
        last = match.end()
    pieces.append(value[last:])

    def shift(pos: int) -> int | None:
        growth = 0
        for start, end, grew in spans:
            if start <= pos < end:
                return None  # a fold inside a replaced reference cannot be kept
            if end <= pos:
                growth += grew
        return pos + growth

    return _retext(value, "".join(pieces), shift)


def _expression_line(holder: Any, key: Any, value: str, pos: int, ctx: _Context) -> int:
    """The source line of `value[pos]`: exact in block scalars, the value's first line otherwise."""
    line = ctx.value_line(holder, key)
    if isinstance(value, LiteralScalarString):
        return line + 1 + value.count("\n", 0, pos)
    if isinstance(value, FoldedScalarString):
        folds = sum(1 for p in getattr(value, "fold_pos", []) if p < pos)
        return line + 1 + folds + 2 * value.count("\n", 0, pos)  # a kept break in `>` is a blank source line
    return line
