"""Bad input stops a submission with one located message and no traceback, before anything is recorded."""

from __future__ import annotations

from pathlib import Path

from tests.runner.conftest import Mljob

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: cat ${{inputs.data}}
inputs:
  data:
    type: uri_file
    path: data.csv
environment:
  image: python:3.11-slim
compute: azureml:gpu-cluster
"""


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text


def test_unknown_compute_in_the_file_is_located_and_says_how_to_add_it(mljob: Mljob, write_job, home: Path) -> None:
    job = write_job(JOB, files={"data.csv": "a\n"})
    done = mljob("job", "create", "-f", str(job))
    assert done.returncode == 1
    _no_traceback(done.stderr)
    assert f"{job}:9:1: error MLJ401: compute `azureml:gpu-cluster` is not configured" in done.stderr
    assert "mljob compute create -n gpu-cluster --type local" in done.stderr
    assert not (home / "runs").exists() or not any((home / "runs").iterdir())


def test_unknown_compute_from_set_is_reported_against_the_argument(mljob: Mljob, write_job) -> None:
    job = write_job(JOB.replace("compute: azureml:gpu-cluster\n", ""), files={"data.csv": "a\n"})
    done = mljob("run", str(job), "--set", "compute=azureml:nowhere")
    assert done.returncode == 1
    assert f"{job}: --set compute=azureml:nowhere: error MLJ401" in done.stderr
    _no_traceback(done.stderr)


def test_a_named_compute_from_the_registry_runs(mljob: Mljob, write_job) -> None:
    job = write_job(JOB, files={"data.csv": "from the file\n"})
    created = mljob("compute", "create", "-n", "gpu-cluster", "--type", "process")
    assert created.returncode == 0, created.stderr
    listed = mljob("compute", "list")
    assert "gpu-cluster" in listed.stdout and "process" in listed.stdout
    done = mljob("run", str(job))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "from the file" in done.stdout


def test_missing_input_file_is_located(mljob: Mljob, write_job) -> None:
    job = write_job(JOB.replace("azureml:gpu-cluster", "process"))
    done = mljob("run", str(job))
    assert done.returncode == 1
    assert f"{job}:6:5: error MLJ403: input `data`:" in done.stderr
    assert "does not exist" in done.stderr
    _no_traceback(done.stderr)


def test_workspace_data_cannot_be_reached_and_says_what_to_write(mljob: Mljob, write_job) -> None:
    job = write_job(JOB.replace("azureml:gpu-cluster", "process").replace(
        "path: data.csv", "path: azureml://datastores/workspaceblobstore/paths/iris.csv"))
    done = mljob("run", str(job))
    assert done.returncode == 1
    assert f"{job}:6:5: error MLJ404:" in done.stderr and "local path" in done.stderr


def test_invalid_job_prints_the_validators_lines(mljob: Mljob, write_job) -> None:
    job = write_job("command: echo hi\nenvironment:\n  image: python\ncompute: process\nresources:\n  shm_size: lots\n")
    done = mljob("run", str(job))
    assert done.returncode == 1
    assert f"{job}:6:13: error MLJ207" in done.stderr
    _no_traceback(done.stderr)


def test_unknown_job_name_is_one_message(mljob: Mljob) -> None:
    done = mljob("job", "show", "-n", "no_such_job")
    assert done.returncode == 1
    assert "no job named `no_such_job`" in done.stderr
    _no_traceback(done.stderr)
