"""Helpers shared by the runner tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable


def history():  # noqa: ANN201 (a History bound to the test's MLJOB_HOME)
    from mljob.runner.history import History

    return History()


def run_name(output: str) -> str:
    for line in output.splitlines():
        if line.startswith("RunId: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"no RunId in:\n{output}")


def wait_for(condition: Callable[[], object], timeout: float = 60, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def containers_of(client: object, name: str) -> list[object]:
    return client.containers.list(all=True, filters={"label": f"mljob.run={name}"})  # type: ignore[attr-defined]


SLOW_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: >-
  mkdir -p logs && echo working > logs/progress.txt &&
  python -c "import mlflow; mlflow.log_metric('early', 1.0)" &&
  echo started && sleep 120
environment:
  image: python:3.11-slim
compute: {compute}
"""


def start_runner(job: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`mljob run JOB` in the background, returned once it has printed the run's name."""
    proc = subprocess.Popen([sys.executable, "-m", "mljob", "run", job, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("RunId: "):
            return proc, line.split(": ", 1)[1].strip()
    raise AssertionError("the runner printed no RunId:\n" + "".join(seen))


def wait_until_started(name: str, timeout: float = 90) -> dict[str, object]:
    """The run's active entry once its job has logged its first metric (so the job is really running)."""
    from mljob.runner import orphans

    def ready() -> dict[str, object] | None:
        entry = orphans.read(name)
        if not entry or not entry.get("started"):
            return None
        view = history().find(name)
        return entry if view is not None and "early" in view.metrics else None

    return wait_for(ready, timeout, f"{name} to start")  # type: ignore[return-value]
