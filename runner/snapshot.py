"""The code snapshot: a copy of the job's `code` folder that the job runs in, so that edits during a run change nothing.

Ignore files are honoured as Azure ML does: `.amlignore` where a folder has one, else its `.gitignore` (git's pattern
syntax: `!` negation, trailing `/` for folders, `/` anchoring, `*`, `?`, `**`, `[…]`). `.git` is never copied.
The copy itself follows mljob's copy policy (runner/copies.py): no links out of the folder, no special files, sparse
files kept sparse, a size limit.
The run records where the code came from: git remote, commit, branch, and whether the tree was dirty.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mljob.runner import copies, problems

IGNORE_FILES = (".amlignore", ".gitignore")
_ALWAYS_SKIPPED = {".git"}


@dataclass(frozen=True)
class _Rule:
    regex: re.Pattern[str]
    negated: bool
    folders_only: bool


def _translate(pattern: str) -> str:
    """A gitignore glob (without `!` and trailing `/`) as a regex over a path relative to the ignore file's folder."""
    anchored = "/" in pattern.rstrip("/")
    pattern = pattern.lstrip("/")
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    body = "".join(out)
    return f"^{body}$" if anchored else f"^(?:.*/)?{body}$"


def parse_ignore(text: str) -> list[_Rule]:
    rules: list[_Rule] = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        if negated:
            line = line[1:]
        if line.startswith("\\"):
            line = line[1:]
        folders_only = line.endswith("/")
        line = line.rstrip("/")
        if line:
            rules.append(_Rule(re.compile(_translate(line)), negated, folders_only))
    return rules


def _ignored(rules: list[tuple[str, list[_Rule]]], relative: str, is_dir: bool) -> bool:
    """Git's rule: the last matching pattern wins; patterns of a folder's ignore file apply below that folder."""
    verdict = False
    for base, base_rules in rules:
        if base and not relative.startswith(base + "/"):
            continue
        local = relative[len(base) + 1:] if base else relative
        for rule in base_rules:
            if rule.folders_only and not is_dir:
                continue
            if rule.regex.match(local):
                verdict = not rule.negated
    return verdict


def _rules_in(folder: Path) -> list[_Rule] | None:
    for name in IGNORE_FILES:
        candidate = folder / name
        if candidate.is_file():
            try:
                return parse_ignore(candidate.read_text(encoding="utf-8", errors="replace"))
            except OSError:
                return None
    return None


class _Ignored:
    """`copies.copy_tree`'s `ignore` for a code folder: `.git`, the ignore files themselves, and what their rules
    leave out (each folder's ignore file read once, when the walk first reaches something in it)."""

    def __init__(self, source: Path) -> None:
        self.source = source
        self.found: dict[str, list[_Rule] | None] = {}

    def __call__(self, relative: str, is_dir: bool) -> bool:
        folder, _, name = relative.rpartition("/")
        if name in _ALWAYS_SKIPPED or (not is_dir and name in IGNORE_FILES):
            return True
        rules: list[tuple[str, list[_Rule]]] = []
        parts = folder.split("/") if folder else []
        for depth in range(len(parts) + 1):
            base = "/".join(parts[:depth])
            if base not in self.found:
                self.found[base] = _rules_in(self.source / base if base else self.source)
            if self.found[base]:
                rules.append((base, self.found[base]))  # type: ignore[arg-type]
        return _ignored(rules, relative, is_dir)


def copy_code(source: Path, destination: Path, progress: Callable[[str], None] | None = None) -> copies.CopyStats:
    """Copy `source` into `destination` (which must not exist), skipping ignored files, by the copy policy
    (runner/copies.py): links inside stay links, links out and special files are skipped with a message, sparse
    files stay sparse, and a snapshot larger than the limit stops with nothing left behind."""
    if destination.exists():
        raise FileExistsError(destination)
    if source.resolve() == Path("/"):
        raise problems.plain(source, problems.NOT_RUNNABLE, "code `/` is the whole file system, which a run "
                             "cannot copy; give the folder of the job's code (`code: .` or `code: src`).")
    options = dict(limit_bytes=copies.limit(copies.SNAPSHOT_LIMIT), what="code snapshot", progress=progress,
                   advice="Leave big files out with .amlignore (or .gitignore) in the code folder")
    if source.is_dir():
        return copies.copy_tree(source, destination, ignore=_Ignored(source), **options)  # type: ignore[arg-type]
    mode = source.stat().st_mode
    kind = copies.special_kind(mode)
    if kind:
        raise problems.plain(source, problems.NOT_RUNNABLE, f"code `{source}` is {kind}, not a folder or a file; "
                             "give the folder of the job's code.")
    return copies.copy_file(source, destination / source.name, **options)  # type: ignore[arg-type]


def git_info(folder: Path) -> dict[str, str]:
    """Tags naming the code's origin (MLflow's own keys where it has them); empty outside a git work tree."""
    return start_git_info(folder)()


def start_git_info(folder: Path) -> Callable[[], dict[str, str]]:
    """Starts the git calls for `git_info` and returns what waits for their answer, so the caller can work meanwhile.

    Two git calls, run at once (one `status --porcelain=v2 --branch` gives the commit, the branch and whether the tree
    is dirty): every job pays for these before its container starts.
    """
    def spawn(*args: str) -> subprocess.Popen[str] | None:
        try:
            return subprocess.Popen(["git", "--no-optional-locks", "-C", str(folder), *args], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return None

    def result(proc: subprocess.Popen[str] | None) -> str | None:
        if proc is None:
            return None
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.SubprocessError:
            proc.kill()
            proc.communicate()
            return None
        return out if proc.returncode == 0 else None

    status_proc = spawn("status", "--porcelain=v2", "--branch")
    remote_proc = spawn("remote", "get-url", "origin")
    return lambda: _git_tags(result(status_proc), result(remote_proc))


def _git_tags(status: str | None, remote: str | None) -> dict[str, str]:
    if status is None:
        return {}
    headers = dict(line[2:].split(" ", 1) for line in status.splitlines() if line.startswith("# ") and " " in line[2:])
    commit = headers.get("branch.oid", "(initial)")
    if commit == "(initial)":
        return {}
    tags = {"mlflow.source.git.commit": commit}
    branch = headers.get("branch.head", "")
    if branch:
        tags["mlflow.source.git.branch"] = "HEAD" if branch == "(detached)" else branch
    if remote and remote.strip():
        tags["mlflow.source.git.repoURL"] = _without_credentials(remote.strip())
    tags["mljob.git.dirty"] = "true" if any(not line.startswith("#") for line in status.splitlines()) else "false"
    return tags


def _without_credentials(url: str) -> str:
    # A remote such as https://user:token@host/repo must not end up in the run history.
    return re.sub(r"^(\w+://)[^/@]+@", r"\1", url)
