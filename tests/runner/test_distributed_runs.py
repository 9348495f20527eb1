"""Distributed jobs run locally, for real: ranks as processes (`process`) and one container per instance on a private
network (`local`), their variables, TF_CONFIG peers that reach each other, fail-fast, cleanup, and the seeds' plans."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest
from mljob.runner import procfs
from mljob.runner.history_base import local_path

from tests.realparts import importorskip, missing
from tests.runner.conftest import CORPUS, Mljob
from tests.runner.helpers import containers_of, history, run_name

ENV_PY = """\
import json, os
names = ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
print(json.dumps({k: os.environ[k] for k in names}))
"""
ENV_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python3 env.py
code: src
environment: {image: python:3.11}
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 2}
"""

# Every TF task listens on its own address from TF_CONFIG and connects to every peer: all must be reachable.
TF_PEERS = """\
import json, os, socket, threading, time
config = json.loads(os.environ["TF_CONFIG"])
me = config["cluster"][config["task"]["type"]][config["task"]["index"]]
peers = [a for kind in config["cluster"].values() for a in kind]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", int(me.rsplit(":", 1)[1])))
server.listen(16)
def accept():
    while True:
        conn, _ = server.accept()
        conn.close()
threading.Thread(target=accept, daemon=True).start()
for peer in peers:
    host, port = peer.rsplit(":", 1)
    for _ in range(200):
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        raise SystemExit(f"{me} cannot reach {peer}")
print(me, "reached", len(peers), "peers", flush=True)
time.sleep(1)  # peers still connecting to us
"""

TF_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python3 peers.py
code: src
environment: {image: python:3.11}
distribution: {type: tensorflow, worker_count: 2, parameter_server_count: 1}
resources: {instance_count: 2}
"""

CRASH_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: if [ "$RANK" = 1 ]; then sleep 1; echo "rank 1 crashes"; exit 3; fi; echo "rank $RANK waits"; sleep 300
environment: {image: python:3.11}
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 2}
"""


def _rank_logs(name: str) -> dict[str, str]:
    view = history().find(name)
    assert view is not None
    folder = local_path(view.artifact_uri) / "user_logs"
    return {p.name: p.read_text() for p in sorted(folder.glob("std_log_process_*.txt"))}


def _check_env(name: str, master: str) -> None:
    logs = _rank_logs(name)
    assert sorted(logs) == [f"std_log_process_{r}.txt" for r in range(4)]
    seen = {}
    for rank in range(4):
        facts = json.loads(logs[f"std_log_process_{rank}.txt"].strip().splitlines()[-1])
        seen[rank] = facts
        assert facts["RANK"] == str(rank) and facts["WORLD_SIZE"] == "4" and facts["LOCAL_WORLD_SIZE"] == "2"
        assert facts["LOCAL_RANK"] == str(rank % 2) and facts["NODE_RANK"] == str(rank // 2)
        assert facts["MASTER_ADDR"] == master
    assert len({f["MASTER_PORT"] for f in seen.values()}) == 1


@pytest.mark.parametrize("compute", ["process", "local"])
def test_pytorch_variables_on_every_rank(mljob: Mljob, write_job, compute: str,
                                         request: pytest.FixtureRequest) -> None:
    if compute == "local":
        request.getfixturevalue("no_leftovers")
    done = mljob("run", str(write_job(ENV_JOB, files={"src/env.py": ENV_PY})), "--set", f"compute={compute}")
    assert done.returncode == 0, done.stdout + done.stderr
    _check_env(run_name(done.stdout), "127.0.0.1" if compute == "process" else "node-0")
    assert '"RANK": "0"' in done.stdout  # rank 0's log is the run's stream


@pytest.mark.parametrize("compute", ["process", "local"])
def test_tensorflow_tasks_reach_every_peer(mljob: Mljob, write_job, compute: str,
                                          request: pytest.FixtureRequest) -> None:
    if compute == "local":
        request.getfixturevalue("no_leftovers")
    done = mljob("run", str(write_job(TF_JOB, files={"src/peers.py": TF_PEERS})), "--set", f"compute={compute}")
    assert done.returncode == 0, done.stdout + done.stderr
    logs = _rank_logs(run_name(done.stdout))
    assert len(logs) == 3 and all("reached 3 peers" in text for text in logs.values())


@pytest.mark.parametrize("compute", ["process", "local"])
def test_a_crashing_rank_fails_the_job_and_stops_the_others(mljob: Mljob, write_job, compute: str,
                                                           request: pytest.FixtureRequest) -> None:
    if compute == "local":
        engine = request.getfixturevalue("engine")
        request.getfixturevalue("no_leftovers")
    done = mljob("run", str(write_job(CRASH_JOB)), "--set", f"compute={compute}", timeout=120)
    name = run_name(done.stdout)
    view = history().find(name)
    assert done.returncode == 1 and view.status == "Failed" and "exited with code 3" in view.reason
    logs = _rank_logs(name)
    assert "rank 1 crashes" in logs["std_log_process_1.txt"]
    assert all("waits" in logs[f"std_log_process_{r}.txt"] for r in (0, 2, 3))
    if compute == "process":
        assert _processes_of(view.run_id) == []
    else:
        assert containers_of(engine, name) == []
        assert not engine.networks.list(names=[f"mljob-{name}"])  # type: ignore[attr-defined]


def _processes_of(run_id: str) -> list[str]:
    """Live processes (not zombies) that carry the run's MLFLOW_RUN_ID: what a rank or its children would be."""
    return [f"pid {p.pid} ({p.state}, parent {p.ppid}, group {p.pgid}): {' '.join(procfs.cmdline(p.pid))}"
            for p in procfs.carrying(f"MLFLOW_RUN_ID={run_id}")]


SEEDS = {
    "pytorch/cifar-distributed": ("pytorch: 2 × 2 processes = world size 4", 2),
    "tensorflow/mnist-distributed": ("tensorflow: 2 tasks over 2 instances", 2),
    "tensorflow/mnist-distributed-horovod": ("mpi: 2 × 2 slots = 4 ranks, started by mpirun on instance 0", 2),
}


@pytest.mark.parametrize("seed", sorted(SEEDS))
def test_seed_distributed_jobs_are_planned_as_azure_would(mljob: Mljob, tmp_path: Path, seed: str) -> None:
    folder = tmp_path / seed.replace("/", "_")
    shutil.copytree(CORPUS / "seed-2021/train" / seed, folder)
    (folder / "data").mkdir(exist_ok=True)  # cifar's input folder (the seed does not carry the data set)
    (folder / "src").mkdir(exist_ok=True)
    done = mljob("run", str(folder / "job.yml"), "--set", "compute=local", "--dry-run")
    assert done.returncode == 0, done.stdout + done.stderr
    head, instances = SEEDS[seed]
    assert head in done.stdout
    assert done.stdout.count("instance ") >= instances and "instance 1  host node-1" in done.stdout
    if "mpi" in head:
        assert "--mca plm_rsh_agent /mnt/mljob/bin/mljob-rsh" in done.stdout
        assert "runs: /mnt/mljob/bin/mljob-rsh --serve 29499" in done.stdout
    assert history().runs() == []  # a dry run records nothing


def test_cifar_seed_runs_for_real_with_a_script_of_our_own(mljob: Mljob, tmp_path: Path) -> None:
    folder = tmp_path / "cifar"
    shutil.copytree(CORPUS / "seed-2021/train/pytorch/cifar-distributed", folder)
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "batch.txt").write_text("3\n")
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "train.py").write_text(textwrap.dedent("""\
        import argparse, os
        p = argparse.ArgumentParser()
        p.add_argument("--epochs", type=int)
        p.add_argument("--data-dir")
        a = p.parse_args()
        value = int(open(os.path.join(a.data_dir, "batch.txt")).read())
        print(f"rank {os.environ['RANK']}/{os.environ['WORLD_SIZE']} epochs {a.epochs} value {value}")
    """))
    done = mljob("run", str(folder / "job.yml"), "--set", "compute=process")
    assert done.returncode == 0, done.stdout + done.stderr
    logs = _rank_logs(run_name(done.stdout))
    assert [text.strip() for text in logs.values()] == [f"rank {r}/4 epochs 1 value 3" for r in range(4)]


ALL_REDUCE = """\
import torch
import torch.distributed as dist
dist.init_process_group("gloo", init_method="env://")
rank = dist.get_rank()
value = torch.tensor([float(rank + 1)])
dist.all_reduce(value)
print(f"rank {rank} of {dist.get_world_size()}: sum {value.item():g}", flush=True)
assert value.item() == sum(range(1, dist.get_world_size() + 1))
dist.destroy_process_group()
"""

TORCH_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python3 all_reduce.py
code: src
environment: {image: mljob/dist:bookworm}
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 2}
"""

DIST_IMAGE = "mljob/dist:bookworm"


def _dist_image(engine: object) -> None:
    try:
        engine.images.get(DIST_IMAGE)  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001
        missing(f"{DIST_IMAGE} is missing", "./scripts/setup-distributed builds it with ./scripts/build-dist-image "
                "(openmpi, CPU torch)")


@pytest.mark.parametrize("compute", ["process", "local"])
def test_torch_gloo_all_reduce_2_by_2(mljob: Mljob, write_job, compute: str, request: pytest.FixtureRequest) -> None:
    if compute == "process":
        importorskip("torch", "./scripts/setup-distributed installs CPU torch 2.13.0 from its wheel")
    else:
        _dist_image(request.getfixturevalue("engine"))
        request.getfixturevalue("no_leftovers")
    done = mljob("run", str(write_job(TORCH_JOB, files={"src/all_reduce.py": ALL_REDUCE})), "--set",
                 f"compute={compute}", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    logs = _rank_logs(run_name(done.stdout))
    assert [text.strip().splitlines()[-1] for text in logs.values()] == [f"rank {r} of 4: sum 10" for r in range(4)]


MPI_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE on $(hostname) master $AZ_BATCH_MASTER_NODE"
environment: {image: mljob/dist:bookworm}
distribution: {type: mpi, process_count_per_instance: 2}
resources: {instance_count: 2}
"""


def test_mpirun_across_two_containers(mljob: Mljob, write_job, engine: object, no_leftovers: None) -> None:
    _dist_image(engine)
    done = mljob("run", str(write_job(MPI_JOB)), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = sorted(line for line in done.stdout.splitlines() if line.startswith("rank "))
    assert lines == [f"rank {r} of 4 on node-{r // 2} master node-0:29500" for r in range(4)]


SLOW_RANKS = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "rank $RANK up"; sleep 300
environment: {image: python:3.11}
distribution: {type: pytorch, process_count_per_instance: 2}
resources: {instance_count: 2}
"""


@pytest.mark.parametrize("compute", ["process", "local"])
def test_cancel_stops_every_rank(mljob: Mljob, write_job, compute: str, request: pytest.FixtureRequest) -> None:
    from tests.runner.helpers import wait_for

    if compute == "local":
        engine = request.getfixturevalue("engine")
        request.getfixturevalue("no_leftovers")
    created = mljob("job", "create", "-f", str(write_job(SLOW_RANKS)), "--set", f"compute={compute}",
                    "--name", f"dist_cancel_{compute}")
    assert created.returncode == 0, created.stderr
    name = f"dist_cancel_{compute}"
    folder = Path(os.environ["MLJOB_HOME"]) / "runs" / name / "user_logs"
    wait_for(lambda: all((folder / f"std_log_process_{r}.txt").is_file() and "up" in
                         (folder / f"std_log_process_{r}.txt").read_text() for r in range(4)),
             timeout=120, what="every rank to start")
    run_id = history().find(name).run_id  # type: ignore[union-attr]
    if compute == "process":
        assert len(_processes_of(run_id)) == 4  # the 4 ranks (bash execs the last command): the check sees them
    canceled = mljob("job", "cancel", "-n", name)
    assert canceled.returncode == 0 and "Canceled" in canceled.stdout, canceled.stdout + canceled.stderr
    if compute == "process":
        assert _processes_of(run_id) == []
    else:
        assert containers_of(engine, name) == []
        assert not engine.networks.list(names=[f"mljob-{name}"])  # type: ignore[attr-defined]


def test_mpi_on_the_process_compute_without_mpirun_says_what_to_do(mljob: Mljob, write_job,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")  # this machine has no mpirun either; make sure of it
    done = mljob("run", str(write_job(MPI_JOB)), "--set", "compute=process")
    assert done.returncode == 1
    assert "mpirun" in done.stdout and "apt-get install openmpi-bin" in done.stdout
