"""mljob's tracking server, from the runner's side: where it is, starting it when needed, stopping it, and what a job
needs to log into its run through it.

Jobs never open the store's file: they speak MLflow's tracking protocol over HTTP to MLflow's own server, which is the
only program besides mljob that touches the store, at the version mljob installs. Any MLflow client from 2.x to the
newest 3.x can therefore log from any job, in a container or not, and a job's MLflow can never migrate (or refuse)
the user's store.

One server per store (`$MLJOB_HOME/mlflow/`). `ensure()` binds its socket here, then hands it to a process
(runner/tracking_serve.py) that sleeps until the first connection comes and only then starts MLflow (~10 s): a run
whose job logs nothing costs nothing more, and a job that logs at once just waits in the socket's backlog. The server
then stays, warm, until `mljob tracking stop`. It listens on the Docker bridge's gateway when there is one (reachable
from containers on any network of the engine, and from this machine), else on 127.0.0.1.

    $MLJOB_HOME/mlflow/server.json   where it listens and which process it is (pid and start time)
    $MLJOB_HOME/mlflow/server.key    the key that makes run tokens (only the user can read it)
    $MLJOB_HOME/mlflow/server.log    what it printed
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mljob.runner import procfs
from mljob.runner.history_base import default_store
from mljob.runner.tracking_gate import token

_SIOCGIFADDR = 0x8915


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    pid: int
    start: str  # the process's start time in clock ticks: with the pid, it names one process for good

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _folder() -> Path:
    return default_store()


def _state_file() -> Path:
    return _folder() / "server.json"


def interface_address(name: str) -> str | None:
    """The IPv4 address of a network interface of this machine (None when there is no such interface)."""
    if not Path(f"/sys/class/net/{name}").exists():
        return None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
        except OSError:
            return None
    return socket.inet_ntoa(answer[20:24])


def listen_host() -> str:
    """The Docker bridge's gateway (containers reach it on every network of the engine; 127.0.0.1 they cannot)."""
    return os.environ.get("MLJOB_TRACKING_HOST") or interface_address("docker0") or "127.0.0.1"


def key() -> bytes:
    path = _folder() / "server.key"
    with contextlib.suppress(FileNotFoundError):
        return bytes.fromhex(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def _alive(server: Server) -> bool:
    found = procfs.stat(server.pid)
    return found is not None and found.start == server.start and found.state not in ("Z", "X")


def running() -> Server | None:
    """The server of this store, when its process is still the one that was started (not a reused pid)."""
    try:
        data = json.loads(_state_file().read_text())
        server = Server(str(data["host"]), int(data["port"]), int(data["pid"]), str(data["start"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return server if _alive(server) else None


@contextlib.contextmanager
def _locked() -> object:
    _folder().mkdir(parents=True, exist_ok=True)
    with open(_folder() / "server.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield lock


def _previous_port() -> int:
    try:
        return int(json.loads(_state_file().read_text())["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _bind(host: str) -> socket.socket:
    # The same port as last time when it is free: a job still running from before a restart keeps its address.
    for port in dict.fromkeys((_previous_port(), 0)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    raise OSError(f"no port to listen on at {host}")


def ensure() -> Server:
    """The store's server, started (asleep until its first connection) when it is not running."""
    found = running()
    if found is not None:
        return found
    with _locked():
        found = running()
        if found is not None:
            return found
        key()
        host = listen_host()
        try:
            sock = _bind(host)
        except OSError as err:
            from mljob.runner import problems

            raise problems.plain(None, problems.ENGINE, f"mljob's tracking server cannot listen on {host} ({err}): "
                                 "set MLJOB_TRACKING_HOST to an address of this machine that your jobs reach, or "
                                 "MLFLOW_TRACKING_URI to a tracking server of your own") from None
        log = open(_folder() / "server.log", "ab")  # noqa: SIM115 - handed to the child
        try:
            # MLflow and its server must not see the caller's tracking settings as their own.
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
            proc = subprocess.Popen(
                [sys.executable, "-m", "mljob.runner.tracking_serve", "--fd", str(sock.fileno()),
                 "--store", str(_folder())],
                pass_fds=[sock.fileno()], stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                start_new_session=True, cwd=_folder())
        finally:
            log.close()
            port = sock.getsockname()[1]
            sock.close()
        stat = procfs.stat(proc.pid)
        server = Server(host, port, proc.pid, stat.start if stat else "")
        tmp = _state_file().with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": host, "port": port, "pid": proc.pid, "start": server.start}))
        tmp.replace(_state_file())
        return server


def wait_ready(server: Server, timeout: float = 120) -> bool:
    """Wake the server (its first connection starts MLflow) and wait until it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{server.url}/health", timeout=max(1.0, deadline - time.monotonic())) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            if not _alive(server):
                return False
            time.sleep(0.2)
    return False


def stop() -> Server | None:
    """Stop the store's server (by its pid and start time: never a process that merely reuses the pid)."""
    with _locked():
        server = running()
        if server is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(server):
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            _state_file().unlink()
        return server


def is_own_store(uri: str) -> bool:
    """Whether `uri` is mljob's own store (not one the user named with MLFLOW_TRACKING_URI)."""
    return uri == f"sqlite:///{default_store() / 'mlflow.db'}" and "MLFLOW_TRACKING_URI" not in os.environ


def job_environment(history_uri: str, run_id: str, experiment_id: str) -> dict[str, str]:
    """What a job's MLflow client needs to log into its own run."""
    env = {"MLFLOW_RUN_ID": run_id, "MLFLOW_EXPERIMENT_ID": experiment_id}
    if not is_own_store(history_uri):
        return {**env, "MLFLOW_TRACKING_URI": history_uri}
    server = ensure()
    return {**env, "MLFLOW_TRACKING_URI": server.url, "MLFLOW_TRACKING_TOKEN": token(key(), run_id, experiment_id)}
