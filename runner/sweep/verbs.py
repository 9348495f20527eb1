"""The job verbs for sweeps: create (and `run`), resume, show, download, as jobs.py has them for command jobs.

A sweep's own record is an MLflow run (tags: kind sweep, objective, limits; at the end the best trial, its value as
the run's metric and its hyperparameters as `best.*` params; the report under artifacts `sweep/`); each trial is a
child run (MLflow's `mlflow.parentRunId`). The driver's lines go to the terminal with --stream and always to
runs/SWEEP/sweep.log, which `mljob job stream` follows.
"""

from __future__ import annotations

import subprocess
import sys
import time
import traceback
from pathlib import Path

from mljob.runner import names, orphans, problems
from mljob.runner.execute import Outcome, reserve, runs_dir
from mljob.runner.history import TERMINAL, History, RunView, local_path
from mljob.runner.model import Job
from mljob.runner.sweep import results
from mljob.runner.sweep.driver import Driver, load_plan, save_plan
from mljob.runner.sweep.plan import SweepPlan, make_sweep_plan

EXIT = {"Completed": 0, "Failed": 1, "Canceled": 130}


def _out(text: str = "") -> None:
    print(text, flush=True)


def log_path(run_dir: Path) -> Path:
    return run_dir / "sweep.log"


def _sayer(run_dir: Path, echo: bool) -> object:
    path = log_path(run_dir)

    def say(line: str) -> None:
        stamped = f"{time.strftime('%H:%M:%S')} {line}"
        with path.open("a", encoding="utf-8") as log:
            log.write(stamped + "\n")
        if echo:
            _out(stamped)

    return say


def create(job: Job, overrides: list[str], name: str | None, stream: bool) -> int:
    if name is not None and not names.is_valid(name):
        raise problems.plain(None, problems.BAD_NAME, f"`{name}` is not a job name: use letters, digits, `_` and "
                             "`-`, starting with a letter or digit.")
    if name is not None and load_plan(name) is not None:
        _out(f"{name} is a sweep of this machine already: resuming it (its plan, not the file, decides the trials)")
        return resume(name, stream)
    sweep = make_sweep_plan(job, name or names.new_name(), overrides)
    history = History()
    sweep.name, run_dir = reserve(name, sweep.name, history)
    inputs = {str(k): str(v if not isinstance(v, dict) else v.get("path", v.get("value", v)))
              for k, v in (sweep.data.get("inputs") or {}).items() if v is not None}
    tags = {
        "mljob.kind": "sweep", "mljob.source": sweep.job_file, "mlflow.source.name": sweep.job_file,
        "mlflow.source.type": "LOCAL", "mljob.compute": sweep.compute, "mljob.compute_type": sweep.compute_type,
        "mljob.run_dir": str(run_dir), "mljob.sweep.primary_metric": sweep.metric, "mljob.sweep.goal": sweep.goal,
        "mljob.sweep.max_total_trials": str(sweep.max_total_trials),
        "mljob.sweep.max_concurrent_trials": str(sweep.max_concurrent_trials),
        "mljob.sweep.sampling_algorithm": str(sweep.data.get("sampling_algorithm") or "random"),
        "mljob.command": str((sweep.data.get("trial") or {}).get("command") or ""),
    }
    if sweep.overrides:
        tags["mljob.overrides"] = " ".join(sweep.overrides)
    if sweep.data.get("description"):
        tags["mlflow.note.content"] = str(sweep.data["description"])
    if sweep.display_name:
        tags["mljob.display_name"] = str(sweep.display_name)
    view = history.create_run(sweep.experiment, sweep.name, inputs, tags)
    save_plan(run_dir, sweep, view.run_id, view.experiment_id)
    orphans.register(sweep.name, {"run_id": view.run_id, "tracking_uri": history.uri, "run_dir": str(run_dir),
                                  "compute_type": "sweep", "started": True})
    orphans.claim(sweep.name)
    _out(f"RunId: {sweep.name}\nExperiment: {sweep.experiment}\nCompute: {sweep.compute}\n"
         f"Sweep: {sweep.max_total_trials} trials, {sweep.max_concurrent_trials} at a time, "
         f"{sweep.goal} `{sweep.metric}`")
    for caveat in sweep.caveats:
        print(f"note: {caveat}", file=sys.stderr)
    if not stream:
        return _detach(sweep.name, run_dir)
    return _drive(sweep, run_dir, view.run_id, history, echo=True)


def _detach(name: str, run_dir: Path) -> int:
    log = (run_dir / "runner.log").open("ab")
    child = subprocess.Popen([sys.executable, "-m", "mljob.runner.supervise", str(run_dir)],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    orphans.claim(name, child.pid)
    _out(f"Follow it: mljob job stream -n {name}")
    return 0


def _drive(sweep: SweepPlan, run_dir: Path, run_id: str, history: History, *, echo: bool) -> int:
    say = _sayer(run_dir, echo)
    history.set_status(run_id, "Running")
    try:
        outcome = Driver(sweep, run_dir, run_id, history, say).run()  # type: ignore[arg-type]
    except problems.RunError as err:
        outcome = Outcome("Failed", str(err))
    except Exception as err:  # noqa: BLE001 (recorded, never shown as a traceback)
        with (run_dir / "runner.log").open("a", encoding="utf-8") as log:
            traceback.print_exc(file=log)
        outcome = Outcome("Failed", f"internal error in the sweep driver: {type(err).__name__}: {err} "
                                    f"(details in {run_dir / 'runner.log'})")
    history.set_status(run_id, outcome.status, outcome.reason or None)
    orphans.unregister(sweep.name)
    if echo:
        summary(sweep.name, history)
    return EXIT.get(outcome.status, 1)


def drive_detached(run_dir: Path) -> int:
    """What `python -m mljob.runner.supervise RUN_DIR` runs for a sweep."""
    loaded = load_plan(run_dir.name)
    if loaded is None:
        return 1
    sweep, run_dir, run_id = loaded
    entry = orphans.read(sweep.name) or {}
    orphans.claim(sweep.name)
    return _drive(sweep, run_dir, run_id, History(entry.get("tracking_uri")), echo=False)


def resume(name: str, stream: bool) -> int:
    orphans.reap()
    loaded = load_plan(name)
    if loaded is None:
        raise problems.NotFound(f"error: no sweep named `{name}` was started on this machine ({runs_dir()}).")
    sweep, run_dir, run_id = loaded
    entry = orphans.read(name)
    if entry is not None and orphans.runner_alive(entry):
        _out(f"{name} is running (driver pid {entry.get('pid')}); follow it with `mljob job stream -n {name}`")
        return 1
    history = History()
    view = history.get(run_id)
    if view.status in ("Completed", "Canceled"):
        _out(f"{name} is already {view.status}; nothing to resume")
        return 0
    history.set_tags(run_id, {"mljob.reason": "", "mljob.resumed": str(int(view.tags.get("mljob.resumed", "0")) + 1)})
    orphans.register(name, {"run_id": run_id, "tracking_uri": history.uri, "run_dir": str(run_dir),
                            "compute_type": "sweep", "started": True})
    orphans.claim(name)
    _out(f"RunId: {name} (resumed)")
    if not stream:
        return _detach(name, run_dir)
    return _drive(sweep, run_dir, run_id, history, echo=True)


def report_for(history: History, view: RunView) -> results.Report:
    loaded = load_plan(view.name)
    keys = list(loaded[0].space()) if loaded is not None else []
    metric = view.tags.get("mljob.sweep.primary_metric", "")
    trials = [v for v in history.runs(parent=view.run_id, limit=None)
              if v.tags.get(orphans.INTERRUPTED_TAG) != "true"]
    curves = {v.tags.get(results.TRIAL_TAG, v.name): [p.value for p in history.metric_history(v.run_id, metric)]
              for v in trials}
    return results.Report(metric, view.tags.get("mljob.sweep.goal", "minimize"), trials, curves, keys)


def summary(name: str, history: History) -> None:
    view = history.find(name)
    if view is None:
        return
    report = report_for(history, view)
    _out("\n" + "\n".join(report.table()))
    _out(f"\nExecution summary\nRunId: {name}\nStatus: {view.status}")
    if view.reason:
        _out(f"Reason: {view.reason}")
    best = report.best()
    if best is not None:
        hyper = " ".join(f"{k}={v}" for k, v in report.hyperparameters(best).items())
        _out(f"Best trial: {best.name} ({report.metric}={report.value(best):g}; {hyper})")
    _out(f"Record: MLflow run {view.run_id} in {history.uri}\nShow it: mljob job show -n {name}")


def show(history: History, view: RunView) -> None:
    report = report_for(history, view)
    _out(f"objective: {report.goal} {report.metric}")
    best = report.best()
    if best is not None:
        _out(f"best trial: {best.name} ({report.metric}={report.value(best):g})")
    _out("trials:")
    for line in report.table():
        _out(f"  {line}")
    pictures = [p for p, _ in history.artifacts(view.run_id, "sweep") if p.endswith(".svg")]
    if pictures:
        folder = local_path(view.artifact_uri)
        _out("pictures: " + ", ".join(f"{folder / p if folder else view.artifact_uri + '/' + p}" for p in pictures))


def best_trial(history: History, view: RunView) -> RunView | None:
    run_id = view.tags.get("mljob.sweep.best_run_id")
    return history.get(run_id) if run_id else None


def is_sweep(view: RunView) -> bool:
    return view.tags.get("mljob.kind") == "sweep"


def terminal(view: RunView) -> bool:
    return view.status in TERMINAL
