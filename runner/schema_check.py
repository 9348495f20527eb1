"""Check a YAML node tree against one of our JSON Schemas, with positions and messages that say how to fix.

Only the keywords listed in schemas/CONVENTIONS.md are implemented; that is what keeps this fast on the keystroke
path and lets every message point at the key or value at fault (a generic validator loses both). Unions of mappings
are discriminated by their `type` so that a wrong field in a `pytorch` distribution is reported as such, not as
"matches none of four branches".
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mljob.runner.diagnostics import Diagnostic, Range, Severity
from mljob.runner.document import (
    BOOL,
    FLOAT,
    INT,
    NULL,
    STR,
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    mapping_items,
    node_range,
    scalar_value,
)

from mljob import schemas

Schema = dict[str, Any]
Base = str | Path  # bundled file name, or the path of a user's schema file

_EXPRESSION = re.compile(r"^\s*\$\{\{.*\}\}\s*$", re.S)
_TYPE_WORDS = {
    "object": "a mapping (`key: value` lines)",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def json_types(node: Node) -> frozenset[str]:
    """The JSON Schema types a node can stand for."""
    if isinstance(node, MappingNode):
        return _OBJECT
    if isinstance(node, SequenceNode):
        return _ARRAY
    tag = node.tag
    if tag == INT:
        return _INTEGER
    if tag == FLOAT:
        return _NUMBER
    if tag == BOOL:
        return _BOOLEAN
    if tag == NULL:
        return _NULL
    if "${{" in node.value and _EXPRESSION.match(node.value):
        # A bound value (`${{parent.inputs.n}}`) stands for whatever the binding supplies.
        return _BOUND
    return _STRING


_SCALAR_KEYWORDS = frozenset({"pattern", "minLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_MAPPING_KEYWORDS = frozenset({"properties", "patternProperties", "additionalProperties", "required"})
_SEQUENCE_KEYWORDS = frozenset({"items", "minItems", "maxItems", "uniqueItems"})
_KEYWORDS = _SCALAR_KEYWORDS | _MAPPING_KEYWORDS | _SEQUENCE_KEYWORDS | {
    "$ref", "const", "enum", "anyOf", "oneOf", "allOf", "if", "not"}

_OBJECT = frozenset({"object"})
_ARRAY = frozenset({"array"})
_INTEGER = frozenset({"integer", "number"})
_NUMBER = frozenset({"number"})
_BOOLEAN = frozenset({"boolean"})
_NULL = frozenset({"null"})
_STRING = frozenset({"string"})
_BOUND = frozenset({"string", "integer", "number", "boolean"})


def _describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag == NULL:
        return "empty"
    text = node.value if len(node.value) <= 40 else node.value[:37] + "…"
    kind = {INT: "an integer", FLOAT: "a number", BOOL: "a boolean"}.get(node.tag, "a string")
    return f"{kind} (`{text}`)"


def _same(a: object, b: object) -> bool:
    # JSON Schema equality: true is not 1, but 1 equals 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def suggest(word: str, candidates: list[str]) -> str | None:
    """The nearest valid spelling, for "did you mean" messages and quick fixes."""
    lowered = {c.lower(): c for c in candidates}
    if word.lower() in lowered:
        return lowered[word.lower()]
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return close[0] if close else None


def looks_like_placeholder(text: str) -> bool:
    stripped = text.strip()
    return (stripped.startswith("<") and stripped.endswith(">")) or stripped.lower().startswith("your ")


@dataclass
class SchemaSet:
    """Resolves `$ref`s across bundled files and, for custom schemas, files beside the user's schema."""

    loader: Callable[[Base], Schema] = field(default=lambda base: _default_loader(base))
    _refs: dict[tuple[Base, str], tuple[Schema, Base]] = field(default_factory=dict)
    discriminators: dict[int, tuple[dict[object, Schema], list[Schema]]] = field(default_factory=dict)
    compiled: dict[int, tuple[frozenset[str] | None, frozenset[str]]] = field(default_factory=dict)
    types: dict[int, frozenset[str] | None] = field(default_factory=dict)
    enum_strings: dict[int, frozenset[str]] = field(default_factory=dict)
    keep: list[Schema] = field(default_factory=list)  # ids above stay valid only while their schemas live

    def resolve(self, ref: str, base: Base) -> tuple[Schema, Base]:
        key = (base, ref)
        found = self._refs.get(key)
        if found is None:
            found = self._resolve(ref, base)
            self._refs[key] = found
        return found

    def _resolve(self, ref: str, base: Base) -> tuple[Schema, Base]:
        file_part, _, pointer = ref.partition("#")
        target: Base = base
        if file_part:
            entry = schemas.lookup_url(file_part) if "://" in file_part else None
            if entry is not None:
                # A team's schema that extends ours by its public URL gets the bundled copy, never a download.
                target = entry.file
            elif isinstance(base, Path):
                target = base.parent / file_part
            else:
                target = file_part
        schema: Any = self.loader(target)
        for part in pointer.split("/")[1:] if pointer else []:
            part = part.replace("~1", "/").replace("~0", "~")
            schema = schema[int(part)] if isinstance(schema, list) else schema[part]
        return schema, target


def _default_loader(base: Base) -> Schema:
    if isinstance(base, Path):
        return schemas.load_local(base)
    return schemas.load(base)


BUNDLED = SchemaSet()


class Checker:
    """One pass of a node tree against a schema; diagnostics accumulate in `out`."""

    def __init__(self, schema_set: SchemaSet, label: str) -> None:
        self.schemas = schema_set
        self.label = label  # "command job", used when a message talks about the top level
        # Facts about schema objects (their keywords, types, unions) depend on the schema only: they live on the
        # SchemaSet, so the bundled schemas are analysed once per process, not once per keystroke.
        self._discriminators = schema_set.discriminators
        self._compiled = schema_set.compiled
        self._type_cache = schema_set.types
        self._enum_strings = schema_set.enum_strings
        self._keep = schema_set.keep
        # While a union tries its branches, messages skip the costly "did you mean" search.
        self._trial = 0
        # Inside a subtree already reported as 2021 syntax, its parts are not reported again one by one.
        self._quiet = 0

    # -- entry --------------------------------------------------------------------------------------------------

    def check(self, node: Node, schema: Schema | bool, base: Base) -> list[Diagnostic]:
        out: list[Diagnostic] = []
        self._check(node, schema, base, (), None, out)
        return out

    # -- helpers ------------------------------------------------------------------------------------------------

    def _name(self, path: tuple[str | int, ...]) -> str:
        if not path:
            return f"The {self.label}"
        dotted = ""
        for part in flatten(path):
            dotted += f"[{part}]" if isinstance(part, int) else (f".{part}" if dotted else part)
        return f"`{dotted}`"

    def _deref(self, schema: Schema, base: Base) -> tuple[Schema, Base]:
        # Follow a chain of bare `$ref`s; a `$ref` with siblings is handled in _check.
        while isinstance(schema, dict) and "$ref" in schema and len(schema) == 1:
            schema, base = self.schemas.resolve(schema["$ref"], base)
        return schema, base

    def _types(self, schema: Schema, base: Base) -> frozenset[str] | None:
        key = id(schema)
        if key in self._type_cache:
            return self._type_cache[key]
        found = self._types_uncached(schema, base)
        self._type_cache[key] = found
        self._keep.append(schema)
        return found

    def _types_uncached(self, schema: Schema, base: Base) -> frozenset[str] | None:
        schema, base = self._deref(schema, base)
        if not isinstance(schema, dict):
            return None
        declared = schema.get("type")
        if declared is not None:
            return frozenset([declared] if isinstance(declared, str) else declared)
        if "const" in schema or "enum" in schema:
            values = [schema["const"]] if "const" in schema else schema["enum"]
            return frozenset(json_type_of(v) for v in values) | (
                {"number"} if any(json_type_of(v) == "integer" for v in values) else set()
            )
        for union in ("anyOf", "oneOf"):
            if union in schema:
                found: set[str] = set()
                for branch in schema[union]:
                    t = self._types(branch, base)
                    if t is None:
                        return None
                    found |= t
                return frozenset(found)
        if "$ref" in schema:
            return self._types({"$ref": schema["$ref"]}, base)
        return None

    def _fits_type(self, node: Node, schema: Schema, base: Base) -> bool:
        declared = self._types(schema, base)
        if declared is None:
            return True
        actual = json_types(node)
        return bool(actual & declared) or ("number" in declared and "integer" in actual)

    def _matches(self, node: Node, schema: Schema, base: Base) -> bool:
        return self._valid(node, schema, base)

    def _valid(self, node: Node, schema: Schema | bool, base: Base) -> bool:
        """Whether a node fits, without building messages: `if` conditions and union branches ask this first."""
        if schema is True:
            return True
        if schema is False:
            return False
        allowed, keywords = self._keywords(schema)
        if "$ref" in keywords:
            target, target_base = self.schemas.resolve(schema["$ref"], base)
            if not self._valid(node, target, target_base):
                return False
        if allowed is not None:
            actual = json_types(node)
            if not (actual & allowed or ("number" in allowed and "integer" in actual)):
                return False
        if not keywords:
            return True
        if "const" in keywords or "enum" in keywords:
            scratch: list[Diagnostic] = []
            self._trial += 1
            self._check_enum(node, schema, (), scratch)
            self._trial -= 1
            if scratch:
                return False
        if isinstance(node, ScalarNode):
            if keywords & _SCALAR_KEYWORDS:
                scratch = []
                self._check_scalar(node, schema, (), scratch)
                if scratch:
                    return False
        elif isinstance(node, MappingNode):
            if keywords & _MAPPING_KEYWORDS and not self._valid_mapping(node, schema, base):
                return False
        elif keywords & _SEQUENCE_KEYWORDS:
            items = schema.get("items")
            if items is not None and not all(self._valid(child, items, base) for child in node.value):
                return False
            count = len(node.value)
            if count < schema.get("minItems", 0) or count > schema.get("maxItems", count):
                return False
        for union in ("anyOf", "oneOf"):
            if union in keywords and not any(self._valid(node, b, base) for b in schema[union]):
                return False
        if "allOf" in keywords and not all(self._valid(node, part, base) for part in schema["allOf"]):
            return False
        if "if" in keywords:
            branch = schema.get("then") if self._valid(node, schema["if"], base) else schema.get("else")
            if branch is not None and not self._valid(node, branch, base):
                return False
        return not ("not" in keywords and self._valid(node, schema["not"], base))

    def _valid_mapping(self, node: MappingNode, schema: Schema, base: Base) -> bool:
        props: dict[str, Any] = schema.get("properties", {})
        pattern_props: dict[str, Any] = schema.get("patternProperties", {})
        additional = schema.get("additionalProperties", True)
        seen: set[str] = set()
        pairs = list(mapping_items(node)) if getattr(node, "has_merge", False) else node.value
        for k, v in pairs:
            name = str(k.value)
            seen.add(name)
            sub = props.get(name)
            if sub is not None:
                if not self._valid(v, sub, base):
                    return False
                continue
            matched = False
            for pattern, sub in pattern_props.items():
                if _compiled(pattern).search(name):
                    matched = True
                    if not self._valid(v, sub, base):
                        return False
            if matched:
                continue
            if additional is False or (isinstance(additional, dict) and not self._valid(v, additional, base)):
                return False
        return all(name in seen for name in schema.get("required", ()))

    def _error(self, out: list[Diagnostic], node: Node, code: str, message: str, **data: Any) -> None:
        out.append(Diagnostic(node_range(node), Severity.ERROR, code, message, data))

    # -- the walk -----------------------------------------------------------------------------------------------

    def _keywords(self, schema: Schema) -> tuple[frozenset[str] | None, frozenset[str]]:
        """Per schema, once: its declared types and which validation keywords it uses (most use two or three)."""
        found = self._compiled.get(id(schema))
        if found is None:
            declared = schema.get("type")
            types = None if declared is None else frozenset([declared] if isinstance(declared, str) else declared)
            found = (types, frozenset(schema.keys() & _KEYWORDS))
            self._compiled[id(schema)] = found
            self._keep.append(schema)  # ids stay valid only while the schema lives
        return found

    def _check(self, node: Node, schema: Schema | bool, base: Base, path: tuple[str | int, ...],
               key: ScalarNode | None, out: list[Diagnostic]) -> None:
        if schema is True:
            return
        if schema is False:
            self._error(out, key or node, "MLJ101", f"{self._name(path)} is not allowed here.")
            return
        allowed, keywords = self._keywords(schema)
        if "$ref" in keywords:
            target, target_base = self.schemas.resolve(schema["$ref"], base)
            self._check(node, target, target_base, path, key, out)
            if len(keywords) == 1 and allowed is None:
                return
        if allowed is not None:
            actual = json_types(node)
            if not (actual & allowed or ("number" in allowed and "integer" in actual)):
                self._type_error(node, set(allowed), path, key, out)
                return
        if not keywords:
            return
        if "const" in keywords or "enum" in keywords:
            self._check_enum(node, schema, path, out)
        if isinstance(node, ScalarNode):
            if keywords & _SCALAR_KEYWORDS:
                self._check_scalar(node, schema, path, out)
        elif isinstance(node, MappingNode):
            if keywords & _MAPPING_KEYWORDS:
                self._check_mapping(node, schema, base, path, key, out)
        elif keywords & _SEQUENCE_KEYWORDS:
            self._check_sequence(node, schema, base, path, out)  # type: ignore[arg-type]
        if "anyOf" in keywords:
            self._check_union(node, schema["anyOf"], base, path, key, out)
        if "oneOf" in keywords:
            self._check_union(node, schema["oneOf"], base, path, key, out)
        if "allOf" in keywords:
            for part in schema["allOf"]:
                self._check(node, part, base, path, key, out)
        if "if" in keywords:
            branch = schema.get("then") if self._matches(node, schema["if"], base) else schema.get("else")
            if branch is not None:
                self._check(node, branch, base, path, key, out)
        if "not" in keywords and self._matches(node, schema["not"], base):
            self._error(out, node, "MLJ104", f"{self._name(path)} has a form that is not allowed here.")

    def _type_error(self, node: Node, allowed: set[str], path: tuple[str | int, ...], key: ScalarNode | None,
                    out: list[Diagnostic]) -> None:
        if "integer" in allowed:
            allowed = allowed - {"number"}
        words = [_TYPE_WORDS[t] for t in sorted(allowed) if t in _TYPE_WORDS]
        expected = " or ".join(words) if words else "something else"
        hint = ""
        if "object" in allowed and isinstance(node, ScalarNode) and "=" in node.value:
            hint = " Write each setting as `key: value` on its own indented line, not `key=value`."
        elif "object" in allowed and isinstance(node, ScalarNode) and node.tag == NULL:
            hint = " Add its keys on indented lines below it, or remove it."
        elif isinstance(node, ScalarNode) and looks_like_placeholder(node.value):
            self._error(out, node, "MLJ217", f"{self._name(path)} is still a placeholder "
                        f"(`{node.value.strip()}`): replace it with a real value.")
            return
        elif allowed & {"integer", "number"} and isinstance(node, ScalarNode) and node.tag not in (INT, FLOAT):
            hint = " Write the number without quotes."
        elif allowed == {"string"} and isinstance(node, ScalarNode) and node.tag != NULL:
            hint = f" Put it in quotes: `'{node.value}'`."
        self._error(out, node, "MLJ103", f"{self._name(path)} must be {expected}, not {_describe(node)}.{hint}")

    def _check_enum(self, node: Node, schema: Schema, path: tuple[str | int, ...], out: list[Diagnostic]) -> None:
        if isinstance(node, ScalarNode) and node.tag == STR:
            strings = self._enum_strings.get(id(schema))
            if strings is None:
                values = [schema["const"]] if "const" in schema else list(schema["enum"])
                strings = self._enum_strings[id(schema)] = frozenset(v for v in values if isinstance(v, str))
                self._keep.append(schema)
            if node.value in strings:
                return  # the common case, without constructing anything
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        if not isinstance(node, ScalarNode):
            self._error(out, node, "MLJ104", f"{self._name(path)} must be one of: "
                        f"{', '.join(str(v) for v in values)}; not {_describe(node)}.")
            return
        if json_types(node) is _BOUND:
            return
        value = scalar_value(node)
        if any(_same(value, v) for v in values):
            return
        text = str(node.value)
        near = None if self._trial else suggest(text, [str(v) for v in values if isinstance(v, str)])
        if looks_like_placeholder(text):
            self._error(out, node, "MLJ217", f"{self._name(path)} is still a placeholder (`{text}`): replace it "
                        f"with one of: {', '.join(str(v) for v in values)}.")
            return
        if len(values) == 1:
            message = f"{self._name(path)} must be `{values[0]}`, not `{text}`."
        else:
            message = f"{self._name(path)} must be one of: {', '.join(f'`{v}`' for v in values)}; not `{text}`."
        if near is not None:
            message += f" Did you mean `{near}`?"
        self._error(out, node, "MLJ104", message, replace_with=near, allowed=[str(v) for v in values])

    def _check_scalar(self, node: ScalarNode, schema: Schema, path: tuple[str | int, ...],
                      out: list[Diagnostic]) -> None:
        types = json_types(node)
        if types is _BOUND:
            return
        if "string" in types:
            pattern = schema.get("pattern")
            if pattern is not None and not _compiled(pattern).search(node.value):
                if looks_like_placeholder(node.value):
                    self._error(out, node, "MLJ217", f"{self._name(path)} is still a placeholder "
                                f"(`{node.value.strip()}`): replace it with a real value"
                                f"{_example_hint(schema)}.")
                else:
                    self._error(out, node, "MLJ106", f"{self._name(path)} `{node.value}` does not have the "
                                f"expected form{_example_hint(schema)}.")
            if "minLength" in schema and len(node.value) < schema["minLength"]:
                self._error(out, node, "MLJ105", f"{self._name(path)} must not be empty.")
        if "number" in types:
            value = scalar_value(node)
            if not isinstance(value, int | float) or isinstance(value, bool):
                return
            for word, test, sign in (
                ("minimum", lambda v, b: v >= b, "≥"),
                ("maximum", lambda v, b: v <= b, "≤"),
                ("exclusiveMinimum", lambda v, b: v > b, ">"),
                ("exclusiveMaximum", lambda v, b: v < b, "<"),
            ):
                bound = schema.get(word)
                if bound is not None and not test(value, bound):
                    self._error(out, node, "MLJ105", f"{self._name(path)} must be {sign} {bound}, not {value}.")

    def _check_mapping(self, node: MappingNode, schema: Schema, base: Base, path: tuple[str | int, ...],
                       key: ScalarNode | None, out: list[Diagnostic]) -> None:
        props: dict[str, Any] = schema.get("properties", {})
        pattern_props: dict[str, Any] = schema.get("patternProperties", {})
        additional = schema.get("additionalProperties", True)
        seen: set[str] = set()
        pairs = list(mapping_items(node)) if getattr(node, "has_merge", False) else node.value
        for k, v in pairs:
            name = str(k.value)
            seen.add(name)
            sub = props.get(name)
            if sub is not None:
                resolved, _ = self._deref(sub, base)
                deprecated = isinstance(resolved, dict) and bool(resolved.get("deprecated"))
                if deprecated and not self._quiet:
                    out.append(Diagnostic(node_range(k), Severity.WARNING, "MLJ301",
                                          resolved.get("deprecationMessage") or f"`{name}` is deprecated.",
                                          {"deprecated_key": name}, ("deprecated",)))
                self._quiet += deprecated
                self._check(v, sub, base, (path, name), k, out)
                self._quiet -= deprecated
                continue
            matched = False
            for pattern, sub in pattern_props.items():
                if _compiled(pattern).search(name):
                    matched = True
                    self._check(v, sub, base, (path, name), k, out)
            if matched:
                continue
            if additional is False:
                self._unknown_key(k, list(props), path, out)
            elif isinstance(additional, dict):
                allowed, keywords = self._keywords(additional)
                if not keywords and allowed is not None:
                    # Maps of plain values (environment variables, tags): a type test per entry, no recursion.
                    actual = json_types(v)
                    if not (actual & allowed or ("number" in allowed and "integer" in actual)):
                        self._type_error(v, set(allowed), (path, name), k, out)
                else:
                    self._check(v, additional, base, (path, name), k, out)
        for name in schema.get("required", ()):
            if name not in seen:
                where: Node = key if key is not None else node
                message = (f"Missing required key `{name}` in {self._name(path)}." if path
                           else f"{self._name(path)} needs `{name}`.")
                message += f" Add `{name}:`{_example_hint(props.get(name), base, self)}."
                out.append(Diagnostic(node_range(where) if key is not None else _first_line(node), Severity.ERROR,
                                      "MLJ102", message, {"missing": name, "path": flatten(path)}))

    def _unknown_key(self, key: ScalarNode, allowed: list[str], path: tuple[str | int, ...],
                     out: list[Diagnostic]) -> None:
        where = f"in {self._name(path)}" if path else f"in a {self.label}"
        if not isinstance(key.value, str):  # `{inputs.x}: …` or `[a]: …`: YAML read a mapping or list as the key
            self._error(out, key, "MLJ101", f"A key {where} is written as a YAML mapping or list (`{{…}}` or "
                        "`[…]`); keys are plain names: remove the braces or brackets, or quote the key.")
            return
        name = str(key.value)
        near = None if self._trial else suggest(name, allowed)
        if near is not None:
            message = f"Unknown key `{name}` {where}. Did you mean `{near}`?"
        else:
            shown = ", ".join(f"`{a}`" for a in sorted(allowed)[:14])
            more = ", …" if len(allowed) > 14 else ""
            message = f"Unknown key `{name}` {where}. Allowed here: {shown}{more}."
        self._error(out, key, "MLJ101", message, replace_with=near, allowed=sorted(allowed))

    def _check_sequence(self, node: SequenceNode, schema: Schema, base: Base, path: tuple[str | int, ...],
                        out: list[Diagnostic]) -> None:
        items = schema.get("items")
        if items is not None:
            for i, child in enumerate(node.value):
                self._check(child, items, base, (path, i), None, out)
        count = len(node.value)
        if "minItems" in schema and count < schema["minItems"]:
            self._error(out, node, "MLJ108", f"{self._name(path)} needs at least {schema['minItems']} "
                        f"item{'s' if schema['minItems'] != 1 else ''}.")
        if "maxItems" in schema and count > schema["maxItems"]:
            self._error(out, node, "MLJ108", f"{self._name(path)} takes at most {schema['maxItems']} items.")
        if schema.get("uniqueItems"):
            seen: set[str] = set()
            for child in node.value:
                if isinstance(child, ScalarNode):
                    if child.value in seen:
                        self._error(out, child, "MLJ104", f"`{child.value}` appears twice in {self._name(path)}.")
                    seen.add(child.value)

    def _discriminator(self, branches: list[Schema], base: Base) -> tuple[dict[object, Schema], list[Schema]]:
        """Branches keyed by the constant their `type` pins, and the branches that pin none."""
        cached = self._discriminators.get(id(branches))
        if cached is not None:
            return cached
        table: dict[object, Schema] = {}
        rest: list[Schema] = []
        for branch in branches:
            resolved, _ = self._deref(branch, base)
            prop = resolved.get("properties", {}).get("type") if isinstance(resolved, dict) else None
            if isinstance(prop, dict) and "$ref" in prop:
                prop, _ = self._deref(prop, base)
            values = ([prop["const"]] if isinstance(prop, dict) and "const" in prop
                      else list(prop.get("enum", ())) if isinstance(prop, dict) else [])
            if not values:
                rest.append(branch)
            for value in values:
                table.setdefault(value, branch)
        self._discriminators[id(branches)] = (table, rest)
        return table, rest

    def _check_union(self, node: Node, branches: list[Schema], base: Base, path: tuple[str | int, ...],
                     key: ScalarNode | None, out: list[Diagnostic]) -> None:
        candidates = [b for b in branches if self._fits_type(node, b, base)]
        if not candidates:
            allowed: set[str] = set()
            for branch in branches:
                allowed |= self._types(branch, base) or set()
            self._type_error(node, allowed or {"object"}, path, key, out)
            return
        if isinstance(node, MappingNode):
            table, rest = self._discriminator(branches, base)
            if table:
                type_node = None
                for k, v in mapping_items(node):
                    if k.value == "type":
                        type_node = v
                if isinstance(type_node, ScalarNode):
                    value = scalar_value(type_node)
                    branch = next((b for val, b in table.items() if _same(val, value)), None)
                    if branch is not None:
                        self._check_branch(node, branch, base, path, key, out)
                        return
                    if not rest:
                        names = [str(v) for v in table]
                        near = suggest(str(type_node.value), names)
                        message = (f"Unknown type `{type_node.value}` for {self._name(path)}; expected one of: "
                                   f"{', '.join(f'`{n}`' for n in names)}.")
                        if near:
                            message += f" Did you mean `{near}`?"
                        self._error(out, type_node, "MLJ107", message, replace_with=near, allowed=names)
                        return
                    candidates = [b for b in candidates if b in rest] or candidates
        if len(candidates) == 1:
            self._check_branch(node, candidates[0], base, path, key, out)
            return
        for branch in candidates:
            if self._valid(node, branch, base):
                self._check_branch(node, branch, base, path, key, out)
                return
        best: list[Diagnostic] | None = None
        best_errors = 0
        for branch in candidates:
            scratch: list[Diagnostic] = []
            self._trial += 1
            self._check_branch(node, branch, base, path, key, scratch)
            self._trial -= 1
            errors = sum(1 for d in scratch if d.severity == Severity.ERROR)
            if errors == 0:
                out.extend(scratch)
                return
            if best is None or errors < best_errors:
                best, best_errors = scratch, errors
        if len(candidates) > 1:
            # The best branch's errors were gathered in trial mode (no suggestions); check it again for real.
            for branch in candidates:
                scratch = []
                self._check_branch(node, branch, base, path, key, scratch)
                if sum(1 for d in scratch if d.severity == Severity.ERROR) == best_errors:
                    out.extend(scratch)
                    return
        out.extend(best or [])

    def _check_branch(self, node: Node, branch: Schema, base: Base, path: tuple[str | int, ...],
                      key: ScalarNode | None, out: list[Diagnostic]) -> None:
        resolved, _ = self._deref(branch, base)
        deprecated = bool(resolved.get("deprecated")) if isinstance(resolved, dict) else False
        if deprecated and not self._quiet:
            where = node_range(node) if isinstance(node, ScalarNode) or key is None else node_range(key)
            out.append(Diagnostic(where, Severity.WARNING, "MLJ301",
                                  resolved.get("deprecationMessage") or "This form is deprecated.",
                                  {"deprecated_value": True}, ("deprecated",)))
        self._quiet += deprecated
        self._check(node, branch, base, path, key, out)
        self._quiet -= deprecated


def flatten(path: tuple) -> list[str | int]:
    """Paths are built as nested pairs `((…, "resources"), "instance_count")`: cheap per node, flat on demand."""
    parts: list[str | int] = []
    while path:
        path, last = path
        parts.append(last)
    return parts[::-1]


def _first_line(node: Node) -> Range:
    start = node.start_mark
    return Range.at(start.line, start.column, start.line, start.column + 1)


def json_type_of(value: object) -> str:
    """The JSON Schema type name of a Python value from a schema (`enum`, `const`, `default`)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _example_hint(schema: Schema | None, base: Base | None = None, checker: Checker | None = None) -> str:
    if checker is not None and schema is not None and base is not None:
        schema, _ = checker._deref(schema, base)
    if isinstance(schema, dict):
        examples = schema.get("examples")
        if examples and isinstance(examples, list) and isinstance(examples[0], str | int | float):
            return f", e.g. `{examples[0]}`"
    return ""


_patterns: dict[str, re.Pattern[str]] = {}


def _compiled(pattern: str) -> re.Pattern[str]:
    compiled = _patterns.get(pattern)
    if compiled is None:
        compiled = _patterns[pattern] = re.compile(pattern)
    return compiled

