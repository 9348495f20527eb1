"""Job data → the layout of a distributed run: which instances, which processes on each, and what each one is told.

Pure: no process starts here and nothing is read but the job's data (`free_port` alone touches a socket). The
plan/backends decide how an instance becomes a container or a group of local processes; this module decides what
runs there, so that an unchanged Azure ML training script finds what it finds on Azure.

Counts (GA syntax; a 2021 `process_count`, the TOTAL, and `compute.instance_count` are accepted too, in case data
reaches here unmigrated): `resources.instance_count` instances (default 1), and per `distribution.type`:

pytorch     `process_count_per_instance` (default 1) processes on every instance, one per rank. Every process gets
            what `torch.distributed.init_process_group(init_method="env://")` and torchrun-style scripts read:
            MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, LOCAL_RANK, NODE_RANK, LOCAL_WORLD_SIZE. Azure ML documents
            the first six; LOCAL_WORLD_SIZE is torchrun's and costs nothing. AZ_BATCH_MASTER_NODE is left out: Azure
            documents it for MPI jobs only.

tensorflow  `worker_count` workers (default: the instance count) and `parameter_server_count` parameter servers
            (default 0), one process per task, each with its own TF_CONFIG = {"cluster": {"worker": [...],
            "ps": [...]}, "task": {"type": ..., "index": i}}; "ps" is absent when there are none, and no "chief" is
            added (Azure ML adds none: worker 0 acts as chief in MultiWorkerMirroredStrategy).
            Placement: the tasks in order — worker 0..W-1, then ps 0..P-1 — go round-robin over the instances
            (task t on instance t mod M), so W+P = M gives one task per instance as on Azure. Every task listens on
            its own port: the n-th task placed on a host name gets master_port + n. Ports are counted per host
            NAME, not per instance, so with the process backend (every host 127.0.0.1) no two tasks share a port.
            An instance left without a task (W+P < M) runs nothing.

mpi         `process_count_per_instance` (default 1) slots per instance. Ranks are not started one by one: instance
            0 runs `Instance.launcher` (mpirun) followed by the rank's program (see `launch_argv`), and mpirun starts
            every rank and gives each OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK/LOCAL_SIZE itself (its _NODE_RANK is
            a rank among the node's processes, not the instance index). mljob adds
            AZ_BATCH_MASTER_NODE=host0:port (Azure's form: scripts split it on ":" to set MASTER_ADDR/MASTER_PORT
            for torch over MPI) and AZ_BATCHAI_MPI_MASTER_NODE=host0, passed with `-x NAME=value`, and forwards the
            job's `environment_variables` (plus `forward`) with `-x NAME` so remote ranks see instance 0's values.
            Rank r lives on instance r // N (`--map-by slot` fills each host's slots in `--host` order).

none        no distribution: the command runs once on every instance (Azure runs it on each node), no variables.

The mpi design (target: Open MPI 4.1, as in Debian bookworm and Azure ML's images; no sshd anywhere):

- All hosts the same (the process backend: 127.0.0.1 for every instance): one `--host 127.0.0.1:M*N` entry and no
  remote launch at all; mpirun runs every rank locally and the other instances' launcher is `[]` (nothing to run).
  Open MPI then sees ONE node (OMPI_COMM_WORLD_LOCAL_RANK runs 0..M*N-1), which is what the machine really is.
  Generally, instances that share a host name pool their slots in one `--host` entry.
- Distinct hosts (Docker, one container per instance on the run's private network): mpirun on instance 0 starts an
  `orted` daemon on every other host through Open MPI's rsh launcher with `--mca plm_rsh_agent mljob-rsh` — a program
  called exactly as ssh would be. `plm_rsh_no_tree_spawn 1` keeps every launch on instance 0, so only instance 0
  calls the agent. Every other instance runs `Instance.launcher` = `mljob-rsh --serve PORT` as its main process.
  The integrator provides `mljob-rsh` (a stdlib-only Python 3 script, e.g. bind-mounted and on PATH or named by
  absolute path via `rsh_agent`) with this contract:

    mljob-rsh [-OPTION ...] HOST WORD...    (the agent; what mpirun runs, argv as for ssh)
        Options before HOST are ignored (ssh compatibility). Joins WORD... with single spaces and runs the result
        as `/bin/sh -c <text>` on HOST: connects to HOST:$MLJOB_RSH_PORT (default RSH_PORT), retrying for up to
        60 s (the server may still be starting), authenticates with $MLJOB_RSH_TOKEN, relays its stdin to the
        remote command and the remote stdout/stderr to its own, and exits with the remote exit status (128+N if a
        signal N ended it). Exits 255 with a message on stderr when it cannot connect or is refused, as ssh does.
        If the agent itself ends (mpirun kills it), the server kills what that connection started.
    mljob-rsh --serve PORT                  (the main process of every instance but 0)
        Listens on 0.0.0.0:PORT of the run's private network; serves any number of connections, one command each,
        refusing those without the token; runs commands in its own environment and working directory; never ends
        on its own (the run ends with instance 0's mpirun; then the integrator stops every instance). SIGTERM ends
        it and every command it started.

  And for the integrator: MLJOB_RSH_TOKEN is a fresh random secret in every instance's environment; each
  container's hostname (`docker run --hostname`) equals its `Instance.host`, so mpirun recognizes instance 0 as
  itself and launches its ranks locally; every instance has the same mounts at the same paths (orted starts the
  ranks in mpirun's working directory); instance 0 has SHELL=/bin/sh (mpirun picks the remote shell's syntax from
  the local user's shell, and an image rarely knows the invoking uid: without it mpirun warns and assumes bash).
  Start instances 1.. before instance 0 if convenient; the agent's retries cover the race. The run's exit code is
  instance 0's. This was tried with a prototype agent: Debian bookworm's openmpi-bin 4.1.4, two containers on a
  private network, uid 1000 and root, mpi4py allreduce over 2 × 2 ranks.

Flags and why: `--bind-to none`: local instances share this machine's few cores, and binding more ranks than cores
is an error in Open MPI. No `--oversubscribe`: `--host h:N` declares exactly the slots `-np` fills.
`btl_vader_single_copy_mechanism none`: shared-memory transfers otherwise need ptrace (CMA), which Docker's default
seccomp profile forbids. `--allow-run-as-root` only when the invoking user is root: backends run ranks as the
invoking uid, and mpirun refuses uid 0 without it.

Logs: process `rank` writes `user_logs/` + `log_name(rank)` (Azure's std_log_process_N.txt); a run with one process
keeps std_log.txt. mpirun interleaves its ranks' output into instance 0's stream.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("pytorch", "tensorflow", "mpi")
LOCALHOST = "127.0.0.1"
RSH_AGENT = "mljob-rsh"
RSH_PORT = 29499  # next to torch's customary 29500, which stays the default master port


class DistributionError(ValueError):
    """The job's distribution settings cannot be laid out; the message names the key and the fix."""


@dataclass(frozen=True)
class Proc:
    rank: int  # global rank (for tensorflow: the task's position, workers first)
    local_rank: int
    instance: int  # node rank
    env: dict[str, str]  # added to the job's own variables


@dataclass(frozen=True)
class Instance:
    index: int
    host: str  # the name peers reach it by
    procs: list[Proc]
    # None: start one process per Proc. A list (mpi only): run this instead and start no Proc (mpirun on instance 0
    # starts them all); `[]` means run nothing, for an instance on the same machine as instance 0.
    launcher: list[str] | None = None


@dataclass(frozen=True)
class Layout:
    kind: str  # "pytorch" | "tensorflow" | "mpi" | "none"
    instances: list[Instance]
    master_addr: str
    master_port: int

    def world_size(self) -> int:
        return sum(len(i.procs) for i in self.instances)

    def procs(self) -> list[Proc]:
        return [p for i in self.instances for p in i.procs]


def log_name(rank: int) -> str:
    return f"std_log_process_{rank}.txt"


def free_port() -> int:
    """A TCP port free on this machine right now (the OS's pick: another program may take it before we do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOCALHOST, 0))
        return int(s.getsockname()[1])


def launch_argv(instance: Instance, program: Sequence[str]) -> list[str]:
    """What an mpi instance runs: instance 0 appends the rank's program (e.g. [shell, "-c", command]) to mpirun;
    the others run their launcher alone (`[]`: nothing to run)."""
    if instance.launcher is None:
        raise ValueError(f"instance {instance.index} has no launcher: start its processes one by one")
    return [*instance.launcher, *program] if instance.index == 0 else list(instance.launcher)


def _count(holder: Mapping[str, Any], key: str, label: str, default: int, minimum: int) -> int:
    value = holder.get(key)
    if value is None:
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value.strip())  # `--set` and quoted YAML give text
    if number is None:
        raise DistributionError(f"`{label}` is `{value}`, not a whole number: write a number such as 2.")
    if number < minimum:
        raise DistributionError(f"`{label}` is {number}; it must be at least {minimum}.")
    return number


def _instance_count(data: Mapping[str, Any]) -> int:
    resources = data.get("resources")
    if isinstance(resources, Mapping) and resources.get("instance_count") is not None:
        return _count(resources, "instance_count", "resources.instance_count", 1, 1)
    compute = data.get("compute")
    if isinstance(compute, Mapping):  # 2021: compute: {target, instance_count}
        return _count(compute, "instance_count", "compute.instance_count", 1, 1)
    return 1


def _per_instance(dist: Mapping[str, Any], instances: int) -> int:
    if dist.get("process_count_per_instance") is not None or dist.get("process_count") is None:
        return _count(dist, "process_count_per_instance", "distribution.process_count_per_instance", 1, 1)
    # 2021: process_count was the total over all instances.
    total = _count(dist, "process_count", "distribution.process_count", 1, 1)
    if total % instances:
        raise DistributionError(
            f"`distribution.process_count: {total}` (the 2021 total) does not divide over {instances} instances: "
            f"make it a multiple of {instances}, or write `process_count_per_instance` (the GA key) instead.")
    return total // instances


def _hosts(hosts: Sequence[str] | None, count: int) -> list[str]:
    if hosts is None:
        return [LOCALHOST] * count
    if len(hosts) != count:
        raise DistributionError(f"{len(hosts)} host names given for {count} instances (resources.instance_count).")
    return [str(h) for h in hosts]


def layout_for(data: Mapping[str, Any], hosts: Sequence[str] | None = None, master_port: int = 29500, *,
               forward: Sequence[str] = (), rsh_agent: str = RSH_AGENT, as_root: bool | None = None) -> Layout:
    """The layout of a job (GA data, as `load_job` gives it). `hosts`: each instance's host name (default 127.0.0.1
    for all); `forward`: more variable names mpirun passes to remote ranks; `as_root`: whether ranks run as uid 0
    (default: whether this process does)."""
    count = _instance_count(data)
    names = _hosts(hosts, count)
    raw = data.get("distribution")
    if raw is None:
        return _none(names, master_port)
    if not isinstance(raw, Mapping):
        raise DistributionError(f"`distribution` must be a mapping with a `type` ({', '.join(KINDS)}), not `{raw}`.")
    kind = str(raw.get("type") or "").strip().lower()
    if kind == "pytorch":
        return _pytorch(names, _per_instance(raw, count), master_port)
    if kind == "tensorflow":
        workers = _count(raw, "worker_count", "distribution.worker_count", count, 1)
        servers = _count(raw, "parameter_server_count", "distribution.parameter_server_count", 0, 0)
        return _tensorflow(names, workers, servers, master_port)
    if kind == "mpi":
        env_names = [str(k) for k in (data.get("environment_variables") or {})]
        root = os.geteuid() == 0 if as_root is None else as_root
        return _mpi(names, _per_instance(raw, count), master_port, [*env_names, *forward], rsh_agent, root)
    shown = raw.get("type")
    raise DistributionError(
        f"`distribution.type: {shown}` is not one mljob can run: use {', '.join(KINDS)}, or remove `distribution`."
        if shown else f"`distribution` has no `type`: add `type:` ({', '.join(KINDS)}).")


def _none(names: list[str], port: int) -> Layout:
    instances = [Instance(i, host, [Proc(i, 0, i, {})]) for i, host in enumerate(names)]
    return Layout("none", instances, names[0], port)


def _pytorch(names: list[str], per: int, port: int) -> Layout:
    world = len(names) * per
    instances = []
    for node, host in enumerate(names):
        procs = []
        for local in range(per):
            rank = node * per + local
            env = {"MASTER_ADDR": names[0], "MASTER_PORT": str(port), "WORLD_SIZE": str(world), "RANK": str(rank),
                   "LOCAL_RANK": str(local), "NODE_RANK": str(node), "LOCAL_WORLD_SIZE": str(per)}
            procs.append(Proc(rank, local, node, env))
        instances.append(Instance(node, host, procs))
    return Layout("pytorch", instances, names[0], port)


def _tensorflow(names: list[str], workers: int, servers: int, port: int) -> Layout:
    tasks = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(servers)]
    placed: list[tuple[int, str]] = []  # per task: its instance and address
    used: dict[str, int] = {}  # tasks already on each host name: ports are distinct per name
    for t in range(len(tasks)):
        node = t % len(names)
        host = names[node]
        placed.append((node, f"{host}:{port + used.get(host, 0)}"))
        used[host] = used.get(host, 0) + 1
    cluster: dict[str, list[str]] = {"worker": [placed[t][1] for t in range(workers)]}
    if servers:
        cluster["ps"] = [placed[workers + i][1] for i in range(servers)]
    by_node: dict[int, list[Proc]] = {n: [] for n in range(len(names))}
    for t, (kind, index) in enumerate(tasks):
        node = placed[t][0]
        config = {"cluster": cluster, "task": {"type": kind, "index": index}}
        by_node[node].append(Proc(t, len(by_node[node]), node, {"TF_CONFIG": json.dumps(config)}))
    instances = [Instance(n, host, by_node[n]) for n, host in enumerate(names)]
    return Layout("tensorflow", instances, names[0], port)


def _mpi(names: list[str], per: int, port: int, forward: Sequence[str], agent: str, root: bool) -> Layout:
    env = {"AZ_BATCH_MASTER_NODE": f"{names[0]}:{port}", "AZ_BATCHAI_MPI_MASTER_NODE": names[0]}
    slots: dict[str, int] = {}  # per host name, in instance order: instances sharing a machine pool their slots
    for host in names:
        slots[host] = slots.get(host, 0) + per
    remote = len(slots) > 1
    hosts = ",".join(f"{host}:{n}" for host, n in slots.items())
    argv = ["mpirun", "-np", str(len(names) * per), "--host", hosts, "--map-by", "slot", "--bind-to", "none",
            "--mca", "btl_vader_single_copy_mechanism", "none"]
    if root:
        argv.append("--allow-run-as-root")
    if remote:
        # leave_session_attached: orted would otherwise daemonize away from the agent's connection, and a dead agent
        # could not take its ranks down with it.
        argv += ["--mca", "plm_rsh_agent", agent, "--mca", "plm_rsh_no_tree_spawn", "1",
                 "--mca", "orte_leave_session_attached", "1"]
    for name, value in env.items():
        argv += ["-x", f"{name}={value}"]
    for name in dict.fromkeys(forward):
        if name not in env:
            argv += ["-x", name]
    serve = [agent, "--serve", str(RSH_PORT)] if remote else []
    instances = []
    for node, host in enumerate(names):
        procs = [Proc(node * per + local, local, node, dict(env)) for local in range(per)]
        # One server per machine: a later instance on a machine already listed has its ranks started there anyway.
        launcher = argv if node == 0 else [] if host in names[:node] else serve
        instances.append(Instance(node, host, procs, launcher))
    return Layout("mpi", instances, names[0], port)


def describe(layout: Layout) -> str:
    """What `mljob run --dry-run` shows: every instance, its processes and the variables each one gets."""
    count = len(layout.instances)
    world = layout.world_size()
    head = {
        "none": "no distribution: one process" if count == 1 else
                f"no distribution: the command runs once on each of {count} instances",
        "pytorch": f"pytorch: {count} × {world // count} processes = world size {world}, "
                   f"master {layout.master_addr}:{layout.master_port}",
        "tensorflow": f"tensorflow: {world} task{'s' if world != 1 else ''} over {count} "
                      f"instance{'s' if count != 1 else ''}",
        "mpi": f"mpi: {count} × {world // count} slots = {world} ranks, started by mpirun on instance 0",
    }[layout.kind]
    lines = [head]
    if layout.kind == "tensorflow":
        # The cluster is the same in every TF_CONFIG: shown once, then only each task's own part.
        cluster = json.loads(layout.instances[0].procs[0].env["TF_CONFIG"])["cluster"]  # task 0 is on instance 0
        lines.append("cluster (in every TF_CONFIG):")
        lines += [f"  {line}" for line in json.dumps(cluster, indent=2).splitlines()]
    if layout.kind == "mpi":
        lines.append("mpirun sets OMPI_COMM_WORLD_RANK, _SIZE, _LOCAL_RANK and _LOCAL_SIZE in every rank")
    for instance in layout.instances:
        lines.append(f"instance {instance.index}  host {instance.host}")
        if instance.index == 0 and instance.launcher:
            lines.append(f"  runs: {shlex.join(instance.launcher)} + the command")
        elif instance.launcher:
            lines.append(f"  runs: {shlex.join(instance.launcher)} (serves mpirun's launches from instance 0)")
        elif instance.launcher is not None:
            lines.append("  runs: nothing itself (same machine as instance 0, whose mpirun starts these ranks)")
        if not instance.procs:
            lines.append("  (no task: runs nothing)")
        for proc in instance.procs:
            lines.append(f"  {_proc_title(layout, proc)}  log {log_name(proc.rank)}")
            lines += [f"      {line}" for line in _env_lines(proc.env)]
    return "\n".join(lines)


def _proc_title(layout: Layout, proc: Proc) -> str:
    if layout.kind == "tensorflow":
        task = json.loads(proc.env["TF_CONFIG"])["task"]
        return f"task {task['type']} {task['index']} (process {proc.rank}, local {proc.local_rank})"
    return f"rank {proc.rank}  local rank {proc.local_rank}  node rank {proc.instance}"


def _env_lines(env: Mapping[str, str]) -> list[str]:
    lines = []
    for name, value in env.items():
        if name == "TF_CONFIG":
            task = json.dumps(json.loads(value)["task"])
            lines.append(f'{name}={{"cluster": <the cluster above>, "task": {task}}}')
        else:
            lines.append(f"{name}={value}")
    return lines
