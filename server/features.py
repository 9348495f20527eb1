"""What every feature function gets besides the document: the settings and the cache generation."""

from __future__ import annotations

from dataclasses import dataclass

from mljob.server.settings import ServerSettings


@dataclass(frozen=True)
class FeatureContext:
    settings: ServerSettings
    generation: int = 0
