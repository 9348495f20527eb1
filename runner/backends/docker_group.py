"""A distributed job on the `local` compute: one container per instance on a private network of the run's own.

Each container is named by its instance's host (`node-0`, `node-1`, … as hostname and network alias, so MASTER_ADDR,
TF_CONFIG addresses and mpirun's --host resolve), has the same mounts at the same paths as a single-container run,
plus user_logs/ (every rank writes std_log_process_RANK.txt there; rank 0's is the run's stream) and, for mpi, the
launch agent `mljob-rsh` (runner/rsh_agent.py). Its main process is a small bash script that starts the instance's
units and stops them all when one fails. When a main unit fails anywhere, every container is stopped; when the main
units are done (for mpi: mpirun on instance 0), the rest (mpi's launch servers) are stopped. The network and every
container are removed on every path out, and after a crash by the run's label.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mljob.runner import engine_api, problems
from mljob.runner.backends.base import Launch
from mljob.runner.backends.docker import ROOT, DockerBackend, _api, labels_for
from mljob.runner.backends.process_group import tail
from mljob.runner.backends.units import Unit, layout_of, units
from mljob.runner.distribute import RSH_PORT, Layout

AGENT = f"{ROOT}/bin/mljob-rsh"
LOGS = f"{ROOT}/user_logs"
_GRACE = 5


def host_names(count: int) -> list[str]:
    return [f"node-{i}" for i in range(count)]


def container_layout(distribution: dict[str, Any] | None, instance_count: int, env: dict[str, str]) -> Layout:
    """The layout as the containers see it (hosts node-N, the agent where it is mounted); `--dry-run` shows it."""
    return layout_of(distribution, instance_count, env, host_names(instance_count), 29500, rsh_agent=AGENT,
                     as_root=os.getuid() == 0)


def instance_script(planned: list[Unit]) -> str:
    """sh: start the units in the background, each with its variables and log; the first failure stops the rest.
    (Not `wait -n`: bash may drop a job that ended early from its table and answer 127 for it.)"""
    lines = ['pids=""', "trap 'kill -TERM $pids 2>/dev/null; wait; exit 143' TERM INT"]
    for unit in planned:
        exports = "".join(f"export {k}={shlex.quote(v)}; " for k, v in unit.env.items())
        lines.append(f"( {exports}exec {shlex.join(unit.argv)} ) > {LOGS}/{unit.log} 2>&1 &")
        lines.append('pids="$pids $!"')
    lines += [
        'while [ -n "$pids" ]; do',
        '  left=""',
        "  for p in $pids; do",
        '    if kill -0 "$p" 2>/dev/null; then left="$left $p"; continue; fi',
        '    wait "$p"; c=$?',
        '    if [ "$c" -ne 0 ]; then kill -TERM $pids 2>/dev/null; wait; exit "$c"; fi',
        "  done",
        '  pids="$left"',
        '  if [ -n "$pids" ]; then sleep 0.2; fi',
        "done",
    ]
    return "\n".join(lines)


class DockerGroupBackend(DockerBackend):
    kind = "local"

    def __init__(self, distribution: dict[str, Any] | None, instance_count: int) -> None:
        super().__init__()
        self.distribution = distribution
        self.instance_count = instance_count
        self._containers: list[tuple[int, str, bool]] = []  # (instance, id, main)
        self._codes: dict[str, int] = {}
        self._network: str | None = None
        self._finished = threading.Event()
        self._stream: Path | None = None

    def start(self, launch: Launch) -> dict[str, str]:
        self.check()
        assert self.api is not None
        hosts = host_names(self.instance_count)
        layout = container_layout(self.distribution, self.instance_count, dict(launch.env))
        planned = units(layout, ["bash", "-c"], launch.command)
        folder = launch.workdir.parent / "user_logs"
        folder.mkdir(parents=True, exist_ok=True)
        self._stream = folder / planned[0].log
        labels = labels_for(launch.name)
        token = secrets.token_hex(16)  # mpi: only this run's agents may start commands in its containers
        try:
            self._network = self.api.create_network(f"mljob-{launch.name}", labels)
            for index in reversed(range(self.instance_count)):  # instance 0 last: its peers are already there
                mine = [u for u in planned if u.instance == index]
                if not mine:
                    continue
                config = self.config(launch)
                config["Cmd"] = ["/bin/sh", "-c", instance_script(mine)]
                config["Hostname"] = hosts[index]
                config["Labels"] = {**config["Labels"], "mljob.instance": str(index)}
                env = [*config["Env"], f"MLJOB_RSH_TOKEN={token}", f"MLJOB_RSH_PORT={RSH_PORT}", "SHELL=/bin/sh"]
                config["Env"] = env
                mounts = config["HostConfig"]["Mounts"]
                mounts.append({"Type": "bind", "Source": str(folder), "Target": LOGS})
                if layout.kind == "mpi":
                    mounts.append({"Type": "bind", "Source": str(_agent_file()), "Target": AGENT, "ReadOnly": True})
                config["HostConfig"]["NetworkMode"] = f"mljob-{launch.name}"
                config["NetworkingConfig"] = {"EndpointsConfig": {f"mljob-{launch.name}": {"Aliases": [hosts[index]]}}}
                container = self.api.create(config)
                self._containers.append((index, container, any(u.main for u in mine)))
                self.api.start(container)
                threading.Thread(target=self._wait_one, args=(container,), daemon=True,
                                 name=f"docker-wait-{index}").start()
        except (engine_api.APIError, engine_api.EngineDown, ValueError) as err:
            self.remove()
            raise problems.plain(None, problems.ENGINE, f"the Docker engine did not start the instances: {err}") \
                from None
        return {"containers": ",".join(c for _, c, _ in self._containers), "network": self._network or ""}

    def _wait_one(self, container: str) -> None:
        assert self.api is not None
        try:
            self._codes[container] = self.api.wait(container)
        except Exception:  # noqa: BLE001 (the engine went away: the run fails)
            self._codes[container] = -1

    def output(self) -> Iterator[bytes]:
        assert self._stream is not None
        yield from tail(self._stream, self._finished)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while True:
            mains = [(c, self._codes.get(c)) for _, c, main in self._containers if main]
            failed = next((code for _, code in mains if code not in (None, 0)), None)
            if failed is not None or all(code is not None for _, code in mains):
                self.stop()
                self._finished.set()
                return failed if failed is not None else 0
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def stop(self) -> None:
        if self.api is None:
            return
        threads = [threading.Thread(target=self._stop_one, args=(c,), daemon=True)
                   for _, c, _ in self._containers if c not in self._codes]
        for thread in threads:  # in parallel: each may take the grace period
            thread.start()
        for thread in threads:
            thread.join(_GRACE + 30)

    def _stop_one(self, container: str) -> None:
        assert self.api is not None
        with contextlib.suppress(engine_api.APIError, engine_api.EngineDown):  # already gone, or ending
            self.api.stop(container, _GRACE)

    def remove(self) -> None:
        if self.api is None:
            return
        for _, container, _ in self._containers:
            try:
                self.api.remove(container)
            except engine_api.APIError as err:
                if err.status != 404 and "already in progress" not in err.message:
                    raise
        self._containers = []
        if self._network is not None:
            try:
                self.api.remove_network(self._network)
            except engine_api.APIError as err:
                if err.status != 404:
                    raise
            self._network = None
        self._finished.set()

    @staticmethod
    def reap(facts: dict[str, str]) -> str:
        done = DockerBackend.reap(facts)
        api = _api()
        wanted = [f"{key}={value}" for key, value in labels_for(facts["name"]).items()]
        for network in api.networks(wanted):
            # APIError: in use by a container the engine is still removing; the next call removes it.
            with contextlib.suppress(engine_api.APIError):
                api.remove_network(network["Id"])
        return done


def _agent_file() -> Path:
    from mljob.runner import rsh_agent

    return Path(rsh_agent.__file__)
