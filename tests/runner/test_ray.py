"""The `ray` compute against a real single-node Ray head on 127.0.0.1, started once for the session by
scripts/ray-head on free ports and stopped by its pids at the end (the tests skip only when Ray is not installed)."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from mljob.runner import problems
from mljob.runner.backends.base import Launch, Mount
from mljob.runner.backends.ray import RayBackend, _Markers, _status
from mljob.runner.distribute import free_port

from tests.realparts import importorskip
from tests.runner.helpers import wait_for

# Ray's job SDK opens its log stream with an argument aiohttp has deprecated; not ours to change.
pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

def _folders(tmp_path: Path) -> Path:
    """A run's work folder as execute._prepare leaves it: the code snapshot with ./outputs and ./logs."""
    workdir = tmp_path / "wd"
    (workdir / "outputs").mkdir(parents=True)
    (workdir / "logs").mkdir()
    return workdir


class _Run:
    """A backend driven as execute.Execution drives it: output pumped in a thread, wait() polled."""

    def __init__(self, backend: RayBackend, launch: Launch) -> None:
        self.backend = backend
        self.facts = backend.start(launch)
        self.chunks: list[bytes] = []
        self.pump = threading.Thread(target=lambda: self.chunks.extend(backend.output()), daemon=True)
        self.pump.start()

    @property
    def log(self) -> str:
        return b"".join(self.chunks).decode()

    def finish(self) -> int:
        """The exit code, polled as execute._watch does (a bound only so that a broken backend fails, not hangs)."""
        deadline = time.monotonic() + 120
        while (code := self.backend.wait(0.1)) is None:
            assert time.monotonic() < deadline, "the Ray job did not end within 120 s"
        self.pump.join(timeout=30)
        assert not self.pump.is_alive(), "output() did not end with the job"
        return code


def _launch(name: str, command: str, workdir: Path, mounts: list[Mount] | None = None,
            env: dict[str, str] | None = None) -> Launch:
    return Launch(f"{name}_{os.getpid()}_{time.monotonic_ns()}", command, workdir, env or {}, mounts or [])


def test_outputs_inputs_env_and_log_travel(ray_head: str, tmp_path: Path) -> None:
    workdir = _folders(tmp_path)
    (workdir / "train.py").write_text("print('hello from the cluster python')\n")
    (workdir / ".gitignore").write_text("*.csv\n")  # applied by the snapshot already: Ray must not drop the input
    data = tmp_path / "data" / "rows.csv"
    data.parent.mkdir()
    data.write_text("a,b\n1,2\n")
    folder = tmp_path / "tables"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "t.txt").write_text("in a folder\n")
    named = tmp_path / "named-outputs" / "model"
    named.mkdir(parents=True)
    backend = RayBackend(ray_head)
    rows, tables = backend.input_path("rows", data), backend.input_path("tables", folder)
    model = backend.output_path("model", named)
    assert (rows, tables, model) == (".mljob/inputs/rows/rows.csv", ".mljob/inputs/tables", ".mljob/outputs/model")
    assert backend.workdir_path(workdir) == "."
    command = (f'echo "greeting=$GREETING"; cat {rows} {tables}/sub/t.txt; python train.py; '
               f"echo x > outputs/x.txt; echo weights > {model}/w.txt; echo step1 > logs/train.log; "
               'echo "cwd=$PWD"')
    launch = _launch("ray_ok", command, workdir, [Mount(data, rows, True), Mount(folder, tables, True),
                                                  Mount(named, model, False)], {"GREETING": "hi there; $HOME"})
    run = _Run(backend, launch)
    assert set(run.facts) == {"address", "submission_id"} and run.facts["address"] == ray_head
    assert run.finish() == 0
    log = run.log
    assert "greeting=hi there; $HOME\n" in log  # the value exactly, not expanded by a shell or by Ray
    assert "a,b\n1,2\nin a folder\nhello from the cluster python\n" in log
    assert "Running entrypoint" not in log and "::mljob" not in log  # Ray's preamble is not the job's output
    assert (workdir / "outputs" / "x.txt").read_text() == "x\n"
    assert (workdir / "logs" / "train.log").read_text() == "step1\n"
    assert (named / "w.txt").read_text() == "weights\n"
    assert not (workdir / ".mljob").exists()  # the package is built beside the run folder, not in it
    backend.remove()
    backend.remove()  # more than once is fine

    # The same code again: a working folder of its own on the cluster, not the first run's.
    workdir2 = _folders(tmp_path / "again")
    shutil.copy(workdir / "train.py", workdir2 / "train.py")
    again = _Run(RayBackend(ray_head), _launch("ray_again", 'echo "cwd=$PWD"; ls outputs', workdir2))
    assert again.finish() == 0
    first = next(line for line in log.splitlines() if line.startswith("cwd="))
    second = next(line for line in again.log.splitlines() if line.startswith("cwd="))
    assert first != second
    assert "x.txt" not in again.log
    again.backend.remove()


TRAIN = """\
import json, os, sys
import mlflow

rows = open(sys.argv[1]).read().splitlines()
print(f"{len(rows)} rows on the cluster")
mlflow.log_metric("rows", len(rows))
os.makedirs(sys.argv[2], exist_ok=True)
with open(os.path.join(sys.argv[2], "weights.json"), "w") as out:
    json.dump({"rows": len(rows)}, out)
with open("outputs/model.json", "w") as out:
    json.dump({"ok": True}, out)
with open("logs/train.log", "w") as out:
    out.write("trained\\n")
"""

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
experiment_name: on-ray
code: src
command: python train.py ${{inputs.rows}} ${{outputs.model}}
inputs:
  rows:
    type: uri_file
    path: data/rows.csv
outputs:
  model:
    type: uri_folder
environment:
  image: python:3.11-slim
compute: process
"""


def test_a_job_file_runs_through_the_runner_on_ray(ray_head: str, mljob: Any, write_job: Any) -> None:
    """The runner's own path (registry, plan, snapshot, inputs, named outputs, MLflow, artifacts) on a compute of
    type ray, named as Azure ML names computes."""
    from mljob.runner.history import History

    added = mljob("compute", "create", "-n", "ray-test", "--type", "ray", "--address", ray_head)
    assert added.returncode == 0, added.stderr
    job = write_job(JOB, files={"src/train.py": TRAIN, "data/rows.csv": "a\nb\n"})
    done = mljob("run", str(job), "--set", "compute=azureml:ray-test")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 rows on the cluster" in done.stdout
    assert "the job's environment is not built" in done.stderr
    name = next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if line.startswith("RunId: "))
    view = History().find(name.strip())
    assert view is not None and view.status == "Completed", view and view.reason
    assert view.metrics["rows"] == 2  # logged from inside the Ray job into the run's SQLite store
    files = {path for path, _ in History().artifacts(view.run_id)}
    assert {"outputs/model.json", "logs/train.log", "named-outputs/model/weights.json",
            "user_logs/std_log.txt"} <= files


def test_failing_command_gives_its_exit_code(ray_head: str, tmp_path: Path) -> None:
    backend = RayBackend(ray_head)
    run = _Run(backend, _launch("ray_fail", "echo about to fail; exit 3", _folders(tmp_path)))
    assert run.finish() == 3
    assert "about to fail" in run.log
    backend.remove()


def test_stop_ends_a_running_job_and_remove_deletes_it(ray_head: str, tmp_path: Path) -> None:
    workdir = _folders(tmp_path)
    backend = RayBackend(ray_head)
    run = _Run(backend, _launch("ray_stop", "echo partial > outputs/p.txt; echo sleeping; sleep 60", workdir))
    wait_for(lambda: "sleeping" in run.log, timeout=60, what="the job to start")
    backend.stop()
    code = run.finish()
    assert code != 0
    client = backend.check()
    assert _status(client.get_job_info(run.facts["submission_id"])) == "STOPPED"
    assert (workdir / "outputs" / "p.txt").read_text() == "partial\n"  # what it made before the stop came back
    backend.remove()
    with pytest.raises(RuntimeError, match="does not exist"):
        client.get_job_info(run.facts["submission_id"])
    backend.remove()


def test_reap_stops_a_job_left_by_a_dead_runner(ray_head: str, tmp_path: Path) -> None:
    first = RayBackend(ray_head)
    facts = first.start(_launch("ray_orphan", "sleep 60", _folders(tmp_path)))
    client = first.check()
    wait_for(lambda: _status(client.get_job_info(facts["submission_id"])) == "RUNNING", timeout=60,
             what="the job to run")
    # The runner that started it is gone: a later mljob call has only the recorded facts.
    said = RayBackend.reap(dict(facts))
    assert said == f"Ray job {facts['submission_id']} stopped"
    with pytest.raises(RuntimeError, match="does not exist"):
        client.get_job_info(facts["submission_id"])
    assert RayBackend.reap(dict(facts)) == f"Ray job {facts['submission_id']} is already gone"
    first.remove()  # the dead runner's own cleanup, had it run, finds nothing left: no error


def test_reap_without_a_submission_or_an_answering_cluster() -> None:
    assert RayBackend.reap({}) == "no Ray job had been submitted"
    importorskip("ray.job_submission", "./scripts/setup-distributed installs Ray (mljob[ray])")
    said = RayBackend.reap({"address": f"http://127.0.0.1:{free_port()}", "submission_id": "mljob-x-1"})
    assert "does not answer" in said and "mljob-x-1" in said


def test_missing_ray_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray.job_submission", None)  # `from ray.job_submission import ...` fails
    with pytest.raises(problems.RunError) as caught:
        RayBackend("http://127.0.0.1:8265").check()
    message = str(caught.value)
    assert problems.ENGINE in message and "pip install 'mljob[ray]'" in message


def test_no_dashboard_is_an_engine_problem() -> None:
    importorskip("ray.job_submission", "./scripts/setup-distributed installs Ray (mljob[ray])")
    address = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(problems.RunError, match=f"{problems.ENGINE}: no Ray dashboard answers at {address}"):
        RayBackend(address).check()


def test_inputs_past_the_upload_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 2048)
    small = tmp_path / "small.txt"
    small.write_text("s")
    # On loopback the cluster sees this machine's files: a big input is used where it is.
    local = RayBackend("http://127.0.0.1:8265", {"max_upload_mib": 1 / 1024})
    assert local.input_path("small", small) == ".mljob/inputs/small/small.txt"
    assert local.input_path("big", big) == str(big)
    # A remote cluster with no shared folder cannot get it at all.
    remote = RayBackend("http://ray-head.example:8265", {"max_upload_mib": 1 / 1024})
    with pytest.raises(problems.RunError, match=f"{problems.INPUT_UNREACHABLE}: input `big`.*shared_dir"):
        remote.input_path("big", big)
    shared = RayBackend("http://ray-head.example:8265", {"max_upload_mib": 1 / 1024, "shared_dir": str(tmp_path)})
    assert shared.input_path("big", big) == str(big)
    tunnel = RayBackend("http://127.0.0.1:8265", {"max_upload_mib": 1 / 1024, "shared_dir": "none"})
    with pytest.raises(problems.RunError):
        tunnel.input_path("big", big)


def test_log_is_cut_to_the_command_output_wherever_chunks_split() -> None:
    log = ("2026 INFO -- Runtime env is setting up.\nRunning entrypoint for job j: bash .mljob/run.sh\n"
           "::mljob j begins::\nline 1\n::mljob almost\nlast, no newline::mljob j ends::\nafter\n")
    for size in (1, 3, 7, len(log)):
        markers = _Markers("::mljob j begins::", "::mljob j ends::")
        kept = "".join(markers.feed(log[i:i + size]) for i in range(0, len(log), size)) + markers.flush()
        assert kept == "line 1\n::mljob almost\nlast, no newline"
        assert markers.ended
    failed = _Markers("::mljob j begins::", "::mljob j ends::")
    assert failed.feed("runtime env setup failed: no space\n") == ""
    assert failed.flush() == "runtime env setup failed: no space\n"  # it never ran: Ray's words are all there is
    assert not failed.ended


SWEEP = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
experiment_name: sweep-on-ray
trial:
  code: src
  command: python trial.py ${{search_space.x}}
  environment: {image: python:3.11-slim}
compute: azureml:ray-sweep
sampling_algorithm: grid
search_space:
  x: {type: choice, values: [1, 2, 3]}
objective: {goal: minimize, primary_metric: loss}
limits: {max_total_trials: 3, max_concurrent_trials: 2}
"""

TRIAL = """\
import sys
import mlflow
x = float(sys.argv[1])
mlflow.log_metric("loss", (x - 2) ** 2)
print("trial on the cluster", x)
"""


def test_a_sweep_runs_its_trials_as_ray_jobs(ray_head: str, mljob: Any, write_job: Any) -> None:
    from mljob.runner.history import History

    assert mljob("compute", "create", "-n", "ray-sweep", "--type", "ray", "--address", ray_head).returncode == 0
    done = mljob("run", str(write_job(SWEEP, files={"src/trial.py": TRIAL})), "--name", "ray_sweep_1")
    assert done.returncode == 0, done.stdout + done.stderr
    sweep = History().find("ray_sweep_1")
    assert sweep is not None and sweep.status == "Completed"
    trials = History().runs(parent=sweep.run_id)
    assert len(trials) == 3 and all(t.tags["mljob.compute_type"] == "ray" for t in trials)
    assert sweep.tags["mljob.sweep.best_trial"] == next(t.name for t in trials if t.params["x"] == "2")
    assert sweep.metrics["loss"] == 0.0


def test_cancel_stops_a_ray_job(ray_head: str, mljob: Any, write_job: Any) -> None:
    from mljob.runner.history import History

    assert mljob("compute", "create", "-n", "ray-cancel", "--type", "ray", "--address", ray_head).returncode == 0
    job = write_job("""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: echo started; sleep 120
        environment: {image: python:3.11-slim}
        compute: azureml:ray-cancel
    """)
    created = mljob("job", "create", "-f", str(job), "--name", "ray_cancel_1")
    assert created.returncode == 0, created.stderr
    wait_for(lambda: getattr(History().find("ray_cancel_1"), "status", "") == "Running", timeout=120,
             what="the job to run")
    from mljob.runner import orphans

    wait_for(lambda: (orphans.read("ray_cancel_1") or {}).get("submission_id"), timeout=60,
             what="the Ray submission to be recorded")
    submission = orphans.read("ray_cancel_1")["submission_id"]  # type: ignore[index]
    client = RayBackend(ray_head).check()
    assert _status(client.get_job_info(submission)) in ("PENDING", "RUNNING")  # submitted, not over
    canceled = mljob("job", "cancel", "-n", "ray_cancel_1")
    assert canceled.returncode == 0, canceled.stdout + canceled.stderr
    view = History().find("ray_cancel_1")
    assert view.status == "Canceled"
    # Stopped on the cluster, then its record deleted there (the log is in the run's user_logs).
    with pytest.raises(RuntimeError, match="does not exist"):
        client.get_job_info(submission)
