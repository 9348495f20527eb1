"""The gate in front of mljob's tracking server: who may read and write which records (an ASGI middleware).

Three kinds of caller:
- the owner: a process of this machine running as the user who started the server (the runner, `mljob ui` in the
  user's browser, the user's own scripts). The uid comes from the kernel's socket table (/proc/net/tcp, read by
  runner/procfs.py), as the resident runner takes its callers' uid from SO_PEERCRED; a connection from a container
  comes from an address that is not this machine's and never looks like the owner.
- a job: it presents its run's token (MLFLOW_TRACKING_TOKEN, which every MLflow client sends as `Bearer`). It may
  read, and write only into its own run and the child runs it creates, its experiment's logged models, and
  artifacts under its experiment's folder.
- anyone else: refused (401), but for /health and /version.

Two liberties a job's MLflow client takes are undone here, so that everything a job logs lands in its run:
- ending the run (`with mlflow.start_run():`, `autolog()` after `fit`) would mark the job finished while it still
  runs and drop MLFLOW_RUN_ID; the runner owns the run's status, so a job's status change is ignored.
- a later `mlflow.log_metric` then asks for a new run, and `mlflow.set_experiment` for a new experiment: a job has
  one run and one experiment, so those answer with the job's own (a child run, one with a parent, is still made).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mljob.runner import procfs
from mljob.runner.history_base import ARTIFACTS_SCHEME

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_OPEN = {"/health", "/version"}
_API = re.compile(r"^/(?:ajax-)?api/[23]\.0/mlflow/(?P<endpoint>.+)$")
_ARTIFACTS = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/(?:artifacts|mpu/(?:create|complete|abort))/(?P<path>.*)$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_BODY_LIMIT = 32 * 2**20  # a JSON request; log_batch takes at most 1,000 metrics
_RUN_WRITES = {"runs/update", "runs/log-metric", "runs/log-parameter", "runs/set-tag", "runs/delete-tag",
               "runs/log-batch", "runs/log-inputs", "runs/outputs", "runs/log-model"}


def token(secret: bytes, run_id: str, experiment_id: str) -> str:
    """The credential of one run's job: it names the run and its experiment, and only the server's key makes it."""
    body = f"{run_id}.{experiment_id}"
    return f"{body}.{hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()[:40]}"


@dataclass(frozen=True)
class Job:
    run_id: str
    experiment_id: str


def verify(secret: bytes, presented: str) -> Job | None:
    parts = presented.split(".")
    if len(parts) != 3 or not _RUN_ID.match(parts[0]) or not parts[1].isdigit():
        return None
    if not hmac.compare_digest(token(secret, parts[0], parts[1]), presented):
        return None
    return Job(parts[0], parts[1])


class Gate:
    def __init__(self, app: Callable[..., Awaitable[None]], *, secret: bytes, owner_uid: int, store: Path) -> None:
        self.app = app
        self.secret = secret
        self.owner_uid = owner_uid
        self.store = store
        self._owners: dict[tuple[str, int], float] = {}
        self._children: set[tuple[str, str]] = set()
        self._folders: dict[str, str | None] = {}
        self.busy = 0  # requests under way, and when the last one ended: the server sleeps after a long idle spell
        self.last_seen = time.monotonic()

    # --- who is asking ------------------------------------------------------------------------------------------

    def _is_owner(self, scope: Scope) -> bool:
        client = scope.get("client")
        key = tuple(client) if client else None
        now = time.monotonic()
        if key is not None and self._owners.get(key, 0) > now:  # type: ignore[arg-type]
            return True
        if procfs.tcp_peer_uid(client, scope.get("server")) == self.owner_uid:
            if key is not None:
                self._owners[key] = now + 5  # the same keep-alive connection; a closed port is reused later
            return True
        return False

    def _job(self, scope: Scope) -> Job | None:
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                return verify(self.secret, value[7:].decode("latin-1").strip())
        return None

    # --- what the store says --------------------------------------------------------------------------------------

    def _query(self, sql: str, args: tuple[object, ...]) -> tuple[Any, ...] | None:
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(sql, args).fetchone()

    def _owns_run(self, job: Job, run_id: str) -> bool:
        if run_id == job.run_id or (job.run_id, run_id) in self._children:
            return True
        row = self._query("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlflow.parentRunId'", (run_id,))
        if row is not None and row[0] == job.run_id:
            self._children.add((job.run_id, run_id))
            return True
        return False

    def _experiment_folder(self, job: Job) -> str | None:
        if job.experiment_id not in self._folders:
            row = self._query("SELECT artifact_location FROM experiments WHERE experiment_id = ?",
                              (int(job.experiment_id),))
            location = str(row[0]) if row and row[0] else ""
            folder = None
            if location.startswith(ARTIFACTS_SCHEME):
                folder = location[len(ARTIFACTS_SCHEME):].strip("/")
            self._folders[job.experiment_id] = folder
        return self._folders[job.experiment_id]

    # --- the rules for a job -------------------------------------------------------------------------------------

    def _artifact_allowed(self, job: Job, path: str) -> bool:
        folder = self._experiment_folder(job)
        parts = [p for p in unquote(path).split("/") if p]
        if folder is None or ".." in parts or "." in parts:
            return False
        prefix = [p for p in folder.split("/") if p]
        if parts[: len(prefix)] != prefix or len(parts) <= len(prefix):
            return False
        first = parts[len(prefix)]
        return self._owns_run(job, first) if _RUN_ID.match(first) else first == "models"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.busy += 1
        try:
            await self._admit(scope, receive, send)
        finally:
            self.busy -= 1
            self.last_seen = time.monotonic()

    async def _admit(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        job = self._job(scope)
        # A job's token decides even when the job runs as the user (compute: process): its records then stay in its
        # run all the same.
        if path in _OPEN or (job is None and self._is_owner(scope)):
            await self.app(scope, receive, send)
            return
        if job is None or scope["type"] != "http":
            await _answer(send, 401, "UNAUTHENTICATED", "mljob's tracking server serves the user who runs it and "
                          "that user's jobs (a job presents its run's MLFLOW_TRACKING_TOKEN)")
            return
        method = scope.get("method", "GET")
        if method in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        artifact = _ARTIFACTS.match(path)
        if artifact is not None:
            if self._artifact_allowed(job, artifact["path"]):
                await self.app(scope, receive, send)
            else:
                await _answer(send, 403, "PERMISSION_DENIED", "a job writes artifacts only into its own run")
            return
        api = _API.match(path)
        if api is None:
            await _answer(send, 403, "PERMISSION_DENIED", "a job may not do this")
            return
        endpoint = api["endpoint"]
        body = await _read_body(receive)
        if body is None:
            await _answer(send, 413, "INVALID_PARAMETER_VALUE", "request too large")
            return
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        await self._job_write(job, endpoint, data, body, scope, send)

    async def _job_write(self, job: Job, endpoint: str, data: dict[str, Any], body: bytes, scope: Scope,
                         send: Send) -> None:
        if "search" in endpoint:  # searches are reads sent as POST
            await self._forward(scope, body, send)
            return
        if endpoint == "runs/create":
            tags = {t.get("key"): t.get("value") for t in data.get("tags") or [] if isinstance(t, dict)}
            parent = tags.get("mlflow.parentRunId")
            if parent and self._owns_run(job, str(parent)):
                await self._forward(scope, body, send)
            else:
                # A second top-level run of the same job (autolog ended the first): the job's own run instead.
                await self._forward(_get(scope, "runs/get", f"run_id={job.run_id}"), b"", send)
            return
        if endpoint == "experiments/create":
            await _json(send, 200, {"experiment_id": job.experiment_id})
            return
        if endpoint in _RUN_WRITES:
            run_id = str(data.get("run_id") or data.get("run_uuid") or "")
            if not self._owns_run(job, run_id):
                await _answer(send, 403, "PERMISSION_DENIED", f"a job writes only into its own run ({job.run_id})")
                return
            if endpoint == "runs/update" and run_id == job.run_id:
                # The runner decides when the job's run ends, and how.
                data.pop("status", None)
                data.pop("end_time", None)
                body = json.dumps(data).encode()
            await self._forward(scope, body, send)
            return
        if endpoint.startswith("logged-models"):
            if endpoint == "logged-models" and str(data.get("experiment_id", job.experiment_id)) != job.experiment_id:
                await _answer(send, 403, "PERMISSION_DENIED", "a job logs models only into its own experiment")
                return
            await self._forward(scope, body, send)
            return
        await _answer(send, 403, "PERMISSION_DENIED", f"a job may not call {endpoint}")

    async def _forward(self, scope: Scope, body: bytes, send: Send) -> None:
        headers = [(k, v) for k, v in scope.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


def _get(scope: Scope, endpoint: str, query: str) -> Scope:
    path = f"/api/2.0/mlflow/{endpoint}"
    return {**scope, "method": "GET", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "headers": [(k, v) for k, v in scope.get("headers", [])
                                                         if k not in (b"content-length", b"content-type")]}


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _BODY_LIMIT:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


async def _answer(send: Send, status: int, code: str, message: str) -> None:
    await _json(send, status, {"error_code": code, "message": message})

