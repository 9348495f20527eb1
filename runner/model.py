"""Document → job model: what the runner plans from. Built only from a judged document with no errors.

The model is plain data in today's (GA) syntax: a 2021 file is first rewritten by the same migration that
`mljob migrate` applies, so the runner knows one syntax only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mljob.runner import document as yamldoc
from mljob.runner.diagnostics import Diagnostic, Severity
from mljob.runner.report import line_format
from mljob.runner.validate import Analysis, Settings, validate_file


@dataclass
class Job:
    kind: str  # "command", "sweep", … (the `job` of the catalog entry)
    data: dict[str, Any]  # GA syntax, overrides applied
    path: Path
    warnings: list[Diagnostic] = field(default_factory=list)
    # A sweep's trial is planned as a command job; its own keys (command, code, environment, …) sit under `trial:`
    # in the file, which is where problems with them are reported.
    trial_of: str | None = None

    def where(self, keys: list[str]) -> list[str]:
        if self.trial_of is not None and keys and keys[0] not in ("inputs", "outputs", "compute", "experiment_name"):
            return ["trial", *keys]
        return keys

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def experiment_name(self) -> str:
        # Azure ML's default: the job file's folder name.
        return str(self.data.get("experiment_name") or self.folder.resolve().name)


class JobInvalid(Exception):
    """The file has errors; `str()` is the lines `mljob validate` would print for them."""

    def __init__(self, path: Path, diagnostics: list[Diagnostic], overrides: Sequence[str] = ()) -> None:
        self.path = path
        self.diagnostics = diagnostics
        lines = [line_format(path, d, overrides) for d in diagnostics if d.severity == Severity.ERROR]
        super().__init__("\n".join(lines) or f"{path}: not a job file")


def load_job(path: Path, overrides: Sequence[str] = ()) -> Job:
    """The first job of a file, judged exactly as `mljob validate` judges it; raises JobInvalid on errors."""
    analysis: Analysis = validate_file(path, settings=Settings(strict=True), overrides=overrides)
    if analysis.has_errors:
        raise JobInvalid(path, analysis.diagnostics, overrides)
    report = next((r for r in analysis.reports if r.kind is not None and r.kind.job is not None), None)
    if report is None:
        raise JobInvalid(path, [], overrides)
    root = report.yaml_doc.root
    if any(d.code == "MLJ301" for d in report.diagnostics):
        from mljob.runner.migrate import migrate_text

        # The overrides were applied to the 2021 document and judged there: migrate that document (the file's text
        # with them), so that `--set max_total_trials=4` on a 2021 file lands where migration puts the key.
        text = analysis.document.text
        if overrides:
            import yaml

            text = yaml.serialize(report.yaml_doc.root, Dumper=yaml.CSafeDumper)
        migrated = yamldoc.parse(migrate_text(text).text, path)
        root = migrated.docs[0 if overrides else report.yaml_doc.number].root
    data = yamldoc.to_python(root)
    assert isinstance(data, dict)
    data.pop("$schema", None)
    warnings = [d for d in analysis.diagnostics if d.severity == Severity.WARNING]
    return Job(report.kind.job or "command", data, path, warnings)  # type: ignore[union-attr]
