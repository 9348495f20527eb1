"""`mljob validate` as a user runs it: a real subprocess, its lines, its JSON and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CMD = "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"


def mljob(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mljob", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60)


@pytest.fixture
def job(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    path = tmp_path / "job.yml"
    path.write_text(CMD + "command: python t.py --n ${{inputs.n}}\ncode: src\nenvironment: azureml:e@latest\n"
                    "inputs:\n  n: 3\nresources:\n  instance_count: 1\n", encoding="utf-8")
    return path


def test_clean_file_exits_zero(job: Path):
    result = mljob("validate", str(job))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""
    assert "0 errors" in result.stderr


def test_error_line_format_and_exit_status(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text(CMD + "command: echo\nenvironment: azureml:e@latest\nsampling_algoritm: random\n")
    result = mljob("validate", str(path))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{path}:4:1: error MLJ101: Unknown key `sampling_algoritm` in a command job. Allowed here: "
        + result.stdout.split("Allowed here: ", 1)[1].rstrip("\n")
    ]


def test_json_format(tmp_path: Path):
    path = tmp_path / "bad.yml"
    path.write_text(CMD + "command: echo\nenvironment: azureml:e@latest\nresources:\n  instance_count: 0\n")
    result = mljob("validate", "--format", "json", str(path))
    assert result.returncode == 1
    (entry,) = json.loads(result.stdout)
    assert entry == {"path": str(path), "severity": "error", "code": "MLJ205", "message": entry["message"],
                     "line": 5, "column": 19, "end_line": 5, "end_column": 20}


def test_set_overrides_are_validated_and_reported_against_the_argument(job: Path):
    result = mljob("validate", str(job), "--set", "resources.instance_count=0")
    assert result.returncode == 1
    assert result.stdout.startswith(f"{job}: --set resources.instance_count=0: error MLJ205:")
    ok = mljob("validate", str(job), "--set", "resources.instance_count=4", "--set", "compute=local")
    assert ok.returncode == 0, ok.stdout
    typo = mljob("validate", str(job), "--set", "resources.instance_cont=2")
    assert "--set resources.instance_cont=2: error MLJ101" in typo.stdout and "instance_count" in typo.stdout
    bad = mljob("validate", str(job), "--set", "command.x=1")
    assert "error MLJ901" in bad.stdout and bad.returncode == 1


def test_folder_walk_skips_non_job_yaml(tmp_path: Path, job: Path):
    (tmp_path / "environment.yml").write_text("name: x\ndependencies:\n  - python=3.11\n")
    (tmp_path / "broken.yml").write_text(CMD + "command: [unclosed\n")
    result = mljob("validate", str(tmp_path))
    assert result.returncode == 1
    assert "broken.yml:2:10: error MLJ002" in result.stdout
    assert "environment.yml" not in result.stdout


def test_missing_file(tmp_path: Path):
    result = mljob("validate", str(tmp_path / "nope.yml"))
    assert result.returncode == 1 and "no such file" in result.stderr


def test_job_validate_spelling(job: Path):
    assert mljob("job", "validate", "-f", str(job)).returncode == 0


def test_migrate_prints_and_writes(tmp_path: Path):
    path = tmp_path / "job.yml"
    (tmp_path / "src").mkdir()
    path.write_text(CMD + "# keep me\ncode:\n  local_path: src\ncommand: python t.py\n"
                    "environment:\n  docker:\n    image: python:3.11\n")
    printed = mljob("migrate", str(path))
    assert printed.returncode == 0 and "code: src" in printed.stdout and "# keep me" in printed.stdout
    assert "local_path" in path.read_text()
    written = mljob("migrate", "--write", str(path))
    assert written.returncode == 0
    assert mljob("validate", str(path)).stdout == ""


def test_bad_inputs_give_one_clear_line_each(tmp_path: Path):
    cases = {
        "binary.yml": b"\x7fELF\x02\x01\x01\x00\x00\x00",
        "latin1.yml": "command: caf\xe9\n".encode("latin-1"),
        "list.yml": b"- a\n- b\n",
        "scalar.yml": b"just a sentence\n",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    result = mljob("validate", *(str(tmp_path / n) for n in cases))
    assert "Traceback" not in result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 4, lines
    assert "binary file" in lines[0] and "MLJ001" in lines[0]
    assert "latin1.yml:1:13: error MLJ001" in lines[1] and "UTF-8" in lines[1]
    assert "list.yml:1:1: error MLJ003" in lines[2] and "a list" in lines[2]
    assert "scalar.yml:1:1: error MLJ003" in lines[3] and "single value" in lines[3]
