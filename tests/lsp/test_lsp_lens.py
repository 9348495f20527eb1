"""Code lens over the protocol: one "Validate" per job document, and its command (progress, message, result)."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import diagnostics_for, open_doc

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
JOB = CMD + "command: echo\nenvironment: azureml:e@latest\n"
TWO = "# two jobs and a conda file\n" + JOB + "---\n" + JOB + "comand: x\n---\nname: env\ndependencies: [python]\n"


async def lenses(client: LanguageClient, uri: str) -> list[lsp.CodeLens]:
    found = await client.text_document_code_lens_async(lsp.CodeLensParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri)))
    return list(found or [])


async def execute(client: LanguageClient, command: lsp.Command) -> object:
    return await client.workspace_execute_command_async(lsp.ExecuteCommandParams(
        command=command.command, arguments=command.arguments))


async def test_a_validate_lens_on_the_first_line_of_each_job(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "jobs.yml", TWO)
    await diagnostics_for(client, uri, 1)
    found = await lenses(client, uri)
    # Jobs only (not the conda file), at their first key; "Submit to" only for a compute the registry knows.
    assert [(lens.range.start.line, lens.command.title, lens.command.command) for lens in found if lens.command] == [
        (1, "▶ Run locally", "mljob.runLocally"), (1, "Validate", "mljob.validate"),
        (5, "▶ Run locally", "mljob.runLocally"), (5, "Validate", "mljob.validate")]
    assert [list(lens.command.arguments or []) for lens in found if lens.command] == [
        [uri, 0], [uri, 0], [uri, 1], [uri, 1]]


async def test_validate_reports_progress_and_a_one_line_summary(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "jobs.yml", TWO)
    await diagnostics_for(client, uri, 1)
    first, second = [lens.command for lens in await lenses(client, uri)
                     if lens.command and lens.command.command == "mljob.validate"]

    assert await execute(client, first) == "jobs.yml (document 1): valid (command job)"
    result = await execute(client, second)
    assert result == ("jobs.yml (document 2): 1 error (command job) — line 9: Unknown key `comand` in a command "
                      "job. Did you mean `command`?")
    shown = [(m.type, m.message) for m in client.messages]
    assert shown == [(lsp.MessageType.Info, f"mljob: {'jobs.yml (document 1): valid (command job)'}"),
                     (lsp.MessageType.Error, f"mljob: {result}")]
    # Both recorded clients (VS Code, Neovim) support server-initiated work-done progress.
    assert len(client.progress_reports) == 2
    for reports in client.progress_reports.values():
        assert isinstance(reports[0], lsp.WorkDoneProgressBegin) and reports[0].title == "Validating jobs.yml"
        assert isinstance(reports[-1], lsp.WorkDoneProgressEnd) and reports[-1].message


async def test_validate_judges_the_file_again(client: LanguageClient):
    """The lens re-runs path rules: a code folder created after opening is seen without any edit."""
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "job.yml", JOB + "code: src\n")
    assert [d.code for d in await diagnostics_for(client, uri, 1)] == ["MLJ203"]
    (lens,) = [lens for lens in await lenses(client, uri) if lens.command and lens.command.command == "mljob.validate"]
    (root / "src").mkdir()
    client.published.pop(uri)  # type: ignore[attr-defined]
    assert lens.command is not None and await execute(client, lens.command) == "job.yml: valid (command job)"
    assert await diagnostics_for(client, uri, 1) == []


async def test_validate_of_a_closed_file_or_bad_arguments_answers(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    closed = (root / "gone.yml").as_uri()
    assert await execute(client, lsp.Command(title="", command="mljob.validate", arguments=[closed])) is None
    assert await execute(client, lsp.Command(title="", command="mljob.validate", arguments=[])) is None
    assert await execute(client, lsp.Command(title="", command="mljob.validate", arguments=[42, "x"])) is None
    assert [m.type for m in client.messages] == [lsp.MessageType.Warning] * 3
    uri = open_doc(client, root / "broken.yml", "command: [\n")
    await diagnostics_for(client, uri, 1)
    assert await lenses(client, uri) == []
    result = await execute(client, lsp.Command(title="", command="mljob.validate", arguments=[uri]))
    assert isinstance(result, str) and result.startswith("broken.yml: 1 error — line 2: YAML syntax error")


SWEEP = """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: echo ${{search_space.x}}
  environment: azureml:e@latest
sampling_algorithm: random
search_space: {x: {type: uniform, min_value: 0, max_value: 1}}
objective: {goal: minimize, primary_metric: loss}
---
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
type: pipeline
jobs: {a: {type: command, command: echo, environment: azureml:e@latest}}
"""


async def test_sweeps_run_too_pipelines_do_not(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "sweep.yml", SWEEP)
    await diagnostics_for(client, uri)
    titles = [(lens.range.start.line, lens.command.title) for lens in await lenses(client, uri) if lens.command]
    assert (0, "▶ Run locally") in titles and not any(t == "▶ Run locally" and line > 0 for line, t in titles)
