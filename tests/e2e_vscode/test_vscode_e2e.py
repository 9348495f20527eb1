"""VS Code end to end: code-server 4.100.3 with our .vsix, a corpus job file and `mljob lsp`, in headless Chromium.

One driver run per module (it takes about a minute); one test per step, so a report says which parts work.
"""

from __future__ import annotations

import pytest

from .conftest import BROKEN_SERVER, DriverRun, run_vscode, shots_dir, waiting

pytestmark = pytest.mark.editor_e2e  # real editors; deselect with -m 'not editor_e2e'

STEPS = ["install", "workbench", "status", "diagnostics", "completion", "lens", "restart", "migrate", "run-button",
         "run", "cancel", "show-runs"]


@pytest.fixture(scope="module")
def vscode(e2e_workspace, vsix) -> DriverRun:
    return run_vscode(e2e_workspace, vsix, shots_dir("vscode"))


@pytest.mark.parametrize("step", waiting(STEPS))
def test_vscode_step(vscode: DriverRun, step: str) -> None:
    assert vscode.steps.get(step) == "PASS", f"{step}: {vscode.detail(step)}"


def test_vscode_negative_control(e2e_workspace, vsix) -> None:
    """The same checks with a server that exits at once must fail, and the status bar must say so."""
    run = run_vscode(e2e_workspace, vsix, shots_dir("vscode-broken-server"),
                     MLJOB_E2E_SERVER_COMMAND=BROKEN_SERVER, MLJOB_E2E_STEPS="status,diagnostics",
                     MLJOB_E2E_DIAG_TIMEOUT="20")
    assert run.steps.get("install") == "PASS" and run.steps.get("workbench") == "PASS", run.output
    assert run.returncode != 0
    assert run.steps.get("diagnostics") == "FAIL", run.detail("diagnostics")
    assert run.steps.get("status") == "FAIL", run.detail("status")
    assert "mljob language server not running" in run.detail("status")
