"""Local files and folders a value names (`code: src`, `conda_file: env.yml`, a pipeline step's `component: x.yml`),
for go to definition. The same values the path rules check (runner/rules/paths.py), found from the cursor's keys.
"""

from __future__ import annotations

from pathlib import Path

from mljob.runner.document import MappingNode, ScalarNode, get, scalar
from mljob.runner.rules.paths import local_path, resolve
from mljob.server.where import Step

# Keys whose string value is a local path wherever they appear in a job (2021 forms included).
_PATH_KEYS = {"code", "conda_file", "local_path", "dockerfile", "component", "trial"}
# `path` is a local path only in these places: elsewhere (`liveness_route.path`) it is a URL path.
_PATH_PARENTS = {"inputs", "outputs", "build"}


def target(steps: list[Step], folder: Path | None) -> Path | None:
    """The existing file or folder named by the scalar at the end of `steps`, or None."""
    if folder is None or len(steps) < 2:
        return None
    last = steps[-1]
    if last.key is None or not isinstance(last.node, ScalarNode):
        return None
    name = str(last.key.value)
    value = local_path(last.node.value)
    if value is None:
        return None
    keys = [str(s.key.value) for s in steps[1:] if s.key is not None]
    base = folder
    if name == "dockerfile_path":
        # Relative to the Docker build context (`build.path`), as Docker reads it.
        context = local_path(scalar(get(last.parent, "path")) or "") if isinstance(last.parent, MappingNode) else None
        if context is None:
            return None
        base = resolve(folder, context)
    elif name == "path":
        if not (set(keys[:-1]) & _PATH_PARENTS) and len(keys) > 1:
            return None
    elif name not in _PATH_KEYS:
        return None
    if name in ("component", "trial") and not value.strip().endswith((".yml", ".yaml")):
        return None
    path = resolve(base, value)
    return path if path.exists() else None
