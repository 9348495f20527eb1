"""The run history in MLflow's embedded SQLite store, written and read with the standard library's sqlite3.

Why not MLflow's client: importing it and opening the store takes 1.5–3 s, which would be most of the time a short
job takes (`bench/run_overhead.py`). The records are exactly MLflow's: the same tables, the rows its SqlAlchemyStore
writes for create_run / set_tag / log_param / log_metric / set_terminated, and artifacts copied into the run's
`file:` artifact folder as its LocalArtifactRepository does. MLflow itself (the UI, `mlflow.log_metric` in the job)
reads and writes the same file at the same time; SQLite's locking serialises us.

Only a schema this module was written against is used (KNOWN_REVISIONS, checked by a test against the installed
MLflow's migrations); any other revision goes through MLflow's client, which migrates or refuses as it does. The
supported range (pyproject.toml: mlflow>=3.17,<3.18; uv.lock pins one version) has a single tracking-schema revision,
dc11669786a5, shared by every 3.17.x: KNOWN_REVISIONS is exactly that, so every store of the range takes this path.
Both paths keep the same records and give the same views (tests/runner/test_history_contract.py runs one suite on
each); MLJOB_HISTORY_PATH=mlflow (runner/history.py) sends a store of a known revision through MLflow's client too.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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
    run_artifact_uri,
)

# The alembic head of MLflow's tracking schema in every 3.17.x (mlflow>=3.17,<3.18, pyproject.toml). A new MLflow
# with a new head: check its migrations against the statements below, then add the head here (until then stores of
# that revision go through MLflow's client).
KNOWN_REVISIONS = frozenset({"dc11669786a5"})
# What MLflow's SqlAlchemyStore stores for ±inf (SQL has no infinities): the largest finite double.
_MAX_DOUBLE = 1.7976931348623157e308
_WORKSPACE = "default"


def revision(path: Path) -> str | None:
    """The schema revision of an existing store, or None when it is not an MLflow store (or not readable)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _now_ms() -> int:
    return int(time.time() * 1000)


def _stored(value: float) -> tuple[float, int]:
    """(value, is_nan) as MLflow's SqlAlchemyStore stores a metric: NaN as 0 with is_nan set, ±inf as ±max double."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return (_MAX_DOUBLE if value > 0 else -_MAX_DOUBLE), 0
    return float(value), 0


def open_known(uri: str, *, wal: bool) -> SqliteStore | None:
    """The store, when its schema is one this module was written against (else None: MLflow's client must open it).

    `wal`: switch the file to write-ahead logging, once (it is a property of the file). mljob asks for it on its own
    store only: a commit then costs one fsync instead of three (0.4 ms instead of 1.8 ms measured here, and a run
    makes about six), and MLflow logging from the job never waits for a status the runner is writing. A store the
    user named with MLFLOW_TRACKING_URI keeps the journal mode it has.
    """
    store = SqliteStore(uri)
    try:
        row = store.conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        row = None
    if row is None or str(row[0]) not in KNOWN_REVISIONS:
        store.conn.close()
        return None
    if wal:
        try:
            if store.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                # Changing the mode needs the file to itself for a moment: if someone is using it, try next time.
                store.conn.execute("PRAGMA busy_timeout = 200")
                store.conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError:
            pass
        finally:
            store.conn.execute("PRAGMA busy_timeout = 30000")
    return store


class SqliteStore(Store):
    def __init__(self, uri: str) -> None:
        self.uri = uri
        path = local_path(uri)
        assert path is not None
        self.path = path
        # autocommit mode; each write below is one short explicit transaction, so MLflow in the job is never
        # kept waiting on a lock we hold.
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._experiments: dict[str, str] = {}
        self._lock = threading.Lock()
        self._fallback: Store | None = None

    # --- helpers --------------------------------------------------------------------------------------------------

    def _write(self, statements: list[tuple[str, tuple[object, ...]]]) -> None:
        # One connection may be used from several threads (a run's live-log copier, a sweep's driver): the lock keeps
        # one thread's statements out of another's transaction.
        with self._lock:
            cur = self.conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for sql, args in statements:
                    cur.execute(sql, args)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    @staticmethod
    def _tag_rows(run_id: str, tags: dict[str, str]) -> list[tuple[str, tuple[object, ...]]]:
        return [("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?) "
                 "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value",
                 (key, str(value)[:PARAM_LIMIT], run_id)) for key, value in tags.items()]

    def _mlflow(self) -> Store:
        """For artifacts that are not in a local folder (an experiment someone created with s3://…)."""
        if self._fallback is None:
            from mljob.runner.history_mlflow import MlflowStore

            self._fallback = MlflowStore(self.uri)
        return self._fallback

    def _artifact_dir(self, run_id: str) -> Path | None:
        return local_path(self.artifact_uri(run_id))

    # --- writing ----------------------------------------------------------------------------------------------------

    def artifact_uri(self, run_id: str) -> str:
        row = self.conn.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(f"no run {run_id} in {self.uri}")
        return str(row[0])

    def experiment_id(self, name: str, artifact_root: Path | None) -> str:
        if name in self._experiments:
            return self._experiments[name]
        row = self.conn.execute("SELECT experiment_id, lifecycle_stage FROM experiments WHERE name = ? AND "
                                "workspace = ?", (name, _WORKSPACE)).fetchone()
        if row is not None:
            if row[1] == "deleted":
                # As MLflow's restore_experiment: the experiment and its runs are active again.
                self._write([("UPDATE experiments SET lifecycle_stage = 'active', last_update_time = ? "
                              "WHERE experiment_id = ?", (_now_ms(), row[0])),
                             ("UPDATE runs SET lifecycle_stage = 'active', deleted_time = NULL "
                              "WHERE experiment_id = ?", (row[0],))])
            experiment_id = str(row[0])
        else:
            location = new_artifact_location(artifact_root, name)
            now = _now_ms()
            # IntegrityError: another mljob created it between our read and our write.
            with contextlib.suppress(sqlite3.IntegrityError):
                self._write([("INSERT INTO experiments (name, artifact_location, lifecycle_stage, creation_time, "
                              "last_update_time, workspace) VALUES (?, ?, 'active', ?, ?, ?)",
                              (name, location, now, now, _WORKSPACE))])
            found = self.conn.execute("SELECT experiment_id FROM experiments WHERE name = ? AND workspace = ?",
                                      (name, _WORKSPACE)).fetchone()
            experiment_id = str(found[0])
        self._experiments[name] = experiment_id
        return experiment_id

    def create_run(self, experiment_id: str, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
        row = self.conn.execute("SELECT artifact_location FROM experiments WHERE experiment_id = ?",
                                (int(experiment_id),)).fetchone()
        run_id = uuid.uuid4().hex
        artifact_uri = run_artifact_uri(row[0], run_id)
        statements: list[tuple[str, tuple[object, ...]]] = [(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
            "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id, deleted_time) "
            "VALUES (?, ?, 'UNKNOWN', '', '', ?, 'RUNNING', ?, NULL, '', 'active', ?, ?, NULL)",
            (run_id, name, tags.get("mlflow.user", "unknown"), _now_ms(), artifact_uri, int(experiment_id)))]
        statements += self._tag_rows(run_id, {**tags, "mlflow.runName": name})
        statements += [("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", (k, v[:PARAM_LIMIT], run_id))
                       for k, v in params.items()]
        self._write(statements)
        return run_id

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        tags = {STATUS_TAG: status}
        if reason:
            tags[REASON_TAG] = reason
        statements = self._tag_rows(run_id, tags)
        if status in TERMINAL:
            statements.append(("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                               (TERMINAL[status], _now_ms(), run_id)))
        self._write(statements)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        if tags:
            self._write(self._tag_rows(run_id, tags))

    def log_params(self, run_id: str, params: dict[str, str]) -> None:
        # MLflow's params are write-once: a second value for a key is ignored, as MLflow would refuse it.
        if params:
            self._write([("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                          (k, v[:PARAM_LIMIT], run_id)) for k, v in params.items()])

    def log_metric(self, run_id: str, key: str, value: float, step: int = 0, timestamp: int | None = None) -> None:
        now = _now_ms() if timestamp is None else int(timestamp)
        stored, is_nan = _stored(value)
        self._write([
            # The same (key, timestamp, step, value) twice is one record (the table's key), as MLflow keeps it.
            ("INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, ?) "
             "ON CONFLICT DO NOTHING", (key, stored, now, run_id, step, is_nan)),
            # latest_metrics keeps the value with the highest (step, timestamp, value), compared as MLflow's
            # SqlAlchemyStore does (_update_latest_metrics_if_necessary: strictly greater replaces).
            ("INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, ?, ?) "
             "ON CONFLICT (key, run_uuid) DO UPDATE SET value = excluded.value, timestamp = excluded.timestamp, "
             "step = excluded.step, is_nan = excluded.is_nan WHERE (excluded.step, excluded.timestamp, excluded.value) "
             "> (latest_metrics.step, latest_metrics.timestamp, latest_metrics.value)",
             (key, stored, now, step, is_nan, run_id)),
        ])

    def log_artifacts(self, run_id: str, local: Path, artifact_path: str) -> None:
        folder = self._artifact_dir(run_id)
        if folder is None:
            self._mlflow().log_artifacts(run_id, local, artifact_path)
            return
        copy_in(folder, local, artifact_path)

    # --- reading ----------------------------------------------------------------------------------------------------

    def metric_history(self, run_id: str, key: str) -> list[MetricPoint]:
        # MLflow's order (SqlAlchemyStore.get_metric_history): by timestamp, then step, then value.
        rows = self.conn.execute("SELECT value, step, timestamp, is_nan FROM metrics WHERE run_uuid = ? AND "
                                 "key = ? ORDER BY timestamp, step, value, is_nan", (run_id, key)).fetchall()
        return [MetricPoint(float("nan") if nan else float(v), int(s), int(t)) for v, s, t, nan in rows]

    def _views(self, run_ids: list[str]) -> list[RunView]:
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        rows = self.conn.execute(
            "SELECT r.run_uuid, r.name, r.experiment_id, e.name, r.status, r.start_time, r.end_time, r.artifact_uri "
            f"FROM runs r LEFT JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.run_uuid IN ({marks})",
            run_ids).fetchall()
        tags: dict[str, dict[str, str]] = {r: {} for r in run_ids}
        params: dict[str, dict[str, str]] = {r: {} for r in run_ids}
        metrics: dict[str, dict[str, float]] = {r: {} for r in run_ids}
        for key, value, run in self.conn.execute(
                f"SELECT key, value, run_uuid FROM tags WHERE run_uuid IN ({marks})", run_ids):
            tags[run][key] = value
        for key, value, run in self.conn.execute(
                f"SELECT key, value, run_uuid FROM params WHERE run_uuid IN ({marks})", run_ids):
            params[run][key] = value
        for key, value, nan, run in self.conn.execute(
                f"SELECT key, value, is_nan, run_uuid FROM latest_metrics WHERE run_uuid IN ({marks})", run_ids):
            metrics[run][key] = float("nan") if nan else float(value)
        views = {row[0]: RunView.of(
            run_id=row[0], run_name=row[1], experiment_id=str(row[2]), experiment=row[3] or str(row[2]),
            mlflow_status=row[4], start_time=row[5], end_time=row[6], artifact_uri=row[7],
            params=params[row[0]], metrics=metrics[row[0]], tags=tags[row[0]]) for row in rows}
        return [views[r] for r in run_ids if r in views]

    def get(self, run_id: str) -> RunView:
        found = self._views([run_id])
        if not found:
            raise KeyError(f"no run {run_id} in {self.uri}")
        return found[0]

    def find(self, name: str) -> RunView | None:
        row = self.conn.execute(
            "SELECT r.run_uuid FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
            "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE t.key = ? AND t.value = ? "
            "AND r.lifecycle_stage = 'active' AND e.lifecycle_stage = 'active' "
            "ORDER BY r.start_time DESC, r.run_uuid LIMIT 1", (NAME_TAG, name)).fetchone()
        return self.get(row[0]) if row else None

    def runs(self, experiment: str | None = None, status: str | None = None, limit: int | None = 1000,
             parent: str | None = None) -> list[RunView]:
        if limit is not None and limit < 1:
            return []
        sql = ("SELECT r.run_uuid FROM runs r JOIN tags n ON n.run_uuid = r.run_uuid AND n.key = ? "
               "JOIN experiments e ON e.experiment_id = r.experiment_id WHERE r.lifecycle_stage = 'active' "
               "AND e.lifecycle_stage = 'active'")
        args: list[object] = [NAME_TAG]
        if experiment is not None:
            sql += " AND e.name = ?"
            args.append(experiment)
        if status is not None:
            sql += " AND EXISTS (SELECT 1 FROM tags s WHERE s.run_uuid = r.run_uuid AND s.key = ? AND s.value = ?)"
            args += [STATUS_TAG, status]
        if parent is not None:
            sql += " AND EXISTS (SELECT 1 FROM tags p WHERE p.run_uuid = r.run_uuid AND p.key = ? AND p.value = ?)"
            args += [PARENT_TAG, parent]
        # MLflow's order for search_runs(order_by=["start_time DESC"]): start time, newest first, then run id.
        sql += " ORDER BY r.start_time DESC, r.run_uuid LIMIT ?"
        args.append(-1 if limit is None else limit)
        ids = [row[0] for row in self.conn.execute(sql, args)]
        # Views in chunks: SQLite binds at most 32766 variables in one statement.
        return [view for i in range(0, len(ids), 10000) for view in self._views(ids[i:i + 10000])]

    def artifacts(self, run_id: str, path: str | None = None) -> Iterator[tuple[str, int | None]]:
        folder = self._artifact_dir(run_id)
        if folder is None:
            yield from self._mlflow().artifacts(run_id, path)
            return
        yield from list_local(folder, path)

    def download(self, run_id: str, path: str, destination: Path) -> Path:
        folder = self._artifact_dir(run_id)
        if folder is None:
            return self._mlflow().download(run_id, path, destination)
        return copy_out(folder, path, destination, run_id)
