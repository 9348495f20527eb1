"""The one judgement of a job file: schema + rules, for `mljob validate`, the editor and the runner alike."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mljob.runner import document as yamldoc
from mljob.runner.anatomy import anatomy
from mljob.runner.diagnostics import Diagnostic, Range, Severity
from mljob.runner.document import Document, MappingNode, ScalarNode, SequenceNode, YamlDocument
from mljob.runner.kinds import Kind, identify
from mljob.runner.overrides import apply_overrides
from mljob.runner.rules import RuleContext, all_rules
from mljob.runner.schema_check import BUNDLED, Checker, SchemaSet


@dataclass
class Settings:
    """What a user can turn off (from the editor's configuration or the CLI)."""

    disabled_codes: frozenset[str] = frozenset()
    # Report documents that are not recognised jobs (explicitly named files on the CLI): a list, a scalar, a
    # mapping with no job shape. The editor leaves unrelated YAML files alone.
    strict: bool = False


@dataclass
class DocumentReport:
    yaml_doc: YamlDocument
    kind: Kind | None
    diagnostics: list[Diagnostic] = field(default_factory=list)


@dataclass
class Analysis:
    document: Document
    reports: list[DocumentReport]
    extra: list[Diagnostic] = field(default_factory=list)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        found = [*self.document.diagnostics, *self.extra]
        for report in self.reports:
            found.extend(report.diagnostics)
        found.sort(key=lambda d: (d.range.start.line, d.range.start.column, d.severity))
        return found

    @property
    def has_errors(self) -> bool:
        return any(d.severity == Severity.ERROR for d in self.diagnostics)

    @property
    def is_job_file(self) -> bool:
        return any(r.kind is not None for r in self.reports)


def _not_a_mapping(yaml_doc: YamlDocument) -> Diagnostic:
    root = yaml_doc.root
    what = "a list" if isinstance(root, SequenceNode) else "a single value"
    assert root is not None
    return Diagnostic(Range.at(root.start_mark.line, root.start_mark.column, root.start_mark.line,
                               root.start_mark.column + 1), Severity.ERROR, "MLJ003",
                      f"This document is {what}; a job file is a mapping of keys (`$schema:`, `command:`, …). "
                      "Start from `mljob init` or a snippet.")


def _run_rules(ctx: RuleContext) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for rule in all_rules():
        try:
            found.extend(rule(ctx))
        except Exception as err:  # a rule's bug must not cost the user the other diagnostics
            print(f"mljob: rule {rule.__module__} failed: {err!r}", file=sys.stderr)
            found.append(Diagnostic(Range.at(0, 0), Severity.INFORMATION, "MLJ000",
                                    f"An internal check ({rule.__module__}) failed ({type(err).__name__}); the other "
                                    "checks ran. Please report this with the file."))
    return found


def _merge(schema_found: list[Diagnostic], rule_found: list[Diagnostic]) -> list[Diagnostic]:
    # Where a rule says something precise about a value (a count below one, a placeholder), the schema's generic
    # complaint at the same place is noise.
    taken = {(d.range, d.severity) for d in rule_found if d.severity == Severity.ERROR}
    kept = [d for d in schema_found if (d.range, d.severity) not in taken or d.code == "MLJ301"]
    return kept + rule_found


def judge(yaml_doc: YamlDocument, document: Document, settings: Settings) -> DocumentReport:
    root = yaml_doc.root
    if root is None:
        return DocumentReport(yaml_doc, None)
    if not isinstance(root, MappingNode):
        return DocumentReport(yaml_doc, None, [_not_a_mapping(yaml_doc)] if settings.strict else [])
    kind = identify(root, document.text, document.folder)
    if kind is None:
        if not settings.strict:
            return DocumentReport(yaml_doc, None)
        first = root.value[0][0] if root.value else root
        return DocumentReport(yaml_doc, None, [Diagnostic(
            Range.at(first.start_mark.line, first.start_mark.column, first.end_mark.line, first.end_mark.column),
            Severity.WARNING, "MLJ012",
            "Not recognised as an Azure ML job file: add a `$schema:` line (e.g. "
            "`$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json`) or a `type:`.")])
    schema_set = BUNDLED if isinstance(kind.base, str) else SchemaSet()
    try:
        schema_found = Checker(schema_set, kind.label).check(root, kind.schema, kind.base)
    except (RecursionError, KeyError, IndexError, TypeError, ValueError, OSError) as err:
        # Only a user's own schema can be broken this way (ours are tested): say so instead of crashing.
        schema_found = [Diagnostic(Range.at(0, 0), Severity.ERROR, "MLJ011",
                                   f"The schema `{kind.base}` cannot be used ({type(err).__name__}: "
                                   f"{str(err)[:120] or 'it refers to itself without end'}); fix the schema file.")]
    parts = anatomy(root, kind.job, kind.entry.kind if kind.entry else None)
    ctx = RuleContext(document, root, kind, parts, document.folder)
    found = [*kind.diagnostics, *_merge(schema_found, _run_rules(ctx))]
    if settings.disabled_codes:
        found = [d for d in found if d.code not in settings.disabled_codes]
    return DocumentReport(yaml_doc, kind, found)


def analyze(document: Document, settings: Settings | None = None) -> Analysis:
    settings = settings or Settings()
    reports = [judge(d, document, settings) for d in document.docs]
    if not settings.strict and any(r.kind is not None for r in reports):
        # In a file that holds a job, a stray list or scalar document is a mistake worth saying.
        for report in reports:
            root = report.yaml_doc.root
            if root is not None and not isinstance(root, MappingNode) and not report.diagnostics:
                report.diagnostics.append(_not_a_mapping(report.yaml_doc))
    return Analysis(document, reports)


def validate_text(text: str, path: Path | None = None, *, settings: Settings | None = None,
                  overrides: Sequence[str] = ()) -> Analysis:
    document = yamldoc.parse(text, path)
    return _with_overrides(document, settings, overrides)


def validate_file(path: Path, *, settings: Settings | None = None, overrides: Sequence[str] = ()) -> Analysis:
    document = yamldoc.read(path)
    return _with_overrides(document, settings, overrides)


def _with_overrides(document: Document, settings: Settings | None, overrides: Sequence[str]) -> Analysis:
    problems = apply_overrides(document, overrides) if overrides else []
    analysis = analyze(document, settings)
    analysis.extra.extend(problems)
    return analysis


def job_files(paths: Iterable[Path]) -> list[tuple[Path, bool]]:
    """Files to validate: (path, named explicitly). Folders are walked for *.yml / *.yaml."""
    found: list[tuple[Path, bool]] = []
    skip = {".git", "node_modules", ".venv", "venv", "__pycache__", ".mljob"}
    for path in paths:
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.suffix in (".yml", ".yaml") and child.is_file() and not skip & set(child.parts):
                    found.append((child, False))
        else:
            found.append((path, True))
    return found


def is_override_position(diagnostic: Diagnostic) -> bool:
    return diagnostic.range.start.line < 0


__all__ = ["Analysis", "DocumentReport", "Settings", "analyze", "judge", "validate_file", "validate_text",
           "job_files", "ScalarNode"]
