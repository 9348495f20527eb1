"""The run history: one MLflow run per job, in MLflow's embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise.

    $MLJOB_HOME/mlflow/mlflow.db     runs, params, metrics, tags (sqlite:///…; MLFLOW_TRACKING_URI overrides it)
    $MLJOB_HOME/mlflow/artifacts/    artifacts of the experiments mljob creates there (outputs, logs, user_logs)

Statuses are Azure ML's names, kept in the tag `mljob.status` (MLflow's own status has no Preparing/Finalizing):
Preparing and Running are MLflow RUNNING; Completed, Failed and Canceled are FINISHED, FAILED and KILLED.

Two stores keep the same records: a local SQLite file of a known schema is read and written directly
(history_sqlite: milliseconds), anything else through MLflow's client (history_mlflow: seconds to import). A new
SQLite store is created once by MLflow itself, so its schema is exactly MLflow's.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

from mljob.runner.history_base import (
    NAME_TAG,
    PARENT_TAG,
    REASON_TAG,
    STATUS_TAG,
    STATUSES,
    TERMINAL,
    MetricPoint,
    RunView,
    Store,
    default_store,
    local_path,
    tracking_uri,
)

__all__ = ["NAME_TAG", "PARENT_TAG", "REASON_TAG", "STATUS_TAG", "STATUSES", "TERMINAL", "History", "MetricPoint",
           "RunView", "default_store", "local_path", "tracking_uri"]


def _mlflow_store(uri: str) -> Store:
    from mljob.runner.history_mlflow import MlflowStore

    try:
        return MlflowStore(uri)
    except Exception as err:  # a server that does not answer, a store of a newer MLflow: the user's to fix
        from mljob.runner import problems

        raise problems.plain(None, problems.ENGINE, f"the run history at {uri} cannot be opened: {err} (set "
                             "MLFLOW_TRACKING_URI to another store, or leave it unset for mljob's own)") from None


def _open(uri: str) -> Store:
    path = local_path(uri)
    if path is None or urlparse(uri).scheme != "sqlite":
        return _mlflow_store(uri)
    from mljob.runner import history_sqlite

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"creating the run history in {path} (once; MLflow sets up its schema)", file=sys.stderr, flush=True)
        from mljob.runner.history_mlflow import create_store

        create_store(uri)
    known = history_sqlite.open_known(uri, wal=path == default_store() / "mlflow.db")
    return known if known is not None else _mlflow_store(uri)


class History:
    def __init__(self, uri: str | None = None) -> None:
        self.uri = uri or tracking_uri()
        self.store = _open(self.uri)

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
        artifacts = local_path(self.store.artifact_uri(run_id))
        if artifacts is not None:
            found.append(artifacts)
        return found

    # --- writing ------------------------------------------------------------------------------------------------

    def experiment_id(self, name: str) -> str:
        return self.store.experiment_id(name, self.artifact_root())

    def create_run(self, experiment: str, name: str, params: dict[str, str], tags: dict[str, str],
                   parent_run_id: str | None = None) -> RunView:
        experiment_id = self.experiment_id(experiment)
        all_tags = {**tags, NAME_TAG: name, STATUS_TAG: "Preparing"}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        return self.store.get(self.store.create_run(experiment_id, name, params, all_tags))

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        self.store.set_status(run_id, status, reason)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.store.set_tags(run_id, tags)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        self.store.log_params(run_id, params)

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0) -> None:
        self.store.log_metric(run_id, key, value, step)

    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None:
        self.store.log_artifacts(run_id, local, artifact_path)

    # --- reading ------------------------------------------------------------------------------------------------

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        return self.store.metric_history(run_id, key)

    def get(self, run_id: str) -> RunView:
        return self.store.get(run_id)

    def find(self, name: str) -> RunView | None:
        return self.store.find(name)

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int = 1000,
             parent: str | None = None) -> list[RunView]:
        return self.store.runs(experiment, status, limit, parent)

    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]:
        """Every artifact file of a run as (path, size), depth first."""
        return self.store.artifacts(run_id, path)

    def download(self, run_id: str, path: str, destination: Path) -> Path:
        destination.mkdir(parents=True, exist_ok=True)
        return self.store.download(run_id, path, destination)
