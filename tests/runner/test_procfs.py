"""runner/procfs.py against real processes: this one, a sleeping child in its own group, a zombie, a reaped one."""

from __future__ import annotations

import os
import signal
import subprocess

from mljob.runner import procfs


def test_a_running_process_its_group_and_its_end() -> None:
    me = procfs.stat(os.getpid())
    assert me is not None and me.alive and me.ppid == os.getppid() and me.pgid == os.getpgid(0)
    child = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        seen = procfs.stat(child.pid)
        assert seen is not None and seen.alive and seen.pgid == child.pid and seen.ppid == os.getpid()
        assert child.pid in {p.pid for p in procfs.processes() if p.pgid == child.pid}
        os.kill(child.pid, signal.SIGKILL)
        os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # ended, not yet reaped: a zombie
        zombie = procfs.stat(child.pid)
        assert zombie is not None and zombie.state == "Z" and not zombie.alive
        assert seen.start == zombie.start  # the same process, by its start time
    finally:
        child.kill()
        child.wait()
    assert procfs.stat(child.pid) is None
