"""The layout of distributed jobs (mljob.runner.distribute): pure data, no process or container starts here."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from mljob.runner.distribute import (
    RSH_AGENT,
    RSH_PORT,
    DistributionError,
    Layout,
    Proc,
    describe,
    free_port,
    launch_argv,
    layout_for,
    log_name,
)
from mljob.runner.model import load_job

TORCH_VARS = {"MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "LOCAL_WORLD_SIZE"}


def job(kind: str | None, instances: int | None = None, **dist: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"command": "python train.py"}
    if instances is not None:
        data["resources"] = {"instance_count": instances}
    if kind is not None:
        data["distribution"] = {"type": kind, **dist}
    return data


def tf_configs(layout: Layout) -> list[dict[str, Any]]:
    return [json.loads(p.env["TF_CONFIG"]) for p in layout.procs()]


def task_of(proc: Proc) -> tuple[str, int]:
    task = json.loads(proc.env["TF_CONFIG"])["task"]
    return task["type"], task["index"]


@pytest.fixture
def seed(corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The 2021 seed jobs' folder. load_job needs an mljob home, not Docker; `azureml:` computes stay unresolved."""
    monkeypatch.setenv("MLJOB_HOME", str(tmp_path / "mljob-home"))
    return corpus / "seed-2021" / "train"


# --- pytorch -------------------------------------------------------------------------------------------------


def test_pytorch_two_by_two_gives_every_rank_every_variable() -> None:
    layout = layout_for(job("pytorch", 2, process_count_per_instance=2), master_port=31234)
    assert layout.kind == "pytorch" and layout.world_size() == 4
    assert [len(i.procs) for i in layout.instances] == [2, 2]
    procs = layout.procs()
    assert sorted(p.rank for p in procs) == [0, 1, 2, 3]
    assert [(p.rank, p.local_rank, p.instance) for p in procs] == [(0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1)]
    for p in procs:
        assert set(p.env) == TORCH_VARS
        assert p.env == {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "31234", "WORLD_SIZE": "4", "RANK": str(p.rank),
                         "LOCAL_RANK": str(p.local_rank), "NODE_RANK": str(p.instance), "LOCAL_WORLD_SIZE": "2"}
    assert all(i.launcher is None for i in layout.instances)


def test_pytorch_master_is_the_first_host() -> None:
    layout = layout_for(job("pytorch", 2), hosts=["run-0", "run-1"])
    assert [i.host for i in layout.instances] == ["run-0", "run-1"]
    assert layout.master_addr == "run-0"
    assert {p.env["MASTER_ADDR"] for p in layout.procs()} == {"run-0"}
    assert layout.world_size() == 2  # process_count_per_instance defaults to 1


def test_2021_total_process_count_is_divided_over_the_instances() -> None:
    data = {"compute": {"target": "azureml:gpu", "instance_count": 2},
            "distribution": {"type": "pytorch", "process_count": 4}}
    layout = layout_for(data)
    assert [len(i.procs) for i in layout.instances] == [2, 2]
    assert {p.env["WORLD_SIZE"] for p in layout.procs()} == {"4"}


def test_seed_cifar_distributed_2021_total_becomes_two_per_instance(seed: Path) -> None:
    data = load_job(seed / "pytorch" / "cifar-distributed" / "job.yml").data
    assert data["resources"] == {"instance_count": 2}
    assert data["distribution"] == {"type": "pytorch", "process_count_per_instance": 2}
    layout = layout_for(data)
    assert layout.kind == "pytorch" and layout.world_size() == 4
    assert [[p.rank for p in i.procs] for i in layout.instances] == [[0, 1], [2, 3]]


# --- tensorflow ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("hosts", [None, ["tf-0", "tf-1"]], ids=["one machine", "two hosts"])
def test_tensorflow_workers_and_parameter_servers(hosts: list[str] | None) -> None:
    layout = layout_for(job("tensorflow", 2, worker_count=3, parameter_server_count=2), hosts=hosts, master_port=40000)
    assert layout.kind == "tensorflow" and layout.world_size() == 5
    configs = tf_configs(layout)
    cluster = configs[0]["cluster"]
    assert all(c["cluster"] == cluster for c in configs)
    assert len(cluster["worker"]) == 3 and len(cluster["ps"]) == 2
    tasks = sorted((c["task"]["type"], c["task"]["index"]) for c in configs)
    assert tasks == [("ps", 0), ("ps", 1), ("worker", 0), ("worker", 1), ("worker", 2)]
    addresses = cluster["worker"] + cluster["ps"]
    assert len(set(addresses)) == len(addresses)  # host:port pairs: a port is never reused on one host
    for instance in layout.instances:
        for proc in instance.procs:
            kind, index = task_of(proc)
            host, _, port = cluster[kind][index].rpartition(":")
            assert host == instance.host and int(port) >= 40000
    # Round-robin: worker 0, worker 2, ps 1 on instance 0; worker 1, ps 0 on instance 1.
    placed = [[task_of(p) for p in i.procs] for i in layout.instances]
    assert placed == [[("worker", 0), ("worker", 2), ("ps", 1)], [("worker", 1), ("ps", 0)]]
    assert [[p.local_rank for p in i.procs] for i in layout.instances] == [[0, 1, 2], [0, 1]]


def test_tensorflow_defaults_to_one_worker_per_instance_and_no_ps() -> None:
    layout = layout_for(job("tensorflow", 3), hosts=["a", "b", "c"])
    configs = tf_configs(layout)
    assert configs[0]["cluster"] == {"worker": ["a:29500", "b:29500", "c:29500"]}
    assert [c["task"] for c in configs] == [{"type": "worker", "index": i} for i in range(3)]
    assert "chief" not in configs[0]["cluster"]


def test_seed_mnist_distributed_has_one_worker_per_instance(seed: Path) -> None:
    data = load_job(seed / "tensorflow" / "mnist-distributed" / "job.yml").data
    assert data["resources"] == {"instance_count": 2}
    layout = layout_for(data)
    assert layout.kind == "tensorflow"
    assert [len(i.procs) for i in layout.instances] == [1, 1]
    configs = tf_configs(layout)
    assert configs[0]["cluster"] == {"worker": ["127.0.0.1:29500", "127.0.0.1:29501"]}
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0}, {"type": "worker", "index": 1}]


# --- mpi -----------------------------------------------------------------------------------------------------


def test_mpi_two_instances_two_slots_across_hosts() -> None:
    data = job("mpi", 2, process_count_per_instance=2)
    data["environment_variables"] = {"MY_SETTING": "1"}
    layout = layout_for(data, hosts=["run-0", "run-1"], master_port=29600, forward=["MLFLOW_RUN_ID"], as_root=False)
    assert layout.kind == "mpi" and layout.world_size() == 4
    first, second = layout.instances
    assert first.launcher == [
        "mpirun", "-np", "4", "--host", "run-0:2,run-1:2", "--map-by", "slot", "--bind-to", "none",
        "--mca", "btl_vader_single_copy_mechanism", "none",
        "--mca", "plm_rsh_agent", RSH_AGENT, "--mca", "plm_rsh_no_tree_spawn", "1",
        "--mca", "orte_leave_session_attached", "1",
        "-x", "AZ_BATCH_MASTER_NODE=run-0:29600", "-x", "AZ_BATCHAI_MPI_MASTER_NODE=run-0",
        "-x", "MY_SETTING", "-x", "MLFLOW_RUN_ID",
    ]
    assert second.launcher == [RSH_AGENT, "--serve", str(RSH_PORT)]
    assert launch_argv(first, ["bash", "-c", "python train.py"])[-3:] == ["bash", "-c", "python train.py"]
    assert launch_argv(second, ["bash", "-c", "python train.py"]) == second.launcher
    assert [(p.rank, p.instance) for p in layout.procs()] == [(0, 0), (1, 0), (2, 1), (3, 1)]
    assert {p.env["AZ_BATCH_MASTER_NODE"] for p in layout.procs()} == {"run-0:29600"}


def test_mpi_on_one_machine_needs_no_remote_launch() -> None:
    layout = layout_for(job("mpi", 2, process_count_per_instance=2), as_root=True)
    first, second = layout.instances
    assert first.launcher is not None
    assert first.launcher[first.launcher.index("--host") + 1] == "127.0.0.1:4"
    assert "plm_rsh_agent" not in first.launcher
    assert "--allow-run-as-root" in first.launcher
    assert second.launcher == []  # its ranks are started by instance 0's mpirun, on this same machine
    assert launch_argv(second, ["true"]) == []


def test_mpi_instances_sharing_a_host_pool_their_slots() -> None:
    layout = layout_for(job("mpi", 3, process_count_per_instance=2), hosts=["a", "a", "b"], as_root=False)
    first, second, third = layout.instances
    assert first.launcher is not None and "a:4,b:2" in first.launcher
    assert second.launcher == [] and third.launcher == [RSH_AGENT, "--serve", str(RSH_PORT)]


def test_seed_horovod_is_mpi_two_by_two(seed: Path) -> None:
    data = load_job(seed / "tensorflow" / "mnist-distributed-horovod" / "job.yml").data
    assert data["distribution"] == {"type": "mpi", "process_count_per_instance": 2}
    layout = layout_for(data, hosts=["h-0", "h-1"], as_root=False)
    assert layout.world_size() == 4
    launcher = layout.instances[0].launcher
    assert launcher is not None and launcher[:5] == ["mpirun", "-np", "4", "--host", "h-0:2,h-1:2"]


# --- no distribution -----------------------------------------------------------------------------------------


def test_no_distribution_is_one_process_without_variables() -> None:
    layout = layout_for(job(None))
    assert layout.kind == "none" and layout.world_size() == 1
    assert layout.instances[0].procs[0].env == {}


def test_no_distribution_on_several_instances_runs_the_command_on_each() -> None:
    layout = layout_for(job(None, 3))
    assert layout.kind == "none"
    assert [[(p.rank, p.local_rank, p.env) for p in i.procs] for i in layout.instances] == [
        [(0, 0, {})], [(1, 0, {})], [(2, 0, {})]]


# --- errors --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "words"), [
    ({"resources": {"instance_count": 2}, "distribution": {"type": "pytorch", "process_count": 5}},
     ["distribution.process_count: 5", "multiple of 2"]),
    (job("pytorch", -1), ["resources.instance_count", "at least 1"]),
    (job("pytorch", 2, process_count_per_instance=0), ["distribution.process_count_per_instance", "at least 1"]),
    (job("mpi", 1, process_count_per_instance=-2), ["distribution.process_count_per_instance", "-2"]),
    (job("tensorflow", 2, worker_count=0), ["distribution.worker_count", "at least 1"]),
    (job("tensorflow", 2, parameter_server_count=-1), ["distribution.parameter_server_count", "at least 0"]),
    (job("pytorch", 2, process_count_per_instance="two"), ["distribution.process_count_per_instance", "two"]),
    (job("horovod", 2), ["distribution.type: horovod", "pytorch, tensorflow, mpi"]),
    ({"distribution": {"process_count_per_instance": 2}}, ["no `type`"]),
], ids=["indivisible 2021 total", "negative instances", "zero per instance", "negative slots", "zero workers",
        "negative ps", "not a number", "unknown type", "no type"])
def test_bad_settings_say_which_key_and_what_to_do(data: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(DistributionError) as caught:
        layout_for(data)
    for word in words:
        assert word in str(caught.value)


def test_host_names_must_match_the_instance_count() -> None:
    with pytest.raises(DistributionError, match="2 host names given for 3 instances"):
        layout_for(job("pytorch", 3), hosts=["a", "b"])


def test_counts_written_as_text_are_read() -> None:
    assert layout_for(job("pytorch", "2", process_count_per_instance="3")).world_size() == 6  # type: ignore[arg-type]


# --- describe and small helpers ------------------------------------------------------------------------------


def test_describe_shows_ranks_and_variables() -> None:
    text = describe(layout_for(job("pytorch", 2, process_count_per_instance=2)))
    for rank in range(4):
        assert f"rank {rank}" in text
        assert f"RANK={rank}" in text
        assert log_name(rank) in text
    assert "instance 1  host 127.0.0.1" in text and "world size 4" in text


def test_describe_tensorflow_shows_the_cluster_and_each_task() -> None:
    text = describe(layout_for(job("tensorflow", 2, worker_count=2, parameter_server_count=1)))
    assert '"ps": [' in text and "task worker 1" in text and "task ps 0" in text
    assert '"task": {"type": "ps", "index": 0}' in text


def test_describe_mpi_shows_the_launcher() -> None:
    text = describe(layout_for(job("mpi", 2, process_count_per_instance=2), hosts=["a", "b"], as_root=False))
    assert "mpirun -np 4 --host a:2,b:2" in text and f"{RSH_AGENT} --serve" in text
    assert "rank 3" in text


def test_log_names_follow_azure() -> None:
    assert log_name(0) == "std_log_process_0.txt"
    assert log_name(12) == "std_log_process_12.txt"


def test_free_port_can_be_bound() -> None:
    port = free_port()
    assert 0 < port < 65536
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", port))

