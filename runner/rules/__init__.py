"""Validation rules beyond the schema. Each rule is a function of a RuleContext that yields diagnostics."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mljob.runner.anatomy import Anatomy
from mljob.runner.diagnostics import Diagnostic, Position, Range
from mljob.runner.document import Document, MappingNode, Node, ScalarNode
from mljob.runner.kinds import Kind


@dataclass
class RuleContext:
    document: Document
    root: MappingNode
    kind: Kind
    parts: Anatomy
    folder: Path | None  # the job file's folder; None for unsaved text (path rules then stay quiet)
    settings: dict[str, object] = field(default_factory=dict)
    _breaks: dict[int, list[int]] = field(default_factory=dict)
    _sources: dict[int, str] = field(default_factory=dict)

    @property
    def job(self) -> str | None:
        return self.kind.job

    def source(self, node: ScalarNode) -> tuple[str, int, int]:
        """The scalar's text as written in the file, and where it starts (so offsets map back to positions)."""
        start, end = node.start_mark, node.end_mark
        if start.index < 0:  # a value given with --set: no text in the file
            return node.value, start.line, start.column
        text = self._sources.get(id(node))
        if text is None:
            text = self._sources[id(node)] = self.document.text[start.index:end.index]
        return text, start.line, start.column

    def span(self, node: ScalarNode, begin: int, finish: int) -> Range:
        """Range of [begin, finish) code-point offsets inside the scalar's source text."""
        text, line, column = self.source(node)
        breaks = self._breaks.get(id(node))
        if breaks is None:
            # A 400-line command has hundreds of references: index its line breaks once, not per reference.
            breaks = self._breaks[id(node)] = [m.start() for m in _NEWLINE.finditer(text)]
        return Range(_advance(breaks, line, column, begin), _advance(breaks, line, column, finish))


def _advance(breaks: list[int], line: int, column: int, offset: int) -> Position:
    newlines = bisect.bisect_left(breaks, offset)
    if newlines == 0:
        return Position(line, column + offset)
    return Position(line + newlines, offset - breaks[newlines - 1] - 1)


_NEWLINE = re.compile("\n")

Rule = Callable[[RuleContext], Iterable[Diagnostic]]


def all_rules() -> list[Rule]:
    from mljob.runner.rules import counts, environment, paths, references, sweep

    return [references.check, paths.check, counts.check, sweep.check, environment.check]


def is_number(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
