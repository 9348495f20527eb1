"""The `process` compute: the command runs on this machine, in the run's fresh working folder, with no isolation.

Inputs are the host paths themselves (`ro_mount` cannot be enforced here), outputs are folders of the run. The
command runs with the caller's PATH and environment (their active venv included) plus the job's variables, as if typed
in their shell: its `python` is theirs, not the one running mljob. It runs in its own process group: a stop reaches
its children.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from mljob.runner import procfs
from mljob.runner.backends.base import Backend, Launch

_GRACE = 5.0  # seconds between SIGTERM and SIGKILL, as Docker's stop


def _shell() -> str:
    return shutil.which("bash") or "/bin/sh"


class ProcessBackend(Backend):
    kind = "process"

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def workdir_path(self, host: Path) -> str:
        return str(host)

    def input_path(self, name: str, host: Path) -> str:
        return str(host)

    def output_path(self, name: str, host: Path) -> str:
        return str(host)

    def start(self, launch: Launch) -> dict[str, str]:
        # PATH and VIRTUAL_ENV stay as the caller has them: mljob's own venv must not shadow theirs (a job's `python`
        # would miss their packages, and its `pip install` would land in mljob's venv).
        env = {**os.environ, **launch.env}
        self._proc = subprocess.Popen(
            [_shell(), "-c", launch.command], cwd=launch.workdir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        return {"pgid": str(self._proc.pid)}

    def output(self) -> Iterator[bytes]:
        assert self._proc is not None and self._proc.stdout is not None
        stream = self._proc.stdout
        try:
            while chunk := os.read(stream.fileno(), 1 << 16):
                yield chunk
        finally:
            stream.close()

    def wait(self, timeout: float) -> int | None:
        assert self._proc is not None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        _signal_group(self._proc.pid, signal.SIGTERM)
        try:
            self._proc.wait(_GRACE)
        except subprocess.TimeoutExpired:
            _signal_group(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def remove(self) -> None:
        if self._proc is None:
            return
        # Children the command left in the background go too: nothing of a run outlives it.
        _signal_group(self._proc.pid, signal.SIGKILL)
        if self._proc.poll() is None:
            self._proc.wait()
        wait_group_gone(self._proc.pid)

    @staticmethod
    def reap(facts: dict[str, str]) -> str:
        pgid = int(facts.get("pgid") or 0)
        if pgid <= 0:
            return "no process had started"
        alive = _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 2
        while alive and time.monotonic() < deadline:
            time.sleep(0.05)
            alive = _signal_group(pgid, 0)
        if alive:
            _signal_group(pgid, signal.SIGKILL)
        return f"process group {pgid} ended" if alive or pgid else "process group already gone"


def wait_group_gone(pgid: int, timeout: float = 5.0) -> None:
    """After a SIGKILL: wait until no live process is left in the group (the kill lands a moment after it is sent,
    and a run's record must not say it ended while a process of it still runs). Zombies are not waited for: their
    reaping is their new parent's business (often PID 1). A process stuck in the kernel longer than `timeout` is
    not waited for either: it dies when the kernel lets it."""
    deadline = time.monotonic() + timeout
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _group_members(pgid: int) -> list[int]:
    return [p.pid for p in procfs.processes() if p.pgid == pgid and p.alive]


def _signal_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
