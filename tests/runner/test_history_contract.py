"""One suite for both run-history stores (as Optuna tests every storage with one suite): the direct SQLite store
(history_sqlite, the default on a store of a known revision) and MLflow's client (history_mlflow, forced with
MLJOB_HISTORY_PATH=mlflow), each on a fresh copy of mljob's own store. Every Store method is covered, and the last
tests check that the two give identical views of the same records, whichever of them wrote them."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import pytest
from mljob.runner import history_base
from mljob.runner.history import HISTORY_PATH, History
from mljob.runner.history_base import PARAM_LIMIT, RunView, local_path
from mljob.runner.history_mlflow import MlflowStore
from mljob.runner.history_sqlite import SqliteStore
from mljob.runner.problems import RunError

PATHS = {"sqlite": ("auto", SqliteStore), "mlflow": ("mlflow", MlflowStore)}


def _open(path: str, monkeypatch: pytest.MonkeyPatch) -> History:
    setting, kind = PATHS[path]
    monkeypatch.setenv(HISTORY_PATH, setting)
    opened = History()
    assert type(opened.store) is kind
    return opened


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def history(path: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> History:
    """mljob's own store in a fresh MLJOB_HOME, through the path under test."""
    return _open(path, monkeypatch)


@pytest.fixture
def client(home: Path) -> object:
    """MLflow's own client on the same store: the records as MLflow sees them."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{home / 'mlflow' / 'mlflow.db'}")


def _db(home: Path) -> sqlite3.Connection:
    return sqlite3.connect(home / "mlflow" / "mlflow.db", isolation_level=None)


def _child(history: History, name: str, parent: RunView | None = None, experiment: str = "exp") -> RunView:
    return history.create_run(experiment, name, {}, {}, parent_run_id=parent.run_id if parent else None)


# --- experiments ---------------------------------------------------------------------------------------------------


def test_experiment_is_created_once_with_an_artifact_folder_of_its_own(history: History, client: object,
                                                                       home: Path) -> None:
    first = history.experiment_id("exp-new")
    assert history.experiment_id("exp-new") == first
    assert History().experiment_id("exp-new") == first  # a fresh connection finds it (no cache involved)
    experiment = client.get_experiment(first)  # type: ignore[attr-defined]
    assert experiment.name == "exp-new" and experiment.lifecycle_stage == "active"
    # mljob's own store names artifact folders as its tracking server serves them
    assert experiment.artifact_location.startswith("mlflow-artifacts:/exp-new-")
    folder = local_path(experiment.artifact_location)
    assert folder is not None and folder.is_dir() and folder.parent == home / "mlflow" / "artifacts"
    assert history.experiment_id("exp-other") != first


def test_a_deleted_experiment_is_revived_with_its_runs(path: str, history: History, client: object,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    before = history.create_run("exp-gone", "old_job", {}, {})
    client.delete_experiment(before.experiment_id)  # type: ignore[attr-defined]  # as the UI does
    assert client.get_experiment(before.experiment_id).lifecycle_stage == "deleted"  # type: ignore[attr-defined]
    assert client.get_run(before.run_id).info.lifecycle_stage == "deleted"  # type: ignore[attr-defined]
    fresh = _open(path, monkeypatch)  # no cached id: the store itself must find the deleted experiment
    assert fresh.find("old_job") is None and fresh.runs(experiment="exp-gone") == []
    assert fresh.experiment_id("exp-gone") == before.experiment_id
    assert client.get_experiment(before.experiment_id).lifecycle_stage == "active"  # type: ignore[attr-defined]
    # as MLflow's restore_experiment: the experiment's runs come back with it
    assert client.get_run(before.run_id).info.lifecycle_stage == "active"  # type: ignore[attr-defined]
    after = fresh.create_run("exp-gone", "new_job", {}, {})
    assert after.experiment_id == before.experiment_id
    assert {v.name for v in fresh.runs(experiment="exp-gone")} == {"old_job", "new_job"}


# --- runs: creation, status, tags, params ----------------------------------------------------------------------------


def test_create_run_records_params_tags_and_parent(history: History, client: object) -> None:
    parent = history.create_run("exp", "sweep_1", {"lr": "0.1"}, {"mljob.kind": "sweep"})
    view = history.create_run("exp", "sweep_1_0", {"lr": "0.2", "layers": "3"},
                              {"mljob.kind": "command", "mlflow.user": "someone"}, parent_run_id=parent.run_id)
    assert view.name == "sweep_1_0" and view.status == "Preparing" and view.reason == ""
    assert view.experiment == "exp" and view.experiment_id == parent.experiment_id
    assert view.params == {"lr": "0.2", "layers": "3"} and view.metrics == {}
    assert view.tags == {"mljob.kind": "command", "mlflow.user": "someone", "mljob.name": "sweep_1_0",
                         "mljob.status": "Preparing", "mlflow.parentRunId": parent.run_id,
                         "mlflow.runName": "sweep_1_0"}
    assert view.start_time and view.end_time is None
    assert view.artifact_uri.startswith("mlflow-artifacts:/exp-")
    assert view.artifact_uri.endswith(f"/{view.run_id}/artifacts")
    assert history.get(view.run_id) == view
    run = client.get_run(view.run_id)  # type: ignore[attr-defined]
    assert run.info.status == "RUNNING" and run.info.run_name == "sweep_1_0" and run.info.user_id == "someone"
    assert run.info.lifecycle_stage == "active" and run.info.start_time == view.start_time


def test_each_status_maps_to_mlflows(history: History, client: object) -> None:
    for status, mlflow_status in (("Completed", "FINISHED"), ("Failed", "FAILED"), ("Canceled", "KILLED")):
        view = _child(history, f"job_{status}")
        history.set_status(view.run_id, "Running")
        running = history.get(view.run_id)
        assert running.status == "Running" and running.end_time is None
        assert client.get_run(view.run_id).info.status == "RUNNING"  # type: ignore[attr-defined]
        history.set_status(view.run_id, status, f"because {status}")
        done = history.get(view.run_id)
        assert done.status == status and done.reason == f"because {status}"
        assert done.end_time is not None and done.end_time >= (done.start_time or 0)
        run = client.get_run(view.run_id)  # type: ignore[attr-defined]
        assert run.info.status == mlflow_status and run.info.end_time == done.end_time
    finishing = _child(history, "job_finalizing")
    history.set_status(finishing.run_id, "Finalizing")
    assert history.get(finishing.run_id).status == "Finalizing" and history.get(finishing.run_id).end_time is None
    assert "mljob.reason" not in history.get(finishing.run_id).tags


def test_status_without_the_tag_is_mlflows(history: History, client: object) -> None:
    view = _child(history, "plain")
    client.delete_tag(view.run_id, "mljob.status")  # type: ignore[attr-defined]
    client.set_terminated(view.run_id, "KILLED")  # type: ignore[attr-defined]
    assert history.get(view.run_id).status == "Canceled"


def test_tags_are_set_and_overwritten_and_long_values_cut(history: History) -> None:
    view = _child(history, "tagged")
    history.set_tags(view.run_id, {"team": "vision", "note": "x" * (PARAM_LIMIT + 500)})
    history.set_tags(view.run_id, {"team": "audio"})
    history.set_tags(view.run_id, {})
    many = {f"k{i}": str(i) for i in range(150)}  # more than one of MLflow's batches (100)
    history.set_tags(view.run_id, many)
    tags = history.get(view.run_id).tags
    assert tags["team"] == "audio" and tags["note"] == "x" * PARAM_LIMIT
    assert all(tags[k] == v for k, v in many.items())


def test_params_are_write_once_and_cut_at_the_limit(history: History) -> None:
    view = history.create_run("exp", "params", {"command": "y" * (PARAM_LIMIT + 1), "lr": "0.1"}, {})
    history.log_params(view.run_id, {"lr": "0.9", "epochs": "5"})  # lr keeps its first value, as MLflow's params do
    history.log_params(view.run_id, {})
    many = {f"p{i}": str(i) for i in range(150)}
    history.log_params(view.run_id, many)
    params = history.get(view.run_id).params
    assert params["command"] == "y" * PARAM_LIMIT and params["lr"] == "0.1" and params["epochs"] == "5"
    assert len(params) == 3 + 150


# --- metrics -------------------------------------------------------------------------------------------------------


def test_metric_steps_beyond_zero_follow_mlflows_rule(history: History, client: object) -> None:
    view = _child(history, "curve")
    run = view.run_id
    t = 1_700_000_000_000
    for step in (2, 4, 0, 3, 1):  # out of order, all at one timestamp
        history.log_metric(run, "loss", float(10 * step), step=step, timestamp=t)
    # the latest value is the highest step's, whatever order the steps came in
    assert history.get(run).metrics["loss"] == 40.0
    assert [(p.step, p.value) for p in history.metric_history(run, "loss")] == [(s, 10.0 * s) for s in range(5)]
    # a later timestamp at a lower step does not replace it
    history.log_metric(run, "loss", -1.0, step=1, timestamp=t + 1000)
    assert history.get(run).metrics["loss"] == 40.0
    # at the same step, the later timestamp wins, even with a smaller value
    history.log_metric(run, "loss", 5.0, step=4, timestamp=t + 2000)
    assert history.get(run).metrics["loss"] == 5.0
    # same step and timestamp: the largest value (MLflow compares step, then timestamp, then value)
    for value in (1.0, 3.0, 2.0):
        history.log_metric(run, "loss", value, step=9, timestamp=t + 3000)
    assert history.get(run).metrics["loss"] == 3.0
    # an earlier timestamp at a higher step still wins: step comes first
    history.log_metric(run, "loss", 7.0, step=10, timestamp=t - 5000)
    assert history.get(run).metrics["loss"] == 7.0
    # the history: MLflow's order, by timestamp, then step, then value
    points = [(p.timestamp - t, p.step, p.value) for p in history.metric_history(run, "loss")]
    assert points == [(-5000, 10, 7.0), *((0, s, 10.0 * s) for s in range(5)), (1000, 1, -1.0), (2000, 4, 5.0),
                      (3000, 9, 1.0), (3000, 9, 2.0), (3000, 9, 3.0)]
    # MLflow's own client reads the same latest value
    assert client.get_run(run).data.metrics["loss"] == 7.0  # type: ignore[attr-defined]


def test_metric_logged_now_without_a_step(history: History) -> None:
    view = _child(history, "plain_metric")
    for value in (3.0, 1.0, 2.0):
        history.log_metric(view.run_id, "acc", value)
    points = history.metric_history(view.run_id, "acc")
    assert sorted(p.value for p in points) == [1.0, 2.0, 3.0] and all(p.step == 0 for p in points)
    assert all(p.timestamp > 1_600_000_000_000 for p in points)
    latest = max(points, key=lambda p: (p.step, p.timestamp, p.value))
    assert history.get(view.run_id).metrics == {"acc": latest.value}
    assert history.metric_history(view.run_id, "nothing") == []
    assert history.metric_history("0" * 32, "acc") == []


def test_odd_metric_values_are_kept_as_mlflow_keeps_them(history: History) -> None:
    view = _child(history, "odd")
    t = 1_700_000_000_000
    history.log_metric(view.run_id, "x", 1.0, step=0, timestamp=t)
    history.log_metric(view.run_id, "x", 1.0, step=0, timestamp=t)  # the same point twice is one point
    history.log_metric(view.run_id, "x", float("inf"), step=1, timestamp=t)
    history.log_metric(view.run_id, "x", float("nan"), step=2, timestamp=t)
    history.log_metric(view.run_id, "y", float("-inf"), step=0, timestamp=t)
    values = [p.value for p in history.metric_history(view.run_id, "x")]
    assert values[:2] == [1.0, 1.7976931348623157e308] and math.isnan(values[2]) and len(values) == 3
    metrics = history.get(view.run_id).metrics
    assert math.isnan(metrics["x"]) and metrics["y"] == -1.7976931348623157e308


# --- artifacts ------------------------------------------------------------------------------------------------------


def test_artifacts_are_copied_listed_and_downloaded(history: History, tmp_path: Path, home: Path) -> None:
    view = _child(history, "files")
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "model.txt").write_text("weights")
    (out / "sub" / "b.csv").write_text("a,b\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "std_log.txt").write_text("hello\n")
    history.log_artifacts(view.run_id, out, "outputs")
    history.log_artifacts(view.run_id, tmp_path / "empty", "nothing")
    history.log_artifacts(view.run_id, tmp_path / "std_log.txt", "user_logs")
    history.log_artifacts(view.run_id, tmp_path / "missing", "gone")
    assert list(history.artifacts(view.run_id)) == [("outputs/model.txt", 7), ("outputs/sub/b.csv", 4),
                                                    ("user_logs/std_log.txt", 6)]
    assert list(history.artifacts(view.run_id, "outputs/sub")) == [("outputs/sub/b.csv", 4)]
    assert list(history.artifacts(view.run_id, "nothing")) == []
    # in mljob's own store they are files under $MLJOB_HOME/mlflow/artifacts, where its tracking server serves them
    folder = local_path(history.get(view.run_id).artifact_uri)
    assert folder is not None and folder.is_relative_to(home / "mlflow" / "artifacts")
    assert (folder / "outputs" / "model.txt").read_text() == "weights"
    got = history.download(view.run_id, "outputs", tmp_path / "dl")
    assert got == tmp_path / "dl" / "outputs" and (got / "sub" / "b.csv").read_text() == "a,b\n"
    one = history.download(view.run_id, "user_logs/std_log.txt", tmp_path / "dl2")
    assert one == tmp_path / "dl2" / "user_logs" / "std_log.txt" and one.read_text() == "hello\n"
    with pytest.raises(FileNotFoundError):
        history.download(view.run_id, "no/such/file", tmp_path / "dl3")
    assert history.store.artifact_uri(view.run_id) == view.artifact_uri


def test_artifacts_of_a_file_location(history: History, client: object, tmp_path: Path) -> None:
    # an experiment someone made with a plain folder as its artifact location (as before the tracking server)
    place = tmp_path / "elsewhere"
    client.create_experiment("exp-file", artifact_location=place.as_uri())  # type: ignore[attr-defined]
    view = history.create_run("exp-file", "in_a_folder", {}, {})
    assert view.artifact_uri == f"{place.as_uri()}/{view.run_id}/artifacts"
    (tmp_path / "f.txt").write_text("12345")
    history.log_artifacts(view.run_id, tmp_path / "f.txt", "outputs")
    assert list(history.artifacts(view.run_id)) == [("outputs/f.txt", 5)]
    assert (place / view.run_id / "artifacts" / "outputs" / "f.txt").is_file()
    listed = client.list_artifacts(view.run_id, "outputs")  # type: ignore[attr-defined]
    assert [a.path for a in listed] == ["outputs/f.txt"]


# --- reading: get, find, runs ----------------------------------------------------------------------------------------


def test_get_of_an_unknown_run_is_a_key_error(history: History) -> None:
    with pytest.raises(KeyError):
        history.get("0" * 32)


def test_find_the_newest_active_run_of_a_name(history: History, client: object, home: Path) -> None:
    assert history.find("nobody") is None
    first = _child(history, "again")
    second = _child(history, "again", experiment="exp-2")
    with _db(home) as db:
        db.execute("UPDATE runs SET start_time = start_time + 1000 WHERE run_uuid = ?", (second.run_id,))
    assert history.find("again").run_id == second.run_id  # type: ignore[union-attr]
    client.delete_run(second.run_id)  # type: ignore[attr-defined]
    assert history.find("again").run_id == first.run_id  # type: ignore[union-attr]
    assert history.find("it's \"odd\"") is None  # a name no filter can quote is simply not there


def test_runs_filters_orders_and_limits(path: str, history: History, client: object, home: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MlflowStore, "page_size", 3)  # several pages of search_runs on the client's path
    sweep = _child(history, "sweep")
    kids = [_child(history, f"sweep_{i}", sweep) for i in range(10)]
    other = _child(history, "other", experiment="exp-b")
    for kid in kids[:4]:
        history.set_status(kid.run_id, "Completed")
    history.set_status(kids[4].run_id, "Failed")
    unnamed = client.create_run(sweep.experiment_id)  # type: ignore[attr-defined]  # not mljob's: no name tag
    client.set_tag(unnamed.info.run_id, "mlflow.parentRunId", sweep.run_id)  # type: ignore[attr-defined]
    client.set_tag(unnamed.info.run_id, "mljob.status", "Completed")  # type: ignore[attr-defined]
    deleted = _child(history, "sweep_deleted", sweep)
    client.delete_run(deleted.run_id)  # type: ignore[attr-defined]
    # start times: the newest first; kids 3..7 at one time, so the run id decides among them (as MLflow orders)
    every = [sweep, *kids, other]
    with _db(home) as db:
        for i, view in enumerate(every):
            db.execute("UPDATE runs SET start_time = ? WHERE run_uuid = ?", (1_000_000 + 10 * i, view.run_id))
        for kid in kids[3:8]:
            db.execute("UPDATE runs SET start_time = 1000050 WHERE run_uuid = ?", (kid.run_id,))
        db.execute("UPDATE runs SET start_time = 9000000 WHERE run_uuid = ?", (unnamed.info.run_id,))
    start = {v.run_id: (1_000_050 if v in kids[3:8] else 1_000_000 + 10 * i) for i, v in enumerate(every)}
    newest = sorted(start, key=lambda r: (-start[r], r))

    def ids(views: list[RunView]) -> list[str]:
        return [v.run_id for v in views]

    assert ids(history.runs()) == newest
    assert ids(history.runs(limit=None)) == newest
    assert ids(history.runs(limit=100000)) == newest  # more than one search_runs call may ask for
    assert ids(history.runs(limit=7)) == newest[:7]
    assert ids(history.runs(limit=1)) == newest[:1]
    assert history.runs(limit=0) == []
    assert ids(history.runs(parent=sweep.run_id, limit=None)) == [r for r in newest if r in {k.run_id for k in kids}]
    assert ids(history.runs(parent=sweep.run_id, limit=4)) == [r for r in newest if r in {k.run_id for k in kids}][:4]
    assert ids(history.runs(status="Completed")) == [r for r in newest if r in {k.run_id for k in kids[:4]}]
    assert ids(history.runs(status="Failed", parent=sweep.run_id)) == [kids[4].run_id]
    assert ids(history.runs(status="Preparing", experiment="exp-b")) == [other.run_id]
    assert ids(history.runs(experiment="exp-b")) == [other.run_id]
    assert ids(history.runs(experiment="exp", limit=None)) == [r for r in newest if r != other.run_id]
    assert history.runs(experiment="no-such-experiment") == []
    assert history.runs(parent="0" * 32) == []
    assert history.runs(status="it's \"odd\"") == []
    views = history.runs(parent=sweep.run_id, limit=None)
    assert all(v.experiment == "exp" and v.tags["mlflow.parentRunId"] == sweep.run_id for v in views)
    assert {v.run_id: v for v in views} == {k.run_id: history.get(k.run_id) for k in kids}


# --- failures are the user's problems, not internal errors ---------------------------------------------------------


def test_a_store_failure_is_a_problem_naming_the_store(path: str, history: History, client: object,
                                                       home: Path) -> None:
    view = _child(history, "busy")
    if path == "mlflow":
        client.delete_run(view.run_id)  # type: ignore[attr-defined]
        with pytest.raises(RunError, match=r"error MLJ406: the run history at sqlite:///.* failed while logging "
                                           r"metric `m` of run .*MlflowException"):
            history.log_metric(view.run_id, "m", 1.0)
        return
    locker = _db(home)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        history.store.conn.execute("PRAGMA busy_timeout = 50")  # type: ignore[attr-defined]
        with pytest.raises(RunError, match=r"error MLJ406: the run history at sqlite:///.* failed while tagging run "
                                           r".*OperationalError: database is locked"):
            history.set_tags(view.run_id, {"a": "b"})
    finally:
        locker.execute("ROLLBACK")
        locker.close()


def test_a_bug_is_not_dressed_as_a_store_failure(history: History) -> None:
    view = _child(history, "buggy")
    with pytest.raises(AttributeError):  # a caller's bug: a str where a Path belongs
        history.log_artifacts(view.run_id, "out", "outputs")  # type: ignore[arg-type]


# --- both paths, one set of records ---------------------------------------------------------------------------------


def _scenario(history: History, prefix: str, tmp_path: Path) -> None:
    sweep = history.create_run(f"exp-{prefix}", f"{prefix}_sweep", {"data": "/d"}, {"mljob.kind": "sweep"})
    t = 1_700_000_000_000
    for i in range(3):
        kid = history.create_run(f"exp-{prefix}", f"{prefix}_sweep_{i}", {"x": str(i)}, {"mljob.trial": str(i)},
                                 parent_run_id=sweep.run_id)
        history.set_status(kid.run_id, "Running")
        for step in (1, 0, 2):
            history.log_metric(kid.run_id, "loss", step + i / 10, step=step, timestamp=t + i)
        history.log_params(kid.run_id, {"late": "yes", "x": "ignored"})
        (tmp_path / prefix / str(i)).mkdir(parents=True)
        (tmp_path / prefix / str(i) / "out.txt").write_text("o" * (i + 1))
        history.log_artifacts(kid.run_id, tmp_path / prefix / str(i), "outputs")
        history.set_status(kid.run_id, ("Completed", "Failed", "Canceled")[i], f"reason {i}" if i else None)
    history.set_tags(sweep.run_id, {"mljob.sweep.best_trial": f"{prefix}_sweep_0"})
    history.log_metric(sweep.run_id, "loss", 0.0, timestamp=t)
    history.set_status(sweep.run_id, "Completed")


def _everything(history: History) -> list[tuple[RunView, list[tuple[float, int, int]], list[tuple[str, int | None]]]]:
    return [(view, [(p.value, p.step, p.timestamp) for p in history.metric_history(view.run_id, "loss")],
             list(history.artifacts(view.run_id))) for view in history.runs(limit=None)]


@pytest.mark.parametrize("writer", list(PATHS))
def test_both_paths_read_the_same_records(writer: str, home: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _scenario(_open(writer, monkeypatch), "w", tmp_path)
    seen = {reader: _everything(_open(reader, monkeypatch)) for reader in PATHS}
    assert len(seen["sqlite"]) == 4
    assert seen["sqlite"] == seen["mlflow"]
    sqlite_view, mlflow_view = (_open(p, monkeypatch) for p in PATHS)
    name = "w_sweep_1"
    assert sqlite_view.find(name) == mlflow_view.find(name)
    run_id = sqlite_view.find(name).run_id  # type: ignore[union-attr]
    assert sqlite_view.get(run_id) == mlflow_view.get(run_id)


def _normal(history: History, prefix: str) -> list[tuple[object, ...]]:
    """What the scenario wrote, without what differs by nature (ids, times, the prefix)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=history.uri)
    names = {v.run_id: v.name for v in history.runs(limit=None)}
    found = []
    for view, curve, files in _everything(history):
        if not view.name.startswith(prefix):
            continue
        info = client.get_run(view.run_id).info
        tags = {k: (names.get(v, v) if k == "mlflow.parentRunId" else v).replace(prefix, "P")
                for k, v in view.tags.items()}
        found.append((view.name.replace(prefix, "P"), view.experiment.replace(prefix, "P"), view.status, view.params,
                      view.metrics, tags, view.end_time is not None, info.status, info.user_id, info.lifecycle_stage,
                      info.run_name.replace(prefix, "P"), [(v, s, ts) for v, s, ts in curve], files,
                      view.artifact_uri.startswith(history_base.ARTIFACTS_SCHEME)))
    return sorted(found, key=lambda row: str(row[0]))


def test_both_paths_write_the_same_records(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for path in PATHS:
        _scenario(_open(path, monkeypatch), path, tmp_path)
    reader = _open("sqlite", monkeypatch)
    written = {path: _normal(reader, path) for path in PATHS}
    assert len(written["sqlite"]) == 4
    assert written["sqlite"] == written["mlflow"]
