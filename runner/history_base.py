"""What every run-history store offers, and the record's vocabulary (tags, statuses, views)."""

from __future__ import annotations

import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from mljob.runner import registry

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


def copy_in(folder: Path, local: Path, artifact_path: str) -> None:
    """`local` (a folder's files, or one file) into the run's artifact `folder` under `artifact_path`."""
    target = folder / artifact_path
    if local.is_dir():
        if any(local.iterdir()):
            shutil.copytree(local, target, dirs_exist_ok=True)
    elif local.is_file():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(local, target / local.name)


def list_local(folder: Path, path: str | None = None) -> Iterator[tuple[str, int | None]]:
    """Every file under the artifact `folder` (or its `path`) as (path relative to `folder`, size), depth first."""
    start = folder / path if path else folder
    if not start.is_dir():
        return
    for entry in sorted(start.rglob("*")):
        if entry.is_file():
            yield entry.relative_to(folder).as_posix(), entry.stat().st_size


def copy_out(folder: Path, path: str, destination: Path, run_id: str) -> Path:
    """The artifact `path` (a file or a folder) of the run whose artifact folder is `folder`, into `destination`."""
    source = folder / path
    target = destination / path
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
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
