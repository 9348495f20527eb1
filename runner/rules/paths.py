"""Local paths a job names (code, conda file, Docker context, input data) must exist inside the job's folder."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from mljob.runner.diagnostics import Diagnostic, Severity
from mljob.runner.document import MappingNode, Node, ScalarNode, get, mapping_items, node_range, scalar
from mljob.runner.rules import RuleContext

_SCHEME = re.compile(r"^[A-Za-z][\w+.-]+:")  # azureml:, https:, wasbs:, git+https: … (not a Windows drive)
_DATA_TYPES = {"uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"}


def local_path(value: str) -> str | None:
    """The local path a value names, or None when it names something remote (a URI, an asset)."""
    value = value.strip()
    if value.startswith("file://"):
        return value[len("file://"):]
    if value.startswith("file:"):
        return value[len("file:"):]  # 2021 preview form
    if _SCHEME.match(value) or "${{" in value or not value:
        return None
    return value


def resolve(folder: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else folder / path))


def inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def _check_path(ctx: RuleContext, node: Node | None, what: str, *, missing: Severity = Severity.ERROR,
                relative_to: Path | None = None, want_dir: bool | None = None) -> Iterator[Diagnostic]:
    if not isinstance(node, ScalarNode) or ctx.folder is None:
        return
    value = local_path(node.value)
    if value is None:
        return
    folder = relative_to or ctx.folder
    path = resolve(folder, value)
    if not inside(path, ctx.folder):
        yield Diagnostic(node_range(node), Severity.WARNING, "MLJ204",
                         f"{what} `{value}` is outside the job's folder ({ctx.folder}); a run copies only what "
                         "is inside it. Move it inside the folder.",
                         {"path": str(path)})
    if not path.exists():
        yield Diagnostic(node_range(node), missing, "MLJ203",
                         f"{what} `{value}` does not exist (looked for {path}). Fix the path, or create it.",
                         {"path": str(path), "kind": "folder" if want_dir else "file"})
    elif want_dir is True and not path.is_dir():
        yield Diagnostic(node_range(node), Severity.ERROR, "MLJ203",
                         f"{what} `{value}` is a file; it must be a folder.", {"path": str(path)})
    elif want_dir is False and path.is_dir():
        yield Diagnostic(node_range(node), Severity.ERROR, "MLJ203",
                         f"{what} `{value}` is a folder; it must be a file.", {"path": str(path)})


def _environment(ctx: RuleContext, env: Node | None) -> Iterator[Diagnostic]:
    if not isinstance(env, MappingNode) or ctx.folder is None:
        return
    yield from _check_path(ctx, get(env, "conda_file"), "The conda file", want_dir=False)
    build = get(env, "build")
    docker = get(env, "docker")
    if isinstance(docker, MappingNode):  # 2021: environment.docker.build.dockerfile: file:X
        build_2021 = get(docker, "build")
        yield from _check_path(ctx, get(build_2021, "dockerfile"), "The Dockerfile", want_dir=False)
    if isinstance(build, MappingNode):
        context = get(build, "path")
        yield from _check_path(ctx, context, "The Docker build context", want_dir=True)
        context_value = local_path(scalar(context) or "")
        if context_value is not None:
            yield from _check_path(ctx, get(build, "dockerfile_path"), "The Dockerfile", want_dir=False,
                                   relative_to=resolve(ctx.folder, context_value))


def _inputs(ctx: RuleContext, inputs: Node | None) -> Iterator[Diagnostic]:
    # Input data is often downloaded just before a run: missing data is a warning here, an error at run time.
    if not isinstance(inputs, MappingNode):
        return
    for key, spec in mapping_items(inputs):
        if not isinstance(spec, MappingNode):
            continue
        input_type = scalar(get(spec, "type"))
        if input_type is None or input_type in _DATA_TYPES:
            yield from _check_path(ctx, get(spec, "path"), f"Input `{key.value}`", missing=Severity.WARNING)
        yield from _check_path(ctx, get(spec, "data", "local_path"), f"Input `{key.value}`",
                               missing=Severity.WARNING)


def check(ctx: RuleContext) -> Iterator[Diagnostic]:
    if ctx.folder is None:
        return
    for body in ctx.parts.bodies:
        code = get(body, "code")
        if isinstance(code, MappingNode):
            code = get(code, "local_path")  # 2021
        yield from _check_path(ctx, code, "The code folder")
        yield from _environment(ctx, get(body, "environment"))
    yield from _inputs(ctx, ctx.parts.inputs)
    if ctx.kind.entry is not None and ctx.kind.entry.kind == "environment":
        yield from _environment(ctx, ctx.root)
    if ctx.job == "pipeline":
        jobs = get(ctx.root, "jobs")
        if isinstance(jobs, MappingNode):
            for _, step in mapping_items(jobs):
                component = get(step, "component")
                if isinstance(component, ScalarNode) and re.search(r"\.ya?ml$", component.value.strip()):
                    yield from _check_path(ctx, component, "The component file", want_dir=False)
                yield from _check_path(ctx, get(step, "code"), "The code folder")
                yield from _environment(ctx, get(step, "environment"))
