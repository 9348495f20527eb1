"""A distributed job on the `ray` compute: ONE Ray job whose entrypoint is a driver that runs every rank.

    compute settings   as for RayBackend (ray.py), except that num_cpus, num_gpus and memory are what EACH instance
                       reserves (its placement-group bundle; default 1 CPU), and the driver reserves nothing
                       placement=SPREAD   Ray's placement strategy: SPREAD, PACK, STRICT_SPREAD or STRICT_PACK
                       placement_timeout=120  seconds to wait for the cluster to hold every bundle

The host side is RayBackend's: the same zip (code, inputs, markers), the same submission, output(), wait(), stop(),
remove() and reap(), on the one Ray job. What differs is what the zip runs: `.mljob/run.sh` execs `python
.mljob/driver.py`, built below from this module's own functions (stdlib and Ray only: the cluster need not have
mljob), with the run laid out in `.mljob/group.json`:

* The layout (runner/distribute.py) is made here with placeholder hosts and ports, `@hostI@` and `@portI.K@` (the
  K-th port of instance I), since neither is known before the cluster places the instances.
* The driver reserves a placement group of one bundle per instance, starts one actor in each bundle, asks every
  actor for its node's IP and for as many free ports on that node as its instance needs (not one already given on
  the same node), fills the placeholders in (MASTER_ADDR is instance 0's node, MASTER_PORT a port free there,
  TF_CONFIG's addresses likewise) and has each actor start its instance's processes.
* Each process is `bash -c COMMAND` in the unpacked working_dir of its node, with the job's variables, its own
  (the layout's), RAY_ADDRESS, and what Ray gives an actor of the bundle (CUDA_VISIBLE_DEVICES for its GPUs,
  OMP_NUM_THREADS = its CPUs), under a keeper (the driver file run as `driver.py keep`): the keeper leads the
  rank's own process group, and its stdin is a pipe from the actor, so when the actor dies in any way (the driver
  ended or was killed, and Ray ended the actors it owned) a watchdog the keeper forked sees EOF and ends the whole
  group (a grandchild of the actor: the raylet SIGKILLs a dead worker's own children, the keeper among them).
* Rank R writes user_logs/std_log_process_R.txt: straight into the run's folder here when `shared_dir` covers it
  (the loopback case), else beside the code on its node. The driver echoes the stream rank's log (rank 0's), read
  through its actor, so the Ray job's log is rank 0's output and output() works unchanged; the others are in
  their files only.
* The first rank to fail stops the others (SIGTERM to each group, SIGKILL after a grace), and the driver exits with
  that rank's code. Ray's stop_job sends the driver SIGTERM: it stops every rank the same way, brings the results
  back and exits 143; if that takes longer than Ray waits (3 s), Ray's SIGKILL ends the driver, Ray ends its
  actors, and the keepers end the ranks.
* At the end each actor copies ./outputs, ./logs and the named outputs to the run's folders (when shared, one actor
  after another: instances on one node share the unpacked folder), and ./logs every few seconds while it runs.

mpi is refused: mpirun on instance 0 would need a launch agent on every other node (runner/rsh_agent.py), which
is not wired to Ray actors yet.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

from mljob.runner import problems
from mljob.runner.backends.base import Launch
from mljob.runner.backends.ray import OUTPUTS, RayBackend
from mljob.runner.backends.units import layout_of, units

DRIVER = ".mljob/driver.py"
SPEC = ".mljob/group.json"
STRATEGIES = ("SPREAD", "PACK", "STRICT_SPREAD", "STRICT_PACK")
_PORT_BASE = 20000  # the layout's master port, made a placeholder: only a port's offset from it matters
_GRACE = 5.0  # seconds a rank gets between SIGTERM and SIGKILL when another rank failed
_STOP_GRACE = 2.0  # the same when Ray stops the job: Ray's own SIGKILL comes 3 s after its SIGTERM


class RayGroupBackend(RayBackend):
    kind = "ray"

    def __init__(self, address: str, settings: dict[str, Any] | None, distribution: dict[str, Any] | None,
                 instance_count: int) -> None:
        super().__init__(address, settings)
        kind = str((distribution or {}).get("type") or "").strip().lower()
        if kind == "mpi":
            raise problems.plain(None, problems.NOT_RUNNABLE, "`distribution.type: mpi` is not supported on the "
                                 "`ray` compute yet (mpirun would need a launch agent on every node); run it with "
                                 "`--set compute=local` (Docker) or `--set compute=process`, or use `type: pytorch`.")
        self.distribution = distribution
        self.instance_count = instance_count
        # Taken out of the settings RayBackend.start reads: here they size each instance, not the entrypoint.
        self.bundle: dict[str, float] = {"CPU": 1.0}
        for setting, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU"), ("memory", "memory")):
            value = self.settings.pop(setting, None)
            if value not in (None, ""):
                self.bundle[resource] = float(value) if resource != "memory" else int(value)  # memory: bytes
        self.strategy = str(self.settings.get("placement") or "SPREAD").upper()
        if self.strategy not in STRATEGIES:
            raise problems.plain(None, problems.NOT_RUNNABLE, f"the compute's `placement` is `{self.strategy}`; "
                                 f"use one of {', '.join(STRATEGIES)}.")
        self.placement_timeout = float(self.settings.get("placement_timeout") or 120)

    def _wrapper(self, launch: Launch) -> str:
        return ("# Written by mljob: the driver of a distributed run (see .mljob/group.json).\n"
                'cd "$(dirname "$0")/.." || exit 1\n'
                f"exec python {DRIVER}\n")

    def _package(self, launch: Launch, zip_path: Path) -> None:
        super()._package(launch, zip_path)
        with zipfile.ZipFile(zip_path, "a", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            archive.writestr(SPEC, json.dumps(self.spec(launch), indent=1) + "\n")
            archive.writestr(DRIVER, driver_source())

    def spec(self, launch: Launch) -> dict[str, Any]:
        """What the driver runs: the units with placeholder hosts and ports, where logs and results go."""
        hosts = [f"@host{i}@" for i in range(self.instance_count)]
        layout = layout_of(self.distribution, self.instance_count, dict(launch.env), hosts, _PORT_BASE)
        logs = launch.workdir.parent / "user_logs"
        outputs = [(m.target, m.host) for m in launch.mounts if m.target.startswith(OUTPUTS + "/")]
        back = [("outputs", launch.workdir / "outputs"), ("logs", launch.workdir / "logs"), *outputs]
        shared = all(self._shared(host) for _, host in back)
        planned = [{"instance": u.instance, "rank": u.ranks[0], "argv": u.argv,
                    "env": {k: _placeholders(k, v) for k, v in u.env.items()},
                    "log": str(logs / u.log) if self._shared(logs) else f"user_logs/{u.log}"}
                   for u in units(layout, ["bash", "-c"], launch.command)]
        return {"markers": list(self._markers()), "instances": self.instance_count, "bundle": self.bundle,
                "strategy": self.strategy, "placement_timeout": self.placement_timeout, "env": dict(launch.env),
                "units": planned, "copies": [[src, str(host)] for src, host in back] if shared else None,
                "grace": _GRACE, "stop_grace": _STOP_GRACE}


def _placeholders(name: str, value: str) -> str:
    """A layout variable with its ports made placeholders (its hosts already are)."""
    if name == "MASTER_PORT":
        return "@port0.0@"
    return re.sub(r"(@host(\d+)@):(\d+)", lambda m: f"{m[1]}:@port{m[2]}.{int(m[3]) - _PORT_BASE}@", value)


# --- the driver: shipped as .mljob/driver.py and run on the cluster; stdlib and Ray only ------------------------


def _keep(grace: float, argv: list[str]) -> int:
    """A rank's keeper: leads the rank's process group and exits with the rank's code. Its stdin is a pipe from the
    actor; a watchdog it forks reads it, and at EOF (the actor died, however) ends the group. A forked child, not
    the keeper itself: when an actor's worker exits, the raylet SIGKILLs that worker's own children."""
    # A handler, not SIG_IGN (which the rank would inherit): a SIGTERM to the group ends the rank, not the keeper.
    signal.signal(signal.SIGTERM, lambda *_: None)
    group = os.getpgid(0)
    watchdog = os.fork()
    if watchdog == 0:
        try:
            os.setpgid(0, 0)  # out of the rank's group, so that it can tell when the group is empty
            while os.read(0, 4096):
                pass
            os.killpg(group, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                os.killpg(group, 0)  # ProcessLookupError once all are gone
                time.sleep(0.05)
            os.killpg(group, signal.SIGKILL)
        finally:
            os._exit(0)
    code = subprocess.Popen(argv, stdin=subprocess.DEVNULL).wait()
    os.kill(watchdog, signal.SIGKILL)
    os.waitpid(watchdog, 0)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(0, signal.SIGTERM)  # what the rank left running in the background goes with it
    return code if code >= 0 else 128 - code


class _Instance:
    """An actor in one bundle: starts its instance's ranks on that node, reports on them, stops them, copies back."""

    def __init__(self) -> None:
        self.root = Path.cwd()  # the job's unpacked working_dir on this node
        self.ranks: list[tuple[int, subprocess.Popen[bytes]]] = []
        self.synced = time.monotonic()

    def ip(self) -> str:
        import ray.util

        return str(ray.util.get_node_ip_address())

    def free_ports(self, count: int, taken: list[int]) -> list[int]:
        found: list[int] = []
        held: list[socket.socket] = []  # all bound at once: the OS gives each a different one
        try:
            while len(found) < count:
                probe = socket.socket()
                held.append(probe)
                probe.bind(("", 0))
                port = int(probe.getsockname()[1])
                if port not in taken:
                    found.append(port)
        finally:
            for probe in held:
                probe.close()
        return found

    def start(self, planned: list[dict[str, Any]], env: dict[str, str], grace: float) -> None:
        # Exact values: Ray expands `$VAR` in the runtime env's env_vars, which this environment has been given.
        base = {**os.environ, **env}
        for unit in planned:
            log = self.root / unit["log"]
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("ab") as handle:
                keeper = subprocess.Popen([sys.executable, str(self.root / ".mljob/driver.py"), "keep", str(grace),
                                           *unit["argv"]], cwd=self.root, env={**base, **unit["env"]},
                                          stdin=subprocess.PIPE, stdout=handle, stderr=subprocess.STDOUT,
                                          start_new_session=True)
            self.ranks.append((unit["rank"], keeper))

    def poll(self, log: str | None, offset: int, copies: list[list[str]] | None) -> tuple[dict[int, Any], bytes]:
        """Each rank's exit code (None while it runs), then what `log` has past `offset` (read after the codes: a
        code seen here means all of that rank's output is in)."""
        codes = {rank: keeper.poll() for rank, keeper in self.ranks}
        data = b""
        if log is not None:
            with contextlib.suppress(FileNotFoundError), (self.root / log).open("rb") as handle:
                handle.seek(offset)
                data = handle.read(1 << 20)
        if copies and time.monotonic() - self.synced > 5:
            self.synced = time.monotonic()
            self.collect([pair for pair in copies if pair[0] == "logs"])
        return codes, data

    def stop(self, grace: float) -> None:
        alive = [keeper for _, keeper in self.ranks if keeper.poll() is None]
        for keeper in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(keeper.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for keeper in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                keeper.wait(max(0.0, deadline - time.monotonic()))
        for _, keeper in self.ranks:  # stragglers, and a rank's background children that ignored SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.killpg(keeper.pid, signal.SIGKILL)
            keeper.wait()

    def collect(self, copies: list[list[str]]) -> bool:
        done = True
        for source, host in copies:
            try:
                if (self.root / source).is_dir():
                    shutil.copytree(self.root / source, host, symlinks=True, dirs_exist_ok=True)
            except OSError:
                done = False
        return done

    def clean(self, folders: list[str]) -> None:
        for folder in folders:
            shutil.rmtree(self.root / folder, ignore_errors=True)


class _Stopped(Exception):
    """Ray asked the job to stop (SIGTERM)."""


def _drive() -> int:
    import ray

    spec = json.loads(Path(".mljob/group.json").read_text())
    ray.init(log_to_driver=False, logging_level="WARNING")  # the job's log is rank 0's output, nothing more
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # after ray.init, which installs a handler of its own
    out = sys.stdout.buffer
    begin, end = spec["markers"]
    out.write(f"{begin}\n".encode())
    out.flush()
    try:
        return _run(ray, spec, stop, out)
    finally:
        out.write(f"{end}\n".encode())
        out.flush()


def _say(out: Any, text: str) -> None:
    out.write(f"mljob: {text}\n".encode())
    out.flush()


def _ready(ray: Any, refs: list[Any], stop: threading.Event | None, timeout: float = 300) -> list[Any]:
    """ray.get, in short waits so that a stop (SIGTERM) is acted on while it waits."""
    deadline = time.monotonic() + timeout
    while len(ray.wait(refs, num_returns=len(refs), timeout=0.2)[0]) < len(refs):
        if stop is not None and stop.is_set():
            raise _Stopped()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer from the instances within {timeout:g} s")
    return list(ray.get(refs))


def _run(ray: Any, spec: dict[str, Any], stop: threading.Event, out: Any) -> int:
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    count, bundle = spec["instances"], spec["bundle"]
    group = placement_group([dict(bundle) for _ in range(count)], strategy=spec["strategy"])
    try:
        _ready(ray, [group.ready()], stop, spec["placement_timeout"])
    except TimeoutError:
        _say(out, f"the Ray cluster did not hold {count} bundles of {bundle} ({spec['strategy']}) within "
                  f"{spec['placement_timeout']:g} s: lower the compute's num_cpus/num_gpus/memory, add nodes, or "
                  "change its `placement`")
        return 1
    except _Stopped:
        return 143
    options: dict[str, Any] = {"num_cpus": bundle.get("CPU", 0), "num_gpus": bundle.get("GPU", 0)}
    if bundle.get("memory"):
        options["memory"] = int(bundle["memory"])
    actor = ray.remote(_Instance)
    actors = [actor.options(**options, scheduling_strategy=PlacementGroupSchedulingStrategy(
        group, placement_group_bundle_index=i)).remote() for i in range(count)]
    try:
        return _supervise(ray, spec, actors, stop, out)
    except _Stopped:
        _finish(ray, spec, actors, spec["stop_grace"], out)
        return 143
    except (ray.exceptions.RayError, TimeoutError) as err:  # an actor died with its node, or never started
        _say(out, f"an instance was lost: {err}")
        with contextlib.suppress(Exception):
            _ready(ray, [a.stop.remote(spec["grace"]) for a in actors], None, 60)
        return 1


def _supervise(ray: Any, spec: dict[str, Any], actors: list[Any], stop: threading.Event, out: Any) -> int:
    ips = _ready(ray, [a.ip.remote() for a in actors], stop)
    wanted: dict[int, int] = {}
    for unit in spec["units"]:
        for value in unit["env"].values():
            for found in re.finditer(r"@port(\d+)\.(\d+)@", value):
                index = int(found[1])
                wanted[index] = max(wanted.get(index, 0), int(found[2]) + 1)
    ports: dict[int, list[int]] = {}
    taken: dict[str, list[int]] = {}  # per node: instances that share a node must not share a port
    for index, number in sorted(wanted.items()):
        ports[index] = _ready(ray, [actors[index].free_ports.remote(number, taken.get(ips[index], []))], stop)[0]
        taken.setdefault(ips[index], []).extend(ports[index])

    def fill(value: str) -> str:
        value = re.sub(r"@port(\d+)\.(\d+)@", lambda m: str(ports[int(m[1])][int(m[2])]), value)
        return re.sub(r"@host(\d+)@", lambda m: ips[int(m[1])], value)

    planned = [{**unit, "env": {k: fill(v) for k, v in unit["env"].items()}} for unit in spec["units"]]
    # The cluster's address, as a single job's command has it: a rank may use Ray itself (actors see none).
    env = {**{k: v for k, v in os.environ.items() if k == "RAY_ADDRESS"}, **spec["env"]}
    _ready(ray, [a.start.remote([u for u in planned if u["instance"] == i], env, spec["grace"])
                 for i, a in enumerate(actors)], stop)
    if spec["copies"] is None:
        _say(out, "this cluster shares no folder with the machine that submitted the job (see the compute's "
                  "shared_dir): outputs and the other ranks' logs stay on the Ray nodes, in the job's working_dir")
    stream = planned[0]  # rank 0: its log is the job's output
    offset, code = 0, None
    while code is None:
        if stop.is_set():
            raise _Stopped()
        polled = _ready(ray, [a.poll.remote(stream["log"] if i == stream["instance"] else None, offset,
                                            spec["copies"]) for i, a in enumerate(actors)], stop)
        data = polled[stream["instance"]][1]
        out.write(data)
        out.flush()
        offset += len(data)
        codes = {rank: c for answer in polled for rank, c in answer[0].items()}
        failed = next(((rank, c) for rank, c in sorted(codes.items()) if c not in (None, 0)), None)
        if failed is not None:
            code = failed[1] if failed[1] > 0 else 128 - failed[1]  # a keeper ended by a signal
            _say(out, f"rank {failed[0]} exited with code {code}: stopping the other ranks")
        elif all(c is not None for c in codes.values()):
            code = 0
        elif not data:
            time.sleep(0.1)
    _finish(ray, spec, actors, spec["grace"], out)
    while data := _ready(ray, [actors[stream["instance"]].poll.remote(stream["log"], offset, None)], None)[0][1]:
        out.write(data)  # the last of rank 0's output (and, after a failure, its end)
        offset += len(data)
    out.flush()
    return code


def _finish(ray: Any, spec: dict[str, Any], actors: list[Any], grace: float, out: Any) -> None:
    """Stop what still runs, then bring the results back: one actor at a time (instances on one node share the
    unpacked folder), and delete the node copies once all arrived."""
    _ready(ray, [a.stop.remote(grace) for a in actors], None, grace + 60)
    copies = spec["copies"]
    if not copies:
        return
    done = all(_ready(ray, [a.collect.remote(copies)], None, 600)[0] for a in actors)
    if done:
        folders = ["outputs", ".mljob/outputs", ".mljob/inputs"]
        _ready(ray, [a.clean.remote(folders) for a in actors], None, 60)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
    else:
        _say(out, "some results could not be copied back; they stay in the job's working_dir on the Ray nodes")


def _main(argv: list[str]) -> int:
    if argv[:1] == ["keep"]:
        return _keep(float(argv[1]), argv[2:])
    return _drive()


_SHIPPED = (_keep, _Instance, _Stopped, _drive, _say, _ready, _run, _supervise, _finish, _main)
_HEADER = '''\
"""Written by mljob (runner/backends/ray_group.py): the driver of a distributed run, and each rank's keeper."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

'''


def driver_source() -> str:
    """The driver file: this section's functions, as written above, with the imports they use."""
    body = "\n\n".join(inspect.getsource(part) for part in _SHIPPED)
    return f'{_HEADER}\n{body}\n\nif __name__ == "__main__":\n    sys.exit(_main(sys.argv[1:]))\n'
