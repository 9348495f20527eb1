"""`mljob compute create|list` (the compute registry's verbs) and `mljob ui` (the MLflow UI on the run history)."""

from __future__ import annotations

import os
import shutil
import sys
from importlib import metadata
from pathlib import Path

import yaml
from mljob.runner import names, problems, registry
from mljob.runner.history import default_store, tracking_uri


def create(name: str, type_: str, settings: list[str]) -> int:
    if not names.is_valid(name):
        raise problems.plain(None, problems.BAD_NAME, f"`{name}` is not a compute name: use letters, digits, `_` "
                             "and `-`.")
    if name in ("local", "process"):
        raise problems.plain(None, problems.BAD_NAME, f"`{name}` is built in; choose another name.")
    parsed: dict[str, object] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise problems.plain(None, problems.BAD_NAME, f"`--set {item}` is not KEY=VALUE.")
        parsed[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    if type_ == "ray" and not str(parsed.get("address") or "").startswith(("http://", "https://")):
        raise problems.plain(None, problems.BAD_NAME, "a ray compute needs the address of its dashboard: "
                             "`--address http://HOST:8265` (`scripts/ray-head` starts a head on this machine and "
                             "prints it).")
    path = registry.add_compute(name, type_, parsed)
    print(f"compute {name} ({type_}) saved in {path}; jobs use it with `compute: azureml:{name}`")
    return 0


def list_computes() -> int:
    found = registry.computes()
    width = max(len(n) for n in found)
    for compute in found.values():
        extra = " ".join(f"{k}={v}" for k, v in compute.settings.items())
        print(f"{compute.name.ljust(width)}  {compute.type:<8} {extra}".rstrip())
    print(f"(from {registry.computes_file()})", file=sys.stderr)
    return 0


def ui(port: int) -> int:
    """Start MLflow's own UI on the history. The UI ships with the full `mlflow` package, not with mlflow-skinny."""
    uri = tracking_uri()
    mlflow = shutil.which("mlflow", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    try:
        import mlflow.server as server

        has_ui = (Path(server.__file__).parent / "js" / "build").is_dir()
    except ImportError:
        has_ui = False
    if mlflow is None or not has_ui:
        version = metadata.version("mlflow-skinny")
        print(f"The MLflow UI is in the full `mlflow` package; install it beside mljob, then run this again:\n"
              f"  {sys.executable} -m pip install mlflow=={version}\n"
              f"or run it from anywhere:  mlflow ui --backend-store-uri {uri} --port {port}", file=sys.stderr)
        return 1
    print(f"MLflow UI on http://127.0.0.1:{port} for {uri} (Ctrl-C stops it)", file=sys.stderr)
    args = [mlflow, "ui", "--backend-store-uri", uri, "--port", str(port)]
    if uri.startswith("sqlite:"):
        args += ["--default-artifact-root", (default_store() / "artifacts").as_uri()]
    os.execv(mlflow, args)
    return 0
