"""Quick fixes as plain functions (server/fixes.py). Every fix is APPLIED to the text and the result re-validated
with validate_text: the diagnostic it fixes is gone and no new error appears."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from mljob.runner.diagnostics import Severity
from mljob.runner.validate import validate_text
from mljob.server import fixes
from mljob.server.convert import to_diagnostic
from mljob.server.edits import apply, diff
from mljob.server.features import FeatureContext
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument

from mljob import schemas
from tests.realparts import CORPUS_HOW, needs

CTX = FeatureContext(ServerSettings())
EVERYWHERE = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=100_000, character=0))
CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
SWEEP = "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
SEED = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "seed-2021"


def doc(text: str, path: Path | None = None) -> OpenDocument:
    return OpenDocument.open(path.as_uri() if path else "untitled:job.yml", text, 1)


def actions(text: str, path: Path | None = None, rng: lsp.Range = EVERYWHERE) -> list[lsp.CodeAction]:
    """What a client gets when it sends back the diagnostics it was given (as VS Code and Neovim do)."""
    d = doc(text, path)
    analysis = d.analysis(CTX.settings.validation(), CTX.generation)
    sent = [to_diagnostic(d.positions, x) for x in analysis.diagnostics]
    return fixes.code_actions(d, rng, sent, CTX)


def fix_for(text: str, code: str, title: str | None = None, path: Path | None = None) -> lsp.CodeAction:
    found = [a for a in actions(text, path) if a.diagnostics and a.diagnostics[0].code == code
             and (title is None or title in a.title)]
    assert found, f"no fix for {code} ({title}) in {[a.title for a in actions(text, path)]}"
    return found[0]


def applied(text: str, action: lsp.CodeAction, path: Path | None = None) -> str:
    assert action.edit is not None and action.edit.changes is not None
    uri = doc(text, path).uri
    assert list(action.edit.changes) == [uri]
    return apply(text, action.edit.changes[uri])


def errors(text: str, path: Path | None = None) -> Counter[str]:
    return Counter(d.code for d in validate_text(text, path).diagnostics if d.severity == Severity.ERROR)


def assert_fixed(text: str, action: lsp.CodeAction, path: Path | None = None) -> str:
    """Apply, re-validate: each bound diagnostic is gone and no error appeared that was not there before.

    Errors are counted per code: their messages may change when a fix changes what they list (`inputs` defines …).
    """
    after = applied(text, action, path)
    before_all = Counter(d.code for d in validate_text(text, path).diagnostics)
    after_found = validate_text(after, path).diagnostics
    after_all = Counter(d.code for d in after_found)
    for bound in action.diagnostics or []:
        assert (str(bound.code), bound.message) not in {(d.code, d.message) for d in after_found}, \
            f"{action.title}: {bound.message} is still there"
        assert after_all[str(bound.code)] < before_all[str(bound.code)], f"{action.title} fixed no {bound.code}"
    new = errors(after, path) - errors(text, path)
    assert not new, f"{action.title} introduced {dict(new)}:\n{after}"
    return after


# --- MLJ101 / MLJ104 / MLJ107: the nearest valid spelling -----------------------------------------------------------

TYPOS = CMD + """comand: python train.py
environment: azureml:e@latest
distribution:
  type: pytorh
resources:
  instance_count: 1
"""


def test_misspelt_key() -> None:
    action = fix_for(TYPOS, "MLJ101")
    assert (action.title, action.kind, action.is_preferred) == ("Change `comand` to `command`",
                                                                lsp.CodeActionKind.QuickFix, True)
    assert "command: python train.py" in assert_fixed(TYPOS, action)


def test_misspelt_union_type() -> None:
    action = fix_for(TYPOS, "MLJ107")
    assert action.title == "Change `pytorh` to `pytorch`" and action.is_preferred
    assert "  type: pytorch\n" in assert_fixed(TYPOS, action)


SWEEP_TYPOS = SWEEP + """type: sweep
trial:
  command: python t.py --lr ${{search_space.lr}}
  environment: azureml:e@latest
sampling_algorithm: randm
search_space:
  lr:
    type: uniform
    min_value: 0.01
    max_value: 0.1
objective:
  primary_metric: acc
  goal: "maximise"
limits:
  max_total_trials: 4
"""


def test_enum_values_keep_their_quotes_and_get_a_suggestion_even_without_one_in_data() -> None:
    after = assert_fixed(SWEEP_TYPOS, fix_for(SWEEP_TYPOS, "MLJ104", "maximise"))
    assert '  goal: "maximize"\n' in after
    # The walker leaves replace_with empty for this one (a union branch in trial mode); `allowed` is enough.
    after = assert_fixed(SWEEP_TYPOS, fix_for(SWEEP_TYPOS, "MLJ104", "randm"))
    assert "sampling_algorithm: random\n" in after


def test_no_rename_onto_an_existing_key() -> None:
    text = CMD + "command: echo\ncomand: x\nenvironment: azureml:e@latest\n"
    assert not [a for a in actions(text) if a.diagnostics and a.diagnostics[0].code == "MLJ101"]


# --- MLJ102: add a missing required key -----------------------------------------------------------------------------


def test_missing_top_level_key_with_the_schema_example() -> None:
    text = CMD + "command: python train.py\n"
    action = fix_for(text, "MLJ102")
    assert action.title == "Add `environment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest`"
    assert assert_fixed(text, action).endswith(
        "command: python train.py\nenvironment: azureml://registries/azureml/environments/sklearn-1.5/labels/latest\n")


def test_missing_nested_key_at_the_right_indentation() -> None:
    text = CMD + "command: echo ${{inputs.d}}\nenvironment: azureml:e@latest\ninputs:\n  d:\n    type: uri_folder\n" \
        "    mode: ro_mount\nresources:\n  instance_count: 1\n"
    after = assert_fixed(text, fix_for(text, "MLJ102"))
    assert "    mode: ro_mount\n    path: azureml://datastores/" in after
    assert validate_text(after).diagnostics == []


def test_missing_mappings_of_a_sweep_are_filled_from_the_schema() -> None:
    text = SWEEP + "type: sweep\ntrial:\n  command: python t.py --lr ${{search_space.lr}}\n" \
        "  environment: azureml:e@latest\nsampling_algorithm: random\nsearch_space:\n  lr:\n    type: uniform\n" \
        "    min_value: 0.01\n    max_value: 0.1\n"
    after = assert_fixed(text, fix_for(text, "MLJ102", "objective"))
    assert "\nobjective:\n  primary_metric: accuracy\n  goal: maximize" in after
    after = assert_fixed(after, fix_for(after, "MLJ102", "limits"))
    assert validate_text(after).diagnostics == []


def test_missing_key_in_a_flow_mapping_and_without_a_final_line_break() -> None:
    text = CMD + "command: echo\nenvironment: azureml:e@latest\ndistribution: {process_count_per_instance: 2}"
    after = assert_fixed(text, fix_for(text, "MLJ102"))
    assert after.endswith("distribution: {process_count_per_instance: 2, type: pytorch}")
    text = CMD + "environment: azureml:e@latest"
    assert assert_fixed(text, fix_for(text, "MLJ102")).endswith("azureml:e@latest\ncommand: python main.py")


@pytest.mark.parametrize("entry", schemas.entries(), ids=lambda e: e.kind)
def test_every_kind_can_be_completed_from_its_schema_line_alone(entry: schemas.CatalogEntry) -> None:
    """From `$schema:` alone, applying each "add missing key" in turn ends in a file with no error at all."""
    text = f"$schema: {entry.url}\n"
    for _ in range(20):
        found = [a for a in actions(text) if a.diagnostics and a.diagnostics[0].code == "MLJ102"]
        if not found:
            break
        text = assert_fixed(text, found[0])
    assert not errors(text), text


# --- MLJ201 / MLJ202: names the command uses ------------------------------------------------------------------------

USES = CMD + """command: >-
  python train.py --epochs ${{inputs.epochs}} --lr ${{inputs.lerning_rate}}
  --data ${{inputs.training_data}} --out ${{outputs.model}}
environment: azureml:e@latest
inputs:
  epochs: 10
  learning_rate: 0.1
  unused: 3
"""


def test_undefined_input_renamed_to_the_nearest_or_defined() -> None:
    rename = fix_for(USES, "MLJ201", "Change to")
    assert rename.title == "Change to `inputs.learning_rate`" and rename.is_preferred
    assert "${{inputs.learning_rate}}" in assert_fixed(USES, rename)
    define = fix_for(USES, "MLJ201", "Define input `lerning_rate`")
    assert not define.is_preferred
    assert "  unused: 3\n  lerning_rate: 1\n" in assert_fixed(USES, define)


def test_undefined_data_input_gets_a_data_placeholder_and_outputs_get_an_outputs_block() -> None:
    after = assert_fixed(USES, fix_for(USES, "MLJ201", "Define input `training_data`"))
    assert "  training_data:\n    type: uri_folder\n    path: azureml:training_data@latest\n" in after
    after = assert_fixed(USES, fix_for(USES, "MLJ201", "Define output `model`"))
    assert after.endswith("  unused: 3\noutputs:\n  model:\n    type: uri_folder\n")


def test_define_the_first_input_of_a_job_and_in_a_sweep() -> None:
    text = CMD + "command: echo ${{inputs.n}}\nenvironment: azureml:e@latest\n"
    assert assert_fixed(text, fix_for(text, "MLJ201")).endswith("azureml:e@latest\ninputs:\n  n: 1\n")
    text = SWEEP_TYPOS.replace("--lr ${{search_space.lr}}", "--lr ${{search_space.lr}} --b ${{search_space.b}}")
    after = assert_fixed(text, fix_for(text, "MLJ201", "Define"))
    assert "    max_value: 0.1\n  b:\n    type: choice\n    values:\n    - 1\n" in after


def test_remove_an_unused_input() -> None:
    action = fix_for(USES, "MLJ202", "`unused`")
    assert action.title == "Remove unused input `unused`" and not action.is_preferred
    after = assert_fixed(USES, action)
    assert after.endswith("  learning_rate: 0.1\n") and "unused" not in after


def test_remove_the_only_input_removes_the_block_but_not_the_only_search_space_entry() -> None:
    text = CMD + "command: echo\nenvironment: azureml:e@latest\ninputs:\n  only:\n    type: uri_file\n" \
        "    path: azureml:x@latest\ncompute: local\n"
    after = assert_fixed(text, fix_for(text, "MLJ202"))
    assert after == CMD + "command: echo\nenvironment: azureml:e@latest\ncompute: local\n"
    text = SWEEP_TYPOS.replace("${{search_space.lr}}", "1")
    assert not [a for a in actions(text) if a.diagnostics and a.diagnostics[0].code == "MLJ202"]


# --- MLJ301: 2021 syntax --------------------------------------------------------------------------------------------

PREVIEW = """# A 2021 job: comments must survive the migration.
$schema: https://azuremlsdk2.blob.core.windows.net/latest/commandJob.schema.json
code:
  local_path: src  # the code
command: python train.py --data {inputs.data}
environment:
  docker:
    image: python:3.11
compute:
  target: local
inputs:
  data:
    data: azureml:iris:1
"""


def test_one_2021_reference_at_a_time() -> None:
    action = fix_for(PREVIEW, "MLJ301", "Write")
    assert action.title == "Write `${{inputs.data}}`" and action.is_preferred
    assert "--data ${{inputs.data}}\n" in assert_fixed(PREVIEW, action)


def test_migrate_the_whole_file_keeps_comments(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    path = tmp_path / "job.yml"
    everything = actions(PREVIEW, path)
    quick = [a for a in everything if a.kind == lsp.CodeActionKind.QuickFix and "Migrate" in a.title]
    source = [a for a in everything if a.kind == fixes.MIGRATE_KIND]
    assert len(quick) == 1 and len(source) == 1
    deprecated = [d for d in validate_text(PREVIEW, path).diagnostics if d.code == "MLJ301"]
    assert len(quick[0].diagnostics or []) == len(deprecated) > 1  # bound to every 2021 diagnostic it fixes
    after = assert_fixed(PREVIEW, quick[0], path)
    assert applied(PREVIEW, source[0], path) == after
    assert "# A 2021 job" in after and "code: src  # the code" in after
    assert not [d for d in validate_text(after, path).diagnostics if d.code == "MLJ301"]


@needs(SEED.is_dir(), "../shared/corpus is not beside the project", CORPUS_HOW)
@pytest.mark.parametrize("name", sorted(str(p.relative_to(SEED)) for p in SEED.rglob("*.yml")) if SEED.is_dir()
                         else [])
def test_migrate_every_2021_corpus_file(name: str, tmp_path: Path) -> None:
    original = SEED / name
    shutil.copytree(original.parent, tmp_path / "job", dirs_exist_ok=True)
    path = tmp_path / "job" / original.name
    text = path.read_text(encoding="utf-8")
    found = [a for a in actions(text, path) if a.kind == fixes.MIGRATE_KIND]
    if not any(d.code == "MLJ301" for d in validate_text(text, path).diagnostics):
        assert found == []
        return
    (action,) = found
    after = applied(text, action, path)
    assert not [d for d in validate_text(after, path).diagnostics if d.code == "MLJ301"]
    assert not errors(after, path) - errors(text, path)


def test_migration_edits_are_minimal_and_crlf_safe() -> None:
    text = PREVIEW.replace("\n", "\r\n")
    action = fix_for(text, "MLJ301", "Migrate")
    edits = action.edit.changes[doc(text).uri]  # type: ignore[union-attr]
    assert all(e.range.start.line >= 2 for e in edits)  # the comment and `$schema` lines are not rewritten
    after = assert_fixed(text, action)
    assert "\r\n" in after and "\n" not in after.replace("\r\n", "")


def test_diff_handles_a_missing_final_line_break() -> None:
    for old, new in [("a\nb", "a\nc"), ("a\nb", "a\nb\nc\n"), ("a\n", "b\n"), ("", "x\n"), ("x", ""), ("a", "a")]:
        assert apply(old, diff(old, new)) == new


# --- `$schema` for a job recognised by its type or shape ------------------------------------------------------------


@pytest.mark.parametrize(("text", "label"), [
    ("type: command\ncommand: echo\nenvironment: azureml:e@latest\n", "command job"),
    ("command: echo\nenvironment: azureml:e@latest\ncompute: local\n", "command job"),
    ("# a comment\ntype: sweep\ntrial:\n  command: echo\n", "sweep job"),
])
def test_add_schema(text: str, label: str) -> None:
    found = [a for a in actions(text) if "$schema" in a.title]
    assert [a.kind for a in found] == [lsp.CodeActionKind.QuickFix, fixes.SCHEMA_KIND]
    assert found[0].title == f"Add `$schema` for a {label}"
    after = applied(text, found[0])
    assert after.splitlines()[text.splitlines()[0].startswith("#")].startswith("$schema: https://")
    assert validate_text(after).reports[0].kind.source == "$schema"  # type: ignore[union-attr]
    assert not errors(after) - errors(text)


def test_no_schema_action_when_there_is_one_or_the_file_is_not_a_job() -> None:
    assert not [a for a in actions(CMD + "command: echo\nenvironment: azureml:e@latest\n") if "$schema" in a.title]
    assert actions("name: conda\ndependencies: [python]\n") == []


def test_schema_action_for_the_second_document_only() -> None:
    text = CMD + "command: echo\nenvironment: azureml:e@latest\n---\ntype: command\ncommand: echo\n" \
        "environment: azureml:e@latest\n"
    first = lsp.Range(start=lsp.Position(line=1, character=0), end=lsp.Position(line=1, character=0))
    second = lsp.Range(start=lsp.Position(line=5, character=0), end=lsp.Position(line=5, character=0))
    assert not [a for a in actions(text, rng=first) if "$schema" in a.title]
    (action, _) = [a for a in actions(text, rng=second) if "$schema" in a.title]
    assert applied(text, action).split("---\n")[1].startswith("$schema: https://azuremlschemas")


# --- binding, several documents, positions, hostile text ------------------------------------------------------------


def test_fixes_are_bound_to_the_clients_own_diagnostic() -> None:
    d = doc(TYPOS)
    analysis = d.analysis(CTX.settings.validation(), CTX.generation)
    sent = [to_diagnostic(d.positions, x) for x in analysis.diagnostics if x.code == "MLJ101"]
    (action,) = fixes.code_actions(d, sent[0].range, sent, CTX)
    assert action.diagnostics == sent
    stale = [lsp.Diagnostic(range=sent[0].range, message="an older message", code="MLJ101", source="mljob")]
    assert fixes.code_actions(d, sent[0].range, stale, CTX) == []  # never fix from a diagnostic we did not make
    other = [lsp.Diagnostic(range=sent[0].range, message="x", code="E1", source="yaml")]
    assert fixes.code_actions(d, sent[0].range, other, CTX) == []


def test_without_client_diagnostics_the_range_decides() -> None:
    d = doc(TYPOS)
    line_of_typo = lsp.Range(start=lsp.Position(line=1, character=2), end=lsp.Position(line=1, character=2))
    assert [a.title for a in fixes.code_actions(d, line_of_typo, [], CTX)] == ["Change `comand` to `command`"]


def test_fix_in_the_second_document() -> None:
    text = CMD + "command: echo\nenvironment: azureml:e@latest\n---\n" + TYPOS
    after = assert_fixed(text, fix_for(text, "MLJ107"))
    assert after.split("---\n")[0] == CMD + "command: echo\nenvironment: azureml:e@latest\n"


def test_unicode_and_crlf_positions() -> None:
    text = (CMD + "description: 😀😀 ü\ncommand: echo 😀 ${{inputs.lerning}} 😀 ${{inputs.x}}\n"
            "environment: azureml:e@latest\ninputs:\n  learning: 1\n  x: 2\nresources: {instance_cont: 1}\n"
            ).replace("\n", "\r\n")
    after = assert_fixed(text, fix_for(text, "MLJ201", "Change to"))
    assert "echo 😀 ${{inputs.learning}} 😀 ${{inputs.x}}\r\n" in after
    after = assert_fixed(text, fix_for(text, "MLJ101"))
    assert "resources: {instance_count: 1}\r\n" in after
    after = assert_fixed(text, fix_for(text, "MLJ201", "Define"))
    assert "  x: 2\r\n  lerning: 1\r\n" in after and "\n" not in after.replace("\r\n", "")


@pytest.mark.parametrize("text", [
    "", "\n", "---\n---\n", "command: [\n", "- a\n- b\n", "a: *b\n", "\t- x", "x: &a [*a]\n",
    "\ufeff" + CMD + "comand: echo\n", CMD + "command: ${{inputs.\n", "type: command\n{",
    CMD + "inputs:\n  <<: {x: 1}\ncommand: ${{inputs.y}}\nenvironment: azureml:e@latest\n",
])
def test_hostile_text_never_raises(text: str) -> None:
    for line in range(text.count("\n") + 2):
        rng = lsp.Range(start=lsp.Position(line=line, character=0), end=lsp.Position(line=line, character=99))
        actions(text, rng=rng)
        fixes.code_actions(doc(text), rng, [], CTX)
