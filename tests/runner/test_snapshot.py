"""Code snapshot: .amlignore over .gitignore, git's pattern rules, nested ignore files; git facts recorded."""

from __future__ import annotations

import subprocess
from pathlib import Path

from mljob.runner.snapshot import copy_code, git_info


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _make(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_gitignore_rules(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make(src, {
        ".gitignore": "*.pyc\n/build/\ndata/**/*.csv\n!data/keep/important.csv\ncache/\n\\#hash\n",
        "train.py": "", "mod.pyc": "", "pkg/mod.pyc": "", "build/out.bin": "", "pkg/build/kept.txt": "",
        "data/a/b.csv": "", "data/keep/important.csv": "", "cache/x": "", "pkg/cache/y": "", "#hash": "",
        ".git/HEAD": "", "sub/.gitignore": "local.txt\n", "sub/local.txt": "", "local.txt": "",
    })
    copy_code(src, tmp_path / "snap")
    assert _tree(tmp_path / "snap") == {"train.py", "pkg/build/kept.txt", "data/keep/important.csv", "local.txt"}


def test_amlignore_wins_over_gitignore(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make(src, {".amlignore": "big/\n", ".gitignore": "*.py\n", "a.py": "", "big/x": ""})
    copy_code(src, tmp_path / "snap")
    assert _tree(tmp_path / "snap") == {"a.py"}


def test_git_facts_and_dirty_flag(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _make(repo, {"src/train.py": "print(1)\n"})

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@e", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@e", "-c", "user.name=t", "commit", "-qm", "one")
    git("remote", "add", "origin", "https://someone:secret@example.com/team/repo.git")
    clean = git_info(repo / "src")
    assert len(clean["mlflow.source.git.commit"]) == 40
    assert clean["mljob.git.dirty"] == "false"
    assert clean["mlflow.source.git.repoURL"] == "https://example.com/team/repo.git"  # no credentials kept
    (repo / "src" / "train.py").write_text("print(2)\n")
    assert git_info(repo / "src")["mljob.git.dirty"] == "true"
    assert git_info(tmp_path / "nowhere-near-git") == {}
    branch = subprocess.run(["git", "-C", str(repo), "branch", "--show-current"], capture_output=True, text=True)
    assert clean["mlflow.source.git.branch"] == branch.stdout.strip()
    git("checkout", "-q", "--detach")
    detached = git_info(repo / "src")
    assert detached["mlflow.source.git.branch"] == "HEAD"  # as `git rev-parse --abbrev-ref HEAD` says it
    assert detached["mlflow.source.git.commit"] == clean["mlflow.source.git.commit"]


def test_git_facts_of_a_repository_without_commits(tmp_path: Path) -> None:
    _make(tmp_path / "fresh", {"train.py": "print(1)\n"})
    subprocess.run(["git", "-C", str(tmp_path / "fresh"), "init", "-q"], check=True)
    assert git_info(tmp_path / "fresh") == {}  # nothing to name yet


def test_ignore_rules_apply_to_links_and_nested_folders(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _make(src, {".amlignore": "cache/\n*.log\n", "train.py": "", "real/a.py": "", "real/b.py": "",
                "real/run.log": "", "real/.amlignore": "a.py\n"})
    (src / "cache").symlink_to("real")  # a link to a folder counts as a folder for `cache/`
    (src / "linked.log").symlink_to("train.py")
    (src / "code").symlink_to("real")  # kept, as a link
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    copy_code(src, tmp_path / "snap")
    snap = tmp_path / "snap"
    assert {p.relative_to(snap).as_posix() for p in snap.rglob("*")} == {"train.py", "real", "real/b.py", "code"}
    assert (snap / "code").is_symlink() and (snap / "code" / "b.py").exists()
