"""Where a job's command runs: one strategy object per compute type, behind the interface in base.py."""

from __future__ import annotations

from mljob.runner.backends.base import Backend


def backend_for(compute_type: str) -> Backend:
    if compute_type == "process":
        from mljob.runner.backends.process import ProcessBackend

        return ProcessBackend()
    from mljob.runner.backends.docker import DockerBackend

    return DockerBackend()


def reap(compute_type: str, facts: dict[str, str]) -> str:
    """Remove what a dead runner left behind for one run; returns what was done, for the user."""
    if compute_type == "sweep":  # its trials have entries of their own; the sweep itself holds nothing
        return f"its trials were cleaned up; `mljob job resume -n {facts.get('name')}` finishes the sweep"
    if compute_type == "process":
        from mljob.runner.backends.process import ProcessBackend

        return ProcessBackend.reap(facts)
    from mljob.runner.backends.docker import DockerBackend

    return DockerBackend.reap(facts)
