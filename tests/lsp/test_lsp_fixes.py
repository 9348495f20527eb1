"""Quick fixes over the protocol: for each kind, ask for the actions of one published diagnostic, apply the chosen
edit as the editor would, send it as a change, and check the server's next diagnostics: the fixed one is gone and
no new error appeared."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from mljob.server.edits import apply
from pytest_lsp import LanguageClient

from tests.lsp.conftest import change_doc, diagnostics_for, open_doc

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"

BROKEN = CMD + """command: python train.py --lr ${{inputs.lerning_rate}} --data ${{inputs.training_data}}
display_nme: a typo
environment: azureml:e@latest
inputs:
  learning_rate: 0.1
  unused: 3
distribution:
  type: pytorh
  process_count_per_instance: 2
limits:
  timeout: 60
---
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
trial:
  command: python t.py --lr ${{search_space.lr}}
  environment: azureml:e@latest
sampling_algorithm: random
search_space:
  lr:
    type: uniform
    min_value: 0.01
    max_value: 0.1
objective:
  primary_metric: acc
  goal: maximise
"""

PREVIEW = """# 2021 syntax; this comment stays
$schema: https://azuremlsdk2.blob.core.windows.net/latest/commandJob.schema.json
command: python train.py --n {inputs.n}
environment:
  docker:
    image: python:3.11
compute:
  target: local
inputs:
  n: 2
"""

# (code, a word of the action's title): the quick fix of each kind, applied in this order to one open document.
FIXES = [
    ("MLJ101", "Change `display_nme` to `display_name`"),
    ("MLJ107", "Change `pytorh` to `pytorch`"),
    ("MLJ104", "Change `maximise` to `maximize`"),
    ("MLJ102", "Add `limits`"),
    ("MLJ201", "Change to `inputs.learning_rate`"),
    ("MLJ201", "Define input `training_data`"),
    ("MLJ202", "Remove unused input `unused`"),
]


def errors(found: list[lsp.Diagnostic]) -> Counter[str]:
    return Counter(str(d.code) for d in found if d.severity == lsp.DiagnosticSeverity.Error)


async def actions_for(client: LanguageClient, uri: str, diagnostic: lsp.Diagnostic) -> list[lsp.CodeAction]:
    found = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=diagnostic.range,
        context=lsp.CodeActionContext(diagnostics=[diagnostic], only=[lsp.CodeActionKind.QuickFix])))
    return [a for a in found or [] if isinstance(a, lsp.CodeAction)]


async def test_each_quick_fix_applied_and_revalidated(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    text, version = BROKEN, 1
    uri = open_doc(client, root / "job.yml", text)
    published = await diagnostics_for(client, uri, version)
    for code, title in FIXES:
        candidates = [d for d in published if d.code == code]
        assert candidates, f"{code} was not published: {[d.code for d in published]}"
        chosen = None
        for diagnostic in candidates:
            for action in await actions_for(client, uri, diagnostic):
                if action.title.startswith(title) and chosen is None:
                    chosen = (diagnostic, action)  # the first, in line order: `lerning_rate` before `training_data`
        assert chosen is not None, f"no `{title}` for {code}"
        diagnostic, action = chosen
        assert action.kind == lsp.CodeActionKind.QuickFix
        assert list(action.diagnostics or []) == [diagnostic]  # bound to the diagnostic it fixes
        assert action.edit is not None and action.edit.changes is not None
        text, version = apply(text, action.edit.changes[uri]), version + 1
        change_doc(client, uri, version, text=text)
        after = await diagnostics_for(client, uri, version)
        assert (diagnostic.code, diagnostic.message) not in {(d.code, d.message) for d in after}, title
        assert not errors(after) - errors(published), f"{title} introduced {errors(after) - errors(published)}"
        published = after
    assert not errors(published), [d.message for d in published]


async def test_migration_and_schema_actions(client: LanguageClient):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "job.yml", PREVIEW)
    published = await diagnostics_for(client, uri, 1)
    deprecated = [d for d in published if d.code == "MLJ301"]
    assert len(deprecated) >= 3
    found = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri), range=deprecated[0].range,
        context=lsp.CodeActionContext(diagnostics=deprecated)))
    titles = [(a.kind, a.title) for a in found or [] if isinstance(a, lsp.CodeAction)]
    assert (lsp.CodeActionKind.QuickFix, "Write `${{inputs.n}}`") in titles
    migrate = [a for a in found or [] if isinstance(a, lsp.CodeAction) and a.kind == "source.migrate"]
    assert len(migrate) == 1 and migrate[0].edit is not None and migrate[0].edit.changes is not None
    text = apply(PREVIEW, migrate[0].edit.changes[uri])
    assert text.startswith("# 2021 syntax; this comment stays\n")
    change_doc(client, uri, 2, text=text)
    assert not [d for d in await diagnostics_for(client, uri, 2) if d.code == "MLJ301"]

    job = "type: command\ncommand: echo\nenvironment: azureml:e@latest\n"
    uri = open_doc(client, root / "typed.yml", job)
    assert await diagnostics_for(client, uri, 1) == []
    found = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri),
        range=lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=0, character=0)),
        context=lsp.CodeActionContext(diagnostics=[], only=[lsp.CodeActionKind.Source])))
    (schema,) = [a for a in found or [] if isinstance(a, lsp.CodeAction) and a.kind == "source.addSchema"]
    assert schema.edit is not None and schema.edit.changes is not None
    text = apply(job, schema.edit.changes[uri])
    assert text == "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n" + job
    change_doc(client, uri, 2, text=text)
    assert await diagnostics_for(client, uri, 2) == []


@pytest.mark.parametrize("text", ["command: [\n\t- x\n", "\ufeff---\n- a\n...\n", "a: *b\r\n"])
async def test_code_actions_on_broken_text_answer(client: LanguageClient, text: str):
    root: Path = client.root  # type: ignore[attr-defined]
    uri = open_doc(client, root / "job.yml", text)
    published = await diagnostics_for(client, uri, 1)
    found = await client.text_document_code_action_async(lsp.CodeActionParams(
        text_document=lsp.TextDocumentIdentifier(uri=uri),
        range=lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=9, character=0)),
        context=lsp.CodeActionContext(diagnostics=list(published))))
    assert found is not None
    assert not [m for m in client.log_messages if "failed" in m.message]
