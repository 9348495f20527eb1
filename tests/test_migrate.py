"""Migration of May-2021 preview job files to GA syntax (mljob.runner.migrate)."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

import pytest
from mljob.runner.migrate import Change, Migration, MigrationError, migrate_text
from ruamel.yaml import YAML

from tests.realparts import CORPUS_HOW, needs

CORPUS = Path(os.environ.get("MLJOB_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
SEED_2021 = CORPUS / "seed-2021"
GA_EXAMPLES = CORPUS / "azureml-examples"
needs_corpus = needs(SEED_2021.is_dir(), f"the job-file corpus is not at {SEED_2021}", CORPUS_HOW)


def migrated(text: str) -> str:
    return migrate_text(text).text


def messages(migration: Migration) -> list[str]:
    return [change.message for change in migration.changes]


# ------------------------------------------------------------------------------------------------------------
# One rewrite at a time.


def test_code_local_path_becomes_a_plain_path() -> None:
    migration = migrate_text("code:\n  local_path: src\ncommand: python main.py\n")
    assert migration.text == "code: src\ncommand: python main.py\n"
    assert migration.changes == [Change(1, "`code.local_path: src` → `code: src`")]


def test_flow_style_forms_stay_flow_style() -> None:
    text = (
        "code: {local_path: src}\n"
        "environment: {docker: {image: python:3.10}, conda_file: file:environment.yml}\n"
        "compute: {target: azureml:cpu-cluster, instance_count: 2}\n"
    )
    assert migrated(text) == (
        "code: src\n"
        "environment: {image: python:3.10, conda_file: environment.yml}\n"
        "compute: azureml:cpu-cluster\n"
        "resources:\n"
        "  instance_count: 2\n"
    )


def test_environment_docker_image_and_conda_file() -> None:
    text = "environment:\n  docker:\n    image: mcr.microsoft.com/azureml/base:1\n  conda_file: file:env.yml\n"
    migration = migrate_text(text)
    assert migration.text == "environment:\n  image: mcr.microsoft.com/azureml/base:1\n  conda_file: env.yml\n"
    assert [c.line for c in migration.changes] == [2, 3]


def test_environment_docker_build_dockerfile() -> None:
    text = "environment:\n  docker:\n     build:\n       dockerfile: file:DOCKERFILE\ncompute: local\n"
    migration = migrate_text(text)
    assert migration.text == "environment:\n  build:\n    path: .\n    dockerfile_path: DOCKERFILE\ncompute: local\n"
    assert messages(migration) == [
        "`environment.docker.build: {dockerfile: file:DOCKERFILE}` → "
        "`environment.build: {path: ., dockerfile_path: DOCKERFILE}`"
    ]


def test_compute_target_and_instance_count_become_compute_and_resources() -> None:
    text = "compute:\n  target: azureml:gpu-cluster\n  instance_count: 2\nexperiment_name: x\n"
    migration = migrate_text(text)
    assert migration.text == "compute: azureml:gpu-cluster\nresources:\n  instance_count: 2\nexperiment_name: x\n"
    assert messages(migration) == [
        "`compute.target: azureml:gpu-cluster` → `compute: azureml:gpu-cluster`",
        "`compute.instance_count: 2` → `resources.instance_count: 2`",
    ]


def test_compute_instance_count_merges_into_existing_resources() -> None:
    text = "resources:\n  shm_size: 2g\ncompute:\n  target: azureml:gpu\n  instance_count: 4\n"
    assert migrated(text) == "resources:\n  shm_size: 2g\n  instance_count: 4\ncompute: azureml:gpu\n"


def test_compute_target_local() -> None:
    assert migrated("command: echo hi\ncompute:\n  target: local\n") == "command: echo hi\ncompute: local\n"


def test_input_url_to_a_file_mounted() -> None:
    text = (
        "inputs:\n"
        "  iris:\n"
        "    data:\n"
        "      path: https://azuremlexamples.blob.core.windows.net/datasets/iris.csv\n"
        "    mode: mount\n"
    )
    migration = migrate_text(text)
    assert migration.text == (
        "inputs:\n"
        "  iris:\n"
        "    type: uri_file\n"
        "    path: https://azuremlexamples.blob.core.windows.net/datasets/iris.csv\n"
        "    mode: ro_mount\n"
    )
    assert [c.line for c in migration.changes] == [2, 4]


def test_input_local_folder_downloaded() -> None:
    text = "inputs:\n  corpus:\n    data:\n      local_path: data\n    mode: download\n"
    assert migrated(text) == "inputs:\n  corpus:\n    type: uri_folder\n    path: data\n    mode: download\n"


def test_input_type_follows_the_last_path_segment() -> None:
    text = (
        "inputs:\n"
        "  a: {data: {path: 'https://x.blob.core.windows.net/c/folder/'}}\n"
        "  b: {data: {local_path: file:data/train.parquet}}\n"
        "  c: {data: {datastore: azureml:workspaceblobstore, path: raw/v1}}\n"
        "  d: 3\n"
    )
    assert migrated(text) == (
        "inputs:\n"
        "  a: {type: uri_folder, path: 'https://x.blob.core.windows.net/c/folder/'}\n"
        "  b: {type: uri_file, path: data/train.parquet}\n"
        "  c: {type: uri_folder, path: azureml://datastores/workspaceblobstore/paths/raw/v1}\n"
        "  d: 3\n"
    )


def test_expressions_get_the_ga_syntax_and_other_braces_stay() -> None:
    text = (
        "command: >-\n"
        "  python -c 'print({})' ${HOME}\n"
        "  --data {inputs.data} --out {outputs.model}\n"
        "  --lr {search_space.lr} --seed ${{inputs.seed}}\n"
        'environment_variables: {DATA: "{inputs.data}"}\n'
    )
    migration = migrate_text(text)
    assert migration.text == (
        "command: >-\n"
        "  python -c 'print({})' ${HOME}\n"
        "  --data ${{inputs.data}} --out ${{outputs.model}}\n"
        "  --lr ${{search_space.lr}} --seed ${{inputs.seed}}\n"
        'environment_variables: {DATA: "${{inputs.data}}"}\n'
    )
    # Lines point into the block scalar, at the line that holds each old expression.
    assert [(c.line, c.message) for c in migration.changes] == [
        (2, "`{inputs.data}` → `${{inputs.data}}`"),
        (2, "`{outputs.model}` → `${{outputs.model}}`"),
        (3, "`{search_space.lr}` → `${{search_space.lr}}`"),
        (4, "`{inputs.data}` → `${{inputs.data}}`"),
    ]


def test_literal_block_scalar_stays_literal() -> None:
    text = "command: |\n  echo {inputs.a}\n  python run.py\n"
    assert migrated(text) == "command: |\n  echo ${{inputs.a}}\n  python run.py\n"


def test_pytorch_total_process_count_becomes_per_instance() -> None:
    text = "compute:\n  target: azureml:gpu\n  instance_count: 2\ndistribution:\n  type: pytorch\n  process_count: 4\n"
    migration = migrate_text(text)
    assert migration.text == (
        "compute: azureml:gpu\nresources:\n  instance_count: 2\n"
        "distribution:\n  type: pytorch\n  process_count_per_instance: 2\n"
    )
    assert migration.changes[-1] == Change(
        5,
        "`distribution.process_count: 4` (in total) → `distribution.process_count_per_instance: 2` "
        "(on each of 2 instances)",
    )


def test_indivisible_process_count_rounds_up_and_says_so() -> None:
    text = "resources:\n  instance_count: 2\ndistribution:\n  type: pytorch\n  process_count: 5\n"
    migration = migrate_text(text)
    assert migration.text == (
        "resources:\n  instance_count: 2\ndistribution:\n  type: pytorch\n  process_count_per_instance: 3\n"
    )
    assert any("does not divide" in m and "rounded up to 3" in m for m in messages(migration))


def test_process_count_without_instance_count_is_per_single_instance() -> None:
    text = "distribution:\n  type: pytorch\n  process_count: 4\n"
    assert migrated(text) == "distribution:\n  type: pytorch\n  process_count_per_instance: 4\n"


def test_sweep_rewrites() -> None:
    text = """\
type: sweep_job
algorithm: random
trial:
  command: python train.py --lr {search_space.lr} --data {inputs.data}
  code:
    local_path: src
  inputs:
    data:
      data:
        local_path: data
      mode: mount
  environment: azureml:AzureML-sklearn-1.0:1
  compute:
    target: azureml:cpu-cluster
    instance_count: 2
search_space:
  lr: {type: uniform, min_value: 0.01, max_value: 0.1}
objective: {primary_metric: accuracy, goal: maximize}
max_total_trials: 8
max_concurrent_trials: 2
timeout_minutes: 30
"""
    assert (
        migrated(text)
        == """\
type: sweep
sampling_algorithm: random
trial:
  command: python train.py --lr ${{search_space.lr}} --data ${{inputs.data}}
  code: src
  environment: azureml:AzureML-sklearn-1.0:1
  resources:
    instance_count: 2
inputs:
  data:
    type: uri_folder
    path: data
    mode: ro_mount
compute: azureml:cpu-cluster
search_space:
  lr: {type: uniform, min_value: 0.01, max_value: 0.1}
objective: {primary_metric: accuracy, goal: maximize}
limits:
  max_total_trials: 8
  max_concurrent_trials: 2
  timeout: 1800
"""
    )


def test_sweep_limits_go_where_the_first_limit_was_and_merge_into_existing_limits() -> None:
    text = (
        "type: sweep_job\nmax_concurrent_trials: 2\nobjective: {goal: minimize, primary_metric: loss}\n"
        "timeout_minutes: 1\nlimits:\n  max_total_trials: 4\n"
    )
    assert migrated(text) == (
        "type: sweep\nobjective: {goal: minimize, primary_metric: loss}\n"
        "limits:\n  max_total_trials: 4\n  max_concurrent_trials: 2\n  timeout: 60\n"
    )


# ------------------------------------------------------------------------------------------------------------
# Whole files.

# The 2021 forms, as text: none may survive a migration.
OLD_FORMS = [
    r"local_path:",
    r"^\s*docker:",
    r"\bfile:",
    r"^\s*target:",
    r"sweep_job",
    r"^algorithm:",
    r"(?<![{$])\{\s*(?:inputs|outputs|search_space)\.",
    r"mode: mount\b",
    r"^\s+data:",
    r"^\s*process_count:",
    r"^(?:max_total_trials|max_concurrent_trials|timeout_minutes):",
    r"dockerfile:",
]


def _seed_files() -> list[Path]:
    return sorted(SEED_2021.rglob("*.yml")) if SEED_2021.is_dir() else []


def _load(text: str) -> Any:
    return YAML(typ="rt").load(io.StringIO(text))


def _assert_ga_job(job: dict[str, Any]) -> None:
    """The structural side of "no 2021 form survives" (the text side is OLD_FORMS)."""
    assert not isinstance(job.get("code"), dict)
    assert not isinstance(job.get("compute"), dict)
    env = job.get("environment")
    assert not (isinstance(env, dict) and "docker" in env)
    for kind in ("inputs", "outputs"):
        for spec in (job.get(kind) or {}).values():
            assert not (isinstance(spec, dict) and "data" in spec)
    assert "process_count" not in (job.get("distribution") or {})


@needs_corpus
@pytest.mark.parametrize("path", _seed_files(), ids=lambda p: str(p.relative_to(SEED_2021)))
def test_every_2021_file_migrates_to_ga(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    migration = migrate_text(text)
    is_conda_file = path.name == "environment.yml"
    if is_conda_file:  # a conda file in the seed folder: not a job, nothing to do
        assert migration == Migration(text, [])
        return
    assert migration.changes
    for pattern in OLD_FORMS:
        assert not re.search(pattern, migration.text, re.MULTILINE), pattern
    data = _load(migration.text)
    _assert_ga_job(data)
    if "trial" in data:
        _assert_ga_job(data["trial"])
        assert data["type"] == "sweep" and "inputs" not in data["trial"] and "compute" not in data["trial"]
    # Idempotent: GA output needs nothing more.
    assert migrate_text(migration.text) == Migration(migration.text, [])


@needs_corpus
def test_there_are_six_2021_job_files_and_hello_world() -> None:
    jobs = [p for p in _seed_files() if p.name != "environment.yml"]
    assert len(jobs) >= 7 and SEED_2021 / "hello-world.yml" in jobs


@needs_corpus
def test_lightgbm_sweep_in_full() -> None:
    """What migration produces from a real 2021 sweep, for a reader to see.

    `\\x20` is the trailing space of the original `python main.py ` line: the fold is kept where it was.
    """
    text = (SEED_2021 / "train/lightgbm/iris/job-sweep.yml").read_text(encoding="utf-8")
    assert (
        migrated(text)
        == """\
$schema: https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json
type: sweep
sampling_algorithm: random
trial:
  code: src
  command: >
    python main.py\x20
    --iris-csv ${{inputs.iris}}
    --learning-rate ${{search_space.learning_rate}}
    --boosting ${{search_space.boosting}}
  environment:
    image: mcr.microsoft.com/azureml/openmpi3.1.2-ubuntu18.04
    conda_file: environment.yml
inputs:
  iris:
    type: uri_file
    path: https://azuremlexamples.blob.core.windows.net/datasets/iris.csv
    mode: ro_mount
compute: azureml:cpu-cluster
search_space:
  learning_rate:
    type: uniform
    min_value: 0.01
    max_value: 0.9
  boosting:
    type: choice
    values: ["gbdt", "dart"]
objective:
  primary_metric: test-multi_logloss
  goal: minimize
limits:
  max_total_trials: 20
  max_concurrent_trials: 10
  timeout: 7200
experiment_name: lightgbm-iris-sweep-example
description: Run a hyperparameter sweep job for LightGBM on Iris dataset.
"""
    )


@needs_corpus
def test_ga_sweep_comes_back_unchanged() -> None:
    text = (GA_EXAMPLES / "basics/hello-sweep.yml").read_text(encoding="utf-8")
    assert migrate_text(text) == Migration(text, [])


@needs_corpus
def test_no_ga_example_is_touched() -> None:
    touched = []
    for path in sorted(GA_EXAMPLES.rglob("*.y*ml")):
        text = path.read_text(encoding="utf-8")
        if migrate_text(text) != Migration(text, []):
            touched.append(str(path.relative_to(GA_EXAMPLES)))
    assert touched == []


# ------------------------------------------------------------------------------------------------------------
# What must survive: comments, blank lines, quoting, line endings.


def test_comments_survive_on_migrated_keys_and_elsewhere() -> None:
    text = """\
# A 2021 job
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json

# the code folder
code:
  local_path: src  # uploaded as is
command: python train.py --data {inputs.data}  # entry point
inputs:
  data:
    data:
      local_path: data
    mode: mount  # read only
# where it runs
compute:
  target: azureml:gpu-cluster  # 4 GPUs
  instance_count: 2  # nodes

# the end
"""
    assert (
        migrated(text)
        == """\
# A 2021 job
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json

# the code folder
code: src  # uploaded as is
command: python train.py --data ${{inputs.data}}  # entry point
inputs:
  data:
    type: uri_folder
    path: data
    mode: ro_mount  # read only
# where it runs
compute: azureml:gpu-cluster  # 4 GPUs
resources:
  instance_count: 2  # nodes

# the end
"""
    )


def test_comments_move_with_hoisted_sweep_keys() -> None:
    text = """\
type: sweep_job
trial:
  command: python a.py
  # the trial's data
  inputs:
    x: 1  # one
  # runtime
  environment: azureml:env:1
# what to try
search_space: {lr: {type: choice, values: [1, 2]}}
"""
    assert (
        migrated(text)
        == """\
type: sweep
trial:
  command: python a.py
  # runtime
  environment: azureml:env:1
# the trial's data
inputs:
  x: 1  # one
# what to try
search_space: {lr: {type: choice, values: [1, 2]}}
"""
    )


def test_quotes_and_untouched_formatting_survive() -> None:
    text = "code:\n  local_path: 'src'\ndisplay_name: \"hello\"\ntags: {a: 'b'}\nvalues:\n  - 1\n  - 2\n"
    assert migrated(text) == "code: 'src'\ndisplay_name: \"hello\"\ntags: {a: 'b'}\nvalues:\n  - 1\n  - 2\n"


def test_crlf_line_endings_survive() -> None:
    text = "# job\r\ncode:\r\n  local_path: src\r\ncommand: echo {inputs.x}\r\n"
    assert migrated(text) == "# job\r\ncode: src\r\ncommand: echo ${{inputs.x}}\r\n"


def test_a_missing_final_newline_stays_missing() -> None:
    assert migrated("code:\n  local_path: src\ndescription: x") == "code: src\ndescription: x"


def test_bom_is_dropped() -> None:
    assert migrated("\ufeffcode:\n  local_path: src\n") == "code: src\n"


def test_multi_document_files_migrate_document_by_document() -> None:
    text = (
        "# first\ncode: {local_path: src}\n"
        "---\n"
        "code: src   # already GA: copied as it is\n"
        "---  # third\n"
        "compute:\n  target: local\n"
    )
    migration = migrate_text(text)
    assert migration.text == (
        "# first\ncode: src\n---\ncode: src   # already GA: copied as it is\n---  # third\ncompute: local\n"
    )
    assert [c.line for c in migration.changes] == [1, 6]


def test_ga_text_comes_back_identical() -> None:
    text = "code: src\ncommand: >-\n  python x.py\n  --a ${{inputs.a}}\ninputs:\n  a: 1\n"
    assert migrate_text(text) == Migration(text, [])


# ------------------------------------------------------------------------------------------------------------
# Errors.


def test_broken_yaml_raises_migration_error_with_its_line() -> None:
    with pytest.raises(MigrationError, match=r"line 3, column 2: ") as caught:
        migrate_text("code:\n  local_path: src\n command: python a.py\n")
    assert isinstance(caught.value, ValueError)
    assert (caught.value.line, caught.value.column) == (2, 1)


def test_error_lines_count_from_the_start_of_the_file_in_later_documents() -> None:
    with pytest.raises(MigrationError, match=r"line 4, column 1") as caught:
        migrate_text("a: 1\n---\nb: 'open\n")
    assert (caught.value.line, caught.value.column) == (3, 0)


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "a: *missing\n", "\tkey: 1\n", "a:\n  - b\n c: d\n"])
def test_no_ruamel_exception_escapes(text: str) -> None:
    with pytest.raises(MigrationError, match=r"line \d+, column \d+"):
        migrate_text(text)


def test_process_count_is_divided_by_a_compute_instance_count_written_after_it() -> None:
    # The runner lays out ranks from the migrated counts: key order in the 2021 file must not change them.
    text = "distribution:\n  type: pytorch\n  process_count: 4\ncompute:\n  target: azureml:gpu\n  instance_count: 2\n"
    assert migrated(text) == (
        "distribution:\n  type: pytorch\n  process_count_per_instance: 2\n"
        "compute: azureml:gpu\nresources:\n  instance_count: 2\n"
    )


# ------------------------------------------------------------------------------------------------------------
# Bounded exactly like `mljob validate` (issue 17, finding 6): what validation refuses at once, migrate refuses at
# once too, with the same code and line; nothing is handed to ruamel's round trip beyond those limits.


def _alias_bomb() -> str:
    lines = ["$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
             "a: &a [x,x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 10)}]")
    return "\n".join(lines) + "\n"  # ~400 bytes; 10^9 values once expanded


def _cli(folder: Path, *args: str) -> Any:
    """`mljob ARGS` as its own process (no resident runner): a hang is a 30 s timeout, not a stuck suite."""
    import subprocess
    import sys

    env = {**os.environ, "MLJOB_DAEMON": "0", "MLJOB_HOME": str(folder / "mljob-home")}
    return subprocess.run([sys.executable, "-m", "mljob", *args], capture_output=True, text=True, cwd=folder,
                          env=env, timeout=30)


def _write_bomb(path: Path) -> None:
    path.write_text(_alias_bomb())


def _write_huge(path: Path) -> None:
    with path.open("wb") as handle:
        handle.write(b"code:\n  local_path: src\ncommand: " + b"x" * 1024 + b"\n")
        handle.truncate(50 * 1024 * 1024)


@pytest.mark.parametrize(("make", "code"), [(_write_bomb, "MLJ005"), (_write_huge, "MLJ001"), (os.mkfifo, "MLJ001")],
                         ids=["alias-bomb", "50-MB", "fifo"])
def test_migrate_refuses_what_validate_refuses_at_once_with_the_same_line(tmp_path: Path, make: Any,
                                                                          code: str) -> None:
    make(tmp_path / "job.yml")
    validated = _cli(tmp_path, "validate", "job.yml")
    (expected,) = validated.stdout.splitlines()
    assert validated.returncode == 1 and f": error {code}: " in expected, validated.stdout + validated.stderr
    for args in (("migrate", "job.yml"), ("migrate", "--write", "job.yml")):
        migrated = _cli(tmp_path, *args)
        assert migrated.returncode == 1, migrated.stdout + migrated.stderr
        assert migrated.stderr.splitlines() == [expected] and migrated.stdout == ""


def test_migrate_text_refuses_an_alias_bomb_before_ruamel_sees_it() -> None:
    import signal

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("migrate_text walked the alias bomb for 10 s")

    previous = signal.signal(signal.SIGALRM, expired)  # a regression fails here instead of hanging the suite
    signal.alarm(10)
    try:
        with pytest.raises(MigrationError, match=r"line 7, column 4: Aliases here expand") as caught:
            migrate_text(_alias_bomb())
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert (caught.value.code, caught.value.line, caught.value.column) == ("MLJ005", 6, 3)


def test_a_few_shared_aliases_still_migrate() -> None:
    text = "base: &b {a: 1}\ncode:\n  local_path: src\nx: *b\ny: *b\n"
    assert migrated(text) == "base: &b {a: 1}\ncode: src\nx: *b\ny: *b\n"
