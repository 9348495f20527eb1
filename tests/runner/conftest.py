"""Runner tests drive the real `mljob` command line against a real MLflow SQLite store in a temporary MLJOB_HOME,
and, for `compute: local`, a real Docker engine (without one those tests skip, saying why; under CI=true they fail:
tests/realparts.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mljob.runner.distribute import free_port

from tests.realparts import CORPUS_HOW, importorskip, missing

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "corpus"
EXAMPLES = ROOT / "examples"



def pytest_configure(config: pytest.Config) -> None:
    # MLflow 3.17 asks SQLAlchemy 2.1 for a loader strategy it deprecates; not ours to fix, and harmless here.
    config.addinivalue_line("filterwarnings", "ignore:.*noload.*:DeprecationWarning")


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow SQLite store with its schema made once: creating one runs MLflow's ~50 migrations (seconds)."""
    from mljob.runner.history import History

    path = tmp_path_factory.mktemp("store") / "mlflow.db"
    History(f"sqlite:///{path}")
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_store: Path) -> Iterator[Path]:
    """A fresh mljob home with the starter environments file (public image names → the local base image); its
    tracking server (started by the first job, asleep until a job logs) is stopped afterwards."""
    from mljob.runner import images, tracking

    place = tmp_path / "mljob-home"
    monkeypatch.setenv("MLJOB_HOME", str(place))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    images.write_default_environments_file(place / "environments.yml")
    (place / "mlflow").mkdir()
    shutil.copyfile(empty_store, place / "mlflow" / "mlflow.db")
    yield place
    monkeypatch.setenv("MLJOB_HOME", str(place))  # the test may have changed it
    tracking.stop()


@pytest.fixture(scope="session")
def engine() -> object:
    from mljob.runner import images

    try:
        client = images.engine(timeout=30)
    except images.EngineError as err:
        missing(f"no Docker engine answers ({err})", "./scripts/setup-docker starts one")
    try:
        client.images.get(images.BASE_IMAGE)
    except Exception:  # noqa: BLE001
        missing(f"the local base image {images.BASE_IMAGE} is missing", "./scripts/setup-docker builds it")
    return client


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        missing("../shared/corpus is not beside the project", CORPUS_HOW)
    return CORPUS


Mljob = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def mljob(home: Path, capfd: pytest.CaptureFixture[str]) -> Mljob:
    """Runs the real CLI with the test's MLJOB_HOME: in this process by default (MLflow is imported once, which
    keeps the suite fast on 2 cores), or as a new process with `separate=True`, as a user would."""

    def run(*args: str, timeout: float = 180, separate: bool = False) -> subprocess.CompletedProcess[str]:
        if separate:
            return subprocess.run([sys.executable, "-m", "mljob", *args], capture_output=True, text=True,
                                  timeout=timeout, env=dict(os.environ))
        from mljob.__main__ import main

        capfd.readouterr()
        code = main(list(args))
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess(["mljob", *args], code, out, err)

    return run


@pytest.fixture
def write_job(tmp_path: Path) -> Callable[..., Path]:
    """A job file (and optional extra files) in its own folder under tmp_path."""

    def write(text: str, folder: str = "job", name: str = "job.yml", files: dict[str, str] | None = None) -> Path:
        place = tmp_path / folder
        place.mkdir(parents=True, exist_ok=True)
        for rel, content in (files or {}).items():
            target = place / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        path = place / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def no_leftovers(engine: object, home: Path) -> Iterator[None]:
    """After the test: no container of this home remains, whatever happened."""
    yield
    left = engine.containers.list(all=True, filters={"label": f"mljob.home={home.resolve()}"})  # type: ignore
    for container in left:
        container.remove(force=True)
    assert not left, f"containers left behind: {[c.labels for c in left]}"


# --- a Ray head for the `ray` compute's tests (test_ray.py, test_ray_distributed.py): one per session ------------

HEAD = ROOT / "scripts" / "ray-head"


@pytest.fixture(scope="session")
def ray_head() -> Iterator[str]:
    """The dashboard address of a head of this test session only: its own ports and its own (short: Ray's socket
    paths must fit in 107 bytes) temp dir, so a head someone else runs on this machine is never touched."""
    importorskip("ray.job_submission", "./scripts/setup-distributed installs Ray (mljob[ray])")
    place = tempfile.mkdtemp(prefix="mljob-ray-", dir="/tmp")
    env = {**os.environ, "MLJOB_RAY_DIR": place, "MLJOB_PYTHON": sys.executable,
           "MLJOB_RAY_PORT": str(free_port()), "MLJOB_RAY_DASHBOARD_PORT": str(free_port()),
           "MLJOB_RAY_CLIENT_PORT": str(free_port()), "MLJOB_RAY_AGENT_PORT": str(free_port())}
    started = subprocess.run([str(HEAD), "start"], env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        yield started.stdout.strip().splitlines()[-1]
    finally:
        stopped = subprocess.run([str(HEAD), "stop"], env=env, capture_output=True, text=True, timeout=120)
        shutil.rmtree(place, ignore_errors=True)
        assert stopped.returncode == 0, stopped.stderr
