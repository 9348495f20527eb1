"""An inline environment needs exactly one of an image and a build; placeholders left from a template."""

from __future__ import annotations

from collections.abc import Iterator

from mljob.runner.diagnostics import Diagnostic, Severity
from mljob.runner.document import MappingNode, Node, ScalarNode, get, get_key, node_range
from mljob.runner.rules import RuleContext
from mljob.runner.schema_check import looks_like_placeholder


def _image_or_build(holder: MappingNode, env: MappingNode, where: Node, label: str) -> Iterator[Diagnostic]:
    image, build = get(holder, "image"), get(holder, "build")
    if image is not None and build is not None:
        key = get_key(holder, "build") or where
        yield Diagnostic(node_range(key), Severity.ERROR, "MLJ214",
                         f"{label} has both `image` and `build`: keep `image` to use a ready image, or `build` to "
                         "build one from a Dockerfile.")
    elif image is None and build is None:
        yield Diagnostic(node_range(where), Severity.ERROR, "MLJ214",
                         f"{label} needs `image` (e.g. `image: python:3.11-slim`) or `build` (e.g. "
                         "`build: {path: docker-context}`).", {"missing": "image"})


def _environment(env: Node | None, key: Node | None, label: str) -> Iterator[Diagnostic]:
    if not isinstance(env, MappingNode):
        return
    docker = get(env, "docker")
    where = key or env
    if isinstance(docker, MappingNode):  # 2021: environment.docker.{image | build}
        yield from _image_or_build(docker, env, get_key(env, "docker") or where, "`environment.docker`")
    elif docker is None:
        yield from _image_or_build(env, env, where, label)


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    for body in ctx.parts.bodies:
        yield from _environment(get(body, "environment"), get_key(body, "environment"), "The inline environment")
    if ctx.kind.entry is not None and ctx.kind.entry.kind == "environment":
        yield from _environment(ctx.root, None, "The environment")
    compute = get(ctx.root, "compute")
    if isinstance(compute, ScalarNode) and looks_like_placeholder(compute.value):
        yield Diagnostic(node_range(compute), Severity.WARNING, "MLJ217",
                         f"`compute` is still a placeholder (`{compute.value.strip()}`): replace it with a compute "
                         "name (`azureml:cpu-cluster`, or `local` to run here).")
