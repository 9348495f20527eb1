"""The tracking server process: MLflow's own FastAPI app over mljob's store, behind a gate that lets only the user and
the user's jobs in, started by its first connection.

`python -m mljob.runner.tracking_serve --fd N --store DIR` is started by runner/tracking.py with the listening socket
already bound (so its address is known and connections queue in the kernel's backlog from the first moment). It
waits for the first connection before importing anything heavy: a run whose job never logs costs a sleeping process,
not MLflow's ~10 s start. Then it serves MLflow's own app (the REST API every MLflow client speaks, artifacts through
`mlflow-artifacts:`, the UI) on that socket with uvicorn, in this one process.

Who gets in (the gate, runner/tracking_gate.py): the user's own processes on this machine (checked by the uid of the
connecting socket, as the resident runner checks its callers), and a job holding its run's token.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import socket
import sys
import threading
import time
import warnings
from pathlib import Path


def _wait_for_first_connection(sock: socket.socket) -> None:
    select.select([sock], [], [])


def _configure_mlflow(store: Path) -> None:
    # MLflow's server reads its configuration from these variables (what `mlflow server` sets before it starts
    # uvicorn): the store, artifacts served from the store's folder, no job runner (huey: 7 more processes).
    from mlflow.server import constants

    os.environ[constants.BACKEND_STORE_URI_ENV_VAR] = f"sqlite:///{store / 'mlflow.db'}"
    os.environ[constants.SERVE_ARTIFACTS_ENV_VAR] = "true"
    os.environ[constants.ARTIFACTS_DESTINATION_ENV_VAR] = str(store / "artifacts")
    os.environ[constants.ARTIFACT_ROOT_ENV_VAR] = "mlflow-artifacts:/"
    os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    os.environ.setdefault("_MLFLOW_SGI_NAME", "uvicorn")


def _recorded(store: Path, patience: float = 10.0) -> bool:
    """Whether the runner that started this process recorded it as the store's server (server.json). A runner killed
    between starting it and writing the record leaves a server nobody can find or stop: it leaves at once instead."""
    deadline = time.monotonic() + patience
    while True:
        try:
            if json.loads((store / "server.json").read_text()).get("pid") == os.getpid():
                return True
        except (OSError, ValueError, AttributeError):
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def idle_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get("MLJOB_TRACKING_IDLE", "1800")))
    except ValueError:
        return 1800.0


def serve(sock: socket.socket, store: Path, secret: bytes) -> bool:
    """Serve until stopped (False) or idle for MLJOB_TRACKING_IDLE seconds (True: go back to sleep)."""
    _configure_mlflow(store)
    # MLflow's own imports warn about their dependencies' deprecations on every start: not the user's to act on.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import uvicorn
    from mlflow.server.fastapi_app import app
    from mljob.runner.tracking_gate import Gate

    gated = Gate(app, secret=secret, owner_uid=os.getuid(), store=store / "mlflow.db")
    config = uvicorn.Config(gated, log_level="warning", access_log=False, lifespan="on", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    idle = idle_seconds()
    went_idle = threading.Event()

    def watch() -> None:
        while not server.should_exit:
            time.sleep(min(idle, 30.0))
            if gated.busy == 0 and time.monotonic() - gated.last_seen > idle:
                went_idle.set()
                server.should_exit = True

    threading.Thread(target=watch, daemon=True).start()
    server.run(sockets=[sock])
    return went_idle.is_set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mljob-tracking-server")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True)
    args = parser.parse_args(argv)
    # The key that makes run tokens: a file only the user reads (never the command line, which anyone can read).
    secret = bytes.fromhex((args.store / "server.key").read_text().strip())
    # A second descriptor of the listening socket outlives uvicorn's closing of its own: after an idle spell this
    # process becomes a sleeper again on the same address (same pid, same port: a job's URL stays valid, and the
    # next connection waits in the backlog while MLflow starts again), giving its memory back.
    keep = os.dup(args.fd)
    sock = socket.socket(fileno=args.fd)
    if not _recorded(args.store):
        return 0
    _wait_for_first_connection(sock)
    if serve(sock, args.store, secret):
        os.set_inheritable(keep, True)
        os.execv(sys.executable, [sys.executable, "-m", "mljob.runner.tracking_serve", "--fd", str(keep),
                                  "--store", str(args.store)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
