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
        # The group's leader is named by its start time too: a later call reaping this run signals the group only
        # while that very process (or what it left in its session) holds the number (see `run_members`).
        return {"pgid": str(self._proc.pid), "pgid_start": start_of(self._proc.pid), "boot": procfs.boot_id() or ""}

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
        return reap_group(pgid, str(facts.get("pgid_start") or ""), facts)


def start_of(pid: int) -> str:
    """The start time of a process this runner has just started: its child, so at worst a zombie, never gone."""
    found = procfs.stat(pid)
    return found.start if found is not None else ""


def run_members(pgid: int, leader_start: str, run_id: str) -> tuple[bool, list[procfs.ProcStat]]:
    """The live processes of a run's process group that are certainly the run's: (the leader is the recorded one,
    those processes). Nothing is taken on the group's number alone: pids are reused, and a group's number is its
    leader's pid.

    The group was made by its leader (`start_new_session`: a new session and a new group, both numbered by the
    leader's pid), recorded with its start time (and the boot, checked by the caller).
    1. A process with the leader's pid that started at another time is someone else's. The kernel does not hand out
       a pid while any group or session still has that number, so nothing of the run is left: nothing is signalled.
    2. The recorded leader is still there (a zombie too): its group is the run's, all of it (only a process of the
       same session may join a group, and the session is the run's), and is signalled as a group.
    3. No process has the leader's pid, but processes of its group remain: each is the run's only if it is in the
       run's session, started no earlier than the leader, and carries the run's MLFLOW_RUN_ID (every process of the
       job inherits it). Group, session and start time alone do not prove it: once the run's group had emptied, its
       number may have gone to a stranger's session leader (a terminal's shell, a `setsid` daemon) that then exited,
       leaving its own background processes in a group and a session of that number, all started after the run's
       leader. A process of the run that dropped the variable from its environment is then left alone: a process
       left running is a smaller harm than a stranger's killed.
    """
    leader = procfs.stat(pgid)
    if leader is not None and leader.start != leader_start:
        return False, []
    group = [p for p in procfs.processes() if p.pgid == pgid and p.alive]
    if leader is not None:
        return True, group
    mark = f"MLFLOW_RUN_ID={run_id}".encode()
    return False, [p for p in group if run_id and p.session == pgid and int(p.start) >= int(leader_start)
                   and mark in procfs.environ(p.pid)]


def reap_group(pgid: int, leader_start: str, facts: dict[str, str]) -> str:
    """Stop what is left of a run's process group whose runner died (SIGTERM, then SIGKILL after 2 s); only the
    processes `run_members` identifies are signalled."""
    if not leader_start:
        return (f"process group {pgid} left alone: it was recorded without its leader's start time, so it cannot be "
                "told from another process's")
    boot = str(facts.get("boot") or "")
    if boot and boot != procfs.boot_id():
        return f"process group {pgid} already gone (the machine has restarted since)"
    found = procfs.stat(pgid)
    if found is not None and found.start != leader_start:
        return f"process group {pgid} already gone (pid {pgid} is another process now, left alone)"
    run_id = str(facts.get("run_id") or "")
    leader, members = run_members(pgid, leader_start, run_id)
    if not members:
        return f"process group {pgid} already gone"
    _signal_members(pgid, leader, members, signal.SIGTERM)
    deadline = time.monotonic() + 2
    while members and time.monotonic() < deadline:
        time.sleep(0.05)
        leader, members = run_members(pgid, leader_start, run_id)
    deadline = time.monotonic() + 5  # a process stuck in the kernel longer dies when the kernel lets it
    while members and time.monotonic() < deadline:
        _signal_members(pgid, leader, members, signal.SIGKILL)  # again for any child forked meanwhile
        time.sleep(0.005)
        leader, members = run_members(pgid, leader_start, run_id)
    return f"process group {pgid} ended"


def _signal_members(pgid: int, leader: bool, members: list[procfs.ProcStat], sig: int) -> None:
    if leader:
        _signal_group(pgid, sig)
        return
    for proc in members:
        procfs.signal_process(proc.pid, proc.start, sig)  # this process only, even if its pid changed hands


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
