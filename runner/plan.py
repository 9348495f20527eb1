"""Job model → plan: everything a backend needs, decided before anything runs, as plain JSON-able data.

Data flows one way: model.load_job → plan.make_plan → execute (prepares the run folder) → a backend. Problems found
here (kind, compute, inputs) are located in the job file and stop the submission before a run is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from mljob.runner import problems, registry
from mljob.runner.inputs import DATA_TYPES, LITERAL_TYPES, Unreachable, is_url, local_source
from mljob.runner.model import Job

DEFAULT_COMPUTE = "local"


@dataclass
class InputPlan:
    name: str
    kind: str  # "literal", or a data type (uri_file, uri_folder, …)
    value: str | None = None  # a literal's text; for data, the URI as written (what `direct` passes on)
    source: str | None = None  # data: an absolute local path or an http(s) URL
    mode: str = "ro_mount"


@dataclass
class Plan:
    name: str
    kind: str
    experiment: str
    job_file: str
    folder: str
    compute: str
    compute_type: str  # "local" (Docker) or "process"
    command: str
    environment: Any = None
    code: str | None = None
    inputs: list[InputPlan] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    environment_variables: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None
    shm_size: str | None = None
    display_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    overrides: list[str] = field(default_factory=list)
    literals: dict[str, str] = field(default_factory=dict)  # more expression values: a trial's `search_space.x`
    command_keys: list[str] = field(default_factory=lambda: ["command"])  # where the command is, for messages
    compute_settings: dict[str, Any] = field(default_factory=dict)  # the registry's (e.g. ray's address)
    distribution: dict[str, Any] | None = None  # GA `distribution` (runner/distribute.py lays it out)
    instance_count: int = 1

    @property
    def distributed(self) -> bool:
        return bool(self.distribution) or self.instance_count > 1

    @property
    def present_inputs(self) -> set[str]:
        return {i.name for i in self.inputs}

    def params(self) -> dict[str, str]:
        found = {i.name: str(i.value if i.value is not None else i.source) for i in self.inputs}
        for key, value in self.literals.items():
            name = key.removeprefix("search_space.")
            found[name if name not in found else key] = value  # a trial's hyperparameters, as Azure ML shows them
        return found

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        raw = json.loads(text)
        raw["inputs"] = [InputPlan(**i) for i in raw.get("inputs", [])]
        return cls(**raw)


def _literal(value: Any) -> str:
    # YAML booleans reach the command as Azure ML writes them (Python's str: True/False).
    return str(value)


def _compute(job: Job, overrides: Sequence[str]) -> registry.Compute:
    raw = job.data.get("compute") or DEFAULT_COMPUTE
    name = str(raw).removeprefix("azureml:")
    known = registry.computes()
    found = known.get(name)
    if found is None:
        listed = ", ".join(sorted(known))
        raise problems.located(
            job.path, overrides, ["compute"], problems.UNKNOWN_COMPUTE,
            f"compute `{raw}` is not configured on this machine (known: {listed}). Add it with "
            f"`mljob compute create -n {name} --type local` (Docker) or `--type process`, or run here with "
            "`--set compute=local`.")
    if found.type not in ("local", "process", "ray"):
        raise problems.located(
            job.path, overrides, ["compute"], problems.UNKNOWN_COMPUTE,
            f"compute `{name}` has type `{found.type}`, which mljob cannot run jobs on; use a compute of type "
            "`local` (Docker), `process` or `ray`.")
    return found


def _inputs(job: Job, overrides: Sequence[str]) -> list[InputPlan]:
    planned: list[InputPlan] = []
    raw_inputs = job.data.get("inputs") or {}
    for name, spec in raw_inputs.items():
        if spec is None:
            continue  # declared without a value: absent, so its `$[[…]]` segments drop out
        if not isinstance(spec, dict):
            planned.append(InputPlan(name, "literal", _literal(spec)))
            continue
        kind = str(spec.get("type") or "")
        if kind in LITERAL_TYPES or (not kind and "path" not in spec):
            value = spec.get("value", spec.get("default"))
            if value is not None:
                planned.append(InputPlan(name, "literal", _literal(value)))
            continue
        path = spec.get("path")
        if path is None:
            continue
        text = str(path)
        mode = str(spec.get("mode") or "ro_mount")
        if kind and kind not in DATA_TYPES:
            raise problems.located(job.path, overrides, job.where(["inputs", name, "type"]), problems.NOT_RUNNABLE,
                                   f"input `{name}` has type `{kind}`, which cannot be run locally.")
        if mode == "direct":
            planned.append(InputPlan(name, kind or "uri_folder", text, None, mode))
            continue
        try:
            local = local_source(text, job.folder)
        except Unreachable as err:
            raise problems.located(job.path, overrides, job.where(["inputs", name, "path"]), problems.INPUT_UNREACHABLE,
                                   f"input `{name}`: {err}") from None
        if local is None:  # an http(s) URL: fetched when the run is prepared
            if kind == "uri_folder":
                raise problems.located(job.path, overrides, job.where(["inputs", name, "path"]),
                                       problems.INPUT_UNREACHABLE,
                                       f"input `{name}`: a uri_folder cannot be downloaded over http(s); "
                                       "download it and give the local folder.")
            planned.append(InputPlan(name, kind or "uri_file", text, text, mode))
            continue
        if not local.exists():
            raise problems.located(job.path, overrides, job.where(["inputs", name, "path"]), problems.INPUT_MISSING,
                                   f"input `{name}`: {local} does not exist. Create it, or fix the path "
                                   "(relative paths start at the job file's folder).")
        kind = kind or ("uri_file" if local.is_file() else "uri_folder")
        planned.append(InputPlan(name, kind, text, str(local.resolve()), mode))
    return planned


def make_plan(job: Job, name: str, overrides: Sequence[str] = ()) -> Plan:
    data = job.data
    if job.kind != "command":
        raise problems.located(job.path, overrides, job.where(["type"]), problems.NOT_RUNNABLE,
                               f"this is a {job.kind} job; mljob runs command and sweep jobs (pipeline and other "
                               "kinds are not supported yet).")
    compute = _compute(job, overrides)
    code = data.get("code")
    code_path: str | None = None
    if code:
        text = str(code)
        if text.startswith(("azureml:", "git+")) or is_url(text):
            raise problems.located(job.path, overrides, job.where(["code"]), problems.NOT_RUNNABLE,
                                   f"code `{text}` is not a local folder; mljob snapshots local code only.")
        path = local_source(text, job.folder)
        if path is None or not path.exists():
            raise problems.located(job.path, overrides, job.where(["code"]), problems.INPUT_MISSING,
                                   f"code folder {path} does not exist.")
        code_path = str(path.resolve())
    limits = data.get("limits") or {}
    resources = data.get("resources") or {}
    outputs = data.get("outputs") or {}
    from mljob.runner.distribute import DistributionError, layout_for

    try:
        layout = layout_for(data)
    except DistributionError as err:
        raise problems.located(job.path, overrides, job.where(["distribution"]), problems.NOT_RUNNABLE,
                               str(err)) from None
    return Plan(
        name=name,
        kind=job.kind,
        experiment=job.experiment_name,
        job_file=str(job.path.resolve()),
        folder=str(job.folder.resolve()),
        compute=compute.name,
        compute_type=compute.type,
        compute_settings=dict(compute.settings),
        command=str(data.get("command") or ""),
        environment=data.get("environment"),
        code=code_path,
        inputs=_inputs(job, overrides),
        outputs=[str(k) for k in outputs],
        environment_variables={str(k): str(v) for k, v in (data.get("environment_variables") or {}).items()},
        timeout=float(limits["timeout"]) if limits.get("timeout") else None,
        shm_size=str(resources["shm_size"]) if resources.get("shm_size") else None,
        display_name=data.get("display_name"),
        tags={str(k): str(v) for k, v in (data.get("tags") or {}).items()},
        overrides=list(overrides),
        command_keys=job.where(["command"]),
        distribution=dict(data["distribution"]) if isinstance(data.get("distribution"), dict) else None,
        instance_count=len(layout.instances),
    )
