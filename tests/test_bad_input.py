"""Hostile input: each gets one clear diagnostic, never a traceback, in bounded time and memory."""

from __future__ import annotations

import resource
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
