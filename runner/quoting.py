"""Command resolution: `${{inputs.x}}` / `${{outputs.y}}` replaced by values, each quoted for where it stands.

A value is quoted for the shell context at its position (bare word, inside "…", inside '…'), so that
`echo "${{inputs.greeting}}"` prints the greeting and never a pair of stray quotes, and a value such as `a; rm -rf ~`
is always one literal argument.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from mljob.runner.expressions import drop_absent_optionals, find_references

_BARE, _SINGLE, _DOUBLE = 0, 1, 2


class MissingValue(KeyError):
    """An expression with nothing to put in its place (the validator reports most of these first)."""


def _states(text: str, stops: list[int]) -> dict[int, int]:
    """The quoting state at each offset in `stops` (sorted), scanning the shell text once."""
    found: dict[int, int] = {}
    state, escaped, i, k = _BARE, False, 0, 0
    for i, char in enumerate(text):
        while k < len(stops) and stops[k] == i:
            found[stops[k]] = state
            k += 1
        if k == len(stops):
            break
        if escaped:
            escaped = False
        elif state == _SINGLE:
            if char == "'":
                state = _BARE
        elif char == "\\":
            escaped = True
        elif state == _DOUBLE:
            if char == '"':
                state = _BARE
        elif char == "'":
            state = _SINGLE
        elif char == '"':
            state = _DOUBLE
    for stop in stops[k:]:
        found[stop] = state
    return found


def quote(value: str, state: int = _BARE) -> str:
    if state == _SINGLE:
        return value.replace("'", "'\\''")
    if state == _DOUBLE:
        return "".join("\\" + c if c in '\\"$`' else c for c in value)
    return shlex.quote(value)


def resolve(template: str, values: Mapping[str, str], present_inputs: set[str]) -> str:
    """The command to run: absent optional segments dropped, every expression replaced by its quoted value."""
    text = drop_absent_optionals(template, present_inputs)
    refs, _ = find_references(text)
    if not refs:
        return text
    states = _states(text, [r.start for r in refs])
    parts: list[str] = []
    at = 0
    for ref in refs:
        if ref.expression not in values:
            raise MissingValue(ref.expression)
        parts.append(text[at:ref.start])
        parts.append(quote(values[ref.expression], states[ref.start]))
        at = ref.end
    parts.append(text[at:])
    return "".join(parts)
