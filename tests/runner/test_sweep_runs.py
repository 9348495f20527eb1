"""Sweep jobs end to end: the real CLI, real trial processes (and containers) logging with MLflow into the real
SQLite store, Optuna's study in SQLite beside it."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import optuna
import pytest
from mljob.runner.history_base import local_path

from tests.runner.conftest import CORPUS, Mljob
from tests.runner.helpers import history, wait_for

# A trial script of our own for the corpus' hello-sweep.yml: the metric is a known function of the values, so the
# right best trial can be checked against every trial's params.
HELLO_SWEEP = """\
import argparse
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--A", type=float)
p.add_argument("--B")
p.add_argument("--C", type=float)
a = p.parse_args()
value = abs(a.C - 0.3) + {"hello": 0.0, "world": 0.5, "hello_world": 1.0}[a.B] + a.A
mlflow.log_metric("random_metric", value)
print("B", a.B, "C", a.C, "->", value)
"""

# Logs `loss` once per interval; `--bad` trials are slow and worse (early termination has something to cancel).
CURVE = """\
import argparse, time
import mlflow
p = argparse.ArgumentParser()
p.add_argument("--kind")
p.add_argument("--steps", type=int, default=6)
a = p.parse_args()
for step in range(a.steps):
    if a.kind == "bad":
        time.sleep(1.0)
    mlflow.log_metric("loss", (10.0 if a.kind == "bad" else 1.0) + 1.0 / (step + 1))
print("done", a.kind)
"""


def _sweep_file(tmp_path: Path, body: str, script: str, name: str = "train.py") -> Path:
    folder = tmp_path / "sweep"
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / name).write_text(script)
    path = folder / "sweep.yml"
    path.write_text("$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
                    + textwrap.dedent(body))
    return path


def _hello_sweep(tmp_path: Path) -> Path:
    folder = tmp_path / "basics"
    shutil.copytree(CORPUS / "azureml-examples" / "basics", folder, ignore=shutil.ignore_patterns("*.yml"))
    shutil.copy(CORPUS / "azureml-examples" / "basics" / "hello-sweep.yml", folder)
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "hello-sweep.py").write_text(HELLO_SWEEP)
    return folder / "hello-sweep.yml"


def _expected(view_params: dict[str, str]) -> float:
    return abs(float(view_params["C"]) - 0.3) + {"hello": 0.0, "world": 0.5, "hello_world": 1.0}[view_params["B"]] \
        + float(view_params["A"])


def _trials(name: str) -> list:
    sweep = history().find(name)
    assert sweep is not None
    return history().runs(parent=sweep.run_id)


def _check_best(name: str, metric: str) -> None:
    sweep = history().find(name)
    assert sweep is not None and sweep.status == "Completed", sweep and sweep.reason
    trials = [t for t in _trials(name) if t.tags.get("mljob.interrupted") != "true"]
    scored = [t for t in trials if metric in t.metrics]
    best = min(scored, key=lambda t: t.metrics[metric])
    assert sweep.tags["mljob.sweep.best_trial"] == best.name
    assert sweep.metrics[metric] == best.metrics[metric]
    for key, value in best.params.items():
        if key in ("B", "C"):
            assert sweep.params[f"best.{key}"] == value


def test_corpus_hello_sweep_finds_the_right_best_trial(mljob: Mljob, tmp_path: Path) -> None:
    done = mljob("run", str(_hello_sweep(tmp_path)), "--set", "compute=process", "--name", "hello_sweep_p")
    assert done.returncode == 0, done.stdout + done.stderr
    trials = _trials("hello_sweep_p")
    assert len(trials) == 4 and all(t.status == "Completed" for t in trials)
    for trial in trials:  # each trial ran with its own sampled values, passed on the command line
        assert trial.params["A"] == "0.5" and trial.params["B"] in ("hello", "world", "hello_world")
        assert 0.1 <= float(trial.params["C"]) <= 1.0
        assert trial.metrics["random_metric"] == pytest.approx(_expected(trial.params))
        assert trial.tags["mlflow.parentRunId"] == history().find("hello_sweep_p").run_id
    _check_best("hello_sweep_p", "random_metric")
    assert "Best trial: hello_sweep_p_" in done.stdout and "trial  name" in done.stdout
    shown = mljob("job", "show", "-n", "hello_sweep_p")
    assert "best trial: hello_sweep_p_" in shown.stdout and "sweep/metric_by_trial.svg" in shown.stdout
    svg = local_path(history().find("hello_sweep_p").artifact_uri) / "sweep/metric_by_trial.svg"
    assert svg.read_text().count("<circle") == 4
    got = mljob("job", "download", "-n", "hello_sweep_p", "-p", str(tmp_path / "dl"))
    assert got.returncode == 0 and (tmp_path / "dl/artifacts/user_logs/std_log.txt").is_file()
    best = history().find("hello_sweep_p").tags["mljob.sweep.best_trial"]
    assert "-> " in (tmp_path / "dl/artifacts/user_logs/std_log.txt").read_text() and best in got.stderr


def test_corpus_hello_sweep_in_docker(mljob: Mljob, tmp_path: Path, engine: object, no_leftovers: None) -> None:
    done = mljob("run", str(_hello_sweep(tmp_path)), "--name", "hello_sweep_d")
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(t.tags["mljob.compute"] == "local" for t in _trials("hello_sweep_d"))
    _check_best("hello_sweep_d", "random_metric")


def test_seed_2021_sweep_with_local_data(mljob: Mljob, tmp_path: Path) -> None:
    folder = tmp_path / "iris"
    folder.mkdir()
    for name in ("job-sweep.yml", "environment.yml"):
        shutil.copy(CORPUS / "seed-2021/train/lightgbm/iris" / name, folder)
    (folder / "src").mkdir()
    (folder / "iris.csv").write_text("sepal_length,species\n5.1,setosa\n7.0,versicolor\n6.3,virginica\n")
    (folder / "src" / "main.py").write_text(textwrap.dedent("""\
        import argparse, math
        import mlflow
        p = argparse.ArgumentParser()
        p.add_argument("--iris-csv")
        p.add_argument("--learning-rate", type=float)
        p.add_argument("--boosting")
        a = p.parse_args()
        rows = open(a.iris_csv).read().splitlines()[1:]
        loss = (a.learning_rate - 0.2) ** 2 + (0.1 if a.boosting == "dart" else 0.0) + 0.01 * len(rows)
        mlflow.log_metric("test-multi_logloss", loss)
    """))
    done = mljob("run", str(folder / "job-sweep.yml"), "--name", "seed_sweep", "--set", "compute=process",
                 "--set", f"inputs.iris.path={folder / 'iris.csv'}", "--set", "max_total_trials=4",
                 "--set", "max_concurrent_trials=2")  # the 2021 file's own (top-level) keys
    assert done.returncode == 0, done.stdout + done.stderr
    trials = _trials("seed_sweep")
    assert len(trials) == 4
    for trial in trials:
        expected = (float(trial.params["learning_rate"]) - 0.2) ** 2 + (0.1 if trial.params["boosting"] == "dart"
                                                                         else 0) + 0.03
        assert trial.metrics["test-multi_logloss"] == pytest.approx(expected)
    _check_best("seed_sweep", "test-multi_logloss")
    assert history().find("seed_sweep").experiment == "lightgbm-iris-sweep-example"


def test_grid_runs_every_point_once_and_limits_hold(mljob: Mljob, tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: python train.py --kind ${{search_space.kind}} --steps ${{search_space.steps}}
          code: src
          environment: {image: python:3.11}
        sampling_algorithm: grid
        search_space:
          kind: {type: choice, values: [good, ok, fine]}
          steps: {type: choice, values: [1, 2]}
        objective: {goal: minimize, primary_metric: loss}
        limits: {max_total_trials: 100, max_concurrent_trials: 2}
    """, CURVE)
    done = mljob("run", str(path), "--set", "compute=process", "--name", "grid_sweep")
    assert done.returncode == 0, done.stdout + done.stderr
    trials = _trials("grid_sweep")
    assert sorted((t.params["kind"], t.params["steps"]) for t in trials) == sorted(
        (k, s) for k in ("good", "ok", "fine") for s in ("1", "2"))  # capped at the grid: 6, not 100
    spans = sorted((t.start_time, t.end_time) for t in trials)
    for start, _ in spans:  # never more than max_concurrent_trials running at once
        assert sum(1 for s, e in spans if s <= start < e) <= 2


def test_a_trial_that_never_logs_the_metric_is_named_and_no_best_is_made_up(mljob: Mljob, tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: python train.py --x ${{search_space.x}}
          code: src
          environment: {image: python:3.11}
        sampling_algorithm: random
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
        objective: {goal: maximize, primary_metric: accuracy}
        limits: {max_total_trials: 2, max_concurrent_trials: 2}
    """, "import mlflow\nmlflow.log_metric('acc', 0.5)\n")
    done = mljob("run", str(path), "--set", "compute=process", "--name", "no_metric")
    assert done.returncode == 1, done.stdout
    sweep = history().find("no_metric")
    assert sweep.status == "Failed"
    assert "none of the 2 completed trials logged `accuracy`" in sweep.reason
    assert "mljob.sweep.best_trial" not in sweep.tags
    assert all(t.tags.get("mljob.sweep.no_metric") == "true" for t in _trials("no_metric"))
    assert "Completed (no metric)" in done.stdout


def test_bandit_cancels_the_bad_trial_while_it_runs(mljob: Mljob, tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: python train.py --kind ${{search_space.kind}}
          code: src
          environment: {image: python:3.11}
        sampling_algorithm: grid
        search_space:
          kind: {type: choice, values: [good, bad]}
        objective: {goal: minimize, primary_metric: loss}
        early_termination: {type: bandit, slack_factor: 0.5, evaluation_interval: 1, delay_evaluation: 1}
        limits: {max_total_trials: 2, max_concurrent_trials: 2}
    """, CURVE)
    done = mljob("run", str(path), "--set", "compute=process", "--name", "bandit_sweep")
    assert done.returncode == 0, done.stdout + done.stderr
    by_kind = {t.params["kind"]: t for t in _trials("bandit_sweep")}
    assert by_kind["good"].status == "Completed"
    bad = by_kind["bad"]
    assert bad.status == "Canceled" and re.search(r"terminated early at interval [1-5]: bandit", bad.reason)
    assert len(history().metric_history(bad.run_id, "loss")) < 6  # stopped before it ended by itself
    assert "Canceled (early termination)" in done.stdout
    study = optuna.load_study(study_name="bandit_sweep", storage=_storage())
    states = sorted(t.state.name for t in study.trials)
    assert states == ["COMPLETE", "PRUNED"]


def _storage() -> str:
    return f"sqlite:///{Path(os.environ['MLJOB_HOME']) / 'mlflow' / 'optuna.db'}"


def test_trial_timeout_and_sweep_timeout(mljob: Mljob, tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: sleep ${{search_space.t}}
          environment: {image: python:3.11}
        sampling_algorithm: grid
        search_space:
          t: {type: choice, values: [30]}
        objective: {goal: minimize, primary_metric: loss}
        limits: {max_total_trials: 1, trial_timeout: 1}
    """, "")
    done = mljob("run", str(path), "--set", "compute=process", "--name", "trial_timeout")
    assert done.returncode == 1
    (trial,) = _trials("trial_timeout")
    assert trial.status == "Failed" and "limits.timeout" in trial.reason
    done = mljob("run", str(path), "--set", "compute=process", "--name", "sweep_timeout",
                 "--set", "limits.trial_timeout=600", "--set", "limits.timeout=2")
    sweep = history().find("sweep_timeout")
    assert done.returncode == 130 and sweep.status == "Canceled" and "limits.timeout" in sweep.reason
    (trial,) = _trials("sweep_timeout")
    assert trial.status == "Canceled"


def test_resume_after_the_driver_is_killed(home: Path, tmp_path: Path) -> None:
    path = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: python train.py --x ${{search_space.x}}
          code: src
          environment: {image: python:3.11}
        sampling_algorithm: {type: random, seed: 7}
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
        objective: {goal: minimize, primary_metric: loss}
        limits: {max_total_trials: 6, max_concurrent_trials: 2}
    """, "import sys, time, mlflow\ntime.sleep(2)\nmlflow.log_metric('loss', float(sys.argv[2]))\n")
    driver = subprocess.Popen([sys.executable, "-m", "mljob", "run", str(path), "--set", "compute=process",
                               "--name", "killed_sweep"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env=dict(os.environ))

    def some_done() -> bool:
        view = history().find("killed_sweep")
        return view is not None and sum(t.status == "Completed" for t in history().runs(parent=view.run_id)) >= 2

    wait_for(some_done, timeout=120, what="two trials completed")
    wait_for(lambda: sum(t.status == "Running" for t in _trials("killed_sweep")) >= 1, timeout=60,
             what="a trial running")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = {t.run_id: t for t in _trials("killed_sweep")}
    resumed = subprocess.run([sys.executable, "-m", "mljob", "job", "resume", "-n", "killed_sweep", "--stream"],
                             capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "running it again with the same values" in resumed.stdout
    trials = _trials("killed_sweep")
    interrupted = [t for t in trials if t.tags.get("mljob.interrupted") == "true"]
    assert interrupted, "the kill interrupted at least one trial"
    counted = [t for t in trials if t.tags.get("mljob.interrupted") != "true"]
    numbers = sorted(int(t.tags["mljob.trial"]) for t in counted)
    assert numbers == list(range(6))  # max_total_trials held: no trial lost, none added, none run twice
    assert all(t.status == "Completed" for t in counted)
    for lost in interrupted:  # each interrupted trial ran again with the same values under its number
        again = [t for t in counted if t.tags["mljob.trial"] == lost.tags["mljob.trial"]]
        assert len(again) == 1 and again[0].params["x"] == lost.params["x"] and again[0].name.endswith("_r1")
    for view in before.values():  # what had completed before the kill was not run again
        if view.status == "Completed":
            assert sum(t.tags["mljob.trial"] == view.tags["mljob.trial"] for t in counted) == 1
    study = optuna.load_study(study_name="killed_sweep", storage=_storage())
    assert len(study.trials) == 6 and all(t.state.name == "COMPLETE" for t in study.trials)


def test_an_environment_that_cannot_run_fails_the_sweep_once(mljob: Mljob, tmp_path: Path, engine: object) -> None:
    path = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: python train.py
          code: src
          environment: {image: example.org/team/missing:1}
        sampling_algorithm: random
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
        objective: {goal: minimize, primary_metric: loss}
        limits: {max_total_trials: 5, max_concurrent_trials: 2}
    """, "")
    done = mljob("run", str(path), "--name", "no_image_sweep")
    assert done.returncode == 1
    sweep = history().find("no_image_sweep")
    assert sweep.status == "Failed" and "MLJ405" in sweep.reason and "example.org/team/missing:1" in sweep.reason
    assert _trials("no_image_sweep") == []  # not five trials failing the same way


@pytest.mark.parametrize("path", ["auto", "mlflow"])
def test_a_20_trial_sweep_completes_on_each_history_path(path: str, mljob: Mljob, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner's history through the direct SQLite store (auto, on mljob's own store) or MLflow's client
    # (MLJOB_HISTORY_PATH=mlflow). Only what the history reports is checked, not how the trials reach the store.
    from mljob.runner.history_mlflow import MlflowStore
    from mljob.runner.history_sqlite import SqliteStore

    monkeypatch.setenv("MLJOB_HISTORY_PATH", path)
    assert type(history().store) is {"auto": SqliteStore, "mlflow": MlflowStore}[path]
    sweep_file = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: python train.py --x ${{search_space.x}}
          code: src
          environment: {image: python:3.11}
        sampling_algorithm: random
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
        objective: {goal: minimize, primary_metric: loss}
        limits: {max_total_trials: 20, max_concurrent_trials: 4}
    """, "import sys, mlflow\nmlflow.log_metric('loss', float(sys.argv[2]))\n")
    name = f"sweep20_{path}"
    done = mljob("run", str(sweep_file), "--set", "compute=process", "--name", name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "internal error" not in done.stdout + done.stderr
    sweep = history().find(name)
    assert sweep is not None and sweep.status == "Completed", sweep and sweep.reason
    trials = _trials(name)
    assert len(trials) == 20 and all(t.status == "Completed" for t in trials)
    assert sorted(int(t.tags["mljob.trial"]) for t in trials) == list(range(20))
    for trial in trials:  # each logged its own value
        assert trial.metrics["loss"] == pytest.approx(float(trial.params["x"]))
    best = min(trials, key=lambda t: t.metrics["loss"])
    assert sweep.tags["mljob.sweep.best_trial"] == best.name and sweep.metrics["loss"] == best.metrics["loss"]
    assert sweep.params["best.x"] == best.params["x"]
    shown = mljob("job", "show", "-n", name)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert f"best trial: {best.name} " in shown.stdout and "status: Completed" in shown.stdout
    assert all(f" {t.name} " in shown.stdout for t in trials)


def test_resume_draws_the_values_of_a_trial_the_driver_asked_for_but_died_before_drawing(mljob: Mljob,
                                                                                           tmp_path: Path) -> None:
    # A driver killed between Optuna's ask() and the trial's draws leaves a RUNNING trial with no params (seen in CI:
    # `internal error in the sweep driver: KeyError: 'x'` on resume). Made here without a race: a finished sweep,
    # one more asked trial, and the sweep's record put back as its killed driver leaves it.
    path = _sweep_file(tmp_path, """\
        type: sweep
        trial:
          command: python train.py --x ${{search_space.x}}
          code: src
          environment: {image: python:3.11}
        sampling_algorithm: random
        search_space:
          x: {type: uniform, min_value: 0, max_value: 1}
        objective: {goal: minimize, primary_metric: loss}
        limits: {max_total_trials: 1, max_concurrent_trials: 1}
    """, "import sys, mlflow\nmlflow.log_metric('loss', float(sys.argv[2]))\n")
    assert mljob("run", str(path), "--set", "compute=process", "--name", "asked_sweep").returncode == 0
    study = optuna.load_study(study_name="asked_sweep", storage=_storage())
    orphaned = study.ask()
    assert orphaned.params == {}
    sweep = history().find("asked_sweep")
    history().set_status(sweep.run_id, "Failed", "the driver was killed")
    resumed = mljob("job", "resume", "-n", "asked_sweep", "--stream")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "internal error" not in resumed.stdout + resumed.stderr
    rerun = [t for t in _trials("asked_sweep") if t.tags.get("mljob.trial") == str(orphaned.number)]
    assert len(rerun) == 1 and rerun[0].status == "Completed"
    x = float(rerun[0].params["x"])
    assert 0 <= x <= 1 and rerun[0].metrics["loss"] == pytest.approx(x)
    assert optuna.load_study(study_name="asked_sweep", storage=_storage()).trials[orphaned.number].params["x"] == \
        pytest.approx(x)
