"""The run history through MLflow's own client: for tracking servers, other databases, and SQLite stores whose
schema mljob does not know. Importing MLflow and opening a store costs seconds, which is why a local SQLite store of
a known schema goes through history_sqlite instead; both keep the same records."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mljob.runner.history_base import (
    NAME_TAG,
    PARAM_LIMIT,
    STATUS_TAG,
    TERMINAL,
    MetricPoint,
    RunView,
    Store,
    new_artifact_location,
)


def _quiet_loggers() -> None:
    # Schema creation and migrations log at INFO on first use; the user asked for a job, not for those.
    # (After the import: importing mlflow sets its loggers' levels.)
    for noisy in ("alembic", "mlflow"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def create_store(uri: str) -> None:
    """Create (or migrate) the store's schema: MLflow's ~70 migrations, seconds, once per store."""
    from mlflow.tracking import MlflowClient

    _quiet_loggers()
    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


class MlflowStore(Store):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        from mlflow.tracking import MlflowClient

        _quiet_loggers()
        self.client: Any = MlflowClient(tracking_uri=uri)
        self._experiments: dict[str, str] = {}

    def artifact_uri(self, run_id: str) -> str:
        return str(self.client.get_run(run_id).info.artifact_uri)

    def experiment_id(self, name: str, artifact_root: Path | None) -> str:
        if name in self._experiments:
            return self._experiments[name]
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            experiment_id = found.experiment_id
        else:
            location = new_artifact_location(artifact_root, name)
            experiment_id = self.client.create_experiment(name, artifact_location=location)
        self._experiments[name] = experiment_id
        return experiment_id

    def create_run(self, experiment_id: str, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
        from mlflow.entities import Param

        run = self.client.create_run(experiment_id, tags=tags, run_name=name)
        if params:
            self.client.log_batch(run.info.run_id, params=[Param(k, v[:PARAM_LIMIT]) for k, v in params.items()])
        return str(run.info.run_id)

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        self.client.set_tag(run_id, STATUS_TAG, status)
        if reason:
            self.client.set_tag(run_id, "mljob.reason", reason[:PARAM_LIMIT])
        if status in TERMINAL:
            self.client.set_terminated(run_id, TERMINAL[status])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        if tags:
            self.client.log_batch(run_id, tags=[RunTag(k, v[:PARAM_LIMIT]) for k, v in tags.items()])

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        if params:
            self.client.log_batch(run_id, params=[Param(k, v[:PARAM_LIMIT]) for k, v in params.items()])

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0) -> None:
        self.client.log_metric(run_id, key, value, step=step)

    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None:
        if local.is_dir():
            if any(local.iterdir()):
                self.client.log_artifacts(run_id, str(local), artifact_path)
        elif local.is_file():
            self.client.log_artifact(run_id, str(local), artifact_path)

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        found = self.client.get_metric_history(run_id, key)
        return [MetricPoint(m.value, m.step, m.timestamp) for m in sorted(found, key=lambda m: (m.timestamp, m.step))]

    def _view(self, run: Any) -> RunView:
        experiment = self.client.get_experiment(run.info.experiment_id)
        tags = dict(run.data.tags)
        return RunView.of(
            run_id=run.info.run_id,
            run_name=run.info.run_name,
            experiment_id=run.info.experiment_id,
            experiment=experiment.name if experiment else run.info.experiment_id,
            mlflow_status=run.info.status,
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

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int = 1000,
             parent: str | None = None) -> list[RunView]:
        ids = self._experiment_ids(experiment)
        if not ids:
            return []
        query = [f"tags.`{STATUS_TAG}` = '{status}'"] if status else []
        if parent:
            query.append(f"tags.`mlflow.parentRunId` = '{parent}'")
        found = self.client.search_runs(ids, filter_string=" and ".join(query), max_results=limit,
                                        order_by=["start_time DESC"])
        return [self._view(r) for r in found if NAME_TAG in r.data.tags]

    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]:
        for entry in self.client.list_artifacts(run_id, path):
            if entry.is_dir:
                yield from self.artifacts(run_id, entry.path)
            else:
                yield entry.path, entry.file_size

    def download(self, run_id: str, path: str, destination: Path) -> Path:
        destination.mkdir(parents=True, exist_ok=True)
        return Path(self.client.download_artifacts(run_id, path, str(destination)))

