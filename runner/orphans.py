"""Runs in flight, and what is left of them when their runner dies.

Each run being executed has an entry $MLJOB_HOME/active/NAME.json naming its runner (pid, that process's start time
and the boot, so a reused pid is not mistaken for it) and what its backend started (a process group is named by its
leader's start time too: the backend signals only processes it can tell are the run's, never a pid's new owner). The
entry is written before anything starts and removed after everything is cleaned up. Any later mljob call that runs
or reads jobs looks at these entries (one directory listing when nothing is wrong); for a runner that is gone it
removes the container or process group, saves the logs it had, and marks the run Failed (Canceled if a cancel had
been asked for).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from mljob.runner import procfs, registry

INTERRUPTED_TAG = "mljob.interrupted"


def active_dir() -> Path:
    return registry.home() / "active"


def _entry_path(name: str) -> Path:
    return active_dir() / f"{name}.json"


def process_start(pid: int) -> str | None:
    """The kernel's start time of a process (field 22 of /proc/PID/stat), or None if it is gone or a zombie."""
    found = procfs.stat(pid)
    return found.start if found is not None and found.alive else None


def register(name: str, facts: dict[str, Any]) -> None:
    folder = active_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = _entry_path(name)
    current = read(name) or {}
    current.update(facts, name=name)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(current), encoding="utf-8")
    partial.replace(path)


def claim(name: str, pid: int | None = None) -> None:
    """Record `pid` (default: this process) as the run's runner."""
    pid = pid or os.getpid()
    register(name, {"pid": pid, "pid_start": process_start(pid), "boot": procfs.boot_id() or ""})


def read(name: str) -> dict[str, Any] | None:
    try:
        return json.loads(_entry_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def unregister(name: str) -> None:
    _entry_path(name).unlink(missing_ok=True)


def runner_alive(entry: dict[str, Any]) -> bool:
    """The run's runner still runs: a process with its pid that started when it did, in this boot (a pid alone may
    be anyone's by now)."""
    pid = int(entry.get("pid") or 0)
    if pid <= 0 or not entry.get("pid_start"):
        return False
    boot = entry.get("boot")
    if boot and boot != procfs.boot_id():
        return False
    return process_start(pid) == entry.get("pid_start")


def dead_entries() -> list[dict[str, Any]]:
    try:
        names = [p.stem for p in active_dir().glob("*.json")]
    except OSError:
        return []
    found = []
    for name in names:
        entry = read(name)
        if entry is not None and not runner_alive(entry):
            found.append(entry)
    return found


def reap(quiet: bool = False) -> list[str]:
    """Clean up after every runner that died; returns the names of the runs it closed."""
    dead = dead_entries()
    if not dead:
        return []
    from mljob.runner.backends import reap as reap_backend
    from mljob.runner.history import History
    from mljob.runner.problems import RunError

    closed = []
    for entry in dead:
        name = entry["name"]
        try:
            done = "nothing started"
            if entry.get("started"):
                done = reap_backend(entry.get("compute_type", "local"), entry)
        except RunError as err:  # no engine to remove the container with: try again next time
            print(f"mljob: run {name} lost its runner, but its container cannot be removed yet: {err}",
                  file=sys.stderr)
            continue
        run_id = entry.get("run_id")
        canceled = Path(entry.get("run_dir", "")).joinpath("cancel").exists()
        if run_id:
            history = History(entry.get("tracking_uri"))
            run_dir = Path(entry.get("run_dir", ""))
            # What the run had logged is kept: the user's log and ./logs up to the moment the runner died.
            history.log_artifacts(run_id, run_dir / "user_logs", "user_logs")
            history.log_artifacts(run_id, run_dir / "wd" / "logs", "logs")
            if canceled:
                history.set_status(run_id, "Canceled", "canceled; its runner had already stopped")
            else:
                # The tag tells a resumed sweep that this trial did not end by itself: it is run again, not counted.
                history.set_tags(run_id, {INTERRUPTED_TAG: "true"})
                history.set_status(run_id, "Failed", f"the runner (pid {entry.get('pid')}) stopped before the job "
                                   f"ended; cleaned up by a later mljob call ({done})")
        unregister(name)
        closed.append(name)
        if not quiet:
            print(f"mljob: run {name} had lost its runner: {done}; marked "
                  f"{'Canceled' if canceled else 'Failed'}", file=sys.stderr)
    return closed
