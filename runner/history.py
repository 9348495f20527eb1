"""The run history: one MLflow run per job, in MLflow's embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise.

    $MLJOB_HOME/mlflow/mlflow.db     runs, params, metrics, tags (sqlite:///…; MLFLOW_TRACKING_URI overrides it)
    $MLJOB_HOME/mlflow/artifacts/    artifacts of the experiments mljob creates there (outputs, logs, user_logs)

Statuses are Azure ML's names, kept in the tag `mljob.status` (MLflow's own status has no Preparing/Finalizing):
Preparing and Running are MLflow RUNNING; Completed, Failed and Canceled are FINISHED, FAILED and KILLED.
MLflow is imported only here, and only when a verb needs the history: it costs seconds to import.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from mljob.runner import registry

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

TERMINAL = {"Completed": "FINISHED", "Failed": "FAILED", "Canceled": "KILLED"}
STATUSES = ("Preparing", "Running", "Finalizing", *TERMINAL)
NAME_TAG = "mljob.name"
STATUS_TAG = "mljob.status"
REASON_TAG = "mljob.reason"
# MLflow refuses longer param values; a command or a long literal is cut (the full text stays in the run folder).
_PARAM_LIMIT = 6000


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


class History:
    def __init__(self, uri: str | None = None) -> None:
        self.uri = uri or tracking_uri()
        path = local_path(self.uri)
        if path is not None and urlparse(self.uri).scheme == "sqlite":
            path.parent.mkdir(parents=True, exist_ok=True)
        from mlflow.tracking import MlflowClient

        # Schema creation and migrations log at INFO on first use; the user asked for a job, not for those.
        # (After the import: importing mlflow sets its loggers' levels.)
        for noisy in ("alembic", "mlflow"):
            logging.getLogger(noisy).setLevel(logging.WARNING)

        self.client: MlflowClient = MlflowClient(tracking_uri=self.uri)
        self._experiments: dict[str, str] = {}

    # --- where things are -------------------------------------------------------------------------------------

    def artifact_root(self) -> Path | None:
        """Where experiments created here keep artifacts, when the store is a local SQLite file."""
        store = local_path(self.uri)
        if store is None or urlparse(self.uri).scheme != "sqlite":
            return None
        return store.parent / "artifacts"

    def shared_paths(self, run_id: str) -> list[Path]:
        """Local folders a job in a container must see, at the same path, to log into its run."""
        found: list[Path] = []
        store = local_path(self.uri)
        if store is not None:
            found.append(store.parent if urlparse(self.uri).scheme == "sqlite" else store)
        artifacts = local_path(self.client.get_run(run_id).info.artifact_uri)
        if artifacts is not None:
            found.append(artifacts)
        return found

    # --- writing ------------------------------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        if name in self._experiments:
            return self._experiments[name]
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            experiment_id = found.experiment_id
        else:
            root = self.artifact_root()
            location = None
            if root is not None:
                folder = root / f"{name}-{time.time_ns():x}"
                folder.mkdir(parents=True, exist_ok=True)
                location = folder.as_uri()
            experiment_id = self.client.create_experiment(name, artifact_location=location)
        self._experiments[name] = experiment_id
        return experiment_id

    def create_run(self, experiment: str, name: str, params: dict[str, str], tags: dict[str, str]) -> RunView:
        from mlflow.entities import Param

        experiment_id = self.experiment_id(experiment)
        all_tags = {**tags, NAME_TAG: name, STATUS_TAG: "Preparing"}
        run = self.client.create_run(experiment_id, tags=all_tags, run_name=name)
        if params:
            self.client.log_batch(run.info.run_id, params=[Param(k, v[:_PARAM_LIMIT]) for k, v in params.items()])
        return self.get(run.info.run_id)

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        self.client.set_tag(run_id, STATUS_TAG, status)
        if reason:
            self.client.set_tag(run_id, REASON_TAG, reason[:_PARAM_LIMIT])
        if status in TERMINAL:
            self.client.set_terminated(run_id, TERMINAL[status])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v[:_PARAM_LIMIT]) for k, v in tags.items()])

    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None:
        if local.is_dir():
            if any(local.iterdir()):
                self.client.log_artifacts(run_id, str(local), artifact_path)
        elif local.is_file():
            self.client.log_artifact(run_id, str(local), artifact_path)

    # --- reading ------------------------------------------------------------------------------------------------

    def _view(self, run: Any) -> RunView:
        experiment = self.client.get_experiment(run.info.experiment_id)
        tags = dict(run.data.tags)
        status = tags.get(STATUS_TAG) or {"FINISHED": "Completed", "FAILED": "Failed", "KILLED": "Canceled"}.get(
            run.info.status, "Running")
        return RunView(
            name=tags.get(NAME_TAG) or run.info.run_name or run.info.run_id,
            run_id=run.info.run_id,
            experiment_id=run.info.experiment_id,
            experiment=experiment.name if experiment else run.info.experiment_id,
            status=status,
            start_time=run.info.start_time,
            end_time=run.info.end_time,
            artifact_uri=run.info.artifact_uri,
            params=dict(run.data.params),
            metrics=dict(run.data.metrics),
            tags=tags,
        )

    def get(self, run_id: str) -> RunView:
        return self._view(self.client.get_run(run_id))

    def _experiment_ids(self, name: str | None = None) -> list[str]:
        if name is not None:
            found = self.client.get_experiment_by_name(name)
            return [found.experiment_id] if found is not None else []
        return [e.experiment_id for e in self.client.search_experiments()]

    def find(self, name: str) -> RunView | None:
        ids = self._experiment_ids()
        if not ids:
            return None
        runs = self.client.search_runs(ids, filter_string=f"tags.`{NAME_TAG}` = '{name}'", max_results=1)
        return self._view(runs[0]) if runs else None

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int = 1000) -> list[RunView]:
        ids = self._experiment_ids(experiment)
        if not ids:
            return []
        query = f"tags.`{STATUS_TAG}` = '{status}'" if status else ""
        found = self.client.search_runs(ids, filter_string=query, max_results=limit, order_by=["start_time DESC"])
        return [self._view(r) for r in found if NAME_TAG in r.data.tags]

    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]:
        """Every artifact file of a run as (path, size), depth first."""
        for entry in self.client.list_artifacts(run_id, path):
            if entry.is_dir:
                yield from self.artifacts(run_id, entry.path)
            else:
                yield entry.path, entry.file_size

    def download(self, run_id: str, path: str, destination: Path) -> Path:
        destination.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, path, str(destination)))
