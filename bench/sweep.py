"""What a sweep through mljob costs over a plain Optuna loop running the same trial commands, measured in one run.

    .venv/bin/python bench/sweep.py [--rounds N] [--trials 20] [--concurrency 2]

mljob:  `mljob run sweep.yml --set compute=process` (the CLI as a user runs it: a new Python process) — 20 trials,
        2 at a time, each a command job with its own MLflow child run, code snapshot and log, the study in SQLite.
plain:  `optuna.create_study(...).optimize(objective, n_trials=20, n_jobs=2)` in memory, the objective running the
        same command with subprocess and reading the value it prints.
The trial is as small as a real one gets: `python trial.py X` logs `loss` with MLflow (which every sweep trial does)
and prints it. Both sides use random sampling over the same space. Medians over the rounds, taken in alternation;
the MLflow store and the Optuna storage exist before timing starts (a user's second sweep). Target: <= 1.1x.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIAL = """\
import sys
import mlflow
value = (float(sys.argv[1]) - 0.3) ** 2
mlflow.log_metric("loss", value)
print(value)
"""


def _sweep_file(folder: Path, trials: int, concurrency: int) -> Path:
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "trial.py").write_text(TRIAL)
    path = folder / "sweep.yml"
    path.write_text(textwrap.dedent(f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
        type: sweep
        trial:
          command: python trial.py ${{{{search_space.x}}}}
          code: src
          environment: {{image: python:3.11}}
        sampling_algorithm: random
        search_space:
          x: {{type: uniform, min_value: 0, max_value: 1}}
        objective: {{goal: minimize, primary_metric: loss}}
        limits: {{max_total_trials: {trials}, max_concurrent_trials: {concurrency}}}
    """))
    return path


def _mljob(path: Path) -> float:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mljob", "run", str(path), "--set", "compute=process"],
                          capture_output=True, text=True, env=dict(os.environ))
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"mljob sweep failed:\n{done.stdout}{done.stderr}")
    return took


def _plain(folder: Path, trials: int, concurrency: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{folder / 'plain.db'}"}
    python = str(Path(sys.executable))

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        done = subprocess.run([python, "trial.py", repr(x)], cwd=folder / "src", capture_output=True, text=True,
                              env=env, check=True)
        return float(done.stdout.strip().splitlines()[-1])

    began = time.perf_counter()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(), direction="minimize")
    study.optimize(objective, n_trials=trials, n_jobs=concurrency)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    for folder in ("mljob", "runner", "server", "schemas"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    home = Path(tempfile.mkdtemp(prefix="mljob-bench-sweep-"))
    os.environ["MLJOB_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    # As a user with a venv that has MLflow activated: the process compute runs `python` from the caller's PATH.
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    work = home / "job"
    path = _sweep_file(work, args.trials, args.concurrency)
    warm = _sweep_file(home / "warm", 1, 1)
    _mljob(warm)  # creates the MLflow store and the Optuna storage; not timed
    _plain(work, 1, 1)
    times: dict[str, list[float]] = {"plain Optuna loop": [], "mljob sweep (CLI)": []}
    for _ in range(args.rounds):
        times["plain Optuna loop"].append(_plain(work, args.trials, args.concurrency))
        times["mljob sweep (CLI)"].append(_mljob(path))
    medians = {name: statistics.median(values) for name, values in times.items()}
    bare = medians["plain Optuna loop"]
    print(f"{args.trials} trials, {args.concurrency} at a time, process backend ({args.rounds} rounds, medians):")
    for name, value in medians.items():
        extra = "" if value == bare else (f"  {value / bare:5.2f}x  (+{(value - bare):.2f} s, "
                                          f"{(value - bare) / args.trials * 1000:.0f} ms per trial)")
        print(f"  {name:<20} {value:7.2f} s{extra}")
    print(f"target: <= 1.1x; MLJOB_HOME used: {home}")
    from mljob.runner import tracking

    tracking.stop()  # the throw-away home's tracking server
    return 0


if __name__ == "__main__":
    sys.exit(main())
