"""Command resolution: every substituted value is quoted for where it stands; absent optionals drop out.
Each resolved command is run by a real shell to check that the value arrives literally."""

from __future__ import annotations

import subprocess

import pytest
from mljob.runner.quoting import MissingValue, resolve

NASTY = [
    "plain",
    "two words",
    "a; touch /tmp/mljob-pwned",
    "$(id) `id` $HOME ${HOME}",
    "it's \"quoted\" \\ back\\slash",
    "*.py ? [a-z] ~",
    "new\nline",
    "",
]


def _argv(command: str) -> list[str]:
    done = subprocess.run(["bash", "-c", command], capture_output=True, check=True)
    return done.stdout.decode().split("\0")[:-1]


@pytest.mark.parametrize("value", NASTY)
def test_bare_double_and_single_quoted_contexts_all_pass_the_value_literally(value: str) -> None:
    template = ("printf '%s\\0' ${{inputs.v}} \"${{inputs.v}}\" 'x${{inputs.v}}x' "
                "\"pre ${{inputs.v}} post\"")
    command = resolve(template, {"inputs.v": value}, {"v"})
    assert _argv(command) == [value, value, f"x{value}x", f"pre {value} post"]


def test_safe_values_are_left_as_they_are() -> None:
    assert resolve("python t.py --n ${{inputs.n}} --out ${{outputs.m}}",
                   {"inputs.n": "42", "outputs.m": "/mnt/mljob/outputs/m"}, {"n"}) == \
        "python t.py --n 42 --out /mnt/mljob/outputs/m"


def test_optional_segment_drops_when_its_input_is_absent_and_stays_when_present() -> None:
    template = "run $[[--lr ${{inputs.lr}}]] $[[--seed ${{inputs.seed}}]]"
    assert resolve(template, {"inputs.lr": "0.1"}, {"lr"}) == "run --lr 0.1 "
    assert resolve(template, {"inputs.lr": "0.1", "inputs.seed": "a b"}, {"lr", "seed"}) == \
        "run --lr 0.1 --seed 'a b'"


def test_an_expression_without_a_value_is_reported() -> None:
    with pytest.raises(MissingValue):
        resolve("echo ${{inputs.nothing}}", {}, set())
