"""`compute: local` end to end in a real Docker engine: containers run as the user with an init, are labelled,
and are always removed. Public image names reach the local base image through the environments file."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from mljob.runner import orphans

from tests.runner.conftest import EXAMPLES, Mljob
from tests.runner.helpers import SLOW_JOB, containers_of, history, run_name, start_runner, wait_until_started

pytestmark = pytest.mark.usefixtures("engine", "no_leftovers")

HELLO = ["seed-2021/hello-world.yml"] + [f"azureml-examples/basics/hello-world{s}.yml"
                                          for s in ("", "-env-var", "-input", "-org", "-output", "-output-data")]


@pytest.mark.parametrize("relative", HELLO)
def test_hello_worlds_complete_in_docker(mljob: Mljob, corpus: Path, relative: str) -> None:
    done = mljob("run", str(corpus / relative))
    assert done.returncode == 0, done.stdout + done.stderr
    view = history().find(run_name(done.stdout))
    assert view.status == "Completed"
    assert view.tags["mljob.compute"] == "local" and view.tags["mljob.image"] == "mljob/base:bookworm"
    files = {p for p, _ in history().artifacts(view.run_id)}
    if relative.endswith("-output.yml"):
        assert "outputs/helloworld.txt" in files
    elif relative.endswith("-output-data.yml"):
        assert "named-outputs/hello_output/helloworld.txt" in files
    else:
        assert "hello world" in done.stdout
    if relative.endswith("-org.yml"):
        assert view.experiment == "hello-world-example" and view.tags["hello"] == "world"


def test_iris_ga_and_2021_complete_in_docker_with_metric_and_outputs(mljob: Mljob) -> None:
    from tests.runner.test_process_runs import _check_iris

    for file in ("job.yml", "job-2021.yml"):
        done = mljob("run", str(EXAMPLES / "iris" / file))
        assert done.returncode == 0, done.stdout + done.stderr
        name = run_name(done.stdout)
        _check_iris(name, "local")
        view = history().find(name)
        assert view.tags["mljob.command.resolved"].startswith(
            "python train.py --iris-csv /mnt/mljob/inputs/iris/iris.csv")


def test_input_modes_and_output_ownership(mljob: Mljob, write_job) -> None:
    job = write_job("""\
        command: >-
          ls ${{inputs.folder}} > outputs/listing.txt;
          (touch ${{inputs.folder}}/new 2>/dev/null && echo writable || echo read-only) > outputs/ro.txt;
          echo changed >> ${{inputs.copy}} && cat ${{inputs.copy}} > outputs/copy.txt;
          echo ${{inputs.remote}} > outputs/direct.txt;
          id -u > ${{outputs.who}}/uid.txt;
          exit 5
        inputs:
          folder: {type: uri_folder, path: data}
          copy: {type: uri_file, path: data/a.txt, mode: download}
          remote: {type: uri_file, path: "https://example.com/x.csv", mode: direct}
        outputs:
          who: {type: uri_folder}
        environment: {image: python}
        """, files={"data/a.txt": "original\n", "data/b.txt": "b\n"})
    done = mljob("run", str(job))
    assert done.returncode == 1 and "Exit code: 5" in done.stdout  # Failed: the folders stay for a look
    run_dir = Path(os.environ["MLJOB_HOME"]) / "runs" / run_name(done.stdout)
    outputs = run_dir / "wd" / "outputs"
    assert (outputs / "listing.txt").read_text().split() == ["a.txt", "b.txt"]
    assert (outputs / "ro.txt").read_text() == "read-only\n"
    assert (outputs / "copy.txt").read_text() == "original\nchanged\n"
    assert (job.parent / "data/a.txt").read_text() == "original\n"  # the job changed its copy only
    assert (outputs / "direct.txt").read_text() == "https://example.com/x.csv\n"
    assert (run_dir / "named-outputs/who/uid.txt").read_text() == f"{os.getuid()}\n"
    assert (outputs / "copy.txt").stat().st_uid == os.getuid()  # files the job writes are the user's


def test_failing_command_in_docker(mljob: Mljob, write_job) -> None:
    job = write_job("command: echo first line; echo second line >&2; exit 3\nenvironment:\n  image: python\n")
    done = mljob("run", str(job))
    assert done.returncode == 1
    assert "Exit code: 3" in done.stdout and "  second line" in done.stdout
    assert history().find(run_name(done.stdout)).reason == "the command exited with code 3"


def test_timeout_in_docker(mljob: Mljob, write_job) -> None:
    job = write_job("command: sleep 60\nlimits:\n  timeout: 2\nenvironment:\n  image: python\n")
    done = mljob("run", str(job))
    assert done.returncode == 1 and "limits.timeout: stopped after 2 s" in done.stdout
    assert history().find(run_name(done.stdout)).status == "Failed"


def test_missing_image_is_one_clear_message(mljob: Mljob, write_job) -> None:
    job = write_job("command: echo hi\nenvironment:\n  image: registry.invalid/nothing/here:1\n")
    done = mljob("run", str(job))
    assert done.returncode == 1
    text = done.stdout + done.stderr
    assert "Traceback" not in text
    assert "error MLJ405: image `registry.invalid/nothing/here:1` is not in the Docker engine" in text
    assert "under `images:`" in text  # the fix: map it to a local image
    assert history().find(run_name(done.stdout)).status == "Failed"


def test_cancel_mid_run_in_docker(mljob: Mljob, write_job, engine) -> None:
    job = write_job(SLOW_JOB.format(compute="local"))
    proc, name = start_runner(str(job))
    try:
        wait_until_started(name)
        (container,) = containers_of(engine, name)
        assert container.attrs["HostConfig"]["Init"] is True
        assert container.attrs["Config"]["User"] == f"{os.getuid()}:{os.getgid()}"
        cancelled = mljob("job", "cancel", "-n", name)
        assert "Canceled" in cancelled.stdout, cancelled.stdout + cancelled.stderr
        assert proc.wait(30) == 130
    finally:
        proc.kill()
    assert containers_of(engine, name) == []
    view = history().find(name)
    assert view.status == "Canceled" and view.metrics["early"] == 1.0


def test_ctrl_c_cancels_and_removes_the_container(write_job, engine) -> None:
    job = write_job(SLOW_JOB.format(compute="local"))
    proc, name = start_runner(str(job))
    try:
        wait_until_started(name)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 130
    finally:
        proc.kill()
    assert containers_of(engine, name) == []
    view = history().find(name)
    assert view.status == "Canceled" and "Ctrl-C" in view.reason


def test_sigkill_of_the_runner_leaves_an_orphan_that_the_next_call_removes(mljob: Mljob, write_job, engine) -> None:
    job = write_job(SLOW_JOB.format(compute="local"))
    proc, name = start_runner(str(job))
    wait_until_started(name)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert len(containers_of(engine, name)) == 1  # the orphan
    listed = mljob("job", "list", separate=True)
    assert f"run {name} had lost its runner: 1 container removed; marked Failed" in listed.stderr
    assert containers_of(engine, name) == []
    view = history().find(name)
    assert view.status == "Failed" and "stopped before the job ended" in view.reason
    assert orphans.read(name) is None


def test_shell_metacharacters_in_docker(mljob: Mljob, write_job) -> None:
    value = "x; touch outputs/PWNED && echo $(id) 'q' \"dq\" `tick` \\ *"
    job = write_job("""\
        command: >-
          python -c "import sys; open('outputs/arg.txt', 'w').write(sys.argv[1])" ${{inputs.v}}
        inputs:
          v: placeholder
        environment:
          image: python
        """)
    done = mljob("run", str(job), "--set", f"inputs.v={value}")
    assert done.returncode == 0, done.stdout + done.stderr
    view = history().find(run_name(done.stdout))
    files = {p for p, _ in history().artifacts(view.run_id)}
    assert files >= {"outputs/arg.txt"} and "outputs/PWNED" not in files
    folder = history().download(view.run_id, "outputs", Path(os.environ["MLJOB_HOME"]) / "check")
    assert (folder / "arg.txt").read_text() == value
