"""Sweep settings that validate as a schema but cannot work: bounds, sampling against distributions, policies."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mljob.runner.diagnostics import Diagnostic, Severity
from mljob.runner.document import (
    MappingNode,
    Node,
    ScalarNode,
    SequenceNode,
    get,
    get_key,
    mapping_items,
    node_range,
    number,
    scalar,
)
from mljob.runner.rules import RuleContext

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
BOUNDED = {"uniform", "loguniform", "quniform", "qloguniform"}
QUANTIZED = {"quniform", "qloguniform", "qnormal", "qlognormal"}
GAUSSIAN = {"normal", "lognormal", "qnormal", "qlognormal"}


def _error(node: Node, code: str, message: str, **data: object) -> Diagnostic:
    return Diagnostic(node_range(node), Severity.ERROR, code, message, dict(data))


def sampling_algorithm(root: MappingNode) -> tuple[str | None, Node | None]:
    node = get(root, "sampling_algorithm") or get(root, "algorithm")
    if isinstance(node, MappingNode):
        type_node = get(node, "type")
        return scalar(type_node), type_node
    return scalar(node), node


def _entry(name: str, key: ScalarNode, spec: Node, grid: bool) -> Iterator[Diagnostic]:
    if not IDENTIFIER.match(name):
        yield _error(key, "MLJ213", f"Search-space name `{name}` is not an identifier: trial commands refer to it as "
                     "`${{search_space.<name>}}`, so use letters, digits and underscores (not starting with a digit).")
    if not isinstance(spec, MappingNode):
        return
    type_node = get(spec, "type")
    kind = scalar(type_node)
    if kind is None:
        return
    if grid and kind != "choice" and isinstance(type_node, ScalarNode):
        yield _error(type_node, "MLJ209", f"Grid sampling tries every combination, so it needs discrete values; "
                     f"`{name}` is `{kind}`. Use `type: choice` with `values: [...]`, or `sampling_algorithm: random`.")
    if kind in BOUNDED:
        low, high = get(spec, "min_value"), get(spec, "max_value")
        lo, hi = number(low), number(high)
        if lo is not None and hi is not None and lo >= hi and high is not None:
            yield _error(high, "MLJ208", f"`{name}`: `max_value` ({hi}) must be greater than `min_value` ({lo}).")
    if kind in QUANTIZED:
        q = get(spec, "q")
        if number(q) is not None and number(q) <= 0 and q is not None:  # type: ignore[operator]
            yield _error(q, "MLJ208", f"`{name}`: `q` must be greater than 0 (it is the step values are rounded to).")
    if kind in GAUSSIAN:
        sigma = get(spec, "sigma")
        if number(sigma) is not None and number(sigma) <= 0 and sigma is not None:  # type: ignore[operator]
            yield _error(sigma, "MLJ208", f"`{name}`: `sigma` must be greater than 0 (a standard deviation).")
    if kind == "randint":
        upper = get(spec, "upper")
        if number(upper) is not None and number(upper) < 1 and upper is not None:  # type: ignore[operator]
            yield _error(upper, "MLJ208", f"`{name}`: `upper` must be at least 1: randint draws from 0 to upper-1.")
    if kind == "choice":
        values = get(spec, "values")
        if isinstance(values, SequenceNode) and not values.value:
            yield _error(values, "MLJ208", f"`{name}`: `values` is empty; list at least one value to choose from.")
        for item in values.value if isinstance(values, SequenceNode) else ():
            # The sampler (runner/sweep/space.py) passes each value to the trial's command line as text.
            if isinstance(item, ScalarNode) and item.tag == "tag:yaml.org,2002:null":
                yield _error(item, "MLJ208", f"`{name}`: `values` holds null, which a trial cannot receive as an "
                             "argument; remove it, or quote it ('null') to pass the text.")
            elif not isinstance(item, ScalarNode):
                yield _error(item, "MLJ208", f"`{name}`: `values` may hold only strings, numbers and booleans "
                             "(nested search spaces are not supported); list plain values.")


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    if ctx.job != "sweep":
        return
    root = ctx.root
    algorithm, algorithm_node = sampling_algorithm(root)
    space = ctx.parts.search_space
    if space is not None:
        for key, spec in mapping_items(space):
            yield from _entry(str(key.value), key, spec, algorithm == "grid")
    policy = get(root, "early_termination")
    if isinstance(policy, MappingNode):
        policy_type = scalar(get(policy, "type"))
        policy_key = get_key(root, "early_termination") or policy
        if algorithm == "bayesian":
            yield _error(policy_key, "MLJ210", "Bayesian sampling learns from every finished trial, so it does not "
                         "support early termination: remove `early_termination` or use `sampling_algorithm: random`.")
        if policy_type == "bandit":
            has_factor = get(policy, "slack_factor") is not None
            has_amount = get(policy, "slack_amount") is not None
            if not has_factor and not has_amount:
                yield _error(policy_key, "MLJ211", "A bandit policy needs `slack_factor` (a ratio, e.g. 0.1) or "
                             "`slack_amount` (an absolute distance) to know which trials are far from the best.",
                             missing="slack_factor")
            elif has_factor and has_amount:
                yield _error(policy_key, "MLJ211", "Set only one of `slack_factor` and `slack_amount`.")
        if policy_type == "truncation_selection":
            pct = get(policy, "truncation_percentage")
            value = number(pct)
            if value is not None and not 1 <= value <= 99 and pct is not None:
                yield _error(pct, "MLJ212", f"`truncation_percentage` must be between 1 and 99 (the share of "
                             f"trials cancelled at each interval), not {value}.")
    objective = get(root, "objective")
    metric = get(objective, "primary_metric")
    # A sweep with no `objective` at all is the schema's "missing required key"; this rule explains the metric.
    if objective is not None and (metric is None or not (scalar(metric) or "").strip()):
        where = metric if metric is not None else (get_key(root, "objective") or _first_key(root))
        yield _error(where, "MLJ215", "The sweep needs `objective.primary_metric`: the name of the metric each trial "
                     "logs (e.g. with `mlflow.log_metric(\"accuracy\", value)`), and `goal: maximize` or `minimize`.",
                     missing="objective")
    del algorithm_node


def _first_key(root: MappingNode) -> Node:
    return root.value[0][0] if root.value else root
