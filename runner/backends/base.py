"""The interface every backend implements. A backend knows where things appear to the command and how to start,
watch, stop and always clean up one run; it knows nothing about job files or the run history."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Mount:
    host: Path
    target: str  # the path the command sees
    read_only: bool


@dataclass
class Launch:
    """One resolved run: the command is final (expressions replaced and quoted)."""

    name: str
    command: str
    workdir: Path  # on the host: the code snapshot
    env: dict[str, str]
    mounts: list[Mount] = field(default_factory=list)
    image: str | None = None
    shm_size: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


class Backend(ABC):
    kind: str

    def prepare(self, environment: Any, job_folder: Path, progress: Callable[[str], None]) -> str | None:
        """Make the environment ready (an image for containers); returns its name, or None."""
        return None

    @abstractmethod
    def workdir_path(self, host: Path) -> str: ...

    @abstractmethod
    def input_path(self, name: str, host: Path) -> str: ...

    @abstractmethod
    def output_path(self, name: str, host: Path) -> str: ...

    @abstractmethod
    def start(self, launch: Launch) -> dict[str, str]:
        """Start the command; returns facts that let a later mljob call clean up if this runner dies."""

    @abstractmethod
    def output(self) -> Iterator[bytes]:
        """stdout and stderr, interleaved, until the command ends."""

    @abstractmethod
    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after `timeout` seconds."""

    @abstractmethod
    def stop(self) -> None:
        """Ask the command to end (SIGTERM), then make it end."""

    @abstractmethod
    def remove(self) -> None:
        """Release everything the run holds; called on every path out, more than once is fine."""

    @staticmethod
    @abstractmethod
    def reap(facts: dict[str, str]) -> str:
        """Clean up after a runner that died (facts are what `start` returned)."""
