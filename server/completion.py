"""Completion: keys, values, expressions, paths and skeletons at the cursor, from the text around it.

Nothing here parses or validates the document: the context comes from cursor.py (indentation, colons, brackets),
the schema from schema_lookup.py (decided once per version from the top-level keys), and facts such as input names
from the block that defines them. That keeps a request on a 3,000-line file to a few milliseconds, and it keeps
working while the text does not parse.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from mljob.runner import registry
from mljob.server import cursor, schema_lookup
from mljob.server.cursor import Cursor
from mljob.server.features import FeatureContext
from mljob.server.schema_lookup import Choice, DocumentSchema, Lookup, Prop
from mljob.server.store import OpenDocument

from mljob import schemas

Items = list[lsp.CompletionItem]

# Expression namespaces by job kind, and where each one's names are defined (2021 sweeps kept inputs in the trial).
_NAMESPACES: dict[str, dict[str, tuple[tuple[str, ...], ...]]] = {
    "command": {"inputs": (("inputs",),), "outputs": (("outputs",),)},
    "sweep": {"inputs": (("inputs",), ("trial", "inputs")), "outputs": (("outputs",), ("trial", "outputs")),
              "search_space": (("search_space",),)},
    "pipeline": {"parent.inputs": (("inputs",),), "parent.outputs": (("outputs",),)},
}
_OPEN_EXPRESSION = re.compile(r"\$\{\{\s*(?P<inner>[A-Za-z_][\w.-]*|)$")
_OPEN_2021 = re.compile(r"(?<![$\{])\{(?P<ns>inputs|outputs|search_space)\.(?P<name>\w*)$")
_SCHEME = re.compile(r"^[A-Za-z][\w+.-]+:")
_SKIPPED_FOLDERS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".mljob", ".pytest_cache"})
_MAX_PATHS = 300
_NEEDS_QUOTES = re.compile(
    r"^(?:$|[\s\-?:,\[\]{}#&*!|>'\"%@`]|.*(?:: | #|:$)|(?:true|false|yes|no|on|off|null|y|n|~)$|"
    r"[-+]?(?:\d[\d_]*(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$|0x|0o|\.(?:inf|nan)$)", re.I)


def complete(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> lsp.CompletionList:
    return lsp.CompletionList(is_incomplete=False, items=items_at(doc, line, character, ctx))


def items_at(doc: OpenDocument, line: int, character: int, ctx: FeatureContext) -> Items:
    lines = doc.lines
    if not 0 <= line < len(lines):
        return []
    text = lines[line]
    cur = cursor.at(lines, line, cursor.utf16_to_column(text, character))
    if cur is None:
        return []
    if cur.at == "value" and cur.path == ("$schema",):
        return schema_urls(cur)
    folder = doc.path.parent if doc.path is not None else None
    found = schema_lookup.for_document(doc.uri, doc.version, lines, doc.text[:4096], cur.top, cur.end, folder)
    if found is None and cursor.is_empty_document(lines, cur.top, cur.end):
        return skeletons(cur)  # (an empty document with a modeline has its schema: its keys are offered)
    if found is None:
        # Not a job (yet): the one useful key is `$schema`, and only where it is being typed (a conda file or any
        # other YAML must not fill up with job suggestions).
        return schema_lines(cur) if cur.at == "key" and not cur.path and "$schema".startswith(cur.word) else []
    if cur.at == "value" or cur.maybe_scalar:
        expression = expression_items(cur, found, doc)
        if expression is not None:
            return expression
    if cur.at == "value":
        if cur.style != "flow" and cur.frames and cur.frames[-1][0] != cur.line:
            return []  # inside a block scalar or a plain scalar's next line: text, where only expressions help
        if any(ch.isspace() for ch in cur.value_text.strip()):
            return []  # a sentence is being written (the space is a trigger character): nothing to pick from
        return value_items(cur, found, doc, ctx)
    return key_items(cur, found, doc, ctx)


# --- positions ------------------------------------------------------------------------------------------------------


def edit_range(cur: Cursor, start: int, stop: int) -> lsp.Range:
    text = cur.lines[cur.line]
    return lsp.Range(start=lsp.Position(line=cur.line, character=cursor.column_to_utf16(text, start)),
                     end=lsp.Position(line=cur.line, character=cursor.column_to_utf16(text, max(start, stop))))


def _edit(cur: Cursor, new_text: str, start: int | None = None, stop: int | None = None) -> lsp.TextEdit:
    return lsp.TextEdit(range=edit_range(cur, cur.start if start is None else start,
                                         cur.stop if stop is None else stop), new_text=new_text)


def _markdown(text: str) -> lsp.MarkupContent:
    return lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=text)


def snippet_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("$", "\\$").replace("}", "\\}")


def yaml_scalar(value: object) -> str:
    """A value as YAML text that reads back as the same value (strings that look like numbers get quotes)."""
    text = schema_lookup.value_text(value)
    if isinstance(value, str) and _NEEDS_QUOTES.match(value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def render_snippet(body: str) -> str:
    """Snippet text as the user will see it once inserted (placeholders filled with their defaults)."""
    text = re.sub(r"\$\{\d+:([^}]*)\}", r"\1", body)
    text = re.sub(r"\$\{\d+\|([^,|]*)[^}]*\}", r"\1", text)
    text = re.sub(r"\$\d+", "", text)
    return text.replace("\\$", "$").replace("\\}", "}")


# --- empty documents and unknown ones -------------------------------------------------------------------------------


def skeletons(cur: Cursor) -> Items:
    """One skeleton per job kind (its schema's defaultSnippets), and a `$schema:` line per catalog entry."""
    items: Items = []
    for entry in schemas.entries():
        if entry.job is None:
            continue
        for snippet in schemas.load(entry.file).get("defaultSnippets", [])[:1]:
            body = snippet["bodyText"]
            items.append(lsp.CompletionItem(
                label=snippet["label"], kind=lsp.CompletionItemKind.Snippet,
                detail=snippet.get("description") or entry.title,
                documentation=_markdown(f"```yaml\n{render_snippet(body)}```"),
                insert_text_format=lsp.InsertTextFormat.Snippet, insert_text_mode=lsp.InsertTextMode.AsIs,
                text_edit=_edit(cur, body), sort_text=f"0{entry.kind}", filter_text=snippet["label"]))
    return items + schema_lines(cur)


def schema_lines(cur: Cursor) -> Items:
    items: Items = []
    for entry in schemas.entries():
        label = f"$schema: {entry.url}"
        items.append(lsp.CompletionItem(
            label=label, kind=lsp.CompletionItemKind.Reference, detail=entry.title,
            documentation=_markdown(f"{entry.title}: validated and completed with the bundled `{entry.file}` "
                                    "(nothing is downloaded)."),
            text_edit=_edit(cur, label + "\n"), sort_text=f"1{entry.kind}", filter_text=label))
    return items


def schema_urls(cur: Cursor) -> Items:
    return [lsp.CompletionItem(
        label=entry.url, kind=lsp.CompletionItemKind.Reference, detail=entry.title,
        documentation=_markdown(f"{entry.title}: the bundled `{entry.file}` (nothing is downloaded)."),
        text_edit=_edit(cur, _space_after_colon(cur) + entry.url), sort_text=f"{i:02d}")
        for i, entry in enumerate(schemas.entries())]


def _space_after_colon(cur: Cursor) -> str:
    # `key:|` and `-|`: a value needs a space after the colon, an item after its dash.
    text = cur.lines[cur.line]
    before = text[cur.start - 1] if cur.start > 0 else ""
    if cur.style == "quoted" or before not in (":", "-"):
        return ""
    return " " if before == ":" or cur.path[-1:] == (cursor.ITEM,) else ""


# --- keys -----------------------------------------------------------------------------------------------------------


def key_items(cur: Cursor, found: DocumentSchema, doc: OpenDocument, ctx: FeatureContext) -> Items:
    lookup = found.lookup
    exp = lookup.at(found.schema, found.base, cur.path, schema_lookup.cursor_facts(cur))
    present = cur.siblings()
    items: Items = []
    for prop in lookup.properties(exp).values():
        if prop.name in present:
            continue
        items.append(key_item(cur, lookup, prop))
    if cur.maybe_scalar and cur.path and all(item.tags for item in items):
        # A bare word may be a list item, or a value written on the line below its key (`compute:` then the
        # name): offer what that scalar can be, unless the key's live form is a mapping.
        items += scalar_items(cur, found, doc, ctx, exp, sort_group="1")
    if not present and cur.style == "block" and not cur.has_colon:
        items += _body_snippets(cur, lookup, exp)
    return items


def key_item(cur: Cursor, lookup: Lookup, prop: Prop) -> lsp.CompletionItem:
    shape = value_shape(lookup, prop)
    name = prop.name
    pad = " " * (cur.indent + 2)
    fmt = lsp.InsertTextFormat.PlainText
    lead = _space_after_colon(cur)
    if cur.has_colon:
        new_text = name
    elif cur.style == "flow" or shape == "scalar":
        new_text = f"{name}: "
    elif shape == "mapping":
        new_text, fmt = f"{snippet_escape(name)}:\n{pad}$0", lsp.InsertTextFormat.Snippet
    else:
        new_text, fmt = f"{snippet_escape(name)}:\n{pad}- $0", lsp.InsertTextFormat.Snippet
    group = "2" if prop.deprecated else "0" if prop.required else "1"
    detail = " · ".join(x for x in (prop.title or type_label(lookup, prop), "required" if prop.required else "",
                                    "deprecated" if prop.deprecated else "") if x)
    return lsp.CompletionItem(
        label=name, kind=lsp.CompletionItemKind.Property, detail=detail,
        documentation=_markdown(property_doc(prop)),
        tags=[lsp.CompletionItemTag.Deprecated] if prop.deprecated else None,
        sort_text=f"{group}{name}", filter_text=name, text_edit=_edit(cur, lead + new_text),
        insert_text_format=fmt, insert_text_mode=lsp.InsertTextMode.AsIs)


def property_doc(prop: Prop) -> str:
    text = prop.description
    if prop.deprecated and prop.deprecation:
        text = f"**Deprecated:** {prop.deprecation}\n\n{text}"
    return text


def value_shape(lookup: Lookup, prop: Prop) -> str:
    """How a key's value is written: a block mapping, a block list, or a scalar on the key's line."""
    types = lookup.types(lookup.expand_parts(prop.parts))
    types.discard("null")
    if types == {"object"}:
        return "mapping"
    if types == {"array"}:
        return "list"
    return "scalar"


def type_label(lookup: Lookup, prop: Prop) -> str:
    types = lookup.types(lookup.expand_parts(prop.parts)) or {"any"}
    order = ["string", "integer", "number", "boolean", "object", "array", "null", "any"]
    names = sorted(types, key=lambda t: order.index(t) if t in order else len(order))
    if "integer" in names and "number" in names:
        names.remove("integer")
    return " | ".join(names)


def _body_snippets(cur: Cursor, lookup: Lookup, exp: schema_lookup.Expansion) -> Items:
    """An empty mapping whose schema has ready-made bodies (distribution, early termination, a search-space
    entry): offer them."""
    items: Items = []
    pad = " " * cur.indent
    for snippet in lookup.snippets(exp):
        body = snippet.body.replace("\n", "\n" + pad)
        items.append(lsp.CompletionItem(
            label=snippet.label, kind=lsp.CompletionItemKind.Snippet, detail=snippet.description,
            documentation=_markdown(f"```yaml\n{render_snippet(snippet.body)}\n```"),
            insert_text_format=lsp.InsertTextFormat.Snippet, insert_text_mode=lsp.InsertTextMode.AsIs,
            text_edit=_edit(cur, body), sort_text=f"3{snippet.label}", filter_text=snippet.label))
    return items


# --- values ---------------------------------------------------------------------------------------------------------


def value_items(cur: Cursor, found: DocumentSchema, doc: OpenDocument, ctx: FeatureContext) -> Items:
    lookup = found.lookup
    key = cur.path[-1]
    parent_depth = len(cur.path) - 1
    facts = schema_lookup.cursor_facts(cur, ignore_type_at=parent_depth if key == "type" else None)
    parent = lookup.at(found.schema, found.base, cur.path[:-1], facts)
    exp = lookup.expand_parts(lookup.child(parent, key))
    items = scalar_items(cur, found, doc, ctx, exp)
    if not cur.value_text.strip() and cur.style != "flow" and (exp.parts and lookup.snippets(exp)):
        items += _value_snippets(cur, lookup, exp)
    return items


def scalar_items(cur: Cursor, found: DocumentSchema, doc: OpenDocument, ctx: FeatureContext,
                 exp: schema_lookup.Expansion, sort_group: str = "0") -> Items:
    """What the scalar at `cur.path` can be: the schema's values, configured computes and environments, paths."""
    items: Items = []
    key = cur.path[-1]
    path_rule = path_kind(cur.path, found) if isinstance(key, str) else None
    if path_rule is not None and doc.path is not None:
        items += path_items(cur, doc.path.parent, *path_rule)
    if key == "compute":
        items += compute_items(cur, ctx)
    elif key == "environment":
        items += environment_items(cur, ctx)
    choices = found.lookup.choices(exp)
    if path_rule is not None:
        # For a local path the folder is the truth: a schema's example (`docker-context`) may not exist there.
        choices = [c for c in choices if c.origin in ("enum", "boolean")]
    return items + _choice_items(cur, choices, sort_group)


def _choice_items(cur: Cursor, choices: Iterable[Choice], sort_group: str = "0") -> Items:
    items: Items = []
    lead = _space_after_colon(cur)
    for i, choice in enumerate(choices):
        text = schema_lookup.value_text(choice.value)
        insert = text if cur.style == "quoted" else yaml_scalar(choice.value)
        doc = choice.description if choice.origin not in ("default",) else None
        if choice.deprecated and choice.deprecation:
            doc = f"**Deprecated:** {choice.deprecation}" + (f"\n\n{doc}" if doc else "")
        group = "9" if choice.deprecated else sort_group if choice.origin in ("enum", "boolean") else "5"
        items.append(lsp.CompletionItem(
            label=text, kind=lsp.CompletionItemKind.EnumMember if choice.origin == "enum"
            else lsp.CompletionItemKind.Value,
            detail={"default": "default", "example": "example"}.get(choice.origin),
            documentation=_markdown(doc) if doc else None,
            tags=[lsp.CompletionItemTag.Deprecated] if choice.deprecated else None,
            sort_text=f"{group}{i:03d}", filter_text=text, text_edit=_edit(cur, lead + insert)))
    return items


def _value_snippets(cur: Cursor, lookup: Lookup, exp: schema_lookup.Expansion) -> Items:
    """`distribution: |` → the ready-made bodies, on the lines below the key."""
    pad = " " * (cur.indent + 2)
    items: Items = []
    for snippet in lookup.snippets(exp):
        body = "\n" + pad + snippet.body.replace("\n", "\n" + pad)
        items.append(lsp.CompletionItem(
            label=snippet.label, kind=lsp.CompletionItemKind.Snippet, detail=snippet.description,
            documentation=_markdown(f"```yaml\n{render_snippet(snippet.body)}\n```"),
            insert_text_format=lsp.InsertTextFormat.Snippet, insert_text_mode=lsp.InsertTextMode.AsIs,
            text_edit=lsp.TextEdit(range=edit_range(cur, _trim_start(cur), cur.stop), new_text=body),
            sort_text=f"3{snippet.label}", filter_text=snippet.label))
    return items


def _trim_start(cur: Cursor) -> int:
    # Replace the spaces after the colon too: the body starts on the next line.
    text = cur.lines[cur.line]
    start = cur.start
    while start > 0 and text[start - 1] == " ":
        start -= 1
    return start


_registry_cache: dict[tuple[str, Path | None], tuple[float, Any]] = {}


def _cached(kind: str, path: Path | None, file: Path, read: Callable[[Path | None], Any]) -> Any:
    """Registry files are read again only when they change (completion runs on every keystroke)."""
    try:
        mtime = file.stat().st_mtime
    except OSError:
        mtime = -1.0
    key = (kind, path)
    cached = _registry_cache.get(key)
    if cached is None or cached[0] != mtime:
        cached = (mtime, read(path))
        _registry_cache[key] = cached
    return cached[1]


def compute_items(cur: Cursor, ctx: FeatureContext) -> Items:
    path = ctx.settings.compute_registry
    computes: dict[str, registry.Compute] = _cached("computes", path, registry.computes_file(path),
                                                    registry.computes)
    items: Items = []
    lead = _space_after_colon(cur)
    for name, compute in sorted(computes.items()):
        # `local` is Azure's own word for this machine; every other name is a configured compute.
        label = name if name == "local" else f"azureml:{name}"
        items.append(lsp.CompletionItem(
            label=label, kind=lsp.CompletionItemKind.Value, detail=f"{compute.type} compute",
            documentation=_markdown(f"Compute `{name}` ({compute.type}) from the mljob compute registry."),
            sort_text=f"1{label}", filter_text=label, text_edit=_edit(cur, lead + label)))
    return items


def environment_items(cur: Cursor, ctx: FeatureContext) -> Items:
    path = ctx.settings.environments_file
    environments: dict[str, str] = _cached("environments", path, registry.environments_file(path),
                                           registry.environments)
    items: Items = []
    lead = _space_after_colon(cur)
    for name, image in sorted(environments.items()):
        label = f"azureml:{name}@latest"
        items.append(lsp.CompletionItem(
            label=label, kind=lsp.CompletionItemKind.Value, detail=f"environment → {image}",
            documentation=_markdown(f"Environment `{name}`, run locally as the image `{image}`."),
            sort_text=f"1{label}", filter_text=label, text_edit=_edit(cur, lead + label)))
    return items


# --- paths ----------------------------------------------------------------------------------------------------------


def path_kind(path: tuple[str | int, ...], found: DocumentSchema) -> tuple[bool, tuple[str, ...]] | None:
    """(folders only, the path of a sibling key the value is relative to) for keys that name local paths."""
    key = path[-1]
    parent = path[-2] if len(path) >= 2 else None
    if key in ("code",) or (key == "path" and parent == "build"):
        return True, ()
    if key == "conda_file":
        return False, ()
    if key == "dockerfile_path":
        return False, ("path",)  # relative to the build context
    if key == "path":
        entry = found.kind.entry
        if "inputs" in path[:-1] or (len(path) == 1 and entry is not None and entry.kind in ("data", "model")):
            return False, ()
    return None


def path_items(cur: Cursor, folder: Path, folders_only: bool, relative_to: tuple[str, ...]) -> Items:
    typed = cur.value_text
    if "${{" in typed or _SCHEME.match(typed) or typed.startswith(("/", "~", "\\")):
        return []
    base = folder
    if relative_to:
        sibling = cur.siblings().get(relative_to[0])
        if sibling is None or not sibling.value:
            return []
        base = folder / cursor.unquote(sibling.value)
    directory, _, partial = typed.rpartition("/")
    try:
        root = folder.resolve()
        target = (base / directory).resolve() if directory else base.resolve()
        if not target.is_relative_to(root):
            return []  # paths stay inside the job's folder: that is what gets uploaded
        entries = sorted(os.scandir(target), key=lambda e: (not e.is_dir(), e.name.lower()))
    except (OSError, ValueError, RuntimeError):
        return []
    items: Items = []
    start = cur.start + len(typed) - len(partial)
    stop = cur.stop
    for entry in entries:
        if entry.name in _SKIPPED_FOLDERS or (entry.name.startswith(".") and not partial.startswith(".")):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if folders_only and not is_dir:
            continue
        label = entry.name + ("/" if is_dir else "")
        items.append(lsp.CompletionItem(
            label=label, kind=lsp.CompletionItemKind.Folder if is_dir else lsp.CompletionItemKind.File,
            detail="folder" if is_dir else "file", sort_text=f"{0 if is_dir else 1}{entry.name.lower()}",
            filter_text=label, text_edit=_edit(cur, label, start, stop)))
        if len(items) >= _MAX_PATHS:
            break
    return items


# --- expressions ------------------------------------------------------------------------------------------------------


def namespaces(found: DocumentSchema) -> dict[str, tuple[tuple[str, ...], ...]]:
    job = found.kind.job
    if job is None and found.kind.entry is not None and found.kind.entry.kind == "commandComponent":
        job = "command"
    return _NAMESPACES.get(job or "", {})


@dataclass(frozen=True, slots=True)
class Definition:
    """Where an input, output or search-space entry is defined, and its YAML (dedented; '' when unknown)."""

    line: int | None
    text: str
    markdown: lsp.MarkupContent | None = None  # a multi-line definition in a fenced block, made once per version


def defined_names(doc: OpenDocument, top: int, end: int, found: DocumentSchema, namespace: str
                  ) -> dict[str, Definition]:
    """Names of `inputs`/`outputs`/`search_space` defined in the document at lines [top, end), read from the text
    once per version (a job may define hundreds of inputs; each keystroke in the command asks again)."""
    lines = doc.lines
    scans = cursor.memo(lines)
    key = ("names", top, end, namespace, found.kind.job)
    known = scans.get(key)
    if known is None:
        known = _names_from_text(lines, top, end, found, namespace)
        if known is None:
            known = _names_from_last_analysis(doc, top, end, namespace)
        scans[key] = known
    return known


def _names_from_text(lines: list[str], top: int, end: int, found: DocumentSchema, namespace: str
                     ) -> dict[str, Definition] | None:
    for path in namespaces(found).get(namespace, ()):
        entries = cursor.find_mapping(lines, top, end, path)
        if entries is not None:
            return {name: _definition(lines, e, end) for name, e in entries.items()}
    return None


def _definition(lines: list[str], entry: cursor.Entry, end: int) -> Definition:
    if entry.col < 0:  # a flow mapping (`inputs: {a: 1}`): the line is known, the entry's own text is not
        return Definition(entry.line, "")
    cut = entry.col
    text = "\n".join(row[cut:] if row[:cut].isspace() or not row[:cut] else row.lstrip()
                     for row in cursor.block_text(lines, entry, end))
    # A one-line definition (`epochs: 20`) fits in the item's detail; only blocks need a documentation popup.
    return Definition(entry.line, text, _markdown(f"```yaml\n{text}\n```") if "\n" in text else None)


def _names_from_last_analysis(doc: OpenDocument, top: int, end: int, namespace: str) -> dict[str, Definition]:
    """When the block cannot be read from the text (anchors, odd layouts), the last judgement of the file knows."""
    cached = getattr(doc, "_analysis", None)  # the store's cached analysis, if any; never computed here
    if not cached:
        return {}
    from mljob.runner.anatomy import anatomy

    analysis = cached[2]
    for report in analysis.reports:
        root = report.yaml_doc.root
        if report.kind is None or root is None or not top <= root.start_mark.line < end:
            continue
        parts = anatomy(root, report.kind.job, report.kind.entry.kind if report.kind.entry else None)
        return {name: Definition(key.start_mark.line, "")
                for name, key in parts.names(namespace.removeprefix("parent.")).items()}
    return {}


def expression_items(cur: Cursor, found: DocumentSchema, doc: OpenDocument) -> Items | None:
    """Inside `${{ … }}` (or the 2021 `{inputs.…}`): namespaces, then the names this document defines."""
    before = cur.value_text
    text = cur.lines[cur.line]
    after = text[cur.column:]
    old = _OPEN_2021.search(before)
    if old is not None:
        names = defined_names(doc, cur.top, cur.end, found, old.group("ns"))
        start = cur.column - len(old.group("name"))
        close = "" if after.startswith("}") else "}"
        return _name_items(cur, old.group("ns"), names, start, close)
    match = _OPEN_EXPRESSION.search(before)
    if match is None:
        return None
    inner = match.group("inner")
    closed = re.match(r"\s*\}\}", after) is not None
    spaces = namespaces(found)
    if "." not in inner or inner.rpartition(".")[0] not in spaces:
        start = cur.column - len(inner)
        stop = cur.column + len(re.match(r"[\w.-]*", after).group(0))  # type: ignore[union-attr]
        return [lsp.CompletionItem(
            label=f"{name}.", kind=lsp.CompletionItemKind.Module, detail=f"{name} of this job",
            sort_text=f"0{i}", filter_text=f"{name}.",
            text_edit=lsp.TextEdit(range=edit_range(cur, start, stop), new_text=f"{name}."))
            for i, name in enumerate(spaces)]
    namespace, _, partial = inner.rpartition(".")
    names = defined_names(doc, cur.top, cur.end, found, namespace)
    return _name_items(cur, namespace, names, cur.column - len(partial), "" if closed else "}}")


def _name_items(cur: Cursor, namespace: str, names: dict[str, Definition], start: int, close: str) -> Items:
    text = cur.lines[cur.line]
    stop = cur.column + len(re.match(r"[\w-]*", text[cur.column:]).group(0))  # type: ignore[union-attr]
    where = edit_range(cur, start, stop)
    # Label, sort and filter text are the name: the client needs no separate copies of it.
    return [lsp.CompletionItem(label=name, kind=lsp.CompletionItemKind.Variable,
                               detail=found.text if found.markdown is None and found.text else f"{namespace}.{name}",
                               documentation=found.markdown,
                               text_edit=lsp.TextEdit(range=where, new_text=name + close))
            for name, found in names.items()]
