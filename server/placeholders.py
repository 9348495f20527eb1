"""A value to write for a key the schema requires, taken from the schema itself: the property's `examples`, the
`yaml` example in its description, `const`, `default`, `enum`, or (for a mapping) its own required keys; at the top
level, the kind's skeleton snippet when those give nothing. Quick fixes insert it; the user then edits a value that
already validates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from mljob.runner.document import MappingNode, Node, SequenceNode, get, scalar
from mljob.runner.kinds import Kind
from mljob.runner.schema_check import BUNDLED, SchemaSet

from mljob import schemas

Schema = dict[str, Any]
Base = str | Path

_MISSING = object()
_FENCE = re.compile(r"```yaml\n(.*?)```", re.S)
_TABSTOP = re.compile(r"\$\{\d+\|([^,|}]*)[^}]*\|\}|\$\{\d+:([^}]*)\}|\$\d+")


def value_for(kind: Kind, root: Node, path: list[str | int], key: str) -> Any:
    """What to write for `key` missing in the mapping at `path` (a plain Python value; None if nothing fits)."""
    sets = _schema_set(kind)
    node: Node | None = root
    here: list[tuple[Schema | bool, Base]] = [(kind.schema, kind.base)]
    for part in path:
        here = [child for schema, base in here for child in _children(sets, schema, base, node, part)]
        node = _child_node(node, part)
    value: Any = _MISSING
    for schema, base in here:
        for candidate, candidate_base in _applying(sets, schema, base, node):
            prop = candidate.get("properties", {}).get(key) if isinstance(candidate, dict) else None
            if prop is not None:
                value = _example(sets, prop, candidate_base, key, 0)
                if value is not _MISSING:
                    break
        if value is not _MISSING:
            break
    if not path and value in (_MISSING, {}, []):
        # A mapping the schema cannot fill in (`search_space`): the skeleton's, unless it refers to names or files
        # defined elsewhere in the skeleton, which this job does not have.
        found = _skeleton(kind).get(key, _MISSING)
        if found is not _MISSING and _standalone(found):
            value = found
    return None if value is _MISSING else value


def _standalone(value: Any) -> bool:
    """Examples that refer to names or files defined elsewhere in their example would not validate here."""
    shown = repr(value)
    return "${{" not in shown and "./" not in shown


def _schema_set(kind: Kind) -> SchemaSet:
    return BUNDLED if isinstance(kind.base, str) else SchemaSet()


def _skeleton(kind: Kind) -> dict[str, Any]:
    """The kind's skeleton snippet with every tab stop replaced by its default text, as data."""
    schema = kind.schema if isinstance(kind.schema, dict) else {}
    for snippet in schema.get("defaultSnippets") or ():
        body = snippet.get("bodyText") if isinstance(snippet, dict) else None
        if not isinstance(body, str):
            continue
        plain = _TABSTOP.sub(lambda m: m.group(1) or m.group(2) or "", body).replace("\\$", "$").replace("\\}", "}")
        try:
            data = yaml.safe_load(plain)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict):
            return data
    return {}


def _child_node(node: Node | None, part: str | int) -> Node | None:
    if isinstance(part, int):
        return node.value[part] if isinstance(node, SequenceNode) and 0 <= part < len(node.value) else None
    return get(node, part)


def _deref(sets: SchemaSet, schema: Any, base: Base) -> tuple[Any, Base]:
    for _ in range(32):  # a cycle of bare refs is a broken schema, not a reason to hang
        if not (isinstance(schema, dict) and "$ref" in schema):
            break
        schema, base = sets.resolve(schema["$ref"], base)
    return schema, base


def _applying(sets: SchemaSet, schema: Any, base: Base, node: Node | None,
              depth: int = 0) -> list[tuple[Schema, Base]]:
    """The schema and the parts of it that may apply to `node`: allOf parts, both if-branches, and the union
    branches its `type` selects (all of them when it has no `type`)."""
    schema, base = _deref(sets, schema, base)
    if not isinstance(schema, dict) or depth > 8:
        return []
    found = [(schema, base)]
    parts: list[Any] = list(schema.get("allOf", ()))
    parts += [schema[k] for k in ("then", "else") if isinstance(schema.get(k), dict)]
    type_value = scalar(get(node, "type")) if isinstance(node, MappingNode) else None
    for union in ("anyOf", "oneOf"):
        for branch in schema.get(union, ()):
            resolved, _ = _deref(sets, branch, base)
            pinned = _pinned_types(resolved)
            if type_value is None or not pinned or type_value in pinned:
                parts.append(branch)
    for part in parts:
        found.extend(_applying(sets, part, base, node, depth + 1))
    return found


def _pinned_types(schema: Any) -> set[str]:
    prop = schema.get("properties", {}).get("type") if isinstance(schema, dict) else None
    if not isinstance(prop, dict):
        return set()
    if "const" in prop:
        return {str(prop["const"])}
    return {str(v) for v in prop.get("enum", ())}


def _children(sets: SchemaSet, schema: Any, base: Base, node: Node | None,
              part: str | int) -> list[tuple[Any, Base]]:
    found: list[tuple[Any, Base]] = []
    for candidate, candidate_base in _applying(sets, schema, base, node):
        if isinstance(part, int):
            if "items" in candidate:
                found.append((candidate["items"], candidate_base))
            continue
        if part in candidate.get("properties", {}):
            found.append((candidate["properties"][part], candidate_base))
            continue
        for pattern, sub in candidate.get("patternProperties", {}).items():
            if re.search(pattern, part):
                found.append((sub, candidate_base))
        if isinstance(candidate.get("additionalProperties"), dict):
            found.append((candidate["additionalProperties"], candidate_base))
    return found


def _example(sets: SchemaSet, schema: Any, base: Base, key: str, depth: int) -> Any:
    schema, base = _deref(sets, schema, base)
    if not isinstance(schema, dict) or depth > 4:
        return _MISSING
    examples = schema.get("examples")
    if isinstance(examples, list) and examples:
        return examples[0]
    described = _from_description(schema.get("description"), key)
    if described is not _MISSING:
        return described
    for word in ("const", "default"):
        if word in schema:
            return schema[word]
    if schema.get("enum"):
        return schema["enum"][0]
    for union in ("anyOf", "oneOf"):
        for branch in schema.get(union, ()):
            resolved, _ = _deref(sets, branch, base)
            if isinstance(resolved, dict) and resolved.get("deprecated"):
                continue
            value = _example(sets, branch, base, key, depth + 1)
            if value is not _MISSING:
                return value
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if "object" in types or "properties" in schema:
        props = schema.get("properties", {})
        built = {}
        for name in schema.get("required", ()):
            value = _example(sets, props.get(name, {}), base, name, depth + 1)
            if value is _MISSING:
                return _MISSING
            built[name] = value
        return built
    if "array" in types:
        item = _example(sets, schema.get("items", {}), base, key, depth + 1)
        return [] if item is _MISSING else [item]
    return {"integer": 1, "number": 1, "boolean": False}.get(types[0], _MISSING) if types else _MISSING


def _from_description(description: Any, key: str) -> Any:
    """Descriptions end with a ```yaml example; when it shows this very key, its value is a real example."""
    if not isinstance(description, str) or "```yaml" not in description:
        return _MISSING
    for block in _FENCE.findall(description):
        try:
            data = yaml.safe_load(block)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and key in data and data[key] is not None and _standalone(data[key]):
            return data[key]
    return _MISSING


def catalog_url(kind: Kind) -> str | None:
    """The `$schema` URL to add to a job recognised by its `type` or shape."""
    return kind.entry.url if isinstance(kind.entry, schemas.CatalogEntry) else None



