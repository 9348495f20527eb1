"""What running a job through mljob costs over running its command bare, measured in one run, in alternation.

    .venv/bin/python bench/run_overhead.py [--rounds N]

Docker:  `mljob run hello-world.yml` (compute local)        vs  `docker run --rm IMAGE bash -c 'echo "hello world"'`
Process: `mljob run hello-world.yml --set compute=process`  vs  a bare subprocess of the same command
Each mljob figure is given twice: the CLI as a user runs it (a new Python process, which imports MLflow), and the
runner called again inside one warm process (what the runner itself adds: record, snapshot, container, artifacts).
Medians; a throw-away MLJOB_HOME whose MLflow store is created before timing starts. Target: <= 1.15x.
mljob's modules are byte-compiled first, as `pip install` leaves them (PYTHONDONTWRITEBYTECODE would otherwise make
every CLI start compile them again, ~55 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HELLO = ROOT.parent / "shared" / "corpus" / "azureml-examples" / "basics" / "hello-world.yml"
COMMAND = 'echo "hello world"'


def _timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _quiet(argv: list[str]) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ))
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed:\n{done.stdout}{done.stderr}")

    return run


def _in_process(argv: list[str]) -> Callable[[], None]:
    from mljob.__main__ import main

    def run() -> None:
        sink = io.TextIOWrapper(io.BytesIO())
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(io.StringIO()):
            code = main(argv)
        if code != 0:
            raise SystemExit(f"mljob {' '.join(argv)} failed ({code})")

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not HELLO.is_file():
        raise SystemExit(f"{HELLO} not found (the corpus sits beside the project as ../shared/corpus)")
    import compileall

    from mljob.runner import images

    for folder in ("mljob", "runner", "server", "schemas"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    home = Path(tempfile.mkdtemp(prefix="mljob-bench-"))
    os.environ["MLJOB_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    images.write_default_environments_file(home / "environments.yml")
    mljob = [sys.executable, "-m", "mljob"]
    pairs: list[tuple[str, dict[str, Callable[[], None]]]] = []
    try:
        images.engine()
        docker_ok = True
    except images.EngineError as err:
        print(f"docker: skipped ({err})")
        docker_ok = False
    if docker_ok:
        pairs.append(("docker", {
            "bare docker run": _quiet(["docker", "run", "--rm", images.BASE_IMAGE, "bash", "-c", COMMAND]),
            "mljob run (CLI)": _quiet([*mljob, "run", str(HELLO)]),
            "mljob run (warm)": _in_process(["run", str(HELLO)]),
        }))
    pairs.append(("process", {
        "bare subprocess": _quiet(["bash", "-c", COMMAND]),
        "mljob run (CLI)": _quiet([*mljob, "run", str(HELLO), "--set", "compute=process"]),
        "mljob run (warm)": _in_process(["run", str(HELLO), "--set", "compute=process"]),
    }))
    # Warm-up: the store's schema, the image mapping, the page cache. Not timed.
    for _, contenders in pairs:
        for action in contenders.values():
            action()
    for label, contenders in pairs:
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.rounds):
            for name, action in contenders.items():  # alternation: drift in machine load hits all alike
                times[name].append(_timed(action))
        medians = {name: statistics.median(values) for name, values in times.items()}
        bare_name = next(iter(contenders))
        bare = medians[bare_name]
        print(f"{label} ({args.rounds} rounds, medians):")
        for name, value in medians.items():
            ratio = "" if name == bare_name else f"  {value / bare:6.2f}x  (+{(value - bare) * 1000:.0f} ms)"
            print(f"  {name:<18} {value * 1000:8.1f} ms{ratio}")
    print(f"target: <= 1.15x; MLJOB_HOME used: {home}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
