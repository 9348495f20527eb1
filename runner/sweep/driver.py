"""The sweep driver: asks Optuna for hyperparameters, runs each trial as a command job on the runner's backends,
watches the primary metric as the trials log it, stops the trials an early-termination policy condemns, tells
Optuna the results, and records the best trial in the sweep's run.

    $MLJOB_HOME/runs/SWEEP/sweep.json     the sweep plan (a resumed driver reads it, not the possibly edited file)
    $MLJOB_HOME/runs/SWEEP/record.json    the sweep's MLflow run
    $MLJOB_HOME/runs/SWEEP_N/             trial N's run folder (as any command job's)
    <history folder>/optuna.db            one Optuna study per sweep (named after it), beside MLflow's store

Resume after the driver died: every Optuna trial still RUNNING is settled from its MLflow child run (Completed →
its metric; Failed or Canceled on its own → failed or pruned) or, if it never ended by itself (killed with the driver,
or never started), run again with the same values under the same trial number. New trials are asked only while the
study holds fewer than max_total_trials, so a crash never adds a trial and no finished trial runs twice. Optuna's
heartbeat is not used: its stale-trial retry queues a copy of each stale trial and would run them twice.

Optuna is only touched from the driver's thread; each trial runs in a thread of its own (its Execution waits on a
container or process, so threads cost nothing here), with a history connection of its own.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from mljob.runner import orphans, problems, registry
from mljob.runner.backends import backend_for
from mljob.runner.execute import Execution, Outcome, runs_dir, submit
from mljob.runner.history import History, RunView, local_path
from mljob.runner.sweep import space as space_mod
from mljob.runner.sweep.plan import SweepPlan
from mljob.runner.sweep.results import TRIAL_TAG

SWEEP_TAG = "mljob.sweep"
NO_METRIC_TAG = "mljob.sweep.no_metric"
EARLY_TAG = "mljob.sweep.early_termination"
POLL = 0.25  # seconds between looks at the trials' metrics and states
SUMMARY_EVERY = 10.0


def study_storage(history: History) -> str:
    """Optuna's SQLite file beside the MLflow store (or in $MLJOB_HOME when the store is a server)."""
    path = local_path(history.uri)
    folder = path.parent if path is not None and history.uri.startswith("sqlite:") else registry.home()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


@dataclass
class Trial:
    number: int
    name: str
    values: dict[str, Any]
    run_id: str = ""
    execution: Execution | None = None
    thread: threading.Thread | None = None
    outcome: Outcome | None = None
    started: float = field(default_factory=time.monotonic)
    judged: int = 0  # intervals already judged by the policy
    early: str | None = None


class Driver:
    def __init__(self, sweep: SweepPlan, run_dir: Path, parent_run_id: str, history: History,
                 say: Callable[[str], None]) -> None:
        self.sweep = sweep
        self.run_dir = run_dir
        self.parent = parent_run_id
        self.history = history
        self.say = say
        self.space = sweep.space()
        self.policy = sweep.policy()
        self.running: dict[int, Trial] = {}
        self.reruns: list[tuple[int, dict[str, Any], int]] = []  # (number, values, attempt)
        self.curves: dict[str, list[float]] = {}
        self.cancel_reason: str | None = None
        self.timed_out = False
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._attempts: dict[int, int] = {}

    # --- Optuna ---------------------------------------------------------------------------------------------------

    def _study(self) -> Any:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.RDBStorage(study_storage(self.history),
                                             engine_kwargs={"connect_args": {"timeout": 60}})
        return optuna.create_study(study_name=self.sweep.name, storage=storage, sampler=self.sweep.sampler(),
                                   direction=self.sweep.goal, load_if_exists=True)

    # --- signals: Ctrl-C, `mljob job cancel` (SIGTERM), a closed terminal -----------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel_reason is None:
            if signum == signal.SIGINT:
                self.cancel_reason = "canceled: interrupted (Ctrl-C)"
            elif (self.run_dir / "cancel").exists():
                self.cancel_reason = "canceled with `mljob job cancel`"
            else:
                self.cancel_reason = f"canceled: the driver received {signal.Signals(signum).name}"
        self._wake.set()

    # --- trials ---------------------------------------------------------------------------------------------------

    def _trial_runs(self) -> list[RunView]:
        return self.history.runs(parent=self.parent, limit=None)  # every trial, however many

    def _settle(self, study: Any) -> None:
        """Tell Optuna what became of trials a dead driver left RUNNING; queue the ones that never ended."""
        from optuna.trial import TrialState

        by_number: dict[int, list[RunView]] = {}
        for view in self._trial_runs():
            if TRIAL_TAG in view.tags:
                by_number.setdefault(int(view.tags[TRIAL_TAG]), []).append(view)
        for views in by_number.values():
            for view in views:
                curve = [p.value for p in self.history.metric_history(view.run_id, self.sweep.metric)]
                if curve:
                    self.curves[str(view.tags[TRIAL_TAG])] = curve
        for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            views = sorted(by_number.get(frozen.number, []), key=lambda v: v.start_time or 0)
            last = views[-1] if views else None
            self._attempts[frozen.number] = len(views)
            if last is not None and last.status in ("Completed", "Failed", "Canceled") and \
                    last.tags.get(orphans.INTERRUPTED_TAG) != "true":
                self._tell(study, frozen.number, last)
                continue
            if all(name in frozen.params for name in self.space):
                values = space_mod.from_params(frozen.params, self.space)
            else:
                # The driver died between Optuna's ask and the trial's last draw: draw the missing values now (what
                # was drawn stays), so that the trial runs once, with a full set.
                import optuna

                values = space_mod.sample(optuna.trial.Trial(study, frozen._trial_id), self.space)
            self.reruns.append((frozen.number, values, len(views)))
            what = "never started" if last is None else f"stopped with the driver ({last.name})"
            self.say(f"trial {frozen.number} {what}: running it again with the same values")

    def _value(self, view: RunView) -> float | None:
        value = view.metrics.get(self.sweep.metric)
        return None if value is None or value != value else float(value)

    def _tell(self, study: Any, number: int, view: RunView) -> None:
        from optuna.trial import TrialState

        value = self._value(view)
        if view.status == "Completed" and value is not None:
            study.tell(number, value)
        elif view.status == "Canceled" and view.tags.get(EARLY_TAG):
            study.tell(number, state=TrialState.PRUNED)
        else:
            study.tell(number, state=TrialState.FAIL)

    def _launch(self, number: int, values: dict[str, Any], attempt: int) -> None:
        name = f"{self.sweep.name}_{number}" + (f"_r{attempt}" if attempt else "")
        trial = Trial(number, name, values)
        shown = " ".join(f"{k}={space_mod.format_value(v)}" for k, v in values.items())
        try:
            plan = self.sweep.trial_plan(name, values)
            plan.tags[TRIAL_TAG] = str(number)
            submission = submit(self.sweep.trial_job(), self.sweep.overrides, name, plan=plan,
                                parent_run_id=self.parent)
        except problems.RunError as err:
            trial.outcome = Outcome("Failed", str(err))
            self.say(f"trial {number} could not start: {err}")
            self.running[number] = trial
            return
        trial.run_id = submission.run_id
        trial.execution = Execution(submission, echo=None, progress=lambda m: None)
        trial.thread = threading.Thread(target=self._run_trial, args=(trial,), name=f"trial-{number}", daemon=True)
        self.running[number] = trial
        trial.thread.start()
        self.say(f"trial {number} started: {shown}")

    def _run_trial(self, trial: Trial) -> None:
        assert trial.execution is not None
        try:
            trial.outcome = trial.execution.execute()
        finally:
            self._wake.set()

    def _watch_metrics(self, trial: Trial) -> None:
        if not trial.run_id:
            return
        curve = [p.value for p in self.history.metric_history(trial.run_id, self.sweep.metric)]
        self.curves[str(trial.number)] = curve
        if self.policy is None or trial.early or trial.execution is None:
            return
        for interval in range(trial.judged + 1, len(curve) + 1):
            trial.judged = interval
            if not self.policy.due(interval):
                continue
            reason = self.policy.judge(str(trial.number), interval, self.curves)
            if reason:
                trial.early = f"terminated early at interval {interval}: {reason}"
                self.history.set_tags(trial.run_id, {EARLY_TAG: trial.early})
                trial.execution.cancel_reason = trial.early
                self.say(f"trial {trial.number} {trial.early}")
                return

    def _finish(self, study: Any, trial: Trial) -> None:
        from optuna.trial import TrialState

        outcome = trial.outcome or Outcome("Failed", "no outcome")
        took = time.monotonic() - trial.started
        if trial.run_id:
            view = self.history.get(trial.run_id)
            value = self._value(view)
            if outcome.status == "Completed" and value is None:
                self.history.set_tags(trial.run_id, {NO_METRIC_TAG: "true"})
            if outcome.status == "Canceled" and trial.early:
                study.tell(trial.number, state=TrialState.PRUNED)
            elif outcome.status == "Completed" and value is not None:
                study.tell(trial.number, value)
            else:
                study.tell(trial.number, state=TrialState.FAIL)
        else:
            value = None
            study.tell(trial.number, state=TrialState.FAIL)
        if outcome.status == "Completed" and value is None:
            text = f"Completed in {took:.1f}s but never logged `{self.sweep.metric}`"
        elif value is not None:
            text = f"{outcome.status} in {took:.1f}s: {self.sweep.metric}={value:g}"
        else:
            text = f"{outcome.status} in {took:.1f}s" + (f" ({outcome.reason})" if outcome.reason else "")
        best = self._best(study)
        tail = f" (best so far: trial {best[0]}, {best[1]:g})" if best else ""
        self.say(f"trial {trial.number} {text}{tail}")

    @staticmethod
    def _best(study: Any) -> tuple[int, float] | None:
        try:
            best = study.best_trial
        except ValueError:
            return None
        return best.number, float(best.value)

    # --- the loop -------------------------------------------------------------------------------------------------

    def _deadline(self) -> float | None:
        if not self.sweep.timeout:
            return None
        began = (self.history.get(self.parent).start_time or 0) / 1000
        return time.monotonic() + (began + self.sweep.timeout - time.time())

    def _summary(self, study: Any) -> None:
        from optuna.trial import TrialState

        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED,
                                                             TrialState.FAIL)))
        best = self._best(study)
        line = f"{len(self.running)} running · {done}/{self.sweep.max_total_trials} done"
        self.say(line + (f" · best {self.sweep.metric} {best[1]:g} (trial {best[0]})" if best else ""))

    def run(self) -> Outcome:
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, self._on_signal)
        try:
            return self._loop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _prepare_environment(self) -> None:
        """Resolve (or build) the trials' image once, before any trial: concurrent trials would otherwise each build
        the same image, and a broken environment fails the sweep once instead of every trial."""
        probe = self.sweep.trial_plan(f"{self.sweep.name}_env", {})
        backend = backend_for(probe.compute_type, probe)
        check = getattr(backend, "check", None)
        if check is not None:
            check()
        backend.prepare(probe.environment, Path(probe.folder), self.say)

    def _loop(self) -> Outcome:
        self._prepare_environment()
        study = self._study()
        self._settle(study)
        deadline = self._deadline()
        stopping = False
        last_summary = time.monotonic()
        while True:
            for number in [n for n, t in self.running.items() if t.thread is None or not t.thread.is_alive()]:
                trial = self.running.pop(number)
                if trial.run_id:
                    self._watch_metrics(trial)
                self._finish(study, trial)
            for trial in list(self.running.values()):
                self._watch_metrics(trial)
            if not stopping and self.cancel_reason is not None:
                stopping = True
            if not stopping and deadline is not None and time.monotonic() > deadline:
                stopping = self.timed_out = True
                self.say(f"limits.timeout: the sweep reached {self.sweep.timeout:g} s; stopping its trials")
            if stopping:
                reason = self.cancel_reason or f"the sweep's limits.timeout ({self.sweep.timeout:g} s) was reached"
                for trial in self.running.values():
                    if trial.execution is not None and trial.execution.cancel_reason is None:
                        trial.execution.cancel_reason = reason
            else:
                while len(self.running) < self.sweep.max_concurrent_trials:
                    if self.reruns:
                        number, values, attempt = self.reruns.pop(0)
                        self._launch(number, values, attempt)
                        continue
                    if len(study.get_trials(deepcopy=False)) >= self.sweep.max_total_trials:
                        break
                    asked = study.ask()
                    self._launch(asked.number, space_mod.sample(asked, self.space), 0)
            if not self.running and (stopping or (not self.reruns and len(study.get_trials(deepcopy=False))
                                                  >= self.sweep.max_total_trials)):
                break
            if time.monotonic() - last_summary > SUMMARY_EVERY:
                self._summary(study)
                last_summary = time.monotonic()
            self._wake.wait(POLL)
            self._wake.clear()
        return self._conclude(study)

    def _conclude(self, study: Any) -> Outcome:
        from mljob.runner.sweep import results

        views = [v for v in self._trial_runs() if v.tags.get(orphans.INTERRUPTED_TAG) != "true"]
        report = results.Report(self.sweep.metric, self.sweep.goal, views, self.curves, list(self.space))
        best = report.best()
        if best is not None:
            value = self._value(best)
            assert value is not None
            self.history.log_metric(self.parent, self.sweep.metric, value)
            self.history.log_params(self.parent, {f"best.{k}": v for k, v in report.hyperparameters(best).items()})
            self.history.set_tags(self.parent, {"mljob.sweep.best_trial": best.name,
                                                "mljob.sweep.best_run_id": best.run_id,
                                                "mljob.sweep.best_value": repr(value)})
        folder = self.run_dir / "sweep-report"
        report.write(folder)
        self.history.log_artifacts(self.parent, folder, "sweep")
        missing = [v.name for v in views if v.status == "Completed" and self._value(v) is None]
        if self.cancel_reason is not None:
            outcome = Outcome("Canceled", self.cancel_reason)
        elif self.timed_out:
            outcome = Outcome("Canceled", f"limits.timeout: the sweep was stopped after {self.sweep.timeout:g} s")
        elif best is None:
            finished = [v for v in views if v.status == "Completed"]
            if finished and len(missing) == len(finished):
                why = (f"none of the {len(finished)} completed trials logged `{self.sweep.metric}` (the objective's "
                       f"primary_metric): log it with `mlflow.log_metric(\"{self.sweep.metric}\", value)`")
            else:
                why = f"no trial completed with a value of `{self.sweep.metric}`"
            outcome = Outcome("Failed", why)
        else:
            outcome = Outcome("Completed")
        if best is not None and missing:
            note = f"{len(missing)} completed trial(s) never logged `{self.sweep.metric}`: {', '.join(missing)}"
            outcome.reason = f"{outcome.reason}; {note}" if outcome.reason else note
        return outcome


def save_plan(run_dir: Path, sweep: SweepPlan, run_id: str, experiment_id: str) -> None:
    (run_dir / "sweep.json").write_text(sweep.to_json(), encoding="utf-8")
    (run_dir / "record.json").write_text(json.dumps({"run_id": run_id, "experiment_id": experiment_id}) + "\n",
                                         encoding="utf-8")


def load_plan(name: str) -> tuple[SweepPlan, Path, str] | None:
    run_dir = runs_dir() / name
    try:
        sweep = SweepPlan.from_json((run_dir / "sweep.json").read_text(encoding="utf-8"))
        record = json.loads((run_dir / "record.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return sweep, run_dir, str(record["run_id"])
