"""Navigation and structure over the protocol: definition, references, rename, outline, folding, selection."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from mljob.server.edits import apply
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

SWEEP = """$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  code: src
  command: >-
    python train.py --epochs ${{inputs.epochs}}
    --lr ${{search_space.lr}} --again {inputs.epochs}
  environment: azureml:e@latest
inputs:
  epochs: 10
sampling_algorithm: random
search_space:
  lr:
    type: uniform
    min_value: 0.01
    max_value: 0.1
objective:
  primary_metric: acc
  goal: maximize
limits:
  max_total_trials: 4
"""


def doc_id(uri: str) -> lsp.TextDocumentIdentifier:
    return lsp.TextDocumentIdentifier(uri=uri)


def at(line: int, character: int) -> lsp.Position:
    return lsp.Position(line=line, character=character)


def find(text: str, needle: str, occurrence: int = 0, offset: int = 0) -> tuple[int, int]:
    at_ = -1
    for _ in range(occurrence + 1):
        at_ = text.index(needle, at_ + 1)
    return text.count("\n", 0, at_), at_ - (text.rfind("\n", 0, at_) + 1) + offset


def spans(locations: list[lsp.Location] | None) -> list[tuple[int, int, int, int]]:
    return [(x.range.start.line, x.range.start.character, x.range.end.line, x.range.end.character)
            for x in locations or []]


def name(text: str, needle: str, occurrence: int = 0, offset: int = 0, length: int = 6) -> tuple[int, int, int, int]:
    line, character = find(text, needle, occurrence, offset)
    return line, character, line, character + length


async def definition(client: LanguageClient, uri: str, position: tuple[int, int]) -> list[lsp.Location]:
    found = await client.text_document_definition_async(lsp.DefinitionParams(
        text_document=doc_id(uri), position=at(*position)))
    assert isinstance(found, list | None)
    return found or []  # type: ignore[return-value]


async def rename(client: LanguageClient, uri: str, position: tuple[int, int], new: str) -> lsp.WorkspaceEdit | None:
    return await client.text_document_rename_async(lsp.RenameParams(
        text_document=doc_id(uri), position=at(*position), new_name=new))


async def test_definition_references_and_rename(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    (root / "src").mkdir()
    uri = open_doc(client, root / "job.yml", SWEEP)
    before = await diagnostics_for(client, uri, 1)
    assert [d.code for d in before] == ["MLJ301"]  # the 2021 `{inputs.epochs}`: a warning, not an error

    epochs_key = name(SWEEP, "  epochs:", 0, 2)
    found = await definition(client, uri, find(SWEEP, "${{inputs.epochs}}", 0, 12))
    assert spans(found) == [epochs_key]
    found = await definition(client, uri, find(SWEEP, "${{search_space.lr}}", 0, 17))
    assert spans(found) == [name(SWEEP, "  lr:", 0, 2, 2)]
    found = await definition(client, uri, find(SWEEP, "code: src", 0, 7))
    assert [x.uri for x in found] == [(root / "src").as_uri()]  # a folder: its location

    refs = await client.text_document_references_async(lsp.ReferenceParams(
        text_document=doc_id(uri), position=at(*find(SWEEP, "  epochs:", 0, 3)),
        context=lsp.ReferenceContext(include_declaration=True)))
    assert spans(refs) == [epochs_key, name(SWEEP, "${{inputs.epochs}}", 0, 10),  # both syntaxes
                           name(SWEEP, "{inputs.epochs}", 1, 8)]

    use = find(SWEEP, "{inputs.epochs}", 1, 10)
    prepared = await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(
        text_document=doc_id(uri), position=at(*use)))
    assert prepared is not None
    assert await client.text_document_prepare_rename_async(lsp.PrepareRenameParams(
        text_document=doc_id(uri), position=at(1, 2))) is None

    edit = await rename(client, uri, use, "num_epochs")
    assert edit is not None and edit.changes is not None
    renamed = apply(SWEEP, edit.changes[uri])
    assert renamed.count("inputs.num_epochs") == 2 and "  num_epochs: 10\n" in renamed
    change_doc(client, uri, 2, text=renamed)
    assert [d.code for d in await diagnostics_for(client, uri, 2)] == ["MLJ301"]  # nothing became undefined
    assert await rename(client, uri, use, "bad name") is None


async def test_outline_folding_and_selection(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "job.yml", SWEEP + "---\n" + SWEEP.replace("epochs", "steps"))
    await diagnostics_for(client, uri, 1)

    outline = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc_id(uri)))
    assert outline is not None and [s.name for s in outline] == ["sweep job", "sweep job"]
    first = outline[0]
    assert isinstance(first, lsp.DocumentSymbol)
    children = {c.name: c for c in first.children or []}
    assert [c.name for c in children["inputs"].children or []] == ["epochs"]
    assert [c.name for c in children["search_space"].children or []] == ["lr"]
    assert children["inputs"].children[0].kind == lsp.SymbolKind.Variable  # type: ignore[index]
    assert outline[1].range.start.line == 22

    folds = await client.text_document_folding_range_async(lsp.FoldingRangeParams(text_document=doc_id(uri)))
    assert {(f.start_line, f.end_line) for f in folds or []} >= {(2, 7), (4, 6), (11, 15), (12, 15), (24, 29)}

    (selection,) = await client.text_document_selection_range_async(lsp.SelectionRangeParams(
        text_document=doc_id(uri), positions=[at(*find(SWEEP, "search_space.lr", 0, 3))])) or []
    ranges = []
    node: lsp.SelectionRange | None = selection
    while node is not None:
        ranges.append((node.range.start.line, node.range.start.character, node.range.end.line,
                       node.range.end.character))
        node = node.parent
    assert ranges[:3] == [(6, 12, 6, 27), (6, 9, 6, 29), (6, 4, 6, 53)]  # word, expression, line
    assert ranges[-1] == (0, 0, 20, 21)


async def test_navigation_on_broken_text_answers_empty(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "job.yml", "command: [\n\t- ${{inputs.x}}\r\n---\n- a\n")
    await diagnostics_for(client, uri, 1)
    assert not await definition(client, uri, (1, 8))
    identifier = doc_id(uri)
    assert not await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=identifier))
    assert not await client.text_document_folding_range_async(lsp.FoldingRangeParams(text_document=identifier))
    assert await rename(client, uri, (1, 8), "y") is None
    assert not [m for m in client.log_messages if "failed" in m.message]  # answered, not caught
