"""The extension's own unit tests (`npm test` in client-vscode/: node:test over what it reads from the runner)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.realparts import missing

from .conftest import EXT, SETUP

pytestmark = pytest.mark.editor_e2e


def test_extension_unit_tests() -> None:
    if not shutil.which("npm") or not (EXT / "node_modules").is_dir():
        missing("npm or client-vscode/node_modules missing", SETUP)
    proc = subprocess.run(["npm", "test"], cwd=EXT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
