"""Open documents as the editor sees them: text by version, incremental edits in UTF-16 units, and the cached
judgement of the latest text (computed once per version, shared by every feature)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp
from mljob.runner.document import Document
from mljob.runner.validate import Analysis, Settings, validate_text


def uri_to_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None  # untitled buffers: path rules stay quiet
    return Path(unquote(parsed.path))


@dataclass
class OpenDocument:
    uri: str
    text: str
    version: int
    path: Path | None = None
    _lines: list[str] | None = None
    _positions: Document | None = None
    _analysis: tuple[int, int, Analysis] | None = None  # (version, settings generation, analysis)

    @staticmethod
    def open(uri: str, text: str, version: int) -> OpenDocument:
        return OpenDocument(uri, text, version, uri_to_path(uri))

    @property
    def lines(self) -> list[str]:
        """Lines without their line breaks (CRLF-safe); a trailing newline gives a last empty line."""
        if self._lines is None:
            self._lines = self.text.split("\n")
            self._lines = [line[:-1] if line.endswith("\r") else line for line in self._lines]
        return self._lines

    @property
    def positions(self) -> Document:
        """Position helpers (UTF-16 ↔ code points) over the current text; parses nothing."""
        if self._positions is None:
            self._positions = Document(self.text, self.path)
        return self._positions

    def line(self, number: int) -> str:
        lines = self.lines
        return lines[number] if 0 <= number < len(lines) else ""

    def column(self, line: int, character: int) -> int:
        """An LSP (UTF-16) character offset → code-point column."""
        return self.positions.from_utf16(line, character)

    def character(self, line: int, column: int) -> int:
        return self.positions.utf16_column(line, column)

    def _offset(self, position: lsp.Position) -> int:
        # Walk line starts once per edit; documents are small enough that this is microseconds.
        offset = 0
        text = self.text
        for _ in range(position.line):
            nl = text.find("\n", offset)
            if nl < 0:
                return len(text)
            offset = nl + 1
        end = text.find("\n", offset)
        line = text[offset: len(text) if end < 0 else end]
        units = 0
        for i, ch in enumerate(line):
            if units >= position.character:
                return offset + i
            units += 2 if ord(ch) > 0xFFFF else 1
        return offset + len(line.rstrip("\r")) if units < position.character else offset + len(line)

    def apply(self, changes: list[lsp.TextDocumentContentChangeEvent], version: int) -> None:
        for change in changes:
            if isinstance(change, lsp.TextDocumentContentChangePartial):
                start, end = self._offset(change.range.start), self._offset(change.range.end)
                self.text = self.text[:start] + change.text + self.text[end:]
            else:
                self.text = change.text
            self._lines = None
            self._positions = None
        self.version = version

    def analysis(self, settings: Settings, generation: int = 0) -> Analysis:
        """The judgement of the current text (same code as `mljob validate`), computed once per version."""
        cached = self._analysis
        if cached is not None and cached[0] == self.version and cached[1] == generation:
            return cached[2]
        analysis = validate_text(self.text, self.path, settings=settings)
        self._analysis = (self.version, generation, analysis)
        return analysis

    def remember(self, version: int, generation: int, analysis: Analysis) -> None:
        """Keep an analysis computed elsewhere (the diagnostics worker) if it is still current."""
        if version == self.version:
            self._analysis = (version, generation, analysis)


@dataclass
class Store:
    documents: dict[str, OpenDocument] = field(default_factory=dict)

    def get(self, uri: str) -> OpenDocument | None:
        return self.documents.get(uri)

    def open(self, item: lsp.TextDocumentItem) -> OpenDocument:
        doc = OpenDocument.open(item.uri, item.text, item.version)
        self.documents[item.uri] = doc
        return doc

    def close(self, uri: str) -> None:
        self.documents.pop(uri, None)
