"""A distributed job on the `process` compute: every rank a process of this machine (instances are only numbers
here: MASTER_ADDR is 127.0.0.1 and the master port a free one), each in its own process group, each writing
user_logs/std_log_process_RANK.txt; rank 0's log is the run's stream. The first rank to fail stops the others.
Every rank (and mpirun) runs with the caller's PATH and environment plus the job's variables, as `process` does."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from mljob.runner import problems, procfs
from mljob.runner.backends.base import Launch
from mljob.runner.backends.process import ProcessBackend, _shell, _signal_group, reap_group, start_of, wait_group_gone
from mljob.runner.backends.units import Unit, layout_of, units
from mljob.runner.distribute import free_port

_GRACE = 5.0


def tail(path: Path, finished: threading.Event) -> Iterator[bytes]:
    """A growing file's bytes as they are written, until `finished` is set and nothing more has come."""
    while not path.exists() and not finished.is_set():
        time.sleep(0.05)
    if not path.exists():
        return
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(1 << 16)
            if chunk:
                yield chunk
                continue
            if finished.is_set():
                rest = handle.read()
                if rest:
                    yield rest
                return
            time.sleep(0.1)


class ProcessGroupBackend(ProcessBackend):
    kind = "process"

    def __init__(self, distribution: dict[str, Any] | None, instance_count: int) -> None:
        super().__init__()
        self.distribution = distribution
        self.instance_count = instance_count
        self._procs: list[tuple[Unit, subprocess.Popen[bytes]]] = []
        self._logs: list[IO[bytes]] = []
        self._finished = threading.Event()
        self._stream: Path | None = None
        self._code: int | None = None

    def start(self, launch: Launch) -> dict[str, str]:
        layout = layout_of(self.distribution, self.instance_count, dict(launch.env), None, free_port())
        if layout.kind == "mpi" and shutil.which("mpirun") is None:
            raise problems.plain(None, problems.ENVIRONMENT, "an mpi job on the process compute runs Open MPI's "
                                 "`mpirun` from your PATH, and there is none: install it (Debian: "
                                 "`apt-get install openmpi-bin`), or run in Docker with `--set compute=local` and an "
                                 "image that has it (scripts/build-dist-image builds one).")
        folder = launch.workdir.parent / "user_logs"
        folder.mkdir(parents=True, exist_ok=True)
        base = {**os.environ, **launch.env}  # unchanged PATH: every rank's `python` is the caller's (see process.py)
        planned = units(layout, [_shell(), "-c"], launch.command)
        self._stream = folder / planned[0].log
        for unit in planned:
            log = (folder / unit.log).open("ab")
            self._logs.append(log)
            proc = subprocess.Popen(unit.argv, cwd=launch.workdir, env={**base, **unit.env}, stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            self._procs.append((unit, proc))
        # Each rank's group is named by its leader's start time too (see process.py's `run_members`).
        return {"pgids": ",".join(str(p.pid) for _, p in self._procs),
                "pgid_starts": ",".join(start_of(p.pid) for _, p in self._procs), "boot": procfs.boot_id() or ""}

    def output(self) -> Iterator[bytes]:
        assert self._stream is not None
        yield from tail(self._stream, self._finished)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            codes = [(unit, proc.poll()) for unit, proc in self._procs]
            failed = next((c for u, c in codes if u.main and c not in (None, 0)), None)
            mains_done = all(c is not None for u, c in codes if u.main)
            if failed is not None or mains_done:
                self._code = failed if failed is not None else 0
                self.stop()  # the ranks still running (after a failure) and any launch servers
                self._finished.set()
                return self._code
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def stop(self) -> None:
        alive = [p for _, p in self._procs if p.poll() is None]
        for proc in alive:
            _signal_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + _GRACE
        for proc in alive:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()

    def remove(self) -> None:
        for _, proc in self._procs:
            _signal_group(proc.pid, signal.SIGKILL)  # children a rank left in the background go too
            if proc.poll() is None:
                proc.wait()
        for _, proc in self._procs:
            wait_group_gone(proc.pid)
        for log in self._logs:
            log.close()
        self._logs = []
        self._finished.set()

    @staticmethod
    def reap(facts: dict[str, str]) -> str:
        groups = [int(p) for p in str(facts.get("pgids") or "").split(",") if p.strip().isdigit()]
        if not groups:
            return ProcessBackend.reap(facts)
        starts = str(facts.get("pgid_starts") or "").split(",")
        starts += [""] * (len(groups) - len(starts))  # an entry written before start times were recorded
        done = [reap_group(group, start.strip(), facts) for group, start in zip(groups, starts, strict=False)]
        ended = sum(d.endswith(" ended") for d in done)
        left = [d for d in done if " left alone" in d]
        return (f"{ended} process group{'s' if ended != 1 else ''} ended"
                + "".join(f"; {d}" for d in left))
