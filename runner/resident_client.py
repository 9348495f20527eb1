"""The thin side of the resident runner: hand a CLI call to the warm `mljob` process, or say it could not.

Starting Python and importing the validator, the runner and their libraries costs a `mljob run` about 200 ms before
it does anything; a Docker hello-world takes 400 ms in all. So the first call starts a resident process
(`runner/resident.py`) that has everything imported, and later calls send it their arguments, environment, working
folder and terminal (the file descriptors themselves); it forks a child that runs the call exactly as this process
would have, writing straight to the caller's terminal. This side imports only what a socket needs, because its own
start-up is the cost that is left.

The caller stays the process the user sees: its signals (Ctrl-C, SIGTERM from `kill`, SIGHUP from a closed
terminal) go on to the child, it exits with the child's code, and if it is killed outright the child is killed too,
so a SIGKILL leaves what it always left (an orphan that the next call cleans up).

Every failure here (no resident process yet, a stale one, a socket folder that is not safely ours) means: run in this
process instead. MLJOB_DAEMON=0 turns the resident runner off.
"""

from __future__ import annotations

# Only modules built into the interpreter: `socket`, `signal` and `json` (through `re` and `enum`) would cost this
# process ~25 ms of its ~50 (measured in a venv where mljob is installed as pip installs it). Messages are `marshal`
# data: both ends are this installation's own Python, and only this user's processes can reach the socket.
import _signal
import _socket
import marshal
import os
import sys
import zlib

PROTOCOL = 2  # in the socket's name: a resident process never gets a request it cannot read
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT, _signal.SIGUSR1, _signal.SIGUSR2)
_KEPT_PREFIXES = ("PYTHON", "LC_", "MLJOB_DAEMON")
_KEPT = {"PATH", "HOME", "LANG", "TMPDIR", "VIRTUAL_ENV", "XDG_RUNTIME_DIR", "MLJOB_DEBUG"}
MAX_MESSAGE = 1 << 18  # a request is the argument list and the environment; anything larger runs in-process


def enabled() -> bool:
    return os.environ.get("MLJOB_DAEMON", "1").strip().lower() not in ("0", "false", "no", "off")


def runtime_dir() -> str:
    """A folder only this user can enter: $XDG_RUNTIME_DIR/mljob, else /tmp/mljob-UID."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isabs(base) and _private(base, create=False):
        return os.path.join(base, "mljob")
    return os.path.join("/tmp", f"mljob-{os.getuid()}")


def _private(path: str, *, create: bool) -> bool:
    """True when `path` is a real folder (not a link) owned by this user; with `create` (the folder mljob makes and
    uses), also one that nobody else can read or enter."""
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError:
            return False
    try:
        st = os.lstat(path)
    except OSError:
        return False
    import stat

    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and (create is False or st.st_mode & 0o077 == 0)


def socket_path() -> str:
    """One resident process per user and installation: the interpreter, the import path and mljob's own files.

    sys.path[0] (the script's folder, or the working folder under `-m`) is left out: it is where the call came from,
    not what it runs.
    """
    import mljob

    identity = repr((PROTOCOL, sys.executable, sys.path[1:], mljob.__file__, mljob.__version__, tuple(sys.flags)))
    return os.path.join(runtime_dir(), f"runner-{zlib.crc32(identity.encode()):08x}.sock")


class Unavailable(Exception):
    """The call must run in this process (the reason is for MLJOB_DEBUG)."""


def call(argv: list[str]) -> int:
    """Run `mljob ARGV` in the resident process; its exit code. Raises Unavailable when it cannot be handed over."""
    folder = runtime_dir()
    if not _private(folder, create=True):
        raise Unavailable(f"{folder} is not a private folder of this user")
    path = socket_path()
    try:
        cwd = os.getcwd()
    except OSError:
        raise Unavailable("the working folder is gone") from None
    request = marshal.dumps({
        "op": "run", "argv": argv, "argv0": sys.argv[0] if sys.argv else "mljob", "env": dict(os.environ),
        "cwd": cwd, "umask": _umask(),
        "encoding": [getattr(s, "encoding", None) or "utf-8" for s in (sys.stdin, sys.stdout, sys.stderr)],
        "errors": [getattr(s, "errors", None) or "strict" for s in (sys.stdin, sys.stdout, sys.stderr)],
    })
    if len(request) > MAX_MESSAGE // 2:
        raise Unavailable("the environment is too large to hand over")
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            raise Unavailable(f"file descriptor {fd} is not open") from None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    # Signals wait until the child's pid is known; then they are forwarded, none lost.
    blocked = _signal.pthread_sigmask(_signal.SIG_BLOCK, FORWARDED)
    try:
        try:
            sock.connect(path)
            # The caller's stdin, stdout and stderr themselves travel with the request (SCM_RIGHTS).
            fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
            sock.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
            first = _receive(sock)
        except OSError as err:
            sock.close()
            start(path, folder)
            raise Unavailable(f"no resident runner at {path} ({err.strerror or err})") from None
        if first is None or "pid" not in first:
            sock.close()
            if first is not None and first.get("stale"):
                start(path, folder)
            raise Unavailable(f"the resident runner declined: {first}")
        child = int(first["pid"])

        def forward(signum: int, _frame: object) -> None:
            try:  # noqa: SIM105 (contextlib is an import this module avoids)
                os.kill(child, signum)
            except ProcessLookupError:
                pass

        for sig in FORWARDED:
            _signal.signal(sig, forward)
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, blocked)
    try:
        while True:
            try:
                message = _receive(sock)
            except OSError:
                message = None
            if message is None:
                return _lost(child)
            if "exit" in message:
                return int(message["exit"])
            if "signal" in message:
                return _die_by(int(message["signal"]))
    finally:
        sock.close()


def _receive(sock: _socket.socket) -> dict[str, object] | None:
    data = sock.recv(65536)
    if not data:
        return None
    try:
        message = marshal.loads(data)
    except (EOFError, ValueError, TypeError):
        return None
    return message if isinstance(message, dict) else None


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _die_by(signum: int) -> int:
    """End as the child ended, so a shell sees 128+N and a parent sees the signal."""
    for sig in FORWARDED:
        _signal.signal(sig, _signal.SIG_DFL)
    sys.stdout.flush()
    os.kill(os.getpid(), signum)
    return 128 + signum


def _lost(child: int) -> int:
    """The resident process went away without the child's outcome (it was killed): wait for the child, say so."""
    import time

    while os.path.exists(f"/proc/{child}"):
        time.sleep(0.1)
    print("mljob: the resident runner stopped before reporting how the call ended; `mljob job show -n NAME` has the "
          "run's status", file=sys.stderr)
    return 1


def start(path: str, folder: str) -> None:
    """Start a resident process in the background for the next call (this one runs in-process meanwhile)."""
    log = os.path.join(folder, "runner.log")
    argv = [sys.executable, "-P", "-m", "mljob", "daemon", "serve", "--socket", path]
    # Every call brings its own environment; the resident process keeps only what shapes Python itself (the import
    # path, the locale), not this caller's tokens and passwords for as long as it lives.
    env = {k: v for k, v in os.environ.items() if k.startswith(_KEPT_PREFIXES) or k in _KEPT}
    try:  # noqa: SIM105 (contextlib is an import this module avoids)
        # The caller may have signals blocked (see `call`); the resident process must start with none blocked.
        os.posix_spawn(sys.executable, argv, env, setsid=True, setsigmask=(),
                       setsigdef=FORWARDED, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
        ])
    except OSError:
        pass  # no resident runner; every call runs in-process, as it would with MLJOB_DAEMON=0


def control(op: str) -> dict[str, object] | None:
    """Ask the resident process for `status` or to `stop`; None when there is none."""
    path = socket_path()
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
    try:
        sock.connect(path)
        sock.send(marshal.dumps({"op": op}))
        reply = _receive(sock)
    except OSError:
        return None
    finally:
        sock.close()
    if reply is not None:
        reply["socket"] = path
    return reply
