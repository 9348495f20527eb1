"""mljob-rsh (runner/rsh_agent.py), the launcher mpirun uses between containers, run here on the host: a real server
subprocess on a loopback port and real agent subprocesses, as mpirun would start them (no Docker needed)."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mljob.runner import rsh_agent
from mljob.runner.distribute import RSH_PORT, free_port

from tests.runner.helpers import wait_for

AGENT = Path(rsh_agent.__file__)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]  # what an agent needs to reach it: token and port
    log: Path

    def agent(self, *args: str, stdin: bytes | None = None, **env: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, str(AGENT), *args], input=stdin, capture_output=True, timeout=120,
                              env={**self.env, **env}, stdin=None if stdin is not None else subprocess.DEVNULL)

    def start_agent(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(AGENT), *args], env=self.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def start_server(tmp_path: Path, port: int, token: str) -> Server:
    log = tmp_path / f"server-{port}.log"
    env = {**os.environ, "MLJOB_RSH_TOKEN": token, "MLJOB_RSH_PORT": str(port), "MLJOB_RSH_BIND": "127.0.0.1"}
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, str(AGENT), "--serve", str(port)], env=env, cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=sink)
    server = Server(proc, port, env, log)
    wait_for(lambda: "serving on" in log.read_text() or proc.poll() is not None, what="the server to listen")
    assert proc.poll() is None, log.read_text()
    return server


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path, free_port(), secrets.token_hex(16))
    yield running
    stop(running.proc)


def alive(pid: int) -> bool:
    """Whether pid runs: a zombie (dead, waiting for a parent that may never reap it) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:].split()[0] != b"Z"


def pids_in(folder: Path, *names: str) -> list[int]:
    """The pids the remote command wrote, once it has written them all."""
    def ready() -> list[int] | None:
        texts = [(folder / n).read_text() if (folder / n).exists() else "" for n in names]
        return [int(t) for t in texts] if all(t.endswith("\n") for t in texts) else None

    return wait_for(ready, what=f"the command to write {', '.join(names)}")  # type: ignore[return-value]


# The remote command: its shell, a child in the same process group, and one that left it (setsid), as Open MPI's
# orted does with every rank. Each writes its pid (the trailing newline marks the file complete), then all wait.
LONG_RUNNING = ("echo $$ >{d}/shell.tmp && mv {d}/shell.tmp {d}/shell; "
                "sleep 300 & echo $! >{d}/child.tmp && mv {d}/child.tmp {d}/child; "
                "setsid sleep 300 & echo $! >{d}/escaped.tmp && mv {d}/escaped.tmp {d}/escaped; wait")


def test_stdout_and_stderr_are_relayed_apart(server: Server) -> None:
    done = server.agent("127.0.0.1", "echo", "out;", "echo", "err", ">&2;", "echo", "more")
    assert (done.returncode, done.stdout, done.stderr) == (0, b"out\nmore\n", b"err\n")


def test_exit_status_is_relayed(server: Server) -> None:
    assert server.agent("127.0.0.1", "exit 7").returncode == 7
    assert server.agent("127.0.0.1", "kill -TERM $$").returncode == 128 + signal.SIGTERM  # as a shell reports it


def test_stdin_is_relayed(server: Server) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # several frames and more than a pipe buffer
    done = server.agent("127.0.0.1", "cat", stdin=data)
    assert done.returncode == 0, done.stderr
    assert done.stdout == data


def test_large_output_arrives_whole(server: Server) -> None:
    done = server.agent("127.0.0.1", "head -c 5000000 /dev/zero; echo end >&2")
    assert (len(done.stdout), done.stderr) == (5000000, b"end\n")


def test_ssh_options_before_the_host_are_skipped(server: Server, tmp_path: Path) -> None:
    # What mpirun's rsh launcher may pass to an ssh-like agent; the command runs in the server's directory.
    done = server.agent("-x", "-p", "22", "-oBatchMode=yes", "-l", "me", "user@127.0.0.1", "pwd")
    assert (done.returncode, done.stdout.decode().strip()) == (0, str(tmp_path))


@pytest.mark.parametrize(("argv", "expected"), [
    (["h", "echo", "a  b"], ("h", "echo a  b")),  # words joined with single spaces, as ssh does
    (["-x", "-p", "22", "h", "orted", "-mca", "x"], ("h", "orted -mca x")),
    (["-xp22", "-o", "A=b", "-4", "u@h", "true"], ("h", "true")),
    (["-i", "key", "--", "h", "-x"], ("h", "-x")),
])
def test_ssh_argv(argv: list[str], expected: tuple[str, str]) -> None:
    assert rsh_agent.parse_agent_args(argv) == expected


@pytest.mark.parametrize("argv", [[], ["-p", "22"], ["host"], ["user@", "true"]])
def test_ssh_argv_without_host_or_command(argv: list[str]) -> None:
    with pytest.raises(ValueError):
        rsh_agent.parse_agent_args(argv)


def test_wrong_token_is_refused(server: Server, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    done = server.agent("127.0.0.1", f"touch {marker}", MLJOB_RSH_TOKEN="not-the-token")
    assert done.returncode == 255
    assert b"refused" in done.stderr and b"wrong token" in done.stderr, done.stderr
    assert not marker.exists()
    assert "wrong token" in server.log.read_text()
    assert server.agent("127.0.0.1", "true").returncode == 0  # and the server goes on serving


def closed_without_a_word(port: int, data: bytes) -> bool:
    with socket.create_connection(("127.0.0.1", port)) as stray:
        stray.sendall(data)
        try:
            return stray.recv(100) == b""
        except ConnectionResetError:
            return True  # closed with our bytes unread: the kernel answers with a reset


def test_stray_clients_do_not_disturb_the_server(server: Server) -> None:
    assert closed_without_a_word(server.port, b"GET / HTTP/1.0\r\n\r\n")  # not a frame of ours
    assert closed_without_a_word(server.port, b"H\xff\xff\xff\xff")  # a hello announcing 4 GB
    assert closed_without_a_word(server.port, b"I\x00\x00\x00\x02hi")  # stdin before any hello
    assert server.agent("127.0.0.1", "echo still here").stdout == b"still here\n"


def test_many_connections_at_once(server: Server) -> None:
    agents = [server.start_agent("127.0.0.1", f"echo {i}; sleep 1; exit {i}") for i in range(12)]
    results = [(a.communicate(timeout=120)[0], a.returncode) for a in agents]
    assert results == [(f"{i}\n".encode(), i) for i in range(12)]


def test_killed_agent_kills_what_its_command_started(server: Server, tmp_path: Path) -> None:
    agent = server.start_agent("127.0.0.1", LONG_RUNNING.format(d=tmp_path))
    try:
        pids = pids_in(tmp_path, "shell", "child", "escaped")
        assert all(alive(p) for p in pids)
    finally:
        agent.kill()  # as mpirun does to its ssh children on abort
        agent.wait()
    wait_for(lambda: not any(alive(p) for p in pids), what=f"the server to kill {pids}")
    assert server.proc.poll() is None
    assert server.agent("127.0.0.1", "echo next").stdout == b"next\n"


def test_sigterm_ends_the_server_and_its_commands(server: Server, tmp_path: Path) -> None:
    agent = server.start_agent("127.0.0.1", LONG_RUNNING.format(d=tmp_path))
    try:
        pids = pids_in(tmp_path, "shell", "child", "escaped")
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=60) == 0
        _, err = agent.communicate(timeout=60)
    finally:
        stop(agent)
    assert agent.returncode == 255  # ssh's status when the connection drops
    assert b"lost" in err, err
    wait_for(lambda: not any(alive(p) for p in pids), what=f"{pids} to be killed with the server")


def test_agent_waits_for_a_late_server(tmp_path: Path) -> None:
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "MLJOB_RSH_TOKEN": token, "MLJOB_RSH_PORT": str(port)}
    agent = subprocess.Popen([sys.executable, str(AGENT), "127.0.0.1", "echo", "late"], env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    late: Server | None = None
    try:
        time.sleep(1.5)  # not a measurement: only lets the agent fail a few attempts first
        assert agent.poll() is None
        late = start_server(tmp_path, port, token)
        out, err = agent.communicate(timeout=90)
    finally:
        stop(agent)
        if late is not None:
            stop(late.proc)
    assert (agent.returncode, out) == (0, b"late\n"), err


def test_agent_gives_up_when_nothing_listens() -> None:
    env = {**os.environ, "MLJOB_RSH_TOKEN": "t", "MLJOB_RSH_PORT": str(free_port()), "MLJOB_RSH_CONNECT_TIMEOUT": "1"}
    done = subprocess.run([sys.executable, str(AGENT), "127.0.0.1", "true"], env=env, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 255
    assert b"cannot connect to 127.0.0.1:" in done.stderr


def test_agent_and_server_need_a_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MLJOB_RSH_TOKEN"}
    agent = subprocess.run([sys.executable, str(AGENT), "127.0.0.1", "true"], env=env, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
    assert (agent.returncode, b"MLJOB_RSH_TOKEN" in agent.stderr) == (255, True)
    served = subprocess.run([sys.executable, str(AGENT), "--serve", str(free_port())], env=env, capture_output=True,
                            stdin=subprocess.DEVNULL, timeout=60)
    assert served.returncode == 2
    assert b"MLJOB_RSH_TOKEN is not set" in served.stderr


def test_default_port_is_distribute_s() -> None:
    # The agent cannot import mljob inside a container, so it keeps its own copy of the port.
    assert rsh_agent.DEFAULT_PORT == RSH_PORT


def test_a_command_that_cannot_start_reports_127(monkeypatch: pytest.MonkeyPatch) -> None:
    # In process, over a socket pair: what the agent would receive if the server could not start /bin/sh.
    def no_spawn(*args: object, **kwargs: object) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(os, "posix_spawn", no_spawn)
    ours, theirs = socket.socketpair()
    session = rsh_agent.Session(rsh_agent.Server("t"), theirs, "test")
    hello = {"protocol": rsh_agent.PROTOCOL, "token": "t", "command": "true"}
    rsh_agent.send_frame(ours, rsh_agent.HELLO, json.dumps(hello).encode())
    serving = threading.Thread(target=session.run)
    serving.start()
    frames = []
    while (frame := rsh_agent.recv_frame(ours)) is not None:
        frames.append(frame)
    ours.close()
    serving.join()
    assert frames[0] == (rsh_agent.ACCEPT, b"")
    assert frames[1][0] == rsh_agent.STDERR and b"Too many open files" in frames[1][1]
    assert frames[2] == (rsh_agent.EXIT, (127).to_bytes(4, "big"))
