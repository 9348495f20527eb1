"""Completion over the protocol, in each context the editor meets: while typing, in broken text, in UTF-16."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from mljob import schemas
from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
SWEEP = "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
FLOW = "$schema: https://azuremlschemas.azureedge.net/promptflow/latest/Flow.schema.json\n"
MARK = "‸"


def split(text: str) -> tuple[str, int, int]:
    """Text without the cursor mark, and the mark's LSP position (UTF-16 units)."""
    line = text[: text.index(MARK)].count("\n")
    before = text[: text.index(MARK)].rsplit("\n", 1)[-1]
    return text.replace(MARK, "", 1), line, len(before.encode("utf-16-le")) // 2


async def complete(client: LanguageClient, uri: str, line: int, character: int) -> list[lsp.CompletionItem]:
    result = await client.text_document_completion_async(lsp.CompletionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=line, character=character)))
    assert result is not None
    return result.items if isinstance(result, lsp.CompletionList) else result


async def complete_text(client: LanguageClient, text: str, name: str = "job.yml") -> list[lsp.CompletionItem]:
    root: Path = client.root  # type: ignore[attr-defined]
    clean, line, character = split(text)
    uri = open_doc(client, root / name, clean)
    return await complete(client, uri, line, character)


def ordered(found: list[lsp.CompletionItem]) -> list[str]:
    return [i.label for i in sorted(found, key=lambda i: (i.sort_text or "", i.label))]


def edit_of(item: lsp.CompletionItem) -> tuple[int, int, int, str]:
    assert isinstance(item.text_edit, lsp.TextEdit)
    r = item.text_edit.range
    return r.start.line, r.start.character, r.end.character, item.text_edit.new_text


async def test_empty_document_skeletons_and_schema_lines(client: LanguageClient):
    found = await complete_text(client, MARK)
    snippets = {i.label: i for i in found if i.kind == lsp.CompletionItemKind.Snippet}
    assert set(snippets) == {"command job", "sweep job", "Pipeline job", "Spark job (serverless)",
                             "AutoML classification job"}
    assert snippets["sweep job"].insert_text_format == lsp.InsertTextFormat.Snippet
    assert edit_of(snippets["sweep job"])[3].startswith("\\$schema: https://azuremlschemas.azureedge.net/latest/"
                                                        "sweepJob.schema.json\ntype: sweep\ntrial:")
    assert sum(1 for i in found if i.label.startswith("$schema: ")) == len(schemas.entries())


async def test_keys_root_nested_list_and_flow(client: LanguageClient):
    root_keys = await complete_text(client, CMD + "code: src\n" + MARK, "root.yml")
    assert ordered(root_keys)[:2] == ["command", "environment"]
    assert "code" not in ordered(root_keys)
    resources = next(i for i in root_keys if i.label == "resources")
    assert edit_of(resources) == (2, 0, 0, "resources:\n  $0")
    assert resources.documentation.value.startswith("Compute resources for the job")

    nested = await complete_text(client, CMD + "resources:\n  instance_count: 2\n  " + MARK, "nested.yml")
    assert "instance_count" not in ordered(nested) and "shm_size" in ordered(nested)
    assert edit_of(next(i for i in nested if i.label == "shm_size")) == (3, 2, 2, "shm_size: ")

    items = await complete_text(client, FLOW + "nodes:\n  - name: a\n    " + MARK, "flow.yml")
    assert "name" not in ordered(items) and "source" in ordered(items)

    flow = await complete_text(client, CMD + "distribution: {type: pytorch, " + MARK + "}", "flowmap.yml")
    assert ordered(flow) == ["process_count_per_instance", "process_count"]
    deprecated = next(i for i in flow if i.label == "process_count")
    assert list(deprecated.tags or ()) == [lsp.CompletionItemTag.Deprecated]


async def test_values(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    registry = root / "computes.yml"
    registry.write_text("computes:\n  gpu-box: {type: process}\n", encoding="utf-8")
    envs = root / "environments.yml"
    envs.write_text("environments:\n  sklearn: python:3.11-slim\n", encoding="utf-8")
    settings = {"computeRegistry": str(registry), "environmentsFile": str(envs)}
    # What the server pulls (workspace/configuration, at start) and what it is pushed must agree, whichever is last.
    client.set_configuration(settings, section="mljob")
    client.workspace_did_change_configuration(lsp.DidChangeConfigurationParams(settings={"mljob": settings}))

    text = (CMD + "compute: \nenvironment: azureml:\ninputs:\n  x:\n    type: uri_file\n    mode: \n"
            "    optional: \n")
    uri = open_doc(client, root / "values.yml", text)
    computes = await complete(client, uri, 1, 9)
    assert {"local", "azureml:process", "azureml:gpu-box"} <= set(ordered(computes))
    environments = await complete(client, uri, 2, 21)
    assert edit_of(next(i for i in environments if i.label == "azureml:sklearn@latest")) == (
        2, 13, 21, "azureml:sklearn@latest")
    modes = await complete(client, uri, 6, 10)
    assert ordered(modes) == ["ro_mount", "download", "direct", "eval_mount", "eval_download", "mount"]
    assert next(i for i in modes if i.label == "direct").documentation.value.startswith("Pass the storage URI")
    booleans = await complete(client, uri, 7, 14)
    assert ordered(booleans)[:2] == ["true", "false"]

    schema_urls = await complete_text(client, "$schema: " + MARK, "schema.yml")
    assert ordered(schema_urls)[0] == "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"


async def test_expressions_and_paths(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    (root / "src").mkdir()
    (root / "env").mkdir()
    (root / "env" / "conda.yml").write_text("", encoding="utf-8")
    text = (CMD + "command: python t.py ${{\ncode: \nenvironment:\n  image: x\n  conda_file: env/\n"
            "inputs:\n  epochs: 3\n  data:\n    type: uri_folder\n    path: ./data\n")
    uri = open_doc(client, root / "job.yml", text)
    assert ordered(await complete(client, uri, 1, 24)) == ["inputs.", "outputs."]
    change_doc(client, uri, 2, edit=(1, 24, 1, 24, "inputs."))
    names = await complete(client, uri, 1, 31)
    assert [edit_of(i)[3] for i in sorted(names, key=lambda i: i.label)] == ["data}}", "epochs}}"]
    assert ordered(await complete(client, uri, 2, 6)) == ["env/", "src/"]
    conda = await complete(client, uri, 5, 18)
    assert [(i.label, edit_of(i)) for i in conda] == [("conda.yml", (5, 18, 18, "conda.yml"))]

    sweep = await complete_text(client, SWEEP + "type: sweep\ntrial:\n  command: >-\n    python t.py {inputs." + MARK
                                + "\ninputs:\n  epochs: 3\n", "sweep.yml")
    assert [edit_of(i)[3] for i in sweep] == ["epochs}"]
    spaces = await complete_text(client, SWEEP + "type: sweep\ntrial:\n  command: python ${{" + MARK, "sweep2.yml")
    assert ordered(spaces) == ["inputs.", "outputs.", "search_space."]


async def test_completion_while_typing_broken_text(client: LanguageClient):
    """Edits leave the text unparseable (an unclosed `[`, a bare `  co`, a tab): completion still answers."""
    root: Path = client.root  # type: ignore[attr-defined]
    text = CMD + "command: echo\nenvironment:\n  image: x\n"
    uri = open_doc(client, root / "typing.yml", text)
    await diagnostics_for(client, uri, 1)
    change_doc(client, uri, 2, edit=(1, 14, 1, 14, " [unclosed"))  # `command: echo [unclosed`
    change_doc(client, uri, 3, edit=(4, 0, 4, 0, "  co"))  # a half-typed key under environment
    assert any(d.code == "MLJ002" for d in await diagnostics_for(client, uri, 3))
    assert "conda_file" in ordered(await complete(client, uri, 4, 4))

    change_doc(client, uri, 4, edit=(4, 0, 4, 4, "resou"))  # now a half-typed root key
    found = await complete(client, uri, 4, 5)
    assert "resources" in ordered(found)
    assert edit_of(next(i for i in found if i.label == "resources"))[:3] == (4, 0, 5)

    change_doc(client, uri, 5, edit=(4, 0, 4, 5, "resources:\n\tinst"))  # a tab for indentation
    assert any(d.code == "MLJ006" for d in await diagnostics_for(client, uri, 5))
    assert "instance_count" in ordered(await complete(client, uri, 5, 5))

    change_doc(client, uri, 6, edit=(5, 0, 5, 5, "distribution: {type: "))
    assert ordered(await complete(client, uri, 5, 21)) == ["pytorch", "tensorflow", "mpi", "ray"]


async def test_utf16_crlf_and_several_documents(client: LanguageClient):
    emoji = CMD + "description: 😀😀\ninputs:\n  x:\n    mode: 😀d" + MARK
    found = await complete_text(client, emoji, "emoji.yml")
    download = next(i for i in found if i.label == "download")
    assert edit_of(download)[:3] == (4, 10, 13)  # the emoji is two UTF-16 units, the edit replaces `😀d`

    crlf = (CMD + "resources:\n  shm_size: 2g\n  " + MARK + "\n").replace("\n", "\r\n")
    found = await complete_text(client, crlf, "crlf.yml")
    assert "instance_count" in ordered(found) and "shm_size" not in ordered(found)

    several = SWEEP + "type: sweep\n---\n" + CMD + MARK + "\n---\nname: conda\n"
    found = await complete_text(client, several, "several.yml")
    assert ordered(found)[:2] == ["command", "environment"] and "trial" not in ordered(found)
