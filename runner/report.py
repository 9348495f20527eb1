"""How diagnostics are printed: `path:line:col: severity code: message`, or JSON for tools."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mljob.runner.diagnostics import Diagnostic


def location(path: Path | str, diagnostic: Diagnostic, overrides: Sequence[str] = ()) -> str:
    line = diagnostic.range.start.line
    if line < 0:  # a value that came from `--set` (see overrides.py)
        index = -line - 1
        text = overrides[index] if index < len(overrides) else "?"
        return f"{path}: --set {text}"
    return f"{path}:{line + 1}:{diagnostic.range.start.column + 1}"


def line_format(path: Path | str, diagnostic: Diagnostic, overrides: Sequence[str] = ()) -> str:
    return (f"{location(path, diagnostic, overrides)}: {diagnostic.severity.label} {diagnostic.code}: "
            f"{diagnostic.message}")


def as_json(path: Path | str, diagnostic: Diagnostic, overrides: Sequence[str] = ()) -> dict[str, object]:
    start, end = diagnostic.range.start, diagnostic.range.end
    entry: dict[str, object] = {
        "path": str(path),
        "severity": diagnostic.severity.label,
        "code": diagnostic.code,
        "message": diagnostic.message,
    }
    if start.line < 0:
        index = -start.line - 1
        entry["override"] = overrides[index] if index < len(overrides) else None
    else:
        entry.update(line=start.line + 1, column=start.column + 1, end_line=end.line + 1, end_column=end.column + 1)
    return entry


def dump_json(entries: list[dict[str, object]]) -> str:
    return json.dumps(entries, indent=2, ensure_ascii=False)
