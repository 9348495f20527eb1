"""What a judgement of a job file says: diagnostics with a range, a severity, a stable code and a fix."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    # Same numbers as LSP's DiagnosticSeverity, so the server passes them through unchanged.
    ERROR = 1
    WARNING = 2
    INFORMATION = 3
    HINT = 4

    @property
    def label(self) -> str:
        return {1: "error", 2: "warning", 3: "info", 4: "hint"}[int(self)]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """0-based line and column; the column counts code points (see Document.utf16_column for the editor)."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Range:
    start: Position
    end: Position

    @staticmethod
    def at(line: int, column: int, end_line: int | None = None, end_column: int | None = None) -> Range:
        return Range(
            Position(line, column),
            Position(line if end_line is None else end_line, column if end_column is None else end_column),
        )


@dataclass(frozen=True, slots=True)
class Diagnostic:
    range: Range
    severity: Severity
    code: str
    message: str
    # Machine-readable facts for quick fixes (e.g. {"replace_with": "sampling_algorithm"}); never shown.
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    tags: tuple[str, ...] = ()  # "deprecated" / "unnecessary", as LSP DiagnosticTag

    @property
    def line(self) -> int:
        return self.range.start.line

    @property
    def column(self) -> int:
        return self.range.start.column


# Every code the validator can emit, with one line on what it means. Codes are stable: tools filter on them.
CODES: dict[str, str] = {
    # MLJ0xx: the file itself
    "MLJ001": "the file cannot be read as text (binary, not UTF-8, or too large)",
    "MLJ002": "YAML syntax error",
    "MLJ003": "a document is not a mapping of keys",
    "MLJ004": "duplicate key",
    "MLJ005": "alias expansion too large (possible alias bomb)",
    "MLJ006": "tab used for indentation",
    # MLJ01x: what kind of file this is
    "MLJ010": "unknown `$schema` URL: validated by shape only",
    "MLJ011": "local `$schema` file cannot be read",
    "MLJ012": "job kind not recognised",
    # MLJ1xx: schema
    "MLJ101": "unknown key",
    "MLJ102": "missing required key",
    "MLJ103": "wrong type",
    "MLJ104": "value not allowed",
    "MLJ105": "value out of range",
    "MLJ106": "value does not match the expected format",
    "MLJ107": "unknown `type` in a union",
    "MLJ108": "too few or too many items",
    # MLJ2xx: rules beyond the schema
    "MLJ201": "expression names an input, output or search-space entry that is not defined",
    "MLJ202": "input or search-space entry never used",
    "MLJ203": "local path does not exist",
    "MLJ204": "local path leaves the job's folder",
    "MLJ205": "count must be at least 1",
    "MLJ206": "max_concurrent_trials is larger than max_total_trials",
    "MLJ207": "shm_size has the wrong format",
    "MLJ208": "search-space parameters cannot work",
    "MLJ209": "grid sampling over a continuous distribution",
    "MLJ210": "bayesian sampling does not support early termination",
    "MLJ211": "bandit policy needs slack_factor or slack_amount",
    "MLJ212": "truncation_percentage outside 1..99",
    "MLJ213": "search-space name is not an identifier",
    "MLJ214": "environment needs exactly one of image and build",
    "MLJ215": "objective's primary metric missing",
    "MLJ216": "malformed expression",
    "MLJ217": "value looks like a placeholder",
    "MLJ218": "expression form not valid here",
    # MLJ3xx: syntax generations
    "MLJ301": "2021 preview syntax (deprecated); `mljob migrate` rewrites it",
    # MLJ9xx: overrides
    "MLJ901": "--set override cannot be applied",
}
