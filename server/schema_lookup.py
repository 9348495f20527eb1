"""The schema at a key path, for completion and hover alike.

A path is walked through `properties`, `patternProperties`, `additionalProperties` and `items`; `$ref`s are followed
by the validator's SchemaSet (same resolution, same caches); `anyOf`/`oneOf` unions of mappings are narrowed by the
mapping's `type` when the text says it (the convention the walker also relies on), and `if`/`then`/`else` by the keys
and values the text shows. What the text does not say widens the answer instead of guessing.

Expansions that did not depend on the text are cached per schema object, so the bundled schemas are analysed once
per process, not once per keystroke.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from mljob.runner.kinds import Kind, identify
from mljob.runner.schema_check import BUNDLED, SchemaSet, json_type_of
from mljob.server import cursor

Schema = dict[str, Any]
Base = str | Path
PathPart = str | int


@dataclass(frozen=True, slots=True)
class Part:
    """One schema object that applies to a node, with the file its `$ref`s resolve against."""

    schema: Schema
    base: Base
    deprecated: bool = False
    deprecation: str | None = None
    branch: str | None = None  # description of the `type`-discriminated branch this part is (meaning of its const)


@dataclass(frozen=True)
class Facts:
    """What the text says about the mapping being expanded; each answer is computed only when a schema asks."""

    value: Callable[[str], str | None] = field(default=lambda key: None)
    keys: Callable[[], Collection[str] | None] = field(default=lambda: None)


NO_FACTS = Facts()


@dataclass(frozen=True, slots=True)
class Expansion:
    parts: tuple[Part, ...]
    required: frozenset[str]


@dataclass(frozen=True, slots=True)
class Prop:
    name: str
    parts: tuple[Part, ...]  # the property's own schemas (not yet expanded)
    required: bool
    deprecated: bool
    deprecation: str | None
    description: str
    title: str | None


@dataclass(frozen=True, slots=True)
class Choice:
    value: object
    description: str | None
    deprecated: bool = False
    deprecation: str | None = None
    origin: str = "enum"  # enum | boolean | default | example


@dataclass(frozen=True, slots=True)
class Snippet:
    label: str
    description: str
    body: str


_MAX_PARTS = 2000  # schema objects in one expansion; the bundled schemas need a few dozen


@lru_cache(maxsize=256)
def _pattern(text: str) -> re.Pattern[str] | None:
    try:
        return re.compile(text)
    except re.error:
        return None


def value_text(value: object) -> str:
    """A JSON value as YAML scalar text (`true`, `null`, `2g`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


class _Probe:
    """Facts that remember whether a schema looked at them (an expansion that did not can be cached)."""

    def __init__(self, facts: Facts) -> None:
        self.facts = facts
        self.used = False

    def value(self, key: str) -> str | None:
        self.used = True
        return self.facts.value(key)

    def keys(self) -> Collection[str] | None:
        self.used = True
        return self.facts.keys()


class Lookup:
    """Schema questions over one SchemaSet (the bundled one, or a team's local schema and its neighbours)."""

    def __init__(self, schema_set: SchemaSet) -> None:
        self.schemas = schema_set
        self._expansions: dict[int, Expansion] = {}
        self._props: dict[tuple[int, ...], dict[str, Prop]] = {}
        self._discriminated: dict[int, dict[str, list[int]] | None] = {}
        self._keep: list[object] = []  # the ids above stay valid only while their objects live

    # -- references --------------------------------------------------------------------------------------------

    def deref(self, schema: Any, base: Base) -> tuple[Any, Base]:
        """Follow `$ref`-only schemas to what they point at."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and len(schema) == 1 and seen < 32:
            try:
                schema, base = self.schemas.resolve(schema["$ref"], base)
            except (KeyError, IndexError, OSError, ValueError, TypeError):
                return {}, base
            seen += 1
        return schema, base

    def target(self, schema: Schema, base: Base) -> tuple[Schema, Base]:
        """What a `$ref` with siblings (a property's own description beside the shared definition) points at."""
        if isinstance(schema, dict) and "$ref" in schema:
            try:
                found, found_base = self.schemas.resolve(schema["$ref"], base)
            except (KeyError, IndexError, OSError, ValueError, TypeError):
                return {}, base
            return self.deref(found, found_base)
        return schema, base

    # -- expansion ---------------------------------------------------------------------------------------------

    def expand(self, schema: Any, base: Base, facts: Facts = NO_FACTS) -> Expansion:
        """Every schema object that applies to a node (through refs, unions, allOf and if/then/else)."""
        if not isinstance(schema, dict):
            return Expansion((), frozenset())
        key = id(schema)
        cached = self._expansions.get(key)
        if cached is not None:
            return cached
        probe = _Probe(facts)
        parts: list[Part] = []
        required = self._expand(schema, base, probe, Part(schema, base), parts, 0)
        found = Expansion(tuple(parts), required)
        if not probe.used:
            self._expansions[key] = found
            self._keep.append(schema)
        return found

    def expand_parts(self, parts: Iterable[Part], facts: Facts = NO_FACTS) -> Expansion:
        """The expansion of several alternatives (where one key is defined by several branches)."""
        out: list[Part] = []
        requireds: list[frozenset[str]] = []
        for part in parts:
            exp = self._expand_part(part, facts)
            out.extend(exp.parts)
            requireds.append(exp.required)
        required = frozenset.intersection(*requireds) if requireds else frozenset()
        return Expansion(tuple(out), required)

    def _expand_part(self, part: Part, facts: Facts) -> Expansion:
        if not part.deprecated and part.branch is None:
            return self.expand(part.schema, part.base, facts)
        probe = _Probe(facts)
        parts: list[Part] = []
        required = self._expand(part.schema, part.base, probe, part, parts, 0)
        return Expansion(tuple(parts), required)

    def _expand(self, schema: Any, base: Base, facts: _Probe, like: Part, out: list[Part], depth: int
                ) -> frozenset[str]:
        if not isinstance(schema, dict) or depth > 24 or len(out) > _MAX_PARTS:
            return frozenset()  # a team's schema may refer to itself, or fan out without end
        deprecated = like.deprecated or schema.get("deprecated") is True
        message = like.deprecation
        if schema.get("deprecated") is True and isinstance(schema.get("deprecationMessage"), str):
            message = schema["deprecationMessage"]
        here = Part(schema, base, deprecated, message, like.branch)
        required: set[str] = set(r for r in schema.get("required", ()) if isinstance(r, str))
        if "$ref" in schema:
            try:
                target, target_base = self.schemas.resolve(schema["$ref"], base)
            except (KeyError, IndexError, OSError, ValueError, TypeError):
                target, target_base = {}, base
            required |= self._expand(target, target_base, facts, here, out, depth + 1)
        out.append(here)
        for union in ("anyOf", "oneOf"):
            branches = schema.get(union)
            if not isinstance(branches, list):
                continue
            picked, discriminated = self._narrow(branches, base, facts)
            requireds: list[frozenset[str]] = []
            for branch in picked:
                target, _ = self.deref(branch, base)
                note = target.get("description") if discriminated and isinstance(target, dict) else None
                branch_like = Part(branch, base, deprecated, message, note if isinstance(note, str) else like.branch)
                mark = len(out)
                req = self._expand(branch, base, facts, branch_like, out, depth + 1)
                sub = out[mark:]
                if any(not p.deprecated for p in sub) and _holds_mapping(sub):
                    requireds.append(req)
            if requireds:
                required |= frozenset.intersection(*requireds)
        for part in schema.get("allOf", ()) if isinstance(schema.get("allOf"), list) else ():
            required |= self._expand(part, base, facts, here, out, depth + 1)
        if "if" in schema:
            verdict = self._decide(schema["if"], base, facts)
            for branch, when in (("then", True), ("else", False)):
                if branch in schema and verdict in (when, None):
                    req = self._expand(schema[branch], base, facts, here, out, depth + 1)
                    if verdict is when:
                        required |= req
        return frozenset(required)

    def _narrow(self, branches: list[Any], base: Base, facts: _Probe) -> tuple[list[Any], bool]:
        """The branches of a union that a mapping with this `type` can take (all, when the text does not say)."""
        table = self._discriminators(branches, base)
        if table is None:
            return branches, False
        value = facts.value("type")
        if value is None or value not in table:
            return branches, True
        return [branches[i] for i in table[value]], True

    def _discriminators(self, branches: list[Any], base: Base) -> dict[str, list[int]] | None:
        key = id(branches)
        if key in self._discriminated:
            return self._discriminated[key]
        table: dict[str, list[int]] | None = {}
        mappings = 0
        for i, branch in enumerate(branches):
            target, _ = self.deref(branch, base)
            if not isinstance(target, dict) or not _is_mapping_schema(target):
                continue
            mappings += 1
            type_schema = (target.get("properties") or {}).get("type")
            values = _const_values(type_schema)
            if not values:
                table = None
                break
            for value in values:
                table.setdefault(value_text(value), []).append(i)
        if mappings < 2:
            table = None
        self._discriminated[key] = table
        self._keep.append(branches)
        return table

    def _decide(self, condition: Any, base: Base, facts: _Probe, depth: int = 0) -> bool | None:
        """Whether an `if` holds for the mapping the text shows; None when the text does not say."""
        condition, base = self.deref(condition, base)
        if isinstance(condition, bool):
            return condition
        if not isinstance(condition, dict) or depth > 8:
            return None
        verdicts: list[bool | None] = []
        for word in condition:
            if word in ("description", "title", "$comment"):
                continue
            if word == "required":
                keys = facts.keys()
                verdicts.append(None if keys is None else all(k in keys for k in condition["required"]))
            elif word == "properties":
                for name, sub in condition["properties"].items():
                    verdicts.append(self._decide_value(name, sub, base, facts))
            elif word in ("anyOf", "oneOf"):
                subs = [self._decide(b, base, facts, depth + 1) for b in condition[word]]
                verdicts.append(True if True in subs else False if all(s is False for s in subs) else None)
            else:
                verdicts.append(None)
        if False in verdicts:
            return False
        return True if all(v is True for v in verdicts) else None

    def _decide_value(self, name: str, sub: Any, base: Base, facts: _Probe) -> bool | None:
        sub, _ = self.deref(sub, base)
        value = facts.value(name)
        if value is None:
            keys = facts.keys()
            if keys is not None and name not in keys:
                return True  # `properties` says nothing about an absent key
            return None
        allowed = _const_values(sub)
        if not allowed:
            return None
        return value in {value_text(v) for v in allowed}

    # -- walking a path ----------------------------------------------------------------------------------------

    def child(self, exp: Expansion, key: PathPart) -> list[Part]:
        """The schemas of `key` (or of a list item, for an int) of a node with this expansion."""
        out: list[Part] = []
        for part in exp.parts:
            schema = part.schema
            if isinstance(key, int):
                items = schema.get("items")
                if isinstance(items, dict):
                    out.append(Part(items, part.base, part.deprecated, part.deprecation))
                continue
            props = schema.get("properties")
            if isinstance(props, dict) and key in props:
                sub = props[key]
                owner = part.branch if key == "type" else None
                deprecated = part.deprecated or (isinstance(sub, dict) and sub.get("deprecated") is True)
                message = part.deprecation
                if isinstance(sub, dict) and isinstance(sub.get("deprecationMessage"), str):
                    message = sub["deprecationMessage"]
                out.append(Part(sub, part.base, deprecated, message, owner))
                continue
            matched = False
            for pattern, sub in (schema.get("patternProperties") or {}).items():
                compiled = _pattern(pattern)
                if compiled is not None and compiled.search(key):
                    out.append(Part(sub, part.base, part.deprecated, part.deprecation))
                    matched = True
            additional = schema.get("additionalProperties")
            if not matched and isinstance(additional, dict):
                out.append(Part(additional, part.base, part.deprecated, part.deprecation))
        return out

    def at(self, schema: Any, base: Base, path: Sequence[PathPart], facts_at: Callable[[int], Facts]
           ) -> Expansion:
        """The expansion of the node at `path`; `facts_at(depth)` tells about the mapping at each depth."""
        exp = self.expand(schema, base, facts_at(0))
        for depth, key in enumerate(path, start=1):
            parts = self.child(exp, key)
            if not parts:
                return Expansion((), frozenset())
            exp = self.expand_parts(parts, facts_at(depth))
        return exp

    # -- what an expansion offers ------------------------------------------------------------------------------

    def properties(self, exp: Expansion) -> dict[str, Prop]:
        """Named properties of a mapping with this expansion, merged across its parts."""
        key = (*(id(p.schema) for p in exp.parts), hash(exp.required))
        cached = self._props.get(key)
        if cached is not None:
            return cached
        gathered: dict[str, list[Part]] = {}
        for part in exp.parts:
            props = part.schema.get("properties")
            if not isinstance(props, dict):
                continue
            for name, sub in props.items():
                if not isinstance(sub, dict) or _only_constrains(sub):
                    continue
                deprecated = part.deprecated or sub.get("deprecated") is True
                message = sub.get("deprecationMessage") if isinstance(sub.get("deprecationMessage"), str) \
                    else part.deprecation
                gathered.setdefault(name, []).append(Part(sub, part.base, deprecated, message,
                                                          part.branch if name == "type" else None))
        found: dict[str, Prop] = {}
        for name, parts in gathered.items():
            live = [p for p in parts if not p.deprecated]
            deprecated = not live
            described = live or parts
            description, title = "", None
            for part in described:
                description, title = self.describe(part)
                if description:
                    break
            message = next((p.deprecation for p in parts if p.deprecation), None) if deprecated else None
            found[name] = Prop(name, tuple(parts), name in exp.required and not deprecated, deprecated, message,
                               description, title)
        self._props[key] = found
        return found

    def describe(self, part: Part) -> tuple[str, str | None]:
        """(description, title) of a schema, looking through its `$ref` when it has none of its own."""
        schema = part.schema
        description = schema.get("description") if isinstance(schema, dict) else None
        title = schema.get("title") if isinstance(schema, dict) else None
        if (not description or not title) and isinstance(schema, dict) and "$ref" in schema:
            target, _ = self.target(schema, part.base)
            if isinstance(target, dict):
                description = description or target.get("description")
                title = title or target.get("title")
        return (description if isinstance(description, str) else ""), (title if isinstance(title, str) else None)

    def choices(self, exp: Expansion) -> list[Choice]:
        """Values a scalar may take: enums with their meanings, consts, booleans; then the default and examples."""
        found: dict[str, Choice] = {}
        types = self.types(exp)

        def add(choice: Choice) -> None:
            text = value_text(choice.value)
            old = found.get(text)
            if old is None or (old.deprecated and not choice.deprecated) or (old.description is None
                                                                             and choice.description):
                found[text] = choice

        for part in exp.parts:
            schema = part.schema
            if isinstance(schema.get("enum"), list):
                meanings = schema.get("enumDescriptions") or []
                for i, value in enumerate(schema["enum"]):
                    meaning = meanings[i] if i < len(meanings) and isinstance(meanings[i], str) else None
                    add(Choice(value, meaning, part.deprecated, part.deprecation))
            if "const" in schema:
                meaning = part.branch or schema.get("description")
                add(Choice(schema["const"], meaning if isinstance(meaning, str) else None, part.deprecated,
                           part.deprecation))
        if "boolean" in types and not any(isinstance(c.value, bool) for c in found.values()):
            add(Choice(True, None, origin="boolean"))
            add(Choice(False, None, origin="boolean"))
        extra: list[Choice] = []
        for part in exp.parts:
            schema = part.schema
            if part.deprecated:
                continue
            if "default" in schema and _is_scalar(schema["default"]):
                extra.append(Choice(schema["default"], "default", origin="default"))
            for example in schema.get("examples", ()) if isinstance(schema.get("examples"), list) else ():
                if _is_scalar(example):
                    extra.append(Choice(example, None, origin="example"))
        for choice in extra:
            if value_text(choice.value) not in found:
                found[value_text(choice.value)] = choice
        return list(found.values())

    def types(self, exp: Expansion, include_deprecated: bool = False) -> set[str]:
        """JSON types a node with this expansion may have (empty: anything)."""
        found: set[str] = set()
        for part in exp.parts:
            if part.deprecated and not include_deprecated:
                continue
            declared = part.schema.get("type")
            if isinstance(declared, str):
                found.add(declared)
            elif isinstance(declared, list):
                found.update(t for t in declared if isinstance(t, str))
            for value in _const_values(part.schema):
                found.add(json_type_of(value))
            if "properties" in part.schema or "additionalProperties" in part.schema:
                found.add("object")
            if "items" in part.schema:
                found.add("array")
        return found

    def snippets(self, exp: Expansion) -> list[Snippet]:
        found: list[Snippet] = []
        for part in exp.parts:
            for raw in part.schema.get("defaultSnippets", ()) if not part.deprecated else ():
                if isinstance(raw, dict) and isinstance(raw.get("bodyText"), str):
                    found.append(Snippet(str(raw.get("label", "")), str(raw.get("description", "")),
                                         raw["bodyText"]))
        return found

    def default(self, exp: Expansion) -> object | None:
        for part in exp.parts:
            if "default" in part.schema and not part.deprecated:
                return part.schema["default"]
        return None

    def description(self, parts: Sequence[Part]) -> tuple[str, str | None]:
        """The first description (and title) among a key's schemas, preferring the live ones."""
        ordered = [p for p in parts if not p.deprecated] + [p for p in parts if p.deprecated]
        for part in ordered:
            text, title = self.describe(part)
            if text:
                return text, title
        return "", None


def _const_values(schema: Any) -> list[object]:
    if not isinstance(schema, dict):
        return []
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    return []


def _is_scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _is_mapping_schema(schema: Schema) -> bool:
    declared = schema.get("type")
    if declared == "object" or (isinstance(declared, list) and "object" in declared):
        return True
    return declared is None and ("properties" in schema or "required" in schema)


def _holds_mapping(parts: Sequence[Part]) -> bool:
    return any(_is_mapping_schema(p.schema) for p in parts)


def _only_constrains(schema: Schema) -> bool:
    """A bare `{const: …}` inside an `if`/`then`: it narrows a value, it does not define the key."""
    return bool(set(schema) & {"const", "enum"}) and set(schema) <= {"const", "enum", "examples"}


_BUNDLED_LOOKUP = Lookup(BUNDLED)


def bundled() -> Lookup:
    """The lookup over the bundled schemas (shares the validator's reference cache)."""
    return _BUNDLED_LOOKUP


# --- which schema a document has ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentSchema:
    kind: Kind
    schema: Any
    base: Base
    lookup: Lookup


_by_version: dict[str, tuple[int, dict[int, DocumentSchema | None]]] = {}
_local: dict[Path, tuple[float, Any, Lookup]] = {}


def for_document(uri: str, version: int, lines: Sequence[str], head: str, top: int, end: int,
                 folder: Path | None) -> DocumentSchema | None:
    """The schema of the YAML document at lines [top, end), decided once per version of the text.

    The same rules as the validator (runner/kinds.py `identify`), applied to the document's top-level keys as the
    text shows them: that works while the rest of the text does not parse.
    """
    version_cache = _by_version.get(uri)
    if version_cache is None or version_cache[0] != version:
        if len(_by_version) > 64:
            _by_version.clear()
        version_cache = (version, {})
        _by_version[uri] = version_cache
    known = version_cache[1]
    if top not in known:
        known[top] = _identify(lines, head, top, end, folder)
    return known[top]


def _identify(lines: Sequence[str], head: str, top: int, end: int, folder: Path | None) -> DocumentSchema | None:
    first = cursor.child_column(lines, top - 1, end, -1)
    entries = cursor.mapping_entries(lines, first[0], end, first[1]) if first is not None else {}
    # An empty document still has the schema its modeline names (completion starts there).
    root = _outline(lines, entries, end) or yaml.compose("{}", Loader=yaml.CSafeLoader)
    kind = identify(root, head, folder)
    if kind is None:
        return None
    if isinstance(kind.base, str):
        return DocumentSchema(kind, kind.schema, kind.base, bundled())
    # A team's schema: one Lookup per file version, so its caches (keyed by schema objects) stay valid.
    path = kind.base
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return DocumentSchema(kind, kind.schema, path, Lookup(SchemaSet()))
    cached = _local.get(path)
    if cached is None or cached[0] != mtime:
        if len(_local) > 16:
            _local.clear()
        cached = (mtime, kind.schema, Lookup(SchemaSet()))
        _local[path] = cached
    return DocumentSchema(kind, cached[1], path, cached[2])


def _outline(lines: Sequence[str], entries: dict[str, cursor.Entry], end: int) -> yaml.Node | None:
    """A small YAML mapping with what `identify` reads: `$schema`, `type`, the top-level keys, whether `jobs` is a
    mapping. Written as JSON-quoted YAML, so any key or value text survives."""
    if not entries:
        return None
    rows: list[str] = []
    for name, entry in entries.items():
        if name in ("$schema", "type") and entry.value and entry.value[0] not in "{[|>":
            rows.append(f"{json.dumps(name)}: {json.dumps(cursor.unquote(entry.value))}")
        elif name == "jobs" and (entry.value.startswith("{") or (
                not entry.value and cursor.child_column(lines, entry.line, end, entry.col) is not None)):
            rows.append(f"{json.dumps(name)}: {{}}")
        else:
            rows.append(f"{json.dumps(name)}: null")
    try:
        return yaml.compose("\n".join(rows), Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        return None


# --- facts from the text at the cursor ------------------------------------------------------------------------------


def cursor_facts(cur: cursor.Cursor, ignore_type_at: int | None = None) -> Callable[[int], Facts]:
    """Facts about the mapping at each depth of the cursor's path, read from the text only when a schema asks.

    `ignore_type_at`: the depth whose `type` is being completed, so that its union is not narrowed by itself.
    """
    memo: dict[int, dict[str, cursor.Entry]] = {}

    def entries(depth: int) -> dict[str, cursor.Entry]:
        if depth not in memo:
            memo[depth] = cur.mapping_at(depth)
        return memo[depth]

    def make(depth: int) -> Facts:
        if not cur.knows(depth):
            return NO_FACTS

        def value(key: str) -> str | None:
            if key == "type" and depth == ignore_type_at:
                return None
            entry = entries(depth).get(key)
            if entry is None or not entry.value or entry.value[0] in "{[|>&*!":
                return None
            return cursor.unquote(entry.value)

        return Facts(value=value, keys=lambda: set(entries(depth)))

    return make
