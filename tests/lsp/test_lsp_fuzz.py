"""Random documents and random edits (hypothesis) against one running server: every request is answered without an
error, completion and hover never fail inside, and diagnostics keep coming for the latest version."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import pytest
import pytest_lsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.lsp.conftest import _remember_versions, diagnostics_for

SERVER = [sys.executable, "-m", "mljob", "lsp"]

# Pieces of job files and of what typing leaves behind: keys, values, expressions, lists, flow collections cut
# short, block scalars, document markers, anchors, tabs, emoji, a BOM, odd line separators.
FRAGMENTS = [
    "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
    "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
    "$schema: https://azuremlschemas.azureedge.net/promptflow/latest/Flow.schema.json",
    "$schema: ./missing.schema.json", "# yaml-language-server: $schema=./nothing.json",
    "type: command", "type: sweep", "type: pipeline", "command: python t.py ${{inputs.x}} {inputs.y}",
    "command: >-", "  python t.py", "  --lr ${{search_space.lr}}", "  --x ${{", "inputs:", "  x: 1", "  y:",
    "    type: uri_file", "    mode: download", "    path: data/", "outputs:", "  m:", "search_space:", "  lr:",
    "    type: choice", "    values: [0.1, 0.2", "trial:", "  command: echo", "resources:", "  instance_count: 2",
    "  shm_size: 2g", "distribution: {type: pytorch, ", "distribution:", "  type: mpi", "args: [a, b",
    "nodes:", "  - name: a", "  - ", "- item", "---", "...", "\t\tco", "  co", "co", "environment: azureml:",
    "environment:", "  image: x", "  build:", "    path: docker", "code: ../", "code: src", "compute: ",
    "😀: ok 😀", "key: 'unclosed", "key: \"esc\\\"aped", "base: &a {x: 1}", "<<: *a", "? complex", "%YAML 1.2",
    "\ufeff", "\u2028", "\x85", "a:\tb", ": :", "- - - x", "{", "}", "[", "]", "${{inputs.", "{{", "|", ">",
]
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24)
LINE = st.one_of(st.sampled_from(FRAGMENTS), TEXT)
DOCUMENT = st.builds(lambda rows, eol: eol.join(rows), st.lists(LINE, max_size=25), st.sampled_from(["\n", "\r\n"]))
OPERATION = st.one_of(
    st.tuples(st.just("edit"), st.floats(0, 1), st.floats(0, 1), st.one_of(LINE, st.sampled_from(["\n", "\r\n"]))),
    st.tuples(st.just("replace"), DOCUMENT),
    st.tuples(st.sampled_from(["complete", "hover", "complete", "hover", "other"]), st.integers(-1, 40),
              st.integers(-1, 120)),
)
_uris = itertools.count()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER))
async def fuzz_client(lsp_client: LanguageClient, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fuzz")
    (root / "src").mkdir()
    (root / "data").mkdir()
    _remember_versions(lsp_client)
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=root.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name="fuzz")]))
    lsp_client.root = root  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def position(text: str, offset: int) -> lsp.Position:
    """A code-point offset into the text → an LSP position (lines split at \\n, UTF-16 characters)."""
    before = text[:offset]
    line = before.count("\n")
    start = before.rfind("\n") + 1
    return lsp.Position(line=line, character=len(before[start:].encode("utf-16-le")) // 2)


def failures(client: LanguageClient) -> list[str]:
    return [m.message for m in client.log_messages if m.type == lsp.MessageType.Error
            and ("completion failed" in m.message or "hover failed" in m.message)]


async def ask(client: LanguageClient, uri: str, kind: str, line: int, character: int) -> None:
    doc = lsp.TextDocumentIdentifier(uri=uri)
    where = lsp.Position(line=max(line, 0), character=max(character, 0))
    if kind == "complete":
        await client.text_document_completion_async(lsp.CompletionParams(text_document=doc, position=where))
    elif kind == "hover":
        await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=where))
    else:
        await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc))
        await client.text_document_folding_range_async(lsp.FoldingRangeParams(text_document=doc))
        await client.text_document_code_lens_async(lsp.CodeLensParams(text_document=doc))


SLOW = settings(deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@settings(SLOW, max_examples=500)
@given(start=DOCUMENT, operations=st.lists(OPERATION, min_size=1, max_size=14))
async def test_random_edits_are_answered(fuzz_client: LanguageClient, start: str,
                                         operations: list[tuple]) -> None:
    client = fuzz_client
    root: Path = client.root  # type: ignore[attr-defined]
    uri = (root / f"job{next(_uris)}.yml").as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=start)))
    text, version = start, 1
    for operation in operations:
        kind = operation[0]
        if kind in ("edit", "replace"):
            version += 1
            if kind == "edit":
                _, a, b, new = operation
                first, last = sorted((int(a * len(text)), int(b * len(text))))
                change: lsp.TextDocumentContentChangeEvent = lsp.TextDocumentContentChangePartial(
                    range=lsp.Range(start=position(text, first), end=position(text, last)), text=new)
                text = text[:first] + new + text[last:]
            else:
                change = lsp.TextDocumentContentChangeWholeDocument(text=operation[1])
                text = operation[1]
            client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[change]))
        else:
            await ask(client, uri, kind, operation[1], operation[2])
    await diagnostics_for(client, uri, version)  # the server still publishes, for the latest text
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri=uri)))
    assert failures(client) == []


@settings(SLOW, max_examples=1000)
@given(text=DOCUMENT, places=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 80)), min_size=1, max_size=4))
async def test_random_documents_are_answered(fuzz_client: LanguageClient, text: str,
                                            places: list[tuple[int, int]]) -> None:
    client = fuzz_client
    root: Path = client.root  # type: ignore[attr-defined]
    uri = (root / f"doc{next(_uris)}.yaml").as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="yaml", version=1, text=text)))
    lines = text.split("\n")
    for line, character in places:
        # Mostly positions inside the text (where the interesting contexts are), some beyond it.
        if line < len(lines) and line % 5:
            character = min(character, len(lines[line].encode("utf-16-le")) // 2)
        await ask(client, uri, "complete", line, character)
        await ask(client, uri, "hover", line, character)
    await diagnostics_for(client, uri, 1)
    client.text_document_did_close(lsp.DidCloseTextDocumentParams(lsp.TextDocumentIdentifier(uri=uri)))
    assert failures(client) == []
