"""Go to definition, references and rename as plain functions (server/navigation.py over server/names.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp
from mljob.runner.validate import validate_text
from mljob.server import fixes, lens, navigation, symbols
from mljob.server.edits import apply
from mljob.server.features import FeatureContext
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from generate import big_command_job  # noqa: E402

CTX = FeatureContext(ServerSettings())
CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
SWEEP = "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"
PIPELINE = "$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json\n"

JOB = CMD + """command: >-
  python train.py --epochs ${{inputs.epochs}} --lr ${{inputs.lr}}
  --again ${{inputs.epochs}} $[[--opt ${{inputs.opt}}]]
  --out ${{outputs.model}}
environment: azureml:e@latest
inputs:
  epochs: 10
  lr: 0.1
  opt:
    type: string
    optional: true
outputs:
  model:
    type: uri_folder
"""

SWEEP_JOB = SWEEP + """type: sweep
trial:
  command: python t.py --lr ${{search_space.lr}} --n ${{inputs.n}}
  environment: azureml:e@latest
inputs:
  n: 3
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

PREVIEW = """$schema: https://azuremlsdk2.blob.core.windows.net/latest/commandJob.schema.json
command: python train.py --data {inputs.data} --n ${{inputs.n}}
environment: azureml:e:1
compute:
  target: azureml:cpu
inputs:
  data:
    data: azureml:iris:1
  n: 2
"""


def doc(text: str, path: Path | None = None) -> OpenDocument:
    return OpenDocument.open(path.as_uri() if path else "untitled:job.yml", text, 1)


def find(text: str, needle: str, occurrence: int = 0, offset: int = 0) -> tuple[int, int]:
    """(line, UTF-16 character) of the n-th occurrence of `needle`, plus `offset` code points."""
    at = -1
    for _ in range(occurrence + 1):
        at = text.index(needle, at + 1)
    line = text.count("\n", 0, at)
    column = at - (text.rfind("\n", 0, at) + 1) + offset
    prefix = text.split("\n")[line][:column]
    return line, column + sum(1 for ch in prefix if ord(ch) > 0xFFFF)


def spot(location: lsp.Location | lsp.Range) -> tuple[int, int, int, int]:
    rng = location.range if isinstance(location, lsp.Location) else location
    return rng.start.line, rng.start.character, rng.end.line, rng.end.character


def key_span(text: str, key: str, occurrence: int = 0) -> tuple[int, int, int, int]:
    line, character = find(text, f"{key}:", occurrence)
    return line, character, line, character + len(key)


def rename_all(text: str, position: tuple[int, int], new: str, path: Path | None = None) -> str:
    d = doc(text, path)
    edit = navigation.rename(d, *position, new, CTX)
    assert edit is not None and edit.changes is not None
    return apply(text, edit.changes[d.uri])


# --- definition ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("needle", "offset", "key", "occurrence"), [
    ("${{inputs.epochs}}", 12, "  epochs", 0),  # on the name
    ("${{inputs.epochs}}", 0, "  epochs", 0),  # on the `$`
    ("${{inputs.epochs}}", 18, "  epochs", 0),  # just after `}}`
    ("${{inputs.lr}}", 5, "  lr", 0),
    ("${{inputs.opt}}", 11, "  opt", 0),  # inside an optional `$[[ … ]]` segment
    ("${{outputs.model}}", 12, "  model", 0),
])
def test_definition_from_expression_to_key(needle: str, offset: int, key: str, occurrence: int) -> None:
    (location,) = navigation.definition(doc(JOB), *find(JOB, needle, 0, offset), CTX)
    line, character = find(JOB, key + ":", occurrence, 2)
    assert spot(location) == (line, character, line, character + len(key.strip()))


def test_definition_of_a_second_use_on_a_continuation_line() -> None:
    (location,) = navigation.definition(doc(JOB), *find(JOB, "${{inputs.epochs}}", 1, 11), CTX)
    assert spot(location)[:2] == find(JOB, "  epochs:", 0, 2)


def test_definition_in_a_sweep_search_space_and_inputs() -> None:
    (location,) = navigation.definition(doc(SWEEP_JOB), *find(SWEEP_JOB, "search_space.lr", 0, 13), CTX)
    assert spot(location)[:2] == find(SWEEP_JOB, "  lr:", 0, 2)
    (location,) = navigation.definition(doc(SWEEP_JOB), *find(SWEEP_JOB, "inputs.n", 0, 7), CTX)
    assert spot(location)[:2] == find(SWEEP_JOB, "  n: 3", 0, 2)


def test_definition_from_the_2021_form() -> None:
    (location,) = navigation.definition(doc(PREVIEW), *find(PREVIEW, "{inputs.data}", 0, 9), CTX)
    assert spot(location)[:2] == find(PREVIEW, "  data:", 0, 2)


def test_definition_of_an_undefined_name_or_plain_text_is_empty() -> None:
    text = CMD + "command: echo ${{inputs.nothing}} plain\nenvironment: azureml:e@latest\n"
    assert navigation.definition(doc(text), *find(text, "nothing"), CTX) == []
    assert navigation.definition(doc(text), *find(text, "plain"), CTX) == []
    assert navigation.definition(doc(text), 0, 0, CTX) == []


def test_definition_of_local_paths(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "env.yml").write_text("name: x\n")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "Dockerfile").write_text("FROM python\n")
    (tmp_path / "data.csv").write_text("a\n")
    text = CMD + ("command: echo ${{inputs.d}}\ncode: ./src\nenvironment:\n  build:\n    path: docker\n"
                  "    dockerfile_path: Dockerfile\n  conda_file: env.yml\ninputs:\n  d:\n    type: uri_file\n"
                  "    path: data.csv\n  remote:\n    type: uri_file\n    path: azureml:iris@latest\n")
    d = doc(text, tmp_path / "job.yml")

    def target(needle: str) -> list[str]:
        return [loc.uri for loc in navigation.definition(d, *find(text, needle, 0, 1), CTX)]

    assert target("./src") == [(tmp_path / "src").as_uri()]  # a folder: its location
    assert target("docker\n") == [(tmp_path / "docker").as_uri()]
    assert target("Dockerfile") == [(tmp_path / "docker" / "Dockerfile").as_uri()]  # relative to build.path
    assert target("env.yml") == [(tmp_path / "env.yml").as_uri()]
    assert target("data.csv") == [(tmp_path / "data.csv").as_uri()]
    assert target("azureml:iris") == []  # an asset, not a file
    assert target("code:") == []  # on the key, not the value
    assert all(loc.range.start == lsp.Position(line=0, character=0)
               for loc in navigation.definition(d, *find(text, "env.yml", 0, 1), CTX))


def test_definition_of_a_missing_path_and_of_unsaved_text_is_empty(tmp_path: Path) -> None:
    text = CMD + "command: echo\ncode: src\nenvironment: azureml:e@latest\n"
    assert navigation.definition(doc(text, tmp_path / "job.yml"), *find(text, "src"), CTX) == []
    (tmp_path / "src").mkdir()
    assert navigation.definition(doc(text), *find(text, "src"), CTX) == []  # untitled: no folder to look in


def test_definition_of_a_2021_local_path(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    text = CMD + "command: echo\ncode:\n  local_path: src\nenvironment: azureml:e@latest\n"
    (location,) = navigation.definition(doc(text, tmp_path / "job.yml"), *find(text, "src"), CTX)
    assert location.uri == (tmp_path / "src").as_uri()


PIPE = PIPELINE + """type: pipeline
inputs:
  raw:
    type: uri_folder
    path: azureml:raw@latest
outputs:
  final:
    type: uri_folder
jobs:
  prep:
    type: command
    component: ./prep.yml
    inputs:
      data: ${{parent.inputs.raw}}
    outputs:
      cleaned:
  train:
    type: command
    command: python train.py --data ${{inputs.training}} --out ${{outputs.model}}
    environment: azureml:e@latest
    inputs:
      training: ${{parent.jobs.prep.outputs.cleaned}}
      again: ${{parent.inputs.raw}}
    outputs:
      model: ${{parent.outputs.final}}
"""


def test_pipeline_bindings(tmp_path: Path) -> None:
    (tmp_path / "prep.yml").write_text("name: prep\n")
    d = doc(PIPE, tmp_path / "pipeline.yml")

    def target(needle: str, occurrence: int = 0, offset: int = 0) -> tuple[str, int, int]:
        (location,) = navigation.definition(d, *find(PIPE, needle, occurrence, offset), CTX)
        return location.uri, location.range.start.line, location.range.start.character

    here = d.uri
    assert target("parent.inputs.raw", 0, 15) == (here, *find(PIPE, "  raw:", 0, 2))
    assert target("parent.inputs.raw", 1, 15) == (here, *find(PIPE, "  raw:", 0, 2))
    assert target("parent.outputs.final", 0, 16) == (here, *find(PIPE, "  final:", 0, 2))
    assert target("parent.jobs.prep.outputs.cleaned", 0, 26) == (here, *find(PIPE, "      cleaned:", 0, 6))
    assert target("${{inputs.training}}", 0, 10) == (here, *find(PIPE, "      training:", 0, 6))
    assert target("${{outputs.model}}", 0, 12) == (here, *find(PIPE, "      model:", 0, 6))
    assert target("./prep.yml", 0, 3) == ((tmp_path / "prep.yml").as_uri(), 0, 0)


# --- references ----------------------------------------------------------------------------------------------------


def test_references_of_an_input_from_its_key_and_from_a_use() -> None:
    d = doc(JOB)
    from_key = navigation.references(d, *find(JOB, "  epochs:", 0, 3), True, CTX)
    from_use = navigation.references(d, *find(JOB, "inputs.epochs", 1, 8), True, CTX)
    assert [spot(x) for x in from_key] == [spot(x) for x in from_use]
    assert [spot(x)[:2] for x in from_key] == [find(JOB, "  epochs:", 0, 2), find(JOB, "inputs.epochs", 0, 7),
                                              find(JOB, "inputs.epochs", 1, 7)]
    without = navigation.references(d, *find(JOB, "  epochs:", 0, 3), False, CTX)
    assert [spot(x) for x in without] == [spot(x) for x in from_key[1:]]
    assert all(x.uri == d.uri for x in from_key)


def test_references_of_a_search_space_entry_and_of_an_unused_input() -> None:
    d = doc(SWEEP_JOB)
    found = navigation.references(d, *find(SWEEP_JOB, "  lr:", 0, 2), True, CTX)
    assert [spot(x)[:2] for x in found] == [find(SWEEP_JOB, "  lr:", 0, 2), find(SWEEP_JOB, "search_space.lr", 0, 13)]
    text = JOB.replace("  lr: 0.1\n", "  lr: 0.1\n  unused: 1\n")
    assert len(navigation.references(doc(text), *find(text, "unused"), True, CTX)) == 1
    assert navigation.references(doc(text), *find(text, "unused"), False, CTX) == []


def test_references_stay_in_their_own_document() -> None:
    text = JOB + "---\n" + JOB
    first = navigation.references(doc(text), *find(text, "  epochs:", 0, 2), True, CTX)
    second = navigation.references(doc(text), *find(text, "  epochs:", 1, 2), True, CTX)
    boundary = text[: text.index("---")].count("\n")
    assert len(first) == len(second) == 3
    assert all(x.range.start.line < boundary for x in first)
    assert all(x.range.start.line > boundary for x in second)


# --- rename --------------------------------------------------------------------------------------------------------


def test_prepare_rename_gives_the_name_only() -> None:
    d = doc(JOB)
    assert spot(navigation.prepare_rename(d, *find(JOB, "${{inputs.lr}}", 0, 2), CTX)) == (
        *find(JOB, "${{inputs.lr}}", 0, 10), *find(JOB, "${{inputs.lr}}", 0, 12))
    line, character = find(JOB, "  lr:", 0, 2)
    assert spot(navigation.prepare_rename(d, line, character, CTX)) == (line, character, line, character + 2)
    assert navigation.prepare_rename(d, *find(JOB, "python"), CTX) is None
    assert navigation.prepare_rename(d, *find(JOB, "environment"), CTX) is None


def test_rename_an_input_from_its_key_follows_every_use() -> None:
    renamed = rename_all(JOB, find(JOB, "  epochs:", 0, 4), "num_epochs")
    assert renamed.count("${{inputs.num_epochs}}") == 2 and "  num_epochs: 10" in renamed
    assert "epochs}}" not in renamed.replace("num_epochs}}", "")
    assert [d.code for d in validate_text(renamed).diagnostics] == [d.code for d in validate_text(JOB).diagnostics]


def test_rename_from_a_use_and_in_an_optional_segment() -> None:
    renamed = rename_all(JOB, find(JOB, "${{inputs.opt}}", 0, 11), "option")
    assert "$[[--opt ${{inputs.option}}]]" in renamed and "  option:\n    type: string" in renamed
    assert not any(d.code == "MLJ201" for d in validate_text(renamed).diagnostics)


def test_rename_an_output_and_a_search_space_entry() -> None:
    renamed = rename_all(JOB, find(JOB, "outputs.model", 0, 9), "checkpoint")
    assert "${{outputs.checkpoint}}" in renamed and "  checkpoint:\n" in renamed
    renamed = rename_all(SWEEP_JOB, find(SWEEP_JOB, "  lr:", 0, 2), "learning_rate")
    assert "${{search_space.learning_rate}}" in renamed and "  learning_rate:\n    type: uniform" in renamed
    assert [d.code for d in validate_text(renamed).diagnostics] == []


def test_rename_covers_both_syntaxes() -> None:
    text = PREVIEW.replace("--n ${{inputs.n}}", "--n ${{inputs.n}} --d2 ${{inputs.data}}")
    renamed = rename_all(text, find(text, "  data:", 0, 2), "iris")
    assert "{inputs.iris}" in renamed and "${{inputs.iris}}" in renamed and "  iris:\n    data: azureml" in renamed
    assert "inputs.data" not in renamed


def test_rename_in_one_document_leaves_the_other_alone() -> None:
    text = JOB + "---\n" + JOB
    renamed = rename_all(text, find(text, "  lr:", 1, 2), "rate")
    first, second = renamed.split("---\n")
    assert first == JOB
    assert "${{inputs.rate}}" in second and "  rate: 0.1" in second


def test_rename_a_pipeline_input_follows_its_parent_bindings() -> None:
    renamed = rename_all(PIPE, find(PIPE, "  raw:", 0, 2), "source")
    assert renamed.count("${{parent.inputs.source}}") == 2 and "  source:\n" in renamed
    renamed = rename_all(PIPE, find(PIPE, "${{inputs.training}}", 0, 11), "train_data")
    assert "${{inputs.train_data}}" in renamed and "      train_data: ${{parent.jobs" in renamed


def test_names_bound_to_a_component_file_are_not_renamed() -> None:
    # `prep` takes its inputs and outputs from ./prep.yml: renaming them here would break the binding.
    d = doc(PIPE)
    assert navigation.prepare_rename(d, *find(PIPE, "      cleaned:", 0, 7), CTX) is None
    assert navigation.rename(d, *find(PIPE, "parent.jobs.prep.outputs.cleaned", 0, 26), "x", CTX) is None


def test_rename_refuses_bad_or_taken_names() -> None:
    d = doc(JOB)
    position = find(JOB, "  epochs:", 0, 2)
    assert navigation.rename(d, *position, "lr", CTX) is None  # would duplicate a key
    assert navigation.rename(d, *position, "has space", CTX) is None
    assert navigation.rename(d, *position, "9lives", CTX) is None
    assert navigation.rename(d, *position, "", CTX) is None
    assert navigation.rename(d, *find(JOB, "python"), "x", CTX) is None


def test_rename_a_quoted_key_keeps_its_quotes() -> None:
    text = JOB.replace("  lr: 0.1", '  "lr": 0.1')
    d = doc(text)
    line, character = find(text, '"lr"', 0, 1)
    assert spot(navigation.prepare_rename(d, line, character, CTX)) == (line, character, line, character + 2)
    assert '  "rate": 0.1' in rename_all(text, (line, character), "rate")


# --- text that is hard on positions ---------------------------------------------------------------------------------


def test_unicode_and_crlf() -> None:
    text = (CMD + "description: 😀 ü\ncommand: echo 😀😀 ${{inputs.x}} ü ${{inputs.x}}\n"
            "environment: azureml:e@latest\ninputs:\n  x: 😀\n").replace("\n", "\r\n")
    d = doc(text)
    line, character = find(text, "${{inputs.x}}", 1, 10)
    assert character == find(text, "${{inputs.x}}", 1, 10)[1] and character > 30  # two emoji count twice
    (location,) = navigation.definition(d, line, character, CTX)
    assert spot(location)[:2] == find(text, "  x:", 0, 2)
    uses = navigation.references(d, line, character, False, CTX)
    assert [spot(u)[:2] for u in uses] == [find(text, "${{inputs.x}}", 0, 10), find(text, "${{inputs.x}}", 1, 10)]
    renamed = rename_all(text, (line, character), "y")
    assert renamed == text.replace("inputs.x", "inputs.y").replace("  x: 😀", "  y: 😀")


@pytest.mark.parametrize("text", [
    "", "\n", "---\n---\n", "command: [\n", CMD + "command: ${{inputs.\n", CMD + "inputs:\n  x\n: 1\n",
    "- a\n- b\n", "a: *b\n", "x: &a [*a]\n", "\ufeff" + CMD + "command: echo\n", "\t- x",
    CMD + "command: ${{inputs.x}}\ninputs:\n  <<: {x: 1}\n",
])
def test_broken_text_never_raises(text: str) -> None:
    d = doc(text)
    lines = max(1, text.count("\n") + 1)
    for line in range(lines + 1):
        for character in (0, 3, 12, 40):
            navigation.definition(d, line, character, CTX)
            navigation.references(d, line, character, True, CTX)
            navigation.prepare_rename(d, line, character, CTX)
            navigation.rename(d, line, character, "n", CTX)


def test_big_file_rename() -> None:
    # Speed is measured by the benchmarks (bench/lsp.py), not asserted here.
    text = big_command_job(3000)
    d = doc(text)
    d.analysis(CTX.settings.validation(), CTX.generation)  # the diagnostics worker has done this already
    position = find(text, "${{inputs.input_150}}", 0, 11)
    edit = navigation.rename(d, *position, "renamed", CTX)
    assert edit is not None and len(edit.changes[d.uri]) == 2


# --- random edits: every feature of navigation, symbols, lens and fixes answers --------------------------------------

_PIECES = ["\n", "\r\n", " ", "  ", ":", "- ", "#", "'", '"', "{", "}", "[", "]", ",", "&a", "*a", "<<: ", "---\n",
           "|", ">-", "${{", "}}", "inputs.", "search_space.", "{inputs.x}", "😀", "ü", "\t", "\ufeff", "x", "lr"]


@st.composite
def edited(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from([JOB, SWEEP_JOB, PREVIEW, PIPE]))
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(text)))
        cut = draw(st.integers(0, 8))
        text = text[:at] + draw(st.sampled_from(_PIECES)) + text[at + cut:]
    return text


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edited(), st.integers(0, 30), st.integers(0, 60))
def test_random_edits_never_raise(text: str, line: int, character: int) -> None:
    d = doc(text)
    everywhere = lsp.Range(start=lsp.Position(line=0, character=0), end=lsp.Position(line=line, character=character))
    navigation.definition(d, line, character, CTX)
    navigation.references(d, line, character, True, CTX)
    navigation.prepare_rename(d, line, character, CTX)
    navigation.rename(d, line, character, "renamed", CTX)
    symbols.document_symbols(d, CTX)
    symbols.folding_ranges(d, CTX)
    symbols.selection_ranges(d, [lsp.Position(line=line, character=character)], CTX)
    lens.code_lenses(d, CTX)
    for action in fixes.code_actions(d, everywhere, [], CTX):
        assert action.edit is not None and action.edit.changes is not None
        apply(text, action.edit.changes[d.uri])  # every edit applies to the text it was made for
