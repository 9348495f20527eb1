"""Plan → a run: record it, prepare its folder, hand it to a backend, watch it, and always close the record.

    $MLJOB_HOME/runs/NAME/plan.json           what was planned (the detached runner reads it)
    $MLJOB_HOME/runs/NAME/wd/                 the code snapshot: the working directory (./outputs, ./logs)
    $MLJOB_HOME/runs/NAME/inputs/IN/          private copies of `download` inputs
    $MLJOB_HOME/runs/NAME/named-outputs/OUT/  `${{outputs.OUT}}`
    $MLJOB_HOME/runs/NAME/user_logs/std_log.txt  stdout and stderr as they come
    $MLJOB_HOME/runs/NAME/runner.log          the detached runner's own messages

The MLflow run is the record; the folder is the run's workspace. At the end, outputs and logs become the run's
artifacts (outputs/, logs/, user_logs/, named-outputs/OUT/) and a Completed run's bulky parts (wd, inputs,
named-outputs) are removed. Logs are also copied to the artifacts every few seconds while the job runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from mljob.runner import inputs as data_inputs
from mljob.runner import names, orphans, problems, quoting, registry, snapshot, tracking
from mljob.runner.backends import backend_for
from mljob.runner.backends.base import Backend, Launch, Mount
from mljob.runner.history import History
from mljob.runner.model import Job
from mljob.runner.plan import Plan, make_plan

SYNC_EVERY = 2.0  # seconds between live copies of the logs into the run's artifacts
TAIL_LINES = 20


def runs_dir() -> Path:
    return registry.home() / "runs"


def run_dir_for(name: str) -> Path:
    return runs_dir() / name


def log_file(run_dir: Path) -> Path:
    return run_dir / "user_logs" / "std_log.txt"


@dataclass
class Submission:
    plan: Plan
    run_dir: Path
    run_id: str
    experiment_id: str
    history: History
    backend: Backend


@dataclass
class Outcome:
    status: str
    reason: str = ""
    exit_code: int | None = None


class _Canceled(Exception):
    pass


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def reserve(name: str | None, proposed: str, history: History) -> tuple[str, Path]:
    """A name no run has, and its new folder: `name` when the user gave one (refused if taken), else `proposed`, or
    fresh generated names while that one is taken."""
    runs_dir().mkdir(parents=True, exist_ok=True)
    chosen = name or proposed
    while True:
        run_dir = run_dir_for(chosen)
        try:
            run_dir.mkdir()
            break
        except FileExistsError:
            if name is not None:
                raise problems.plain(None, problems.BAD_NAME, f"a job named `{name}` already exists; choose "
                                     "another --name (or leave it out for a generated one).") from None
            chosen = names.new_name()
    if name is not None and history.find(name) is not None:
        run_dir.rmdir()
        raise problems.plain(None, problems.BAD_NAME, f"a job named `{name}` is already in the run history "
                             f"({history.uri}); choose another --name.")
    return chosen, run_dir


def submit(job: Job, overrides: list[str], name: str | None = None, *, plan: Plan | None = None,
           parent_run_id: str | None = None, history: History | None = None) -> Submission:
    """Check what can be checked, then record the run (status Preparing) and lay out its folder. A sweep passes the
    trial's plan, its own run as the parent, and its history connection."""
    if name is not None and not names.is_valid(name):
        raise problems.plain(None, problems.BAD_NAME, f"`{name}` is not a job name: use letters, digits, `_` and "
                             "`-`, starting with a letter or digit.")
    plan = plan or make_plan(job, name or names.new_name(), overrides)
    backend = backend_for(plan.compute_type, plan)
    check = getattr(backend, "check", None)
    if check is not None:
        check()
    origin = snapshot.start_git_info(Path(plan.code or plan.folder))  # git answers while the store opens
    history = history or History()
    plan.name, run_dir = reserve(name, plan.name, history)
    tags = {
        **plan.tags,
        "mljob.kind": plan.kind,
        "mljob.command": plan.command,
        "mljob.compute": plan.compute,
        "mljob.compute_type": plan.compute_type,
        "mljob.source": plan.job_file,
        "mljob.run_dir": str(run_dir),
        "mlflow.source.name": plan.job_file,
        "mlflow.source.type": "LOCAL",
        **origin(),
    }
    if plan.overrides:
        tags["mljob.overrides"] = " ".join(plan.overrides)
    if job.data.get("description"):
        tags["mlflow.note.content"] = str(job.data["description"])
    if plan.display_name:
        tags["mljob.display_name"] = str(plan.display_name)
    run = history.create_run(plan.experiment, plan.name, plan.params(), tags, parent_run_id=parent_run_id)
    (run_dir / "plan.json").write_text(plan.to_json(), encoding="utf-8")
    (run_dir / "record.json").write_text(
        f'{{"run_id": "{run.run_id}", "experiment_id": "{run.experiment_id}"}}\n', encoding="utf-8")
    # `listening`: whether a SIGTERM to the runner reaches its handler (`mljob job cancel` waits for it: a detached
    # runner still starting would be killed outright by one, and the cancel lost with it).
    orphans.register(plan.name, {"run_id": run.run_id, "tracking_uri": history.uri, "run_dir": str(run_dir),
                                 "compute_type": plan.compute_type, "started": False, "listening": False})
    orphans.claim(plan.name)  # this process answers for the run until a detached runner claims it
    return Submission(plan, run_dir, run.run_id, run.experiment_id, history, backend)


def resume(run_dir: Path) -> Submission:
    """The submission recorded in a run folder (the detached runner starts from here)."""
    import json

    plan = Plan.from_json((run_dir / "plan.json").read_text(encoding="utf-8"))
    record = json.loads((run_dir / "record.json").read_text(encoding="utf-8"))
    entry = orphans.read(plan.name) or {}
    history = History(entry.get("tracking_uri"))
    return Submission(plan, run_dir, record["run_id"], record["experiment_id"], history,
                      backend_for(plan.compute_type, plan))


class _LiveLogs:
    """Copies user_logs/ and ./logs into the run's artifacts while the job runs, when they changed."""

    def __init__(self, history: History, run_id: str, run_dir: Path) -> None:
        self.history, self.run_id, self.run_dir = history, run_id, run_dir
        self._stop = threading.Event()
        self._seen: dict[str, tuple[int, int]] = {}
        self._thread = threading.Thread(target=self._loop, name="live-logs", daemon=True)

    def _changed(self, folder: Path) -> bool:
        state = (0, 0)
        if folder.is_dir():
            for path in folder.rglob("*"):
                if path.is_file():
                    st = path.stat()
                    state = (state[0] + st.st_size, max(state[1], st.st_mtime_ns))
        key = str(folder)
        if self._seen.get(key, (0, 0)) == state:
            return False
        self._seen[key] = state
        return True

    def sync(self) -> None:
        for folder, artifact in ((self.run_dir / "user_logs", "user_logs"), (self.run_dir / "wd" / "logs", "logs")):
            if self._changed(folder):
                self.history.log_artifacts(self.run_id, folder, artifact)

    def _loop(self) -> None:
        while not self._stop.wait(SYNC_EVERY):
            # A missed copy is retried next time; the final one is made outside this thread.
            with contextlib.suppress(Exception):
                self.sync()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)


class Execution:
    def __init__(self, submission: Submission, echo: BinaryIO | None = None,
                 progress: Callable[[str], None] = _stderr) -> None:
        self.s = submission
        self.plan = submission.plan
        self.echo = echo
        self.progress = progress
        self.cancel_reason: str | None = None
        self.timed_out = False
        self._started = False
        self._pump: threading.Thread | None = None

    # --- signals: Ctrl-C, `mljob job cancel` (SIGTERM), a closed terminal ---------------------------------------

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.cancel_reason is not None:
            return
        if signum == signal.SIGINT:
            self.cancel_reason = "canceled: interrupted (Ctrl-C)"
        elif (self.s.run_dir / "cancel").exists():
            self.cancel_reason = "canceled with `mljob job cancel`"
        else:
            self.cancel_reason = f"canceled: the runner received {signal.Signals(signum).name}"
        if not self._started:
            raise _Canceled()  # interrupts a download, a snapshot or an image build

    def _install_signals(self) -> dict[int, object]:
        previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                previous[sig] = signal.signal(sig, self._on_signal)
        return previous

    # --- the steps ----------------------------------------------------------------------------------------------

    def _set_status(self, status: str, reason: str | None = None) -> None:
        self.s.history.set_status(self.s.run_id, status, reason)

    def _prepare(self) -> Launch:
        plan, run_dir, backend = self.plan, self.s.run_dir, self.s.backend
        image = backend.prepare(plan.environment, Path(plan.folder), self.progress)
        workdir = run_dir / "wd"
        if plan.code:
            stats = snapshot.copy_code(Path(plan.code), workdir, self.progress)
            if stats.files > 1000 or stats.bytes > 50 * 2**20:
                self.progress(f"code snapshot: {stats.files} files, {stats.bytes / 2**20:.1f} MiB")
        else:
            workdir.mkdir()
        # Azure ML gives every job these two folders; jobs write into them without creating them.
        (workdir / "outputs").mkdir(exist_ok=True)
        (workdir / "logs").mkdir(exist_ok=True)
        values: dict[str, str] = dict(plan.literals)
        mounts: list[Mount] = []
        for item in plan.inputs:
            key = f"inputs.{item.name}"
            if item.kind == "literal" or item.mode == "direct" or item.source is None:
                values[key] = str(item.value)
                continue
            host = (data_inputs.download(item.source, self.progress) if data_inputs.is_url(item.source)
                    else Path(item.source))
            read_only = True
            if item.mode in ("download", "eval_download"):
                host = data_inputs.copy_in(host, run_dir / "inputs" / item.name)
                read_only = False
            target = backend.input_path(item.name, host)
            values[key] = target
            mounts.append(Mount(host, target, read_only))
        for name in plan.outputs:
            host = run_dir / "named-outputs" / name
            host.mkdir(parents=True)
            target = backend.output_path(name, host)
            values[f"outputs.{name}"] = target
            mounts.append(Mount(host, target, False))
        shared_mounts: list[Path] = []
        for shared in self.s.history.shared_paths(self.s.run_id):
            shared.mkdir(parents=True, exist_ok=True)
            if not any(shared == m or shared.is_relative_to(m) for m in shared_mounts):
                shared_mounts.append(shared)
        mounts += [Mount(path, str(path), False) for path in shared_mounts]
        try:
            command = quoting.resolve(plan.command, values, plan.present_inputs)
        except quoting.MissingValue as err:
            raise problems.located(Path(plan.job_file), plan.overrides, plan.command_keys, problems.NOT_RUNNABLE,
                                   f"`${{{{{err.args[0]}}}}}` has no value to run with.") from None
        env = {**plan.environment_variables,
               **tracking.job_environment(self.s.history.uri, self.s.run_id, self.s.experiment_id)}
        env.setdefault("PYTHONUNBUFFERED", "1")  # logs arrive as they are written, not when a buffer fills
        return Launch(plan.name, command, workdir, env, mounts, image, plan.shm_size)

    def _pump_output(self) -> None:
        path = log_file(self.s.run_dir)
        with path.open("ab") as out:
            for chunk in self.s.backend.output():
                out.write(chunk)
                out.flush()
                if self.echo is not None:
                    try:
                        self.echo.write(chunk)
                        self.echo.flush()
                    except (OSError, ValueError):
                        self.echo = None  # the terminal went away; the log file still has everything

    def _watch(self) -> int | None:
        deadline = time.monotonic() + self.plan.timeout if self.plan.timeout else None
        stopping = False
        while True:
            code = self.s.backend.wait(0.1)
            if code is not None:
                return code
            if self.cancel_reason is not None and not stopping:
                stopping = True
                self.s.backend.stop()
            if deadline is not None and time.monotonic() > deadline and not stopping:
                self.timed_out = stopping = True
                self.s.backend.stop()

    def execute(self) -> Outcome:
        name, history, run_id = self.plan.name, self.s.history, self.s.run_id
        orphans.claim(name)
        live = _LiveLogs(history, run_id, self.s.run_dir)
        outcome = Outcome("Failed")
        previous: dict[int, object] = {}
        try:
            previous = self._install_signals()
            # From here a cancel's SIGTERM is handled (in a sweep's trial thread, by the driver's handler). A cancel
            # asked before that only left its file (see `jobs.cancel`): it is seen now, after the entry says so.
            orphans.register(name, {"listening": True})
            if self.cancel_reason is None and (self.s.run_dir / "cancel").exists():
                self.cancel_reason = "canceled with `mljob job cancel`"
            if self.cancel_reason is not None:
                raise _Canceled()
            log_file(self.s.run_dir).parent.mkdir(parents=True, exist_ok=True)
            launch = self._prepare()
            orphans.register(name, {"started": True})
            self._started = True  # from here a signal stops the job instead of interrupting this code
            if self.cancel_reason is not None:
                raise _Canceled()
            try:
                facts = self.s.backend.start(launch)
            finally:  # recorded once the job is under way (or failed to start): one commit less before it starts
                history.set_tags(run_id, {"mljob.command.resolved": launch.command,
                                          "mljob.image": launch.image or ""})
            orphans.register(name, facts)
            self._set_status("Running")
            self._pump = threading.Thread(target=self._pump_output, name="output", daemon=True)
            self._pump.start()
            live.start()
            code = self._watch()
            outcome.exit_code = code
            if self.cancel_reason is not None:
                outcome = Outcome("Canceled", self.cancel_reason, code)
            elif self.timed_out:
                outcome = Outcome("Failed", f"limits.timeout: stopped after {self.plan.timeout:g} s", code)
            elif code == 0:
                outcome = Outcome("Completed", "", 0)
            else:
                outcome = Outcome("Failed", f"the command exited with code {code}", code)
        except _Canceled:
            outcome = Outcome("Canceled", self.cancel_reason or "canceled")
        except problems.RunError as err:
            outcome = Outcome("Failed", str(err))
        except Exception as err:  # noqa: BLE001 (recorded, never shown as a traceback)
            with (self.s.run_dir / "runner.log").open("a", encoding="utf-8") as log:
                traceback.print_exc(file=log)
            outcome = Outcome("Failed", f"internal error in the runner: {type(err).__name__}: {err} "
                                        f"(details in {self.s.run_dir / 'runner.log'})")
        finally:
            # A second Ctrl-C must not leave a container behind: from here on, signals only set the flag.
            self._started = True
            self._close(live, outcome)
            for sig, handler in previous.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
        return outcome

    def _close(self, live: _LiveLogs, outcome: Outcome) -> None:
        history, run_id, run_dir = self.s.history, self.s.run_id, self.s.run_dir
        if self._pump is not None:
            self._pump.join(timeout=2)  # the output ends with the command; what it printed last is kept
        # Removing a container takes the engine ~15 ms: the record is finished meanwhile, and the run gets its final
        # status only once the container (or process group) is gone.
        removal = _Removal(self.s.backend)
        try:
            if self._pump is not None:
                self._pump.join(timeout=5)
            live.stop()
            if outcome.status == "Completed":
                self._set_status("Finalizing")
            try:
                live.sync()
                history.log_artifacts(run_id, run_dir / "wd" / "outputs", "outputs")
                for name in self.plan.outputs:
                    history.log_artifacts(run_id, run_dir / "named-outputs" / name, f"named-outputs/{name}")
            except Exception as err:  # noqa: BLE001 (the run is still closed, with the reason)
                outcome.status, outcome.reason = "Failed", f"could not save the artifacts: {err}"
        finally:
            removal.join()
            self._set_status(outcome.status, outcome.reason or None)
            orphans.unregister(self.plan.name)
            if outcome.status == "Completed":
                for bulky in ("wd", "inputs", "named-outputs"):
                    shutil.rmtree(run_dir / bulky, ignore_errors=True)
        removal.reraise()


class _Removal:
    """`backend.remove()` on a thread of its own; its error, if any, is raised by `reraise` as the call would have."""

    def __init__(self, backend: Backend) -> None:
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(backend,), name="remove", daemon=True)
        self._thread.start()

    def _run(self, backend: Backend) -> None:
        try:
            backend.remove()
        except BaseException as err:  # noqa: BLE001 (handed to the caller's thread)
            self._error = err

    def join(self) -> None:
        self._thread.join()

    def reraise(self) -> None:
        if self._error is not None:
            raise self._error


def last_lines(run_dir: Path, count: int = TAIL_LINES) -> list[str]:
    path = log_file(run_dir)
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-count:]
