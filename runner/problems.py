"""Problems a user can fix before or during a run: one message each, located in the job file where that applies.

Runner codes continue the validator's table (README): MLJ4xx are found when a job is about to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mljob.runner import document as yamldoc
from mljob.runner.diagnostics import Diagnostic, Range, Severity
from mljob.runner.overrides import apply_overrides
from mljob.runner.report import line_format

UNKNOWN_COMPUTE = "MLJ401"
NOT_RUNNABLE = "MLJ402"
INPUT_MISSING = "MLJ403"
INPUT_UNREACHABLE = "MLJ404"
ENVIRONMENT = "MLJ405"
ENGINE = "MLJ406"
BAD_NAME = "MLJ407"


class RunError(Exception):
    """A problem the user can fix. `str()` is the message to print, already located."""


class NotFound(RunError):
    """A run name that the history does not know."""


def located(path: Path, overrides: Sequence[str], keys: Sequence[str], code: str, message: str) -> RunError:
    """A RunError at the deepest existing node of `keys` (a `--set` value is reported against its argument).

    The file is read again only on this error path, with the project's own document model, so positions are the
    ones `mljob validate` would give.
    """
    doc = yamldoc.read(path)
    apply_overrides(doc, overrides)
    root = doc.docs[0].root if doc.docs else None
    line = column = 0
    for depth in range(len(keys), 0, -1):
        node = yamldoc.get(root, *keys[:depth])
        if node is not None:
            parent = yamldoc.get(root, *keys[: depth - 1]) if depth > 1 else root
            key = yamldoc.get_key(parent, keys[depth - 1])
            mark = key if key is not None and key.start_mark.line >= 0 else node
            line, column = mark.start_mark.line, mark.start_mark.column
            break
    diagnostic = Diagnostic(Range.at(line, column), Severity.ERROR, code, message)
    return RunError(line_format(path, diagnostic, overrides))


def plain(path: Path | str | None, code: str, message: str) -> RunError:
    where = f"{path}: " if path else ""
    return RunError(f"{where}error {code}: {message}")
