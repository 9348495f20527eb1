"""Outline, folding ranges and selection ranges as plain functions (server/symbols.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from mljob.runner.validate import validate_text
from mljob.server import lens, symbols
from mljob.server.features import FeatureContext
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from generate import big_command_job  # noqa: E402

CTX = FeatureContext(ServerSettings())
ROOT = Path(__file__).resolve().parent.parent
SWEEP = (ROOT / "examples" / "hello" / "sweep.yml").read_text(encoding="utf-8")
CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"


def doc(text: str) -> OpenDocument:
    return OpenDocument.open("untitled:job.yml", text, 1)


def by_name(found: list[lsp.DocumentSymbol]) -> dict[str, lsp.DocumentSymbol]:
    return {s.name: s for s in found}


def contains(outer: lsp.Range, inner: lsp.Range) -> bool:
    return ((outer.start.line, outer.start.character) <= (inner.start.line, inner.start.character)
            and (inner.end.line, inner.end.character) <= (outer.end.line, outer.end.character))


def check_nesting(found: list[lsp.DocumentSymbol], parent: lsp.Range | None = None) -> int:
    count = 0
    for symbol in found:
        assert symbol.name, "LSP forbids empty symbol names"
        assert contains(symbol.range, symbol.selection_range), symbol.name
        if parent is not None:
            assert contains(parent, symbol.range), symbol.name
        count += 1 + check_nesting(symbol.children or [], symbol.range)
    return count


# --- document symbols ----------------------------------------------------------------------------------------------


def test_outline_of_a_sweep() -> None:
    (top,) = symbols.document_symbols(doc(SWEEP), CTX)
    assert (top.name, top.detail, top.kind) == ("sweep job", "hello-mljob-sweep", lsp.SymbolKind.Class)
    assert (top.range.start.line, top.range.end.line) == (0, 27)
    children = by_name(top.children or [])
    assert list(children)[:5] == ["$schema", "type", "display_name", "experiment_name", "trial"]
    inputs, space = children["inputs"], children["search_space"]
    assert [(s.name, s.kind, s.detail) for s in inputs.children or []] == [("epochs", lsp.SymbolKind.Variable, "20")]
    (lr,) = space.children or []
    assert (lr.name, lr.kind) == ("learning_rate", lsp.SymbolKind.Variable)
    assert [s.name for s in lr.children or []] == ["type", "min_value", "max_value"]
    assert (lr.range.start.line, lr.range.end.line) == (16, 19)
    assert (lr.selection_range.start.character, lr.selection_range.end.character) == (2, 15)
    trial = by_name(children["trial"].children or [])
    assert trial["command"].detail.startswith("python train.py --epochs ${{inputs.epochs}}")
    assert (trial["command"].range.start.line, trial["command"].range.end.line) == (6, 9)  # the block scalar
    assert children["limits"].kind == lsp.SymbolKind.Object
    assert by_name(children["limits"].children or [])["max_total_trials"].kind == lsp.SymbolKind.Number
    check_nesting([top])


def test_outline_of_several_documents_lists_and_non_jobs() -> None:
    text = (CMD + "command: echo ${{inputs.a}}\nenvironment: azureml:e@latest\ninputs:\n  a: 1\n"
            "services:\n  - type: ssh\n  - plain\n---\nname: conda\ndependencies:\n  - python=3.11\n  - pip:\n"
            "    - numpy\n---\n- just a list\n")
    job, conda = symbols.document_symbols(doc(text), CTX)
    assert job.name == "command job" and conda.name == "YAML document" and conda.detail == "conda"
    assert [s.kind for s in by_name(job.children or [])["inputs"].children or []] == [lsp.SymbolKind.Variable]
    services = by_name(job.children or [])["services"]
    assert [s.name for s in services.children or []] == ["type: ssh", "plain"]
    deps = by_name(conda.children or [])["dependencies"]
    assert [s.name for s in deps.children or []] == ["python=3.11", "1"]
    check_nesting([job, conda])


def test_outline_positions_count_utf16_and_ignore_crlf() -> None:
    text = (CMD + "description: 😀😀\ncommand: echo\nenvironment: azureml:e@latest\ntags:\n  😀: x\n").replace(
        "\n", "\r\n")
    (top,) = symbols.document_symbols(doc(text), CTX)
    children = by_name(top.children or [])
    assert children["description"].range.end.character == len("description: ") + 4
    (emoji,) = children["tags"].children or []
    assert (emoji.selection_range.start.character, emoji.selection_range.end.character) == (2, 4)
    check_nesting([top])


def test_aliases_and_merge_keys_do_not_confuse_the_outline() -> None:
    text = (CMD + "base: &b\n  x: 1\n  y: 2\ncommand: echo\nenvironment: azureml:e@latest\nother: *b\n"
            "merged:\n  <<: *b\n")
    (top,) = symbols.document_symbols(doc(text), CTX)
    assert by_name(top.children or [])["other"].detail == "alias"
    check_nesting([top])


# --- folding -------------------------------------------------------------------------------------------------------


def folds(text: str) -> set[tuple[int, int, str | None]]:
    return {(f.start_line, f.end_line, f.kind.value if f.kind else None)
            for f in symbols.folding_ranges(doc(text), CTX)}


def test_folding_of_mappings_lists_block_scalars_and_comments() -> None:
    text = (
        "# one\n"                   # 0  comment block 0-1
        "# two\n"                   # 1
        "command: |\n"              # 2  block scalar 2-5 (trailing blank line not included)
        "  python a.py\n"           # 3
        "  # not a comment\n"       # 4
        "  --flag\n"                # 5
        "\n"                        # 6
        "inputs:\n"                 # 7  mapping 7-10
        "  a:\n"                    # 8  mapping 8-9
        "    type: uri_file\n"      # 9
        "  b: 1\n"                  # 10
        "  # trailing comment\n"    # 11 (one line: no fold)
        "services:\n"               # 12 list 12-15
        "  - type: ssh\n"           # 13 list item 13-14
        "    port: 22\n"            # 14
        "  - [a,\n"                 # 15 flow list 15-16
        "     b]\n"                 # 16
        "environment: azureml:e@latest\n"
    )
    assert folds(text) == {(0, 1, "comment"), (2, 5, None), (7, 10, None), (8, 9, None), (12, 16, None),
                           (13, 14, None), (15, 16, None)}


def test_folding_of_the_example_sweep_and_several_documents() -> None:
    assert folds(SWEEP) == {(4, 11, None), (6, 9, None), (10, 11, None), (12, 13, None), (15, 19, None),
                            (16, 19, None), (20, 22, None), (23, 26, None)}
    two = folds("a:\n  b: 1\n  c: 2\n---\nd:\n  e: 1\n  f: 2\n")
    assert two == {(0, 2, None), (4, 6, None)}


def test_folding_with_crlf_and_broken_text() -> None:
    assert folds("a:\r\n  b: 1\r\n  c: 2\r\n") == {(0, 2, None)}
    assert folds("a:\n  b: [\n") == set()  # does not parse: nothing to fold, no error
    assert folds("# a\n# b\nx: [\n") == {(0, 1, "comment")}


# --- selection ranges ----------------------------------------------------------------------------------------------


def chain(text: str, line: int, character: int) -> list[tuple[int, int, int, int]]:
    (found,) = symbols.selection_ranges(doc(text), [lsp.Position(line=line, character=character)], CTX)
    spans = []
    node: lsp.SelectionRange | None = found
    while node is not None:
        r = node.range
        spans.append((r.start.line, r.start.character, r.end.line, r.end.character))
        node = node.parent
    return spans


def test_selection_from_a_name_in_an_expression_outwards() -> None:
    # line 9 of sweep.yml is `    --learning-rate ${{search_space.learning_rate}}`
    assert chain(SWEEP, 9, 40) == [
        (9, 23, 9, 49),   # the dotted word search_space.learning_rate
        (9, 20, 9, 51),   # the expression
        (9, 4, 9, 51),    # the command's line
        (6, 11, 9, 51),   # the command
        (6, 2, 9, 51),    # command: …
        (5, 2, 11, 27),   # the trial mapping
        (4, 0, 11, 27),   # trial: …
        (0, 0, 27, 14),   # the job
    ]


def test_selection_from_a_key_and_from_a_list_item() -> None:
    assert chain(SWEEP, 24, 5) == [(24, 2, 24, 18), (24, 2, 24, 21), (24, 2, 26, 14), (23, 0, 26, 14),
                                   (0, 0, 27, 14)]
    text = "services:\n  - type: ssh\n    port: 22\n  - b\n"
    assert chain(text, 2, 11) == [(2, 10, 2, 12), (2, 4, 2, 12), (1, 4, 2, 12), (1, 2, 3, 5), (0, 0, 3, 5)]


def test_selection_ranges_are_nested_for_every_position() -> None:
    lines = SWEEP.split("\n")
    positions = [lsp.Position(line=n, character=c) for n, line in enumerate(lines) for c in range(0, len(line) + 2)]
    for position, found in zip(positions, symbols.selection_ranges(doc(SWEEP), positions, CTX), strict=True):
        node: lsp.SelectionRange | None = found
        assert contains(found.range, lsp.Range(start=position, end=position))
        while node is not None and node.parent is not None:
            assert contains(node.parent.range, node.range) and node.parent.range != node.range
            node = node.parent


def test_selection_with_unicode_and_broken_text() -> None:
    text = CMD + "description: 😀 ü word\n"
    assert chain(text, 1, 20)[:2] == [(1, 18, 1, 22), (1, 13, 1, 22)]
    assert chain("x: [\n", 0, 2) == [(0, 2, 0, 2)]  # nothing parsed: the position itself


# --- hostile input and speed ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "", "\n", "---\n---\n", "command: [\n", "- a\n- b\n", "a: *b\n", "\t- x", "x: &a [*a]\n",
    "\ufeff" + CMD + "command: echo\n", "a:\n" + "  " * 50 + "b: 1\n", "{a: 1, b: [1, {c: 2}]}\n",
    "a: |\n\n\n", "a: >+\n  x\n\n\n", "k: 'multi\n  line'\n# c\n# d\n",
])
def test_hostile_text_never_raises(text: str) -> None:
    d = doc(text)
    symbols.document_symbols(d, CTX)
    symbols.folding_ranges(d, CTX)
    positions = [lsp.Position(line=n, character=c) for n in range(text.count("\n") + 2) for c in (0, 1, 5, 80)]
    assert len(symbols.selection_ranges(d, positions, CTX)) == len(positions)


def test_three_thousand_lines() -> None:
    # Their speed is for the benchmarks to print (outline ~30-40 ms, folding ~5 ms, selection ~1 ms here); the test
    # checks the answers on a big file.
    d = doc(big_command_job(3000))
    d.analysis(CTX.settings.validation(), CTX.generation)  # computed once per version by the diagnostics worker
    (outline,) = symbols.document_symbols(d, CTX)
    assert outline.name == "command job" and len(outline.children or []) > 5
    assert symbols.folding_ranges(d, CTX)
    assert symbols.selection_ranges(d, [lsp.Position(line=1500, character=6)], CTX)


# --- code lenses (lens.py): where they sit, what their command reports ------------------------------------------------


def test_lenses_sit_on_the_first_line_of_each_job_only() -> None:
    text = "# comment\n" + CMD + "command: echo\nenvironment: azureml:e@latest\n---\nname: conda\n---\n" + SWEEP
    found = lens.code_lenses(doc(text), CTX)
    assert [(x.range.start.line, x.command.title, x.command.arguments) for x in found if x.command] == [
        (1, "▶ Run locally", ["untitled:job.yml", 0]), (1, "Validate", ["untitled:job.yml", 0]),
        (7, "▶ Run locally", ["untitled:job.yml", 2]), (7, "Validate", ["untitled:job.yml", 2])]
    component = "$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json\nname: c\n"
    assert lens.code_lenses(doc(component), CTX) == []  # a component is not a job to validate on its own


def test_summary_is_one_line() -> None:
    text = CMD + "command: echo\nenvironment: azureml:e@latest\ncomand: x\nresources:\n  shm_size: 2\n"
    analysis = validate_text(text)
    outcome = lens.summary(analysis, "job.yml", 0)
    assert not outcome.ok and "\n" not in outcome.message
    assert outcome.message.startswith("job.yml: 2 errors (command job) — line 4: Unknown key `comand`")
    assert lens.summary(validate_text(SWEEP), "sweep.yml", 0) == lens.Outcome("sweep.yml: valid (sweep job)", True)
    warned = lens.summary(validate_text(SWEEP.replace("max_concurrent_trials: 2", "max_concurrent_trials: 9")),
                          "sweep.yml")
    assert warned.ok and warned.message.startswith("sweep.yml: 1 warning (sweep job) — line 26: ")


def test_configured_compute_comes_from_the_registry(tmp_path: Path) -> None:
    registry = tmp_path / "computes.yml"
    registry.write_text("computes:\n  gpu-box:\n    type: process\n")
    ctx = FeatureContext(ServerSettings(compute_registry=registry))

    def compute(value: str) -> str | None:
        text = CMD + f"command: echo\nenvironment: azureml:e@latest\ncompute: {value}\n"
        d = doc(text)
        (target,) = lens.job_targets(d, d.analysis(ctx.settings.validation()), ctx)
        return target.compute

    assert compute("azureml:gpu-box") == "gpu-box"
    assert compute("local") == "local"  # built in
    assert compute("azureml:cpu-cluster") is None  # not configured here
    assert compute("\n  target: azureml:gpu-box") == "gpu-box"  # 2021
