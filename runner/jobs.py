"""The `az ml job` verbs on this machine: create (and `run`), show, list, stream, download, cancel."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from mljob.runner import orphans, problems, procfs
from mljob.runner.execute import Execution, Outcome, last_lines, log_file, run_dir_for, submit
from mljob.runner.history import TERMINAL, History, RunView, local_path
from mljob.runner.model import Job, JobInvalid, load_job

EXIT = {"Completed": 0, "Failed": 1, "Canceled": 130}


def _out(text: str = "") -> None:
    print(text, flush=True)


def _err(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _when(ms: int | None) -> str:
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S") if ms else "-"


def _duration(view: RunView) -> str:
    if not view.start_time:
        return "-"
    end = view.end_time if view.status in TERMINAL and view.end_time else time.time() * 1000
    return f"{(end - view.start_time) / 1000:.1f}s"


def _summary(name: str, outcome: Outcome, history: History, run_id: str) -> None:
    _out(f"\nExecution summary\nRunId: {name}\nStatus: {outcome.status}")
    if outcome.exit_code is not None and outcome.status != "Completed":
        _out(f"Exit code: {outcome.exit_code}")
    if outcome.reason:
        _out(f"Reason: {outcome.reason}")
    if outcome.status != "Completed":
        tail = last_lines(run_dir_for(name))
        if tail:
            _out("Last lines of user_logs/std_log.txt:\n" + "\n".join(f"  {line}" for line in tail))
    _out(f"Record: MLflow run {run_id} in {history.uri}\nShow it: mljob job show -n {name}")


class _TextEcho:
    """A binary sink over a text stream that has no `.buffer` (an embedding program's StringIO)."""

    def __init__(self, text: TextIO) -> None:
        self.text = text

    def write(self, data: bytes) -> int:
        return self.text.write(data.decode("utf-8", errors="replace"))

    def flush(self) -> None:
        self.text.flush()


def _binary(stream: TextIO) -> BinaryIO:
    return getattr(stream, "buffer", None) or _TextEcho(stream)  # type: ignore[return-value]


def dry_run(job: Job, overrides: list[str]) -> int:
    """What would run, and nothing recorded: the plan, and for a distributed job every instance and process."""
    from mljob.runner.backends.docker_group import container_layout
    from mljob.runner.backends.units import layout_of
    from mljob.runner.distribute import describe
    from mljob.runner.plan import make_plan

    if job.kind == "sweep":
        from mljob.runner.sweep.plan import make_sweep_plan

        sweep = make_sweep_plan(job, "dry_run", overrides)
        _out(f"sweep: {sweep.max_total_trials} trials, {sweep.max_concurrent_trials} at a time, {sweep.goal} "
             f"`{sweep.metric}`, sampling {sweep.data.get('sampling_algorithm')}")
        for key, dim in sweep.space().items():
            _out(f"  search_space.{key}: {dim.type} {dim.args}")
        plan = sweep.trial_plan("dry_run_0", {})
        _out("each trial:")
    else:
        plan = make_plan(job, "dry_run", overrides)
    _out(f"compute: {plan.compute} ({plan.compute_type})\nenvironment: {plan.environment}\n"
         f"command: {plan.command.strip()}")
    for item in plan.inputs:
        _out(f"input {item.name}: {item.kind} {item.source or item.value} ({item.mode})")
    if plan.compute_type == "process":
        layout = layout_of(plan.distribution, plan.instance_count, plan.environment_variables, None, 29500)
        where = "processes on this machine (the master port is a free one, chosen at start)"
    else:
        layout = container_layout(plan.distribution, plan.instance_count, plan.environment_variables)
        where = "one container per instance, on a private network of the run's own"
    _out(f"{where}:\n{describe(layout)}")
    return 0


def create(file: str, overrides: list[str], name: str | None, stream: bool, dry: bool = False) -> int:
    orphans.reap()
    try:
        job = load_job(Path(file), overrides)
    except JobInvalid as err:
        _err(str(err))
        return 1
    for warning in job.warnings:
        if warning.code != "MLJ301":  # 2021 syntax is fine to run; `mljob validate` names the GA forms
            from mljob.runner.report import line_format

            _err(line_format(job.path, warning, overrides))
    if dry:
        return dry_run(job, overrides)
    if job.kind == "sweep":
        from mljob.runner.sweep import verbs as sweeps

        return sweeps.create(job, overrides, name, stream)
    submission = submit(job, overrides, name)
    plan = submission.plan
    if not stream:
        log = (submission.run_dir / "runner.log").open("ab")
        child = subprocess.Popen([sys.executable, "-m", "mljob.runner.supervise", str(submission.run_dir)],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        orphans.claim(plan.name, child.pid)
        _out(f"RunId: {plan.name}\nExperiment: {plan.experiment}\nCompute: {plan.compute}\n"
             f"Follow it: mljob job stream -n {plan.name}")
        return 0
    _out(f"RunId: {plan.name}\nExperiment: {plan.experiment}\nCompute: {plan.compute}\n"
         f"Streaming user_logs/std_log.txt\n{'=' * 40}")
    outcome = Execution(submission, echo=_binary(sys.stdout)).execute()
    _summary(plan.name, outcome, submission.history, submission.run_id)
    return EXIT.get(outcome.status, 1)


def _find(history: History, name: str) -> RunView:
    view = history.find(name)
    if view is None:
        raise problems.NotFound(f"error: no job named `{name}` in the run history ({history.uri}). "
                                "`mljob job list` shows the jobs there.")
    return view


def show(name: str) -> int:
    orphans.reap()
    history = History()
    view = _find(history, name)
    _out(f"name: {view.name}\nstatus: {view.status}")
    if view.reason:
        _out(f"reason: {view.reason}")
    tags = view.tags
    _out(f"experiment: {view.experiment}\ncompute: {tags.get('mljob.compute', '-')}\n"
         f"created: {_when(view.start_time)}\nduration: {_duration(view)}\nsource: {tags.get('mljob.source', '-')}")
    if "mlflow.source.git.commit" in tags:
        dirty = " (dirty)" if tags.get("mljob.git.dirty") == "true" else ""
        _out(f"git: {tags.get('mlflow.source.git.repoURL', '-')} {tags['mlflow.source.git.commit']}{dirty}")
    _out(f"command: {tags.get('mljob.command.resolved') or tags.get('mljob.command', '')}".rstrip())
    _out("params:" if view.params else "params: none")
    for key, value in sorted(view.params.items()):
        _out(f"  {key}: {value}")
    _out("metrics:" if view.metrics else "metrics: none")
    for key, value in sorted(view.metrics.items()):
        _out(f"  {key}: {value:g}")
    from mljob.runner.sweep import verbs as sweeps

    if sweeps.is_sweep(view):
        sweeps.show(history, view)
    files = list(history.artifacts(view.run_id))
    _out("artifacts:" if files else "artifacts: none")
    for path, size in files:
        _out(f"  {path}" + (f" ({size} B)" if size is not None else ""))
    if view.status == "Failed":
        tail = last_lines(run_dir_for(view.name))
        if tail:
            _out("last lines of user_logs/std_log.txt:")
            for line in tail:
                _out(f"  {line}")
    _out(f"record: MLflow run {view.run_id} (experiment {view.experiment_id}) in {history.uri}\n"
         f"artifacts at: {local_path(view.artifact_uri) or view.artifact_uri}")
    return 0


def list_jobs(experiment: str | None, status: str | None) -> int:
    orphans.reap()
    history = History()
    views = history.runs(experiment, status)
    if not views:
        _err("no jobs" + (f" in experiment `{experiment}`" if experiment else "")
             + (f" with status {status}" if status else ""))
        return 0
    rows = [("NAME", "STATUS", "EXPERIMENT", "COMPUTE", "CREATED", "DURATION")]
    rows += [(v.name, v.status, v.experiment, v.tags.get("mljob.compute", "-"), _when(v.start_time), _duration(v))
             for v in views]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        _out("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _running(name: str) -> bool:
    entry = orphans.read(name)
    return entry is not None and orphans.runner_alive(entry)


def stream(name: str) -> int:
    from mljob.runner.sweep import verbs as sweeps

    orphans.reap()
    path = log_file(run_dir_for(name))
    history = History()
    view = _find(history, name)
    if sweeps.is_sweep(view):
        path = sweeps.log_path(run_dir_for(name))
    out = _binary(sys.stdout)
    if not path.exists() and view.status in TERMINAL:
        try:
            path = history.download(view.run_id, "user_logs/std_log.txt", run_dir_for(name) / "downloaded")
        except Exception:  # noqa: BLE001 (a run without output has no log artifact)
            path = Path("/nonexistent")
    position = 0
    while True:
        alive = _running(name)
        if path.exists():
            with path.open("rb") as handle:
                handle.seek(position)
                chunk = handle.read()
            if chunk:
                out.write(chunk)
                out.flush()
                position += len(chunk)
        if not alive:
            break
        time.sleep(0.2)
    orphans.reap()
    view = _find(history, name)
    if sweeps.is_sweep(view):
        sweeps.summary(name, history)
    else:
        _summary(name, Outcome(view.status, view.reason), history, view.run_id)
    return EXIT.get(view.status, 1)


def download(name: str, outputs: bool, everything: bool, download_path: str | None) -> int:
    from mljob.runner.sweep import verbs as sweeps

    history = History()
    view = _find(history, name)
    target = Path(download_path) if download_path else Path.cwd() / name
    if sweeps.is_sweep(view):
        # As `az ml job download` of a sweep: the best trial's files (the sweep's own report is in `job show`).
        best = sweeps.best_trial(history, view)
        if best is None:
            _err(f"{name}: the sweep has no best trial (yet): nothing to download")
            return 1
        _err(f"{name}: downloading the best trial, {best.name}")
        view = best
    tops = {p.split("/", 1)[0] for p, _ in history.artifacts(view.run_id)}
    if everything:
        wanted = sorted(tops)
    elif outputs:
        wanted = [t for t in ("outputs", "named-outputs") if t in tops]
    else:
        wanted = [t for t in ("outputs", "logs", "user_logs") if t in tops]
    if not wanted:
        _err(f"{name}: nothing to download")
        return 0
    for top in wanted:
        # Laid out as `az ml job download` does: artifacts/… and named-outputs/NAME/….
        place = target if top == "named-outputs" else target / "artifacts"
        history.download(view.run_id, top, place)
        _err(f"downloaded {top}/ to {place / top}")
    return 0


def resume(name: str, stream: bool) -> int:
    from mljob.runner.sweep import verbs as sweeps

    return sweeps.resume(name, stream)


def cancel(name: str) -> int:
    history = History()
    view = _find(history, name)
    entry = orphans.read(name)
    if entry is None:
        if view.status in TERMINAL:
            _out(f"{name} is already {view.status}")
            return 0
        history.set_status(view.run_id, "Canceled", "canceled with `mljob job cancel` (no runner was found)")
        _out(f"{name}: Canceled")
        return 0
    (Path(entry["run_dir"]) / "cancel").touch()
    # The file is the request; SIGTERM only wakes the runner, and is sent once its entry says a handler will take it
    # (a detached runner still starting would die of it: the run would end Canceled, but not by its runner's hand).
    # The runner reads the file as soon as its handler is in place, so a cancel made before is not lost; one that is
    # not listening after a few seconds is signalled anyway. Waiting lasts only while that runner (its pid and start
    # time) lives: a runner gone is cleaned up below at once.
    asked = time.monotonic()
    signalled = False
    while time.monotonic() < asked + 60:
        entry = orphans.read(name)
        if entry is None or not orphans.runner_alive(entry):
            break
        if not signalled and (entry.get("listening", True) or time.monotonic() > asked + 5):
            signalled = True
            procfs.signal_process(int(entry["pid"]), str(entry["pid_start"]), signal.SIGTERM)
        time.sleep(0.05)
    orphans.reap(quiet=True)
    view = _find(history, name)
    _out(f"{name}: {view.status}" + (f" ({view.reason})" if view.reason else ""))
    return 0 if view.status in TERMINAL else 1
