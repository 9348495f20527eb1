"""What the kernel says of processes (/proc/PID/stat): the one reader behind the runner's "is it still running?".

(runner/rsh_agent.py keeps its own: it is a standalone program that runs inside containers without mljob.)
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, T, Z (zombie), X (dead), …
    ppid: int
    pgid: int
    start: str  # the kernel's start time in clock ticks: with the pid (and the boot), it names one process for good
    session: int = 0

    @property
    def alive(self) -> bool:
        """Running or able to run: a zombie has ended and only waits for its parent to read its status."""
        return self.state not in ("Z", "X")


def stat(pid: int) -> ProcStat | None:
    """The process `pid`, or None when there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so split after its last ")".
    fields = raw[raw.rfind(b")") + 2:].split()
    return ProcStat(pid, fields[0].decode(), int(fields[1]), int(fields[2]), fields[19].decode(), int(fields[3]))


def boot_id() -> str | None:
    """This boot of the machine: start times count from the boot, so a process is named by (boot, pid, start)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
            return handle.read().strip() or None
    except OSError:
        return None


def processes() -> Iterator[ProcStat]:
    """Every process of this machine (as this pid namespace sees it)."""
    try:
        names = os.listdir("/proc")
    except OSError:
        return
    for name in names:
        if name.isdigit():
            found = stat(int(name))
            if found is not None:  # None: it ended meanwhile
                yield found


def signal_process(pid: int, start: str, sig: int) -> bool:
    """Send `sig` to the process named by (pid, start time), and to no other: through a pidfd opened on the pid and
    then checked to be that process, so a pid that changed hands in between is never signalled. False when that
    process is gone (or is not ours to signal)."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OSError:  # no pidfds here (an old kernel, a sandbox): check, then signal by pid
        now = stat(pid)
        if now is None or now.start != start:
            return False
        try:
            os.kill(pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False
    try:
        now = stat(pid)
        if now is None or now.start != start:
            return False
        signal.pidfd_send_signal(handle, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        os.close(handle)
