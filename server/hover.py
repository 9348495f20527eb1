"""Hover: what a key or value means (from the schema), what an expression refers to, which schema a file has.

Like completion, it reads the text around the position (cursor.py) and never re-parses the document, so it works on
broken text and costs the same on a 3,000-line file as on a small one.
"""

from __future__ import annotations

import re
from pathlib import Path

from lsprotocol import types as lsp
from mljob.runner.expressions import Reference, find_references
from mljob.server import cursor, schema_lookup
from mljob.server.completion import defined_names, namespaces
from mljob.server.features import FeatureContext
from mljob.server.schema_lookup import Choice, DocumentSchema, Lookup, Part
from mljob.server.store import OpenDocument

from mljob import schemas

_WORD = re.compile(r"[^\s:,\[\]{}#\"']+")


def hover(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> lsp.Hover | None:
    lines = doc.lines
    if not 0 <= line < len(lines):
        return None
    text = lines[line]
    column = cursor.utf16_to_column(text, character)
    top, end = cursor.document_bounds(lines, line)
    folder = doc.path.parent if doc.path is not None else None
    found = schema_lookup.for_document(doc.uri, doc.version, lines, doc.text[:4096], top, end, folder)

    reference = _reference_at(text, column)
    if reference is not None:
        if found is None:
            return None
        return _hover(text, line, reference.start, reference.end, expression_markdown(doc, line, found, reference))

    word = _word_at(text, column)
    if word is None:
        return None
    start, stop = word
    cur = cursor.at(lines, line, stop)
    if cur is None:
        return None
    if cur.at == "value" and cur.path == ("$schema",):
        shape = cursor.parse_line(text)
        value = shape.value if shape is not None else text[start:stop]
        return _hover(text, line, shape.value_col if shape else start, len(text.rstrip()),
                      schema_markdown(cursor.unquote(value), found))
    if found is None:
        return None
    if cur.at == "key":
        if not cur.has_colon and cur.style != "flow":
            return None  # a bare word is not a key yet
        key = text[cur.start:stop]
        markdown = key_markdown(found, cur, key)
        if key == "$schema" and markdown is not None:
            markdown += "\n\n---\n\n" + schema_markdown(cursor.unquote(_value_of(text)), found)
        return _hover(text, line, cur.start, stop, markdown)
    value = text[start:stop]
    shape = cursor.parse_line(text)
    if shape is not None and shape.key is not None and cur.style in ("plain", "quoted") and not cur.flow_keys:
        value = cursor.unquote(shape.value)
        start, stop = shape.value_col, shape.value_col + len(shape.value)
    return _hover(text, line, start, stop, value_markdown(found, cur, value))


def _hover(text: str, line: int, start: int, stop: int, markdown: str | None) -> lsp.Hover | None:
    if not markdown:
        return None
    return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=markdown),
                     range=lsp.Range(start=lsp.Position(line=line, character=cursor.column_to_utf16(text, start)),
                                     end=lsp.Position(line=line, character=cursor.column_to_utf16(text, stop))))


def _word_at(text: str, column: int) -> tuple[int, int] | None:
    """The word under the position, or the one just before it (editors put the cursor after a word's end)."""
    before = None
    for match in _WORD.finditer(text):
        if match.start() <= column < match.end():
            return match.start(), match.end()
        if match.end() == column:
            before = (match.start(), match.end())
        if match.start() > column:
            break
    return before


def _value_of(text: str) -> str:
    shape = cursor.parse_line(text)
    return shape.value if shape is not None else ""


def _reference_at(text: str, column: int) -> Reference | None:
    if "{" not in text:
        return None
    refs, _ = find_references(text)
    for ref in refs:
        if ref.start <= column < ref.end and ref.namespace is not None:
            return ref
    return None


# --- what the markdown says -----------------------------------------------------------------------------------------


def key_markdown(found: DocumentSchema, cur: cursor.Cursor, key: str) -> str | None:
    lookup = found.lookup
    facts = schema_lookup.cursor_facts(cur)
    parent = lookup.at(found.schema, found.base, cur.path, facts)
    parts = lookup.child(parent, key)
    if not parts:
        return None
    return describe(lookup, key, parts, required=key in parent.required)


def value_markdown(found: DocumentSchema, cur: cursor.Cursor, value: str) -> str | None:
    lookup = found.lookup
    key = cur.path[-1] if cur.path else None
    if key is None:
        return None
    facts = schema_lookup.cursor_facts(cur, ignore_type_at=len(cur.path) - 1 if key == "type" else None)
    parent = lookup.at(found.schema, found.base, cur.path[:-1], facts)
    parts = lookup.child(parent, key)
    if not parts:
        return None
    exp = lookup.expand_parts(parts)
    meaning = next((c for c in lookup.choices(exp) if schema_lookup.value_text(c.value) == value
                    and c.origin == "enum"), None)
    name = key if isinstance(key, str) else "item"
    body = describe(lookup, name, parts, required=isinstance(key, str) and key in parent.required)
    if meaning is None:
        return body
    return f"{choice_line(meaning)}\n\n---\n\n{body}"


def choice_line(choice: Choice) -> str:
    text = f"`{schema_lookup.value_text(choice.value)}`"
    if choice.description:
        text += f" — {choice.description}"
    if choice.deprecated:
        text = f"**Deprecated:** {choice.deprecation or 'an older form'}\n\n{text}"
    return text


def describe(lookup: Lookup, name: str, parts: list[Part], required: bool = False) -> str:
    """Description, type, allowed values with their meanings, default, deprecation: what a hover on a key says."""
    exp = lookup.expand_parts(parts)
    description, title = lookup.description(parts)
    live = [p for p in parts if not p.deprecated]
    out: list[str] = []
    if not live:
        message = next((p.deprecation for p in parts if p.deprecation), None)
        out.append(f"**Deprecated:** {message or 'this is an older form.'}")
    heading = f"**{name}**" + (f" — {title}" if title else "")
    out.append(heading)
    if description:
        out.append(description)
    facts: list[str] = []
    types = sorted(lookup.types(exp) or lookup.types(exp, include_deprecated=True)) or ["any"]
    facts.append("Type: " + " | ".join(f"`{t}`" for t in types))
    if required:
        facts.append("required")
    default = lookup.default(exp)
    if default is not None:
        facts.append(f"Default: `{schema_lookup.value_text(default)}`")
    out.append(" · ".join(facts))
    allowed = [c for c in lookup.choices(exp) if c.origin == "enum"]
    if allowed and not (len(allowed) == 1 and not allowed[0].description):
        rows = ["Allowed values:"]
        for choice in allowed:
            row = f"- `{schema_lookup.value_text(choice.value)}`"
            if choice.description:
                row += f" — {choice.description.splitlines()[0]}"
            if choice.deprecated and live:
                row += " *(deprecated)*"
            rows.append(row)
        out.append("\n".join(rows))
    return "\n\n".join(out)


def schema_markdown(value: str, found: DocumentSchema | None) -> str:
    """The job kind a `$schema` selects and the file that judges it (never a download)."""
    entry = schemas.lookup_url(value) if "://" in value and not value.startswith("file://") else None
    if entry is not None:
        kind = f"job kind `{entry.job}`" if entry.job else entry.title.lower()
        return (f"**{entry.title}** ({kind})\n\nValidated and completed with the bundled schema "
                f"`{entry.file}`; nothing is downloaded.")
    if found is not None and isinstance(found.base, Path):
        job = found.kind.job
        return (f"**Local schema** `{found.base}`" + (f" (job kind `{job}`)" if job else "")
                + "\n\nA team's own schema; references to the public Azure ML URLs use the bundled copies.")
    if "://" in value:
        return (f"mljob does not know the schema `{value}` and never downloads one: the document is judged by its "
                "shape" + (f" (here: {found.kind.label})." if found is not None else "."))
    return f"`{value}` is not a readable schema file." if value else ""


def expression_markdown(doc: OpenDocument, line: int, found: DocumentSchema, ref: Reference) -> str | None:
    """`${{inputs.x}}`: the YAML that defines `x` (the 2021 `{inputs.x}` form too)."""
    namespace = ref.namespace or ""
    spaces = namespaces(found)
    if namespace not in spaces:
        return f"`{ref.expression}`: this kind of document has no `{namespace}`."
    top, end = cursor.document_bounds(doc.lines, line)
    names = defined_names(doc, top, end, found, namespace)
    name = ref.name or ""
    label = f"{namespace}.{name}"
    if name not in names:
        return f"`{label}` is not defined in this job: add `{name}` under `{namespace}`."
    definition = names[name]
    where = f" (line {definition.line + 1})" if definition.line is not None else ""
    if not definition.text:
        return f"**{label}**{where}"
    return f"**{label}**{where}\n\n```yaml\n{definition.text}\n```"
