"""Reaping after a dead runner signals only what is certainly the run's (issue 17, finding 4).

Each test writes an entry in $MLJOB_HOME/active/ as a runner that died would have left it, with real processes of
this test standing for the run's or for a stranger's, then makes the call that reaps (`mljob job list`). A stranger
is a process group that merely has the recorded number: after pid reuse (or a reboot) it is somebody else's `sleep`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mljob.runner import orphans, procfs

from tests.runner.conftest import Mljob
from tests.runner.helpers import history, wait_for


@pytest.fixture
def spawned() -> Iterator[list[procfs.ProcStat]]:
    """Processes a test started (or found in its groups): whatever is left of them is killed afterwards, each by its
    pid and start time."""
    found: list[procfs.ProcStat] = []
    yield found
    for proc in found:
        procfs.signal_process(proc.pid, proc.start, signal.SIGKILL)


def _start(argv: list[str], spawned: list[procfs.ProcStat], env: dict[str, str] | None = None,
           ) -> tuple[subprocess.Popen[bytes], procfs.ProcStat]:
    """A process group of its own (and a session, as the process backend makes them)."""
    proc = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            env={**os.environ, **(env or {})})
    found = procfs.stat(proc.pid)
    assert found is not None
    spawned.append(found)
    return proc, found


def _alive(proc: procfs.ProcStat) -> bool:
    now = procfs.stat(proc.pid)
    return now is not None and now.alive and now.start == proc.start


def _dead_runner() -> dict[str, object]:
    """The identity of a runner that has died: a process that ran and was reaped."""
    proc = subprocess.Popen(["true"])
    found = procfs.stat(proc.pid)  # running or a zombie: not reaped before wait()
    proc.wait()
    assert found is not None
    return {"pid": proc.pid, "pid_start": found.start, "boot": procfs.boot_id()}


def _new_run(name: str) -> str:
    """A run in the history, Running; returns its id."""
    run = history().create_run("orphans", name, {}, {"mljob.compute": "process"})
    history().set_status(run.run_id, "Running")
    return run.run_id


def _orphan(home: Path, name: str, run_id: str | None = None, **facts: object) -> None:
    """The entry a dead runner left behind for a run (a new one unless `run_id` is given)."""
    run_dir = home / "runs" / name
    (run_dir / "user_logs").mkdir(parents=True)
    orphans.register(name, {"run_id": run_id or _new_run(name), "tracking_uri": history().uri,
                            "run_dir": str(run_dir), "compute_type": "process", "started": True, **_dead_runner(),
                            **facts})


def _reaped(mljob: Mljob, name: str) -> str:
    """`mljob job list` (which reaps first): the run is closed as lost, Failed; returns what it said of it."""
    listed = mljob("job", "list")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert orphans.read(name) is None  # no longer in flight
    view = history().find(name)
    assert view is not None and view.status == "Failed" and "stopped before the job ended" in view.reason, view
    return listed.stderr


def test_a_stranger_with_the_recorded_group_number_is_left_alone(mljob: Mljob, home: Path, spawned) -> None:
    _, stranger = _start(["sleep", "300"], spawned)  # has the number; started at another time than the run's leader
    _orphan(home, "lost_pgid_reused", pgid=str(stranger.pid), pgid_start=str(int(stranger.start) - 1))
    said = _reaped(mljob, "lost_pgid_reused")
    time.sleep(0.3)  # a signal, had one been sent, has landed
    assert _alive(stranger), said
    assert f"pid {stranger.pid} is another process now, left alone" in said


def test_a_runner_whose_pid_went_to_another_process_is_known_to_be_dead(mljob: Mljob, home: Path, spawned) -> None:
    _, stranger = _start(["sleep", "300"], spawned)
    # The runner's pid is a live process now, but not the one that started then: the run has lost its runner.
    _orphan(home, "lost_runner_pid_reused", pid=stranger.pid, pid_start=str(int(stranger.start) - 1), started=False)
    assert not orphans.runner_alive(orphans.read("lost_runner_pid_reused"))  # type: ignore[arg-type]
    said = _reaped(mljob, "lost_runner_pid_reused")
    assert "lost_runner_pid_reused had lost its runner: nothing started" in said
    assert _alive(stranger)


def test_the_recorded_group_is_stopped_whole(mljob: Mljob, home: Path, spawned) -> None:
    proc, leader = _start(["bash", "-c", "sleep 300 & sleep 301 & echo ready; wait"], spawned)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    members = [p for p in procfs.processes() if p.pgid == leader.pid]
    spawned.extend(members)
    assert len(members) == 3  # the shell and its two sleeps
    _orphan(home, "lost_group", pgid=str(leader.pid), pgid_start=leader.start)
    said = _reaped(mljob, "lost_group")
    assert f"process group {leader.pid} ended" in said
    assert proc.wait(10) is not None
    wait_for(lambda: not any(_alive(p) for p in members), 10, "every process of the group to end")


@pytest.mark.parametrize("carries_the_run", [True, False])
def test_a_group_whose_leader_is_gone_loses_only_the_processes_that_carry_the_run(
        mljob: Mljob, home: Path, spawned, carries_the_run: bool) -> None:
    name = f"lost_leaderless_{str(carries_the_run).lower()}"
    run_id = _new_run(name)
    # The leader leaves at once; its background sleep stays in the group and the session the leader made, with the
    # run's MLFLOW_RUN_ID in its environment as the job's processes have it, or without (a stranger's).
    marker = {"MLFLOW_RUN_ID": run_id} if carries_the_run else {}
    proc, leader = _start(["bash", "-c", "sleep 300 & echo $!"], spawned, env=marker)
    assert proc.stdout is not None
    left = procfs.stat(int(proc.stdout.readline()))
    assert proc.wait(10) == 0 and procfs.stat(leader.pid) is None
    assert left is not None and left.pgid == leader.pid and left.session == leader.pid and _alive(left)
    spawned.append(left)
    _orphan(home, name, run_id, pgid=str(leader.pid), pgid_start=leader.start)
    said = _reaped(mljob, name)
    if carries_the_run:
        wait_for(lambda: not _alive(left), 10, "the run's leftover process to end")
        assert f"process group {leader.pid} ended" in said
    else:
        # Same group, same session, started after the leader, but nothing says it is the run's: once the run's
        # group had emptied, a stranger's session leader may have had the number.
        time.sleep(0.3)
        assert _alive(left), said


def test_a_group_recorded_in_another_boot_is_left_alone(mljob: Mljob, home: Path, spawned) -> None:
    _, stranger = _start(["sleep", "300"], spawned)
    # Even pid and start time agree (start times count from the boot): a restarted machine has none of the run's.
    _orphan(home, "lost_before_reboot", pgid=str(stranger.pid), pgid_start=stranger.start,
            boot="00000000-0000-0000-0000-000000000000")
    said = _reaped(mljob, "lost_before_reboot")
    time.sleep(0.3)
    assert _alive(stranger), said
    assert "the machine has restarted since" in said


def test_a_group_recorded_without_its_start_time_is_left_alone(mljob: Mljob, home: Path, spawned) -> None:
    _, stranger = _start(["sleep", "300"], spawned)
    _orphan(home, "lost_unnamed_group", pgid=str(stranger.pid))  # as an entry written before start times were kept
    said = _reaped(mljob, "lost_unnamed_group")
    time.sleep(0.3)
    assert _alive(stranger), said
    assert "left alone" in said


def test_a_distributed_run_loses_only_its_own_groups(mljob: Mljob, home: Path, spawned) -> None:
    _, rank0 = _start(["sleep", "300"], spawned)
    _, stranger = _start(["sleep", "300"], spawned)  # in the place of rank 1, whose number it now has
    _orphan(home, "lost_ranks", pgids=f"{rank0.pid},{stranger.pid}",
            pgid_starts=f"{rank0.start},{int(stranger.start) - 1}")
    said = _reaped(mljob, "lost_ranks")
    wait_for(lambda: not _alive(rank0), 10, "rank 0 to end")
    time.sleep(0.3)
    assert _alive(stranger), said
    assert "1 process group ended" in said
