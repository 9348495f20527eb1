"""Where a job's command runs: one strategy object per compute type, behind the interface in base.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mljob.runner.backends.base import Backend

if TYPE_CHECKING:
    from mljob.runner.plan import Plan


def backend_for(compute_type: str, plan: Plan | None = None) -> Backend:
    distributed = plan is not None and plan.distributed
    if compute_type == "ray":
        settings = dict(plan.compute_settings) if plan is not None else {}
        if distributed:
            from mljob.runner.backends.ray_group import RayGroupBackend

            return RayGroupBackend(str(settings.get("address", "")), settings, plan.distribution,  # type: ignore
                                   plan.instance_count)  # type: ignore[union-attr]
        from mljob.runner.backends.ray import RayBackend

        return RayBackend(str(settings.get("address", "")), settings)
    if compute_type == "process":
        if distributed:
            from mljob.runner.backends.process_group import ProcessGroupBackend

            return ProcessGroupBackend(plan.distribution, plan.instance_count)  # type: ignore[union-attr]
        from mljob.runner.backends.process import ProcessBackend

        return ProcessBackend()
    if distributed:
        from mljob.runner.backends.docker_group import DockerGroupBackend

        return DockerGroupBackend(plan.distribution, plan.instance_count)  # type: ignore[union-attr]
    from mljob.runner.backends.docker import DockerBackend

    return DockerBackend()


def reap(compute_type: str, facts: dict[str, str]) -> str:
    """Remove what a dead runner left behind for one run; returns what was done, for the user."""
    if compute_type == "sweep":  # its trials have entries of their own; the sweep itself holds nothing
        return f"its trials were cleaned up; `mljob job resume -n {facts.get('name')}` finishes the sweep"
    if compute_type == "ray":
        from mljob.runner.backends.ray import RayBackend

        return RayBackend.reap(facts)
    if compute_type == "process":
        from mljob.runner.backends.process_group import ProcessGroupBackend

        return ProcessGroupBackend.reap(facts)
    from mljob.runner.backends.docker_group import DockerGroupBackend

    return DockerGroupBackend.reap(facts)
