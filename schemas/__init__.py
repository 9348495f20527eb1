"""Bundled JSON Schemas for job files and the catalog that maps `$schema` URLs to them.

Everything here is read from the package's own files: a schema is never fetched from the network.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

_HERE = Path(__file__).parent  # the schemas ship as plain files beside this module (package data)

Schema = dict[str, Any]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    kind: str  # e.g. "commandJob"
    file: str  # bundled file name
    title: str
    job: str | None  # the job `type` this schema describes ("command", "sweep", …); None for components/assets

    @property
    def url(self) -> str:
        """The canonical `$schema` URL for this kind (what completion offers)."""
        if self.kind == "autoMLJob":
            return "https://azuremlsdk2.blob.core.windows.net/preview/0.0.1/autoMLJob.schema.json"
        if self.kind in ("Run", "Flow"):
            return f"https://azuremlschemas.azureedge.net/promptflow/latest/{self.kind}.schema.json"
        return f"https://azuremlschemas.azureedge.net/latest/{self.kind}.schema.json"


def _read_text(name: str) -> str:
    return (_HERE / name).read_text(encoding="utf-8")


@cache
def catalog() -> tuple[list[re.Pattern[str]], dict[str, CatalogEntry]]:
    raw = json.loads(_read_text("catalog.json"))
    patterns = [re.compile(p) for p in raw["patterns"]]
    entries = {
        e["kind"]: CatalogEntry(kind=e["kind"], file=e["file"], title=e["title"], job=e.get("job"))
        for e in raw["schemas"]
    }
    return patterns, entries


def entries() -> list[CatalogEntry]:
    return list(catalog()[1].values())


def lookup_url(url: str) -> CatalogEntry | None:
    """The bundled schema for a `$schema` URL (latest, versioned and preview-blob forms), or None."""
    patterns, by_kind = catalog()
    url = url.strip()
    for pattern in patterns:
        match = pattern.match(url)
        if match:
            kind = match.group("kind")
            entry = by_kind.get(kind)
            if entry is None:
                # Case differences seen in the wild (`CommandJob.schema.json`).
                entry = next((e for k, e in by_kind.items() if k.lower() == kind.lower()), None)
            return entry
    return None


def entry_for_job_type(job_type: str) -> CatalogEntry | None:
    """The schema of a job `type` value (`command`, `sweep`, 2021 `sweep_job`, …)."""
    job_type = {"sweep_job": "sweep", "command_job": "command"}.get(job_type, job_type)
    return next((e for e in entries() if e.job == job_type), None)


@cache
def load(file: str) -> Schema:
    """A bundled schema by file name, parsed once per process."""
    return json.loads(_read_text(file))


def bundled_files() -> list[str]:
    return sorted(p.name for p in _HERE.iterdir() if p.name.endswith(".schema.json"))


MAX_LOCAL_SCHEMA_BYTES = 4 * 1024 * 1024


def load_local(path: Path) -> Schema:
    """A user's own schema file (relative or absolute `$schema`, or the yaml-language-server modeline)."""
    if not path.is_file():
        # A folder, a FIFO or /dev/zero named as a schema must not hang the editor.
        raise OSError(f"{path} is not a regular file")
    with path.open("rb") as handle:
        data = handle.read(MAX_LOCAL_SCHEMA_BYTES + 1)
    if len(data) > MAX_LOCAL_SCHEMA_BYTES:
        raise ValueError(f"{path} is larger than {MAX_LOCAL_SCHEMA_BYTES // (1024 * 1024)} MiB")
    return json.loads(data.decode("utf-8"))
