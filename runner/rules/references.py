"""Expressions in commands must name something defined; definitions nobody uses are worth a hint."""

from __future__ import annotations

from collections.abc import Iterator

from mljob.runner.diagnostics import Diagnostic, Range, Severity
from mljob.runner.document import as_dict, get, node_range, scalar
from mljob.runner.expressions import find_references
from mljob.runner.rules import RuleContext
from mljob.runner.schema_check import suggest

_PLURAL = {"inputs": "input", "outputs": "output", "search_space": "search-space entry"}


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    parts = ctx.parts
    if not parts.commands:
        return
    defined = {ns: parts.names(ns) for ns in ("inputs", "outputs", "search_space")}
    used: dict[str, set[str]] = {ns: set() for ns in defined}
    input_specs = as_dict(parts.inputs)
    for command in parts.commands:
        text, _, _ = ctx.source(command)
        refs, malformed = find_references(text)
        for bad in malformed:
            yield Diagnostic(ctx.span(command, bad.start, bad.end), Severity.WARNING, "MLJ216",
                             f"`{bad.text}` is not a complete expression; write `${{{{inputs.name}}}}` "
                             "(the name of an input, output or search-space entry).")
        for ref in refs:
            ga = f"${{{{{ref.expression}}}}}"
            where = _LazySpan(ctx, command, ref.start, ref.end)
            if ref.form == "2021":
                yield Diagnostic(where.range, Severity.WARNING, "MLJ301",
                                 f"`{{{ref.expression}}}` is the 2021 preview form; write `{ga}`.",
                                 {"replace_with": ga}, ("deprecated",))
            namespace, name = ref.namespace, ref.name
            if namespace is None or name is None:
                yield Diagnostic(where.range, Severity.WARNING, "MLJ218",
                                 f"`{ga}` is not an expression a {ctx.kind.label} can resolve; use "
                                 "`${{inputs.<name>}}`, `${{outputs.<name>}}`"
                                 + (" or `${{search_space.<name>}}`." if ctx.job == "sweep" else "."))
                continue
            if namespace == "search_space" and ctx.job != "sweep":
                yield Diagnostic(where.range, Severity.ERROR, "MLJ218",
                                 f"`{ga}` only means something in a sweep job's trial; this is a {ctx.kind.label}.")
                continue
            used[namespace].add(name)
            names = defined[namespace]
            if name in names:
                if namespace == "inputs" and not ref.optional:
                    optional = scalar(get(input_specs.get(name), "optional"))
                    if optional is not None and optional.lower() == "true":
                        yield Diagnostic(where.range, Severity.WARNING, "MLJ201",
                                         f"Input `{name}` is optional but used outside `$[[ … ]]`: when it is "
                                         f"not given the command gets an empty value. Write `$[[--{name} {ga}]]`.")
                continue
            near = suggest(name, list(names))
            kind_word = _PLURAL[namespace]
            if names:
                listed = ", ".join(f"`{n}`" for n in sorted(names)[:10])
                message = f"`{ga}` names no {kind_word}; `{namespace}` defines {listed}."
            else:
                message = f"`{ga}` names no {kind_word}: this job has no `{namespace}`."
            message += f" Did you mean `{near}`?" if near else f" Define `{name}` under `{namespace}:`."
            yield Diagnostic(where.range, Severity.ERROR, "MLJ201", message,
                             {"namespace": namespace, "name": name, "replace_with": near})
    for namespace in ("inputs", "search_space"):
        for name, key in defined[namespace].items():
            if name not in used[namespace]:
                yield Diagnostic(node_range(key), Severity.HINT, "MLJ202",
                                 f"{_PLURAL[namespace].capitalize()} `{name}` is never used in the command; pass "
                                 f"it with `${{{{{namespace}.{name}}}}}` or remove it.",
                                 {"namespace": namespace, "name": name}, ("unnecessary",))


class _LazySpan:
    """Most references are fine: compute their position only for the ones that get a diagnostic."""

    __slots__ = ("ctx", "node", "start", "end")

    def __init__(self, ctx: RuleContext, node: object, start: int, end: int) -> None:
        self.ctx, self.node, self.start, self.end = ctx, node, start, end

    @property
    def range(self) -> Range:
        return self.ctx.span(self.node, self.start, self.end)  # type: ignore[arg-type]
