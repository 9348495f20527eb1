"""`mljob compute create|list` (the compute registry's verbs), `mljob ui` and `mljob tracking` (the run history's
tracking server and its UI)."""

from __future__ import annotations

import sys

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


def ui() -> int:
    """The MLflow UI on the run history: mljob's tracking server serves it (started here when it is not running)."""
    from mljob.runner import tracking

    uri = tracking_uri()
    if not tracking.is_own_store(uri):
        if uri.startswith(("http://", "https://")):
            print(f"MLFLOW_TRACKING_URI names a tracking server; its UI is at {uri}")
            return 0
        print(f"mljob's tracking server serves mljob's own store; MLFLOW_TRACKING_URI names another ({uri}). For "
              f"that one: mlflow ui --backend-store-uri {uri}   (or unset MLFLOW_TRACKING_URI)", file=sys.stderr)
        return 1
    server = tracking.ensure()
    print("waking mljob's tracking server (MLflow's own; about 10 s the first time) …", file=sys.stderr, flush=True)
    if not tracking.wait_ready(server):
        print(f"the tracking server did not answer; its log: {default_store() / 'server.log'}", file=sys.stderr)
        return 1
    print(f"MLflow UI: {server.url}/\n(for your user on this machine; it stays up for your jobs: "
          "`mljob tracking stop` stops it)")
    return 0


def tracking_verb(action: str) -> int:
    """`mljob tracking status|stop`: the store's tracking server."""
    from mljob.runner import tracking

    if action == "stop":
        stopped = tracking.stop()
        print(f"stopped the tracking server (pid {stopped.pid}, {stopped.url})" if stopped
              else "no tracking server is running for this store")
        return 0
    server = tracking.running()
    if server is None:
        print(f"no tracking server is running for {default_store()} (the next job or `mljob ui` starts one)")
        return 0
    print(f"tracking server: {server.url}  (pid {server.pid}; store {default_store()})")
    return 0
