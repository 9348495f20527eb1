"""What the kernel says of processes (/proc): the one reader behind the runner's "is it still running?", "whose is
this process?" and "whose is this connection?".

(runner/rsh_agent.py keeps its own: it is a standalone program that runs inside containers without mljob.)
"""

from __future__ import annotations

import os
import signal
import socket
import struct
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


def environ(pid: int) -> list[bytes]:
    """The environment a process started with, as `NAME=value` entries (empty when it is gone or not ours to read)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read().split(b"\0")
    except OSError:
        return []


def cmdline(pid: int) -> list[str]:
    """A process's arguments (empty when it is gone, or a kernel thread)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def carrying(entry: str) -> list[ProcStat]:
    """Live processes whose environment holds `entry` exactly (`MLFLOW_RUN_ID=…`: every process of one run)."""
    mark = entry.encode()
    return [p for p in processes() if p.alive and mark in environ(p.pid)]


def _tcp_address(host: str, port: int) -> str | None:
    try:
        packed = socket.inet_pton(socket.AF_INET, host)
    except OSError:
        return None
    # /proc/net/tcp prints an address as the kernel's 32-bit word in host order (on little-endian machines, the
    # bytes reversed).
    return f"{struct.unpack('=I', packed)[0]:08X}:{port:04X}"


def is_local_address(host: str) -> bool:
    """Whether `host` is an IPv4 address of this machine (in this network namespace): only those can be bound."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
        return True
    except OSError:
        return False


def tcp_peer_uid(client: tuple[str, int] | None, server: tuple[str, int] | None) -> int | None:
    """The uid owning the client end of a TCP connection to `server`, when that end is a socket of this machine."""
    if not client or not server or not is_local_address(client[0]):
        return None  # a container's or another machine's address: no socket of ours, whatever its port
    remote = _tcp_address(*server)
    if remote is None:
        return None
    # Matched by the client's port, not its whole address: the address a server sees for a local client is not
    # always the one the client's socket holds (seen here: 192.0.2.2, eth0's, for a client bound to 172.17.0.1).
    port = f":{client[1]:04X}"
    try:
        with open("/proc/net/tcp") as table:
            next(table)
            for line in table:
                fields = line.split()
                if fields[2] == remote and fields[1].endswith(port):
                    return int(fields[7])
    except OSError:
        return None
    return None


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
