"""`--set key.path=value`, as `az ml job create --set` does: applied to the node tree, then validated like the file.

Nodes that an override creates carry a negative line (-1 for the first `--set`, -2 for the second, …) so that a
diagnostic about them is reported against the command-line argument rather than a line of the file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import yaml
from mljob.runner.diagnostics import Diagnostic, Range, Severity
from mljob.runner.document import Document, MappingNode, Node, ScalarNode, SequenceNode, YamlDocument

_SEGMENT = re.compile(r"[^.\[\]]+|\[\d+\]")


def _relocate(node: Node, line: int) -> None:
    mark = yaml.error.Mark("--set", -1, line, 0, None, None)
    node.start_mark = node.end_mark = mark
    if isinstance(node, MappingNode):
        for key, value in node.value:
            _relocate(key, line)
            _relocate(value, line)
    elif isinstance(node, SequenceNode):
        for child in node.value:
            _relocate(child, line)


def _problem(number: int, message: str) -> Diagnostic:
    return Diagnostic(Range.at(-(number + 1), 0), Severity.ERROR, "MLJ901", message)


def parse_override(text: str) -> tuple[list[str | int], str] | None:
    path_text, sep, value = text.partition("=")
    if not sep or not path_text.strip():
        return None
    segments: list[str | int] = []
    for piece in _SEGMENT.findall(path_text.strip()):
        segments.append(int(piece[1:-1]) if piece.startswith("[") else piece)
    return segments, value


def apply_overrides(document: Document, overrides: Sequence[str]) -> list[Diagnostic]:
    problems: list[Diagnostic] = []
    if not document.docs or document.docs[0].root is None:
        if overrides and not document.diagnostics:
            document.docs[:1] = [YamlDocument(MappingNode("tag:yaml.org,2002:map", []), 0)]
        else:
            return problems
    root = document.docs[0].root
    for number, text in enumerate(overrides):
        parsed = parse_override(text)
        if parsed is None:
            problems.append(_problem(number, f"`--set {text}` is not `key.path=value`; e.g. `--set compute=local`."))
            continue
        segments, raw = parsed
        try:
            value = yaml.compose(raw, Loader=yaml.CSafeLoader) if raw.strip() else None
        except yaml.YAMLError as err:
            problems.append(_problem(number, f"`--set {text}`: the value is not valid YAML ({err})."))
            continue
        if value is None:
            value = ScalarNode("tag:yaml.org,2002:str", raw)
        _relocate(value, -(number + 1))
        segments = _onto_2021_target(root, segments, value)
        error = _assign(root, segments, value, number)
        if error:
            problems.append(_problem(number, f"`--set {text}`: {error}"))
    return problems


def _onto_2021_target(root: Node | None, segments: list[str | int], value: Node) -> list[str | int]:
    """`--set compute=local` on a 2021 file whose `compute:` is `{target: …, instance_count: 2}` means its target:
    replacing the whole mapping would silently drop the instance count."""
    if segments == ["compute"] and isinstance(value, ScalarNode) and isinstance(root, MappingNode):
        for key, child in root.value:
            if isinstance(key, ScalarNode) and key.value == "compute" and isinstance(child, MappingNode) and any(
                    isinstance(k, ScalarNode) and k.value == "target" for k, _ in child.value):
                return ["compute", "target"]
    return segments


def _assign(node: Node | None, segments: list[str | int], value: Node, number: int) -> str | None:
    for depth, segment in enumerate(segments):
        last = depth == len(segments) - 1
        where = ".".join(str(s) for s in segments[:depth]) or "the job"
        if isinstance(segment, int):
            if not isinstance(node, SequenceNode):
                return f"`{where}` is not a list, so `[{segment}]` cannot be set."
            if segment >= len(node.value):
                return f"`{where}` has {len(node.value)} items; index {segment} is past the end."
            if last:
                node.value[segment] = value
                return None
            node = node.value[segment]
            continue
        if not isinstance(node, MappingNode):
            return f"`{where}` is not a mapping, so `{segment}` cannot be set inside it."
        found = None
        for i, (key, child) in enumerate(node.value):
            if isinstance(key, ScalarNode) and key.value == segment:
                found = i
                if last:
                    node.value[i] = (key, value)
                    return None
                node = child
                break
        if found is None:
            key = ScalarNode("tag:yaml.org,2002:str", segment)
            _relocate(key, -(number + 1))
            child = value if last else MappingNode("tag:yaml.org,2002:map", [])
            if not last:
                _relocate(child, -(number + 1))
            node.value.append((key, child))
            if last:
                return None
            node = child
    return None
