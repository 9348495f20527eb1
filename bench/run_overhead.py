"""What running a job through mljob costs over running its command bare, measured in one run, in alternation.

    .venv/bin/python bench/run_overhead.py [--rounds N]

Docker:  `mljob run hello-world.yml` (compute local)        vs  `docker run --rm IMAGE bash -c 'echo "hello world"'`
Process: `mljob run hello-world.yml --set compute=process`  vs  a bare subprocess of the same command

Rows per target, timed in alternation within each round (drift in machine load hits all alike); medians:
  bare                            the command without mljob (the baseline of the ratios)
  mljob run (CLI)                 the `mljob` console script as a user runs it, the resident runner on (the default):
                                  the call is handed to the warm background process, which forks a child for it
  mljob run (CLI, MLJOB_DAEMON=0) the same console script with the resident runner off: a new Python process that
                                  imports everything (the cold path)
  mljob run (warm)                the runner called again inside this (warm) process: what the runner itself adds
                                  (record, snapshot, container, artifacts), without any start-up

The CLI rows do not use the dev venv: it installs mljob in editable mode, whose import finder (loaded from a .pth
file) adds ~30 ms to every Python start, a cost `pip install mljob` does not have. So before timing, mljob is installed
non-editably (a wheel built from a copy of the sources, byte-compiled as pip leaves it) into a throw-away venv of the
same interpreter whose .pth lists the dev venv's site-packages for the dependencies (.pth files inside that folder,
the editable finder's among them, are not processed). Both interpreters' bare start-up is printed once for comparison.
The resident runner that belongs to that venv is stopped and the venv removed at the end.

A throw-away MLJOB_HOME whose MLflow store is created before timing starts. Target: <= 1.15x.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shutil
import site
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
SOURCES = ("pyproject.toml", "README.md", "bin", "mljob", "runner", "server", "schemas")  # what the wheel is built from


def _timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def _quiet(argv: list[str], env: dict[str, str] | None = None) -> Callable[[], None]:
    def run() -> None:
        done = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ) if env is None else env)
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


def _check(argv: list[str], **kwargs: object) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def _editable_files(folder: Path) -> set[str]:
    return {p.name for p in folder.glob("__editable__*mljob*")}


def _user_venv(work: Path) -> Path:
    """A venv with mljob installed as `pip install` leaves it (not editable); its folder. Prints what and how long."""
    began = time.perf_counter()
    venv = work / "venv"
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    target = Path(_check([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], cwd=work).strip())
    dev_sites = [Path(p) for p in site.getsitepackages() if Path(p).is_dir()]
    (target / "mljob-bench-deps.pth").write_text("".join(f"{p}\n" for p in dev_sites))
    editable_before = {p: _editable_files(p) for p in dev_sites}
    # A copy of the sources, so that the build's own leftovers (build/, *.egg-info) stay out of the working tree.
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, src / name)
    # pip (and setuptools, for --no-build-isolation) come from the dev venv through the .pth; --ignore-installed
    # because the dev venv's editable mljob is visible there too, and must be neither used nor uninstalled.
    _check([python, "-m", "pip", "install", "--no-deps", "--no-index", "--no-build-isolation", "--ignore-installed",
            "--no-cache-dir", "--disable-pip-version-check", "--quiet", str(src)], cwd=work)
    if {p: _editable_files(p) for p in dev_sites} != editable_before:
        raise SystemExit("installing into the bench venv changed the dev venv's editable install")
    package = target / "mljob"
    _check([python, "-m", "compileall", "-q", str(package)])  # writes .pyc whatever PYTHONDONTWRITEBYTECODE says
    sources = list(package.rglob("*.py"))
    tag = sys.implementation.cache_tag
    missing = [s for s in sources if not (s.parent / "__pycache__" / f"{s.stem}.{tag}.pyc").is_file()]
    if not sources or missing:
        raise SystemExit(f"{package}: no .pyc for {[str(m) for m in missing[:5]]} ...")
    where = Path(_check([python, "-c", "import mljob; print(mljob.__file__)"], cwd=work).strip())
    if not where.is_relative_to(target):
        raise SystemExit(f"the bench venv imports mljob from {where}, not from {target}")
    script = venv / "bin" / "mljob"
    if not script.is_file():
        raise SystemExit(f"{script}: no console script after the install")
    print(f"set-up: mljob (wheel from a copy of {ROOT}, non-editable, {len(sources)} modules byte-compiled) installed "
          f"into {target}; console script {script}; deps via .pth -> {', '.join(map(str, dev_sites))}; "
          f"{time.perf_counter() - began:.1f} s")
    return venv


def _python_starts(pythons: dict[str, Path], n: int = 10) -> None:
    times: dict[str, list[float]] = {name: [] for name in pythons}
    for python in pythons.values():
        _quiet([str(python), "-c", "pass"])()
    for _ in range(n):
        for name, python in pythons.items():
            times[name].append(_timed(_quiet([str(python), "-c", "pass"])))
    print(f"python -c pass ({n} runs, medians): " + "; ".join(
        f"{name} {statistics.median(values) * 1000:.1f} ms" for name, values in times.items()))


def _daemon_status(mljob: Path, env: dict[str, str]) -> tuple[int, str]:
    done = subprocess.run([str(mljob), "daemon", "status"], capture_output=True, text=True, env=env)
    return done.returncode, (done.stdout + done.stderr).strip()


def _served(mljob: Path, env: dict[str, str]) -> tuple[int, int, str]:
    """The resident runner's pid, how many calls it has served and its socket; fails loudly when there is none."""
    code, text = _daemon_status(mljob, env)
    found = re.search(r"pid (\d+),.* (\d+) call\(s\) served.*; socket (\S+)$", text)
    if code != 0 or not found:
        raise SystemExit(f"`{mljob} daemon status` says no resident runner ({code}): {text}")
    return int(found[1]), int(found[2]), found[3]


def _wait_for_resident(mljob: Path, env: dict[str, str], timeout: float = 20.0) -> float:
    began = time.monotonic()
    while True:
        code, text = _daemon_status(mljob, env)
        if code == 0:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise SystemExit(f"the warm-up did not start a resident runner within {timeout:.0f} s; the CLI figure "
                             f"would be the cold path. `{mljob} daemon status` ({code}): {text}")
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not HELLO.is_file():
        raise SystemExit(f"{HELLO} not found (the corpus sits beside the project as ../shared/corpus)")
    from mljob.runner import images

    home = Path(tempfile.mkdtemp(prefix="mljob-bench-"))
    os.environ["MLJOB_HOME"] = str(home)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    images.write_default_environments_file(home / "environments.yml")
    work = Path(tempfile.mkdtemp(prefix="mljob-bench-venv-"))
    venv: Path | None = None
    mljob: Path | None = None
    # A resident runner that outlives the bench by accident (e.g. one still starting when the bench failed) leaves
    # after this many idle seconds instead of the default half hour.
    daemon_env = {**os.environ, "MLJOB_DAEMON": "1", "MLJOB_DAEMON_IDLE": "300"}
    cold_env = {**os.environ, "MLJOB_DAEMON": "0"}
    resident_pid = 0
    from mljob.runner.resident_client import runtime_dir

    log = Path(runtime_dir()) / "runner.log"  # where a resident runner writes what went wrong
    log_start = log.stat().st_size if log.is_file() else 0
    sock = ""
    try:
        venv = _user_venv(work)
        mljob = venv / "bin" / "mljob"
        _python_starts({"dev venv (editable)": Path(sys.executable), "bench venv (installed)": venv / "bin" / "python"})
        pairs: list[tuple[str, dict[str, Callable[[], None]]]] = []
        try:
            images.engine()
            docker_ok = True
        except images.EngineError as err:
            print(f"docker: skipped ({err})")
            docker_ok = False
        cli = [str(mljob), "run", str(HELLO)]
        if docker_ok:
            pairs.append(("docker", {
                "bare docker run": _quiet(["docker", "run", "--rm", images.BASE_IMAGE, "bash", "-c", COMMAND]),
                "mljob run (CLI)": _quiet(cli, daemon_env),
                "mljob run (CLI, MLJOB_DAEMON=0)": _quiet(cli, cold_env),
                "mljob run (warm)": _in_process(["run", str(HELLO)]),
            }))
        process = [*cli, "--set", "compute=process"]
        pairs.append(("process", {
            "bare subprocess": _quiet(["bash", "-c", COMMAND]),
            "mljob run (CLI)": _quiet(process, daemon_env),
            "mljob run (CLI, MLJOB_DAEMON=0)": _quiet(process, cold_env),
            "mljob run (warm)": _in_process(["run", str(HELLO), "--set", "compute=process"]),
        }))
        # Warm-up: the store's schema, the image mapping, the page cache, the resident runner. Not timed.
        for _, contenders in pairs:
            for action in contenders.values():
                action()
        waited = _wait_for_resident(mljob, daemon_env)
        for _, contenders in pairs:  # once more through the resident runner, now that it listens
            contenders["mljob run (CLI)"]()
        resident_pid, served_before, sock = _served(mljob, daemon_env)
        print(f"resident runner pid {resident_pid} (listening {waited:.1f} s after the warm-up round)")
        width = max(len(name) for _, contenders in pairs for name in contenders)
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
                print(f"  {name:<{width}} {value * 1000:8.1f} ms{ratio}")
        pid, served_after, _ = _served(mljob, daemon_env)
        expected = args.rounds * len(pairs)
        if pid != resident_pid or served_after - served_before < expected:
            raise SystemExit(f"the resident runner served {served_after - served_before} of the {expected} timed "
                             f"`mljob run (CLI)` calls (pid {resident_pid} -> {pid}): the others ran cold, so the "
                             "CLI figures above are not what they say")
        print(f"resident runner pid {pid} served all {expected} timed CLI calls")
        with contextlib.suppress(OSError), log.open("rb") as text:
            text.seek(log_start)
            new = text.read().decode(errors="replace")
            if f"{venv}/" in new:  # the log is shared by every resident runner of this user; count only if ours wrote
                print(f"note: {log} got {new.count('Traceback')} traceback(s) during the run, from this venv's "
                      "resident runner among others")
        print(f"target: <= 1.15x; MLJOB_HOME used: {home}")
    finally:
        if mljob is not None and mljob.is_file():
            subprocess.run([str(mljob), "daemon", "stop"], capture_output=True, env=daemon_env)
            deadline = time.monotonic() + 10
            while resident_pid and Path(f"/proc/{resident_pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if sock and not Path(f"/proc/{resident_pid}").exists() and not Path(sock).exists():
                Path(sock + ".lock").unlink(missing_ok=True)  # the runner leaves its lock file; this venv is gone
        shutil.rmtree(work, ignore_errors=True)
        from mljob.runner import tracking

        tracking.stop()  # the throw-away home's tracking server
    return 0


if __name__ == "__main__":
    sys.exit(main())
