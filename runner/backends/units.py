"""A distributed layout → the programs each instance starts (units), for the group backends.

For pytorch, tensorflow and no distribution every process is a unit: the job's command with its rank's variables,
its output in user_logs/std_log_process_RANK.txt. For mpi an instance runs one unit: mpirun (instance 0, with the
command as the program of every rank) or the launch server (the others). A unit marked `main` decides the run's end:
when the mpirun ends, the servers are stopped; without mpi every unit is main, and the run ends when all have ended,
or when the first fails (the others are stopped: one failing rank fails the job).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mljob.runner.distribute import Layout, launch_argv, layout_for, log_name


@dataclass(frozen=True)
class Unit:
    instance: int
    argv: list[str]
    env: dict[str, str]
    log: str  # file name under user_logs/
    main: bool = True
    ranks: list[int] = field(default_factory=list)


def units(layout: Layout, shell: list[str], command: str) -> list[Unit]:
    found: list[Unit] = []
    for instance in layout.instances:
        if instance.launcher is None:
            found += [Unit(instance.index, [*shell, command], dict(p.env), log_name(p.rank), True, [p.rank])
                      for p in instance.procs]
            continue
        argv = launch_argv(instance, [*shell, command])
        if not argv:
            continue  # same machine as instance 0: its mpirun starts these ranks
        if instance.index == 0:
            ranks = [p.rank for p in layout.procs()]
            found.append(Unit(0, argv, {}, log_name(0), True, ranks))
        else:
            found.append(Unit(instance.index, argv, {}, f"rsh_server_{instance.index}.txt", False, []))
    return found


def layout_of(distribution: dict[str, Any] | None, instance_count: int, environment_variables: dict[str, str],
              hosts: list[str] | None, master_port: int, **options: Any) -> Layout:
    data: dict[str, Any] = {"resources": {"instance_count": instance_count},
                            "environment_variables": environment_variables}
    if distribution:
        data["distribution"] = distribution
    return layout_for(data, hosts, master_port, **options)
