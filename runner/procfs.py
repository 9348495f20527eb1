"""What the kernel says of processes (/proc/PID/stat): the one reader behind the runner's "is it still running?".

(runner/rsh_agent.py keeps its own: it is a standalone program that runs inside containers without mljob.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class ProcStat:
    pid: int
    state: str  # R, S, D, T, Z (zombie), X (dead), …
    ppid: int
    pgid: int
    start: str  # the kernel's start time in clock ticks: with the pid, it names one process for good

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
    return ProcStat(pid, fields[0].decode(), int(fields[1]), int(fields[2]), fields[19].decode())


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
