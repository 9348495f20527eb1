"""`mljob job cancel` finishes quickly in every state of a run, also right after `mljob job create` through the
resident runner, when the detached runner may not even have installed its signal handler yet (issue 17, finding 7).

Each test has its own XDG_RUNTIME_DIR, so its own resident process (the fixture of test_resident.py)."""

from __future__ import annotations

from pathlib import Path

from mljob.runner import orphans, procfs

from tests.runner.helpers import history, run_name, wait_for
from tests.runner.test_resident import Resident, resident  # noqa: F401 (the fixture)

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo started && sleep 300
environment:
  image: python
compute: process
"""


def _carrying(run_id: str) -> list[procfs.ProcStat]:
    """Live processes whose environment names the run: the job's shell and its `sleep`."""
    return procfs.carrying(f"MLFLOW_RUN_ID={run_id}")


def _runner_of(name: str) -> int | None:
    entry = orphans.read(name)
    return int(entry["pid"]) if entry and entry.get("pid") else None


def _create(resident: Resident, tmp_path: Path) -> str:  # noqa: F811
    folder = tmp_path / "project"
    folder.mkdir(exist_ok=True)
    (folder / "job.yml").write_text(JOB)
    created = resident.cli("job", "create", "-f", "job.yml", cwd=folder)
    assert created.returncode == 0, created.stdout + created.stderr
    return run_name(created.stdout)


def _cancel(resident: Resident, name: str) -> None:  # noqa: F811
    # No timing is asserted: what the slow cancel got wrong is checked instead (who saw the cancel, the reason, what
    # is left). The timeout only keeps a hang from holding the suite.
    canceled = resident.cli("job", "cancel", "-n", name, timeout=120)
    assert canceled.returncode == 0, canceled.stdout + canceled.stderr
    assert "Canceled" in canceled.stdout, canceled.stdout + canceled.stderr


def _nothing_left(name: str, runner: int | None) -> None:
    view = history().find(name)
    assert view is not None and view.status == "Canceled", (view.status, view.reason) if view else None
    assert orphans.read(name) is None  # the run is no longer in flight
    if runner is not None:
        wait_for(lambda: orphans.process_start(runner) is None, timeout=10, what="the detached runner to leave")
    wait_for(lambda: not _carrying(view.run_id), timeout=10, what="no process of the job left")


def test_cancel_right_after_create_through_the_resident_runner_reaches_the_runner(resident: Resident,  # noqa: F811
                                                                         tmp_path: Path) -> None:
    before = resident.start()
    name = _create(resident, tmp_path)
    runner = _runner_of(name)  # the detached runner, possibly still importing Python
    _cancel(resident, name)
    after = resident.status()
    assert after is not None and after["served"] == before["served"] + 2  # both calls went through the resident
    _nothing_left(name, runner)
    view = history().find(name)
    # The runner itself saw the cancel (it did not die of a signal that came before its handler).
    assert view is not None and view.reason == "canceled with `mljob job cancel`", view.reason


def test_cancel_of_a_running_job_through_the_resident_runner_stops_it(resident: Resident,  # noqa: F811
                                                                      tmp_path: Path) -> None:
    resident.start()
    name = _create(resident, tmp_path)
    wait_for(lambda: (orphans.read(name) or {}).get("pgid"), timeout=60, what="the job to start")
    runner = _runner_of(name)
    view = history().find(name)
    assert view is not None
    wait_for(lambda: _carrying(view.run_id), timeout=30, what="the job's processes")
    _cancel(resident, name)
    view = history().find(name)
    assert view is not None and "mljob job cancel" in view.reason
    _nothing_left(name, runner)


def test_cancel_after_the_runner_died_settles_the_run(resident: Resident, tmp_path: Path) -> None:  # noqa: F811
    import os
    import signal

    resident.start()
    name = _create(resident, tmp_path)
    wait_for(lambda: (orphans.read(name) or {}).get("pgid"), timeout=60, what="the job to start")
    runner = _runner_of(name)
    assert runner is not None
    os.kill(runner, signal.SIGKILL)
    wait_for(lambda: orphans.process_start(runner) is None, timeout=10, what="the runner to die")
    _cancel(resident, name)
    _nothing_left(name, runner)
    view = history().find(name)
    assert view is not None and "its runner had already stopped" in view.reason, view.reason
