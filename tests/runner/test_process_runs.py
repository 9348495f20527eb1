"""`compute: process` end to end: real processes, real MLflow SQLite store, the real CLI."""

from __future__ import annotations

import http.server
import os
import signal
import threading
from functools import partial
from pathlib import Path

from mljob.runner import orphans

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
