"""Checks schemas/commandJob, sweepJob and common.schema.json against the job corpus.

Uses the `jsonschema` + `referencing` packages (test-only dependencies) as a reference validator: the
schemas must be valid JSON Schema 2020-12, accept every command/sweep job of the corpus (GA and 2021
preview), reject the known-broken file and a set of typical mistakes, and follow schemas/CONVENTIONS.md
(descriptions everywhere, only the keywords our walker implements, deprecated 2021 forms).
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from tests.realparts import CORPUS_HOW, importorskip, missing, needs

jsonschema = importorskip("jsonschema", "./scripts/setup installs it (mljob[dev])")
referencing = importorskip("referencing", "./scripts/setup installs it (mljob[dev], with jsonschema)")
from referencing.jsonschema import DRAFT202012  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SCHEMAS = REPO / "schemas"
CORPUS = Path(os.environ.get("MLJOB_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
EXAMPLES = CORPUS / "azureml-examples"
SEED_2021 = CORPUS / "seed-2021"
MINE = ["common.schema.json", "commandJob.schema.json", "sweepJob.schema.json"]
KIND_FILES = {"commandJob": "commandJob.schema.json", "sweepJob": "sweepJob.schema.json"}
BROKEN = {"nebulaml/cifar10_deepspeed/job.yml": ["environment"]}

REQUIRED_DEFS = {
    "code",
    "environment",
    "environment_variables",
    "compute",
    "resources",
    "distribution",
    "job_limits",
    "inputs",
    "input",
    "outputs",
    "output",
    "identity",
    "services",
    "queue_settings",
    "tags",
    "search_space",
    "search_space_entry",
    "sampling_algorithm",
    "objective",
    "early_termination",
    "sweep_limits",
}
# Keywords the walker implements (CONVENTIONS.md) plus our annotations.
ALLOWED_KEYWORDS = {
    "$schema",
    "$id",
    "$ref",
    "$defs",
    "type",
    "properties",
    "patternProperties",
    "additionalProperties",
    "required",
    "enum",
    "const",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "minItems",
    "maxItems",
    "items",
    "uniqueItems",
    "anyOf",
    "oneOf",
    "allOf",
    "if",
    "then",
    "else",
    "not",
    "description",
    "enumDescriptions",
    "default",
    "examples",
    "deprecated",
    "deprecationMessage",
    "defaultSnippets",
    "x-mljob-kind",
    "title",
}


# ----------------------------------------------------------------------------------------------- helpers
def _registry(docs: dict[str, dict]) -> referencing.Registry:
    """All bundled schemas keyed by file name (= their `$id`), so `common.schema.json#/$defs/x` resolves."""
    resources = []
    for name, doc in docs.items():
        try:
            resources.append(
                (name, referencing.Resource.from_contents(doc, default_specification=DRAFT202012))
            )
        except Exception:  # a sibling file that is not a 2020-12 schema (yet)
            if name in MINE:
                raise
    return referencing.Registry().with_resources(resources)


def _all_schema_docs() -> dict[str, dict]:
    """Every bundled schema, by file name. Sibling files that do not parse yet are left out."""
    docs = {}
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        try:
            docs[path.name] = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            if path.name in MINE:
                raise
    return docs


def _strip_deprecated(node):
    """Copy of a schema without deprecated properties and deprecated anyOf/oneOf branches (GA-only view)."""
    if isinstance(node, list):
        return [_strip_deprecated(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: _strip_deprecated(v) for k, v in value.items() if not v.get("deprecated")}
        elif key in ("anyOf", "oneOf") and isinstance(value, list):
            out[key] = [_strip_deprecated(v) for v in value if not v.get("deprecated")]
        elif key in ("enum", "const", "default", "examples", "defaultSnippets", "enumDescriptions"):
            out[key] = value
        else:
            out[key] = _strip_deprecated(value)
    return out


def _children(node: dict):
    """(label, subschema) for every subschema of a schema node."""
    for key in ("properties", "patternProperties", "$defs"):
        for name, sub in (node.get(key) or {}).items():
            yield f"{key}/{name}", sub
    for key in ("additionalProperties", "items", "if", "then", "else", "not"):
        if isinstance(node.get(key), dict):
            yield key, node[key]
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(node.get(key) or []):
            yield f"{key}/{i}", sub


def _walk(node: dict, path: str = "#"):
    yield path, node
    for label, sub in _children(node):
        yield from _walk(sub, f"{path}/{label}")


DOCS = _all_schema_docs()
REGISTRY = _registry(DOCS)
GA_REGISTRY = _registry({name: _strip_deprecated(doc) for name, doc in DOCS.items()})


def _validator(kind_file: str, ga_only: bool = False) -> jsonschema.Draft202012Validator:
    registry = GA_REGISTRY if ga_only else REGISTRY
    schema = registry.contents(kind_file)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _errors(kind_file: str, instance, ga_only: bool = False) -> list:
    return list(_validator(kind_file, ga_only).iter_errors(instance))


def _fmt(errors) -> str:
    return "\n".join(f"  at {list(e.absolute_path)}: {e.message[:300]}" for e in errors)


def _corpus_jobs() -> list[tuple[str, str]]:
    """(relative path, schema file) of every azureml-examples file tagged with a command/sweep $schema."""
    found = []
    if not EXAMPLES.is_dir():
        return found
    for path in sorted(EXAMPLES.rglob("*")):
        if path.suffix not in (".yml", ".yaml") or not path.is_file():
            continue
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        url = doc.get("$schema") if isinstance(doc, dict) else None
        for kind, kind_file in KIND_FILES.items():
            if isinstance(url, str) and url.endswith(f"/{kind}.schema.json"):
                found.append((path.relative_to(EXAMPLES).as_posix(), kind_file))
    return found


def _seed_jobs() -> list[tuple[str, str]]:
    found = []
    if not SEED_2021.is_dir():
        return found
    for path in sorted(SEED_2021.rglob("*.yml")):
        if path.name == "environment.yml":  # conda files
            continue
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        url = doc.get("$schema", "")
        kind_file = (
            "sweepJob.schema.json" if url.endswith("/sweepJob.schema.json") else "commandJob.schema.json"
        )
        found.append((path.relative_to(SEED_2021).as_posix(), kind_file))
    return found


CORPUS_JOBS = _corpus_jobs()
SEED_JOBS = _seed_jobs()
needs_corpus = needs(EXAMPLES.is_dir(), f"the job corpus is not at {EXAMPLES}", CORPUS_HOW)


# ----------------------------------------------------------------------------------------------- schema files
@pytest.mark.parametrize("name", MINE)
def test_schema_is_valid_2020_12_with_id_equal_to_file_name(name):
    doc = DOCS[name]
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == name


@pytest.mark.parametrize("name", MINE)
def test_schema_file_is_neatly_formatted(name):
    text = (SCHEMAS / name).read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2, ensure_ascii=False) + "\n"


def test_common_defines_the_shared_defs():
    missing = REQUIRED_DEFS - set(DOCS["common.schema.json"]["$defs"])
    assert not missing, f"common.schema.json lacks $defs: {sorted(missing)}"


def test_catalog_points_to_these_files():
    catalog = json.loads((SCHEMAS / "catalog.json").read_text(encoding="utf-8"))
    files = {entry["kind"]: entry["file"] for entry in catalog["schemas"]}
    assert files["commandJob"] == "commandJob.schema.json"
    assert files["sweepJob"] == "sweepJob.schema.json"


@pytest.mark.parametrize(
    ("name", "kind"), [("commandJob.schema.json", "command"), ("sweepJob.schema.json", "sweep")]
)
def test_job_schema_has_kind_title_and_skeleton_snippet(name, kind):
    doc = DOCS[name]
    assert doc["x-mljob-kind"] == kind
    assert doc["title"]
    snippets = doc["defaultSnippets"]
    assert snippets and all(s["label"] and s["bodyText"] for s in snippets)
    # The skeleton, with placeholders replaced by their defaults, is itself a valid job.
    body = snippets[0]["bodyText"].replace("\\$", "$")
    body = re.sub(r"\$\{\d+\|([^,|]+)[^}]*\}", r"\1", body)  # ${1|a,b|} -> a
    body = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", body)  # ${1:x} -> x
    job = yaml.safe_load(body)
    assert job["$schema"].endswith(name)
    assert not _errors(name, job), _fmt(_errors(name, job))


@pytest.mark.parametrize("name", MINE)
def test_every_property_and_def_has_a_description(name):
    missing = []
    for path, node in _walk(DOCS[name]):
        for prop, sub in (node.get("properties") or {}).items():
            if not (isinstance(sub.get("description"), str) and sub["description"].strip()):
                missing.append(f"{path}/properties/{prop}")
        for def_name, sub in (node.get("$defs") or {}).items():
            if not (isinstance(sub.get("description"), str) and sub["description"].strip()):
                missing.append(f"{path}/$defs/{def_name}")
    assert not missing, "no description: " + ", ".join(missing)


@pytest.mark.parametrize("name", MINE)
def test_only_walker_keywords_and_annotations_are_used(name):
    unknown = {
        f"{path}: {key}" for path, node in _walk(DOCS[name]) for key in node if key not in ALLOWED_KEYWORDS
    }
    assert not unknown, sorted(unknown)


@pytest.mark.parametrize("name", MINE)
def test_enum_descriptions_are_parallel_and_deprecations_name_the_ga_form(name):
    for path, node in _walk(DOCS[name]):
        if "enumDescriptions" in node:
            assert len(node["enumDescriptions"]) == len(node["enum"]), path
        if node.get("deprecated"):
            message = node.get("deprecationMessage", "")
            assert "2021" in message and ("write" in message or "move" in message) and "`" in message, path


def test_property_descriptions_carry_a_yaml_example():
    """Hovers show an example: every top-level job property (and common $defs) has a ```yaml block."""
    lacking = []
    for name in ("commandJob.schema.json", "sweepJob.schema.json"):
        for prop, sub in DOCS[name]["properties"].items():
            if "```yaml" not in sub["description"]:
                lacking.append(f"{name}:{prop}")
    for def_name, sub in DOCS["common.schema.json"]["$defs"].items():
        if "```yaml" not in sub["description"]:
            lacking.append(f"common:{def_name}")
    assert not lacking, lacking


# ----------------------------------------------------------------------------------------------- corpus
@needs_corpus
def test_corpus_has_the_expected_command_and_sweep_jobs():
    assert len(CORPUS_JOBS) >= 40
    assert sum(kind == "sweepJob.schema.json" for _, kind in CORPUS_JOBS) >= 3
    assert set(BROKEN) <= {rel for rel, _ in CORPUS_JOBS}


@needs_corpus
@pytest.mark.parametrize(("rel", "kind_file"), CORPUS_JOBS, ids=[rel for rel, _ in CORPUS_JOBS])
def test_azureml_examples_job(rel, kind_file):
    doc = yaml.safe_load((EXAMPLES / rel).read_text(encoding="utf-8"))
    errors = _errors(kind_file, doc)
    if rel in BROKEN:
        assert errors, f"{rel} should be invalid"
        assert {tuple(e.absolute_path) for e in errors} == {tuple(BROKEN[rel])}, _fmt(errors)
    else:
        assert not errors, f"{rel}:\n{_fmt(errors)}"
        # GA files never need the deprecated 2021 parts of the schema.
        ga_errors = _errors(kind_file, doc, ga_only=True)
        assert not ga_errors, f"{rel} relies on a deprecated form:\n{_fmt(ga_errors)}"


@needs(SEED_2021.is_dir(), f"the 2021 seed corpus is not at {SEED_2021}", CORPUS_HOW)
@pytest.mark.parametrize(("rel", "kind_file"), SEED_JOBS, ids=[rel for rel, _ in SEED_JOBS])
def test_seed_2021_job_is_accepted_through_deprecated_forms(rel, kind_file):
    doc = yaml.safe_load((SEED_2021 / rel).read_text(encoding="utf-8"))
    errors = _errors(kind_file, doc)
    assert not errors, f"{rel}:\n{_fmt(errors)}"
    assert _errors(kind_file, doc, ga_only=True), f"{rel} should only be valid through deprecated 2021 forms"


def test_seed_corpus_is_complete():
    if not SEED_2021.is_dir():
        missing(f"the 2021 seed corpus is not at {SEED_2021}", CORPUS_HOW)
    rels = {rel for rel, _ in SEED_JOBS}
    assert "hello-world.yml" in rels
    assert ("train/lightgbm/iris/job-sweep.yml", "sweepJob.schema.json") in SEED_JOBS
    assert len(SEED_JOBS) >= 9


# ----------------------------------------------------------------------------------------------- positives
COMMAND = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
    "type": "command",
    "command": "python main.py --data ${{inputs.data}}",
    "code": "src",
    "environment": "azureml:AzureML-sklearn-1.5@latest",
    "compute": "azureml:cpu-cluster",
}
SWEEP = {
    "$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
    "type": "sweep",
    "trial": {
        "command": "python main.py --lr ${{search_space.lr}}",
        "code": "src",
        "environment": "azureml:env:1",
    },
    "compute": "azureml:cpu-cluster",
    "sampling_algorithm": "random",
    "search_space": {"lr": {"type": "uniform", "min_value": 0.01, "max_value": 0.9}},
    "objective": {"primary_metric": "accuracy", "goal": "maximize"},
    "limits": {"max_total_trials": 20, "max_concurrent_trials": 4, "timeout": 7200, "trial_timeout": 600},
}


def _with(base: dict, **changes) -> dict:
    doc = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def test_full_ga_command_job_is_valid():
    doc = _with(
        COMMAND,
        name="job-001",
        display_name="d",
        experiment_name="e",
        description="x",
        tags={"a": "b"},
        properties={"p": "q"},
        environment={
            "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04",
            "conda_file": "conda.yaml",
            "os_type": "linux",
            "description": "env",
            "tags": {"k": "v"},
            "inference_config": {
                "liveness_route": {"path": "/", "port": 5001},
                "readiness_route": {"path": "/ready", "port": 5001},
                "scoring_route": {"path": "/score", "port": 5001},
            },
        },
        environment_variables={"NCCL_DEBUG": "INFO"},
        resources={
            "instance_count": 2,
            "instance_type": "Standard_NC6s_v3",
            "shm_size": "16g",
            "docker_args": "--ipc=host",
            "properties": {"a": 1},
            "locations": ["eastus"],
            "max_instance_count": 4,
        },
        distribution={"type": "pytorch", "process_count_per_instance": 4},
        limits={"timeout": 3600},
        inputs={
            "n": 1,
            "lr": 0.1,
            "flag": True,
            "s": "x",
            "data": {"type": "uri_folder", "path": "azureml:d@latest", "mode": "ro_mount"},
            "file": {"type": "uri_file", "path": "https://x/y.csv", "mode": "download", "description": "d"},
            "tab": {"type": "mltable", "path": "azureml:t:1", "mode": "eval_mount", "optional": True},
            "model": {"type": "mlflow_model", "path": "azureml:m:1", "mode": "direct"},
            "cm": {"type": "custom_model", "path": "./model"},
            "tm": {"type": "triton_model", "path": "./model"},
            "untyped": {"path": "data", "mode": "download"},
        },
        outputs={
            "empty": None,
            "folder": {"type": "uri_folder", "mode": "rw_mount", "path": "azureml://datastores/ws/paths/out"},
            "model": {
                "type": "mlflow_model",
                "mode": "upload",
                "name": "m",
                "version": "1",
                "description": "d",
            },
            "direct": {"type": "uri_file", "mode": "direct"},
        },
        identity={"type": "managed", "client_id": "00000000-0000-0000-0000-000000000000"},
        services={
            "lab": {"type": "jupyter_lab"},
            "ssh": {"type": "ssh", "ssh_public_keys": "ssh-rsa AAA", "nodes": "all"},
            "tb": {"type": "tensor_board", "log_dir": "outputs/tblogs"},
            "code": {"type": "vs_code"},
        },
        queue_settings={"job_tier": "spot", "priority": "high"},
    )
    assert not _errors("commandJob.schema.json", doc), _fmt(_errors("commandJob.schema.json", doc))


@pytest.mark.parametrize(
    "distribution",
    [
        {"type": "pytorch"},
        {"type": "mpi", "process_count_per_instance": 2},
        {"type": "tensorflow", "worker_count": 2, "parameter_server_count": 1},
        {
            "type": "ray",
            "port": 6379,
            "address": "10.0.0.4:6379",
            "include_dashboard": True,
            "dashboard_port": 8265,
            "head_node_additional_args": "--num-cpus 4",
            "worker_node_additional_args": "--num-cpus 4",
        },
    ],
)
def test_every_distribution_is_valid(distribution):
    assert not _errors("commandJob.schema.json", _with(COMMAND, distribution=distribution))


@pytest.mark.parametrize(
    "identity",
    [{"type": "user_identity"}, {"type": "managed"}, {"type": "managed_identity"}, {"type": "aml_token"}],
)
def test_every_identity_is_valid(identity):
    assert not _errors("commandJob.schema.json", _with(COMMAND, identity=identity))


@pytest.mark.parametrize(
    "environment",
    [
        "azureml:AzureML-sklearn-1.5@latest",
        "azureml:AzureML-TensorFlow2.4-Cuda11-OpenMpi4.1.0-py36:1",
        "azureml:AzureML-AutoML@prod",
        "azureml:my_env",
        "azureml://registries/azureml/environments/sklearn-1.5/labels/latest",
        "azureml://registries/azureml/environments/sklearn-1.5/versions/12",
        "azureml:/subscriptions/0000/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
        "/environments/env/versions/1",
        "file:./environments/azureml/env.yml",
        {"image": "library/python:latest"},
        {"build": {"path": "docker-context"}},
        {"build": {"path": "docker-context", "dockerfile_path": "Dockerfile.gpu"}, "conda_file": "conda.yml"},
    ],
)
def test_environment_forms_are_valid(environment):
    assert not _errors("commandJob.schema.json", _with(COMMAND, environment=environment))


@pytest.mark.parametrize(
    "entry",
    [
        {"type": "choice", "values": ["gbdt", "dart"]},
        {"type": "randint", "upper": 10},
        {"type": "qlognormal", "mu": 0, "sigma": 1, "q": 1},
        {"type": "qnormal", "mu": 10, "sigma": 3, "q": 1},
        {"type": "qloguniform", "min_value": 0, "max_value": 5, "q": 1},
        {"type": "quniform", "min_value": 16, "max_value": 256, "q": 16},
        {"type": "lognormal", "mu": 0, "sigma": 1},
        {"type": "normal", "mu": 10, "sigma": 3},
        {"type": "loguniform", "min_value": -6, "max_value": -1},
        {"type": "uniform", "min_value": 0.01, "max_value": 0.9},
    ],
)
def test_every_search_space_distribution_is_valid(entry):
    assert not _errors("sweepJob.schema.json", _with(SWEEP, search_space={"x": entry}))


@pytest.mark.parametrize(
    "algorithm",
    [
        "random",
        "grid",
        "bayesian",
        {"type": "random", "seed": 42, "rule": "sobol", "logbase": "e"},
        {"type": "random", "logbase": 10},
        {"type": "grid"},
        {"type": "bayesian"},
    ],
)
def test_every_sampling_algorithm_form_is_valid(algorithm):
    assert not _errors("sweepJob.schema.json", _with(SWEEP, sampling_algorithm=algorithm))


@pytest.mark.parametrize(
    "policy",
    [
        {"type": "bandit", "slack_factor": 0.1, "evaluation_interval": 1, "delay_evaluation": 5},
        {"type": "bandit", "slack_amount": 0.2},
        {"type": "median_stopping", "evaluation_interval": 1, "delay_evaluation": 5},
        {"type": "truncation_selection", "truncation_percentage": 20, "evaluation_interval": 1},
    ],
)
def test_every_early_termination_policy_is_valid(policy):
    assert not _errors("sweepJob.schema.json", _with(SWEEP, early_termination=policy))


def test_full_ga_sweep_job_is_valid():
    doc = _with(
        SWEEP,
        inputs={"iris": {"type": "uri_file", "path": "https://x/iris.csv"}, "A": 0.5},
        outputs={"model": {"type": "mlflow_model"}},
        identity={"type": "user_identity"},
        queue_settings={"job_tier": "standard"},
        resources={"instance_count": 1},
        trial={
            **SWEEP["trial"],
            "environment_variables": {"A": "1"},
            "distribution": {"type": "mpi", "process_count_per_instance": 1},
            "resources": {"instance_count": 2},
        },
    )
    assert not _errors("sweepJob.schema.json", doc), _fmt(_errors("sweepJob.schema.json", doc))


def test_command_job_without_type_defaults_to_command():
    assert not _errors("commandJob.schema.json", _with(COMMAND, type=None))


# ----------------------------------------------------------------------------------------------- 2021 forms
DEPRECATED_COMMAND_FORMS = {
    "code.local_path": {"code": {"local_path": "src"}},
    "environment.docker.image": {"environment": {"docker": {"image": "docker.io/python"}}},
    "environment.docker.build": {"environment": {"docker": {"build": {"dockerfile": "file:DOCKERFILE"}}}},
    "conda_file file:": {"environment": {"image": "docker.io/python", "conda_file": "file:environment.yml"}},
    "compute.target": {"compute": {"target": "azureml:cpu-cluster", "instance_count": 2}},
    "inputs.data.path": {"inputs": {"x": {"data": {"path": "https://x/iris.csv"}, "mode": "mount"}}},
    "inputs.data.local_path": {"inputs": {"x": {"data": {"local_path": "data"}, "mode": "download"}}},
    "inputs mode mount": {"inputs": {"x": {"type": "uri_folder", "path": "data", "mode": "mount"}}},
    "pytorch process_count": {"distribution": {"type": "pytorch", "process_count": 4}},
}
DEPRECATED_SWEEP_FORMS = {
    "type sweep_job": {"type": "sweep_job"},
    # `type: sweep` requires `sampling_algorithm`; the 2021 name is accepted in a 2021 (`sweep_job`) file.
    "algorithm": {"type": "sweep_job", "algorithm": "random", "sampling_algorithm": None},
    "max_total_trials": {"max_total_trials": 20},
    "max_concurrent_trials": {"max_concurrent_trials": 10},
    "timeout_minutes": {"timeout_minutes": 120},
    "trial.inputs": {"trial": {**SWEEP["trial"], "inputs": {"x": 1}}},
    "trial.compute": {"trial": {**SWEEP["trial"], "compute": {"target": "azureml:cpu-cluster"}}},
}


@pytest.mark.parametrize("form", DEPRECATED_COMMAND_FORMS, ids=list(DEPRECATED_COMMAND_FORMS))
def test_2021_command_form_is_accepted_but_deprecated(form):
    doc = _with(COMMAND, **DEPRECATED_COMMAND_FORMS[form])
    assert not _errors("commandJob.schema.json", doc), _fmt(_errors("commandJob.schema.json", doc))
    assert _errors("commandJob.schema.json", doc, ga_only=True), f"{form} is not marked deprecated"


@pytest.mark.parametrize("form", DEPRECATED_SWEEP_FORMS, ids=list(DEPRECATED_SWEEP_FORMS))
def test_2021_sweep_form_is_accepted_but_deprecated(form):
    doc = _with(SWEEP, **DEPRECATED_SWEEP_FORMS[form])
    assert not _errors("sweepJob.schema.json", doc), _fmt(_errors("sweepJob.schema.json", doc))
    assert _errors("sweepJob.schema.json", doc, ga_only=True), f"{form} is not marked deprecated"


def test_2021_algorithm_key_is_deprecated():
    algorithm = DOCS["sweepJob.schema.json"]["properties"]["algorithm"]
    assert algorithm["deprecated"] is True and "sampling_algorithm" in algorithm["deprecationMessage"]


def test_2021_sweep_needs_no_limits():
    doc = _with(SWEEP, type="sweep_job", limits=None, sampling_algorithm=None, algorithm="random")
    assert not _errors("sweepJob.schema.json", doc)


# ----------------------------------------------------------------------------------------------- negatives
NEGATIVE_COMMAND = {
    "misspelt top-level key": ({"experiment_nme": "x"}, []),
    "unknown distribution type": ({"distribution": {"type": "pytorchh"}}, ["distribution"]),
    "misspelt distribution key": ({"distribution": {"type": "mpi", "process_count": 2}}, ["distribution"]),
    "uri_file input without path": ({"inputs": {"x": {"type": "uri_file"}}}, ["inputs", "x"]),
    "eval_mount on uri_folder": ({"inputs": {"x": {"path": "d", "mode": "eval_mount"}}}, ["inputs", "x"]),
    "eval_download on typed uri_folder": (
        {"inputs": {"x": {"type": "uri_folder", "path": "d", "mode": "eval_download"}}},
        ["inputs", "x"],
    ),
    "rw_mount is an output mode": ({"inputs": {"x": {"path": "d", "mode": "rw_mount"}}}, ["inputs", "x"]),
    "unknown input type": ({"inputs": {"x": {"type": "uri_files", "path": "d"}}}, ["inputs", "x"]),
    "ro_mount is an input mode": ({"outputs": {"o": {"mode": "ro_mount"}}}, ["outputs", "o", "mode"]),
    "resources as a string": ({"resources": "instance_count=2"}, ["resources"]),
    "instance_count as a string": ({"resources": {"instance_count": "two"}}, ["resources", "instance_count"]),
    "instance_count 0": ({"resources": {"instance_count": 0}}, ["resources", "instance_count"]),
    "bad shm_size": ({"resources": {"shm_size": "2 GB"}}, ["resources", "shm_size"]),
    "placeholder environment": ({"environment": "< your environment name >"}, ["environment"]),
    "environment name without azureml:": ({"environment": "AzureML-sklearn-1.5@latest"}, ["environment"]),
    "inline environment without image": ({"environment": {"conda_file": "conda.yml"}}, ["environment"]),
    "misspelt environment key": ({"environment": {"image": "python", "conda": "c.yml"}}, ["environment"]),
    "environment variable as number": ({"environment_variables": {"N": 1}}, ["environment_variables", "N"]),
    "timeout as a string": ({"limits": {"timeout": "1h"}}, ["limits", "timeout"]),
    "unknown identity": ({"identity": {"type": "service_principal"}}, ["identity"]),
    "unknown service": ({"services": {"s": {"type": "rdp"}}}, ["services", "s"]),
    "bad job tier": ({"queue_settings": {"job_tier": "gold"}}, ["queue_settings", "job_tier"]),
    "missing command": ({"command": None}, []),
    "missing environment": ({"environment": None}, []),
    "wrong type": ({"type": "sweep"}, ["type"]),
}


@pytest.mark.parametrize("case", NEGATIVE_COMMAND, ids=list(NEGATIVE_COMMAND))
def test_command_mistake_is_rejected(case):
    changes, path = NEGATIVE_COMMAND[case]
    errors = _errors("commandJob.schema.json", _with(COMMAND, **changes))
    assert errors, f"{case} was accepted"
    assert [list(e.absolute_path) for e in errors] == [path], _fmt(errors)


NEGATIVE_SWEEP = {
    "misspelt sampling algorithm": ({"sampling_algorithm": "randomm"}, ["sampling_algorithm"]),
    "uniform without max_value": (
        {"search_space": {"x": {"type": "uniform", "min_value": 0}}},
        ["search_space", "x"],
    ),
    "unknown distribution": ({"search_space": {"x": {"type": "gaussian", "mu": 0}}}, ["search_space", "x"]),
    "choice without values": ({"search_space": {"x": {"type": "choice"}}}, ["search_space", "x"]),
    "bad goal": ({"objective": {"primary_metric": "a", "goal": "max"}}, ["objective", "goal"]),
    "missing primary metric": ({"objective": {"goal": "maximize"}}, ["objective"]),
    "limits without max_total_trials": ({"limits": {"timeout": 60}}, ["limits"]),
    "max_total_trials as a string": ({"limits": {"max_total_trials": "20"}}, ["limits", "max_total_trials"]),
    "bandit without slack": ({"early_termination": {"type": "bandit"}}, ["early_termination"]),
    "truncation without percentage": (
        {"early_termination": {"type": "truncation_selection"}},
        ["early_termination"],
    ),
    "unknown policy": ({"early_termination": {"type": "median"}}, ["early_termination"]),
    "bad random rule": ({"sampling_algorithm": {"type": "random", "rule": "halton"}}, ["sampling_algorithm"]),
    "GA sweep without limits": ({"limits": None}, []),
    "sweep without type": ({"type": None}, []),
    "misspelt trial key": ({"trial": {**SWEEP["trial"], "comand": "x"}}, ["trial"]),
}


@pytest.mark.parametrize("case", NEGATIVE_SWEEP, ids=list(NEGATIVE_SWEEP))
def test_sweep_mistake_is_rejected(case):
    changes, path = NEGATIVE_SWEEP[case]
    errors = _errors("sweepJob.schema.json", _with(SWEEP, **changes))
    assert errors, f"{case} was accepted"
    assert path in [list(e.absolute_path) for e in errors], _fmt(errors)
