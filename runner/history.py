"""The run history: one MLflow run per job, in MLflow's embedded SQLite store unless MLFLOW_TRACKING_URI says otherwise.

    $MLJOB_HOME/mlflow/mlflow.db     runs, params, metrics, tags (sqlite:///…; MLFLOW_TRACKING_URI overrides it)
    $MLJOB_HOME/mlflow/artifacts/    artifacts of the experiments mljob creates there (outputs, logs, user_logs)

Statuses are Azure ML's names, kept in the tag `mljob.status` (MLflow's own status has no Preparing/Finalizing):
Preparing and Running are MLflow RUNNING; Completed, Failed and Canceled are FINISHED, FAILED and KILLED.

Two stores keep the same records and give the same views (one contract suite runs on both:
tests/runner/test_history_contract.py): a local SQLite file of a known schema is read and written directly
(history_sqlite: milliseconds), anything else through MLflow's client (history_mlflow: seconds to import). A new
SQLite store is created once by MLflow itself, so its schema is exactly MLflow's.

MLJOB_HISTORY_PATH chooses between them:

    auto     (the default) directly when the store is a local SQLite file of a schema revision mljob knows
             (history_sqlite.KNOWN_REVISIONS: every MLflow of the supported range), else MLflow's client
    mlflow   always MLflow's client: the escape hatch if the direct path ever misreads a store, and how the tests
             run everything on the client's path too
    sqlite   always directly; a store that cannot be read so (a server, another database, an unknown revision) is
             an error instead of the client's slower path (for benchmarks and tests that must measure the fast path)

A store that fails while mljob reads or writes it (MLflow's client refuses, a server does not answer, the SQLite file
is locked past the timeout or read-only) is reported as a problem naming the store and what mljob was doing, not as
an internal error.
"""

from __future__ import annotations

import contextlib
import os
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

__all__ = ["HISTORY_PATH", "NAME_TAG", "PARENT_TAG", "REASON_TAG", "STATUS_TAG", "STATUSES", "TERMINAL", "History",
           "MetricPoint", "RunView", "default_store", "local_path", "tracking_uri"]

HISTORY_PATH = "MLJOB_HISTORY_PATH"
_PATHS = ("auto", "mlflow", "sqlite")


def history_path() -> str:
    """Which store implementation to use: MLJOB_HISTORY_PATH (auto, mlflow or sqlite; the module docstring)."""
    value = (os.environ.get(HISTORY_PATH) or "auto").strip().lower()
    if value not in _PATHS:
        from mljob.runner import problems

        raise problems.plain(None, problems.ENGINE, f"{HISTORY_PATH}={value!r} is not one of {', '.join(_PATHS)} "
                             "(auto, the default: MLflow's SQLite store directly when its schema is known, else "
                             "MLflow's client; mlflow: always MLflow's client; sqlite: always directly)")
    return value


def _failure(err: BaseException) -> bool:
    """Whether `err` is the store failing (for the user to see as such), not a bug of mljob's."""
    mlflow_errors = sys.modules.get("mlflow.exceptions")  # loaded with MLflow's client, never imported here for this
    if mlflow_errors is not None and isinstance(err, mlflow_errors.MlflowException):
        return True
    sqlite = sys.modules.get("sqlite3")
    # locked past the timeout, read-only, disk full, not a database: the file's state, not a statement of ours
    return sqlite is not None and isinstance(err, sqlite.OperationalError)


@contextlib.contextmanager
def _reported(uri: str, doing: str) -> Iterator[None]:
    """A store failure while `doing` becomes a problem naming the store (the original is its __cause__); anything
    else (a bug of ours) goes on as it is."""
    try:
        yield
    except Exception as err:
        if not _failure(err):
            raise
        from mljob.runner import problems

        raise problems.plain(None, problems.ENGINE, f"the run history at {uri} failed while {doing}: "
                             f"{type(err).__name__}: {err}") from err


def _mlflow_store(uri: str) -> Store:
    from mljob.runner.history_mlflow import MlflowStore

    try:
        return MlflowStore(uri)
    except Exception as err:  # a server that does not answer, a store of a newer MLflow: the user's to fix
        from mljob.runner import problems

        raise problems.plain(None, problems.ENGINE, f"the run history at {uri} cannot be opened: {err} (set "
                             "MLFLOW_TRACKING_URI to another store, or leave it unset for mljob's own)") from None


def _open(uri: str) -> Store:
    path_choice = history_path()
    path = local_path(uri)
    is_file = path is not None and urlparse(uri).scheme == "sqlite"
    if not is_file and path_choice == "sqlite":
        from mljob.runner import problems

        raise problems.plain(None, problems.ENGINE, f"{HISTORY_PATH}=sqlite, but the run history at {uri} is not a "
                             "local SQLite file (unset it to go through MLflow's client)")
    if not is_file or path_choice == "mlflow":
        if is_file and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        return _mlflow_store(uri)
    from mljob.runner import history_sqlite

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        print(f"creating the run history in {path} (once; MLflow sets up its schema)", file=sys.stderr, flush=True)
        from mljob.runner.history_mlflow import create_store

        with _reported(uri, "creating it"):
            create_store(uri)
    known = history_sqlite.open_known(uri, wal=path == default_store() / "mlflow.db")
    if known is not None:
        return known
    if path_choice == "sqlite":
        from mljob.runner import problems

        raise problems.plain(None, problems.ENGINE, f"{HISTORY_PATH}=sqlite, but the run history at {uri} has schema "
                             f"revision {history_sqlite.revision(path)}, which mljob does not read directly (known: "
                             f"{', '.join(sorted(history_sqlite.KNOWN_REVISIONS))}); unset it to go through "
                             "MLflow's client")
    return _mlflow_store(uri)


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
        """Local folders a job in a container must see, at the same path, to log into its run (none for mljob's own
        store: its jobs log through the tracking server)."""
        from mljob.runner import tracking

        if tracking.is_own_store(self.uri):
            return []
        found: list[Path] = []
        store = local_path(self.uri)
        if store is not None:
            found.append(store.parent if urlparse(self.uri).scheme == "sqlite" else store)
        with _reported(self.uri, f"reading run {run_id}"):
            artifacts = local_path(self.store.artifact_uri(run_id))
        if artifacts is not None:
            found.append(artifacts)
        return found

    # --- writing (a store's failure is a problem naming the store and what was being done: _reported) ----------

    def experiment_id(self, name: str) -> str:
        with _reported(self.uri, f"finding or creating experiment `{name}`"):
            return self.store.experiment_id(name, self.artifact_root())

    def create_run(self, experiment: str, name: str, params: dict[str, str], tags: dict[str, str],
                   parent_run_id: str | None = None) -> RunView:
        experiment_id = self.experiment_id(experiment)
        all_tags = {**tags, NAME_TAG: name, STATUS_TAG: "Preparing"}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        with _reported(self.uri, f"creating the run of `{name}`"):
            return self.store.get(self.store.create_run(experiment_id, name, params, all_tags))

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        with _reported(self.uri, f"setting run {run_id}'s status to {status}"):
            self.store.set_status(run_id, status, reason)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        with _reported(self.uri, f"tagging run {run_id}"):
            self.store.set_tags(run_id, tags)

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        with _reported(self.uri, f"logging params of run {run_id}"):
            self.store.log_params(run_id, params)

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        with _reported(self.uri, f"logging metric `{key}` of run {run_id}"):
            self.store.log_metric(run_id, key, value, step, timestamp)

    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None:
        with _reported(self.uri, f"storing {local} as artifacts `{artifact_path}` of run {run_id}"):
            self.store.log_artifacts(run_id, local, artifact_path)

    # --- reading ------------------------------------------------------------------------------------------------

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        with _reported(self.uri, f"reading metric `{key}` of run {run_id}"):
            return self.store.metric_history(run_id, key)

    def get(self, run_id: str) -> RunView:
        """The run; KeyError when there is no run of that id."""
        with _reported(self.uri, f"reading run {run_id}"):
            return self.store.get(run_id)

    def find(self, name: str) -> RunView | None:
        with _reported(self.uri, f"looking for the run of `{name}`"):
            return self.store.find(name)

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = 1000,
             parent: str | None = None) -> list[RunView]:
        """The newest `limit` runs (None: every one) of mljob, filtered as asked (Store.runs)."""
        with _reported(self.uri, "listing runs"):
            return self.store.runs(experiment, status, limit, parent)

    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]:
        """Every artifact file of a run as (path, size), depth first."""
        with _reported(self.uri, f"listing the artifacts of run {run_id}"):
            yield from self.store.artifacts(run_id, path)

    def download(self, run_id: str, path: str, destination: Path) -> Path:
        destination.mkdir(parents=True, exist_ok=True)
        with _reported(self.uri, f"downloading artifact `{path}` of run {run_id}"):
            return self.store.download(run_id, path, destination)
