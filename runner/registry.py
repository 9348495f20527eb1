"""Where named computes and environments are configured: small YAML files under the mljob home.

    $MLJOB_HOME/computes.yml       computes: {NAME: {type: local|process|ray, …}}
    $MLJOB_HOME/environments.yml   environments: {AZUREML_NAME: LOCAL_IMAGE}   # `azureml:` names
                                   images: {PUBLIC_IMAGE: LOCAL_IMAGE}         # when no registry is reachable

MLJOB_HOME defaults to ~/.mljob. The editor can point at other files (settings `computeRegistry`,
`environmentsFile`); the same functions read them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


def home() -> Path:
    return Path(os.environ.get("MLJOB_HOME") or Path.home() / ".mljob").expanduser()


def computes_file(override: Path | None = None) -> Path:
    return override or home() / "computes.yml"


def environments_file(override: Path | None = None) -> Path:
    return override or home() / "environments.yml"


@dataclass(frozen=True)
class Compute:
    name: str
    type: str  # "local" (Docker), "process", "ray"
    settings: dict[str, Any] = field(default_factory=dict)


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader)  # libyaml: read on every run
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def computes(path: Path | None = None) -> dict[str, Compute]:
    """Configured computes by name (the built-in `local` and `process` are always there)."""
    found = {"local": Compute("local", "local"), "process": Compute("process", "process")}
    raw = _load(computes_file(path)).get("computes") or {}
    if isinstance(raw, dict):
        for name, spec in raw.items():
            if isinstance(spec, dict) and isinstance(spec.get("type"), str):
                settings = {k: v for k, v in spec.items() if k != "type"}
                found[str(name)] = Compute(str(name), spec["type"], settings)
    return found


def environments(path: Path | None = None) -> dict[str, str]:
    """`azureml:` environment names (without version or label) → local image."""
    raw = _load(environments_file(path)).get("environments") or {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


def images(path: Path | None = None) -> dict[str, str]:
    """Public image names → local image, for machines that cannot pull."""
    raw = _load(environments_file(path)).get("images") or {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


COMPUTE_TYPES = ("local", "process", "ray")


def add_compute(name: str, type_: str, settings: dict[str, Any] | None = None, path: Path | None = None) -> Path:
    """Add or replace one named compute in the computes file (other entries and keys are kept); returns the file."""
    target = computes_file(path)
    data = _load(target)
    entries = data.get("computes")
    if not isinstance(entries, dict):
        entries = {}
    entries[name] = {"type": type_, **(settings or {})}
    data["computes"] = entries
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written beside, then renamed: a reader never sees half a file.
    partial = target.with_name(target.name + ".partial")
    partial.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    partial.replace(target)
    return target
