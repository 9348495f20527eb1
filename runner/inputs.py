"""Where a data input's bytes are on this machine: local paths, `file:` URIs, and http(s) URLs downloaded once.

Downloads are cached under $MLJOB_HOME/cache/downloads/ by URL, written beside and renamed when complete (an
interrupted download is never mistaken for a finished one), with progress.
"""

from __future__ import annotations

import hashlib
import stat
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from mljob.runner import copies, problems, registry

DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
LITERAL_TYPES = ("string", "integer", "number", "boolean")
# Schemes that name cloud storage or workspace assets: nothing on this machine can open them.
REMOTE_PREFIXES = ("azureml:", "wasb:", "wasbs:", "abfs:", "abfss:", "adl:", "s3:", "gs:", "hdfs:")
MODES = ("ro_mount", "rw_mount", "download", "direct", "upload", "eval_mount", "eval_download")


class Unreachable(Exception):
    """The input cannot be brought to this machine; the message says why and what to write instead."""


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def local_source(text: str, folder: Path) -> Path | None:
    """The local path a data input names (relative to the job's folder), or None for a URL."""
    if is_url(text):
        return None
    if text.lower().startswith(REMOTE_PREFIXES):
        raise Unreachable(f"`{text}` is in Azure storage or a workspace, which this machine cannot reach; "
                          "use a local path (relative to the job file) or an http(s) URL.")
    if text.startswith("file:"):
        parsed = urlparse(text)
        text = unquote(parsed.path if parsed.netloc in ("", "localhost") or text.startswith("file:///")
                       else parsed.netloc + parsed.path)
    path = Path(text).expanduser()
    return path if path.is_absolute() else (folder / path)


def cache_dir() -> Path:
    return registry.home() / "cache" / "downloads"


def download(url: str, progress: Callable[[str], None]) -> Path:
    """The cached copy of `url`, downloading it first if needed."""
    key = hashlib.sha256(url.encode()).hexdigest()[:24]
    name = Path(unquote(urlparse(url).path)).name or "download"
    target = cache_dir() / key / name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        import urllib.error  # not at the top: ~30 ms for runs that download nothing
        import urllib.request

        with urllib.request.urlopen(url, timeout=30) as response, partial.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            done = 0
            last = 0.0
            while chunk := response.read(1 << 16):
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - last > 0.5:
                    share = f" {100 * done // total}%" if total else ""
                    progress(f"downloading {url}:{share} {done / 2**20:.1f} MiB")
                    last = time.monotonic()
        partial.replace(target)
    except (urllib.error.URLError, OSError, ValueError) as err:
        partial.unlink(missing_ok=True)
        reason = getattr(err, "reason", None) or err
        raise Unreachable(f"cannot download {url} ({reason}); check the URL, or download it yourself and give "
                          "the local path.") from None
    progress(f"downloaded {url} ({target.stat().st_size / 2**20:.1f} MiB)")
    return target


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def copy_in(source: Path, destination: Path, progress: Callable[[str], None] | None = None) -> Path:
    """A private copy of an input (mode `download`; `destination` is named after the input) that the job may change
    without touching the original, by the copy policy (runner/copies.py). An input that is not a regular file or a
    folder (a device such as /dev/zero, a named pipe) is refused before anything is read."""
    name = destination.name
    progress = progress or _stderr
    try:
        mode = source.stat().st_mode
    except OSError as err:
        raise problems.plain(source, problems.INPUT_MISSING, f"input `{name}`: cannot read {source} "
                             f"({err.strerror}).") from None
    kind = copies.special_kind(mode)
    if kind:
        raise problems.plain(source, problems.INPUT_UNREACHABLE, f"input `{name}`: {source} is {kind}, not a file "
                             "or a folder, and `mode: download` copies only those. Read it in place with "
                             "`mode: ro_mount`, or give a file or a folder.")
    options = dict(limit_bytes=copies.limit(copies.INPUT_LIMIT), what=f"input `{name}`", progress=progress,
                   code=problems.INPUT_UNREACHABLE, advice="Read it in place with `mode: ro_mount` (no copy)")
    if stat.S_ISDIR(mode):
        copies.copy_tree(source, destination, **options)  # type: ignore[arg-type]
        return destination
    target = destination / source.name
    copies.copy_file(source, target, **options)  # type: ignore[arg-type]
    return target
