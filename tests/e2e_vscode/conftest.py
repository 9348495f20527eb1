"""Real editors, end to end: VS Code (code-server + our .vsix, driven by headless Chromium) and Emacs (Eglot).

The drivers are code_server_e2e.js and emacs_eglot_e2e.el; each prints one `STEP <name> PASS|FAIL <detail>` line per
check. These fixtures prepare the workspace, build the .vsix when its sources changed, run a driver once per module,
and skip (saying what to run) only when a tool is missing (under CI=true they fail instead: tests/realparts.py).
`scripts/setup-vscode-e2e` installs every tool.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.realparts import CORPUS_HOW, missing

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
EXT = ROOT / "client-vscode"
CODE_SERVER = EXT / ".e2e" / "code-server" / "node_modules" / ".bin" / "code-server"
CHROMIUM = Path("/usr/bin/chromium")
VSIX = EXT / "mljob.vsix"
CORPUS = ROOT.parent / "shared" / "corpus"
CORPUS_FILE = CORPUS / "azureml-examples" / "basics" / "hello-world-input.yml"
CORPUS_2021 = CORPUS / "seed-2021" / "hello-world.yml"  # for "Migrate to current syntax"
SETUP = "run scripts/setup-vscode-e2e"

# Steps whose feature another engineer is still writing (server completion / code lens, the runner). They are
# strict xfails: the day the feature lands the step passes, the xfail turns into a failure, and its line here must go.
# With this dict empty, a missing feature FAILS; nothing here ever skips.
WAITING_ON_OTHERS: dict[str, str] = {
    # e.g. "run": "the server's 'Run locally' lens (server/lens.py, issue 3) is not written yet",
}

# A job that prints, then sleeps: the "cancel" step stops it from the progress notification.
SLOW_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: echo "mljob-e2e sleeping" && sleep 300
environment:
  image: python:3.11-slim
compute: local
"""

# YAML that is not a job (a Kubernetes manifest): the server stays quiet, and the extension offers no ▷ on it.
OTHER_YAML = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  level: debug
"""

# The small job the "Run job" step runs (as a plain process: mljob.run.localCompute = process).
RUN_JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
display_name: e2e-hello
command: echo "mljob-e2e says ${{inputs.greeting}}"
inputs:
  greeting: hello
environment:
  image: python:3.11-slim
compute: local
"""


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "editor_e2e: drives a real editor (code-server, Emacs) or the extension's build")


def waiting(steps: list[str]) -> list:
    return [pytest.param(s, marks=pytest.mark.xfail(strict=True, reason=WAITING_ON_OTHERS[s]))
            if s in WAITING_ON_OTHERS else s for s in steps]


@dataclass
class DriverRun:
    returncode: int
    output: str
    steps: dict[str, str]  # step name → PASS | FAIL

    def detail(self, step: str) -> str:
        m = re.search(rf"^STEP {re.escape(step)} \w+ (.*)$", self.output, re.M)
        return m.group(1) if m else "(step not reported)"


def drive(argv: list[str], env: dict[str, str], timeout: float) -> DriverRun:
    proc = subprocess.run(argv, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, cwd=ROOT)
    steps = dict(re.findall(r"^STEP (\S+) (PASS|FAIL)", proc.stdout, re.M))
    print(proc.stdout)  # shown by pytest when a test fails
    return DriverRun(proc.returncode, proc.stdout, steps)


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@pytest.fixture(scope="session")
def e2e_workspace(tmp_path_factory) -> Path:
    """A corpus job file with a deliberate error (a misspelt input reference: MLJ201 at 3:8), a small job to run, and
    the corpus' 2021 hello-world to migrate."""
    if not CORPUS_FILE.is_file():
        missing("../shared/corpus is not beside the project", CORPUS_HOW)
    ws = tmp_path_factory.mktemp("e2e-ws")
    text = CORPUS_FILE.read_text(encoding="utf-8")
    assert "${{inputs.hello_string}}" in text, "the corpus file changed; pick another deliberate error"
    (ws / "hello-world-input.yml").write_text(text.replace("${{inputs.hello_string}}", "${{inputs.hello_strng}}"),
                                              encoding="utf-8")
    (ws / "run-hello.yml").write_text(RUN_JOB, encoding="utf-8")
    (ws / "sleepy.yml").write_text(SLOW_JOB, encoding="utf-8")
    (ws / "configmap.yml").write_text(OTHER_YAML, encoding="utf-8")
    shutil.copyfile(CORPUS_2021, ws / "hello-world-2021.yml")
    return ws


@pytest.fixture(scope="session")
def vsix() -> Path:
    """The packaged extension, rebuilt (`npm run package`) when a source is newer than it."""
    for tool in ("node", "npm"):
        if not shutil.which(tool):
            missing(f"{tool} not found", SETUP)
    if not (EXT / "node_modules").is_dir():
        missing("client-vscode/node_modules missing", f"{SETUP} (or `npm ci` in client-vscode/)")
    sources = [EXT / "package.json", EXT / "esbuild.mjs", *(EXT / "src").rglob("*.ts"), *(EXT / "media").rglob("*")]
    if not VSIX.exists() or max(p.stat().st_mtime for p in sources) > VSIX.stat().st_mtime:
        subprocess.run(["npm", "run", "package"], cwd=EXT, check=True, stdout=subprocess.DEVNULL, timeout=300)
    return VSIX


def vscode_tools() -> None:
    if not CODE_SERVER.exists():
        missing("code-server not installed in client-vscode/.e2e/", SETUP)
    if not CHROMIUM.exists():
        missing("chromium not installed", SETUP)


def emacs_tools() -> None:
    if not shutil.which("emacs"):
        missing("emacs not installed", SETUP)
    probe = subprocess.run(["emacs", "--batch", "--eval", "(require 'eglot)"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        missing("eglot not available to emacs (elpa-eglot)", SETUP)


def shots_dir(name: str) -> Path:
    """Screenshots outlive the test run (pytest's tmp folders rotate away under concurrent runs): one fixed folder
    per driver run, emptied first, named in the driver's first output line."""
    folder = Path(tempfile.gettempdir()) / "mljob-e2e-shots" / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run_vscode(workspace: Path, vsix: Path, shots: Path, **extra: str) -> DriverRun:
    vscode_tools()
    env = {"MLJOB_E2E_WORKSPACE": str(workspace), "MLJOB_E2E_VSIX": str(vsix), "MLJOB_E2E_PYTHON": python(),
           "MLJOB_E2E_SHOTS": str(shots), **extra}
    return drive(["node", str(HERE / "code_server_e2e.js")], env, timeout=900)  # every step failing at its limit


def run_emacs(workspace: Path, home: Path, **extra: str) -> DriverRun:
    emacs_tools()
    # HOME in a temp folder: Emacs and Eglot write state under ~/.emacs.d.
    env = {"MLJOB_E2E_WORKSPACE": str(workspace), "MLJOB_E2E_PYTHON": python(), "HOME": str(home), **extra}
    return drive(["emacs", "--batch", "-l", str(HERE / "emacs_eglot_e2e.el")], env, timeout=180)


BROKEN_SERVER = json.dumps([sys.executable, "-c", "import sys; sys.exit(3)"])  # a server that exits at once
