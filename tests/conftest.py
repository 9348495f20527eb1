from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpus"

# Tests import their helpers as `tests.…` (tests.realparts, tests.runner.helpers): `python -m pytest` from the project
# root puts it on sys.path; this makes a bare `pytest` find them too.
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from tests.realparts import CORPUS_HOW, MARK, check_marks, missing  # noqa: E402

# The tests behave as a user with mljob's venv activated: the `process` compute runs jobs with the caller's PATH, and
# job scripts in tests `import mlflow`, so the venv's bin folder (this interpreter's) comes first on PATH.
_VENV_BIN = os.path.dirname(sys.executable)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _VENV_BIN:
    os.environ["PATH"] = os.pathsep.join([_VENV_BIN, *filter(None, [os.environ.get("PATH")])])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARK}(present, part, how): needs a real part; skips without it, fails "
                                       "under CI=true (tests/realparts.py)")


@pytest.hookimpl(tryfirst=True)  # before the skipping plugin's own (also tryfirst) hook: registered later, runs first
def pytest_runtest_setup(item: pytest.Item) -> None:
    check_marks(item)


@pytest.fixture
def corpus() -> Path:
    if not CORPUS.is_dir():
        missing("../shared/corpus is not beside the project", CORPUS_HOW)
    return CORPUS


@pytest.fixture(scope="session", autouse=True)
def _no_tracking_server_left(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The tests' mljob homes are under the session's temp folder; a tracking server one of them still has when the
    session ends (a test that ran jobs in a home of its own, through an editor, say) is stopped by its pid."""
    yield
    from mljob.runner import procfs

    base = str(tmp_path_factory.getbasetemp())
    for stat in procfs.processes():
        words = procfs.cmdline(stat.pid)
        if "mljob.runner.tracking_serve" in words and any(word.startswith(base) for word in words):
            with contextlib.suppress(ProcessLookupError):
                os.kill(stat.pid, signal.SIGTERM)
