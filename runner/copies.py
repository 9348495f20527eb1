"""The one policy for copying files mljob does not control: the code snapshot, `download` inputs, and a job's files
saved as artifacts (and downloaded again). Its one job: copy a tree so that nothing outside it, and nothing endless,
can get in.

- Links are never followed. A link whose target resolves inside the copied root is recreated as a relative link;
  one that leads out of the root, nowhere (dangling, a cycle of links) or back to a folder that contains it (a loop)
  is skipped and reported. A job that writes `outputs/leak -> /etc/shadow` gets no copy of the host's file.
- Devices, named pipes and sockets are skipped and reported, never opened (opening a pipe waits for a writer, a
  device such as /dev/zero never ends). Files are opened without following links and checked again once open, so a
  file swapped for a link or a pipe while the copy runs is skipped too.
- Sparse files stay sparse: only their data is copied (SEEK_DATA / SEEK_HOLE), the holes are left as holes.
- A copy stops at a size limit (data written, holes not counted): the caller's default, or MLJOB_COPY_LIMIT for all
  (`50G`, `800M`, bytes). Stopping, like any other failure or an interruption (a cancel), removes everything this
  copy wrote before the error goes on; the error names the path and says what to do.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mljob.runner import problems

LIMIT_ENV = "MLJOB_COPY_LIMIT"
GiB = 2**30
SNAPSHOT_LIMIT = 2 * GiB  # the code snapshot (Azure ML itself stops at 300 MB)
INPUT_LIMIT = 20 * GiB  # one `download` input
ARTIFACT_LIMIT = 20 * GiB  # one folder saved as artifacts (./outputs, ./logs, a named output), or one download
MAX_DEPTH = 100  # folders nested deeper are skipped (each level holds two open descriptors while it is copied)
PROGRESS_EVERY = 1.0  # seconds between progress messages
REPORTED_SKIPS = 20  # skipped entries named one by one; the rest are counted
_CHUNK = 8 * 2**20
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW_DIR = _DIR | os.O_NOFOLLOW
# O_NONBLOCK: a pipe swapped in after the check opens at once instead of waiting for a writer.
_READ = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_UNREADABLE = (errno.EACCES, errno.EPERM)


class CopyError(problems.RunError):
    """A copy that stopped (the limit, a file that cannot be read or written); what it had written is gone."""


@dataclass
class CopyStats:
    files: int = 0
    bytes: int = 0  # data written; the holes of sparse files are not counted
    links: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path relative to the root, why)


def parse_size(text: str) -> int:
    """`50G`, `800M`, `1.5GiB`, `4096`: a positive number of bytes (engine_api.parse_bytes reads them)."""
    from mljob.runner.engine_api import parse_bytes

    value = parse_bytes(text)
    if value <= 0:
        raise ValueError(text)
    return value


def limit(default: int) -> int:
    """The size limit of a copy: MLJOB_COPY_LIMIT when set, else the caller's default."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if not raw:
        return default
    try:
        return parse_size(raw)
    except ValueError:
        raise problems.plain(None, problems.NOT_RUNNABLE, f"{LIMIT_ENV}={raw!r} is not a size: write bytes or a "
                             "number with K, M, G or T (binary multiples), e.g. MLJOB_COPY_LIMIT=50G.") from None


def size_text(count: int) -> str:
    for unit, size in (("GiB", GiB), ("MiB", 2**20), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} bytes"


def special_kind(mode: int) -> str | None:
    """What a file that is not a regular file, folder or link is (None for those three)."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


class _Copy:
    """One copy: what it wrote (for the undo), its budget and its reports."""

    def __init__(self, source: Path, limit_bytes: int, what: str, advice: str, code: str,
                 progress: Callable[[str], None] | None) -> None:
        self.source, self.limit, self.what, self.advice, self.code = source, limit_bytes, what, advice, code
        self.progress = progress
        self.stats = CopyStats()
        self.created: list[tuple[str, bool]] = []  # (path, is a folder), in creation order
        self._last = time.monotonic()

    # --- reports and failures ---------------------------------------------------------------------------------

    def skip(self, rel: str, why: str) -> None:
        self.stats.skipped.append((rel, why))
        if self.progress and len(self.stats.skipped) <= REPORTED_SKIPS:
            self.progress(f"{self.what}: skipped {rel or self.source.name}: {why}")

    def finish(self) -> None:
        more = len(self.stats.skipped) - REPORTED_SKIPS
        if self.progress and more > 0:
            self.progress(f"{self.what}: skipped {more} more (links out of {self.source}, special files)")

    def tick(self) -> None:
        if self.progress and time.monotonic() - self._last >= PROGRESS_EVERY:
            self.progress(f"{self.what}: {self.stats.files} files, {self.stats.bytes / 2**20:.1f} MiB so far")
            self._last = time.monotonic()

    def fail(self, rel: str, message: str) -> CopyError:
        """The error to raise; `{where}` in `message` stands for the path (which may hold braces of its own)."""
        where = str(self.source / rel if rel else self.source)
        return CopyError(str(problems.plain(self.source, self.code,
                                            f"{self.what}: {message.replace('{where}', where)}")))

    def over_limit(self, rel: str) -> CopyError:
        raised = max(2 * self.limit, self.limit + GiB) // GiB
        return self.fail(rel, f"stopped at {{where}}: the copy would pass its limit of {size_text(self.limit)} "
                              f"(nothing of it was kept). {self.advice}, or raise the limit ({LIMIT_ENV}={raised}G).")

    def undo(self) -> None:
        for path, is_dir in reversed(self.created):
            with contextlib.suppress(OSError):  # a folder someone else also wrote into stays, with their files
                if is_dir:
                    os.rmdir(path)
                else:
                    os.unlink(path)

    # --- destination ------------------------------------------------------------------------------------------

    def make_dirs(self, path: Path) -> None:
        missing = []
        while not os.path.lexists(path):
            missing.append(path)
            path = path.parent
        for folder in reversed(missing):
            os.mkdir(folder)
            self.created.append((str(folder), True))

    def open_dest_dir(self, parent_fd: int, name: str, path: str) -> int:
        """The destination folder `name` in `parent_fd`, made when missing; a link or a file in its place is
        replaced, never followed."""
        try:
            return os.open(name, _NOFOLLOW_DIR, dir_fd=parent_fd)
        except FileNotFoundError:
            pass
        except OSError as err:
            if err.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            os.unlink(name, dir_fd=parent_fd)
        os.mkdir(name, dir_fd=parent_fd)
        self.created.append((path, True))
        return os.open(name, _NOFOLLOW_DIR, dir_fd=parent_fd)

    def _place(self, dst_fd: int, name: str, path: str, make: Callable[[str], None]) -> None:
        """`make(temporary name)` in `dst_fd`, then renamed over `name`: a reader never sees half a file, and a link
        already at `name` is replaced, never written through."""
        temporary = f".mljob-copy-{secrets.token_hex(6)}"
        try:
            make(temporary)
            os.replace(temporary, name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=dst_fd)
            raise
        self.created.append((path, False))

    # --- what is copied ---------------------------------------------------------------------------------------

    def regular(self, src_dir_fd: int | None, src_name: str, dst_fd: int, dst_name: str, dst_path: str, rel: str,
                follow: bool) -> None:
        flags = _READ if follow else _READ | os.O_NOFOLLOW
        try:
            fd = os.open(src_name, flags, dir_fd=src_dir_fd)
        except OSError as err:
            if err.errno == errno.ELOOP:
                return self.skip(rel, "became a link while it was copied")
            if err.errno in _UNREADABLE:
                return self.skip(rel, f"cannot be read ({err.strerror})")
            if err.errno == errno.ENOENT:
                return None  # gone meanwhile
            raise self.fail(rel, f"cannot read {{where}} ({err.strerror}).") from None
        try:
            st = os.fstat(fd)
            kind = special_kind(st.st_mode)
            if kind or not stat.S_ISREG(st.st_mode):
                return self.skip(rel, f"{kind or 'a folder'}, not a regular file")
            allocated = min(st.st_size, st.st_blocks * 512)
            if self.stats.bytes + allocated > self.limit:
                raise self.over_limit(rel)
            os.set_blocking(fd, True)

            def make(temporary: str) -> None:
                out = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                              dir_fd=dst_fd)
                try:
                    self.data(fd, out, st.st_size, allocated < st.st_size, rel)
                    os.fchmod(out, stat.S_IMODE(st.st_mode))
                    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(out)

            try:
                self._place(dst_fd, dst_name, dst_path, make)
            except OSError as err:
                raise self.fail(rel, f"cannot copy {{where}} to {dst_path} ({err.strerror}).") from None
        finally:
            os.close(fd)
        self.stats.files += 1
        self.tick()
        return None

    def data(self, src: int, dst: int, size: int, sparse: bool, rel: str) -> None:
        """The data of `src` (its first `size` bytes) into `dst`; holes stay holes."""
        position = 0
        while position < size:
            try:
                start = os.lseek(src, position, os.SEEK_DATA)
                end = min(os.lseek(src, start, os.SEEK_HOLE), size)
                zeros_are_holes = False
            except OSError as err:
                if err.errno == errno.ENXIO:
                    break  # nothing but a hole from here
                if err.errno not in (errno.EINVAL, errno.EOPNOTSUPP):
                    raise
                start, end, zeros_are_holes = position, size, sparse  # no SEEK_DATA here: find the zeros by reading
            if start >= size:
                break
            self.span(src, dst, start, end, zeros_are_holes, rel)
            position = end
        os.ftruncate(dst, size)

    def span(self, src: int, dst: int, start: int, end: int, zeros_are_holes: bool, rel: str) -> None:
        offset = start
        while offset < end:
            count = min(_CHUNK, end - offset)
            if self.stats.bytes + count > self.limit:
                raise self.over_limit(rel)
            chunk = os.pread(src, count, offset)
            if not chunk:
                return  # the file shrank meanwhile
            if not (zeros_are_holes and chunk == bytes(len(chunk))):
                view = memoryview(chunk)
                while view:
                    written = os.pwrite(dst, view, offset)
                    view, offset = view[written:], offset + written
                    self.stats.bytes += written
            else:
                offset += len(chunk)
            self.tick()

    def link(self, src_fd: int, name: str, dst_fd: int, dst_path: str, rel: str, root: str, parent: str) -> None:
        try:
            text = os.readlink(name, dir_fd=src_fd)
        except OSError:
            return None  # gone, or no longer a link, meanwhile
        try:
            resolved = os.path.realpath(os.path.join(parent, name), strict=True)
        except OSError:
            return self.skip(rel, f"a link to {text}, which leads nowhere (missing, or a cycle of links)")
        if not _inside(resolved, root):
            return self.skip(rel, f"a link to {text}, outside {self.source}")
        if os.path.isdir(resolved) and _inside(parent, resolved):
            return self.skip(rel, f"a link to {text}, a folder that contains it (a loop)")
        relative = os.path.relpath(resolved, parent)
        try:
            self._place(dst_fd, name, dst_path, lambda temporary: os.symlink(relative, temporary, dir_fd=dst_fd))
        except OSError as err:
            raise self.fail(rel, f"cannot make the link {dst_path} ({err.strerror}).") from None
        self.stats.links += 1
        return None

    def tree(self, src_fd: int, dst_fd: int, dst: str, rel: str, root: str, depth: int,
             ignore: Callable[[str, bool], bool] | None) -> None:
        parent = os.path.join(root, rel) if rel else root
        with os.scandir(src_fd) as listing:
            entries = sorted(listing, key=lambda e: e.name)
        for entry in entries:
            name, here = entry.name, _join(rel, entry.name)
            target = os.path.join(dst, name)
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except FileNotFoundError:
                continue
            if ignore is not None:
                is_dir = stat.S_ISDIR(mode) or (stat.S_ISLNK(mode) and os.path.isdir(os.path.join(parent, name)))
                if ignore(here, is_dir):
                    continue
            if stat.S_ISLNK(mode):
                self.link(src_fd, name, dst_fd, target, here, root, parent)
            elif stat.S_ISREG(mode):
                self.regular(src_fd, name, dst_fd, name, target, here, follow=False)
            elif stat.S_ISDIR(mode):
                if depth >= MAX_DEPTH:
                    self.skip(here, f"a folder nested deeper than {MAX_DEPTH} levels")
                    continue
                try:
                    child = os.open(name, _NOFOLLOW_DIR, dir_fd=src_fd)
                except OSError as err:
                    if err.errno in (errno.ELOOP, errno.ENOTDIR):
                        self.skip(here, "became a link or a file while it was copied")
                    elif err.errno in _UNREADABLE:
                        self.skip(here, f"cannot be read ({err.strerror})")
                    elif err.errno != errno.ENOENT:
                        raise self.fail(here, f"cannot read {{where}} ({err.strerror}).") from None
                    continue
                try:
                    try:
                        out = self.open_dest_dir(dst_fd, name, target)
                    except OSError as err:
                        raise self.fail(here, f"cannot make {target} ({err.strerror}).") from None
                    try:
                        self.tree(child, out, target, here, root, depth + 1, ignore)
                    finally:
                        os.close(out)
                finally:
                    os.close(child)
            else:
                self.skip(here, f"{special_kind(mode)}, not a regular file")


def _run(job: _Copy, work: Callable[[], None]) -> CopyStats:
    try:
        work()
    except BaseException:
        job.undo()
        raise
    job.finish()
    return job.stats


def copy_tree(source: Path, destination: Path, *, limit_bytes: int, what: str = "copy", advice: str = "Copy less",
              code: str = problems.NOT_RUNNABLE, progress: Callable[[str], None] | None = None,
              ignore: Callable[[str, bool], bool] | None = None, follow_root: bool = True) -> CopyStats:
    """The folder `source` into `destination` (made when missing; what is there already is overwritten), by the
    policy above. `ignore(relative path, is a folder)` leaves entries out; `what` names the copy in messages and
    `advice` says what to do when it is too big. `follow_root=False`: a `source` that is itself a link is skipped
    (a job could have swapped its ./outputs for a link to a folder of this machine)."""
    job = _Copy(source, limit_bytes, what, advice, code, progress)

    def work() -> None:
        try:
            src_fd = os.open(source, _DIR if follow_root else _NOFOLLOW_DIR)
        except OSError as err:
            if err.errno in (errno.ELOOP, errno.ENOTDIR):
                return job.skip("", "a link, not a folder" if os.path.islink(source) else "not a folder")
            raise job.fail("", f"cannot read {{where}} ({err.strerror}).") from None
        try:
            root = os.path.realpath(source)
            try:
                job.make_dirs(destination)
                dst_fd = os.open(destination, _NOFOLLOW_DIR)
            except OSError as err:
                raise job.fail("", f"cannot make {destination} ({err.strerror}).") from None
            try:
                job.tree(src_fd, dst_fd, str(destination), "", root, 0, ignore)
            finally:
                os.close(dst_fd)
        finally:
            os.close(src_fd)
        return None

    return _run(job, work)


def copy_file(source: Path, destination: Path, *, limit_bytes: int, what: str = "copy", advice: str = "Copy less",
              code: str = problems.NOT_RUNNABLE, progress: Callable[[str], None] | None = None,
              follow: bool = True) -> CopyStats:
    """The regular file `source` as `destination` (its folder made when missing), by the policy above: a special
    file is skipped (reported), never read; `follow=False` skips a `source` that is a link."""
    job = _Copy(source, limit_bytes, what, advice, code, progress)

    def work() -> None:
        try:
            mode = os.stat(source, follow_symlinks=follow).st_mode
        except OSError as err:
            raise job.fail("", f"cannot read {{where}} ({err.strerror}).") from None
        if stat.S_ISLNK(mode):
            return job.skip("", "a link, not a regular file")
        if not stat.S_ISREG(mode):  # never opened: a pipe would wait for a writer, a device might never end
            raise job.fail("", f"{{where}} is {special_kind(mode) or 'a folder'}, not a regular file; it is not "
                               "copied.")
        try:
            job.make_dirs(destination.parent)
            dst_fd = os.open(destination.parent, _NOFOLLOW_DIR)
        except OSError as err:
            raise job.fail("", f"cannot make {destination.parent} ({err.strerror}).") from None
        try:
            job.regular(None, str(source), dst_fd, destination.name, str(destination), "", follow)
        finally:
            os.close(dst_fd)
        return None

    return _run(job, work)


def listing(root: Path) -> Iterator[tuple[str, int]]:
    """The files under `root` as (path relative to it, size), depth first in name order, by the same rules: regular
    files, and links to regular files inside `root`; links are never followed into folders."""
    base = os.path.realpath(root)

    def walk(folder: str, rel: str, depth: int) -> Iterator[tuple[str, int]]:
        try:
            with os.scandir(folder) as found:
                entries = sorted(found, key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            here = _join(rel, entry.name)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                yield here, st.st_size
            elif stat.S_ISDIR(st.st_mode) and depth < MAX_DEPTH:
                yield from walk(entry.path, here, depth + 1)
            elif stat.S_ISLNK(st.st_mode):
                try:
                    resolved = os.path.realpath(entry.path, strict=True)
                    target = os.stat(resolved)
                except OSError:
                    continue
                if _inside(resolved, base) and stat.S_ISREG(target.st_mode):
                    yield here, target.st_size

    yield from walk(str(root), "", 0)
