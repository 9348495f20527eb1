"""The `ray` compute: the command runs as a Ray job, submitted to a cluster's dashboard (Ray's Job Submission API).

    compute settings   address=http://HOST:8265 (the dashboard; `scripts/ray-head` starts one on loopback)
                       shared_dir=PATH  a folder at the same path on this machine and on the cluster's nodes
                       max_upload_mib=100  data inputs that go up with the code, in total
                       num_cpus, num_gpus, memory  what the entrypoint reserves (Ray's entrypoint_* arguments)

What travels, and how:

* Code and inputs go up with the job. The run's code snapshot, local data inputs (up to MAX_UPLOAD in total, under
  `.mljob/inputs/NAME/`), the wrapper `.mljob/run.sh` and a per-run marker are zipped here and given to Ray as the
  job's `working_dir`; Ray uploads the zip through the dashboard and unpacks it on the node that runs the
  entrypoint. The zip is made here, not by Ray, because Ray would apply `.gitignore`/`.rayignore` again (the
  snapshot has already applied Azure ML's rules, and a `*.csv` line would drop a CSV input). The marker makes every
  run's package distinct: Ray unpacks one folder per package content, so two runs of the same code would otherwise
  share one working folder and its `./outputs`.
* The command's working directory is that unpacked folder, so `${{inputs.x}}` and `${{outputs.y}}` are paths
  relative to it (`.mljob/inputs/x`, `.mljob/outputs/y`): a command that `cd`s elsewhere before using them must
  make them absolute first (`$PWD/...` before the `cd`). An input past the upload limit is used in place when
  `shared_dir` holds it, and is refused otherwise.
* Results come back through a shared filesystem. When the run's folders on this machine (under MLJOB_HOME) are
  inside `shared_dir`, the wrapper copies `./outputs`, `./logs` and the named outputs there when the command ends
  (and `./logs` every few seconds while it runs), then deletes its copies on the cluster. For an address on
  loopback the cluster is this machine and `shared_dir` defaults to `/`: this is the case implemented and tested
  in full. For a remote cluster, mount one folder at the same path everywhere (NFS or similar), keep MLJOB_HOME in
  it and give it as `shared_dir`. Without one the outputs stay on the cluster's node and the log says where; the
  job can still log metrics and artifacts itself to an MLflow tracking server both sides reach (the job gets
  MLFLOW_TRACKING_URI, MLFLOW_TRACKING_TOKEN and MLFLOW_RUN_ID; mljob's own tracking server listens on this
  machine's Docker bridge or loopback, which a remote node does not reach). Shared MLflow paths (Launch mounts
  whose target is their own host path) are assumed visible at the same path, which again holds on loopback or under
  a shared folder.
* The job's environment (image, conda file) is not built: the command runs with the cluster's own Python, the
  `python` first on the PATH of `ray start` (`scripts/ray-head` uses mljob's venv, so MLflow logging works).

Stopping: Ray sends SIGTERM to the entrypoint's process tree, then SIGKILL after RAY_JOB_STOP_WAIT_TIME_S (3 s by
default); the wrapper copies what the command left before it exits. The job record and its logs on the cluster are
deleted by `remove()` once the job is over (std_log.txt here has them).

Distributed jobs: runner/backends/ray_group.py (RayGroupBackend) submits one job whose driver, shipped in the
same zip, reserves a placement group of one bundle per instance and starts each instance's ranks from an actor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import secrets
import shlex
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mljob.runner import problems
from mljob.runner.backends.base import Backend, Launch

MAX_UPLOAD = 100 * 2**20  # bytes of inputs that go up with the code (Ray's package limit is the gRPC message size)
STOPPED_CODE = 143  # what a shell reports for a command ended by SIGTERM
INPUTS = ".mljob/inputs"
OUTPUTS = ".mljob/outputs"
_POLL = 0.5  # seconds between status requests to the dashboard
_GONE_AFTER = 30.0  # seconds without an answer from the dashboard before a run is given up as failed
_DRAIN_WAIT = 10.0  # seconds wait() holds a finished job's code for output() to deliver the last of the log
_REMOVE_WAIT = 15.0  # seconds remove() and reap() wait for a stopped job to reach a terminal state
_LOG_SYNC = 5  # seconds between copies of ./logs to this machine while the command runs
_TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MISSING = ("the `ray` compute needs Ray's job client, which is not installed; install the optional extra: "
            "pip install 'mljob[ray]' (in a checkout: .venv/bin/pip install -e '.[ray]')")


def _client(address: str) -> Any:
    """A JobSubmissionClient for `address`, or a RunError that says what is missing."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise problems.plain(None, problems.ENGINE, _MISSING) from None
    # Ray's SDK logs each upload and closed log stream at INFO on stderr, which would land in the user's terminal.
    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return JobSubmissionClient(address)
    except Exception as err:  # noqa: BLE001 (ConnectionError, a refused socket, a bad URL: all say the same to a user)
        raise problems.plain(None, problems.ENGINE, f"no Ray dashboard answers at {address} ({err}); start one "
                             "with scripts/ray-head, or fix the compute's `address`") from None


def _status(info: Any) -> str:
    return str(getattr(info.status, "value", info.status))


def _exit_code(info: Any) -> int:
    """The exit code a finished job stands for: the command's own where Ray knows it."""
    status = _status(info)
    if status == "SUCCEEDED":
        return 0
    if status == "STOPPED":
        return STOPPED_CODE
    code = getattr(info, "driver_exit_code", None)
    if code is None:
        found = re.search(r"exit code (-?\d+)", info.message or "")
        code = int(found.group(1)) if found else None
    return code if code else 1  # FAILED with no code (the runtime env could not be set up) is still a failure


async def _next(stream: Any) -> str | None:
    """The stream's next chunk, or None at its end (a task cannot carry StopAsyncIteration out)."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class _Markers:
    """Cuts the job's log down to the command's output, between the two marker lines the wrapper prints.

    Before the first: what Ray writes while it sets up the runtime env, and its "Running entrypoint" line. After
    the second: nothing, and seeing it is how the output ends without waiting for Ray to close the log stream
    (which it does seconds later). If the first never comes (the job failed before it ran), the held text is the
    only explanation there is, and `flush` gives it back."""

    def __init__(self, begin: str, end: str) -> None:
        self.begin, self.end = begin, end
        self.held: str | None = ""  # None once the command's output has begun
        self.tail = ""  # the end of the text so far that may be the start of the end marker
        self.ended = False

    def feed(self, text: str) -> str:
        if self.ended:
            return ""
        if self.held is not None:
            self.held += text
            at = self.held.find(self.begin)
            if at < 0 or "\n" not in self.held[at:]:
                return ""
            text, self.held = self.held[self.held.index("\n", at) + 1:], None
        text, self.tail = self.tail + text, ""
        at = text.find(self.end)
        if at >= 0:
            self.ended = True
            return text[:at]
        # Held back only while it could still become the marker: at most one marker's length, at the very end.
        for keep in range(min(len(self.end) - 1, len(text)), 0, -1):
            if self.end.startswith(text[-keep:]):
                text, self.tail = text[:-keep], text[-keep:]
                break
        return text

    def flush(self) -> str:
        held, self.held, self.tail = (self.held or "") + self.tail, None, ""
        return held


class RayBackend(Backend):
    kind = "ray"

    def __init__(self, address: str, settings: dict[str, Any] | None = None) -> None:
        self.address = address.rstrip("/")
        self.settings = dict(settings or {})
        shared = self.settings.get("shared_dir", "/" if self._loopback() else None)
        # `shared_dir: none` (or empty) says that a loopback address is a tunnel to a cluster elsewhere.
        self.shared_dir = Path(str(shared)).resolve() if shared and str(shared).lower() != "none" else None
        self.max_upload = int(float(self.settings.get("max_upload_mib", MAX_UPLOAD / 2**20)) * 2**20)
        self._client: Any = None
        self._id: str | None = None
        self._uploaded = 0
        self._code: int | None = None
        self._ended = 0.0  # when wait() first saw the job over
        self._pumping = False  # output() has been called
        self._drained = threading.Event()  # output() has returned
        self._polled = 0.0
        self._answered = time.monotonic()
        self._removed = False

    def _loopback(self) -> bool:
        return (urlparse(self.address).hostname or "") in _LOOPBACK

    def _shared(self, path: Path) -> bool:
        return self.shared_dir is not None and path.resolve().is_relative_to(self.shared_dir)

    def check(self) -> Any:
        """Fail before anything is recorded when Ray is missing or no dashboard answers."""
        if self._client is None:
            self._client = _client(self.address)
        return self._client

    def prepare(self, environment: Any, job_folder: Path, progress: Callable[[str], None]) -> str | None:
        self.check()
        if environment:
            progress(f"compute ray: the job's environment is not built; the command runs with the Python of the "
                     f"Ray cluster at {self.address}")
        return None

    # --- where things appear to the command: relative to the unpacked working_dir ---------------------------------

    def workdir_path(self, host: Path) -> str:
        return "."

    def input_path(self, name: str, host: Path) -> str:
        size = _size(host)
        if self._uploaded + size <= self.max_upload:
            self._uploaded += size
            return f"{INPUTS}/{name}/{host.name}" if host.is_file() else f"{INPUTS}/{name}"
        if self._shared(host):
            return str(host)  # too big to upload, and the cluster sees it where it is
        raise problems.plain(None, problems.INPUT_UNREACHABLE, f"input `{name}` ({size / 2**20:.1f} MiB) would "
                             f"take the data uploaded with the job past {self.max_upload / 2**20:.0f} MiB, and the "
                             f"Ray cluster at {self.address} does not see {host}; set the compute's `shared_dir` "
                             "to a folder both sides mount, or raise `max_upload_mib`.")

    def output_path(self, name: str, host: Path) -> str:
        return f"{OUTPUTS}/{name}"

    # --- the run --------------------------------------------------------------------------------------------------

    def start(self, launch: Launch) -> dict[str, str]:
        client = self.check()
        # Ray refuses a submission id it has seen; a run name is unique in one mljob home only.
        self._id = f"mljob-{launch.name}-{secrets.token_hex(4)}"
        entry: dict[str, Any] = {}
        for setting, argument in (("num_cpus", "entrypoint_num_cpus"), ("num_gpus", "entrypoint_num_gpus"),
                                  ("memory", "entrypoint_memory")):
            if self.settings.get(setting) not in (None, ""):
                entry[argument] = float(self.settings[setting]) if setting != "memory" \
                    else int(self.settings[setting])
        handle, package = tempfile.mkstemp(prefix=f"{self._id}-", suffix=".zip")
        os.close(handle)
        try:
            self._package(launch, Path(package))
            try:
                # env_vars as well as the wrapper's exports: Ray tasks and actors the command starts see them too.
                client.submit_job(entrypoint="bash .mljob/run.sh", submission_id=self._id,
                                  runtime_env={"working_dir": package, "env_vars": dict(launch.env)},
                                  metadata={"mljob.run": launch.name, **launch.labels}, **entry)
            except Exception as err:  # noqa: BLE001 (a refused submission is the run's failure, told plainly)
                raise problems.plain(None, problems.ENGINE, f"the Ray cluster at {self.address} did not take the "
                                     f"job: {err}") from None
        finally:
            Path(package).unlink(missing_ok=True)  # uploaded by now (or never): the cluster keeps its own copy
        return {"address": self.address, "submission_id": self._id}

    def _package(self, launch: Launch, zip_path: Path) -> None:
        """The job's working_dir: code snapshot, uploaded inputs, the wrapper and its per-run files."""
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            _add_tree(archive, launch.workdir, "")
            for mount in launch.mounts:
                if mount.target.startswith(INPUTS + "/"):
                    if mount.host.is_dir():
                        _add_tree(archive, mount.host, mount.target)
                    else:
                        archive.write(mount.host, mount.target)
            archive.writestr(".mljob/run.json", json.dumps({"run": launch.name, "submission_id": self._id}) + "\n")
            # Exact values (Ray expands `$VAR` in env_vars values); a name the shell cannot export keeps Ray's copy.
            archive.writestr(".mljob/env.sh", "".join(f"export {key}={shlex.quote(value)}\n"
                                                      for key, value in launch.env.items() if _NAME.fullmatch(key)))
            wrapper = zipfile.ZipInfo(".mljob/run.sh")
            wrapper.external_attr = 0o100755 << 16
            archive.writestr(wrapper, self._wrapper(launch), zipfile.ZIP_DEFLATED)

    def _wrapper(self, launch: Launch) -> str:
        outputs = [(m.target, m.host) for m in launch.mounts if m.target.startswith(OUTPUTS + "/")]
        back = [("outputs", launch.workdir / "outputs"), ("logs", launch.workdir / "logs"), *outputs]
        shared = all(self._shared(host) for _, host in back)
        q = shlex.quote
        lines = [
            "# Written by mljob: runs the job's command in Ray's unpacked working_dir, then brings its results back.",
            'cd "$(dirname "$0")/.." || exit 1',
            ". .mljob/env.sh",
            f"printf '%s\\n' {q(self._markers()[0])}",
            f"mkdir -p outputs logs {' '.join(q(target) for target, _ in outputs)}",
            # Ray sends SIGTERM to every process of the job at once: the command ends, this script outlives it to copy.
            "trap : TERM INT",
        ]
        if shared:
            lines += [f"( while sleep {_LOG_SYNC}; do mkdir -p {q(str(back[1][1]))} && "
                      f"cp -a logs/. {q(str(back[1][1]))}/ 2>/dev/null; done ) &",
                      "syncer=$!"]
        lines += [f"bash -c {q(launch.command)} </dev/null", "code=$?"]
        if shared:
            lines += ['kill "$syncer" 2>/dev/null; wait "$syncer" 2>/dev/null', "copied=0"]
            for source, host in back:
                lines.append(f"mkdir -p {q(str(host))} && cp -a {q(source)}/. {q(str(host))}/ "
                             "&& copied=$((copied + 1))")
            # The package folder stays in Ray's cache until evicted: what the run made is not kept there twice.
            lines.append(f'[ "$copied" = {len(back)} ] && rm -rf outputs {q(OUTPUTS)} {q(INPUTS)}')
        else:
            lines.append("echo \"mljob: outputs stay on the Ray node $(hostname) in $PWD (this cluster shares no "
                         "folder with the machine that submitted the job: see the compute's shared_dir)\"")
        lines += [f"printf '%s\\n' {q(self._markers()[1])}", 'exit "$code"']
        return "\n".join(lines) + "\n"

    def _markers(self) -> tuple[str, str]:
        return f"::mljob {self._id} begins::", f"::mljob {self._id} ends::"

    def output(self) -> Iterator[bytes]:
        client, submission = self.check(), self._id
        assert submission is not None
        self._pumping = True
        markers = _Markers(*self._markers())
        seen, closed = 0, False
        try:
            # tail_job_logs is a coroutine stream: it gets an event loop of its own, in the caller's (output) thread.
            loop = asyncio.new_event_loop()
            stream = client.tail_job_logs(submission)
            pending: asyncio.Task[str | None] | None = None
            try:
                while not markers.ended:
                    pending = pending or loop.create_task(_next(stream))
                    done, _ = loop.run_until_complete(asyncio.wait({pending}, timeout=_POLL))
                    if not done:
                        if self._code is not None:
                            break  # over (wait() saw it): the log has the rest already; Ray's stream lags seconds
                        continue
                    try:
                        text = pending.result()
                    except Exception:  # noqa: BLE001 (a dropped connection: the rest is fetched below)
                        break
                    pending = None
                    if text is None:
                        closed = True  # Ray ends the stream after the last line of a finished job
                        break
                    seen += len(text)
                    if kept := markers.feed(text):
                        yield kept.encode()
            finally:
                with contextlib.suppress(BaseException):
                    if pending is not None:
                        pending.cancel()
                        loop.run_until_complete(asyncio.gather(pending, return_exceptions=True))
                    loop.run_until_complete(stream.aclose())
                loop.close()
            # If the stream broke off while the job goes on, the whole log is fetched now and then for what is new.
            while not markers.ended:
                try:
                    info = client.get_job_info(submission)
                    over = _status(info) in _TERMINAL
                    text = "" if closed and over else client.get_job_logs(submission)
                except Exception:  # noqa: BLE001 (the job was deleted, or the head went away: wait() says which)
                    break
                if len(text) > seen:
                    if kept := markers.feed(text[seen:]):
                        yield kept.encode()
                    seen = len(text)
                if over:
                    if _status(info) == "FAILED" and getattr(info, "driver_exit_code", None) is None \
                            and info.message:
                        yield f"mljob: Ray: {info.message}\n".encode()  # it never ran: Ray's reason is all there is
                    break
                closed = False
                time.sleep(1)
            if rest := markers.flush():
                yield rest.encode()
        finally:
            self._drained.set()

    def wait(self, timeout: float) -> int | None:
        """The code once Ray calls the job over and, when output() is being read, once it has all of it: the
        caller deletes the job soon after this returns, and with it the log still on its way."""
        assert self._id is not None
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            if self._code is None and now - self._polled >= _POLL:
                self._refresh()
                continue
            if self._code is not None and (not self._pumping or self._drained.is_set()
                                           or now - self._ended > _DRAIN_WAIT):
                return self._code
            remaining = deadline - now
            if remaining <= 0:
                return None
            if self._code is None:
                time.sleep(min(remaining, _POLL - (now - self._polled)))
            else:
                self._drained.wait(min(remaining, _DRAIN_WAIT - (now - self._ended)))

    def _refresh(self) -> None:
        self._polled = time.monotonic()
        try:
            info = self.check().get_job_info(self._id)
        except Exception as err:  # noqa: BLE001 (a moment without answer is retried; a long one ends the run)
            if time.monotonic() - self._answered > _GONE_AFTER:
                raise problems.plain(None, problems.ENGINE, f"the Ray cluster at {self.address} stopped answering "
                                     f"about job {self._id}: {err}") from None
            return
        self._answered = time.monotonic()
        if _status(info) in _TERMINAL:
            self._ended = time.monotonic()
            self._code = _exit_code(info)

    def stop(self) -> None:
        if self._id is None:
            return
        with contextlib.suppress(Exception):  # already over, or the head is gone: nothing left to stop
            self.check().stop_job(self._id)

    def remove(self) -> None:
        if self._id is None or self._removed:
            return
        try:
            _end_and_delete(self.check(), self._id)
        except Exception:  # noqa: BLE001 (the head is gone, and the job with it)
            return
        self._removed = True

    @staticmethod
    def reap(facts: dict[str, str]) -> str:
        submission, address = facts.get("submission_id"), facts.get("address")
        if not submission or not address:
            return "no Ray job had been submitted"
        try:
            client = _client(address)
        except problems.RunError:
            return f"the Ray cluster at {address} does not answer; job {submission} may still run there"
        try:
            before = _status(client.get_job_info(submission))
        except Exception:  # noqa: BLE001 (an unknown id: deleted already)
            return f"Ray job {submission} is already gone"
        after = _end_and_delete(client, submission)
        if before in _TERMINAL:
            return f"Ray job {submission} had ended ({before.lower()}); its record was deleted"
        return f"Ray job {submission} stopped" if after in _TERMINAL else \
            f"Ray job {submission} was asked to stop but is still {after.lower()}"


def _end_and_delete(client: Any, submission: str) -> str:
    """Stop the job if it runs, wait for Ray to call it over, delete its record; returns the last status seen."""
    status = _status(client.get_job_info(submission))
    if status not in _TERMINAL:
        client.stop_job(submission)
        deadline = time.monotonic() + _REMOVE_WAIT
        while status not in _TERMINAL and time.monotonic() < deadline:
            time.sleep(0.2)
            status = _status(client.get_job_info(submission))
    if status in _TERMINAL:
        client.delete_job(submission)
    return status


def _add_tree(archive: zipfile.ZipFile, root: Path, prefix: str) -> None:
    """`root` into the archive under `prefix`, folders included (an empty ./outputs must exist on the cluster).
    Symbolic links are followed, as Ray's own packaging does: the cluster cannot see what they point to."""
    for folder, _dirs, files in os.walk(root, followlinks=True):
        rel = Path(folder).relative_to(root)
        base = f"{prefix}/{rel.as_posix()}" if prefix else rel.as_posix()
        base = "" if base == "." else base.removesuffix("/.")
        if base:
            archive.write(folder, base + "/")
        for name in files:
            path = Path(folder) / name
            if path.exists():  # a dangling link has nothing to send
                archive.write(path, f"{base}/{name}" if base else name)
