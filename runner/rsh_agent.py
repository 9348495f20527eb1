#!/usr/bin/env python3
"""mljob-rsh: the ssh-less remote launcher Open MPI's mpirun uses between mljob's containers (`--mca plm_rsh_agent`).

The contract is in runner/distribute.py's docstring. This file is the whole program: standalone and stdlib-only,
since it is bind-mounted into job containers where mljob is not installed and run there as
`python3 /mnt/mljob/bin/mljob-rsh ...` or through the shebang; it stays importable for tests.

    mljob-rsh [SSH-OPTION ...] [USER@]HOST WORD...    the agent: runs `/bin/sh -c "WORD ..."` on HOST's server
    mljob-rsh --serve PORT                            the server: runs what authenticated agents ask for

Environment: MLJOB_RSH_TOKEN (the shared secret; required on both sides), MLJOB_RSH_PORT (the server's port the
agent connects to; default 29499), MLJOB_RSH_CONNECT_TIMEOUT (how long the agent retries connecting; default 60 s),
MLJOB_RSH_BIND (the server's listening address; default 0.0.0.0, tests use 127.0.0.1).

Wire protocol, one TCP connection per command. Every message is a frame: 1 type byte (an ASCII letter), a 4-byte
big-endian payload length, the payload (at most MAX_FRAME bytes; a longer one ends the connection).

    agent → server   H  hello, the first frame: JSON {"protocol": "mljob-rsh/1", "token": ..., "command": ...}
    server → agent   A  accepted (empty): the command runs        R  refused: a UTF-8 reason; then the server closes
    agent → server   I  stdin bytes; an empty payload is end of input
    server → agent   O  stdout bytes     E  stderr bytes     X  exit: 4-byte big-endian status (128+N for signal N),
                                                                always the last frame, after all output

The agent sends nothing after its hello until it is accepted, and the server, after X, reads until the agent hangs
up: neither side closes with unread data in its socket, which would send a TCP reset that can discard the final
frames before the peer reads them. The server takes the end of the connection before X as the agent's death and
kills what the command started: its process group and every descendant (Open MPI's orted puts each rank in a
process group of its own), frozen with SIGSTOP first so that none forks away while being killed. The command's shell
is reaped only when its connection is done, so that until then its pid (and process group id) cannot be reused and
a late kill cannot hit a stranger. SIGTERM (or SIGINT) kills every running command the same way and ends the server
with status 0; the agents then see their connections end and exit 255.

What mpirun asks for (Open MPI 4.1 with plm_rsh_no_tree_spawn): `orted --daemonize ...`, which forks into a session of
its own and lets the command end at once, status 0, so the connection closes and the agent exits within a second.
The daemon then lives outside anything the server tracks, and ends when it loses mpirun (measured: within 2 s of
instance 0's container being killed) or with its container. `--mca orte_leave_session_attached 1` keeps orted in
the command (and so under the kill-on-disconnect above, and its stderr relayed) for the whole run.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import queue
import signal
import socket
import struct
import sys
import threading
import time
from typing import NoReturn

PROTOCOL = "mljob-rsh/1"
DEFAULT_PORT = 29499  # distribute.RSH_PORT: this file cannot import mljob inside a container
DEFAULT_CONNECT_TIMEOUT = 60.0
MAX_FRAME = 1 << 20  # a command line or a chunk of output is far smaller; more is a stray client, not an agent
CHUNK = 65536
HELLO_TIMEOUT = 10.0  # a connection that says nothing is a port scan or a stuck client: not worth a thread for long
DRAIN_TIMEOUT = 10.0  # after X, how long the server waits for the agent to hang up

HELLO, ACCEPT, REFUSE, STDIN, STDOUT, STDERR, EXIT = (b"H", b"A", b"R", b"I", b"O", b"E", b"X")
_HEAD = struct.Struct("!cI")
_STATUS = struct.Struct("!i")
# ssh's options that take a value (ssh(1) synopsis): their value is not the host.
_SSH_VALUE_OPTIONS = set("BbcDEeFIiJLlmOopQRSWw")
USAGE = "usage: mljob-rsh [SSH-OPTION ...] HOST COMMAND...  |  mljob-rsh --serve PORT"


class ProtocolError(Exception):
    """The peer sent something that is not a frame of this protocol."""


# ---- frames ---------------------------------------------------------------------------------------------------------


def send_frame(sock: socket.socket, kind: bytes, payload: bytes = b"", lock: threading.Lock | None = None) -> None:
    data = _HEAD.pack(kind, len(payload)) + payload
    if lock is None:
        sock.sendall(data)
    else:
        with lock:  # several threads write to one socket: a frame must not be cut by another
            sock.sendall(data)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    """`size` bytes, or None if the peer hung up first (at a frame boundary or not)."""
    parts = []
    while size:
        chunk = sock.recv(min(size, CHUNK))
        if not chunk:
            return None
        parts.append(chunk)
        size -= len(chunk)
    return b"".join(parts)


def recv_frame(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The next (type, payload), or None when the peer hung up."""
    head = _recv_exact(sock, _HEAD.size)
    if head is None:
        return None
    kind, size = _HEAD.unpack(head)
    if size > MAX_FRAME:
        raise ProtocolError(f"frame of {size} bytes")
    payload = _recv_exact(sock, size) if size else b""
    return None if payload is None else (kind, payload)


# ---- agent ----------------------------------------------------------------------------------------------------------


def parse_agent_args(args: list[str]) -> tuple[str, str]:
    """ssh's argv → (host, command). Options before the host are skipped, with their values; `user@` is dropped."""
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        arg = args[i]
        i += 1
        if arg == "--":
            break
        # A cluster such as -xp: flags, then maybe one option whose value is the rest or the next word.
        for position, letter in enumerate(arg[1:], start=1):
            if letter in _SSH_VALUE_OPTIONS:
                if position == len(arg) - 1:
                    i += 1
                break
    if i >= len(args):
        raise ValueError("no host given")
    host = args[i].rpartition("@")[2]
    words = args[i + 1:]
    if not host:
        raise ValueError(f"`{args[i]}` names no host")
    if not words:
        raise ValueError("no command given (mljob-rsh runs commands, not interactive shells)")
    return host, " ".join(words)


def _fail(message: str) -> NoReturn:
    print(f"mljob-rsh: {message}", file=sys.stderr, flush=True)
    os._exit(255)  # as ssh does for its own errors; _exit: the stdin thread may be blocked in a read


def _positive_env(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        _fail(f"{name}={raw!r} is not a number")
    if value <= 0:
        _fail(f"{name}={raw!r} must be positive")
    return value


def connect(host: str, port: int, timeout: float) -> socket.socket:
    """A connection to host:port, retried until `timeout` seconds have passed: the server's container may still be
    starting, so that its name does not resolve yet or nothing listens."""
    deadline = time.monotonic() + timeout
    pause = 0.1
    while True:
        try:
            return socket.create_connection((host, port), timeout=min(5.0, timeout))
        except OSError as err:
            left = deadline - time.monotonic()
            if left <= 0:
                _fail(f"cannot connect to {host}:{port} (tried for {timeout:g} s): {err}")
            time.sleep(min(pause, left))
            pause = min(pause * 2, 1.0)


def write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _feed_stdin(sock: socket.socket, lock: threading.Lock) -> None:
    try:
        while True:
            try:
                chunk = os.read(0, CHUNK)
            except OSError:
                chunk = b""  # no stdin at all (closed descriptor): the same as an empty one
            send_frame(sock, STDIN, chunk, lock)
            if not chunk:
                return
    except OSError:
        return  # the connection is gone: the main thread reports it


def run_agent(args: list[str]) -> NoReturn:
    # Killed, the agent just dies: the server sees the connection end and kills the command.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        host, command = parse_agent_args(args)
    except ValueError as err:
        _fail(f"{err}\n{USAGE}")
    token = os.environ.get("MLJOB_RSH_TOKEN", "")
    if not token:
        _fail("MLJOB_RSH_TOKEN is not set: the agent and its server share this secret")
    raw_port = os.environ.get("MLJOB_RSH_PORT", "").strip() or str(DEFAULT_PORT)
    if not raw_port.isdigit() or not 0 < int(raw_port) < 65536:
        _fail(f"MLJOB_RSH_PORT={raw_port!r} is not a TCP port")
    port = int(raw_port)
    sock = connect(host, port, _positive_env("MLJOB_RSH_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT))
    lock = threading.Lock()
    try:
        sock.settimeout(DEFAULT_CONNECT_TIMEOUT)  # the answer to the hello comes at once from a live server
        hello = {"protocol": PROTOCOL, "token": token, "command": command}
        send_frame(sock, HELLO, json.dumps(hello).encode(), lock)
        answer = recv_frame(sock)
        sock.settimeout(None)  # from here on the command may stay silent for as long as it likes
        if answer is None:
            _fail(f"{host}:{port} closed the connection without answering (is it an mljob-rsh server?)")
        if answer[0] == REFUSE:
            _fail(f"{host}:{port} refused the command: {answer[1].decode(errors='replace')}")
        if answer[0] != ACCEPT:
            _fail(f"{host}:{port} answered with an unknown frame {answer[0]!r} (is it an mljob-rsh server?)")
        threading.Thread(target=_feed_stdin, args=(sock, lock), daemon=True, name="stdin").start()
        while (frame := recv_frame(sock)) is not None:
            kind, payload = frame
            if kind in (STDOUT, STDERR):
                # Our reader went away (EPIPE): keep relaying until the command ends, as ssh does, dropping output.
                with contextlib.suppress(OSError):
                    write_all(1 if kind == STDOUT else 2, payload)
            elif kind == EXIT:
                os._exit(_STATUS.unpack(payload)[0] & 0xFF)
    except (OSError, ProtocolError, struct.error) as err:
        _fail(f"connection to {host}:{port} failed: {err}")
    _fail(f"connection to {host}:{port} lost before the command ended (server stopped?)")


# ---- server ---------------------------------------------------------------------------------------------------------


def _processes() -> list[tuple[int, int, bytes]]:
    """(pid, parent pid, state) of every process, from /proc; none where there is no /proc (then only process groups
    are killed, and no orphan is reaped)."""
    found = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return found
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after its last ")".
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            found.append((int(name), int(fields[1]), fields[0]))
    return found


def _descendants(root: int) -> set[int]:
    tree: dict[int, list[int]] = {}
    for pid, parent, _ in _processes():
        tree.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_tree(leader: int) -> None:
    """SIGKILL for the process group `leader` heads and every descendant of `leader`, whatever its group. `leader`
    must not be reaped yet (alive or a zombie), so that neither id can belong to another process."""
    stopped: set[int] = set()
    with contextlib.suppress(OSError):
        os.killpg(leader, signal.SIGSTOP)
    # Freeze until a scan finds nothing new: a stopped process forks no more, and its children stay its children.
    for _ in range(20):
        fresh = ({leader} | _descendants(leader)) - stopped
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
        stopped |= fresh
    with contextlib.suppress(OSError):
        os.killpg(leader, signal.SIGKILL)
    for pid in stopped:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _ensure_std_fds() -> None:
    # A pipe made while 0, 1 or 2 is closed would take that number, and the child's dup2 onto it would go wrong.
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)  # takes the lowest free number: this one


class Server:
    """Serves agents on one port: a thread per connection, one command each."""

    def __init__(self, token: str) -> None:
        self.token = token
        self._lock = threading.Lock()  # guards _sessions, and spawning against the orphan reaper
        self._sessions: set[Session] = set()

    def serve(self, listener: socket.socket) -> NoReturn:
        signal.signal(signal.SIGTERM, self._terminate)
        signal.signal(signal.SIGINT, self._terminate)
        if os.getpid() == 1:  # a container's main process without --init: orphans become ours to reap
            threading.Thread(target=self._reap_orphans, daemon=True, name="orphans").start()
        while True:
            try:
                conn, peer = listener.accept()
            except OSError as err:
                print(f"mljob-rsh: accept failed: {err}", file=sys.stderr, flush=True)
                time.sleep(0.1)  # e.g. out of descriptors: do not spin
                continue
            threading.Thread(target=Session(self, conn, peer).run, daemon=True, name=f"session-{peer}").start()

    def _terminate(self, signum: int, frame: object) -> NoReturn:
        with self._lock:
            sessions = list(self._sessions)
        for session in sessions:
            session.kill()
        os._exit(0)

    def spawn(self, session: Session, command: str) -> tuple[int, int, int, int]:
        """Starts `/bin/sh -c command` in a new session (so its own process group); → (pid, stdin, stdout, stderr).
        The pipes' other ends are close-on-exec (Python's default), so the child keeps only its three."""
        fds: list[tuple[int, int]] = []
        try:
            fds += [os.pipe() for _ in range(3)]
            child_ends = (fds[0][0], fds[1][1], fds[2][1])
            actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(child_ends)]
            with self._lock:
                pid = os.posix_spawn("/bin/sh", ["/bin/sh", "-c", command], os.environ, file_actions=actions,
                                     setsid=True, setsigmask=(),
                                     # Python ignores SIGPIPE and SIGXFSZ; the command must not inherit that.
                                     setsigdef=(signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGTERM))
                session.pid = pid
                self._sessions.add(session)
        except BaseException:
            for fd in (fd for pair in fds for fd in pair):
                os.close(fd)
            raise
        for fd in child_ends:
            os.close(fd)
        return pid, fds[0][1], fds[1][0], fds[2][0]

    def forget(self, session: Session) -> None:
        with self._lock:
            self._sessions.discard(session)

    def _reap_orphans(self) -> None:
        me = os.getpid()
        while True:
            time.sleep(1.0)
            with self._lock:  # a command's shell is its session's to reap, even one that ended at once
                ours = {s.pid for s in self._sessions}
                for pid, parent, state in _processes():
                    if parent == me and state == b"Z" and pid not in ours:
                        with contextlib.suppress(ChildProcessError):
                            os.waitpid(pid, os.WNOHANG)


class Session:
    """One connection: authenticate, run the command, relay its streams, report its status."""

    def __init__(self, server: Server, conn: socket.socket, peer: object) -> None:
        self.server = server
        self.conn = conn
        self.peer = peer
        self.send_lock = threading.Lock()
        self.pid: int | None = None
        self._over = threading.Event()  # the status was sent: the connection's end kills nothing
        self._stdin: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    def kill(self) -> None:
        if self.pid is not None:
            kill_tree(self.pid)

    def run(self) -> None:
        try:
            with self.conn:
                self._serve()
        except Exception as err:  # noqa: BLE001 (one connection's failure must not end the server)
            print(f"mljob-rsh: connection from {self.peer}: {err}", file=sys.stderr, flush=True)
            self.kill()
        finally:
            if self.pid is not None:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(self.pid, 0)  # now, and only now, the pid may be reused
            self.server.forget(self)

    def _refuse(self, reason: str, log: str) -> None:
        print(f"mljob-rsh: refused {self.peer}: {log}", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            send_frame(self.conn, REFUSE, reason.encode())

    def _serve(self) -> None:
        self.conn.settimeout(HELLO_TIMEOUT)
        try:
            first = recv_frame(self.conn)
        except (OSError, ProtocolError):
            return  # not an agent
        if first is None or first[0] != HELLO:
            return
        try:
            hello = json.loads(first[1])
            token, command = str(hello["token"]), str(hello["command"])
            protocol = hello.get("protocol")
        except (ValueError, KeyError, TypeError):
            self._refuse("malformed hello", "malformed hello")
            return
        if protocol != PROTOCOL:
            self._refuse(f"this server speaks {PROTOCOL}, not {protocol}", f"protocol {protocol}")
            return
        if not hmac.compare_digest(token.encode(), self.server.token.encode()):
            self._refuse("wrong token (the agent's MLJOB_RSH_TOKEN differs from the server's)", "wrong token")
            return
        self.conn.settimeout(None)
        send_frame(self.conn, ACCEPT, b"", self.send_lock)
        try:
            pid, stdin, stdout, stderr = self.server.spawn(self, command)
        except OSError as err:  # no /bin/sh, no memory, no descriptors: the agent reports it like a shell would
            send_frame(self.conn, STDERR, f"mljob-rsh: cannot start /bin/sh on the server: {err}\n".encode(),
                       self.send_lock)
            if self._finish(127):
                self._drain()
            return
        pumps = [threading.Thread(target=self._pump, args=(fd, kind), daemon=True)
                 for fd, kind in ((stdout, STDOUT), (stderr, STDERR))]
        for pump in pumps:
            pump.start()
        threading.Thread(target=self._write_stdin, args=(stdin,), daemon=True).start()
        reader = threading.Thread(target=self._read_agent, daemon=True)
        reader.start()
        # WNOWAIT: learn the status but leave the zombie, so that the pid stays ours until run() reaps it.
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        assert result is not None
        status = result.si_status if result.si_code == os.CLD_EXITED else 128 + result.si_status
        # As ssh: the status goes after all output, i.e. once whatever the command left running has closed its
        # stdout and stderr too.
        for pump in pumps:
            pump.join()
        if self._finish(status):
            reader.join(DRAIN_TIMEOUT)

    def _finish(self, status: int) -> bool:
        """Sends the status, the last frame; whether the agent was still there to receive it."""
        try:
            send_frame(self.conn, EXIT, _STATUS.pack(status), self.send_lock)
            self._over.set()
            self.conn.shutdown(socket.SHUT_WR)
        except OSError:
            return False  # the agent is gone; the reader has killed what was left
        return True

    def _drain(self) -> None:
        """Reads what the agent still sends until it hangs up, so that closing sends no reset (see the docstring)."""
        self.conn.settimeout(DRAIN_TIMEOUT)
        with contextlib.suppress(OSError):
            while self.conn.recv(CHUNK):
                pass

    def _pump(self, fd: int, kind: bytes) -> None:
        try:
            while chunk := os.read(fd, CHUNK):
                send_frame(self.conn, kind, chunk, self.send_lock)
        except OSError:
            self._agent_gone()  # sending failed: the agent went away
        finally:
            os.close(fd)

    def _write_stdin(self, fd: int) -> None:
        # Its own thread, fed by an unbounded queue: a command that does not read its stdin blocks this writer, never
        # the reader, which must keep watching the connection to notice the agent's death.
        try:
            while data := self._stdin.get():  # None: the agent is gone; b"": end of input
                write_all(fd, data)
        except OSError:
            pass  # the command closed its stdin or ended: what it did not read is dropped, as with a pipe
        finally:
            os.close(fd)

    def _read_agent(self) -> None:
        try:
            while (frame := recv_frame(self.conn)) is not None:
                if frame[0] == STDIN:
                    self._stdin.put(frame[1])
        except (OSError, ProtocolError):
            pass
        self._stdin.put(None)
        self._agent_gone()

    def _agent_gone(self) -> None:
        if not self._over.is_set():
            self.kill()


def run_server(args: list[str]) -> NoReturn:
    if len(args) != 1 or not args[0].isdigit() or not 0 < int(args[0]) < 65536:
        _fail(f"--serve needs a TCP port\n{USAGE}")
    token = os.environ.get("MLJOB_RSH_TOKEN", "")
    if not token:
        # Without a secret anyone who reaches the port could run commands: refuse to start rather than serve all.
        print("mljob-rsh: MLJOB_RSH_TOKEN is not set: refusing to serve without a shared secret", file=sys.stderr)
        sys.exit(2)
    _ensure_std_fds()
    address = os.environ.get("MLJOB_RSH_BIND", "").strip() or "0.0.0.0"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((address, int(args[0])))
    except OSError as err:
        print(f"mljob-rsh: cannot listen on {address}:{args[0]}: {err}", file=sys.stderr)
        sys.exit(2)
    listener.listen(64)
    print(f"mljob-rsh: serving on {address}:{args[0]}", file=sys.stderr, flush=True)
    Server(token).serve(listener)


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--serve"]:
        run_server(args[1:])
    if args[:1] in (["-h"], ["--help"]):
        print(__doc__)
        sys.exit(0)
    run_agent(args)


if __name__ == "__main__":
    main()
