"""What every run-history store offers, and the record's vocabulary (tags, statuses, views)."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from mljob.runner import copies, registry

TERMINAL = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}
STATUSES = ("Preparing", "Running", "Finalizing", *TERMINAL)
NAME_TAG = "mljob.name"
STATUS_TAG = "mljob.status"
REASON_TAG = "mljob.reason"
PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI nests a sweep's trials under it
# MLflow refuses longer param values; a command or a long literal is cut (the full text stays in the run folder).
PARAM_LIMIT = 6000
_FROM_MLFLOW = {"FINISHED": "Completed", "FAILED": "Failed", "KILLED": "Canceled"}


def default_store() -> Path:
    return registry.home() / "mlflow"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{default_store() / 'mlflow.db'}"


ARTIFACTS_SCHEME = "mlflow-artifacts:"


def artifact_destination() -> Path:
    """Where mljob's tracking server keeps artifacts: `mlflow-artifacts:/X` is this folder's X."""
    return default_store() / "artifacts"


def local_path(uri: str) -> Path | None:
    """The file-system path behind a `file:`, `sqlite:` or (mljob's own server) `mlflow-artifacts:` URI (None for
    servers and databases elsewhere)."""
    parsed = urlparse(uri)
    if parsed.scheme == "mlflow-artifacts":
        rel = unquote(parsed.path).lstrip("/")
        if ".." in Path(rel).parts:
            return None
        return artifact_destination() / rel
    if parsed.scheme == "sqlite":
        raw = uri[len("sqlite:///"):]
        return Path("/" + raw.lstrip("/")) if raw.startswith("/") else Path(raw).resolve()
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri).resolve()
    return None


def new_artifact_location(artifact_root: Path | None, experiment: str) -> str | None:
    """A fresh folder for a new experiment's artifacts (named so that a deleted namesake's files are never reused).

    In mljob's own store it is named as the tracking server serves it (`mlflow-artifacts:/…`): a job in a container
    logs artifacts over HTTP into the same folder the runner copies outputs into."""
    if artifact_root is None:
        return None
    folder = artifact_root / f"{experiment}-{time.time_ns():x}"
    folder.mkdir(parents=True, exist_ok=True)
    return served_uri(folder.as_uri())


def served_uri(uri: str) -> str:
    """`uri` as mljob's tracking server names it, when it is a folder under the server's artifact destination (runs
    of experiments created before the server kept `file:` locations); any other URI unchanged."""
    if urlparse(uri).scheme != "file":
        return uri
    path = local_path(uri)
    root = artifact_destination()
    if path is None or not path.is_relative_to(root):
        return uri
    return f"{ARTIFACTS_SCHEME}/{path.relative_to(root).as_posix()}"


def run_artifact_uri(experiment_location: str | None, run_id: str) -> str:
    """A new run's artifact URI in an experiment whose artifact location is `experiment_location` (as MLflow does)."""
    return served_uri(f"{str(experiment_location or '').rstrip('/')}/{run_id}/artifacts")


# --- artifacts in a local folder (both stores: what MLflow's LocalArtifactRepository does, without importing it) -----
# Every copy goes through the copy policy (runner/copies.py): a job's ./outputs is the job's to fill, so a link in it
# to a file of this machine, a loop of links or a device must not become an artifact (the copy runs on this machine,
# also for jobs in containers).

_said: set[str] = set()


def _reporter(local: Path) -> Callable[[str], None]:
    """Says what a copy of `local` skipped, each thing once (./logs is copied again every few seconds while the job
    runs), on stderr: the terminal of `mljob run`, the run's runner.log for a detached runner."""

    def say(message: str) -> None:
        key = f"{local}\0{message}"
        if key not in _said:
            if len(_said) > 10_000:
                _said.clear()
            _said.add(key)
            print(message, file=sys.stderr, flush=True)

    return say


def copy_in(folder: Path, local: Path, artifact_path: str) -> None:
    """`local` (a folder's files, or one file) into the run's artifact `folder` under `artifact_path`. `local` itself
    is not followed when it is a link: the job could have made its ./outputs one."""
    what = f"artifacts `{artifact_path}`"
    try:
        mode = local.lstat().st_mode
    except FileNotFoundError:
        return
    say = _reporter(local)
    options = dict(limit_bytes=copies.limit(copies.ARTIFACT_LIMIT), what=what, progress=say,
                   advice=f"Write less into {local.name}")
    if stat.S_ISDIR(mode):
        if any(local.iterdir()):
            copies.copy_tree(local, folder / artifact_path, follow_root=False, **options)  # type: ignore[arg-type]
    elif stat.S_ISREG(mode):
        copies.copy_file(local, folder / artifact_path / local.name, follow=False, **options)  # type: ignore[arg-type]
    else:
        say(f"{what}: skipped {local}: {copies.special_kind(mode) or 'a link'}, not a folder or a regular file")


@contextlib.contextmanager
def staged(local: Path, artifact_path: str) -> Iterator[Path]:
    """A copy of `local` made by the same policy, in a temporary folder, for a store that uploads what it is given
    (MLflow's client reads through links): the folder, or the file, to upload (missing when there is nothing)."""
    with tempfile.TemporaryDirectory(prefix="mljob-artifacts-") as place:
        copy_in(Path(place), local, artifact_path)
        ready = Path(place) / artifact_path
        yield ready / local.name if local.is_file() and not local.is_symlink() else ready


def list_local(folder: Path, path: str | None = None) -> Iterator[tuple[str, int | None]]:
    """Every file under the artifact `folder` (or its `path`) as (path relative to `folder`, size), depth first."""
    start = folder / path if path else folder
    root, real = os.path.realpath(folder), os.path.realpath(start)
    if not start.is_dir() or not (real == root or real.startswith(root.rstrip("/") + "/")):
        return
    prefix = start.relative_to(folder).as_posix()
    for relative, size in copies.listing(start):
        yield (f"{prefix}/{relative}" if prefix != "." else relative), size


def copy_out(folder: Path, path: str, destination: Path, run_id: str) -> Path:
    """The artifact `path` (a file or a folder) of the run whose artifact folder is `folder`, into `destination`."""
    source = folder / path
    target = destination / path
    real, root = os.path.realpath(source), os.path.realpath(folder)
    inside = real == root or real.startswith(root.rstrip("/") + "/")  # an artifact path never leads out
    options = dict(limit_bytes=copies.limit(copies.ARTIFACT_LIMIT), what=f"artifact `{path}`",
                   progress=_reporter(source),
                   advice="Download a part of it (`mljob job download` takes the run's top folders one by one)")
    if inside and os.path.isdir(real):
        copies.copy_tree(source, target, **options)  # type: ignore[arg-type]
    elif inside and os.path.isfile(real):
        copies.copy_file(source, target, **options)  # type: ignore[arg-type]
    else:
        raise FileNotFoundError(f"no artifact `{path}` in run {run_id}")
    return target


@dataclass(frozen=True)
class MetricPoint:
    value: float
    step: int
    timestamp: int


@dataclass
class RunView:
    """What `job show` / `job list` print: a snapshot of one run."""

    name: str
    run_id: str
    experiment_id: str
    experiment: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        return self.tags.get(REASON_TAG, "")

    @classmethod
    def of(cls, *, run_id: str, run_name: str | None, experiment_id: str, experiment: str, mlflow_status: str,
           start_time: int | None, end_time: int | None, artifact_uri: str, params: dict[str, str],
           metrics: dict[str, float], tags: dict[str, str]) -> RunView:
        status = tags.get(STATUS_TAG) or _FROM_MLFLOW.get(mlflow_status, "Running")
        return cls(tags.get(NAME_TAG) or run_name or run_id, run_id, str(experiment_id), experiment, status,
                   start_time, end_time, artifact_uri, params, metrics, tags)


class Store(ABC):
    """One way to reach the records; History picks one per tracking URI."""

    uri: str

    @abstractmethod
    def artifact_uri(self, run_id: str) -> str: ...

    @abstractmethod
    def experiment_id(self, name: str, artifact_root: Path | None) -> str:
        """The id of experiment `name`: created when there is none (its artifacts in a fresh folder under
        `artifact_root`), restored when it was deleted (with its runs, as MLflow's restore_experiment does)."""

    @abstractmethod
    def create_run(self, experiment_id: str, name: str, params: dict[str, str], tags: dict[str, str]) -> str: ...

    @abstractmethod
    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None: ...

    @abstractmethod
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    @abstractmethod
    def log_params(self, run_id: str, params: dict[str, str]) -> None: ...

    @abstractmethod
    def log_metric(self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        """One value; `timestamp` (ms since the epoch) is now unless given. The run's latest value of `key` is the
        one of the highest step, then the latest timestamp, then the largest value (MLflow's rule)."""

    @abstractmethod
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        """Every value logged for `key`, in MLflow's order: by timestamp, then step, then value."""

    @abstractmethod
    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None: ...

    @abstractmethod
    def get(self, run_id: str) -> RunView:
        """The run (KeyError when the store has no run of that id)."""

    @abstractmethod
    def find(self, name: str) -> RunView | None:
        """The newest active run (by start time, then run id) tagged `mljob.name` = `name`, in an active experiment."""

    @abstractmethod
    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = 1000,
             parent: str | None = None) -> list[RunView]:
        """mljob's runs (those with a `mljob.name` tag) that are active, in active experiments: the newest `limit`
        (None: all) by start time, then run id; only those of `experiment` (a name), with mljob status `status`, or
        children of run `parent` when given."""

    @abstractmethod
    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]: ...

    @abstractmethod
    def download(self, run_id: str, path: str, destination: Path) -> Path: ...
