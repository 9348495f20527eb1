"""The expression forms inside job strings: `${{inputs.x}}`, optional `$[[ … ]]` segments, 2021 `{inputs.x}`.

Everything that needs to find references (validation, substitution at run time, go-to-definition, rename) uses
`find_references`, so the forms are defined once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# `${{ inputs.x }}` with or without inner spaces; the inner text is checked separately so that a malformed one can be
# reported instead of silently ignored.
GA = re.compile(r"\$\{\{(?P<inner>.*?)\}\}", re.S)
# 2021 preview: `{inputs.x}` not part of `${{`/`{{` and not a longer brace group.
PREVIEW = re.compile(r"(?<![\$\{])\{(?P<inner>(?:inputs|outputs|search_space)\.[A-Za-z_][\w.]*)\}(?!\})")
OPTIONAL = re.compile(r"\$\[\[(?P<body>.*?)\]\]", re.S)
UNCLOSED = re.compile(r"\$\{\{(?![^\n]*?\}\})")
_INNER = re.compile(r"^\s*(?P<expr>[A-Za-z_][\w]*(?:\.[A-Za-z_][\w-]*)*)\s*$")

NAMESPACES = ("inputs", "outputs", "search_space")


@dataclass(frozen=True, slots=True)
class Reference:
    """One expression in a string; offsets are code points into that string."""

    start: int
    end: int
    expression: str  # e.g. "inputs.learning_rate" or "parent.inputs.x"
    form: str  # "ga" or "2021"
    optional: bool  # inside a `$[[ … ]]` segment
    namespace: str | None  # "inputs", "outputs" or "search_space"; None for anything else
    name: str | None

    @property
    def parts(self) -> list[str]:
        return self.expression.split(".")

    def name_span(self, text: str) -> tuple[int, int]:
        """Offsets of the referenced name (for rename and go-to-definition)."""
        name = self.name or ""
        inner_start = text.find(self.expression, self.start, self.end)
        at = inner_start + len(self.parts[0]) + 1
        return at, at + len(name)


@dataclass(frozen=True, slots=True)
class Malformed:
    start: int
    end: int
    text: str


def _reference(start: int, end: int, expression: str, form: str, optional: bool) -> Reference:
    head, _, rest = expression.partition(".")
    if head in NAMESPACES and rest:
        return Reference(start, end, expression, form, optional, head, rest.partition(".")[0])
    return Reference(start, end, expression, form, optional, None, None)


def _optional_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in OPTIONAL.finditer(text)] if "$[[" in text else []


def find_references(text: str) -> tuple[list[Reference], list[Malformed]]:
    refs: list[Reference] = []
    bad: list[Malformed] = []
    optional = _optional_spans(text)

    def in_optional(at: int) -> bool:
        return bool(optional) and any(s <= at < e for s, e in optional)

    if "${{" in text:
        for match in GA.finditer(text):
            inner = _INNER.match(match.group("inner"))
            if inner is None:
                bad.append(Malformed(match.start(), match.end(), match.group(0)))
                continue
            refs.append(_reference(match.start(), match.end(), inner.group("expr"), "ga", in_optional(match.start())))
        for match in UNCLOSED.finditer(text):
            bad.append(Malformed(match.start(), match.end(), "${{"))
    if "{" in text:
        for match in PREVIEW.finditer(text):
            refs.append(_reference(match.start(), match.end(), match.group("inner"), "2021",
                                   in_optional(match.start())))
    refs.sort(key=lambda r: r.start)
    return refs, bad


def drop_absent_optionals(text: str, present: set[str]) -> str:
    """Remove `$[[ … ]]` segments that reference an input not given; keep the others without their brackets."""

    def keep(match: re.Match[str]) -> str:
        body = match.group("body")
        refs, _ = find_references(body)
        for ref in refs:
            if ref.namespace == "inputs" and ref.name not in present:
                return ""
        return body

    return OPTIONAL.sub(keep, text)
