"""The direct SQLite store writes exactly what MLflow reads, and reads what MLflow writes (no mocks: MLflow's own
client on the same file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from mljob.runner import history_sqlite
from mljob.runner.history import History

from tests.runner.conftest import Mljob


@pytest.fixture
def store(tmp_path: Path, empty_store: Path) -> str:
    db = tmp_path / "mlflow.db"
    shutil.copyfile(empty_store, db)
    return f"sqlite:///{db}"


def test_known_revision_is_the_installed_mlflow_head() -> None:
    # If this fails after an MLflow upgrade, check the new migrations against history_sqlite's statements and add
    # the new head to KNOWN_REVISIONS (until then mljob falls back to MLflow's client, slow but right).
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    config = _get_alembic_config("sqlite://")
    heads = set(ScriptDirectory.from_config(config).get_heads())
    assert heads <= history_sqlite.KNOWN_REVISIONS


def test_a_known_store_is_written_directly(store: str) -> None:
    assert isinstance(History(store).store, history_sqlite.SqliteStore)


def test_records_written_here_read_by_mlflow(store: str, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    history = History(store)
    view = history.create_run("exp-a", "job_one", {"lr": "0.1"}, {"mljob.kind": "command"})
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "model.txt").write_text("weights")
    history.log_artifacts(view.run_id, tmp_path / "out", "outputs")
    history.log_metric(view.run_id, "best", 0.5)
    history.set_status(view.run_id, "Failed", "the command exited with code 3")

    client = MlflowClient(tracking_uri=store)
    run = client.get_run(view.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "exp-a"
    assert run.info.run_name == "job_one" and run.info.status == "FAILED" and run.info.end_time
    assert run.data.params == {"lr": "0.1"}
    assert run.data.metrics == {"best": 0.5}
    assert run.data.tags["mljob.status"] == "Failed"
    assert run.data.tags["mljob.reason"] == "the command exited with code 3"
    assert run.data.tags["mlflow.runName"] == "job_one"
    assert [a.path for a in client.list_artifacts(view.run_id, "outputs")] == ["outputs/model.txt"]
    found = client.search_runs([run.info.experiment_id], filter_string="tags.`mljob.name` = 'job_one'")
    assert [r.info.run_id for r in found] == [view.run_id]


def test_records_written_by_mlflow_read_here(store: str) -> None:
    from mlflow.tracking import MlflowClient

    history = History(store)
    view = history.create_run("exp-b", "job_two", {}, {})
    client = MlflowClient(tracking_uri=store)
    for value in (3.0, 1.0, 2.0):
        client.log_metric(view.run_id, "loss", value)  # one value per interval, all at step 0
    client.set_tag(view.run_id, "team", "vision")
    assert [p.value for p in history.metric_history(view.run_id, "loss")] == [3.0, 1.0, 2.0]
    again = history.find("job_two")
    assert again is not None and again.tags["team"] == "vision" and again.metrics == {"loss": 2.0}
    assert [v.name for v in history.runs(experiment="exp-b")] == ["job_two"]


def test_child_runs_found_by_parent(store: str) -> None:
    history = History(store)
    parent = history.create_run("exp-c", "sweep_1", {}, {})
    kids = [history.create_run("exp-c", f"sweep_1_{i}", {}, {}, parent_run_id=parent.run_id) for i in range(3)]
    found = history.runs(parent=parent.run_id)
    assert {v.run_id for v in found} == {k.run_id for k in kids}


def test_unknown_revision_goes_through_mlflow(store: str) -> None:
    import sqlite3

    from mljob.runner.problems import RunError

    path = store[len("sqlite:///"):]
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    assert history_sqlite.revision(Path(path)) == "f00dfeedbeef"
    with pytest.raises(RunError, match="cannot be opened: .*out-of-date database schema"):  # MLflow's word
        History(store)


# --- MLJOB_HISTORY_PATH: which store implementation reads and writes -------------------------------------------------


def test_the_path_can_be_forced_either_way(store: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from mljob.runner.history_mlflow import MlflowStore

    monkeypatch.setenv("MLJOB_HISTORY_PATH", "mlflow")
    assert isinstance(History(store).store, MlflowStore)
    fresh = tmp_path / "new" / "place" / "mlflow.db"  # a store that does not exist yet is made by MLflow's client
    made = History(f"sqlite:///{fresh}")
    assert isinstance(made.store, MlflowStore) and made.runs() == [] and history_sqlite.revision(fresh)
    monkeypatch.setenv("MLJOB_HISTORY_PATH", " SQLite ")
    assert isinstance(History(store).store, history_sqlite.SqliteStore)
    monkeypatch.setenv("MLJOB_HISTORY_PATH", "auto")
    assert isinstance(History(store).store, history_sqlite.SqliteStore)


def test_forcing_the_direct_path_on_a_store_it_cannot_read_is_a_problem(store: str,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    from mljob.runner.problems import RunError

    monkeypatch.setenv("MLJOB_HISTORY_PATH", "sqlite")
    with pytest.raises(RunError, match="MLJOB_HISTORY_PATH=sqlite, but the run history at http://.* is not a local"):
        History("http://127.0.0.1:9")
    with sqlite3.connect(store[len("sqlite:///"):]) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeedbeef'")
    with pytest.raises(RunError, match="has schema revision f00dfeedbeef, which mljob does not read directly"):
        History(store)


def test_a_bad_path_setting_is_a_problem_not_an_internal_error(mljob: Mljob, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLJOB_HISTORY_PATH", "fast")
    done = mljob("job", "list")
    assert done.returncode == 1, done.stderr
    assert "error MLJ406: MLJOB_HISTORY_PATH='fast' is not one of auto, mlflow, sqlite" in done.stderr
    assert "internal error" not in done.stderr


def test_the_supported_mlflow_range_has_one_known_revision() -> None:
    # pyproject.toml's range and KNOWN_REVISIONS go together: every MLflow the range allows must be read directly.
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    (spec,) = [Requirement(d).specifier for d in project["project"]["dependencies"] if d.startswith("mlflow")]
    assert spec == SpecifierSet(">=3.17,<3.18"), "a new range: check its schema heads, then KNOWN_REVISIONS and this"
    assert version("mlflow") in spec
    assert {"dc11669786a5"} == history_sqlite.KNOWN_REVISIONS
