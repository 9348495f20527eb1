"""`compute: process` end to end: real processes, real MLflow SQLite store, the real CLI."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from mljob.runner import orphans, procfs

from tests.runner.conftest import CORPUS, EXAMPLES, Mljob
from tests.runner.helpers import SLOW_JOB, history, run_name, start_runner, wait_for, wait_until_started


def test_corpus_hello_world_input_completes(mljob: Mljob) -> None:
    done = mljob("run", str(CORPUS / "azureml-examples/basics/hello-world-input.yml"), "--set", "compute=process")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hello world\n42\n" in done.stdout
    view = history().find(run_name(done.stdout))
    assert view is not None and view.status == "Completed"
    assert view.params == {"hello_string": "hello world", "hello_number": "42"}
    assert view.experiment == "basics"  # Azure ML's default: the job file's folder name


def _check_iris(name: str, compute: str) -> None:
    view = history().find(name)
    assert view is not None and view.status == "Completed", view and view.reason
    assert view.experiment == "iris"
    assert abs(view.metrics["accuracy"] - 0.9667) < 0.001 and view.metrics["rows"] == 150
    files = {path for path, _ in history().artifacts(view.run_id)}
    assert {"outputs/model.json", "logs/train.log", "user_logs/std_log.txt"} <= files
    assert view.tags["mljob.compute"] == compute
    assert view.tags["mljob.kind"] == "command"
    assert view.tags["mlflow.source.name"].endswith(".yml")
    assert "mlflow.source.git.commit" in view.tags  # examples/ is in this repository


def test_iris_ga_and_2021_complete_with_metric_and_outputs(mljob: Mljob) -> None:
    for file in ("job.yml", "job-2021.yml"):
        done = mljob("run", str(EXAMPLES / "iris" / file), "--set", "compute=process")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "accuracy on 30 held-out rows: 0.967" in done.stdout
        _check_iris(run_name(done.stdout), "process")


def test_detached_create_then_stream_show_download(mljob: Mljob, tmp_path: Path) -> None:
    created = mljob("job", "create", "-f", str(EXAMPLES / "iris/job.yml"), "--set", "compute=process",
                    "--name", "iris_detached_1")
    assert created.returncode == 0, created.stderr
    assert run_name(created.stdout) == "iris_detached_1"
    streamed = mljob("job", "stream", "-n", "iris_detached_1")
    assert streamed.returncode == 0, streamed.stdout + streamed.stderr
    assert "accuracy on 30 held-out rows" in streamed.stdout and "Status: Completed" in streamed.stdout
    shown = mljob("job", "show", "-n", "iris_detached_1")
    assert "status: Completed" in shown.stdout and "accuracy: 0.966667" in shown.stdout
    assert "outputs/model.json" in shown.stdout and "iris: data/iris.csv" in shown.stdout
    listed = mljob("job", "list", "--experiment", "iris", "--status", "Completed")
    assert "iris_detached_1" in listed.stdout
    again = mljob("job", "create", "-f", str(EXAMPLES / "iris/job.yml"), "--name", "iris_detached_1")
    assert again.returncode == 1 and "already exists" in again.stderr
    got = mljob("job", "download", "-n", "iris_detached_1", "--all", "--download-path", str(tmp_path / "dl"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "dl/artifacts/outputs/model.json").is_file()
    assert (tmp_path / "dl/artifacts/user_logs/std_log.txt").read_text().startswith("note: iris")


def test_failing_command_is_failed_with_exit_code_and_last_lines(mljob: Mljob, write_job) -> None:
    job = write_job("command: echo first line; echo second line >&2; exit 3\ncompute: process\n"
                    "environment:\n  image: python\n")
    done = mljob("run", str(job))
    assert done.returncode == 1
    assert "Status: Failed" in done.stdout and "Exit code: 3" in done.stdout
    assert "Last lines of user_logs/std_log.txt:\n  first line\n  second line" in done.stdout
    view = history().find(run_name(done.stdout))
    assert view.status == "Failed" and view.reason == "the command exited with code 3"
    assert "second line" in mljob("job", "show", "-n", view.name).stdout


def test_timeout_stops_the_job_and_says_why(mljob: Mljob, write_job) -> None:
    job = write_job("command: echo going; sleep 60\ncompute: process\nlimits:\n  timeout: 2\n"
                    "environment:\n  image: python\n")
    done = mljob("run", str(job))
    assert done.returncode == 1 and "limits.timeout: stopped after 2 s" in done.stdout
    assert history().find(run_name(done.stdout)).status == "Failed"


def test_cancel_mid_run_metric_and_logs_arrive_live(mljob: Mljob, write_job) -> None:
    job = write_job(SLOW_JOB.format(compute="process"))
    proc, name = start_runner(str(job))
    try:
        wait_until_started(name)  # the job's own mlflow.log_metric reached the run while it runs
        view = history().find(name)
        assert view.status == "Running"
        wait_for(lambda: "logs/progress.txt" in {p for p, _ in history().artifacts(view.run_id)}, 30,
                 "./logs copied live")
        pgid = int(orphans.read(name)["pgid"])
        cancelled = mljob("job", "cancel", "-n", name)
        assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
        assert "Canceled" in cancelled.stdout
        assert proc.wait(30) == 130
    finally:
        proc.kill()
    view = history().find(name)
    assert view.status == "Canceled" and "mljob job cancel" in view.reason
    assert orphans.process_start(pgid) is None  # the job's processes are gone
    assert orphans.read(name) is None


def test_sigkill_of_the_runner_is_cleaned_up_by_the_next_call(mljob: Mljob, write_job) -> None:
    job = write_job(SLOW_JOB.format(compute="process"))
    proc, name = start_runner(str(job))
    entry = wait_until_started(name)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    pgid = int(entry["pgid"])  # type: ignore[call-overload]
    assert orphans.process_start(pgid) is not None  # the job outlived its runner…
    listed = mljob("job", "list", separate=True)
    assert f"run {name} had lost its runner" in listed.stderr
    wait_for(lambda: orphans.process_start(pgid) is None, 10, "the orphaned job to end")
    view = history().find(name)
    assert view.status == "Failed" and "stopped before the job ended" in view.reason
    assert "user_logs/std_log.txt" in {p for p, _ in history().artifacts(view.run_id)}  # its log is kept


def test_shell_metacharacters_in_an_input_are_passed_literally(mljob: Mljob, write_job) -> None:
    value = "a b; touch outputs/PWNED && echo $(id) 'single' \"double\" `tick` \\back $HOME *"
    job = write_job("""\
        command: >-
          python -c "import sys; open('outputs/arg.txt', 'w').write(sys.argv[1])" ${{inputs.v}} &&
          echo "${{inputs.v}}" > outputs/dq.txt
        inputs:
          v: placeholder
        compute: process
        environment:
          image: python
        """)
    done = mljob("run", str(job), "--set", f"inputs.v={value}")
    assert done.returncode == 0, done.stdout + done.stderr
    view = history().find(run_name(done.stdout))
    files = {p for p, _ in history().artifacts(view.run_id)}
    assert "outputs/PWNED" not in files
    folder = history().download(view.run_id, "outputs", Path(os.environ["MLJOB_HOME"]) / "check")
    assert (folder / "arg.txt").read_text() == value
    assert (folder / "dq.txt").read_text() == value + "\n"
    assert view.params["v"] == value


def test_http_input_is_downloaded_once_with_progress(mljob: Mljob, write_job, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "numbers.csv").write_text("n\n1\n2\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/numbers.csv"
        job = write_job(f"command: cat ${{{{inputs.numbers}}}}\ninputs:\n  numbers:\n    type: uri_file\n"
                        f"    path: {url}\ncompute: process\nenvironment:\n  image: python\n")
        first = mljob("run", str(job))
        assert first.returncode == 0, first.stdout + first.stderr
        assert "n\n1\n2\n" in first.stdout and f"downloaded {url}" in first.stderr
        second = mljob("run", str(job))
        assert second.returncode == 0 and "downloaded" not in second.stderr  # from the cache
    finally:
        server.shutdown()


# --- the job runs in the caller's environment: their PATH and active venv, never mljob's own interpreter ----------

PREFIX_JOB = """\
command: >-
  python -c "import importlib.util as u, os, sys;
  print('prefix', sys.prefix, 'rank', os.environ.get('RANK'), 'mlflow', u.find_spec('mlflow') is not None)" &&
  echo "VIRTUAL_ENV=$VIRTUAL_ENV" && echo "PATH=$PATH"
compute: process
environment:
  image: python
"""


@pytest.fixture(scope="module")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's own venv, as `python -m venv` makes it: its `python` has none of mljob's packages (no MLflow)."""
    place = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(place)], check=True, timeout=60)
    return place


@pytest.fixture
def activated(user_venv: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The caller's shell with that venv activated; its PATH (whatever was on it before, mljob's venv too, stays
    behind the venv's folder)."""
    path = os.pathsep.join([str(user_venv / "bin"), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("VIRTUAL_ENV", str(user_venv))
    return path


def _check_caller_environment(output: str, venv: Path, path: str, rank: str | None = None) -> None:
    # Under mljob's interpreter the prefix would be mljob's venv and MLflow importable.
    assert f"prefix {venv} rank {rank} mlflow False" in output, output
    assert f"VIRTUAL_ENV={venv}\n" in output
    assert f"PATH={path}\n" in output  # exactly the caller's: nothing put in front


def test_the_jobs_python_and_venv_are_the_callers_not_mljobs(mljob: Mljob, write_job, user_venv: Path,
                                                             activated: str) -> None:
    done = mljob("run", str(write_job(PREFIX_JOB)))
    assert done.returncode == 0, done.stdout + done.stderr
    _check_caller_environment(done.stdout, user_venv, activated)
    assert history().find(run_name(done.stdout)).status == "Completed"  # mljob itself still logged the run


def test_every_rank_of_a_distributed_job_runs_with_the_callers_python(mljob: Mljob, write_job, user_venv: Path,
                                                                      activated: str) -> None:
    job = write_job(PREFIX_JOB + "distribution: {type: pytorch, process_count_per_instance: 2}\n")
    done = mljob("run", str(job))
    assert done.returncode == 0, done.stdout + done.stderr
    view = history().find(run_name(done.stdout))
    folder = history().download(view.run_id, "user_logs", Path(os.environ["MLJOB_HOME"]) / "check")
    for rank in ("0", "1"):
        _check_caller_environment((folder / f"std_log_process_{rank}.txt").read_text(), user_venv, activated, rank)


def _residents_of(runtime: Path) -> list[int]:
    """Live resident runners (and their spares) whose socket is in `runtime`: this test's, none of anyone else's."""
    return [p.pid for p in procfs.processes() if p.alive and "serve" in (argv := procfs.cmdline(p.pid))
            and any(a.startswith(f"{runtime}/") for a in argv)]


@pytest.fixture
def resident(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, mljob: Mljob) -> Iterator[Callable]:
    """A resident runner of this test's own (its own XDG_RUNTIME_DIR), started by a first call; yields a function
    that reads its (pid, calls served), None when none serves."""
    runtime = tmp_path / "xdg"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.delenv("MLJOB_DAEMON", raising=False)

    def status() -> tuple[int, int] | None:
        done = mljob("daemon", "status", separate=True)
        if done.returncode != 0:
            return None
        words = done.stdout.split()
        return int(words[words.index("pid") + 1].rstrip(",")), int(words[words.index("call(s)") - 1])

    assert mljob("--version", separate=True).returncode == 0
    wait_for(status, timeout=60, what="the resident runner to serve")
    yield status
    mljob("daemon", "stop", separate=True)
    # A call the resident declined (mljob's files changed meanwhile) started another, which may still be warming up
    # and deaf to `stop`: whatever serves from this test's folder goes.
    try:
        wait_for(lambda: not _residents_of(runtime), timeout=30, what="the resident runner to leave")
    finally:
        for pid in _residents_of(runtime):
            os.kill(pid, signal.SIGKILL)


def test_through_the_resident_runner_the_job_has_the_callers_path_not_the_residents(
        mljob: Mljob, write_job, user_venv: Path, resident: Callable, monkeypatch: pytest.MonkeyPatch) -> None:
    pid, served = resident()  # started by a caller without the venv: its own PATH lacks it
    path = os.pathsep.join([str(user_venv / "bin"), os.environ["PATH"]])
    monkeypatch.setenv("PATH", path)
    monkeypatch.setenv("VIRTUAL_ENV", str(user_venv))
    done = mljob("run", str(write_job(PREFIX_JOB)), separate=True)
    assert done.returncode == 0, done.stdout + done.stderr
    _check_caller_environment(done.stdout, user_venv, path)
    assert resident() == (pid, served + 1)  # the resident process ran the call, not the caller itself
