"""Which schema judges a document: `$schema` (catalog URL or local file), the modeline, `type`, or the shape."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mljob.runner.diagnostics import Diagnostic, Severity
from mljob.runner.document import MappingNode, Node, ScalarNode, get, node_range, scalar

from mljob import schemas

MODELINE = re.compile(r"^#\s*yaml-language-server\s*:\s*\$schema=(?P<ref>\S+)", re.M)

# Labels used in messages ("Unknown key `x` in a sweep job").
_LABELS = {
    "command": "command job",
    "sweep": "sweep job",
    "pipeline": "pipeline job",
    "spark": "Spark job",
    "automl": "AutoML job",
}


@dataclass
class Kind:
    """What a document is, and the schema that judges it."""

    schema: dict[str, Any] | bool
    base: str | Path  # bundled file name, or the path of a local schema file
    label: str
    job: str | None  # command | sweep | pipeline | spark | automl; None for components, assets and unknown
    source: str  # "$schema" | "modeline" | "type" | "shape"
    entry: schemas.CatalogEntry | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def _bundled(entry: schemas.CatalogEntry, source: str) -> Kind:
    job = entry.job
    return Kind(schemas.load(entry.file), entry.file, _LABELS.get(job or "", entry.title.lower()), job, source, entry)


def _is_url(ref: str) -> bool:
    return re.match(r"^[a-zA-Z][\w+.-]*://", ref) is not None


def _local_kind(ref: str, folder: Path | None, node: Node | None, root: Node, source: str) -> Kind | None:
    """A `$schema` that is a path: the team's own schema, often extending ours."""
    path = Path(ref.removeprefix("file://"))
    if not path.is_absolute():
        if folder is None:
            return None
        path = folder / path
    diags: list[Diagnostic] = []
    try:
        schema = schemas.load_local(path)
    except (OSError, ValueError, json.JSONDecodeError) as err:
        message = (f"Cannot read the local schema `{ref}`: {getattr(err, 'strerror', None) or err}. "
                   "Fix the path or remove `$schema`.")
        if node is not None:
            diags.append(Diagnostic(node_range(node), Severity.ERROR, "MLJ011", message))
        kind = _by_type_or_shape(root)
        if kind is not None:
            kind.diagnostics.extend(diags)
        return kind or Kind(True, path, "document", None, source, None, diags)
    job = schema.get("x-mljob-kind") if isinstance(schema, dict) else None
    if job is None:
        guessed = _by_type_or_shape(root)
        job = guessed.job if guessed else None
    label = _LABELS.get(job or "", "document")
    return Kind(schema, path.resolve(), label, job, source, None, diags)


_STEP_TYPES = {"command", "sweep", "pipeline", "spark", "parallel", "automl", "import", "data_transfer"}


def _looks_like_pipeline_steps(jobs: Node | None) -> bool:
    # `jobs:` alone also opens a GitHub workflow or a CI file; Azure ML steps name a component or a step type.
    if not isinstance(jobs, MappingNode) or not jobs.value:
        return False
    for _, step in jobs.value:
        if not isinstance(step, MappingNode):
            return False
        step_type = scalar(get(step, "type"))
        if get(step, "component") is None and step_type not in _STEP_TYPES:
            return False
    return True


def _by_type_or_shape(root: Node) -> Kind | None:
    type_value = scalar(get(root, "type"))
    if type_value:
        entry = schemas.entry_for_job_type(type_value)
        if entry is not None:
            return _bundled(entry, "type")
    if not isinstance(root, MappingNode):
        return None
    keys = {k.value for k, _ in root.value if isinstance(k, ScalarNode)}
    # The seed's hello-world.yml has no `$schema` and no `type`: a command and somewhere to run it make a job.
    if "trial" in keys and ("search_space" in keys or "objective" in keys):
        return _bundled(schemas.catalog()[1]["sweepJob"], "shape")
    if "command" in keys and keys & {"environment", "compute", "code"}:
        if "outputs" in keys and "name" in keys and "version" in keys:
            return None  # a component has the same keys; without `$schema` we do not guess
        return _bundled(schemas.catalog()[1]["commandJob"], "shape")
    if "jobs" in keys and "on" not in keys and _looks_like_pipeline_steps(get(root, "jobs")):
        return _bundled(schemas.catalog()[1]["pipelineJob"], "shape")
    return None


def identify(root: Node | None, text: str, folder: Path | None) -> Kind | None:
    """The kind of one document, or None when it is not something mljob judges (a conda file, say)."""
    if not isinstance(root, MappingNode):
        return None
    diags: list[Diagnostic] = []
    schema_node = get(root, "$schema")
    ref = scalar(schema_node)
    source = "$schema"
    if ref is None:
        modeline = MODELINE.search(text[:4096])
        if modeline is not None:
            ref, source, schema_node = modeline.group("ref"), "modeline", None
    if ref:
        if _is_url(ref) and not ref.startswith("file://"):
            entry = schemas.lookup_url(ref)
            if entry is not None:
                return _bundled(entry, source)
            if schema_node is not None:
                diags.append(Diagnostic(
                    node_range(schema_node), Severity.INFORMATION, "MLJ010",
                    f"mljob does not know the schema `{ref}` and never downloads one; the file is checked by its "
                    "shape. Use a URL from the catalog (e.g. "
                    "`https://azuremlschemas.azureedge.net/latest/commandJob.schema.json`) or a local schema path."))
        else:
            kind = _local_kind(ref, folder, schema_node, root, source)
            if kind is not None:
                return kind
    kind = _by_type_or_shape(root)
    if kind is not None:
        kind.diagnostics.extend(diags)
        return kind
    if diags:
        return Kind(True, "", "document", None, "$schema", None, diags)
    return None
