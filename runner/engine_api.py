"""The few Docker Engine API calls a run makes, over the engine's socket with the standard library.

Why not the `docker` SDK here: importing it (with requests and urllib3) takes about 170 ms, half the time a whole
hello-world container takes. The SDK stays for the rare, slow work (builds, pulls, probes: runner/images.py).
Unversioned API paths are used: the engine answers them with its own current version, so no negotiation round trip.
DOCKER_HOST may be unix://PATH or tcp://HOST:PORT (plain); TLS and ssh hosts are not supported by this client.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlparse

DEFAULT_HOST = "unix:///var/run/docker.sock"


class EngineDown(RuntimeError):
    """No engine answers at the address."""


class APIError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def address() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def parse_bytes(text: str | int) -> int:
    """Sizes as Docker writes them, in binary multiples: `2g`, `512m`, `64k`, `1.5GiB`, `1024` (bytes). The one size
    parser of the runner (shm_size, MLJOB_COPY_LIMIT)."""
    if isinstance(text, int):
        return text
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", str(text).lower())
    if not found:
        raise ValueError(f"`{text}` is not a size (e.g. 2g, 512m)")
    factor = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}[found.group(2)]
    return int(float(found.group(1)) * factor)


class Engine:
    def __init__(self, host: str | None = None) -> None:
        self.host = host or address()
        parsed = urlparse(self.host)
        if parsed.scheme not in ("unix", "tcp", "http"):
            raise EngineDown(f"DOCKER_HOST={self.host}: mljob talks to unix:// and tcp:// engines only")
        self._parsed = parsed

    def _connection(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._parsed.scheme == "unix":
            return _UnixConnection(self._parsed.path, timeout)
        return http.client.HTTPConnection(self._parsed.hostname or "localhost", self._parsed.port or 2375,
                                          timeout=timeout)

    def _send(self, method: str, path: str, body: Any = None, timeout: float | None = 60
              ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = self._connection(timeout)
        payload = json.dumps(body) if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
        except OSError as err:  # refused, missing socket, timeout
            conn.close()
            raise EngineDown(f"Docker engine not reachable at {self.host} ({err})") from None
        if response.status >= 400:
            data = response.read()
            conn.close()
            try:
                message = json.loads(data).get("message", "")
            except ValueError:
                message = data.decode("utf-8", errors="replace")
            raise APIError(response.status, message.strip() or f"HTTP {response.status}")
        return conn, response

    def call(self, method: str, path: str, body: Any = None, timeout: float | None = 60) -> Any:
        conn, response = self._send(method, path, body, timeout)
        try:
            data = response.read()
        finally:
            conn.close()
        return json.loads(data) if data.strip() else None

    # --- the calls ------------------------------------------------------------------------------------------------

    def ping(self) -> None:
        conn, response = self._send("GET", "/_ping", timeout=10)
        response.read()
        conn.close()

    def image_exists(self, ref: str) -> bool:
        try:
            self.call("GET", f"/images/{quote(ref, safe='/:@')}/json")
        except APIError as err:
            if err.status < 500:  # 404, or an invalid reference: not present
                return False
            raise
        return True

    def create(self, config: dict[str, Any], name: str | None = None) -> str:
        query = f"?{urlencode({'name': name})}" if name else ""
        return str(self.call("POST", f"/containers/create{query}", config)["Id"])

    def start(self, container: str) -> None:
        self.call("POST", f"/containers/{container}/start")

    def wait(self, container: str) -> int:
        """Blocks until the container ends; its exit code."""
        found = self.call("POST", f"/containers/{container}/wait", timeout=None)
        return int(found.get("StatusCode", -1))

    def attach(self, container: str) -> Iterator[bytes]:
        """stdout and stderr from the container's start to its end; call it before `start` so nothing is missed.

        What `docker run` does too: a log stream opened after a short job has ended takes the engine ~90 ms to
        answer, an attached stream ends the moment the container does.
        """
        conn, response = self._send("POST", f"/containers/{container}/attach?stream=1&stdout=1&stderr=1",
                                    timeout=None)
        return _frames(conn, response)

    def stop(self, container: str, grace: int) -> None:
        self.call("POST", f"/containers/{container}/stop?t={grace}", timeout=grace + 30)

    def remove(self, container: str) -> None:
        self.call("DELETE", f"/containers/{container}?force=1")

    def containers(self, labels: list[str]) -> list[dict[str, Any]]:
        filters = json.dumps({"label": labels})
        return list(self.call("GET", f"/containers/json?{urlencode({'all': 1, 'filters': filters})}") or [])

    def create_network(self, name: str, labels: dict[str, str]) -> str:
        found = self.call("POST", "/networks/create", {"Name": name, "CheckDuplicate": True, "Driver": "bridge",
                                                        "Labels": labels})
        return str(found["Id"])

    def remove_network(self, network: str) -> None:
        self.call("DELETE", f"/networks/{network}")

    def networks(self, labels: list[str]) -> list[dict[str, Any]]:
        filters = json.dumps({"label": labels})
        return list(self.call("GET", f"/networks?{urlencode({'filters': filters})}") or [])


def _frames(conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> Iterator[bytes]:
    """The payloads of the engine's multiplexed stream (8-byte header: stream, 3 zero bytes, big-endian size)."""
    try:
        while True:
            header = response.read(8)
            if len(header) < 8:
                return
            size = int.from_bytes(header[4:8], "big")
            if size:
                chunk = response.read(size)
                if not chunk:
                    return
                yield chunk
    finally:
        conn.close()
