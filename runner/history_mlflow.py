"""The run history through MLflow's own client: for tracking servers, other databases, SQLite stores whose schema mljob
does not know, and any store when MLJOB_HISTORY_PATH=mlflow. Importing MLflow and opening a store costs seconds,
which is why a local SQLite store of a known schema goes through history_sqlite instead; both keep the same records
and give the same views (tests/runner/test_history_contract.py runs one suite on both).

Artifacts in a local folder (`file:`, and mljob's own `mlflow-artifacts:` when the store is a local database: MLflow's
client can only resolve that scheme through a tracking server) are copied directly, as history_sqlite does; any other
artifact location goes through the client."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mljob.runner.history_base import (
    NAME_TAG,
    PARAM_LIMIT,
    PARENT_TAG,
    REASON_TAG,
    STATUS_TAG,
    TERMINAL,
    MetricPoint,
    RunView,
    Store,
    copy_in,
    copy_out,
    list_local,
    local_path,
    new_artifact_location,
    staged,
)

# MLflow's log_batch takes at most this many params or tags in one call (MAX_PARAMS_TAGS_PER_BATCH).
_BATCH = 100


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


def _max_page() -> int:
    """The most runs one search_runs call may ask for (MLflow refuses more: 50000 in 3.x)."""
    try:
        from mlflow.store.tracking import SEARCH_MAX_RESULTS_THRESHOLD
    except ImportError:  # pragma: no cover (a future MLflow that moved it)
        return 1000
    return int(SEARCH_MAX_RESULTS_THRESHOLD)


def _literal(value: str) -> str | None:
    """`value` as a string in an MLflow search filter (None when it cannot be written as one: MLflow's filter
    grammar has no escapes, so a value with both kinds of quote cannot be searched for)."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    return None


def _not_found(err: Exception) -> bool:
    return getattr(err, "error_code", None) == "RESOURCE_DOES_NOT_EXIST"


class MlflowStore(Store):
    # Runs asked for in one search_runs call (None: as many as MLflow allows); a test makes it small to see pages.
    page_size: int | None = None

    def __init__(self, uri: str) -> None:
        self.uri = uri
        from mlflow.tracking import MlflowClient

        _quiet_loggers()
        self.client: Any = MlflowClient(tracking_uri=uri)
        self._experiments: dict[str, str] = {}
        # MLflow's client resolves `mlflow-artifacts:` only through a tracking server (http, https).
        self._served = urlparse(uri).scheme in ("http", "https")

    # --- helpers --------------------------------------------------------------------------------------------------

    def _run(self, run_id: str) -> Any:
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException as err:
            if _not_found(err):
                raise KeyError(f"no run {run_id} in {self.uri}") from None
            raise

    def _artifact_dir(self, run_id: str) -> Path | None:
        """The run's artifact folder on this machine, when its artifacts are in one (else None: the client's)."""
        uri = self.artifact_uri(run_id)
        if urlparse(uri).scheme == "mlflow-artifacts" and self._served:
            return None  # the server's to resolve (it may not be mljob's own)
        return local_path(uri)

    def _active_experiment(self, name: str) -> Any | None:
        found = self.client.get_experiment_by_name(name)
        return found if found is not None and found.lifecycle_stage == "active" else None

    def _experiment_ids(self, name: str | None = None) -> list[str]:
        """Active experiments: the one named, or all of them (every page)."""
        if name is not None:
            found = self._active_experiment(name)
            return [found.experiment_id] if found is not None else []
        ids: list[str] = []
        token = None
        while True:
            page = self.client.search_experiments(max_results=1000, page_token=token)
            ids += [e.experiment_id for e in page]
            token = page.token
            if not token:
                return ids

    def _views(self, runs: list[Any]) -> list[RunView]:
        names: dict[str, str] = {}
        views = []
        for run in runs:
            experiment_id = str(run.info.experiment_id)
            if experiment_id not in names:
                experiment = self.client.get_experiment(experiment_id)
                names[experiment_id] = experiment.name if experiment else experiment_id
            views.append(RunView.of(
                run_id=run.info.run_id,
                run_name=run.info.run_name,
                experiment_id=experiment_id,
                experiment=names[experiment_id],
                mlflow_status=run.info.status,
                start_time=run.info.start_time,
                end_time=run.info.end_time,
                artifact_uri=run.info.artifact_uri,
                params=dict(run.data.params),
                metrics=dict(run.data.metrics),
                tags=dict(run.data.tags),
            ))
        return views

    def _search(self, experiment_ids: list[str], query: list[str], limit: int | None) -> list[Any]:
        """Runs of the newest first (MLflow adds the run id as the tie-break), page by page until `limit`."""
        found: list[Any] = []
        token = None
        page_size = self.page_size or _max_page()
        while limit is None or len(found) < limit:
            want = page_size if limit is None else min(page_size, limit - len(found))
            page = self.client.search_runs(experiment_ids, filter_string=" and ".join(query), max_results=want,
                                           order_by=["start_time DESC"], page_token=token)
            found += list(page)
            token = page.token
            if not token:
                break
        return found

    # --- writing ----------------------------------------------------------------------------------------------------

    def artifact_uri(self, run_id: str) -> str:
        return str(self._run(run_id).info.artifact_uri)

    def experiment_id(self, name: str, artifact_root: Path | None) -> str:
        from mlflow.exceptions import MlflowException

        if name in self._experiments:
            return self._experiments[name]
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            if found.lifecycle_stage == "deleted":
                self.client.restore_experiment(found.experiment_id)
            experiment_id = str(found.experiment_id)
        else:
            location = new_artifact_location(artifact_root, name)
            try:
                experiment_id = str(self.client.create_experiment(name, artifact_location=location))
            except MlflowException as err:  # another mljob created it between our look and our write
                if getattr(err, "error_code", None) != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment_id = str(self.client.get_experiment_by_name(name).experiment_id)
        self._experiments[name] = experiment_id
        return experiment_id

    def create_run(self, experiment_id: str, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
        cut = {k: str(v)[:PARAM_LIMIT] for k, v in tags.items()}
        run = self.client.create_run(experiment_id, tags=cut, run_name=name)
        run_id = str(run.info.run_id)
        self._log_params(run_id, params)
        return run_id

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        tags = {STATUS_TAG: status}
        if reason:
            tags[REASON_TAG] = reason
        self.set_tags(run_id, tags)
        if status in TERMINAL:
            self.client.set_terminated(run_id, TERMINAL[status])

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        rows = [RunTag(k, str(v)[:PARAM_LIMIT]) for k, v in tags.items()]
        for i in range(0, len(rows), _BATCH):
            self.client.log_batch(run_id, tags=rows[i:i + _BATCH])

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        rows = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in params.items()]
        for i in range(0, len(rows), _BATCH):
            self.client.log_batch(run_id, params=rows[i:i + _BATCH])

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        # MLflow's params are write-once and it refuses a second value: a key the run has already is left as it is
        # (as history_sqlite does).
        if params:
            have = self._run(run_id).data.params
            self._log_params(run_id, {k: v for k, v in params.items() if k not in have})

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        self.client.log_metric(run_id, key, value, timestamp=timestamp, step=step)

    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None:
        folder = self._artifact_dir(run_id)
        if folder is not None:
            copy_in(folder, local, artifact_path)
            return
        with staged(local, artifact_path) as ready:  # MLflow's client would read through a link in ./outputs
            if ready.is_dir():
                if any(ready.iterdir()):
                    self.client.log_artifacts(run_id, str(ready), artifact_path)
            elif ready.is_file():
                self.client.log_artifact(run_id, str(ready), artifact_path)

    # --- reading ----------------------------------------------------------------------------------------------------

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.get_metric_history(run_id, key)
        except MlflowException as err:
            if _not_found(err):
                return []  # no such run: no values (as history_sqlite)
            raise

        def order(m: Any) -> tuple[int, int, float, bool]:  # the store's order (NaN is stored as 0)
            nan = math.isnan(m.value)
            return m.timestamp, m.step, 0.0 if nan else m.value, nan

        return [MetricPoint(m.value, m.step, m.timestamp) for m in sorted(found, key=order)]

    def get(self, run_id: str) -> RunView:
        return self._views([self._run(run_id)])[0]

    def find(self, name: str) -> RunView | None:
        literal = _literal(name)
        ids = self._experiment_ids()
        if literal is None or not ids:
            return None
        found = self._search(ids, [f"tags.`{NAME_TAG}` = {literal}"], 1)
        return self._views(found)[0] if found else None

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = 1000,
             parent: str | None = None) -> list[RunView]:
        if limit is not None and limit < 1:
            return []
        ids = self._experiment_ids(experiment)
        query = [f"tags.`{NAME_TAG}` LIKE '%'"]  # mljob's runs only: those with a name tag (any value)
        for key, value in ((STATUS_TAG, status), (PARENT_TAG, parent)):
            if value is not None:
                literal = _literal(value)
                if literal is None:
                    return []
                query.append(f"tags.`{key}` = {literal}")
        if not ids:
            return []
        return self._views(self._search(ids, query, limit))

    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]:
        folder = self._artifact_dir(run_id)
        if folder is not None:
            yield from list_local(folder, path)
            return
        yield from self._listed(run_id, path)

    def _listed(self, run_id: str, path: str | None) -> Iterator[tuple[str, int | None]]:
        for entry in self.client.list_artifacts(run_id, path):
            if entry.is_dir:
                yield from self._listed(run_id, entry.path)
            else:
                yield entry.path, entry.file_size

    def download(self, run_id: str, path: str, destination: Path) -> Path:
        destination.mkdir(parents=True, exist_ok=True)
        folder = self._artifact_dir(run_id)
        if folder is not None:
            return copy_out(folder, path, destination, run_id)
        return Path(self.client.download_artifacts(run_id, path, str(destination)))
