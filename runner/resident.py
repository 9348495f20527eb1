"""The warm side of the resident runner: a process that has mljob imported and forks a child per CLI call.

`runner/resident_client.py` says why it exists and what the caller does. Here: the child takes over the caller's
arguments, environment, working folder, umask and terminal, then runs `mljob.runner.cli.main` as a fresh process would;
a fork gives each call its own copy of every module, so nothing one call does (a cache, a signal handler, a changed
environment variable) is seen by the next.

The process serves one user (its socket sits in a folder only that user can enter, and peers are checked by their
credentials) and one installation; it declines calls once any of mljob's files or the import path's folders have
changed since it started (an upgrade, a `git pull`, an edit), and leaves after `--idle` seconds without calls.
A caller that goes away without hearing the outcome takes its child with it (SIGKILL, as if the child had been the
caller), so what a killed `mljob run` leaves behind is what it always left: an orphan that the next call cleans up.

One child is always forked ahead (the spare): it has already paid for the fork and for copying the memory pages a
call writes to (Python's reference counts make every page it touches its own), ~15 ms measured, before the call
that it will run arrives. It is handed the call's request, stdio and connection, and the next spare is forked.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import importlib
import io
import marshal
import os
import pkgutil
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field

from mljob.runner.resident_client import MAX_MESSAGE, runtime_dir, socket_path

DEFAULT_IDLE = 1800.0  # seconds without a call before the process leaves
# Every mljob.runner module is imported before serving (with Optuna, for sweeps), so a call pays for none of them.
# Ray and MLflow's client are not: mljob imports them only where a call needs them. rsh_agent is a program of its own.
_COLD = ("mljob.runner.rsh_agent",)
_WARM_TEXT = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python train.py --rate ${{inputs.rate}} --out ${{outputs.model}}
code: .
inputs: {rate: 0.1}
outputs: {model: {type: uri_folder}}
environment: {image: python}
compute: local
"""


def _warm() -> None:
    import mljob.runner as package

    for info in pkgutil.walk_packages(package.__path__, "mljob.runner."):
        if info.name not in _COLD:
            importlib.import_module(info.name)
    from mljob.runner.cli import build_parser
    from mljob.runner.validate import validate_text

    validate_text(_WARM_TEXT)  # loads and compiles the schemas once, for every child
    build_parser()


def _fingerprint() -> tuple[tuple[str, int, int], ...]:
    """mljob's files (sources and schemas) and the import path's folders, as (path, mtime, size)."""
    seen: list[tuple[str, int, int]] = []
    folders = {p for name, m in list(sys.modules.items()) if name.split(".")[0] == "mljob"
               for p in getattr(m, "__path__", ()) or ()}
    for folder in sorted(folders):
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.endswith((".py", ".json")) and entry.is_file():
                        st = entry.stat()
                        seen.append((entry.path, st.st_mtime_ns, st.st_size))
        except OSError:
            seen.append((folder, -1, -1))
    for folder in sys.path:
        try:
            st = os.stat(folder or ".")
            seen.append((folder, st.st_mtime_ns, -2))
        except OSError:
            pass
    return tuple(seen)


@dataclass
class _Call:
    pid: int
    conn: socket.socket
    pidfd: int


@dataclass
class _Spare:
    pid: int
    pidfd: int
    control: socket.socket  # our end of the pair the call will be handed over on


@dataclass
class _Server:
    path: str
    idle: float
    log: io.TextIOBase = field(default_factory=lambda: sys.stderr)
    listener: socket.socket | None = None
    lock_fd: int = -1
    inode: int = 0
    calls: dict[int, _Call] = field(default_factory=dict)
    spare: _Spare | None = None
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    fingerprint: tuple[tuple[str, int, int], ...] = ()
    started: float = field(default_factory=time.time)
    served: int = 0
    last: float = field(default_factory=time.monotonic)

    # --- listening ----------------------------------------------------------------------------------------------

    def lock(self) -> bool:
        self.lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock_fd)
            self.lock_fd = -1
            return False  # another one serves (or is about to serve) this installation
        return True

    def bind(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # left by one that was killed; the lock says nobody listens on it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        old = os.umask(0o177)
        try:
            listener.bind(self.path)
        finally:
            os.umask(old)
        listener.listen(64)
        self.inode = os.stat(self.path).st_ino
        self.listener = listener
        self.selector.register(listener, selectors.EVENT_READ, None)

    def stop_listening(self) -> None:
        """Stop taking calls (the running ones go on) and let a new process take the socket's place."""
        if self.listener is not None:
            self.selector.unregister(self.listener)
            try:
                if os.stat(self.path).st_ino == self.inode:
                    os.unlink(self.path)
            except OSError:
                pass
            self.listener.close()
            self.listener = None
        if self.lock_fd >= 0:
            os.close(self.lock_fd)
            self.lock_fd = -1
        self.drop_spare()

    # --- the spare ------------------------------------------------------------------------------------------------

    def fork_spare(self) -> _Spare:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log.flush()
        # Without this, the child's first garbage collection walks every object inherited from this process, and
        # copies each page it touches: ~65 ms per call, measured, against ~3 ms for the fork itself.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            ours.close()
            _spare(self, theirs)  # never returns
        theirs.close()
        spare = _Spare(pid=pid, pidfd=os.pidfd_open(pid), control=ours)
        self.selector.register(spare.pidfd, selectors.EVENT_READ, ("spare", spare))
        self.spare = spare
        return spare

    def drop_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is None:
            return
        self.selector.unregister(spare.pidfd)
        with contextlib.suppress(ProcessLookupError):
            os.kill(spare.pid, signal.SIGKILL)
        os.waitpid(spare.pid, 0)
        os.close(spare.pidfd)
        spare.control.close()

    # --- the loop -----------------------------------------------------------------------------------------------

    def serve(self) -> None:
        # SIGTERM ends this process at once: the calls running are processes of their own that report to their
        # callers themselves; only a caller killed from now on no longer takes its call with it.
        signal.signal(signal.SIGTERM, _leave)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        self.fork_spare()
        while self.listener is not None or self.calls:
            timeout = None
            if not self.calls:
                timeout = max(0.0, self.idle - (time.monotonic() - self.last))
                if timeout == 0.0:
                    self.stop_listening()
                    break
            events = self.selector.select(timeout)
            # Outcomes and departures first: a caller killed just before a new call arrives must have taken its
            # child with it before the new call looks for orphans.
            for key, _ in sorted(events, key=lambda e: e[0].data is None):
                try:
                    if key.data is None:
                        if self.listener is not None:
                            self.accept()
                    else:
                        kind, call = key.data
                        if kind == "spare":
                            if self.spare is call:
                                self.drop_spare()  # it died before any call came: the next one is forked then
                            continue
                        if self.calls.get(call.pid) is not call:
                            continue  # ended by the other event of the same round (its pid may already be reused)
                        self.reap(call) if kind == "exit" else self.caller_event(call)
                except Exception:  # one bad call must not end the service for the others
                    traceback.print_exc(file=self.log)
                    self.log.flush()

    def accept(self) -> None:
        assert self.listener is not None
        conn, _ = self.listener.accept()
        fds: list[int] = []
        try:
            pid, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                                 struct.calcsize("3i")))
            if uid != os.getuid():
                conn.close()
                return
            data, fds, flags, _ = socket.recv_fds(conn, MAX_MESSAGE, 3)
            try:
                if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                    raise ValueError("truncated")
                request = marshal.loads(data)  # only this user's processes reach the socket (checked above)
            except (EOFError, ValueError, TypeError):
                request = None
            if not isinstance(request, dict):
                self._reply(conn, {"refused": "not a request of this mljob version"})
                conn.close()
                return
            op = request.get("op")
            if op == "status":
                self._reply(conn, {"pid": os.getpid(), "started": self.started, "served": self.served,
                                   "running": len(self.calls)})
            elif op == "stop":
                self._reply(conn, {"stopping": True, "running": len(self.calls)})
                self.stop_listening()
            elif op == "run" and len(fds) == 3:
                if _fingerprint() != self.fingerprint:
                    self._reply(conn, {"stale": True})
                    self.stop_listening()
                else:
                    self.fork(conn, fds, data)
                    return
            else:
                self._reply(conn, {"refused": f"unknown request {op!r}"})
        finally:
            for fd in fds:
                os.close(fd)
        conn.close()

    def fork(self, conn: socket.socket, fds: list[int], data: bytes) -> None:
        """Hand the call (its request, stdio and connection) to the spare, which becomes its process."""
        for _ in range(2):
            spare = self.spare or self.fork_spare()
            try:
                socket.send_fds(spare.control, [data], [*fds, conn.fileno()])
                break
            except OSError:
                self.drop_spare()  # it died meanwhile; a fresh one takes the call
        else:
            raise OSError("no spare process took the call")
        self.spare = None
        spare.control.close()
        self.served += 1
        self.last = time.monotonic()
        for fd in fds:
            os.close(fd)
        fds.clear()
        call = _Call(pid=spare.pid, conn=conn, pidfd=spare.pidfd)
        self.calls[call.pid] = call
        self.selector.modify(call.pidfd, selectors.EVENT_READ, ("exit", call))
        self.selector.register(conn, selectors.EVENT_READ, ("caller", call))
        self.fork_spare()  # for the next call: it gets ready while this one runs

    def reap(self, call: _Call) -> None:
        try:
            _, status = os.waitpid(call.pid, 0)
        except ChildProcessError:  # already reaped; what matters is that the call is forgotten
            status = 0
        if os.WIFSIGNALED(status):  # an exit code the child sent itself; a signal it could not
            self._reply(call.conn, {"signal": os.WTERMSIG(status)})
        self.forget(call)

    def caller_event(self, call: _Call) -> None:
        try:
            gone = call.conn.recv(16) == b""
        except OSError:
            gone = True
        if gone:
            with contextlib.suppress(ProcessLookupError):
                os.kill(call.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(call.pid, 0)  # dead before the next call looks for orphans
            self.forget(call)

    def forget(self, call: _Call) -> None:
        self.selector.unregister(call.pidfd)
        self.selector.unregister(call.conn)
        os.close(call.pidfd)
        call.conn.close()
        self.calls.pop(call.pid, None)
        self.last = time.monotonic()

    @staticmethod
    def _reply(conn: socket.socket, message: dict[str, object]) -> None:
        with contextlib.suppress(OSError):
            conn.send(marshal.dumps(message))


def _leave(_signum: int, _frame: object) -> None:
    raise SystemExit(0)  # out of the wait; `serve`'s caller stops listening and lets the spare go


def _spare(server: _Server, control: socket.socket) -> None:
    """In the spare: let go of the server's resources, touch what a call touches, wait for the call, run it."""
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        server.selector.close()
        if server.listener is not None:
            server.listener.close()
        for other in server.calls.values():
            other.conn.close()
            os.close(other.pidfd)
        if server.spare is not None:
            server.spare.control.close()
            os.close(server.spare.pidfd)
        if server.lock_fd >= 0:
            os.close(server.lock_fd)
        if not select.select([control], [], [], 0)[0]:  # no call waiting yet: get ready for one
            _rehearse()
        data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 4)
        control.close()
        if not data or len(fds) != 4:
            os._exit(0)  # let go unused (the service stops)
    except BaseException:
        traceback.print_exc()
        os._exit(1)
    _child(socket.socket(fileno=fds[3]), fds[:3], marshal.loads(data))


def _rehearse() -> None:
    """What every call does first (parse its arguments, validate a job), so that those pages are already copied."""
    from mljob.runner.cli import build_parser
    from mljob.runner.validate import validate_text

    build_parser().parse_known_args(["validate", "job.yml"])
    validate_text(_WARM_TEXT)


def _child(conn: socket.socket, fds: list[int], request: dict[str, object]) -> None:
    """Become the caller's process, run the call, send its exit code, and exit."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[arg-type]
        os.chdir(str(request["cwd"]))
        os.umask(int(request["umask"]))  # type: ignore[call-overload]
        _own_stdio(request)
        sys.argv = [str(request["argv0"]), *request["argv"]]  # type: ignore[misc]
        import tempfile

        tempfile.tempdir = None  # picked again from this caller's TMPDIR
        conn.send(marshal.dumps({"pid": os.getpid()}))
        code = _run(list(request["argv"]))  # type: ignore[call-overload]
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            threading._shutdown()  # type: ignore[attr-defined]  # as interpreter exit would: non-daemon threads end
            atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
            conn.send(marshal.dumps({"exit": code}))
        finally:
            os._exit(code & 0xFF)


def _own_stdio(request: dict[str, object]) -> None:
    encodings = request.get("encoding") or ["utf-8"] * 3
    errors = request.get("errors") or ["strict"] * 3
    streams = []
    for fd, mode in ((0, "r"), (1, "w"), (2, "w")):
        raw = io.FileIO(fd, mode, closefd=False)
        buffered = io.BufferedReader(raw) if mode == "r" else io.BufferedWriter(raw)
        line = fd == 2 or os.isatty(fd)
        streams.append(io.TextIOWrapper(buffered, encoding=encodings[fd], errors=errors[fd],  # type: ignore[index]
                                        line_buffering=line and mode == "w"))
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams  # type: ignore[misc]


def _run(argv: list[str]) -> int:
    from mljob.runner.cli import main

    try:
        result = main(argv)
    except SystemExit as done:
        result = done.code  # type: ignore[assignment]
    except KeyboardInterrupt:
        return 130
    if result is None:
        return 0
    if isinstance(result, int):
        return result
    print(result, file=sys.stderr)
    return 1


def command(args: list[str]) -> int:
    """`mljob daemon status|stop` (for people) and `mljob daemon serve --socket PATH` (what a call starts)."""
    import argparse

    from mljob.runner import resident_client

    parser = argparse.ArgumentParser(prog="mljob daemon", description="The resident runner: a warm mljob process "
                                     "that later calls hand their work to (MLJOB_DAEMON=0 turns it off).")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    verbs.add_parser("status", help="whether it runs, since when, how many calls it served (exit 3: none runs)")
    verbs.add_parser("stop", help="stop it (calls it is running go on to their end)")
    serve_verb = verbs.add_parser("serve", help="run it in the foreground (what the first call starts)")
    serve_verb.add_argument("--socket", default=None, help="its socket (default: this installation's)")
    serve_verb.add_argument("--idle", type=float, default=None, help="seconds without a call before it leaves "
                            f"(default: MLJOB_DAEMON_IDLE, else {DEFAULT_IDLE:g})")
    parsed = parser.parse_args(args or ["status"])
    if parsed.verb == "serve":
        return serve(parsed.socket or socket_path(), parsed.idle if parsed.idle is not None else _idle_default())
    reply = resident_client.control(parsed.verb)
    if reply is None:
        print(f"no resident runner (its socket would be {socket_path()})")
        return 0 if parsed.verb == "stop" else 3
    if parsed.verb == "stop":
        running = reply.get("running") or 0
        print(f"resident runner {reply['socket']} stops" + (f" after its {running} running call(s)" if running else ""))
        return 0
    if "pid" not in reply:
        print(f"resident runner {reply['socket']} answered {reply}", file=sys.stderr)
        return 1
    up = time.time() - float(reply.get("started") or time.time())  # type: ignore[arg-type]
    print(f"resident runner pid {reply['pid']}, up {up:.0f} s, {reply.get('served')} call(s) served, "
          f"{reply.get('running')} running; socket {reply['socket']}")
    return 0


def _idle_default() -> float:
    text = os.environ.get("MLJOB_DAEMON_IDLE") or ""
    try:
        return float(text) if text.strip() else DEFAULT_IDLE
    except ValueError:
        print(f"mljob daemon: MLJOB_DAEMON_IDLE={text!r} is not a number of seconds; leaving after "
              f"{DEFAULT_IDLE:g} idle seconds (set it to e.g. 600)", file=sys.stderr)
        return DEFAULT_IDLE


def serve(path: str, idle: float) -> int:
    if os.path.dirname(path) != runtime_dir():
        print(f"mljob daemon: {path} is not in {runtime_dir()}", file=sys.stderr)
        return 2
    os.chdir("/")  # hold no caller's folder busy
    signal.pthread_sigmask(signal.SIG_SETMASK, ())  # whatever its starter had blocked, its children must not inherit
    server = _Server(path=path, idle=idle)
    if not server.lock():
        return 0
    try:
        # Warm before listening: a call that came now would wait for the imports instead of running in-process.
        _warm()
        server.fingerprint = _fingerprint()
        server.bind()
        server.serve()
    finally:
        server.stop_listening()
    return 0
