"""Quick fixes for our diagnostics, plus the two source actions (migrate to GA syntax, add `$schema`).

Each fixer reads the facts the validator put in a diagnostic's `data` (never its message) and returns edits; the
diagnostic it is bound to is the client's copy, matched to the current judgement by code, range and message, so a
fix is never computed from a stale diagnostic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import yaml
from lsprotocol import types as lsp
from mljob.runner.anatomy import anatomy
from mljob.runner.diagnostics import Diagnostic
from mljob.runner.document import MappingNode, ScalarNode, mapping_items
from mljob.runner.migrate import MigrationError, migrate_text
from mljob.runner.schema_check import suggest
from mljob.runner.validate import Analysis, DocumentReport
from mljob.server import edits
from mljob.server.convert import to_range
from mljob.server.features import FeatureContext
from mljob.server.placeholders import catalog_url, value_for
from mljob.server.store import OpenDocument
from mljob.server.where import Step, last_line, lines_of, node_at_path, path_at, report_at

MIGRATE_KIND = f"{lsp.CodeActionKind.Source.value}.migrate"
SCHEMA_KIND = f"{lsp.CodeActionKind.Source.value}.addSchema"


@dataclass
class Fix:
    title: str
    edits: list[lsp.TextEdit]
    preferred: bool = False


@dataclass
class Context:
    doc: OpenDocument
    analysis: Analysis
    lines: list[str] = field(default_factory=list)
    br: str = "\n"

    def report(self, line: int) -> DocumentReport | None:
        return report_at(self.analysis, line)


Fixer = Callable[[Context, Diagnostic], list[Fix]]


def code_actions(doc: OpenDocument, rng: lsp.Range, diagnostics: list[lsp.Diagnostic],
                 ctx: FeatureContext) -> list[lsp.CodeAction]:
    analysis = doc.analysis(ctx.settings.validation(), ctx.generation)
    text = analysis.document.text
    fix_ctx = Context(doc, analysis, lines_of(text), edits.line_break(text))
    actions: list[lsp.CodeAction] = []
    migrate_for: list[lsp.Diagnostic] = []
    for bound, ours in _pairs(doc, analysis, rng, diagnostics):
        if ours.code == "MLJ301":
            migrate_for.append(bound)
        fixer = FIXERS.get(ours.code)
        for fix in fixer(fix_ctx, ours) if fixer else []:
            actions.append(_action(doc, fix, lsp.CodeActionKind.QuickFix, [bound]))
    migration = _migration(fix_ctx) if migrate_for or _has_2021(analysis) else None
    if migration is not None:
        if migrate_for:
            actions.append(_action(doc, migration, lsp.CodeActionKind.QuickFix, migrate_for))
        actions.append(_action(doc, migration, MIGRATE_KIND, None))
    schema = _add_schema(fix_ctx, rng.start.line)
    if schema is not None:
        actions.append(_action(doc, schema, lsp.CodeActionKind.QuickFix, None))
        actions.append(_action(doc, schema, SCHEMA_KIND, None))
    return actions


def _action(doc: OpenDocument, fix: Fix, kind: str, bound: list[lsp.Diagnostic] | None) -> lsp.CodeAction:
    return lsp.CodeAction(title=fix.title, kind=kind, diagnostics=bound,
                          is_preferred=fix.preferred if bound else None,
                          edit=lsp.WorkspaceEdit(changes={doc.uri: fix.edits}))


def _pairs(doc: OpenDocument, analysis: Analysis, rng: lsp.Range,
           diagnostics: list[lsp.Diagnostic]) -> list[tuple[lsp.Diagnostic, Diagnostic]]:
    """Client diagnostics matched to the current judgement. A client that sends none (some do for a plain
    "code actions here" request) gets fixes for ours that touch the range."""
    positions = doc.positions
    ours = [(to_range(positions, d.range), d) for d in analysis.diagnostics if d.range.start.line >= 0]
    mine = [d for d in diagnostics if d.source in (None, "mljob")]
    if mine:
        # Several diagnostics can share a code and a range (two missing keys are both reported on the first line);
        # the message tells them apart.
        by_key = {(d.code, _key(converted), d.message): d for converted, d in ours}
        pairs = []
        for client in mine:
            found = by_key.get((str(client.code), _key(client.range), client.message))
            if found is not None:
                pairs.append((client, found))
        return pairs
    if diagnostics:
        return []
    return [(lsp.Diagnostic(range=converted, message=d.message, code=d.code, source="mljob",
                            severity=lsp.DiagnosticSeverity(int(d.severity))), d)
            for converted, d in ours if _touches(converted, rng) and d.code in FIXERS]


def _key(rng: lsp.Range) -> tuple[int, int, int, int]:
    return rng.start.line, rng.start.character, rng.end.line, rng.end.character


def _touches(a: lsp.Range, b: lsp.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and \
        (b.start.line, b.start.character) <= (a.end.line, a.end.character)


# --- replace with the nearest valid spelling (MLJ101 key, MLJ104 value, MLJ107 union type) ---------------------------


def _nearest(diagnostic: Diagnostic, written: str) -> str | None:
    near = diagnostic.data.get("replace_with")
    if not near and isinstance(diagnostic.data.get("allowed"), list):
        near = suggest(written, [str(a) for a in diagnostic.data["allowed"]])
    return str(near) if near else None


def _node_at(ctx: Context, diagnostic: Diagnostic) -> tuple[list[Step], bool, DocumentReport] | None:
    start = diagnostic.range.start
    report = ctx.report(start.line)
    if report is None or report.yaml_doc.root is None:
        return None
    steps, on_key = path_at(report.yaml_doc.root, (start.line, start.column), ctx.lines)
    return steps, on_key, report


def fix_key(ctx: Context, diagnostic: Diagnostic) -> list[Fix]:
    found = _node_at(ctx, diagnostic)
    if found is None:
        return []
    steps, on_key, _ = found
    key, mapping = steps[-1].key, steps[-1].parent
    if not on_key or key is None or not isinstance(mapping, MappingNode):
        return []
    near = _nearest(diagnostic, str(key.value))
    if near is None or near == key.value or any(k.value == near for k, _ in mapping_items(mapping)):
        return []  # renaming onto a key that is already there would only trade this error for a duplicate
    rng = edits.span(ctx.lines, (key.start_mark.line, key.start_mark.column), (key.end_mark.line, key.end_mark.column))
    return [Fix(f"Change `{key.value}` to `{near}`", [lsp.TextEdit(range=rng, new_text=near)], preferred=True)]


def fix_value(ctx: Context, diagnostic: Diagnostic) -> list[Fix]:
    found = _node_at(ctx, diagnostic)
    if found is None:
        return []
    steps, on_key, _ = found
    node = steps[-1].node
    if on_key or not isinstance(node, ScalarNode):
        return []
    near = _nearest(diagnostic, node.value)
    if near is None or near == node.value:
        return []
    rng = edits.span(ctx.lines, (node.start_mark.line, node.start_mark.column),
                     (node.end_mark.line, node.end_mark.column))
    return [Fix(f"Change `{node.value}` to `{near}`", [lsp.TextEdit(range=rng, new_text=_scalar_text(node, near))],
                preferred=True)]


def _scalar_text(node: ScalarNode, value: str) -> str:
    """The value as the original was written: same quotes, or quotes where plain text would not stay a string."""
    if node.style in ("'", '"'):
        return yaml.safe_dump(value, default_style=node.style, width=10**9).strip().removesuffix("...").strip()
    resolved = yaml.safe_load(f"k: {value}") if value else None
    if isinstance(resolved, dict) and resolved.get("k") == value:
        return value
    return yaml.safe_dump(value, default_style="'", width=10**9).strip().removesuffix("...").strip()


# --- add a missing required key (MLJ102) ----------------------------------------------------------------------------


def fix_missing(ctx: Context, diagnostic: Diagnostic) -> list[Fix]:
    missing, path = diagnostic.data.get("missing"), diagnostic.data.get("path")
    report = ctx.report(diagnostic.range.start.line)
    if not isinstance(missing, str) or not isinstance(path, list) or report is None or report.kind is None:
        return []
    root = report.yaml_doc.root
    mapping, _ = node_at_path(root, path)
    if not isinstance(mapping, MappingNode) or root is None:
        return []
    value = value_for(report.kind, root, path, missing)
    edit = edits.insert_entry(ctx.lines, ctx.br, mapping, missing, value)
    if edit is None:
        return []
    shown = f"{missing}: {edits.render_flow(value)}" if isinstance(value, str | int | float) else f"{missing}"
    return [Fix(f"Add `{shown}`", [edit], preferred=True)]


# --- names used by the command (MLJ201, MLJ202) ----------------------------------------------------------------------

_DATA_WORDS = re.compile(r"data|dataset|path|dir|folder|file|csv|table|model", re.I)
_SINGULAR = {"inputs": "input", "outputs": "output", "search_space": "search-space entry"}


def fix_undefined(ctx: Context, diagnostic: Diagnostic) -> list[Fix]:
    namespace, name = diagnostic.data.get("namespace"), diagnostic.data.get("name")
    report = ctx.report(diagnostic.range.start.line)
    if not isinstance(namespace, str) or not isinstance(name, str) or report is None or report.kind is None:
        return []
    fixes: list[Fix] = []
    near = diagnostic.data.get("replace_with")
    if isinstance(near, str) and near:
        fixes.extend(_rename_reference(ctx, diagnostic, namespace, name, near))
    define = _define(ctx, report, namespace, name)
    if define is not None:
        fixes.append(define)
    return fixes


def _rename_reference(ctx: Context, diagnostic: Diagnostic, namespace: str, name: str, near: str) -> list[Fix]:
    start, end = diagnostic.range.start, diagnostic.range.end
    if start.line != end.line:
        return []
    written = ctx.lines[start.line][start.column:end.column] if start.line < len(ctx.lines) else ""
    at = written.find(f"{namespace}.{name}")
    if at < 0:
        return []
    column = start.column + at + len(namespace) + 1
    rng = edits.span(ctx.lines, (start.line, column), (start.line, column + len(name)))
    return [Fix(f"Change to `{namespace}.{near}`", [lsp.TextEdit(range=rng, new_text=near)], preferred=True)]


def _define(ctx: Context, report: DocumentReport, namespace: str, name: str) -> Fix | None:
    root = report.yaml_doc.root
    kind = report.kind
    if not isinstance(root, MappingNode) or kind is None:
        return None
    parts = anatomy(root, kind.job, kind.entry.kind if kind.entry else None)
    container = {"inputs": parts.inputs, "outputs": parts.outputs, "search_space": parts.search_space}.get(namespace)
    value = _placeholder(namespace, name)
    title = f"Define {_SINGULAR.get(namespace, namespace)} `{name}` under `{namespace}`"
    if isinstance(container, MappingNode) and container.value:
        edit = edits.insert_entry(ctx.lines, ctx.br, container, name, value)
    elif container is None and root.value and not root.flow_style:
        indent = root.value[0][0].start_mark.column
        edit = edits.append_after(ctx.lines, ctx.br, last_line(root, ctx.lines),
                                  edits.render(namespace, {name: value}, indent, ctx.br))
    else:
        edit = None
    return Fix(title, [edit]) if edit is not None else None


def _placeholder(namespace: str, name: str) -> object:
    """A value that validates and that the user will recognise as theirs to fill in."""
    if namespace == "outputs":
        return {"type": "uri_folder"}
    if namespace == "search_space":
        return {"type": "choice", "values": [1, 2, 3]}
    if _DATA_WORDS.search(name):
        return {"type": "uri_folder", "path": f"azureml:{name}@latest"}
    return 1


def fix_unused(ctx: Context, diagnostic: Diagnostic) -> list[Fix]:
    namespace, name = diagnostic.data.get("namespace"), diagnostic.data.get("name")
    found = _node_at(ctx, diagnostic)
    if found is None or not isinstance(name, str):
        return []
    steps, on_key, _ = found
    if not on_key or len(steps) < 2:
        return []
    entry, mapping = steps[-1], steps[-1].parent
    if not isinstance(mapping, MappingNode) or mapping.flow_style or entry.key is None:
        return []
    target = entry
    if len(mapping.value) == 1:
        if namespace != "inputs":
            return []  # a sweep needs a search space; removing its last entry trades a hint for an error
        target = steps[-2]  # the last input: remove `inputs:` itself (an empty `inputs:` is not a mapping)
        if target.key is None:
            return []
    key = target.key
    if key is None or not edits.starts_line(ctx.lines, key):
        return []
    last = last_line(target.node, ctx.lines) if target.node.start_mark.index >= key.start_mark.index else \
        key.start_mark.line
    edit = edits.delete_lines(ctx.lines, key.start_mark.line, max(last, key.start_mark.line))
    return [Fix(f"Remove unused {_SINGULAR.get(str(namespace), 'entry')} `{name}`", [edit])]


# --- 2021 syntax (MLJ301) ------------------------------------------------------------------------------------------


def fix_2021(ctx: Context, diagnostic: Diagnostic) -> list[Fix]:
    """One `{inputs.x}` at a time; the whole-file migration is added once for all of them."""
    replacement = diagnostic.data.get("replace_with")
    if not isinstance(replacement, str):
        return []
    start, end = diagnostic.range.start, diagnostic.range.end
    rng = edits.span(ctx.lines, (start.line, start.column), (end.line, end.column))
    return [Fix(f"Write `{replacement}`", [lsp.TextEdit(range=rng, new_text=replacement)], preferred=True)]


def _has_2021(analysis: Analysis) -> bool:
    return any(d.code == "MLJ301" for d in analysis.diagnostics)


def _migration(ctx: Context) -> Fix | None:
    return _migrate(ctx.doc.text)


@functools.lru_cache(maxsize=4)
def _migrate(text: str) -> Fix | None:
    """Editors ask for code actions at every cursor move; the round-trip migration runs once per text."""
    try:
        migration = migrate_text(text)
    except MigrationError:
        return None
    if not migration.changes or migration.text == text:
        return None
    count = len(migration.changes)
    return Fix(f"Migrate the file to today's syntax ({count} change{'s' if count != 1 else ''}, comments kept)",
               edits.diff(text, migration.text))


# --- `$schema` for a job recognised by its type or shape ----------------------------------------------------------


def _add_schema(ctx: Context, line: int) -> Fix | None:
    report = ctx.report(line)
    if report is None or report.kind is None or report.kind.source not in ("type", "shape"):
        return None
    root = report.yaml_doc.root
    url = catalog_url(report.kind)
    if not isinstance(root, MappingNode) or root.flow_style or not root.value or url is None:
        return None
    first = root.value[0][0]
    column = first.start_mark.column
    at = (first.start_mark.line, column)
    edit = lsp.TextEdit(range=edits.span(ctx.lines, at, at), new_text=f"$schema: {url}{ctx.br}{' ' * column}")
    return Fix(f"Add `$schema` for a {report.kind.label}", [edit], preferred=True)


FIXERS: dict[str, Fixer] = {
    "MLJ101": fix_key,
    "MLJ102": fix_missing,
    "MLJ104": fix_value,
    "MLJ107": fix_value,
    "MLJ201": fix_undefined,
    "MLJ202": fix_unused,
    "MLJ301": fix_2021,
}
