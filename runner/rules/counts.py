"""Counts that must be at least one, concurrency against the total, and the shared-memory size format."""

from __future__ import annotations

import re
from collections.abc import Iterator

from mljob.runner.diagnostics import Diagnostic, Severity
from mljob.runner.document import MappingNode, Node, ScalarNode, get, node_range, number
from mljob.runner.rules import RuleContext

# Docker parses sizes with go-units' RAMInBytes: a number, an optional space, k/m/g/t/p, optional i and b.
SHM_SIZE = re.compile(r"^\d+(\.\d+)? ?[kKmMgGtTpP]?[iI]?[bB]?$")


def _at_least_one(node: Node | None, name: str) -> Iterator[Diagnostic]:
    value = number(node)
    if value is not None and value < 1 and isinstance(node, ScalarNode):
        yield Diagnostic(node_range(node), Severity.ERROR, "MLJ205",
                         f"`{name}` must be at least 1, not {node.value}. Use 1 for a single one.",
                         {"replace_with": "1"})


def _limits(root: MappingNode) -> tuple[Node | None, Node | None]:
    limits = get(root, "limits")
    total = get(limits, "max_total_trials") or get(root, "max_total_trials")
    concurrent = get(limits, "max_concurrent_trials") or get(root, "max_concurrent_trials")
    return total, concurrent


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    root = ctx.root
    bodies = ctx.parts.bodies or [root]
    # A sweep keeps resources in its trial; a command job at the top.
    holders = list(dict.fromkeys(id(b) for b in bodies))
    by_id = {id(b): b for b in bodies}
    for body in (by_id[i] for i in holders):
        for resources in (get(body, "resources"),):
            yield from _at_least_one(get(resources, "instance_count"), "resources.instance_count")
            shm = get(resources, "shm_size")
            if isinstance(shm, ScalarNode) and not SHM_SIZE.match(shm.value.strip()):
                yield Diagnostic(node_range(shm), Severity.ERROR, "MLJ207",
                                 f"`shm_size` `{shm.value}` is not a size: write a number and a unit, e.g. `2g` "
                                 "or `512m` (units b, k, m, g).")
        compute = get(body, "compute")
        if isinstance(compute, MappingNode):  # 2021 `compute.instance_count`
            yield from _at_least_one(get(compute, "instance_count"), "compute.instance_count")
        distribution = get(body, "distribution")
        for name in ("process_count_per_instance", "worker_count", "process_count"):
            yield from _at_least_one(get(distribution, name), f"distribution.{name}")
    if ctx.job == "sweep":
        total, concurrent = _limits(root)
        yield from _at_least_one(total, "max_total_trials")
        yield from _at_least_one(concurrent, "max_concurrent_trials")
        total_value, concurrent_value = number(total), number(concurrent)
        if (total_value is not None and concurrent_value is not None and concurrent_value > total_value >= 1
                and isinstance(concurrent, ScalarNode)):
            yield Diagnostic(node_range(concurrent), Severity.WARNING, "MLJ206",
                             f"`max_concurrent_trials` ({concurrent_value}) is more than `max_total_trials` "
                             f"({total_value}): at most {total_value} trials will ever run at once. Lower it to "
                             f"{total_value} or raise the total.", {"replace_with": str(total_value)})
