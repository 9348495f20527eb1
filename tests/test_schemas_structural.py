"""Structural checks of the schemas for pipeline, Spark and AutoML jobs, components, assets and prompt flows.

The real files of these kinds in the shared azureml-examples corpus must validate with no error (one known-bad
file excepted), misspelt top-level keys and other typical mistakes must be reported, and every property must
carry a hover description. Validation here uses the reference `jsonschema` implementation with a registry of all
bundled schemas, so `$ref`s into common.schema.json and across our files resolve exactly as written.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.realparts import CORPUS_HOW, needs

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = ROOT / "schemas"
CORPUS = Path(os.environ.get("MLJOB_CORPUS", ROOT.parent / "shared" / "corpus" / "azureml-examples"))

# The kinds these schemas cover: catalog kind -> bundled file.
FILES = {
    "pipelineJob": "pipelineJob.schema.json",
    "sparkJob": "sparkJob.schema.json",
    "autoMLJob": "autoMLJob.schema.json",
    "commandComponent": "commandComponent.schema.json",
    "sparkComponent": "sparkComponent.schema.json",
    "pipelineComponent": "pipelineComponent.schema.json",
    "environment": "environment.schema.json",
    "data": "data.schema.json",
    "model": "model.schema.json",
    "managedOnlineDeployment": "managedOnlineDeployment.schema.json",
    "Run": "promptflowRun.schema.json",
    "Flow": "promptflowFlow.schema.json",
}
JOB_KINDS = {"pipelineJob": "pipeline", "sparkJob": "spark", "autoMLJob": "automl"}

# Files of these kinds that must be reported, with the path of the error (as a list of keys).
KNOWN_BAD = {
    # `resources` is written as `instance_type="…"` lines, which YAML reads as one string, not a mapping.
    "automl-standalone-jobs/cli-automl-classification-task-bankmarketing/"
    "cli-automl-classification-task-bankmarketing-serverless.yml": ["resources"],
}

SCHEMA_LINE = re.compile(r"^\$schema:\s*(\S+)", re.M)


# -- schemas -------------------------------------------------------------------------------------------------


@cache
def load_schema(file: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / file).read_text(encoding="utf-8"))


@cache
def registry() -> Registry:
    """Every bundled schema, by file name (how our `$ref`s name them) and by `$id` when it differs."""
    reg: Registry = Registry()
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        reg = reg.with_resource(path.name, resource)
        schema_id = contents.get("$id")
        if isinstance(schema_id, str) and schema_id != path.name:
            reg = reg.with_resource(schema_id, resource)
    return reg.crawl()


@cache
def validator(file: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(file), registry=registry())


def errors_of(file: str, document: Any) -> list[Any]:
    return sorted(validator(file).iter_errors(document), key=lambda e: list(e.absolute_path))


def describe(errors: list[Any]) -> str:
    return "\n".join(f"  at {list(e.absolute_path)}: {e.message[:300]}" for e in errors)


# -- corpus --------------------------------------------------------------------------------------------------


@cache
def catalog_patterns() -> list[re.Pattern[str]]:
    raw = json.loads((SCHEMAS / "catalog.json").read_text(encoding="utf-8"))
    return [re.compile(p) for p in raw["patterns"]]


def kind_of_url(url: str) -> str | None:
    for pattern in catalog_patterns():
        match = pattern.match(url)
        if match:
            kind = match.group("kind")
            return next((k for k in FILES if k.lower() == kind.lower()), None)
    return None


def corpus_files() -> Iterator[tuple[str, str]]:
    """(relative path, kind) of every corpus YAML file whose `$schema` names one of our kinds."""
    if not CORPUS.is_dir():
        return
    for path in sorted(CORPUS.rglob("*")):
        if path.suffix not in (".yml", ".yaml") or not path.is_file():
            continue
        match = SCHEMA_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
        kind = kind_of_url(match.group(1)) if match else None
        if kind is not None:
            yield path.relative_to(CORPUS).as_posix(), kind


CORPUS_FILES = list(corpus_files())


def documents(relative: str) -> list[Any]:
    text = (CORPUS / relative).read_text(encoding="utf-8")
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


needs_corpus = needs(bool(CORPUS_FILES), f"corpus not found at {CORPUS}", CORPUS_HOW)


@needs_corpus
def test_corpus_has_every_kind() -> None:
    found = {kind for _, kind in CORPUS_FILES}
    assert found == set(FILES), f"kinds without corpus files: {sorted(set(FILES) - found)}"
    assert set(KNOWN_BAD) <= {path for path, _ in CORPUS_FILES}


@needs_corpus
@pytest.mark.parametrize(("relative", "kind"), CORPUS_FILES, ids=[p for p, _ in CORPUS_FILES])
def test_corpus_file(relative: str, kind: str) -> None:
    docs = documents(relative)
    assert docs, "no YAML document"
    errors = [e for doc in docs for e in errors_of(FILES[kind], doc)]
    expected = KNOWN_BAD.get(relative)
    if expected is None:
        assert not errors, f"{relative} ({kind}) should be valid:\n{describe(errors)}"
    else:
        assert errors, f"{relative} should be reported at {expected}"
        assert all(list(e.absolute_path) == expected for e in errors), describe(errors)


# -- negative cases ------------------------------------------------------------------------------------------

MINIMAL: dict[str, dict[str, Any]] = {
    "pipelineJob": {
        "type": "pipeline",
        "settings": {"default_compute": "azureml:cpu-cluster"},
        "inputs": {"raw": {"type": "uri_folder", "path": "./data"}},
        "jobs": {
            "prep": {"type": "command", "component": "./prep.yml",
                     "inputs": {"data": "${{parent.inputs.raw}}"}, "outputs": {"clean": None}},
            "train": {"command": "python train.py --data ${{inputs.data}}",
                      "environment": "azureml:AzureML-sklearn-1.5@latest",
                      "inputs": {"data": "${{parent.jobs.prep.outputs.clean}}"}},
        },
    },
    "sparkJob": {
        "type": "spark", "code": "./src", "entry": {"file": "main.py"},
        "conf": {"spark.driver.cores": 1, "spark.driver.memory": "2g"},
        "resources": {"instance_type": "standard_e4s_v3", "runtime_version": "3.4"},
    },
    "autoMLJob": {
        "type": "automl", "task": "classification", "primary_metric": "accuracy", "target_column_name": "y",
        "training_data": {"type": "mltable", "path": "./train"}, "limits": {"max_trials": 2},
    },
    "commandComponent": {
        "name": "train", "type": "command", "command": "python train.py --n ${{inputs.n}}",
        "environment": "azureml:AzureML-sklearn-1.5@latest",
        "inputs": {"n": {"type": "integer", "default": 1}},
    },
    "sparkComponent": {"name": "wrangle", "type": "spark", "code": ".", "entry": {"file": "main.py"}},
    "pipelineComponent": {
        "name": "sub", "type": "pipeline", "inputs": {"data": {"type": "uri_folder"}},
        "jobs": {"step": {"type": "command", "component": "./step.yml",
                          "inputs": {"data": "${{parent.inputs.data}}"}}},
    },
    "environment": {"name": "env", "version": "1",
                    "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04"},
    "data": {"name": "d", "type": "uri_folder", "path": "./data"},
    "model": {"name": "m", "type": "mlflow_model", "path": "./model"},
    "managedOnlineDeployment": {"name": "blue", "endpoint_name": "ep", "model": "azureml:m:1",
                                "instance_type": "Standard_DS3_v2", "instance_count": 1},
    "Run": {"flow": "./flow", "data": "./data.jsonl", "column_mapping": {"q": "${data.q}"}},
    "Flow": {"inputs": {"text": {"type": "string"}},
             "outputs": {"out": {"type": "string", "reference": "${node.output}"}},
             "nodes": [{"name": "node", "type": "python", "source": {"type": "code", "path": "node.py"},
                        "inputs": {"text": "${inputs.text}"}}]},
}


@pytest.mark.parametrize("kind", list(FILES))
def test_minimal_document_is_valid(kind: str) -> None:
    errors = errors_of(FILES[kind], MINIMAL[kind])
    assert not errors, describe(errors)


@pytest.mark.parametrize("kind", list(FILES))
def test_misspelt_top_level_key_is_reported(kind: str) -> None:
    document = copy.deepcopy(MINIMAL[kind])
    document["descripton"] = "typo of description"
    errors = errors_of(FILES[kind], document)
    assert any(e.validator == "additionalProperties" and not list(e.absolute_path) and "descripton" in e.message
               for e in errors), describe(errors)


@pytest.mark.parametrize("task", ["clasification", "Regression", "object_detection", ""])
def test_automl_unknown_task_is_reported(task: str) -> None:
    document = copy.deepcopy(MINIMAL["autoMLJob"])
    document["task"] = task
    errors = errors_of(FILES["autoMLJob"], document)
    assert [list(e.absolute_path) for e in errors] == [["task"]], describe(errors)


def test_automl_task_in_pipeline_step_is_checked() -> None:
    document = copy.deepcopy(MINIMAL["pipelineJob"])
    document["jobs"]["auto"] = {"type": "automl", "task": "clasification",
                                "training_data": "${{parent.inputs.raw}}"}
    assert errors_of(FILES["pipelineJob"], document), "an unknown automl task in a step must be reported"


@pytest.mark.parametrize("kind", ["pipelineJob", "pipelineComponent"])
@pytest.mark.parametrize("entry", ["echo hello", ["a", "b"], 3, None])
def test_pipeline_step_must_be_a_mapping(kind: str, entry: Any) -> None:
    document = copy.deepcopy(MINIMAL[kind])
    document["jobs"]["bad"] = entry
    errors = errors_of(FILES[kind], document)
    assert errors and all(list(e.absolute_path)[:2] == ["jobs", "bad"] for e in errors), describe(errors)


def test_pipeline_step_with_unknown_type_is_reported() -> None:
    document = copy.deepcopy(MINIMAL["pipelineJob"])
    document["jobs"]["prep"]["type"] = "comand"
    assert errors_of(FILES["pipelineJob"], document)


@pytest.mark.parametrize(
    ("kind", "key", "value"),
    [
        ("pipelineJob", "jobs", "not a mapping"),
        ("sparkJob", "entry", "main.py"),
        ("sparkJob", "conf", ["spark.driver.cores=1"]),
        ("autoMLJob", "limits", "max_trials=2"),
        ("commandComponent", "inputs", ["n"]),
        ("environment", "build", "./context"),
        ("managedOnlineDeployment", "instance_count", "one"),
    ],
)
def test_wrong_shape_is_reported(kind: str, key: str, value: Any) -> None:
    document = copy.deepcopy(MINIMAL[kind])
    document[key] = value
    errors = errors_of(FILES[kind], document)
    assert errors and all(list(e.absolute_path)[:1] == [key] for e in errors), describe(errors)


@pytest.mark.parametrize(("kind", "missing"), [
    ("pipelineJob", "jobs"), ("sparkJob", "entry"), ("autoMLJob", "task"), ("commandComponent", "command"),
    ("commandComponent", "environment"), ("data", "path"), ("managedOnlineDeployment", "instance_type"),
    ("Run", "flow"),
])
def test_missing_required_key_is_reported(kind: str, missing: str) -> None:
    document = copy.deepcopy(MINIMAL[kind])
    del document[missing]
    errors = errors_of(FILES[kind], document)
    assert any(e.validator == "required" and missing in e.message for e in errors), describe(errors)


def test_bindings_are_accepted_where_values_can_be_bound() -> None:
    document = copy.deepcopy(MINIMAL["pipelineJob"])
    document["jobs"]["train"].update({
        "compute": "${{parent.inputs.compute_name}}",
        "outputs": {"model": "${{parent.outputs.model}}", "scratch": None, "report": {"mode": "upload"}},
    })
    document["jobs"]["auto"] = {"type": "automl", "task": "regression", "target_column_name": "y",
                                "training_data": "${{parent.inputs.raw}}",
                                "validation_data": "${{parent.jobs.prep.outputs.clean}}"}
    document["jobs"]["score"] = {"type": "parallel", "component": "./score.yml",
                                 "input_data": "${{inputs.data}}", "inputs": {"data": {
                                     "type": "mltable", "path": "${{parent.jobs.prep.outputs.clean}}"}}}
    errors = errors_of(FILES["pipelineJob"], document)
    assert not errors, describe(errors)


# -- annotations ---------------------------------------------------------------------------------------------


SINGLE = ("items", "additionalProperties", "if", "then", "else", "not")
MANY = ("anyOf", "oneOf", "allOf")
BY_NAME = ("$defs", "patternProperties")


def walk_properties(schema: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every (location, schema) of a property declared under `properties`, at any depth of subschemas."""
    if not isinstance(schema, dict):
        return
    for name, sub in schema.get("properties", {}).items():
        yield f"{where}/properties/{name}", sub
        yield from walk_properties(sub, f"{where}/properties/{name}")
    for key in SINGLE:
        yield from walk_properties(schema.get(key), f"{where}/{key}")
    for key in MANY:
        for i, sub in enumerate(schema.get(key, ())):
            yield from walk_properties(sub, f"{where}/{key}/{i}")
    for key in BY_NAME:
        for name, sub in schema.get(key, {}).items():
            yield from walk_properties(sub, f"{where}/{key}/{name}")


@pytest.mark.parametrize("file", sorted(set(FILES.values())))
def test_schema_is_valid_2020_12(file: str) -> None:
    schema = load_schema(file)
    assert schema.get("$schema") == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("file", sorted(set(FILES.values())))
def test_every_property_has_a_description(file: str) -> None:
    missing = [where for where, sub in walk_properties(load_schema(file), "#")
               if not (isinstance(sub, dict) and isinstance(sub.get("description"), str)
                       and sub["description"].strip())]
    assert not missing, f"{file}: properties without a description:\n  " + "\n  ".join(missing)


@pytest.mark.parametrize("kind", list(FILES))
def test_top_level_annotations(kind: str) -> None:
    schema = load_schema(FILES[kind])
    assert schema.get("title"), "title"
    assert schema.get("description"), "description"
    assert schema.get("additionalProperties") is False, "a misspelt top-level key must be reported"
    assert schema.get("x-mljob-kind") == JOB_KINDS.get(kind, kind)
    snippets = schema.get("defaultSnippets")
    assert snippets and all(s.get("label") and s.get("bodyText") for s in snippets)
    for snippet in snippets:
        # `$schema` must be escaped in snippet text, or the editor reads it as a variable.
        assert "$schema" not in snippet["bodyText"].replace("\\$schema", ""), snippet["label"]


@pytest.mark.parametrize("file", sorted(set(FILES.values())))
def test_enum_descriptions_match_enums(file: str) -> None:
    def walk(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    for node in walk(load_schema(file)):
        if "enumDescriptions" in node:
            assert len(node["enumDescriptions"]) == len(node.get("enum", ())), node.get("description")


@pytest.mark.parametrize("file", sorted(set(FILES.values())))
def test_every_ref_resolves(file: str) -> None:
    resolver = registry().resolver(base_uri=file)

    def refs(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    for target in sorted(set(refs(load_schema(file)))):
        resolver.lookup(target)  # raises if the target does not exist
