"""End to end in a real editor: headless Neovim (Debian's 0.7.2) opens a corpus job file with a typo, started with
`python -m mljob lsp`, and gets our diagnostic, completion items, go to definition, the code lens and its command,
and a quick fix that it applies itself. nvim_lsp.lua records what Neovim saw; this file judges it.

scripts/setup-editors installs Neovim (CI runs it through scripts/test); without `nvim` the test skips and says so
(under CI=true it fails: tests/realparts.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mljob.server import completion
from mljob.server.features import FeatureContext
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument

from tests.realparts import CORPUS_HOW, needs

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
CORPUS_JOB = ROOT.parent / "shared" / "corpus" / "azureml-examples" / "basics" / "hello-sweep.yml"
NVIM = shutil.which("nvim")

pytestmark = [
    needs(NVIM is not None, "nvim is not installed", "run scripts/setup-editors (CI does)"),
    needs(CORPUS_JOB.is_file(), f"the corpus is not beside the project ({CORPUS_JOB})", CORPUS_HOW),
]


def _line_of(text: str, needle: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines()):
        if needle in line:
            return number, line.index(needle)
    raise AssertionError(f"{needle!r} not in the job file")


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> tuple[Path, str]:
    """The corpus sweep with `display_name` misspelt and an empty line at the end to complete on."""
    folder = tmp_path_factory.mktemp("nvim-ws")
    original = CORPUS_JOB.read_text(encoding="utf-8")
    assert "display_name:" in original
    text = original.replace("display_name:", "display_nam:", 1).rstrip("\n") + "\n\n"
    (folder / "src").mkdir()  # the job's `code: src`, as in the corpus
    path = folder / "hello-sweep.yml"
    path.write_text(text, encoding="utf-8")
    return path, text


@pytest.fixture(scope="module")
def seen(job, tmp_path_factory) -> dict[str, Any]:
    path, text = job
    home = tmp_path_factory.mktemp("nvim-home")
    out = home / "results.json"
    env = {
        **os.environ,
        # Offline and isolated: no user config, shada, swap files or state outside the test's folder.
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"), "XDG_DATA_HOME": str(home / "data"),
        "XDG_STATE_HOME": str(home / "state"), "XDG_CACHE_HOME": str(home / "cache"), "TMPDIR": str(home),
        "MLJOB_HOME": str(home / "mljob"),
        "MLJOB_E2E_FILE": str(path), "MLJOB_E2E_OUT": str(out),
        "MLJOB_E2E_SERVER": json.dumps([sys.executable, "-m", "mljob", "lsp"]),
        "MLJOB_E2E_COMPLETE_LINE": str(len(text.splitlines())),
        "MLJOB_E2E_DEFINITION": "{},{}".format(*_after(_line_of(text, "${{inputs.A}}"), len("${{inputs."))),
        "MLJOB_E2E_FIX_CODE": "MLJ101",
    }
    run = subprocess.run([NVIM, "--headless", "-u", "NONE", "-i", "NONE", "-n", "-c",  # type: ignore[list-item]
                          f"luafile {HERE / 'nvim_lsp.lua'}"], env=env, cwd=path.parent, capture_output=True,
                         text=True, timeout=180)
    assert out.is_file(), f"Neovim wrote no results (exit {run.returncode}):\n{run.stdout}\n{run.stderr}"
    results = json.loads(out.read_text(encoding="utf-8"))
    assert "error" not in results, results["error"]
    assert results.get("started"), "the language client did not start"
    return results


def _after(at: tuple[int, int], offset: int) -> tuple[int, int]:
    return at[0], at[1] + offset


def test_diagnostic_for_the_typo(seen, job) -> None:
    _, text = job
    line, column = _line_of(text, "display_nam:")
    found = [(d["code"], d["line"], d["col"]) for d in seen["diagnostics"]]
    assert found == [("MLJ101", line, column)], seen["diagnostics"]
    (typo,) = seen["diagnostics"]
    assert typo["source"] == "mljob" and "display_name" in typo["message"]


def test_completion_items(seen, job) -> None:
    path, text = job
    line = len(text.splitlines())
    # What the server computes for this position is what Neovim must have received.
    doc = OpenDocument.open(path.as_uri(), text, 1)
    expected = [i.label for i in completion.complete(doc, line, 0, FeatureContext(ServerSettings())).items]
    assert sorted(seen["completion"]) == sorted(expected)
    # Top-level keys the sweep does not have yet, among them the one the typo took away.
    assert {"display_name", "early_termination"} <= set(seen["completion"])


def test_definition_of_an_input(seen, job) -> None:
    path, text = job
    line, _ = _line_of(text, "  A: 0.5")
    assert seen["definition"] == [{"uri": path.as_uri(), "line": line}]


def test_code_lens_and_its_command(seen, job) -> None:
    path, _ = job
    assert [(lens["line"], lens["title"], lens["command"]) for lens in seen["lenses"]] == [
        (0, "▶ Run locally", "mljob.runLocally"), (0, "Validate", "mljob.validate")]
    assert seen["command"].startswith(f"{path.name}:")


def test_quick_fix_applied_by_neovim(seen, job) -> None:
    _, text = job
    assert seen.get("applied") == "Change `display_nam` to `display_name`", seen.get("actions")
    assert "MLJ101" not in [d["code"] for d in seen["after_fix"]]
    assert seen["after_fix"] == []
    assert seen["fixed_line"].startswith("display_name:")
    assert {"kind": "quickfix", "preferred": True, "title": seen["applied"]} in seen["actions"]
