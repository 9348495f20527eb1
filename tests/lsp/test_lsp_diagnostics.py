"""Diagnostics over the protocol: the same judgement as `mljob validate`, on open, on edit, on file changes."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from mljob.runner.validate import validate_text
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"


async def test_open_publishes_what_validate_says(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    text = CMD + "command: python t.py ${{inputs.lr}}\nenvironment: azureml:e@latest\ncode: src\ncomand: x\n"
    uri = open_doc(client, root / "job.yml", text)
    found = await diagnostics_for(client, uri, 1)
    expected = validate_text(text, root / "job.yml").diagnostics
    assert [(d.code, d.range.start.line, d.range.start.character, d.message) for d in found] == [
        (e.code, e.line, e.column, e.message) for e in expected]
    assert {d.code for d in found} == {"MLJ201", "MLJ203", "MLJ101"}
    assert all(d.source == "mljob" for d in found)


async def test_incremental_edit_revalidates(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    text = CMD + "command: echo\nenvironment: azureml:e@latest\nresources:\n  instance_count: 0\n"
    uri = open_doc(client, root / "job.yml", text)
    assert [d.code for d in await diagnostics_for(client, uri, 1)] == ["MLJ205"]
    change_doc(client, uri, 2, edit=(4, 18, 4, 19, "2"))
    assert await diagnostics_for(client, uri, 2) == []


async def test_utf16_columns(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    text = CMD + "description: 😀😀\ncommand: echo 😀 ${{inputs.x}}\nenvironment: azureml:e@latest\n"
    uri = open_doc(client, root / "job.yml", text)
    (found,) = await diagnostics_for(client, uri, 1)
    assert found.code == "MLJ201"
    assert (found.range.start.line, found.range.start.character) == (2, 17)  # 😀 counts two UTF-16 units


async def test_watched_files_rerun_path_rules(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    text = CMD + "command: echo\nenvironment: azureml:e@latest\ncode: src\n"
    uri = open_doc(client, root / "job.yml", text)
    assert [d.code for d in await diagnostics_for(client, uri, 1)] == ["MLJ203"]
    (root / "src").mkdir()
    client.published.pop(uri)  # type: ignore[attr-defined]
    client.workspace_did_change_watched_files(lsp.DidChangeWatchedFilesParams(changes=[
        lsp.FileEvent(uri=(root / "src").as_uri(), type=lsp.FileChangeType.Created)]))
    assert await diagnostics_for(client, uri, 1) == []


async def test_settings_turn_rules_off(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    text = CMD + "command: echo\nenvironment: azureml:e@latest\ncode: src\n"
    uri = open_doc(client, root / "job.yml", text)
    assert [d.code for d in await diagnostics_for(client, uri, 1)] == ["MLJ203"]
    client.published.pop(uri)  # type: ignore[attr-defined]
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(
        settings={"mljob": {"disabledRules": ["MLJ203"]}}))
    assert await diagnostics_for(client, uri, 1) == []


async def test_broken_and_hostile_text_never_fails(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "job.yml", CMD + "command: [\n\t- x\n---\n- a\n...\n\ufeff\r\n")
    found = await diagnostics_for(client, uri, 1)
    assert len(found) == 1 and found[0].code in ("MLJ002", "MLJ006")
    lens = await client.text_document_code_lens_async(
        lsp.CodeLensParams(text_document=lsp.TextDocumentIdentifier(uri=uri)))
    assert lens is not None


async def test_several_documents(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    job = CMD + "command: echo\nenvironment: azureml:e@latest\n"
    uri = open_doc(client, root / "job.yml", job + "---\n" + job + "comand: 1\n")
    (found,) = await diagnostics_for(client, uri, 1)
    assert (found.code, found.range.start.line) == ("MLJ101", 7)


async def test_non_job_yaml_gets_nothing(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "environment.yml", "name: env\ndependencies:\n  - python=3.11\n")
    assert await diagnostics_for(client, uri, 1) == []
