"""The `local` compute: the command runs in a Docker container through the engine's API (the `docker` SDK).

The container starts with an init process (so a stop takes a fraction of a second, not the 5 s grace Python as PID 1
would cost), as the invoking user's uid:gid (files in the run folder stay the user's), labelled with the run's name
and mljob home (so a later call can find it after a crash), and is always removed. Inside it:

    /mnt/mljob/wd                 the code snapshot, the working directory (./outputs, ./logs)
    /mnt/mljob/inputs/NAME[/FILE] data inputs (read-only for ro_mount; a private copy for download)
    /mnt/mljob/outputs/NAME       named outputs (writable)
    the MLflow store              at the same absolute path as on the host, so MLFLOW_TRACKING_URI works unchanged
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mljob.runner import problems, registry
from mljob.runner.backends.base import Backend, Launch

ROOT = "/mnt/mljob"
RUN_LABEL = "mljob.run"
HOME_LABEL = "mljob.home"
_GRACE = 5  # seconds between SIGTERM and SIGKILL
# The job's command, run by bash when the image has it (Azure ML's shell), else by sh.
_SHELL = ["/bin/sh", "-c", 'if command -v bash >/dev/null 2>&1; then exec bash -c "$1"; fi; exec sh -c "$1"', "sh"]


def engine() -> Any:
    """The engine's client, or a RunError that says how to get one."""
    from mljob.runner import images

    try:
        return images.engine()
    except images.EngineError as err:
        raise problems.plain(None, problems.ENGINE, str(err)) from None


def labels_for(name: str) -> dict[str, str]:
    return {RUN_LABEL: name, HOME_LABEL: str(registry.home().resolve())}


class DockerBackend(Backend):
    kind = "local"

    def __init__(self) -> None:
        self.client: Any = None
        self._container: Any = None
        self._exit: dict[str, Any] = {}
        self._waiter: threading.Thread | None = None

    def check(self) -> None:
        """Fail before anything is recorded when no engine answers."""
        if self.client is None:
            self.client = engine()

    def prepare(self, environment: Any, job_folder: Path, progress: Callable[[str], None]) -> str | None:
        from mljob.runner import images

        self.check()
        try:
            return images.resolve_image(self.client, environment, job_folder, progress=progress)
        except images.ImageError as err:
            raise problems.plain(None, problems.ENVIRONMENT, str(err)) from None

    def workdir_path(self, host: Path) -> str:
        return f"{ROOT}/wd"

    def input_path(self, name: str, host: Path) -> str:
        return f"{ROOT}/inputs/{name}/{host.name}" if host.is_file() else f"{ROOT}/inputs/{name}"

    def output_path(self, name: str, host: Path) -> str:
        return f"{ROOT}/outputs/{name}"

    def start(self, launch: Launch) -> dict[str, str]:
        from docker.types import Mount

        self.check()
        env = {"HOME": "/tmp", **launch.env}  # an image rarely knows the invoking uid: give it a writable home
        mounts = [Mount(target=self.workdir_path(launch.workdir), source=str(launch.workdir), type="bind")]
        mounts += [Mount(target=m.target, source=str(m.host), type="bind", read_only=m.read_only)
                   for m in launch.mounts]
        from docker.errors import DockerException

        try:
            self._container = self.client.containers.run(
                launch.image, [*_SHELL, launch.command], detach=True, init=True,
                user=f"{os.getuid()}:{os.getgid()}", labels={**labels_for(launch.name), **launch.labels},
                environment=env, working_dir=self.workdir_path(launch.workdir), mounts=mounts,
                shm_size=launch.shm_size, stdin_open=False, tty=False)
        except DockerException as err:
            # `run` creates, then starts: a container that was created but not started is removed here.
            with contextlib.suppress(DockerException):
                self.reap({"name": launch.name})
            reason = getattr(err, "explanation", None) or err
            raise problems.plain(None, problems.ENGINE, f"the Docker engine did not start the container: {reason}") \
                from None
        self._waiter = threading.Thread(target=self._wait_forever, name="docker-wait", daemon=True)
        self._waiter.start()
        return {"container": self._container.id}

    def _wait_forever(self) -> None:
        try:
            self._exit.update(self._container.wait())
        except Exception as err:  # noqa: BLE001 (the engine went away: reported as the run's failure)
            self._exit.update(StatusCode=-1, Error=str(err))

    def output(self) -> Iterator[bytes]:
        yield from self._container.logs(stream=True, follow=True, stdout=True, stderr=True)

    def wait(self, timeout: float) -> int | None:
        assert self._waiter is not None
        self._waiter.join(timeout)
        if self._waiter.is_alive():
            return None
        return int(self._exit.get("StatusCode", -1))

    def stop(self) -> None:
        if self._container is None:
            return
        from docker.errors import APIError, NotFound

        with contextlib.suppress(NotFound, APIError):
            self._container.stop(timeout=_GRACE)

    def remove(self) -> None:
        if self._container is None:
            return
        from docker.errors import APIError, NotFound

        try:
            self._container.remove(force=True)
        except NotFound:
            pass
        except APIError as err:
            if "already in progress" not in str(err):
                raise
        self._container = None

    @staticmethod
    def reap(facts: dict[str, str]) -> str:
        client = engine()
        removed = 0
        wanted = [f"{key}={value}" for key, value in labels_for(facts["name"]).items()]
        for container in client.containers.list(all=True, filters={"label": wanted}):
            container.remove(force=True)
            removed += 1
        return f"{removed} container{'s' if removed != 1 else ''} removed"
