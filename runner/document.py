"""Text → document: YAML nodes that know where every key and value sits.

libyaml (PyYAML's C loader) composes the node graph with marks: ~10x faster than ruamel's round trip, which is kept
for edits that must preserve comments (see migrate.py). Problems with the text itself (not UTF-8, binary, too large,
syntax errors, duplicate keys, alias bombs, tabs) become diagnostics here; nothing above this module sees them raw.
"""

from __future__ import annotations

import codecs
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mljob.runner.diagnostics import Diagnostic, Position, Range, Severity

# Job files are a few kB; a 3,000-line one is ~100 kB. Anything far larger is not a job file, and parsing it would
# only cost the editor memory and time.
MAX_BYTES = 4 * 1024 * 1024
# An alias bomb is small as a graph and enormous when expanded; bound the expanded size, not the text.
MAX_EXPANDED_NODES = 200_000

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MERGE = "tag:yaml.org,2002:merge"

Node = yaml.Node
MappingNode = yaml.MappingNode
SequenceNode = yaml.SequenceNode
ScalarNode = yaml.ScalarNode


@dataclass(slots=True)
class YamlDocument:
    """One `---` document of a file; `root` is None when it is empty or unusable."""

    root: Node | None
    number: int


@dataclass(slots=True)
class Document:
    text: str
    path: Path | None = None
    docs: list[YamlDocument] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    _lines: list[str] | None = None
    _ascii: bool | None = None

    @property
    def lines(self) -> list[str]:
        if self._lines is None:
            # Only \n (and \r\n) end a line, as for libyaml and editors; str.splitlines would also split on
            # form feeds and U+2028 inside values and shift every position after them.
            self._lines = [line[:-1] if line.endswith("\r") else line for line in self.text.split("\n")]
        return self._lines

    @property
    def folder(self) -> Path | None:
        return self.path.parent if self.path is not None else None

    def line_text(self, line: int) -> str:
        lines = self.lines
        return lines[line] if 0 <= line < len(lines) else ""

    def _is_ascii(self) -> bool:
        if self._ascii is None:
            self._ascii = self.text.isascii()
        return self._ascii

    def utf16_column(self, line: int, column: int) -> int:
        """Code-point column → UTF-16 column (what LSP positions count)."""
        if self._is_ascii() or column <= 0:
            return column
        prefix = self.line_text(line)[:column]
        return column + sum(1 for ch in prefix if ord(ch) > 0xFFFF)

    def from_utf16(self, line: int, column16: int) -> int:
        """UTF-16 column from the editor → code-point column."""
        if self._is_ascii() or column16 <= 0:
            return column16
        units = 0
        for i, ch in enumerate(self.line_text(line)):
            if units >= column16:
                return i
            units += 2 if ord(ch) > 0xFFFF else 1
        return len(self.line_text(line)) + max(0, column16 - units)

    def offset(self, line: int, column: int) -> int:
        """Code-point offset into `text` of a position."""
        total = 0
        for i, text in enumerate(self.text.splitlines(keepends=True)):
            if i == line:
                return total + min(column, len(text.rstrip("\r\n")))
            total += len(text)
        return len(self.text)


# --- positions of nodes ------------------------------------------------------------------------------------------


def node_range(node: Node) -> Range:
    s, e = node.start_mark, node.end_mark
    if e.line > s.line and e.column == 0 and not isinstance(node, ScalarNode):
        # Block collections end at the start of the next line; the editor wants them to end on their last line.
        return Range(Position(s.line, s.column), Position(s.line, s.column))
    return Range(Position(s.line, s.column), Position(e.line, e.column))


def start(node: Node) -> Position:
    return Position(node.start_mark.line, node.start_mark.column)


# --- reading nodes ------------------------------------------------------------------------------------------------


def mapping_items(node: MappingNode) -> Iterator[tuple[ScalarNode, Node]]:
    """Key/value pairs with string keys, merge keys (`<<: *base`) expanded; later keys win as in PyYAML."""
    for key, value in node.value:
        if key.tag == MERGE:
            sources = value.value if isinstance(value, SequenceNode) else [value]
            for source in sources:
                if isinstance(source, MappingNode):
                    yield from mapping_items(source)
            continue
        if isinstance(key, ScalarNode):
            yield key, value


def get(node: Node | None, *path: str) -> Node | None:
    """The value node at a key path, or None."""
    for name in path:
        if not isinstance(node, MappingNode):
            return None
        found = None
        merged = False
        for key, value in node.value:
            if key.value == name and key.tag != MERGE:
                found = value
            elif key.tag == MERGE:
                merged = True
        if found is None and merged:
            for key, value in mapping_items(node):
                if key.value == name:
                    found = value
        node = found
    return node


def as_dict(node: Node | None) -> dict[str, Node]:
    """A mapping's values by key (later duplicates win), for rules that look up many names."""
    if not isinstance(node, MappingNode):
        return {}
    return {str(key.value): value for key, value in mapping_items(node)}


def get_key(node: Node | None, name: str) -> ScalarNode | None:
    if not isinstance(node, MappingNode):
        return None
    found = None
    for key, _ in mapping_items(node):
        if key.value == name:
            found = key
    return found


def scalar(node: Node | None) -> str | None:
    """The text of a scalar node (None for anything else)."""
    return node.value if isinstance(node, ScalarNode) else None


def is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == NULL)


_constructor = yaml.constructor.SafeConstructor()


def scalar_value(node: ScalarNode) -> object:
    """The Python value of a scalar as YAML 1.1 resolves it (int, float, bool, None, str, date)."""
    if node.tag == STR:
        return node.value
    try:
        return _constructor.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError):
        return node.value


def number(node: Node | None) -> int | float | None:
    if isinstance(node, ScalarNode) and node.tag in (INT, FLOAT):
        value = scalar_value(node)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    return None


def to_python(node: Node | None) -> object:
    """Plain Python data for a node (the job model's input); aliases are shared, not copied."""
    if node is None:
        return None
    return yaml.constructor.SafeConstructor().construct_document(node)


# --- parsing -------------------------------------------------------------------------------------------------------


def _diag(line: int, column: int, code: str, message: str, end_column: int | None = None) -> Diagnostic:
    return Diagnostic(Range.at(line, column, line, end_column if end_column is not None else column + 1),
                      Severity.ERROR, code, message)


def decode(data: bytes, path: Path | None = None) -> tuple[str | None, Diagnostic | None]:
    """Bytes → text, or one diagnostic that says what is wrong with the file and what to do."""
    if len(data) > MAX_BYTES:
        return None, _too_large(len(data))
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), None
        except UnicodeDecodeError:
            return None, _diag(0, 0, "MLJ001",
                               "The file starts with a UTF-16 mark but is not UTF-16; save it as UTF-8.")
    if b"\x00" in data[:8192]:
        return None, _diag(0, 0, "MLJ001", "This is a binary file, not YAML text; open the job's .yml file instead.")
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as err:
        before = data[: err.start]
        line = before.count(b"\n")
        column = len(before[before.rfind(b"\n") + 1:].decode("utf-8", "replace"))
        return None, _diag(line, column, "MLJ001",
                           f"The file is not valid UTF-8 (byte 0x{data[err.start]:02x} at line {line + 1}, "
                           f"column {column + 1}); save it as UTF-8.")


def _too_large(size: int) -> Diagnostic:
    return _diag(0, 0, "MLJ001", f"The file is {size / 2**20:.1f} MiB; job files are at most "
                 f"{MAX_BYTES // (1024 * 1024)} MiB. Is this the right file?")


def _not_a_file(mode: int) -> Diagnostic:
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    return _diag(0, 0, "MLJ001", f"This is {kind}, not a job file: only regular files are read (reading this one "
                 "could wait forever).")


def read_text(path: Path) -> tuple[str | None, Diagnostic | None]:
    """A job file's text, read within the limits every reader of files shares (`mljob validate`, `mljob migrate`,
    and `mljob run`/`job create` through validation): a regular file only — a FIFO, a device, a socket or a folder
    is refused from its `stat`, without being opened (opening a FIFO waits for a writer, reading a device may never
    end) — and never more than MAX_BYTES of it read; then decoded as `decode` does. Returns the text, or None and
    the one MLJ001 diagnostic that says why not."""
    try:
        info = os.stat(path)
    except OSError as err:
        return None, _diag(0, 0, "MLJ001", f"Cannot read the file: {err.strerror or err}.")
    if not stat.S_ISREG(info.st_mode):
        return None, _not_a_file(info.st_mode)
    try:
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening it does not wait for a writer.
        handle = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC), "rb")
    except OSError as err:
        return None, _diag(0, 0, "MLJ001", f"Cannot read the file: {err.strerror or err}.")
    with handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, _not_a_file(info.st_mode)
        try:
            data = handle.read(MAX_BYTES + 1)
        except OSError as err:
            return None, _diag(0, 0, "MLJ001", f"Cannot read the file: {err.strerror or err}.")
    if len(data) > MAX_BYTES:
        return None, _too_large(max(info.st_size, len(data)))
    return decode(data, path)


def read(path: Path) -> Document:
    """Read and parse a job file from disk (`read_text`'s limits)."""
    text, problem = read_text(path)
    if text is None:
        doc = Document("", path)
        doc.diagnostics.append(problem)  # type: ignore[arg-type]
        return doc
    return parse(text, path)


def alias_problem(text: str) -> Diagnostic | None:
    """The MLJ005 diagnostic `parse` gives `text` (aliases that expand to more than MAX_EXPANDED_NODES values, or
    that refer to themselves), if any: a reader that expands aliases (ruamel's round trip in migrate.py walks the
    tree it loads) asks this first. Counted on libyaml's node graph, each shared node once: bounded by the text."""
    if "*" not in text:  # no alias, nothing to expand
        return None
    return next((d for d in parse(text).diagnostics if d.code == "MLJ005"), None)


_TAB_PROBLEM = re.compile(r"found character '\\t' that cannot start any token|found a tab character")


def _syntax_diagnostic(err: yaml.MarkedYAMLError, text: str) -> Diagnostic:
    mark = err.problem_mark or err.context_mark
    at_end = mark is not None and mark.index >= len(text.rstrip())
    if at_end and err.context_mark is not None:
        # "Unexpected end of file" helps nobody; the bracket or quote that was never closed does.
        mark = err.context_mark
    line, column = (mark.line, mark.column) if mark is not None else (0, 0)
    problem = (err.problem or "invalid YAML").strip()
    if at_end and err.context_mark is not None:
        problem += " before the end of the file; what starts here is never closed"
    lines = text.splitlines()
    line_text = lines[line] if 0 <= line < len(lines) else ""
    if _TAB_PROBLEM.search(problem) or "\t" in line_text[: max(column, 0) + 1]:
        col = line_text.find("\t")
        return _diag(line, max(col, 0), "MLJ006", "Tab used for indentation: YAML allows only spaces here. "
                     "Replace the tab with spaces.")
    hint = ""
    if "mapping values are not allowed" in problem:
        hint = " A value that contains ': ' needs quotes, or the line above is missing its indentation."
    elif "could not find expected ':'" in problem:
        hint = " Every key needs a colon and a space after it (`key: value`)."
    elif "expected <block end>" in problem:
        hint = " Check the indentation: this line does not line up with its siblings."
    elif "found undefined alias" in problem:
        hint = " Define the anchor (`&name`) before using `*name`."
    elif "found unknown escape character" in problem:
        hint = " Use single quotes for strings with backslashes, or double the backslash."
    context = f" ({err.context})" if err.context else ""
    return _diag(line, column, "MLJ002", f"YAML syntax error: {problem}{context}.{hint}")


def parse(text: str, path: Path | None = None) -> Document:
    """Compose every document of `text`; syntax problems become diagnostics, never exceptions."""
    if text.startswith("\ufeff"):
        # Editors do not count a BOM as a character of the first line; neither do we.
        text = text[1:]
    doc = Document(text, path)
    try:
        for number, root in enumerate(yaml.compose_all(text, Loader=yaml.CSafeLoader)):
            doc.docs.append(YamlDocument(root, number))
    except yaml.MarkedYAMLError as err:
        doc.diagnostics.append(_syntax_diagnostic(err, text))
    except (yaml.YAMLError, RecursionError, ValueError) as err:
        doc.diagnostics.append(_diag(0, 0, "MLJ002", f"YAML cannot be read: {err}"))
    has_anchors = "&" in text
    for yaml_doc in doc.docs:
        if has_anchors:
            _check_structure(yaml_doc, doc.diagnostics)
        elif yaml_doc.root is not None:
            _check_duplicates(yaml_doc.root, doc.diagnostics)
    if not doc.docs and not doc.diagnostics:
        doc.docs.append(YamlDocument(None, 0))
    return doc


def _duplicate(key: ScalarNode, first: ScalarNode) -> Diagnostic:
    return Diagnostic(node_range(key), Severity.ERROR, "MLJ004",
                      f"Duplicate key `{key.value}` (first defined on line {first.start_mark.line + 1}); the later "
                      "value would silently win. Remove one of them.", {"first_line": first.start_mark.line})


def _check_duplicates(root: Node, out: list[Diagnostic]) -> None:
    """Without anchors there are no aliases or merges: a plain walk for duplicate keys is enough."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, MappingNode):
            pairs = node.value
            # A complex key (`{a: 1}: x`, `[a]: x`) is never a job's key and has no hashable value: not compared.
            keys = [k.value for k, _ in pairs if isinstance(k, ScalarNode)]
            if len(set(keys)) != len(keys):
                seen: dict[str, ScalarNode] = {}
                for key, _ in pairs:
                    if not isinstance(key, ScalarNode):
                        continue
                    if key.value in seen:
                        out.append(_duplicate(key, seen[key.value]))
                    else:
                        seen[key.value] = key
            stack.extend(v for _, v in pairs if not isinstance(v, ScalarNode))
        elif isinstance(node, SequenceNode):
            stack.extend(c for c in node.value if not isinstance(c, ScalarNode))


def _check_structure(yaml_doc: YamlDocument, out: list[Diagnostic]) -> None:
    """Duplicate keys and alias bombs, in one pass over the node graph (each shared node visited once)."""
    root = yaml_doc.root
    if root is None:
        return
    sizes: dict[int, int] = {}
    in_progress: set[int] = set()

    def size(node: Node) -> int:
        # Expanded size with memoisation: linear in the graph, exact for the tree it stands for.
        ident = id(node)
        known = sizes.get(ident)
        if known is not None:
            return known
        if ident in in_progress:
            raise _Recursive(node)
        if isinstance(node, ScalarNode):
            return 1
        in_progress.add(ident)
        total = 1
        if isinstance(node, MappingNode):
            seen: dict[str, ScalarNode] = {}
            for key, value in node.value:
                if key.tag == MERGE:
                    node.has_merge = True  # lets readers skip merge handling for the other 99.9% of mappings
                elif isinstance(key, ScalarNode):
                    first = seen.get(key.value)
                    if first is not None and key.start_mark.index >= 0:
                        out.append(_duplicate(key, first))
                    else:
                        seen[key.value] = key
                total += size(key) + size(value)
        else:
            for child in node.value:
                total += size(child)
        in_progress.discard(ident)
        sizes[ident] = total
        if total > MAX_EXPANDED_NODES:
            raise _TooLarge(node)
        return total

    try:
        size(root)
    except _Recursive as err:
        out.append(_diag(err.node.start_mark.line, err.node.start_mark.column, "MLJ005",
                         "An alias refers to the node that contains it (a recursive structure); a job file cannot "
                         "be infinite. Replace the alias with the values it should hold."))
        yaml_doc.root = None
    except _TooLarge as err:
        out.append(_diag(err.node.start_mark.line, err.node.start_mark.column, "MLJ005",
                         f"Aliases here expand to more than {MAX_EXPANDED_NODES:,} values (an alias bomb?). "
                         "Write the values out, or use fewer nested aliases."))
        yaml_doc.root = None
    except RecursionError:
        out.append(_diag(0, 0, "MLJ005", "The document nests too deeply to be a job file."))
        yaml_doc.root = None


class _Recursive(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node


class _TooLarge(Exception):
    def __init__(self, node: Node) -> None:
        self.node = node
