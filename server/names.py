"""The names a job document defines (inputs, outputs, search-space entries) and every expression that uses them.

Go to definition, references and rename all read this one index, so they agree on what `${{inputs.x}}` means.
A *scope* is one set of definitions: a command or sweep job (or command component) is one scope; a pipeline is a
scope for its own inputs/outputs (used as `${{parent.inputs.x}}` by its steps) plus one per step (its outputs are
`${{parent.jobs.step.outputs.y}}`; an inline command step's own command uses `${{inputs.x}}`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mljob.runner.anatomy import anatomy
from mljob.runner.document import MappingNode, Node, ScalarNode, SequenceNode, get, mapping_items
from mljob.runner.expressions import NAMESPACES, Reference, find_references
from mljob.runner.validate import DocumentReport
from mljob.server.where import Pos, ScalarSource, end, start


@dataclass(frozen=True, slots=True)
class Symbol:
    scope: int
    namespace: str  # inputs | outputs | search_space
    name: str


Resolver = Callable[[Reference], "tuple[Symbol, int] | None"]  # a reference → its symbol, where its name starts


@dataclass(frozen=True, slots=True)
class Use:
    symbol: Symbol
    form: str  # "ga" or "2021"
    expression: tuple[Pos, Pos]  # the whole `${{ … }}` / `{ … }`
    name: tuple[Pos, Pos]  # just the name inside it


@dataclass
class Scope:
    # False where the names are an interface to something outside this file (a step bound to a component file):
    # renaming them here would break the binding.
    renamable: bool = True
    step_key: ScalarNode | None = None  # a pipeline step: where `parent.jobs.<step>` points when nothing closer


@dataclass
class Index:
    scopes: list[Scope] = field(default_factory=list)
    definitions: dict[Symbol, ScalarNode] = field(default_factory=dict)
    uses: list[Use] = field(default_factory=list)

    def at(self, pos: Pos) -> tuple[Symbol, tuple[Pos, Pos]] | None:
        """The symbol at a position (on its defining key or anywhere in an expression using it) and the range of
        the name there."""
        for symbol, key in self.definitions.items():
            if start(key) <= pos <= end(key):
                return symbol, (start(key), end(key))
        for use in self.uses:
            if use.expression[0] <= pos <= use.expression[1]:
                return use.symbol, use.name
        return None

    def uses_of(self, symbol: Symbol) -> list[Use]:
        return [use for use in self.uses if use.symbol == symbol]

    def definition(self, symbol: Symbol) -> ScalarNode | None:
        found = self.definitions.get(symbol)
        if found is None and 0 <= symbol.scope < len(self.scopes):
            return self.scopes[symbol.scope].step_key
        return found

    def renamable(self, symbol: Symbol) -> bool:
        return symbol in self.definitions and self.scopes[symbol.scope].renamable


_last: tuple[DocumentReport, Index] | None = None


def build(report: DocumentReport, text: str) -> Index:
    """The index of one document. A report belongs to one analysis of one version of the text, so the last index
    stays valid for as long as the same report is asked about (prepareRename then rename, definition then
    references)."""
    global _last
    cached = _last
    if cached is not None and cached[0] is report:
        return cached[1]
    index = _build(report, text)
    _last = (report, index)
    return index


def _build(report: DocumentReport, text: str) -> Index:
    root, kind = report.yaml_doc.root, report.kind
    index = Index()
    if not isinstance(root, MappingNode) or kind is None:
        return index
    schema_kind = kind.entry.kind if kind.entry else None
    if kind.job == "pipeline" or schema_kind == "pipelineComponent":
        _pipeline(index, root, text)
    else:
        parts = anatomy(root, kind.job, schema_kind)
        scope = _scope(index, {"inputs": parts.inputs, "outputs": parts.outputs,
                               "search_space": parts.search_space})
        for command in parts.commands:
            _collect(index, text, command, _in_scope(scope))
    return index


def _scope(index: Index, containers: dict[str, MappingNode | None], *, renamable: bool = True,
           step_key: ScalarNode | None = None) -> int:
    number = len(index.scopes)
    index.scopes.append(Scope(renamable, step_key))
    for namespace, node in containers.items():
        if not isinstance(node, MappingNode):
            continue
        for key, _ in mapping_items(node):
            if key.start_mark.index >= node.start_mark.index:  # keys merged in from an anchor live elsewhere
                index.definitions[Symbol(number, namespace, str(key.value))] = key
    return number


def _pipeline(index: Index, root: MappingNode, text: str) -> None:
    top = _scope(index, {"inputs": get(root, "inputs"), "outputs": get(root, "outputs")})
    jobs = get(root, "jobs")
    if not isinstance(jobs, MappingNode):
        return
    steps: dict[str, int] = {}
    commands: list[tuple[int, ScalarNode]] = []
    for key, step in mapping_items(jobs):
        if not isinstance(step, MappingNode):
            continue
        command = get(step, "command")
        inline = isinstance(command, ScalarNode)
        steps[str(key.value)] = _scope(index, {"inputs": get(step, "inputs"), "outputs": get(step, "outputs")},
                                       renamable=inline, step_key=key)
        if inline:
            commands.append((steps[str(key.value)], command))

    def parent(ref: Reference) -> tuple[Symbol, int] | None:
        parts = ref.parts
        if len(parts) >= 3 and parts[0] == "parent" and parts[1] in ("inputs", "outputs"):
            return Symbol(top, parts[1], parts[2]), len("parent.") + len(parts[1]) + 1
        if len(parts) >= 5 and parts[:2] == ["parent", "jobs"] and parts[3] in ("inputs", "outputs"):
            step = steps.get(parts[2])
            if step is not None:
                return Symbol(step, parts[3], parts[4]), len(".".join(parts[:4])) + 1
        return None

    for node in _expression_scalars(jobs):
        _collect(index, text, node, parent)
    for scope, command in commands:
        _collect(index, text, command, _in_scope(scope))


def _expression_scalars(node: Node) -> list[ScalarNode]:
    found: list[ScalarNode] = []
    stack = [node]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue  # aliases share nodes
        seen.add(id(current))
        if isinstance(current, ScalarNode):
            if "${{" in current.value:
                found.append(current)
        elif isinstance(current, MappingNode):
            for k, v in current.value:
                if isinstance(k, ScalarNode) and k.value == "command":
                    continue  # an inline step's command speaks of its own inputs: collected with its scope
                stack.append(v)
        elif isinstance(current, SequenceNode):
            stack.extend(current.value)
    return found


def _collect(index: Index, text: str, node: ScalarNode, resolve: Resolver) -> None:
    if node.start_mark.index < 0 or "{" not in node.value:
        return
    source = ScalarSource(text, node)
    refs, _ = find_references(source.text)
    for ref in refs:
        found = resolve(ref)
        if found is None:
            continue
        symbol, prefix = found
        name_start = source.text.find(ref.expression, ref.start, ref.end) + prefix
        name_end = name_start + len(symbol.name)
        index.uses.append(Use(symbol, ref.form, (source.position(ref.start), source.position(ref.end)),
                              (source.position(name_start), source.position(name_end))))


def _in_scope(scope: int) -> Resolver:
    def resolve(ref: Reference) -> tuple[Symbol, int] | None:
        if ref.namespace in NAMESPACES and ref.name:
            return Symbol(scope, ref.namespace, ref.name), len(ref.namespace) + 1
        return None

    return resolve
