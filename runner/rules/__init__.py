"""Validation rules beyond the schema. Each rule is a function of a RuleContext that yields diagnostics."""

from __future__ import annotations

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

    @property
    def job(self) -> str | None:
        return self.kind.job

    def source(self, node: ScalarNode) -> tuple[str, int, int]:
        """The scalar's text as written in the file, and where it starts (so offsets map back to positions)."""
        start, end = node.start_mark, node.end_mark
        if start.index < 0:  # a value given with --set: no text in the file
            return node.value, start.line, start.column
        return self.document.text[start.index:end.index], start.line, start.column

    def span(self, node: ScalarNode, begin: int, finish: int) -> Range:
        """Range of [begin, finish) code-point offsets inside the scalar's source text."""
        text, line, column = self.source(node)
        return Range(_advance(text, line, column, begin), _advance(text, line, column, finish))


def _advance(text: str, line: int, column: int, offset: int) -> Position:
    before = text[:offset]
    newlines = before.count("\n")
    if newlines == 0:
        return Position(line, column + offset)
    return Position(line + newlines, len(before) - before.rfind("\n") - 1)


Rule = Callable[[RuleContext], Iterable[Diagnostic]]


def all_rules() -> list[Rule]:
    from mljob.runner.rules import counts, environment, paths, references, sweep

    return [references.check, paths.check, counts.check, sweep.check, environment.check]


def is_number(node: Node | None) -> bool:
    return isinstance(node, ScalarNode) and node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
