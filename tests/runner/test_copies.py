"""Copies have a policy (issue 17, findings 3 and 5): the code snapshot, `download` inputs and the saved artifacts
never follow a link out of their root (links inside stay links), skip special files with a message instead of
reading them, keep sparse files sparse, and stop at a size limit with a clear reason, leaving nothing behind."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from mljob.runner import copies, history_base, inputs, snapshot
from mljob.runner.problems import RunError

from tests.runner.conftest import Mljob
from tests.runner.helpers import history, run_name

GiB = 2**30


def _sparse(path: Path, size: int = GiB) -> None:
    """A file of apparent size `size` holding two short runs of data (at the start and in the middle)."""
    with path.open("wb") as out:
        out.write(b"head")
        out.seek(size // 2)
        out.write(b"middle")
        out.truncate(size)


def _allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def _device(path: Path) -> None:
    """A character device like /dev/zero (endless zeros when read)."""
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))


def _names(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _content_under(root: Path) -> bytes:
    """Every regular file's bytes under `root` (links are not followed), concatenated."""
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink())


# --- runner/copies.py: the policy itself -------------------------------------------------------------------------


def _copy(src: Path, dest: Path, limit: int = GiB, **options: object) -> copies.CopyStats:
    return copies.copy_tree(src, dest, limit_bytes=limit, what="test copy", **options)  # type: ignore[arg-type]


def test_links_inside_are_kept_as_relative_links(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "data.txt").write_text("data\n")
    (src / "a" / "b" / "rel").symlink_to("../../data.txt")
    (src / "a" / "abs").symlink_to(src / "data.txt")
    (src / "a" / "folder").symlink_to(src / "a" / "b")
    (src / "chain").symlink_to("a/abs")  # a link to a link inside: still inside
    stats = _copy(src, tmp_path / "dest")
    dest = tmp_path / "dest"
    assert os.readlink(dest / "a" / "b" / "rel") == "../../data.txt"
    assert os.readlink(dest / "a" / "abs") == "../data.txt"
    assert os.readlink(dest / "a" / "folder") == "b"
    assert os.readlink(dest / "chain") == "data.txt"
    assert (dest / "a" / "b" / "rel").read_text() == (dest / "chain").read_text() == "data\n"
    assert stats.links == 4 and stats.files == 1 and stats.skipped == []


def test_links_out_dangling_and_looping_are_skipped_and_reported(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("secret\n")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "kept.txt").write_text("kept\n")
    (src / "out").symlink_to(tmp_path / "secret")
    (src / "up").symlink_to("../secret")
    (src / "parent").symlink_to("..")
    (src / "loop").symlink_to(".")
    (src / "sub" / "back").symlink_to("..")
    (src / "dangling").symlink_to("missing")
    (src / "cycle1").symlink_to("cycle2")
    (src / "cycle2").symlink_to("cycle1")
    said: list[str] = []
    stats = _copy(src, tmp_path / "dest", progress=said.append)
    assert _names(tmp_path / "dest") == {"kept.txt", "sub"}
    why = dict(stats.skipped)
    assert set(why) == {"out", "up", "parent", "loop", "sub/back", "dangling", "cycle1", "cycle2"}
    assert "outside" in why["out"] and "outside" in why["up"] and "outside" in why["parent"]
    assert "loop" in why["loop"] and "loop" in why["sub/back"]
    assert "nowhere" in why["dangling"] and "nowhere" in why["cycle1"]
    assert len(said) == len(why) and all(line.startswith("test copy: skipped ") for line in said)


def test_special_files_are_skipped_without_being_opened(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "fifo")  # opening it for reading would wait for a writer forever
    _device(src / "zero")  # reading it would never end
    (src / "ok.txt").write_text("ok\n")
    done: list[copies.CopyStats] = []
    worker = threading.Thread(target=lambda: done.append(_copy(src, tmp_path / "dest")), daemon=True)
    worker.start()
    worker.join(10)
    assert done, "the copy blocked on a special file"
    assert dict(done[0].skipped) == {"fifo": "a named pipe (FIFO), not a regular file",
                                     "zero": "a character device, not a regular file"}
    assert _names(tmp_path / "dest") == {"ok.txt"}
    with pytest.raises(copies.CopyError):  # one file asked for by name: refused as well, not read
        copies.copy_file(Path("/dev/zero"), tmp_path / "one" / "zero", limit_bytes=GiB, what="test copy")
    assert not (tmp_path / "one").exists()


def test_sparse_files_stay_sparse(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _sparse(src / "disk.img")
    (src / "empty").write_bytes(b"")
    hole_only = src / "holes"
    with hole_only.open("wb") as out:
        out.truncate(GiB)
    stats = _copy(src, tmp_path / "dest", limit=2**20)  # far below the apparent size: holes do not count
    dest = tmp_path / "dest"
    assert stats.bytes <= 2 * 64 * 1024  # the two runs of data, in the file system's blocks
    for name in ("disk.img", "holes"):
        assert (dest / name).stat().st_size == GiB and _allocated(dest / name) < 2**20
    assert (dest / "empty").stat().st_size == 0
    with (dest / "disk.img").open("rb") as got:
        assert got.read(4) == b"head"
        got.seek(GiB // 2 - 3)
        assert got.read(9) == b"\0\0\0middle"


def test_the_limit_stops_the_copy_and_leaves_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "deep" / "er").mkdir(parents=True)
    (src / "a.bin").write_bytes(b"a" * 3000)
    (src / "deep" / "er" / "b.bin").write_bytes(b"b" * 3000)
    dest = tmp_path / "existing" / "new" / "dest"
    (tmp_path / "existing").mkdir()
    with pytest.raises(copies.CopyError) as caught:
        copies.copy_tree(src, dest, limit_bytes=5000, what="test copy", advice="Copy less")
    message = str(caught.value)
    assert message.startswith(f"{src}: error MLJ402: test copy: stopped at {src / 'deep/er/b.bin'}")
    assert "limit of 4.9 KiB" in message and "Copy less, or raise the limit (MLJOB_COPY_LIMIT=" in message
    assert list((tmp_path / "existing").iterdir()) == []  # the folders it made are gone too, not what was there


def test_the_limit_also_holds_for_one_big_file(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom(3 * 2**20))
    with pytest.raises(copies.CopyError):
        copies.copy_file(tmp_path / "big", tmp_path / "out" / "big", limit_bytes=2**20, what="test copy")
    assert not (tmp_path / "out").exists()


def test_an_interrupted_copy_removes_what_it_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cancel arrives as an exception raised in the middle of the copy (execute.py's signal handler)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"{i}.txt").write_text("x" * 100)
    monkeypatch.setattr(copies, "PROGRESS_EVERY", 0.0)

    def cancel(message: str) -> None:
        if "so far" in message and "3 files" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _copy(src, tmp_path / "dest", progress=cancel)
    assert not (tmp_path / "dest").exists()


def test_an_existing_destination_is_merged_and_its_links_not_written_through(tmp_path: Path) -> None:
    """As the live copy of ./logs does every few seconds: files replaced, a link at a file's place replaced, never
    followed."""
    (tmp_path / "victim").write_text("untouched\n")
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "log.txt").write_text("new\n")
    (src / "sub" / "x").write_text("x\n")
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "log.txt").symlink_to(tmp_path / "victim")
    (dest / "sub").symlink_to(tmp_path)
    (dest / "other.txt").write_text("other\n")
    _copy(src, dest)
    assert (tmp_path / "victim").read_text() == "untouched\n" and not (tmp_path / "x").exists()
    assert not (dest / "log.txt").is_symlink() and (dest / "log.txt").read_text() == "new\n"
    assert (dest / "sub" / "x").read_text() == "x\n" and (dest / "other.txt").exists()


def test_a_root_that_is_a_link_is_not_followed_when_asked(tmp_path: Path) -> None:
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret").write_text("secret\n")
    (tmp_path / "outputs").symlink_to(tmp_path / "host")
    stats = _copy(tmp_path / "outputs", tmp_path / "dest", follow_root=False)
    assert stats.skipped == [("", "a link, not a folder")] and not (tmp_path / "dest").exists()


def test_the_limit_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert copies.parse_size("50G") == 50 * GiB and copies.parse_size("800m") == 800 * 2**20
    assert copies.parse_size("1.5GiB") == 3 * GiB // 2 and copies.parse_size("4096") == 4096
    monkeypatch.delenv("MLJOB_COPY_LIMIT", raising=False)
    assert copies.limit(123) == 123
    monkeypatch.setenv("MLJOB_COPY_LIMIT", "2T")
    assert copies.limit(123) == 2 * 1024 * GiB
    for wrong in ("lots", "0", "-1G", "5X"):
        monkeypatch.setenv("MLJOB_COPY_LIMIT", wrong)
        with pytest.raises(RunError, match="MLJOB_COPY_LIMIT=.* is not a size"):
            copies.limit(123)


def test_listing_follows_the_same_rules(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "b.txt").write_text("bb")
    (root / "sub" / "a.txt").write_text("a")
    (root / "link.txt").symlink_to("b.txt")
    (root / "loop").symlink_to(".")
    (root / "out").symlink_to("/etc/hostname")
    os.mkfifo(root / "fifo")
    assert list(copies.listing(root)) == [("b.txt", 2), ("link.txt", 2), ("sub/a.txt", 1)]


# --- finding 3: links out of the root ---------------------------------------------------------------------------


def test_snapshot_skips_links_out_and_keeps_links_inside(tmp_path: Path) -> None:
    """Also the guard against a snapshot that follows links (`follow_symlinks=True`): the host file must not arrive."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "train.py").write_text("print(1)\n")
    (src / "pkg" / "mod.py").write_text("x = 1\n")
    (src / "alias.py").symlink_to("train.py")
    (src / "lib").symlink_to("pkg")
    (src / "pkg" / "up.py").symlink_to(src / "train.py")  # absolute, but inside
    (src / "leak").symlink_to(secret)
    (src / "etc").symlink_to("/etc/hostname")
    (src / "dangling").symlink_to("nowhere")
    snap = tmp_path / "snap"
    snapshot.copy_code(src, snap)
    assert os.readlink(snap / "alias.py") == "train.py"
    assert os.readlink(snap / "lib") == "pkg"
    assert os.readlink(snap / "pkg" / "up.py") == "../train.py"  # made relative: it still works in the copy
    assert (snap / "pkg" / "up.py").read_text() == "print(1)\n"
    for gone in ("leak", "etc", "dangling"):
        assert not os.path.lexists(snap / gone), gone
    assert b"host secret" not in _content_under(snap)


def test_artifacts_skip_links_out_and_do_not_loop(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "model.bin").write_bytes(os.urandom(1 << 20))
    (outputs / "leak").symlink_to(secret)
    (outputs / "loop").symlink_to(".")
    folder = tmp_path / "artifacts"
    history_base.copy_in(folder, outputs, "outputs")
    saved = folder / "outputs"
    assert not os.path.lexists(saved / "leak")
    assert b"host secret" not in _content_under(folder)
    assert sum(p.stat().st_size for p in saved.rglob("*") if p.is_file() and not p.is_symlink()) == 1 << 20
    assert [path for path, _ in history_base.list_local(folder)] == ["outputs/model.bin"]
    got = history_base.copy_out(folder, "outputs", tmp_path / "dl", "run")
    assert not os.path.lexists(got / "leak")
    assert sum(p.stat().st_size for p in got.rglob("*") if p.is_file() and not p.is_symlink()) == 1 << 20


def test_artifacts_for_an_uploading_store_are_staged_by_the_same_policy(tmp_path: Path) -> None:
    """MLflow's client (a store elsewhere) reads through links: it is given a copy made by the policy instead."""
    (tmp_path / "secret.txt").write_text("host secret\n")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    (outputs / "model.txt").write_text("weights")
    (outputs / "leak").symlink_to(tmp_path / "secret.txt")
    os.mkfifo(outputs / "pipe")
    with history_base.staged(outputs, "outputs") as ready:
        assert _names(ready) == {"model.txt"}
    (tmp_path / "one.txt").write_text("one")
    with history_base.staged(tmp_path / "one.txt", "user_logs") as ready:
        assert ready.name == "one.txt" and ready.read_text() == "one"
    with history_base.staged(tmp_path / "missing", "gone") as ready:
        assert not ready.exists()


def test_process_job_cannot_save_a_host_file_through_a_link(mljob: Mljob, write_job, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    job = write_job(f"""\
        command: >-
          ln -s {secret} outputs/leak && ln -s /etc/hostname outputs/host && ln -s . outputs/loop &&
          head -c 1048576 /dev/urandom > outputs/data.bin && echo saved
        compute: process
        environment:
          image: python
        """)
    done = mljob("run", str(job))
    assert done.returncode == 0, done.stdout + done.stderr
    name = run_name(done.stdout)
    view = history().find(name)
    files = dict(history().artifacts(view.run_id))
    assert "outputs/data.bin" in files and not {"outputs/leak", "outputs/host"} & set(files)
    assert sum(size or 0 for path, size in files.items() if path.startswith("outputs/")) == 1 << 20  # no loop
    assert "skipped leak" in done.stderr and "outside" in done.stderr  # said, not silently dropped
    got = mljob("job", "download", "-n", name, "--outputs", "--download-path", str(tmp_path / "dl"))
    assert got.returncode == 0, got.stderr
    downloaded = tmp_path / "dl" / "artifacts" / "outputs"
    assert (downloaded / "data.bin").stat().st_size == 1 << 20
    assert not os.path.lexists(downloaded / "leak") and not os.path.lexists(downloaded / "host")
    assert b"host secret" not in _content_under(tmp_path / "dl")


# --- finding 5: special files, sparse files, sizes -----------------------------------------------------------------


def test_snapshot_skips_special_files_with_a_message(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print(1)\n")
    os.mkfifo(src / "pipe")
    _device(src / "zero")
    said: list[str] = []
    snapshot.copy_code(src, tmp_path / "snap", said.append)
    assert _names(tmp_path / "snap") == {"train.py"}
    text = "\n".join(said)
    assert "pipe" in text and "zero" in text and "skipped" in text


def test_snapshot_keeps_sparse_files_sparse(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _sparse(src / "disk.img")
    snapshot.copy_code(src, tmp_path / "snap")
    copy = tmp_path / "snap" / "disk.img"
    assert copy.stat().st_size == GiB
    assert _allocated(copy) < 2**20  # not a dense gibibyte
    with copy.open("rb") as got:
        assert got.read(4) == b"head"
        got.seek(GiB // 2)
        assert got.read(6) == b"middle"


def test_snapshot_stops_at_the_limit_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLJOB_COPY_LIMIT", "1M")
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.bin").write_bytes(b"a" * 700_000)
    (src / "b.bin").write_bytes(b"b" * 700_000)
    with pytest.raises(RunError) as caught:
        snapshot.copy_code(src, tmp_path / "snap")
    message = str(caught.value)
    assert str(src) in message and "MLJOB_COPY_LIMIT" in message and ".amlignore" in message
    assert not (tmp_path / "snap").exists()


def test_download_input_refuses_special_files_and_keeps_sparse(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    for special in (Path("/dev/zero"), tmp_path / "pipe"):
        with pytest.raises(RunError) as caught:
            inputs.copy_in(special, tmp_path / "inputs" / "data")
        assert "input `data`" in str(caught.value) and str(special) in str(caught.value)
    assert not (tmp_path / "inputs" / "data").exists()
    _sparse(tmp_path / "disk.img")
    copied = inputs.copy_in(tmp_path / "disk.img", tmp_path / "inputs" / "img")
    assert copied.stat().st_size == GiB and _allocated(copied) < 2**20
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    (folder / "leak").symlink_to(tmp_path / "disk.img")
    os.mkfifo(folder / "pipe")
    copied = inputs.copy_in(folder, tmp_path / "inputs" / "folder")
    assert _names(copied) == {"a.txt"}


def test_process_job_with_special_files_in_its_code_runs(mljob: Mljob, write_job) -> None:
    job = write_job("""\
        command: ls && cat hello.txt
        code: src
        compute: process
        environment:
          image: python
        """, files={"src/hello.txt": "hello from the snapshot\n"})
    os.mkfifo(job.parent / "src" / "pipe")
    _device(job.parent / "src" / "zero")
    done = mljob("run", str(job))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "hello from the snapshot" in done.stdout
    assert "skipped pipe" in done.stderr and "skipped zero" in done.stderr


def test_process_job_with_dev_zero_as_a_download_input_is_refused(mljob: Mljob, write_job) -> None:
    job = write_job("""\
        command: wc -c ${{inputs.data}}
        inputs:
          data: {type: uri_file, path: /dev/zero, mode: download}
        compute: process
        environment:
          image: python
        """)
    done = mljob("run", str(job))
    text = done.stdout + done.stderr
    assert done.returncode != 0
    assert "input `data`" in text and "/dev/zero" in text and "internal error" not in text
    assert not (Path(os.environ["MLJOB_HOME"]) / "runs" / run_name(done.stdout) / "inputs" / "data").exists()


def test_process_job_with_the_root_as_code_is_refused(mljob: Mljob, write_job) -> None:
    job = write_job("command: ls\ncode: /\ncompute: process\nenvironment:\n  image: python\n")
    done = mljob("run", str(job))
    text = done.stdout + done.stderr
    assert done.returncode != 0 and "internal error" not in text
    assert "code" in text and "`/`" in text


# --- the attack as a reviewer made it: a container's link resolves on this machine when the runner copies ---------


def test_container_cannot_get_a_host_file_into_the_artifacts(mljob: Mljob, write_job, tmp_path: Path, engine,
                                                            no_leftovers) -> None:
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret.txt").write_text("host secret\n")  # not mounted in the container: only the runner could read it
    job = write_job(f"""\
        command: >-
          ln -s {host / 'secret.txt'} outputs/leak && ln -s /etc/hostname outputs/hostname &&
          ln -s . outputs/loop && echo result > outputs/result.txt &&
          rm -rf logs && ln -s {host} logs && echo done
        environment:
          image: python
        """)
    done = mljob("run", str(job))
    assert done.returncode == 0, done.stdout + done.stderr
    name = run_name(done.stdout)
    files = dict(history().artifacts(history().find(name).run_id))
    assert "outputs/result.txt" in files
    assert not [path for path in files if path.startswith(("outputs/leak", "outputs/hostname", "outputs/loop",
                                                            "logs/"))]
    assert "skipped leak" in done.stderr and "skipped hostname" in done.stderr
    got = mljob("job", "download", "-n", name, "--all", "--download-path", str(tmp_path / "dl"))
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "dl" / "artifacts" / "outputs" / "result.txt").read_text() == "result\n"
    hostname = Path("/etc/hostname").read_bytes()
    for path in (tmp_path / "dl").rglob("*"):
        if path.is_file() and not path.is_symlink():
            content = path.read_bytes()
            assert b"host secret" not in content and (not hostname.strip() or content != hostname), path
