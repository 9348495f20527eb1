"""The real job files: GA examples validate clean (but three genuinely broken ones), 2021 files only warn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from mljob.runner.validate import Settings, validate_file

JOB_SCHEMA = re.compile(r"^\$schema:\s*\S*/(commandJob|sweepJob|pipelineJob|sparkJob|autoMLJob)\.schema\.json", re.M)
BROKEN = {
    # file → (line, column, code) of the error that must be reported (1-based)
    "nebulaml/cifar10_deepspeed/job.yml": (8, 14, "MLJ217"),
    "single-step/java/iris/job-template.yml": (2, 7, "MLJ203"),
    "automl-standalone-jobs/cli-automl-classification-task-bankmarketing/"
    "cli-automl-classification-task-bankmarketing-serverless.yml": (52, 3, "MLJ103"),
}


def job_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml")
                  and JOB_SCHEMA.search(p.read_text(encoding="utf-8", errors="replace")))


def errors(path: Path) -> list[tuple[int, int, str, str]]:
    analysis = validate_file(path, settings=Settings(strict=True))
    return [(d.line + 1, d.column + 1, d.code, d.message) for d in analysis.diagnostics if d.severity == 1]


def test_every_tagged_ga_job_is_clean_but_the_three_broken(corpus: Path):
    root = corpus / "azureml-examples"
    files = job_files(root)
    assert len(files) == 134
    failures = {}
    for path in files:
        found = errors(path)
        rel = path.relative_to(root).as_posix()
        if rel in BROKEN:
            line, column, code = BROKEN[rel]
            assert [(e[0], e[1], e[2]) for e in found] == [(line, column, code)], (rel, found)
        elif found:
            failures[rel] = found
    assert failures == {}


def test_every_other_corpus_yaml_has_no_errors(corpus: Path):
    # Components, assets, conda files: no false errors either.
    root = corpus / "azureml-examples"
    tagged = set(job_files(root))
    failures = {}
    for path in sorted(root.rglob("*.y*ml")):
        if path in tagged:
            continue
        analysis = validate_file(path)
        found = [(d.line + 1, d.code, d.message) for d in analysis.diagnostics if d.severity == 1]
        if found:
            failures[path.relative_to(root).as_posix()] = found
    assert failures == {}


def test_seed_2021_jobs_only_warn(corpus: Path):
    root = corpus / "seed-2021"
    jobs = [p for p in sorted(root.rglob("*.yml")) if p.name != "environment.yml"]
    assert len(jobs) == 10
    for path in jobs:
        analysis = validate_file(path, settings=Settings(strict=True))
        assert analysis.is_job_file, path
        assert [d for d in analysis.diagnostics if d.severity == 1] == [], path
        assert any(d.code == "MLJ301" for d in analysis.diagnostics) or path.name == "hello-world.yml", path


def test_hello_world_without_schema_is_a_command_job(corpus: Path):
    analysis = validate_file(corpus / "seed-2021" / "hello-world.yml", settings=Settings(strict=True))
    (report,) = analysis.reports
    assert report.kind is not None and report.kind.job == "command" and report.kind.source == "shape"


@pytest.mark.parametrize("name", ["hello/job.yml", "hello/sweep.yml"])
def test_examples_are_clean(name: str):
    path = Path(__file__).resolve().parent.parent / "examples" / name
    analysis = validate_file(path, settings=Settings(strict=True))
    assert [d for d in analysis.diagnostics if d.severity <= 2] == []
