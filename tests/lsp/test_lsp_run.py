"""The "Run locally" lens runs the job with the runner (a real Docker engine) and reports progress and the record."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp.conftest import _remember_versions, diagnostics_for, open_doc
from tests.realparts import needs

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOME = Path(os.environ.get("TMPDIR", "/tmp")) / f"mljob-lsp-run-{os.getpid()}"


def _engine() -> bool:
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


pytestmark = needs(_engine(), "no Docker engine answers (`docker info` fails)", "./scripts/setup-docker starts one")


@pytest_lsp.fixture(config=ClientServerConfig(server_command=[sys.executable, "-m", "mljob", "lsp"],
                                              server_env={**os.environ, "MLJOB_HOME": str(HOME)}))
async def client(lsp_client: LanguageClient, tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    _remember_versions(lsp_client)
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=root.as_uri()))
    lsp_client.root = root  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()
    # The runs' tracking server belongs to this home: stopped with it.
    subprocess.run([sys.executable, "-m", "mljob", "tracking", "stop"], env={**os.environ, "MLJOB_HOME": str(HOME),
                   "MLJOB_DAEMON": "0"}, capture_output=True, timeout=60)
    shutil.rmtree(HOME, ignore_errors=True)


async def test_run_locally_completes_with_progress_and_record(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    shutil.copytree(EXAMPLES / "hello", root / "hello")
    path = root / "hello" / "job.yml"
    uri = open_doc(client, path, path.read_text(encoding="utf-8"))
    assert await diagnostics_for(client, uri, 1) == []
    lenses = await client.text_document_code_lens_async(lsp.CodeLensParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri)))
    (run,) = [lens.command for lens in lenses or [] if lens.command and lens.command.command == "mljob.runLocally"]
    result = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command=run.command, arguments=run.arguments))
    assert isinstance(result, str) and " Completed; record: MLflow run " in result, result
    name = result.split("run ", 1)[1].split(" ", 1)[0]
    (reports,) = client.progress_reports.values()
    messages = [r.message for r in reports if isinstance(r, lsp.WorkDoneProgressReport)]
    assert any("model written to" in (m or "") for m in messages), messages  # the job's own log, live
    shown = subprocess.run([sys.executable, "-m", "mljob", "job", "show", "-n", name], capture_output=True,
                           text=True, env={**os.environ, "MLJOB_HOME": str(HOME)}, timeout=120)
    assert "status: Completed" in shown.stdout and "accuracy" in shown.stdout, shown.stdout + shown.stderr


async def test_run_refuses_unsaved_changes(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    shutil.copytree(EXAMPLES / "hello", root / "hello")
    path = root / "hello" / "job.yml"
    uri = open_doc(client, path, path.read_text(encoding="utf-8") + "# edited, not saved\n")
    await diagnostics_for(client, uri, 1)
    result = await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command="mljob.runLocally", arguments=[uri, 0]))
    assert result == "job.yml: save the file first (the run uses what is on disk)"
