"""What every run-history store offers, and the record's vocabulary (tags, statuses, views)."""

from __future__ import annotations

import os
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


def local_path(uri: str) -> Path | None:
    """The file-system path behind a `file:` or `sqlite:` URI (None for servers and databases elsewhere)."""
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        raw = uri[len("sqlite:///"):]
        return Path("/" + raw.lstrip("/")) if raw.startswith("/") else Path(raw).resolve()
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme == "" and uri:
        return Path(uri).resolve()
    return None


def new_artifact_location(artifact_root: Path | None, experiment: str) -> str | None:
    """A fresh folder for a new experiment's artifacts (named so that a deleted namesake's files are never reused)."""
    if artifact_root is None:
        return None
    folder = artifact_root / f"{experiment}-{time.time_ns():x}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder.as_uri()


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
    def experiment_id(self, name: str, artifact_root: Path | None) -> str: ...

    @abstractmethod
    def create_run(self, experiment_id: str, name: str, params: dict[str, str], tags: dict[str, str]) -> str: ...

    @abstractmethod
    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None: ...

    @abstractmethod
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    @abstractmethod
    def log_params(self, run_id: str, params: dict[str, str]) -> None: ...

    @abstractmethod
    def log_metric(self, run_id: str, key: str, value: float, step: int = 0) -> None: ...

    @abstractmethod
    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None: ...

    @abstractmethod
    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]: ...

    @abstractmethod
    def get(self, run_id: str) -> RunView: ...

    @abstractmethod
    def find(self, name: str) -> RunView | None: ...

    @abstractmethod
    def runs(self, experiment: str | None = None, status: str | None = None, limit: int = 1000,
             parent: str | None = None) -> list[RunView]: ...

    @abstractmethod
    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]: ...

    @abstractmethod
    def download(self, run_id: str, path: str, destination: Path) -> Path: ...
