"""The resident runner: a later `mljob` call is run by a warm process, and is still the same call.

Each test has its own XDG_RUNTIME_DIR, so its own resident process, started by a first real CLI call as a user's would
be. What is checked is what the caller sees (output, exit code, signals, the run's record) against the same call made
with MLJOB_DAEMON=0, and that the resident process was the one that ran it (its count of calls served).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mljob.runner import orphans

from tests.runner.helpers import SLOW_JOB, history, run_name, wait_for, wait_until_started


@dataclass
class Resident:
    runtime: Path  # the XDG_RUNTIME_DIR of the test

    @property
    def folder(self) -> Path:
        return self.runtime / "mljob"

    def cli(self, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mljob", *args], capture_output=True, text=True, cwd=cwd,
                              env={**os.environ, **(env or {})}, timeout=timeout)

    def status(self, env: dict[str, str] | None = None) -> dict[str, int] | None:
        done = self.cli("daemon", "status", env=env)
        if done.returncode != 0:
            return None
        words = done.stdout.split()
        return {"pid": int(words[words.index("pid") + 1].rstrip(",")),
                "served": int(words[words.index("call(s)") - 1])}

    def start(self, env: dict[str, str] | None = None) -> dict[str, int]:
        """A first call (run in-process) starts the resident process; returns its status once it serves."""
        assert self.cli("--version", env=env).returncode == 0
        return wait_for(lambda: self.status(env), timeout=60, what="the resident runner to serve")  # type: ignore  # type: ignore[return-value]


def _gone(pid: int) -> bool:
    return orphans.process_start(pid) is None  # no such process, or a zombie


@pytest.fixture
def resident(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Resident]:
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("MLJOB_DAEMON", raising=False)
    monkeypatch.delenv("MLJOB_DAEMON_IDLE", raising=False)
    here = Resident(runtime)
    yield here
    found = here.status()
    here.cli("daemon", "stop")
    if found is not None:
        try:
            wait_for(lambda: _gone(found["pid"]), timeout=30, what="the resident runner to leave")
        finally:
            if not _gone(found["pid"]):
                os.kill(found["pid"], signal.SIGKILL)


def _process_job(folder: Path, command: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "job.yml"
    path.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                    f"command: {command}\nenvironment:\n  image: python\ncompute: process\n")
    return path


def test_a_call_runs_in_the_resident_process_with_the_callers_folder_environment_and_output(
        resident: Resident, tmp_path: Path) -> None:
    before = resident.start()
    project = tmp_path / "project"
    _process_job(project, 'echo "seen=$MLJOB_TEST_VALUE"')
    done = resident.cli("run", "job.yml", cwd=project, env={"MLJOB_TEST_VALUE": "from the caller"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "seen=from the caller" in done.stdout  # the caller's environment reached the job; its output, the caller
    view = history().find(run_name(done.stdout))  # recorded in the caller's MLJOB_HOME
    assert view is not None and view.status == "Completed"
    assert view.tags["mljob.source"] == str(project / "job.yml")  # a relative path, read from the caller's folder
    after = resident.status()
    assert after is not None and after["pid"] == before["pid"] and after["served"] == before["served"] + 1


@pytest.mark.parametrize("args", [
    ("--version",),
    ("validate", "bad.yml"),
    ("validate", "good.yml"),
    ("job", "show", "-n", "no_such_job"),
    ("no-such-verb",),
    ("run", "failing.yml"),
])
def test_the_caller_sees_what_a_call_in_its_own_process_shows(resident: Resident, tmp_path: Path,
                                                               args: tuple[str, ...]) -> None:
    (tmp_path / "bad.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                                      "command: echo hi\nenvironment:\n  image: python\ncompute: local\n"
                                      "unknown_key: 1\n")
    (tmp_path / "good.yml").write_text((tmp_path / "bad.yml").read_text().replace("unknown_key: 1\n", ""))
    _process_job(tmp_path, "echo about to fail && exit 3").rename(tmp_path / "failing.yml")
    before = resident.start()
    warm = resident.cli(*args, cwd=tmp_path)
    cold = resident.cli(*args, cwd=tmp_path, env={"MLJOB_DAEMON": "0"})
    assert resident.status()["served"] == before["served"] + 1  # type: ignore[index]

    def same(text: str) -> str:  # run names and ids differ from call to call
        names = [line.split()[-1] for line in text.splitlines() if line.startswith("RunId: ")]
        for name in names:
            text = text.replace(name, "NAME")
        return re.sub(r"\b[0-9a-f]{32}\b", "RUN_ID", text)

    assert (warm.returncode, same(warm.stdout), same(warm.stderr)) == \
           (cold.returncode, same(cold.stdout), same(cold.stderr))
    if args[0] == "run":
        assert warm.returncode == 1 and "about to fail" in warm.stdout


def test_ctrl_c_reaches_the_job_through_the_caller(resident: Resident, tmp_path: Path) -> None:
    before = resident.start()
    job = _process_job(tmp_path / "slow", "")
    job.write_text(SLOW_JOB.format(compute="process"))
    proc = subprocess.Popen([sys.executable, "-m", "mljob", "run", str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    try:
        assert proc.stdout is not None
        name = next(line.split(": ", 1)[1].strip() for line in proc.stdout if line.startswith("RunId: "))
        entry = wait_until_started(name)
        assert entry["pid"] != proc.pid  # the job's runner is the resident process's child, not the caller
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        proc.kill()
    view = history().find(name)
    assert view is not None and view.status == "Canceled" and "Ctrl-C" in view.reason
    assert resident.status()["served"] == before["served"] + 1  # type: ignore[index]


def test_a_killed_caller_takes_its_call_with_it(resident: Resident, tmp_path: Path) -> None:
    resident.start()
    job = _process_job(tmp_path / "slow", "")
    job.write_text(SLOW_JOB.format(compute="process"))
    proc = subprocess.Popen([sys.executable, "-m", "mljob", "run", str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    name = next(line.split(": ", 1)[1].strip() for line in proc.stdout if line.startswith("RunId: "))
    runner = int(wait_until_started(name)["pid"])  # type: ignore[call-overload]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    wait_for(lambda: _gone(runner), timeout=10, what="the call's process to be killed with its caller")
    listed = resident.cli("job", "list")  # as after any killed runner: the next call cleans up
    assert f"run {name} had lost its runner" in listed.stderr
    view = history().find(name)
    assert view is not None and view.status == "Failed"
    assert orphans.read(name) is None


def test_a_changed_installation_is_not_served_by_the_old_process(resident: Resident, tmp_path: Path) -> None:
    extra = tmp_path / "on-the-path"
    extra.mkdir()
    env = {"PYTHONPATH": str(extra)}
    old = resident.start(env)
    (extra / "upgraded.py").write_text("")  # the import path changed, as after a `pip install`
    again = resident.cli("--version", env=env)
    assert again.returncode == 0 and again.stdout.startswith("mljob ")  # served anyway, in the caller's process
    wait_for(lambda: _gone(old["pid"]), timeout=30, what="the stale resident runner to leave")
    new = wait_for(lambda: resident.status(env), timeout=60, what="a new resident runner")
    assert new["pid"] != old["pid"]  # type: ignore[index]
    resident.cli("daemon", "stop", env=env)
    wait_for(lambda: _gone(new["pid"]), timeout=30, what="the new resident runner to stop")  # type: ignore[index]


def test_a_socket_folder_others_can_enter_is_not_used(resident: Resident) -> None:
    resident.folder.mkdir(mode=0o755)
    resident.folder.chmod(0o755)
    done = resident.cli("--version", env={"MLJOB_DEBUG": "1"})
    assert done.returncode == 0 and done.stdout.startswith("mljob ")
    assert "is not a private folder" in done.stderr
    assert list(resident.folder.iterdir()) == []  # no socket, no log, no resident process


def test_mljob_daemon_0_runs_everything_in_the_callers_process(resident: Resident) -> None:
    done = resident.cli("--version", env={"MLJOB_DAEMON": "0"})
    assert done.returncode == 0 and done.stdout.startswith("mljob ")
    assert not resident.folder.exists()


def test_stop_and_idle_time_end_the_resident_process(resident: Resident) -> None:
    first = resident.start()
    stopped = resident.cli("daemon", "stop")
    assert stopped.returncode == 0 and "stops" in stopped.stdout
    wait_for(lambda: _gone(first["pid"]), timeout=30, what="the resident runner to stop")
    assert resident.cli("daemon", "status").returncode == 3
    # 5 s, not 1: under load each polling `daemon status` (a new Python process) can take longer than a 1 s spell,
    # and the resident would leave before it is ever seen serving.
    idle = resident.start({"MLJOB_DAEMON_IDLE": "5"})
    wait_for(lambda: _gone(idle["pid"]), timeout=30, what="the idle resident runner to leave")
    assert not any(resident.folder.glob("*.sock"))


def test_sigterm_ends_the_resident_process_and_the_running_call_still_reports(resident: Resident,
                                                                             tmp_path: Path) -> None:
    first = resident.start()
    job = _process_job(tmp_path / "short", "sleep 2 && echo finished")
    proc = subprocess.Popen([sys.executable, "-m", "mljob", "run", str(job)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    name = next(line.split(": ", 1)[1].strip() for line in proc.stdout if line.startswith("RunId: "))
    wait_for(lambda: (orphans.read(name) or {}).get("started"), timeout=60, what="the job to start")
    os.kill(first["pid"], signal.SIGTERM)
    wait_for(lambda: _gone(first["pid"]), timeout=10, what="the resident runner to leave on SIGTERM")
    rest = proc.stdout.read()
    assert proc.wait(60) == 0 and "finished" in rest  # the call, a process of its own, ran to its end and said so
    assert history().find(name).status == "Completed"  # type: ignore[union-attr]
    assert resident.cli("daemon", "status").returncode == 3


def test_the_resident_process_keeps_no_callers_secrets(resident: Resident) -> None:
    first = resident.start({"MLJOB_TEST_SECRET": "hunter2", "AWS_SECRET_ACCESS_KEY": "abc"})
    environ = Path(f"/proc/{first['pid']}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if b"hunter2" in v or b"AWS_SECRET" in v]
    assert any(v.startswith(b"PATH=") for v in environ)
