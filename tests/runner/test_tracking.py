"""Jobs log through mljob's tracking server (MLflow's own, over HTTP), whatever MLflow client they carry.

The matrix: MLflow clients older than the server (2.22), newer (3.18) and the locked one, in containers (environments
built from a conda file, as a user would) and as processes in venvs of their own; each logs a param, a 5-step metric,
a tag and an artifact after `autolog()` ended the run, and everything lands in the job's run. The store is never
migrated by a job, and the server lets in only the user and the user's jobs.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from mljob.runner import tracking
from mljob.runner.history import History
from mljob.runner.history_sqlite import KNOWN_REVISIONS, revision

OLDER, NEWER = "2.22.1", "3.18.0"

LOG = """\
import os
import mlflow

mlflow.autolog()
try:
    import numpy as np
    from sklearn.linear_model import LinearRegression

    LinearRegression().fit(np.arange(8.0).reshape(-1, 1), np.arange(8.0) * 2)
    fitted = "sklearn"
except ImportError:
    # Without a framework, what autolog does around a fit it logged: start the job's run, end it (MLFLOW_RUN_ID is
    # gone afterwards in recent clients).
    mlflow.start_run()
    mlflow.end_run()
    fitted = "plain"
print("fitted:", fitted, "MLFLOW_RUN_ID left:", os.environ.get("MLFLOW_RUN_ID"))
mlflow.log_param("client", mlflow.__version__)
mlflow.set_tag("logged.by", "the job")
for step in range(5):
    mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
with open("note.txt", "w") as f:
    f.write("written by the job\\n")
mlflow.log_artifact("note.txt")
mlflow.set_experiment("somewhere-else")  # a job has one experiment: this must not move its records
mlflow.log_metric("after_autolog", 1.0)
print("logged with mlflow", mlflow.__version__)
"""


def _run_count(home: Path) -> int:
    with sqlite3.connect(home / "mlflow" / "mlflow.db") as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def _check_run(mljob: Callable[..., subprocess.CompletedProcess[str]], home: Path, name: str, client: str,
               *, autologged: bool = False) -> None:
    shown = mljob("job", "show", "-n", name)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    history = History()
    view = history.find(name)
    assert view is not None
    assert view.status == "Completed", shown.stdout
    assert view.params.get("client") == client, shown.stdout
    assert view.tags.get("logged.by") == "the job"
    assert [(p.step, p.value) for p in history.metric_history(view.run_id, "loss")] == [
        (s, 1.0 / (s + 1)) for s in range(5)]
    assert view.metrics["loss"] == pytest.approx(0.2)
    assert view.metrics["after_autolog"] == 1.0
    if autologged:
        assert "training_score" in view.metrics, view.metrics
    files = dict(history.artifacts(view.run_id))
    assert "note.txt" in files, files
    assert "note.txt" in shown.stdout
    # Everything in the one run: no stray run from autolog's end, none in another experiment.
    assert _run_count(home) == 1
    assert revision(home / "mlflow" / "mlflow.db") in KNOWN_REVISIONS  # never migrated by a job


# --- process jobs in venvs of their own --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def client_venvs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """venvs with only mlflow-skinny of each version (what a user's data-science venv would have)."""
    place = tmp_path_factory.mktemp("client-venvs")
    found: dict[str, Path] = {}
    for version in (OLDER, NEWER):
        venv = place / f"mlflow-{version}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        f"mlflow-skinny=={version}"], check=True, timeout=600)
        found[version] = venv
    return found


@pytest.mark.parametrize("version", [OLDER, NEWER])
def test_process_job_logs_with_its_own_mlflow(version: str, client_venvs: dict[str, Path], mljob, write_job, home,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    venv = client_venvs[version]
    monkeypatch.setenv("PATH", f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin")  # the user's venv, activated
    monkeypatch.setenv("VIRTUAL_ENV", str(venv))
    job = write_job("""\
        command: python log.py
        code: .
        compute: process
        environment: {image: python:3.11-slim}
    """, files={"log.py": LOG})
    done = mljob("run", str(job), "--name", f"proc_{version.replace('.', '_')}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"logged with mlflow {version}" in done.stdout
    _check_run(mljob, home, f"proc_{version.replace('.', '_')}", version)


# --- jobs in containers: environments from a conda file ------------------------------------------------------------


@pytest.mark.parametrize(("version", "packages"), [
    (OLDER, [f"mlflow-skinny=={OLDER}"]),
    (NEWER, [f"mlflow-skinny=={NEWER}"]),
    # The base image's own client (uv.lock's version) with a framework, for a real autolog of a fit.
    ("locked", ["scikit-learn==1.9.1", "pandas==3.1.1"]),
])
def test_docker_job_logs_with_its_own_mlflow(version: str, packages: list[str], engine, mljob, write_job, home,
                                             no_leftovers) -> None:
    conda = {"name": "job", "dependencies": ["python=3.11", "pip", {"pip": packages}]}
    job = write_job("""\
        command: python log.py
        code: .
        environment:
          image: python:3.11-slim
          conda_file: conda.yml
    """, files={"log.py": LOG, "conda.yml": json.dumps(conda)})
    name = f"docker_{version.replace('.', '_')}"
    done = mljob("run", str(job), "--name", name, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    client = version
    if version == "locked":
        from importlib.metadata import version as installed

        client = installed("mlflow-skinny")
    assert f"logged with mlflow {client}" in done.stdout
    _check_run(mljob, home, name, client, autologged=version == "locked")


# --- who gets in --------------------------------------------------------------------------------------------------


def _call(url: str, body: dict[str, object] | None = None, token: str | None = None) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_ui_serves_the_runs_and_refuses_writes_without_the_runs_token(mljob, write_job, home, engine,
                                                                       no_leftovers) -> None:
    job = write_job("command: echo hello\nenvironment: {image: python:3.11-slim}\n")
    assert mljob("run", str(job), "--name", "seen_in_ui").returncode == 0
    other = write_job("command: echo other\nenvironment: {image: python:3.11-slim}\n", folder="other")
    assert mljob("run", str(other), "--name", "another_job").returncode == 0
    shown = mljob("ui")
    assert shown.returncode == 0, shown.stderr
    server = tracking.running()
    assert server is not None and f"{server.url}/" in shown.stdout
    view = History().find("seen_in_ui")
    neighbour = History().find("another_job")
    assert view is not None and neighbour is not None

    # The user (this process's uid) reads the runs back through the UI's own REST API.
    status, found = _call(f"{server.url}/ajax-api/2.0/mlflow/runs/search",
                          {"experiment_ids": [view.experiment_id], "max_results": 10})
    assert status == 200
    assert view.run_id in {r["info"]["run_id"] for r in found["runs"]}  # type: ignore[union-attr]

    # From a container: the network namespace of a job, no token → refused; another run's token → refused.
    metric = {"run_id": view.run_id, "key": "intruder", "value": 1.0, "timestamp": 0, "step": 0}
    own = tracking.job_environment(History().uri, neighbour.run_id, neighbour.experiment_id)["MLFLOW_TRACKING_TOKEN"]
    probe = (
        "import json, sys, urllib.request, urllib.error\n"
        "url, body, token = sys.argv[1], sys.argv[2], sys.argv[3]\n"
        "headers = {'Content-Type': 'application/json'}\n"
        "if token: headers['Authorization'] = 'Bearer ' + token\n"
        "request = urllib.request.Request(url, data=body.encode(), headers=headers)\n"
        "try:\n"
        "    print(urllib.request.urlopen(request, timeout=60).status)\n"
        "except urllib.error.HTTPError as err:\n"
        "    print(err.code)\n")
    url = f"{server.url}/api/2.0/mlflow/runs/log-metric"
    for token, expected in (("", b"401"), (own, b"403"), ("x" * 32 + ".1.forged", b"401")):
        out = engine.containers.run("mljob/base:bookworm", ["python3", "-c", probe, url, json.dumps(metric), token],
                                    remove=True)
        assert out.strip() == expected, (token, out)
    assert "intruder" not in History().get(view.run_id).metrics

    # With its token a job (here: this process, which the token makes a job) makes a child run and logs into it; the
    # gate knows the child from MLflow's own tags table.
    api = f"{server.url}/api/2.0/mlflow"
    status, made = _call(f"{api}/runs/create", {"experiment_id": neighbour.experiment_id, "tags": [
        {"key": "mlflow.parentRunId", "value": neighbour.run_id}]}, token=own)
    assert status == 200, made
    child = made["run"]["info"]["run_id"]  # type: ignore[index]
    assert child != neighbour.run_id
    assert _call(f"{api}/runs/log-metric", {**metric, "run_id": child}, token=own)[0] == 200
    assert _call(f"{api}/runs/log-metric", metric, token=own)[0] == 403  # still not the other job's run
    status, again = _call(f"{api}/runs/create", {"experiment_id": "0"}, token=own)  # a second top-level run
    assert status == 200 and again["run"]["info"]["run_id"] == neighbour.run_id  # type: ignore[index]


def test_a_token_names_one_run_and_only_the_key_makes_it() -> None:
    from mljob.runner.tracking_gate import Job, token, verify

    run = "ab" * 16
    made = token(b"k" * 32, run, "7")
    assert verify(b"k" * 32, made) == Job(run, "7")
    assert verify(b"other-key", made) is None
    assert verify(b"k" * 32, made.replace(".7.", ".8.")) is None  # another experiment
    assert verify(b"k" * 32, "cd" * 16 + made[32:]) is None  # another run
    assert verify(b"k" * 32, "not a token") is None


def test_the_owner_is_told_by_the_uid_of_the_connecting_socket() -> None:
    import os
    import socket

    from mljob.runner.procfs import tcp_peer_uid

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname()) as client:
            accepted, address = server.accept()
            with accepted:
                assert tcp_peer_uid(address, server.getsockname()) == os.getuid()
                assert tcp_peer_uid(("127.0.0.1", 1), server.getsockname()) is None  # no such connection
                # The same port from an address that is not this machine's (a container's): never the owner.
                assert tcp_peer_uid(("172.31.254.7", address[1]), server.getsockname()) is None
    assert client is not None


def test_an_idle_server_sleeps_on_its_address_and_wakes_for_the_next_job(home, monkeypatch) -> None:
    monkeypatch.setenv("MLJOB_TRACKING_IDLE", "2")
    History()
    server = tracking.ensure()
    assert tracking.wait_ready(server)

    def rss_kib() -> int:
        with open(f"/proc/{server.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    awake = rss_kib()
    deadline = time.monotonic() + 120
    while rss_kib() > awake / 4 and time.monotonic() < deadline:
        time.sleep(1)
    asleep = rss_kib()
    assert asleep < awake / 4, (awake, asleep)  # MLflow's memory given back ...
    assert tracking.running() == server  # ... by the same process, on the same address
    status, found = _call(f"{server.url}/api/2.0/mlflow/experiments/search", {"max_results": 5})
    assert status == 200 and found["experiments"]  # the next request wakes it
