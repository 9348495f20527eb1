"""The `local` compute: the command runs in a Docker container through the engine's API.

The container starts with an init process (so a stop takes a fraction of a second, not the 5 s grace Python as PID 1
would cost), as the invoking user's uid:gid (files in the run folder stay the user's), labelled with the run's name
and mljob home (so a later call can find it after a crash), and is always removed. The run's own calls go through
runner/engine_api (milliseconds); the `docker` SDK is loaded only to build or pull an image. Inside it:

    /mnt/mljob/wd                 the code snapshot, the working directory (./outputs, ./logs)
    /mnt/mljob/inputs/NAME[/FILE] data inputs (read-only for ro_mount; a private copy for download)
    /mnt/mljob/outputs/NAME       named outputs (writable)

The job reaches the run history over HTTP (MLFLOW_TRACKING_URI: mljob's tracking server on the bridge's gateway); a
store the user named with a local MLFLOW_TRACKING_URI is mounted at the same absolute path instead.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mljob.runner import engine_api, problems, registry
from mljob.runner.backends.base import Backend, Launch

ROOT = "/mnt/mljob"
RUN_LABEL = "mljob.run"
HOME_LABEL = "mljob.home"
_GRACE = 5  # seconds between SIGTERM and SIGKILL
# The job's command, run by bash when the image has it (Azure ML's shell), else by sh.
_SHELL = ["/bin/sh", "-c", 'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; fi; exec sh -c "$1"', "sh"]


def engine() -> Any:
    """The SDK's client (builds, pulls), or a RunError that says how to get an engine."""
    from mljob.runner import images

    try:
        return images.engine()
    except images.EngineError as err:
        raise problems.plain(None, problems.ENGINE, str(err)) from None


def _api() -> engine_api.Engine:
    try:
        api = engine_api.Engine()
        api.ping()
    except engine_api.EngineDown as err:
        raise problems.plain(None, problems.ENGINE, f"{err}; start it with `sudo dockerd` (or ./scripts/setup-docker) "
                             "or use `--set compute=process`") from None
    return api


def labels_for(name: str) -> dict[str, str]:
    return {RUN_LABEL: name, HOME_LABEL: str(registry.home().resolve())}


class DockerBackend(Backend):
    kind = "local"

    def __init__(self) -> None:
        self.api: engine_api.Engine | None = None
        self._container: str | None = None
        self._exit: dict[str, Any] = {}
        self._waiter: threading.Thread | None = None
        self._output: Iterator[bytes] | None = None

    def check(self) -> None:
        """Fail before anything is recorded when no engine answers."""
        if self.api is None:
            self.api = _api()

    def prepare(self, environment: Any, job_folder: Path, progress: Callable[[str], None]) -> str | None:
        from mljob.runner import images

        self.check()
        assert self.api is not None
        try:
            found = images.resolve_present(self.api.image_exists, environment, progress=progress)
            if found is not None:
                return found
            return images.resolve_image(engine(), environment, job_folder, progress=progress)
        except images.ImageError as err:
            raise problems.plain(None, problems.ENVIRONMENT, str(err)) from None

    def workdir_path(self, host: Path) -> str:
        return f"{ROOT}/wd"

    def input_path(self, name: str, host: Path) -> str:
        return f"{ROOT}/inputs/{name}/{host.name}" if host.is_file() else f"{ROOT}/inputs/{name}"

    def output_path(self, name: str, host: Path) -> str:
        return f"{ROOT}/outputs/{name}"

    def config(self, launch: Launch) -> dict[str, Any]:
        env = {"HOME": "/tmp", **launch.env}  # an image rarely knows the invoking uid: give it a writable home
        mounts = [{"Type": "bind", "Source": str(launch.workdir), "Target": self.workdir_path(launch.workdir)}]
        mounts += [{"Type": "bind", "Source": str(m.host), "Target": m.target, "ReadOnly": m.read_only}
                   for m in launch.mounts]
        host_config: dict[str, Any] = {"Init": True, "Mounts": mounts}
        if launch.shm_size:
            host_config["ShmSize"] = engine_api.parse_bytes(launch.shm_size)
        return {
            "Image": launch.image, "Cmd": [*_SHELL, launch.command], "User": f"{os.getuid()}:{os.getgid()}",
            "Labels": {**labels_for(launch.name), **launch.labels}, "Env": [f"{k}={v}" for k, v in env.items()],
            "WorkingDir": self.workdir_path(launch.workdir), "Tty": False, "OpenStdin": False,
            "AttachStdout": False, "AttachStderr": False, "HostConfig": host_config,
        }

    def start(self, launch: Launch) -> dict[str, str]:
        self.check()
        assert self.api is not None
        try:
            self._container = self.api.create(self.config(launch))
            self._output = self.api.attach(self._container)
            self.api.start(self._container)
        except (engine_api.APIError, engine_api.EngineDown, ValueError) as err:
            # A container that was created but not started is removed here.
            if self._output is not None:
                self._output.close()  # type: ignore[attr-defined]
                self._output = None
            self.reap({"name": launch.name})
            self._container = None
            raise problems.plain(None, problems.ENGINE, f"the Docker engine did not start the container: {err}") \
                from None
        self._waiter = threading.Thread(target=self._wait_forever, name="docker-wait", daemon=True)
        self._waiter.start()
        return {"container": self._container}

    def _wait_forever(self) -> None:
        assert self.api is not None and self._container is not None
        try:
            self._exit["StatusCode"] = self.api.wait(self._container)
        except Exception as err:  # noqa: BLE001 (the engine went away: reported as the run's failure)
            self._exit.update(StatusCode=-1, Error=str(err))

    def output(self) -> Iterator[bytes]:
        assert self._output is not None
        yield from self._output

    def wait(self, timeout: float) -> int | None:
        assert self._waiter is not None
        self._waiter.join(timeout)
        if self._waiter.is_alive():
            return None
        return int(self._exit.get("StatusCode", -1))

    def stop(self) -> None:
        if self._container is None or self.api is None:
            return
        with contextlib.suppress(engine_api.APIError, engine_api.EngineDown):  # already gone, or ending
            self.api.stop(self._container, _GRACE)

    def remove(self) -> None:
        if self._container is None or self.api is None:
            return
        try:
            self.api.remove(self._container)
        except engine_api.APIError as err:
            if err.status != 404 and "already in progress" not in err.message:
                raise
        self._container = None

    @staticmethod
    def reap(facts: dict[str, str]) -> str:
        api = _api()
        removed = 0
        wanted = [f"{key}={value}" for key, value in labels_for(facts["name"]).items()]
        for container in api.containers(wanted):
            try:
                api.remove(container["Id"])
                removed += 1
            except engine_api.APIError as err:
                if err.status != 404:
                    raise
        return f"{removed} container{'s' if removed != 1 else ''} removed"
