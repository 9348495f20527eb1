"""What the editor can configure (`workspace/configuration`, section `mljob`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mljob.runner.validate import Settings


@dataclass(frozen=True)
class ServerSettings:
    disabled_rules: frozenset[str] = frozenset()  # diagnostic codes the user turned off
    compute_registry: Path | None = None  # where named computes are configured (the runner's registry file)
    environments_file: Path | None = None  # maps `azureml:` environment names to local images

    @staticmethod
    def from_client(raw: Any) -> ServerSettings:
        if not isinstance(raw, dict):
            return ServerSettings()
        disabled = raw.get("disabledRules") or []
        registry = raw.get("computeRegistry")
        environments = raw.get("environmentsFile")
        return ServerSettings(
            disabled_rules=frozenset(str(c) for c in disabled if isinstance(c, str)),
            compute_registry=Path(registry).expanduser() if isinstance(registry, str) and registry else None,
            environments_file=Path(environments).expanduser() if isinstance(environments, str) and environments
            else None,
        )

    def validation(self) -> Settings:
        return Settings(disabled_codes=self.disabled_rules)
