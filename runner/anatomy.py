"""Where the parts of a job sit, in both syntaxes: its commands, inputs, outputs, search space, environments, code.

Rules, the job model and the editor's navigation ask here instead of each knowing that a 2021 sweep keeps its inputs
under `trial` or that a component's command is at the top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mljob.runner.document import MappingNode, Node, ScalarNode, get, mapping_items


@dataclass
class Anatomy:
    commands: list[ScalarNode] = field(default_factory=list)
    inputs: MappingNode | None = None
    outputs: MappingNode | None = None
    search_space: MappingNode | None = None
    # Mappings that may hold `code`, `environment`, `resources`, `distribution` (the job, or a sweep's trial).
    bodies: list[MappingNode] = field(default_factory=list)

    def names(self, namespace: str) -> dict[str, ScalarNode]:
        """Defined names of `inputs`, `outputs` or `search_space`, to their key nodes."""
        container = {"inputs": self.inputs, "outputs": self.outputs, "search_space": self.search_space}[namespace]
        if not isinstance(container, MappingNode):
            return {}
        return {str(k.value): k for k, _ in mapping_items(container)}


def _mapping(node: Node | None) -> MappingNode | None:
    return node if isinstance(node, MappingNode) else None


def anatomy(root: Node | None, job: str | None, schema_kind: str | None = None) -> Anatomy:
    """The parts of a command job, sweep job or command component (pipelines: only their own inputs/outputs)."""
    parts = Anatomy()
    if not isinstance(root, MappingNode):
        return parts
    if job == "sweep":
        trial = _mapping(get(root, "trial"))
        if trial is not None:
            parts.bodies.append(trial)
            command = get(trial, "command")
            if isinstance(command, ScalarNode):
                parts.commands.append(command)
        # GA keeps inputs/outputs on the sweep; 2021 kept them in the trial.
        parts.inputs = _mapping(get(root, "inputs")) or _mapping(get(trial, "inputs"))
        parts.outputs = _mapping(get(root, "outputs")) or _mapping(get(trial, "outputs"))
        parts.search_space = _mapping(get(root, "search_space"))
        return parts
    parts.inputs = _mapping(get(root, "inputs"))
    parts.outputs = _mapping(get(root, "outputs"))
    if job == "command" or schema_kind == "commandComponent":
        parts.bodies.append(root)
        command = get(root, "command")
        if isinstance(command, ScalarNode):
            parts.commands.append(command)
    return parts
