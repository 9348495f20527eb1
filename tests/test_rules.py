"""Each rule beyond the schema: a file that triggers it (asserting line and column) and one that does not."""

from __future__ import annotations

from pathlib import Path

import pytest
from mljob.runner.validate import validate_text

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
SWEEP = "$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\n"


def run(text: str, folder: Path | None = None):
    path = folder / "job.yml" if folder else None
    if folder is not None:
        (folder / "src").mkdir(exist_ok=True)
    return validate_text(text, path).diagnostics


def only(found, code: str):
    return [d for d in found if d.code == code]


def at(found, code: str) -> list[tuple[int, int]]:
    return [(d.line + 1, d.column + 1) for d in only(found, code)]


def sweep(space: str = "", extra: str = "", algorithm: str = "random", command: str | None = None) -> str:
    command = command or "python t.py --lr ${{search_space.lr}}"
    space = space or "  lr:\n    type: uniform\n    min_value: 0.01\n    max_value: 0.1\n"
    return (SWEEP + "type: sweep\ntrial:\n  command: " + command + "\n  environment: azureml:env@latest\n"
            f"sampling_algorithm: {algorithm}\nsearch_space:\n{space}"
            "objective:\n  primary_metric: acc\n  goal: maximize\n"
            "limits:\n  max_total_trials: 4\n  max_concurrent_trials: 2\n" + extra)


# --- references (MLJ201, MLJ202, MLJ216, MLJ218) ------------------------------------------------------------------

def test_reference_to_undefined_input_with_and_without_spaces():
    text = CMD + "command: python t.py --a ${{inputs.a}} --b ${{ inputs.bb }}\nenvironment: azureml:e@latest\n" \
                 "inputs:\n  a: 1\n  b: 2\n"
    found = run(text)
    assert at(found, "MLJ201") == [(2, 44)]
    assert "Did you mean `b`" in only(found, "MLJ201")[0].message


def test_reference_inside_optional_segment_and_2021_form():
    text = CMD + "command: python t.py $[[--x ${{inputs.x}}]] --y {inputs.y}\nenvironment: azureml:e@latest\n"
    found = run(text)
    assert at(found, "MLJ201") == [(2, 29), (2, 49)]
    assert at(found, "MLJ301") == [(2, 49)]


def test_reference_in_folded_command_points_at_the_right_line():
    text = CMD + "command: >-\n  python t.py\n  --a ${{inputs.a}}\n  --o ${{outputs.model}}\n" \
                 "environment: azureml:e@latest\ninputs:\n  a: 1\n"
    found = run(text)
    assert at(found, "MLJ201") == [(5, 7)]
    assert "this job has no `outputs`" in only(found, "MLJ201")[0].message


def test_all_references_defined_is_clean():
    text = CMD + "command: python t.py --a ${{inputs.a}} --o ${{outputs.o}}\nenvironment: azureml:e@latest\n" \
                 "inputs:\n  a: 1\noutputs:\n  o:\n    type: uri_folder\n"
    assert run(text) == []


def test_unused_input_and_search_space_entry_are_hints():
    text = CMD + "command: echo hi\nenvironment: azureml:e@latest\ninputs:\n  unused: 1\n"
    found = run(text)
    assert at(found, "MLJ202") == [(5, 3)] and only(found, "MLJ202")[0].severity.label == "hint"
    space = "  lr:\n    type: uniform\n    min_value: 0.01\n    max_value: 0.1\n  bs:\n    type: choice\n" \
            "    values: [1, 2]\n"
    assert at(run(sweep(space)), "MLJ202") == [(12, 3)]
    assert at(run(sweep()), "MLJ202") == []


def test_search_space_in_a_command_job():
    found = run(CMD + "command: python t.py ${{search_space.lr}}\nenvironment: azureml:e@latest\n")
    assert at(found, "MLJ218") == [(2, 22)]


def test_malformed_expression():
    found = run(CMD + "command: python t.py ${{inputs.a\nenvironment: azureml:e@latest\n")
    assert at(found, "MLJ216") == [(2, 22)]
    assert at(run(CMD + "command: python t.py ${{ 1 + }}\nenvironment: azureml:e@latest\n"), "MLJ216") == [(2, 22)]


def test_sweep_inputs_at_top_level_and_in_2021_trial():
    ga = sweep(command="python t.py --lr ${{search_space.lr}} --e ${{inputs.e}}") + "inputs:\n  e: 3\n"
    assert only(run(ga), "MLJ201") == []
    assert at(run(sweep(command="python t.py --lr ${{search_space.lr}} --e ${{inputs.e}}")), "MLJ201") == [(4, 54)]


# --- paths (MLJ203, MLJ204) ----------------------------------------------------------------------------------------

def test_missing_code_folder(tmp_path: Path):
    found = run(CMD + "command: echo\ncode: nowhere\nenvironment: azureml:e@latest\n", tmp_path)
    assert at(found, "MLJ203") == [(3, 7)] and only(found, "MLJ203")[0].severity.label == "error"
    assert at(run(CMD + "command: echo\ncode: src\nenvironment: azureml:e@latest\n", tmp_path), "MLJ203") == []


def test_path_outside_the_job_folder(tmp_path: Path):
    job = tmp_path / "job"
    job.mkdir()
    (tmp_path / "shared").mkdir()
    found = run(CMD + "command: echo\ncode: ../shared\nenvironment: azureml:e@latest\n", job)
    assert at(found, "MLJ204") == [(3, 7)] and at(found, "MLJ203") == []


def test_conda_file_dockerfile_and_input_paths(tmp_path: Path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "env.yml").write_text("name: x\n")
    text = CMD + ("command: echo ${{inputs.d}}\nenvironment:\n  image: python:3.11\n  conda_file: conda.yml\n"
                  "inputs:\n  d:\n    type: uri_folder\n    path: data\n")
    found = run(text, tmp_path)
    assert [(d.line + 1, d.column + 1, d.severity.label) for d in only(found, "MLJ203")] == [
        (5, 15, "error"), (9, 11, "warning")]
    good = CMD + ("command: echo\nenvironment:\n  build:\n    path: ctx\n    dockerfile_path: Dockerfile\n")
    assert only(run(good, tmp_path), "MLJ203") == []
    bad = good.replace("dockerfile_path: Dockerfile", "dockerfile_path: Dockerfile.gpu")
    assert at(run(bad, tmp_path), "MLJ203") == [(6, 22)]


# --- counts and formats (MLJ205, MLJ206, MLJ207) -------------------------------------------------------------------

@pytest.mark.parametrize("snippet,where", [
    ("resources:\n  instance_count: 0\n", (5, 19)),
    ("distribution:\n  type: pytorch\n  process_count_per_instance: 0\n", (6, 31)),
    ("distribution:\n  type: tensorflow\n  worker_count: 0\n", (6, 17)),
])
def test_counts_must_be_at_least_one(snippet: str, where: tuple[int, int]):
    found = run(CMD + "command: echo\nenvironment: azureml:e@latest\n" + snippet)
    assert at(found, "MLJ205") == [where]
    assert [d for d in found if d.severity.label == "error" and d.code != "MLJ205"] == []
    assert at(run(CMD + "command: echo\nenvironment: azureml:e@latest\n" + snippet.replace(": 0", ": 2")),
              "MLJ205") == []


def test_sweep_trial_counts():
    found = run(sweep().replace("max_total_trials: 4", "max_total_trials: 0"))
    assert at(found, "MLJ205") == [(16, 21)]


def test_concurrency_above_total():
    found = run(sweep().replace("max_concurrent_trials: 2", "max_concurrent_trials: 9"))
    assert at(found, "MLJ206") == [(17, 26)]
    assert at(run(sweep()), "MLJ206") == []


def test_shm_size_format():
    base = CMD + "command: echo\nenvironment: azureml:e@latest\nresources:\n  shm_size: "
    assert at(run(base + "lots\n"), "MLJ207") == [(5, 13)]
    for good in ("2g", "512m", "8GB", "1024"):
        assert at(run(base + good + "\n"), "MLJ207") == []


# --- sweeps (MLJ208 … MLJ215) -------------------------------------------------------------------------------------

@pytest.mark.parametrize("space,where", [
    ("  lr:\n    type: uniform\n    min_value: 1\n    max_value: 0.5\n", (11, 16)),
    ("  lr:\n    type: choice\n    values: []\n", (10, 13)),
    ("  lr:\n    type: randint\n    upper: 0\n", (10, 12)),
    ("  lr:\n    type: quniform\n    min_value: 0\n    max_value: 5\n    q: 0\n", (12, 8)),
    ("  lr:\n    type: normal\n    mu: 0\n    sigma: -1\n", (11, 12)),
])
def test_search_space_parameters_that_cannot_work(space: str, where: tuple[int, int]):
    assert at(run(sweep(space)), "MLJ208") == [where]


def test_good_search_space_parameters():
    space = ("  lr:\n    type: loguniform\n    min_value: -5\n    max_value: 0\n  bs:\n    type: choice\n"
             "    values: [16, 32]\n  k:\n    type: randint\n    upper: 3\n  n:\n    type: qnormal\n    mu: 1\n"
             "    sigma: 2\n    q: 1\n")
    found = run(sweep(space, command="python t.py ${{search_space.lr}} ${{search_space.bs}} ${{search_space.k}} "
                      "${{search_space.n}}"))
    assert [d for d in found if d.severity.label == "error"] == []


def test_grid_over_continuous():
    found = run(sweep(algorithm="grid"))
    assert at(found, "MLJ209") == [(9, 11)]
    choice = "  lr:\n    type: choice\n    values: [0.1, 0.2]\n"
    assert at(run(sweep(choice, algorithm="grid")), "MLJ209") == []


def test_bayesian_with_early_termination():
    policy = "early_termination:\n  type: median_stopping\n  evaluation_interval: 1\n"
    assert at(run(sweep(extra=policy, algorithm="bayesian")), "MLJ210") == [(18, 1)]
    assert at(run(sweep(extra=policy)), "MLJ210") == []


def test_bandit_needs_slack():
    policy = "early_termination:\n  type: bandit\n  evaluation_interval: 1\n"
    assert at(run(sweep(extra=policy)), "MLJ211") == [(18, 1)]
    assert at(run(sweep(extra=policy + "  slack_factor: 0.1\n")), "MLJ211") == []


def test_truncation_percentage_range():
    policy = "early_termination:\n  type: truncation_selection\n  truncation_percentage: 100\n"
    assert at(run(sweep(extra=policy)), "MLJ212") == [(20, 26)]
    assert at(run(sweep(extra=policy.replace("100", "20"))), "MLJ212") == []


def test_search_space_name_not_identifier():
    space = "  learning-rate:\n    type: uniform\n    min_value: 0.01\n    max_value: 0.1\n"
    found = run(sweep(space, command="python t.py"))
    assert at(found, "MLJ213") == [(8, 3)]
    assert at(run(sweep()), "MLJ213") == []


def test_objective_primary_metric_missing():
    text = sweep().replace("  primary_metric: acc\n", "")
    found = run(text)
    assert at(found, "MLJ215") == [(12, 1)]
    assert at(run(sweep()), "MLJ215") == []


# --- environment (MLJ214) and placeholders (MLJ217) ----------------------------------------------------------------

def test_environment_needs_image_or_build():
    both = CMD + "command: echo\nenvironment:\n  image: python:3.11\n  build:\n    path: .\n"
    assert at(run(both), "MLJ214") == [(5, 3)]
    neither = CMD + "command: echo\nenvironment:\n  conda_file: env.yml\n"
    assert at(run(neither), "MLJ214") == [(3, 1)]
    assert at(run(CMD + "command: echo\nenvironment:\n  image: python:3.11\n"), "MLJ214") == []


def test_placeholder_environment_is_an_error_and_compute_a_warning():
    found = run(CMD + "command: echo\nenvironment: < your environment name >\ncompute: < your compute >\n")
    assert [(d.line + 1, d.column + 1, d.severity.label) for d in only(found, "MLJ217")] == [
        (3, 14, "error"), (4, 10, "warning")]


@pytest.mark.parametrize("values, message", [
    ("[1, [2]]", "may hold only strings, numbers and booleans"),
    ("[1, {a: 2}]", "may hold only strings, numbers and booleans"),
    ("[1, null]", "holds null"),
    ("[1, ~]", "holds null"),
])
def test_choice_values_the_sampler_cannot_pass_on_are_errors_where_they_stand(values: str, message: str) -> None:
    # The runner's sampler (runner/sweep/space.py) refuses these too; the validator must say so first, so that
    # `mljob validate`, the editor and `mljob run` agree.
    from mljob.runner.sweep.space import SpaceError, parse_space

    text = ("$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json\ntype: sweep\ntrial:\n"
            "  command: echo ${{search_space.x}}\n  environment: {image: python:3.11}\nsampling_algorithm: random\n"
            f"search_space:\n  x: {{type: choice, values: {values}}}\n"
            "objective: {goal: minimize, primary_metric: loss}\nlimits: {max_total_trials: 2}\n")
    found = [d for d in validate_text(text, None).diagnostics if d.code == "MLJ208"]
    assert len(found) == 1 and message in found[0].message
    assert found[0].range.start.line == 7 and found[0].range.start.column == text.splitlines()[7].index("[1, ") + 4
    import yaml

    with pytest.raises(SpaceError, match=message.split(" ")[0]):
        parse_space(yaml.safe_load(text)["search_space"])
