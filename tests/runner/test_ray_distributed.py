"""Distributed jobs on the `ray` compute, through the real runner and CLI, against the session's real Ray head
(tests/runner/test_ray.py starts it); the keeper's cleanup and the layout's placeholders are checked without Ray."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mljob.runner import problems
from mljob.runner.backends.base import Launch
from mljob.runner.backends.ray_group import RayGroupBackend, driver_source
from mljob.runner.history_base import local_path

from tests.realparts import importorskip
from tests.runner.conftest import Mljob
from tests.runner.helpers import history, run_name, wait_for
from tests.runner.test_distributed_runs import ALL_REDUCE

pytestmark = pytest.mark.filterwarnings("ignore:ssl=None is deprecated:DeprecationWarning")

TORCH_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python3 all_reduce.py
code: src
environment: {image: python:3.11}
compute: azureml:raytest
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 2}
"""

# Every rank sleeps on a number of this test's own, so that a process left behind is recognized as ours.
CRASH_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: >-
  if [ "$RANK" = 1 ]; then sleep 1; echo "rank 1 crashes"; exit 3; fi;
  echo "rank $RANK waits"; sleep {marker}
environment: {{image: python:3.11}}
compute: azureml:raytest
distribution: {{type: pytorch, process_count_per_instance: 2}}
resources: {{instance_count: 2}}
"""

SLEEP_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "rank $RANK waits"; sleep {marker}
environment: {{image: python:3.11}}
compute: azureml:raytest
distribution: {{type: pytorch, process_count_per_instance: 2}}
resources: {{instance_count: 2}}
"""


@pytest.fixture
def raytest(ray_head: str, mljob: Mljob) -> str:
    # Half a CPU per instance: two instances fit a 2-core head beside whatever else the session runs there.
    made = mljob("compute", "create", "-n", "raytest", "--type", "ray", "--address", ray_head, "--set", "num_cpus=0.5")
    assert made.returncode == 0, made.stdout + made.stderr
    return ray_head


def _marker() -> str:
    return f"300.{secrets.randbelow(10**6):06d}"  # `sleep 300.NNNNNN`: a command line no one else runs


def _left(marker: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            line = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in line:
            found.append(f"{pid}: {line}")
    return found


def _rank_logs(name: str) -> dict[str, str]:
    view = history().find(name)
    assert view is not None
    folder = local_path(view.artifact_uri) / "user_logs"
    return {p.name: p.read_text() for p in sorted(folder.glob("std_log_process_*.txt"))}


def test_torch_gloo_all_reduce_2_by_2_on_ray(raytest: str, mljob: Mljob, write_job) -> None:
    importorskip("torch", "./scripts/setup-distributed installs CPU torch 2.13.0 from its wheel")
    done = mljob("run", str(write_job(TORCH_JOB, files={"src/all_reduce.py": ALL_REDUCE})))
    assert done.returncode == 0, done.stdout + done.stderr
    name = run_name(done.stdout)
    assert history().find(name).status == "Completed"
    logs = _rank_logs(name)
    assert sorted(logs) == [f"std_log_process_{r}.txt" for r in range(4)]
    assert [text.strip().splitlines()[-1] for text in logs.values()] == [f"rank {r} of 4: sum 10" for r in range(4)]
    # Rank 0's output is the run's stream; the others are in their files only.
    assert "rank 0 of 4: sum 10" in done.stdout
    assert not any(f"rank {r} of 4" in done.stdout for r in (1, 2, 3))


def test_a_crashing_rank_fails_the_job_and_stops_the_others(raytest: str, mljob: Mljob, write_job) -> None:
    marker = _marker()
    done = mljob("run", str(write_job(CRASH_JOB.format(marker=marker))))
    name = run_name(done.stdout)
    view = history().find(name)
    assert done.returncode == 1 and view.status == "Failed", done.stdout + done.stderr
    assert "exited with code 3" in view.reason
    assert "mljob: rank 1 exited with code 3: stopping the other ranks" in done.stdout
    logs = _rank_logs(name)
    assert "rank 1 crashes" in logs["std_log_process_1.txt"]
    assert all("waits" in logs[f"std_log_process_{r}.txt"] for r in (0, 2, 3))
    assert _left(marker) == []  # the driver ends only once every rank's keeper has reaped its rank


def test_cancel_stops_every_rank(raytest: str, mljob: Mljob, write_job, home: Path) -> None:
    marker = _marker()
    name = f"raycancel{secrets.token_hex(3)}"
    made = mljob("job", "create", "-f", str(write_job(SLEEP_JOB.format(marker=marker))), "--name", name)
    assert made.returncode == 0, made.stdout + made.stderr
    logs = home / "runs" / name / "user_logs"

    def all_waiting() -> bool:
        files = [logs / f"std_log_process_{r}.txt" for r in range(4)]
        return all(f.exists() and "waits" in f.read_text() for f in files)

    wait_for(all_waiting, 120, "every rank to run")
    assert len(_left(marker)) >= 4  # each rank's sleep (and its keeper, whose command line holds the command)
    cancelled = mljob("job", "cancel", "-n", name)
    assert cancelled.returncode == 0 and "Canceled" in cancelled.stdout, cancelled.stdout + cancelled.stderr
    assert history().find(name).status == "Canceled"
    wait_for(lambda: _left(marker) == [], 30, "every rank to end")


def test_mpi_is_refused_plainly() -> None:
    with pytest.raises(problems.RunError, match=f"error {problems.NOT_RUNNABLE}: `distribution.type: mpi` is not "
                                                "supported on the `ray` compute yet"):
        RayGroupBackend("http://127.0.0.1:8265", {}, {"type": "mpi", "process_count_per_instance": 2}, 2)


def test_hosts_and_ports_are_placeholders_until_the_cluster_places_the_instances(tmp_path: Path) -> None:
    launch = Launch("n", "python3 train.py", tmp_path / "wd", {"A": "$x"})
    torch = RayGroupBackend("http://127.0.0.1:8265", {"num_cpus": "0.5", "num_gpus": 1},
                            {"type": "pytorch", "process_count_per_instance": 2}, 2)
    assert "num_cpus" not in torch.settings  # each instance's bundle, not the entrypoint's reservation
    spec = torch.spec(launch)
    assert spec["bundle"] == {"CPU": 0.5, "GPU": 1.0} and spec["strategy"] == "SPREAD"
    assert [(u["instance"], u["rank"], u["env"]["MASTER_ADDR"], u["env"]["MASTER_PORT"]) for u in spec["units"]] \
        == [(r // 2, r, "@host0@", "@port0.0@") for r in range(4)]
    assert spec["units"][0]["argv"] == ["bash", "-c", "python3 train.py"] and spec["env"] == {"A": "$x"}
    # Loopback: the cluster sees this machine's folders, so ranks write the run's user_logs/ directly.
    assert spec["units"][3]["log"] == str(tmp_path / "user_logs" / "std_log_process_3.txt")
    assert spec["copies"][0] == ["outputs", str(tmp_path / "wd" / "outputs")]
    tf = RayGroupBackend("http://ray.example:8265", {}, {"type": "tensorflow", "worker_count": 3}, 2).spec(launch)
    configs = [json.loads(u["env"]["TF_CONFIG"]) for u in tf["units"]]
    assert configs[0]["cluster"] == {"worker": ["@host0@:@port0.0@", "@host1@:@port1.0@", "@host0@:@port0.1@"]}
    assert [(u["instance"], u["rank"], u["log"]) for u in tf["units"]] == [
        (0, 0, "user_logs/std_log_process_0.txt"), (0, 2, "user_logs/std_log_process_2.txt"),
        (1, 1, "user_logs/std_log_process_1.txt")]  # not shared: each node keeps its ranks' logs
    assert tf["copies"] is None


def test_the_keeper_ends_its_rank_when_the_actor_dies(tmp_path: Path) -> None:
    """Without Ray: the keeper's stdin is the actor's pipe. SIGKILL of the keeper (as the raylet does to a dead
    worker's children) and EOF on that pipe must still end the rank and what it left in the background."""
    driver = tmp_path / "driver.py"
    driver.write_text(driver_source())
    marker = _marker()
    keeper = subprocess.Popen([sys.executable, str(driver), "keep", "5", "bash", "-c",
                               f"sleep {marker} & echo started; sleep {marker}"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert keeper.stdout is not None and keeper.stdout.readline() == b"started\n"
        wait_for(lambda: len([p for p in _left(marker) if p.split(": ", 1)[1].startswith("sleep ")]) == 2, 30,
                 "the rank's two sleeps")
        keeper.send_signal(signal.SIGKILL)
        keeper.wait()
        assert keeper.stdin is not None
        keeper.stdin.close()  # the actor's end of the pipe, closed as its process dies
        wait_for(lambda: _left(marker) == [], 30, "the rank's group to end")
    finally:
        for line in _left(marker):  # only after a failure: what this test started
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def test_the_keeper_exits_with_the_rank_code_and_takes_the_background_along(tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(driver_source())
    marker = _marker()
    # stdin stays open, as the actor's end of the pipe does while the actor lives (EOF would mean it died).
    keeper = subprocess.Popen([sys.executable, str(driver), "keep", "5", "bash", "-c", f"sleep {marker} & exit 7"],
                              stdin=subprocess.PIPE, start_new_session=True)
    assert keeper.wait(60) == 7
    assert keeper.stdin is not None
    keeper.stdin.close()
    wait_for(lambda: _left(marker) == [], 30, "the background sleep to end")
