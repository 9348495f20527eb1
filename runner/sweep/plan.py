"""Sweep job model → sweep plan: everything the driver needs, checked before anything is recorded, as JSON-able data.

A trial is a command job made of the sweep's `trial:` (command, code, environment, …) plus the sweep's inputs,
outputs and compute; its `${{search_space.x}}` take the sampled values (quoted where they stand, as inputs are).
The plan keeps the job data itself, so that a resumed sweep runs the trials the first driver would have run, even if
the file changed since.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mljob.runner import problems
from mljob.runner.model import Job
from mljob.runner.plan import Plan, make_plan
from mljob.runner.sweep import sampling, space
from mljob.runner.sweep.policies import PolicyError, make_policy

DEFAULT_MAX_TOTAL = 1000  # Azure ML requires max_total_trials; a file that leaves it out still gets a bound


@dataclass
class SweepPlan:
    name: str
    experiment: str
    job_file: str
    overrides: list[str]
    data: dict[str, Any]  # the sweep job (GA syntax, overrides applied)
    metric: str
    goal: str  # "minimize" | "maximize"
    max_total_trials: int
    max_concurrent_trials: int
    timeout: float | None
    trial_timeout: float | None
    compute: str
    compute_type: str
    display_name: str | None = None
    caveats: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> SweepPlan:
        return cls(**json.loads(text))

    # --- what the driver builds from it ---------------------------------------------------------------------------

    def space(self) -> dict[str, space.Dimension]:
        _, settings = sampling.algorithm_of(self.data.get("sampling_algorithm"))
        return space.parse_space(self.data.get("search_space") or {}, logbase=settings.get("logbase", math.e))

    def sampler(self) -> Any:
        return sampling.make_sampler(self.data.get("sampling_algorithm"), self.space())

    def policy(self) -> Any:
        return make_policy(self.data.get("early_termination"), self.goal)

    def trial_job(self) -> Job:
        data = self.data
        trial = dict(data.get("trial") or {})
        trial_data: dict[str, Any] = {
            **trial,
            "type": "command",
            "inputs": data.get("inputs") or {},
            "outputs": data.get("outputs") or {},
            "compute": data.get("compute"),
            "experiment_name": self.experiment,
        }
        if self.trial_timeout:
            trial_data["limits"] = {"timeout": self.trial_timeout}
        return Job("command", trial_data, Path(self.job_file), [], trial_of=self.name)

    def trial_plan(self, name: str, values: dict[str, Any]) -> Plan:
        plan = make_plan(self.trial_job(), name, self.overrides)
        plan.literals = {f"search_space.{k}": space.format_value(v) for k, v in values.items()}
        plan.tags = {**plan.tags, "mljob.sweep": self.name}
        return plan


def _positive(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def make_sweep_plan(job: Job, name: str, overrides: Sequence[str] = ()) -> SweepPlan:
    data = job.data

    def fail(keys: list[str], message: str, code: str = problems.NOT_RUNNABLE) -> problems.RunError:
        return problems.located(job.path, overrides, keys, code, message)

    trial = data.get("trial")
    if not isinstance(trial, dict):
        raise fail(["trial"], "mljob runs sweeps whose `trial:` is written inline (command, code, environment); "
                              "a trial given as a component file or registry reference is not supported yet.")
    objective = data.get("objective") or {}
    metric = str(objective.get("primary_metric") or "")
    goal = str(objective.get("goal") or "").lower()
    if not metric or goal not in ("minimize", "maximize"):
        raise fail(["objective"], "a sweep needs `objective: {primary_metric: NAME, goal: minimize|maximize}`; the "
                                  "trials log NAME with `mlflow.log_metric`.")
    try:
        algorithm, _ = sampling.algorithm_of(data.get("sampling_algorithm"))
    except sampling.SamplingError as err:
        raise fail(["sampling_algorithm"], str(err)) from None
    try:
        parsed = space.parse_space(data.get("search_space") or {})
    except space.SpaceError as err:
        raise fail(["search_space"], str(err)) from None
    if not parsed:
        raise fail(["search_space"], "the search space is empty: add at least one hyperparameter, e.g. "
                                     "`lr: {type: uniform, min_value: 0.001, max_value: 0.1}`.")
    try:
        sampling.make_sampler(data.get("sampling_algorithm"), parsed)
    except (sampling.SamplingError, space.SpaceError) as err:
        raise fail(["sampling_algorithm"], str(err)) from None
    try:
        make_policy(data.get("early_termination"), goal)
    except PolicyError as err:
        raise fail(["early_termination"], str(err)) from None
    limits = data.get("limits") or {}
    total = _positive(limits.get("max_total_trials")) or DEFAULT_MAX_TOTAL
    if algorithm == "grid":
        total = min(total, sampling.grid_size(parsed))  # past the grid, Optuna would repeat points
    concurrent = _positive(limits.get("max_concurrent_trials")) or min(total, os.cpu_count() or 1)
    timeout = float(limits["timeout"]) if limits.get("timeout") else None
    trial_timeout = float(limits["trial_timeout"]) if limits.get("trial_timeout") else None
    sweep = SweepPlan(
        name=name, experiment=job.experiment_name, job_file=str(job.path.resolve()), overrides=list(overrides),
        data=data, metric=metric, goal=goal, max_total_trials=total, max_concurrent_trials=min(concurrent, total),
        timeout=timeout, trial_timeout=trial_timeout, compute="", compute_type="",
        display_name=data.get("display_name"),
        caveats=sampling.azure_caveats(data.get("sampling_algorithm"), parsed),
    )
    # The trial must plan as a command job: its compute, code, inputs are checked now, before anything is recorded.
    probe = sweep.trial_plan(f"{name}_probe", {})
    sweep.compute, sweep.compute_type = probe.compute, probe.compute_type
    return sweep
