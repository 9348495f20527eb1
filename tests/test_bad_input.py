"""Hostile input: each gets one clear diagnostic, never a traceback, in bounded time and memory."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from mljob.runner.validate import Settings, validate_file, validate_text


def test_fifty_megabytes_is_refused_without_reading_it(tmp_path: Path):
    path = tmp_path / "huge.yml"
    with path.open("wb") as handle:
        handle.write(b"command: " + b"x" * 1024 + b"\n")
        handle.truncate(50 * 1024 * 1024)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    analysis = validate_file(path, settings=Settings(strict=True))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    (only,) = analysis.diagnostics
    assert only.code == "MLJ001" and "50.0 MiB" in only.message
    # Bounded memory: it reads at most 4 MiB + 1 byte, never the 50 MB.
    assert grown_kib < 40 * 1024


def test_alias_bomb(tmp_path: Path):
    lines = ["$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
             "a: &a [x,x,x,x,x,x,x,x,x,x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 10)}]")
    # Bounded: the expansion is counted on the shared graph (memoised), never materialised.
    analysis = validate_text("\n".join(lines) + "\n", tmp_path / "bomb.yml")
    (only,) = analysis.diagnostics
    assert only.code == "MLJ005" and "alias" in only.message


def test_list_and_scalar_documents():
    for text, word in (("- a\n- b\n", "a list"), ("42\n", "a single value")):
        (only,) = validate_text(text, settings=Settings(strict=True)).diagnostics
        assert only.code == "MLJ003" and word in only.message


def test_non_job_yaml_in_the_editor_is_left_alone():
    assert validate_text("- a\n- b\n").diagnostics == []
    assert validate_text("name: conda\ndependencies: [python]\n").diagnostics == []


def test_stray_list_document_beside_a_job():
    text = ("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ncommand: echo\n"
            "environment: azureml:e@latest\n---\n- oops\n")
    (only,) = validate_text(text).diagnostics
    assert only.code == "MLJ003" and only.line == 4


def test_every_document_of_a_file_is_judged():
    job = ("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ncommand: echo\n"
           "environment: azureml:e@latest\n")
    found = validate_text(job + "---\n" + job + "comand: x\n").diagnostics
    assert [(d.code, d.line) for d in found] == [("MLJ101", 7)]


def test_control_characters_and_deep_nesting():
    (only,) = validate_text("command: a\x07b\n", settings=Settings(strict=True)).diagnostics
    assert only.code == "MLJ002"
    deep = "a: " + "[" * 5000 + "]" * 5000 + "\n"
    found = validate_text(deep, settings=Settings(strict=True)).diagnostics
    assert len(found) == 1 and found[0].severity == 1


def test_a_key_written_as_a_mapping_or_list_is_named_not_crashed_on() -> None:
    # Found by hypothesis: `{inputs.x}:` at the start of a line is a flow mapping used as a key.
    from mljob.runner.validate import validate_text

    text = ("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\ncommand: x\n"
            "environment: azureml:e@latest\n{inputs.x}: 2\n[b]: 3\ncommand: y\n")
    found = [(d.code, d.range.start.line) for d in validate_text(text, None).diagnostics]
    assert ("MLJ101", 3) in found and ("MLJ101", 4) in found and ("MLJ004", 5) in found
    message = next(d.message for d in validate_text(text, None).diagnostics if d.code == "MLJ101")
    assert "keys are plain names" in message and "ScalarNode" not in message


# --- special files, through the command line: refused at once, never waited on (issue 17, finding 6) -------------


def _cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`mljob ARGS` as its own process (no resident runner, a home of the test's): a hang is a 30 s timeout."""
    env = {**os.environ, "MLJOB_DAEMON": "0", "MLJOB_HOME": str(tmp_path / "mljob-home")}
    return subprocess.run([sys.executable, "-m", "mljob", *args], capture_output=True, text=True, cwd=tmp_path,
                          env=env, timeout=30)


def test_a_fifo_is_refused_by_validate_and_run_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "job.yml")  # opening it for reading would wait for a writer that never comes
    validated = _cli(tmp_path, "validate", "job.yml")
    assert validated.returncode == 1, validated.stdout + validated.stderr
    (line,) = validated.stdout.splitlines()
    assert line.startswith("job.yml:1:1: error MLJ001: This is a named pipe (FIFO), not a job file"), line
    ran = _cli(tmp_path, "run", "job.yml")
    assert ran.returncode == 1 and line in ran.stderr.splitlines(), ran.stdout + ran.stderr
    created = _cli(tmp_path, "job", "create", "-f", "job.yml")
    assert created.returncode == 1 and line in created.stderr.splitlines(), created.stdout + created.stderr


def test_devices_and_folders_are_refused_without_being_read(tmp_path: Path) -> None:
    from mljob.runner.document import read_text

    for path, kind in ((Path("/dev/zero"), "a device"), (Path("/dev/null"), "a device"), (tmp_path, "a folder")):
        text, problem = read_text(path)
        assert text is None and problem is not None and problem.code == "MLJ001", path
        assert f"This is {kind}, not a job file" in problem.message


def test_a_folder_walk_skips_a_fifo_named_like_a_job(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yml")
    (tmp_path / "job.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                                      "command: echo\nenvironment: azureml:e@latest\n")
    walked = _cli(tmp_path, "validate", ".")
    assert walked.returncode == 0 and walked.stdout == "", walked.stdout + walked.stderr
