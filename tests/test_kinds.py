"""Which schema judges a file: catalog URLs, unknown URLs, local schema files, the modeline, type and shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

from mljob.runner.validate import validate_text

from mljob import schemas


def test_every_schema_url_in_the_corpus_maps_to_a_bundled_file(corpus: Path):
    urls = set()
    for path in corpus.rglob("*.y*ml"):
        urls |= set(re.findall(r"^\$schema:\s*(\S+)", path.read_text(errors="replace"), re.M))
    assert len(urls) >= 14
    for url in urls:
        entry = schemas.lookup_url(url)
        assert entry is not None, url
        assert entry.file in schemas.bundled_files()


def test_versioned_and_preview_urls():
    for url in ("https://azuremlschemas.azureedge.net/1.0.0/commandJob.schema.json",
                "https://azuremlschemas.azureedge.net/development/sweepJob.schema.json",
                "https://azuremlsdk2.blob.core.windows.net/preview/0.0.1/autoMLJob.schema.json"):
        assert schemas.lookup_url(url) is not None, url


def test_unknown_url_gives_one_information_on_the_value_and_checks_by_shape():
    text = "$schema: https://example.com/other.schema.json\ncommand: echo\nenvironment: azureml:e@latest\ncomand: 1\n"
    found = validate_text(text).diagnostics
    assert [(d.code, d.severity.label, d.line, d.column) for d in found] == [
        ("MLJ010", "info", 0, 9), ("MLJ101", "error", 3, 0)]


def test_local_schema_file_extending_ours(tmp_path: Path):
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "allOf": [{"$ref": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"}],
        "properties": {"tags": {"type": "object", "required": ["team"]}},
        "x-mljob-kind": "command",
    }
    (tmp_path / "team.schema.json").write_text(json.dumps(schema))
    job = tmp_path / "job.yml"
    text = "$schema: ./team.schema.json\ncommand: echo\nenvironment: azureml:e@latest\ntags:\n  owner: me\n"
    found = validate_text(text, job).diagnostics
    assert [(d.code, d.line) for d in found] == [("MLJ102", 3)]
    assert "team" in found[0].message
    clean = text.replace("owner: me", "team: ml")
    assert validate_text(clean, job).diagnostics == []


def test_modeline_picks_the_schema(tmp_path: Path):
    text = ("# yaml-language-server: $schema=https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
            "type: sweep\n")
    found = validate_text(text, tmp_path / "x.yml").diagnostics
    assert {d.data.get("missing") for d in found if d.code == "MLJ102"} >= {"trial", "objective"}


def test_missing_local_schema_is_an_error_on_the_value(tmp_path: Path):
    text = "$schema: ./nope.json\ncommand: echo\nenvironment: azureml:e@latest\n"
    found = validate_text(text, tmp_path / "job.yml").diagnostics
    assert [(d.code, d.line, d.column) for d in found] == [("MLJ011", 0, 9)]


def test_type_without_schema(tmp_path: Path):
    found = validate_text("type: sweep\n", tmp_path / "x.yml").diagnostics
    assert any(d.code == "MLJ102" for d in found)


def test_a_github_workflow_is_not_a_pipeline_job():
    workflow = "name: ci\non: [push]\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make\n"
    analysis = validate_text(workflow)
    assert not analysis.is_job_file and analysis.diagnostics == []
    steps = "jobs:\n  train:\n    type: command\n    command: echo\n    environment: azureml:e@latest\n"
    assert validate_text(steps).reports[0].kind.job == "pipeline"
