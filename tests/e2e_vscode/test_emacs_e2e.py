"""Emacs end to end: the same corpus job file in emacs-nox with Eglot (Debian's elpa-eglot), in batch."""

from __future__ import annotations

import pytest

from .conftest import BROKEN_SERVER, DriverRun, run_emacs, waiting

pytestmark = pytest.mark.editor_e2e  # real editors; deselect with -m 'not editor_e2e'

STEPS = ["start", "diagnostics", "completion"]


@pytest.fixture(scope="module")
def emacs(e2e_workspace, tmp_path_factory) -> DriverRun:
    return run_emacs(e2e_workspace, tmp_path_factory.mktemp("emacs-home"))


@pytest.mark.parametrize("step", waiting(STEPS))
def test_emacs_step(emacs: DriverRun, step: str) -> None:
    assert emacs.steps.get(step) == "PASS", f"{step}: {emacs.detail(step)}"


def test_emacs_negative_control(e2e_workspace, tmp_path_factory) -> None:
    run = run_emacs(e2e_workspace, tmp_path_factory.mktemp("emacs-broken-home"), MLJOB_E2E_SERVER_COMMAND=BROKEN_SERVER)
    assert run.returncode != 0
    assert run.steps.get("diagnostics") == "FAIL", run.output
