"""Latency and memory of language servers over stdio: ours (`mljob lsp`) beside redhat's yaml-language-server.

    .venv/bin/python bench/lsp.py [--repeat 40] [--only mljob]

A plain JSON-RPC driver (asyncio subprocess, Content-Length framing; no LSP library), so that both servers are
measured the same way: open→diagnostics, edit→diagnostics (incremental edits), completion and hover (median and
p95) and the server's resident memory (VmRSS and its peak VmHWM, from /proc), on a 35-line job and on the generated
3,000-line job (bench/generate.py). Both servers get the same text, except that yaml-language-server's copy has its
`$schema:` line turned into a comment of the same length: it would otherwise download that URL. It is pointed at
our bundled commandJob schema through its `yaml.schemas` setting instead (a file path; the schema store is off),
and its HTTP proxy is set to a closed local port, so it cannot fetch anything.

yaml-language-server comes from npm into bench/node/ (ignored by git: nothing there is committed). This script
installs it when it is missing, as

    mkdir -p bench/node && cd bench/node && npm install --no-audit --no-fund yaml-language-server@2.0.0

(2.0.0 declares node >= 22.13; it runs on Debian's node 20 with an engine warning.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from generate import big_command_job  # noqa: E402

NODE_DIR = HERE / "node"
YAML_LS_VERSION = "2.0.0"  # the version the figures were measured with
YAML_LS = NODE_DIR / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
SCHEMA = ROOT / "schemas" / "commandJob.schema.json"
TIMEOUT = 60.0

SMALL = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
type: command
display_name: hello-mljob
experiment_name: hello
description: Train a tiny logistic regression on generated data and log its accuracy.
code: src
command: >-
  python train.py
  --epochs ${{inputs.epochs}}
  --learning-rate ${{inputs.learning_rate}}
  --data ${{inputs.data}}
  --model-dir ${{outputs.model}}
inputs:
  epochs: 20
  learning_rate: 0.5
  data:
    type: uri_folder
    path: azureml://datastores/workspaceblobstore/paths/data/
    mode: download
outputs:
  model:
    type: uri_folder
    mode: rw_mount
environment:
  image: python:3.11-slim
compute: local
resources:
  instance_count: 1
  shm_size: 2g
environment_variables:
  OMP_NUM_THREADS: "2"
tags:
  team: vision
  stage: dev
  owner: bench
"""


# --- JSON-RPC over stdio --------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    settings: dict[str, Any]
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    next_id: int = 0
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)
    published: dict[str, list[tuple[float, int | None]]] = field(default_factory=dict)  # uri → (time, version)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    capabilities: dict[str, Any] = field(default_factory=dict)
    reader: asyncio.Task[None] | None = None

    async def start(self, root: Path) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *self.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL, env={**os.environ, **self.env}, limit=64 * 1024 * 1024)
        self.reader = asyncio.create_task(self._read())
        result = await self.request("initialize", {
            "processId": os.getpid(), "rootUri": root.as_uri(),
            "workspaceFolders": [{"uri": root.as_uri(), "name": "bench"}],
            "capabilities": {
                "workspace": {"configuration": True, "didChangeConfiguration": {"dynamicRegistration": True}},
                "textDocument": {
                    "synchronization": {"didSave": True},
                    "completion": {"completionItem": {"snippetSupport": True, "documentationFormat": ["markdown"]}},
                    "hover": {"contentFormat": ["markdown", "plaintext"]},
                    "publishDiagnostics": {"versionSupport": True}}},
            "initializationOptions": self.settings})
        self.capabilities = result.get("capabilities", {}) if isinstance(result, dict) else {}
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": self.settings})

    async def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.request("shutdown", None), 5)
            self.notify("exit", None)
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        if self.reader is not None:
            self.reader.cancel()

    def _send(self, message: dict[str, Any]) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def notify(self, method: str, params: Any) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    async def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        self._send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return await asyncio.wait_for(future, TIMEOUT)

    async def timed(self, method: str, params: Any) -> tuple[float, Any]:
        began = time.perf_counter()
        result = await self.request(method, params)
        return (time.perf_counter() - began) * 1000, result

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stream = self.proc.stdout
        while True:
            length = 0
            while True:
                line = await stream.readline()
                if not line:
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            message = json.loads(await stream.readexactly(length))
            self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" not in message:
            future = self.pending.pop(message["id"], None)
            if future is not None and not future.done():
                if "error" in message:
                    future.set_exception(RuntimeError(f"{self.name}: {message['error']}"))
                else:
                    future.set_result(message.get("result"))
            return
        method = message.get("method")
        if "id" in message:  # a request from the server: answer what editors answer
            result: Any = None
            if method == "workspace/configuration":
                result = [self._section(item.get("section")) for item in message["params"]["items"]]
            self._send({"jsonrpc": "2.0", "id": message["id"], "result": result})
        elif method == "textDocument/publishDiagnostics":
            params = message["params"]
            self.published.setdefault(params["uri"], []).append((time.perf_counter(), params.get("version")))
            self.changed.set()

    def _section(self, section: str | None) -> Any:
        if not section:
            return self.settings
        node: Any = self.settings
        for part in section.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    async def diagnostics_after(self, uri: str, count: int) -> float:
        """Time at which publication number `count + 1` for `uri` arrived."""
        deadline = time.perf_counter() + TIMEOUT
        while True:
            found = self.published.get(uri, [])
            if len(found) > count:
                return found[count][0]
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{self.name}: no diagnostics for {uri}")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1)

    def incremental(self) -> bool:
        sync = self.capabilities.get("textDocumentSync")
        kind = sync.get("change") if isinstance(sync, dict) else sync
        return kind == 2

    def memory(self) -> tuple[float, float]:
        """(VmRSS, VmHWM) of the server process in MiB."""
        assert self.proc is not None
        found = {"VmRSS": 0.0, "VmHWM": 0.0}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in found:
                    found[name] = int(value.split()[0]) / 1024
        return found["VmRSS"], found["VmHWM"]


# --- what is measured -----------------------------------------------------------------------------------------------


@dataclass
class Probe:
    """Positions in a job text: a key being typed, a value, a hover target (both servers answer those), and an
    expression (only ours knows input names; yaml-language-server sees a string)."""

    key: tuple[int, int]
    value: tuple[int, int]
    hover: tuple[int, int]
    edit: tuple[int, int]  # a character of a value that the edits change back and forth
    expression: tuple[int, int]  # inside `${{inputs.…}}` in the command: every input name is an answer


def probe(text: str) -> Probe:
    lines = text.split("\n")

    def find(prefix: str) -> int:
        return next(i for i, line in enumerate(lines) if line.startswith(prefix))

    shm = find("  shm_size:")
    mode = max(i for i, line in enumerate(lines) if line.startswith("    mode: download"))
    display = find("display_name:")
    expression = next(i for i, line in enumerate(lines) if "${{inputs." in line)
    return Probe(key=(shm, 4), value=(mode, len("    mode: ")), hover=(shm, 4), edit=(display, len(lines[display])),
                 expression=(expression, lines[expression].index("${{inputs.") + len("${{inputs.")))


def quantiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered), p95


@dataclass
class Result:
    open: list[float] = field(default_factory=list)
    edit: list[float] = field(default_factory=list)
    completion: list[float] = field(default_factory=list)
    expression: list[float] = field(default_factory=list)
    typing: list[float] = field(default_factory=list)
    hover: list[float] = field(default_factory=list)
    completion_items: int = 0
    rss: float = 0.0
    peak: float = 0.0


async def measure(server: Server, folder: Path, text: str, name: str, repeat: int) -> Result:
    result = Result()
    where = probe(text)
    # open → diagnostics, on fresh uris (a close may publish an empty list that must not be mistaken for it)
    for i in range(max(3, repeat // 4)):
        uri = (folder / f"{name}-open-{i}.yml").as_uri()
        began = time.perf_counter()
        server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1,
                                                                "text": text}})
        arrived = await server.diagnostics_after(uri, 0)
        result.open.append((arrived - began) * 1000)
        server.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    uri = (folder / f"{name}.yml").as_uri()
    server.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1,
                                                            "text": text}})
    await server.diagnostics_after(uri, 0)
    lines = text.split("\n")
    line, column = where.edit
    original = lines[line]
    # edit → diagnostics: type a character at the end of a value, then delete it, one change per version
    for version in range(2, repeat + 2):
        count = len(server.published.get(uri, []))
        if version % 2 == 0:
            change = {"range": _range(line, column, line, column), "text": "x"}
            lines[line] = original + "x"
        else:
            change = {"range": _range(line, column, line, column + 1), "text": ""}
            lines[line] = original
        if not server.incremental():
            change = {"text": "\n".join(lines)}
        began = time.perf_counter()
        server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [change]})
        arrived = await server.diagnostics_after(uri, count)
        result.edit.append((arrived - began) * 1000)
    # completion right after an edit, as an editor asks while someone types: the edit's validation is running
    for version in range(repeat + 2, 2 * repeat + 2):
        count = len(server.published.get(uri, []))
        if version % 2 == 0:
            change = {"range": _range(line, column, line, column), "text": "x"}
            lines[line] = original + "x"
        else:
            change = {"range": _range(line, column, line, column + 1), "text": ""}
            lines[line] = original
        if not server.incremental():
            change = {"text": "\n".join(lines)}
        server.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": version},
                                                 "contentChanges": [change]})
        elapsed, _ = await server.timed("textDocument/completion", {
            "textDocument": {"uri": uri}, "position": {"line": where.key[0], "character": where.key[1]}})
        result.typing.append(elapsed)
        await server.diagnostics_after(uri, count)
    # completion and hover on the settled text; two warm-up requests each are not counted
    doc = {"uri": uri}
    for i in range(repeat + 2):
        position = where.key if i % 2 == 0 else where.value
        elapsed, answer = await server.timed("textDocument/completion", {
            "textDocument": doc, "position": {"line": position[0], "character": position[1]}})
        if i >= 2:
            result.completion.append(elapsed)
        items = answer.get("items", []) if isinstance(answer, dict) else answer or []
        result.completion_items = max(result.completion_items, len(items))
    for i in range(repeat + 2):
        elapsed, _ = await server.timed("textDocument/completion", {
            "textDocument": doc, "position": {"line": where.expression[0], "character": where.expression[1]}})
        if i >= 2:
            result.expression.append(elapsed)
    for i in range(repeat + 2):
        elapsed, _ = await server.timed("textDocument/hover", {
            "textDocument": doc, "position": {"line": where.hover[0], "character": where.hover[1]}})
        if i >= 2:
            result.hover.append(elapsed)
    result.rss, result.peak = server.memory()
    server.notify("textDocument/didClose", {"textDocument": doc})
    return result


def _range(sl: int, sc: int, el: int, ec: int) -> dict[str, Any]:
    return {"start": {"line": sl, "character": sc}, "end": {"line": el, "character": ec}}


def for_yaml_ls(text: str) -> str:
    """yaml-language-server would download a `$schema:` URL: the line becomes a comment (same line count)."""
    return "\n".join("# $schema omitted: yaml-language-server would download it" if line.startswith("$schema:")
                     else line for line in text.split("\n"))


def ensure_yaml_ls() -> bool:
    if YAML_LS.exists():
        return True
    if shutil.which("npm") is None or shutil.which("node") is None:
        print("yaml-language-server: node/npm not found; measuring mljob only", file=sys.stderr)
        return False
    print(f"installing yaml-language-server {YAML_LS_VERSION} into bench/node/ (npm) …", file=sys.stderr)
    NODE_DIR.mkdir(exist_ok=True)
    manifest = NODE_DIR / "package.json"
    if not manifest.exists():  # without one, npm would look for a project in the folders above
        manifest.write_text('{"private": true}\n', encoding="utf-8")
    done = subprocess.run(["npm", "install", "--no-audit", "--no-fund", f"yaml-language-server@{YAML_LS_VERSION}"],
                          cwd=NODE_DIR, check=False)
    return done.returncode == 0 and YAML_LS.exists()


def servers(which: set[str]) -> list[tuple[Server, Callable[[str], str]]]:
    found: list[tuple[Server, Callable[[str], str]]] = []
    if "mljob" in which:
        found.append((Server("mljob", [sys.executable, "-m", "mljob", "lsp"], {"mljob": {}}), lambda t: t))
    if "yaml-language-server" in which and ensure_yaml_ls():
        settings = {"yaml": {"schemas": {str(SCHEMA): ["*.yml", "*.yaml"]}, "schemaStore": {"enable": False},
                             "validate": True, "hover": True, "completion": True, "format": {"enable": False}},
                    "http": {"proxy": "http://127.0.0.1:9", "proxyStrictSSL": False}}
        dead = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
                "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": ""}
        found.append((Server("yaml-language-server", ["node", str(YAML_LS), "--stdio"], settings, dead), for_yaml_ls))
    return found


async def run(repeat: int, which: set[str]) -> dict[str, dict[str, Result]]:
    files = {"35 lines": SMALL, "3,000 lines": big_command_job(3000)}
    assert len(SMALL.splitlines()) == 35
    results: dict[str, dict[str, Result]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "src").mkdir()
        for server, adapt in servers(which):
            await server.start(folder)
            try:
                for label, text in files.items():
                    name = "small" if label.startswith("35") else "big"
                    results.setdefault(label, {})[server.name] = await measure(server, folder, adapt(text), name,
                                                                               repeat)
            finally:
                await server.stop()
    return results


def report(results: dict[str, dict[str, Result]]) -> None:
    names = sorted({n for per in results.values() for n in per}, key=lambda n: n != "mljob")
    ours, theirs = "mljob", "yaml-language-server"
    header = ["file", "measure"] + [f"{n} median / p95" for n in names]
    if len(names) == 2:
        header.append("mljob / yaml-ls (median)")
    rows: list[list[str]] = []
    for label, per in results.items():
        for measure_name, attr in (("open → diagnostics", "open"), ("edit → diagnostics", "edit"),
                                   ("completion (key, value)", "completion"),
                                   ("completion in ${{inputs.…}}", "expression"),
                                   ("completion just after an edit", "typing"), ("hover", "hover")):
            row = [label, measure_name]
            medians = {}
            for n in names:
                median, p95 = quantiles(getattr(per[n], attr))
                medians[n] = median
                row.append(f"{median:8.2f} / {p95:8.2f} ms")
            if len(names) == 2:
                row.append(f"{medians[ours] / medians[theirs]:.3f}" if medians[theirs] else "-")
            rows.append(row)
        row = [label, "RSS now / peak"]
        for n in names:
            row.append(f"{per[n].rss:8.1f} / {per[n].peak:8.1f} MiB")
        if len(names) == 2:
            row.append(f"{per[ours].peak / per[theirs].peak:.3f}" if per[theirs].peak else "-")
        rows.append(row)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("| " + " | ".join("-" * w for w in widths) + " |")
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    big = results.get("3,000 lines", {}).get(ours)
    if big is not None:
        completion_p95 = quantiles(big.completion)[1]
        edit_median = quantiles(big.edit)[0]
        print()
        print(f"targets on the 3,000-line file: completion p95 {completion_p95:.2f} ms (<= 10: "
              f"{'ok' if completion_p95 <= 10 else 'MISSED'}), edit → diagnostics median {edit_median:.2f} ms "
              f"(<= 60: {'ok' if edit_median <= 60 else 'MISSED'}), peak RSS {big.peak:.1f} MiB "
              f"(<= 80: {'ok' if big.peak <= 80 else 'MISSED'})")
    for label, per in results.items():
        counts = ", ".join(f"{n} {per[n].completion_items}" for n in names)
        print(f"completion items at most ({label}): {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=40, help="edits, completions and hovers per file")
    parser.add_argument("--only", choices=["mljob", "yaml-language-server"], help="measure one server")
    args = parser.parse_args()
    which = {args.only} if args.only else {"mljob", "yaml-language-server"}
    report(asyncio.run(run(args.repeat, which)))


if __name__ == "__main__":
    main()
