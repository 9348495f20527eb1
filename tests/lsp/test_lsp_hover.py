"""Hover over the protocol: keys, values, expressions, `$schema`, deprecations; broken text, UTF-16, CRLF."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types as lsp
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

SWEEP = """$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: >-
    python train.py --epochs ${{inputs.epochs}}
    --lr ${{search_space.lr}} --again {inputs.epochs}
  environment: azureml:e@latest
inputs:
  epochs: 10
algorithm: random
search_space:
  lr:
    type: uniform
    min_value: 0.01
    max_value: 0.1
objective:
  primary_metric: acc
  goal: maximize
"""


async def hover(client: LanguageClient, uri: str, line: int, character: int) -> lsp.Hover | None:
    return await client.text_document_hover_async(lsp.HoverParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), position=lsp.Position(line=line, character=character)))


def text_of(found: lsp.Hover | None) -> str:
    assert found is not None and isinstance(found.contents, lsp.MarkupContent)
    return found.contents.value


def span(found: lsp.Hover | None) -> tuple[int, int, int, int]:
    assert found is not None and found.range is not None
    r = found.range
    return r.start.line, r.start.character, r.end.line, r.end.character


async def test_hover_keys_values_expressions_and_schema(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "sweep.yml", SWEEP)

    schema = await hover(client, uri, 0, 40)
    assert text_of(schema).startswith("**Sweep job** (job kind `sweep`)")
    assert "`sweepJob.schema.json`" in text_of(schema)

    goal = await hover(client, uri, 17, 9)
    assert text_of(goal).startswith("`maximize` — ")
    assert span(goal) == (17, 8, 17, 16)

    epochs = await hover(client, uri, 4, 35)
    assert text_of(epochs) == "**inputs.epochs** (line 9)\n\n```yaml\nepochs: 10\n```"
    assert span(epochs) == (4, 29, 4, 47)
    lr = await hover(client, uri, 5, 12)
    assert text_of(lr).startswith("**search_space.lr** (line 12)\n\n```yaml\nlr:\n  type: uniform\n")
    old = await hover(client, uri, 5, 40)
    assert text_of(old).startswith("**inputs.epochs** (line 9)")

    deprecated = await hover(client, uri, 9, 3)
    assert text_of(deprecated).startswith("**Deprecated:** `algorithm` is the 2021 preview syntax")

    key = await hover(client, uri, 13, 6)
    assert text_of(key).startswith("**min_value**")
    assert text_of(await hover(client, uri, 15, 0)).startswith("**objective**")  # at the first column
    assert await hover(client, uri, 16, 1) is None  # in the indentation
    assert await hover(client, uri, 19, 0) is None  # past the end


async def test_hover_while_broken_with_utf16_and_crlf(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    text = ("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
            "description: 😀😀\ncommand: echo 😀 ${{inputs.data}}\nenvironment: azureml:e@latest\n"
            "inputs:\n  data:\n    type: uri_file\n    mode: download\n").replace("\n", "\r\n")
    uri = open_doc(client, root / "job.yml", text)
    await diagnostics_for(client, uri, 1)
    change_doc(client, uri, 2, edit=(3, 0, 3, 0, "compute: [unclosed\r\n"))  # the text no longer parses
    assert any(d.code == "MLJ002" for d in await diagnostics_for(client, uri, 2))

    data = await hover(client, uri, 2, 22)  # `😀` counts two UTF-16 units before the expression
    assert text_of(data).startswith("**inputs.data** (line 7)\n\n```yaml\ndata:\n  type: uri_file\n")
    assert span(data) == (2, 17, 2, 33)
    mode = await hover(client, uri, 8, 12)
    assert text_of(mode).startswith("`download` — Download the data")
    assert span(mode) == (8, 10, 8, 18)
