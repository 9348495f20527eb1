"""Code lenses on the first line of each job document, and the server commands they execute.

A lens is one `JobLens` entry: its command name, its title for a given job (None: not offered there) and the work
the command does. The shared `_execute` gives every lens the same behaviour: work-done progress when the client
supports it, a one-line result in window/showMessage, and the same line as the command's result. "Run locally" and
"Submit to <compute>" run the job with the runner's own CLI (`mljob run`) in a child process: the server stays
responsive, the run is exactly what the terminal would do, and its log lines become progress reports.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from lsprotocol import types as lsp
from mljob.runner import registry
from mljob.runner.diagnostics import Severity
from mljob.runner.document import MappingNode, get, scalar
from mljob.runner.validate import Analysis
from mljob.server.features import FeatureContext
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument, Store
from pygls.progress import Progress

log = logging.getLogger("mljob.server")


class LensServer(Protocol):
    """What lens commands use of the language server (mljob.server.app.MljobServer)."""

    store: Store
    settings: ServerSettings
    generation: int

    @property
    def client_capabilities(self) -> lsp.ClientCapabilities: ...

    @property
    def work_done_progress(self) -> Progress: ...

    def context(self) -> FeatureContext: ...

    async def validate(self, uri: str) -> None: ...

    def window_show_message(self, params: lsp.ShowMessageParams) -> None: ...


@dataclass(frozen=True)
class JobTarget:
    """One job document of an open file: what a lens is about."""

    uri: str
    number: int  # which `---` document
    line: int  # its first line
    label: str  # "command job"
    job: str  # command | sweep | pipeline | …
    compute: str | None  # the compute it names, when that compute is configured in the registry


@dataclass(frozen=True)
class Outcome:
    message: str
    ok: bool


Report = Callable[[str], None]


@dataclass(frozen=True)
class JobLens:
    command: str
    title: Callable[[JobTarget], str | None]
    progress_title: str
    work: Callable[[LensServer, OpenDocument, JobTarget, Report], Awaitable[Outcome]]


def job_targets(doc: OpenDocument, analysis: Analysis, ctx: FeatureContext) -> list[JobTarget]:
    configured: dict[str, registry.Compute] | None = None
    found = []
    for report in analysis.reports:
        root, kind = report.yaml_doc.root, report.kind
        if not isinstance(root, MappingNode) or not root.value or kind is None or kind.job is None:
            continue
        if configured is None:
            configured = registry.computes(ctx.settings.compute_registry)
        found.append(JobTarget(doc.uri, report.yaml_doc.number, root.start_mark.line, kind.label, kind.job,
                               configured_compute(root, configured)))
    return found


def configured_compute(root: MappingNode, configured: dict[str, registry.Compute]) -> str | None:
    """The job's compute (`compute: azureml:gpu`, `compute: local`, 2021 `compute.target`) if it is configured."""
    value = get(root, "compute")
    if isinstance(value, MappingNode):
        value = get(value, "target")
    name = (scalar(value) or "").strip().removeprefix("azureml:")
    return name if name in configured else None


def code_lenses(doc: OpenDocument, ctx: FeatureContext) -> list[lsp.CodeLens]:
    analysis = doc.analysis(ctx.settings.validation(), ctx.generation)
    lenses = []
    for target in job_targets(doc, analysis, ctx):
        at = lsp.Position(line=target.line, character=0)
        for lens in LENSES:
            title = lens.title(target)
            if title is not None:
                lenses.append(lsp.CodeLens(range=lsp.Range(start=at, end=at), command=lsp.Command(
                    title=title, command=lens.command, arguments=[target.uri, target.number])))
    return lenses


# --- Validate ------------------------------------------------------------------------------------------------------


async def _validate(ls: LensServer, doc: OpenDocument, target: JobTarget, report: Report) -> Outcome:
    await ls.validate(doc.uri)  # judges the text afresh (files on disk may have changed) and publishes
    current = ls.store.get(doc.uri) or doc
    analysis = current.analysis(ls.settings.validation(), ls.generation)
    return summary(analysis, _name(doc), target.number)


def summary(analysis: Analysis, name: str, number: int | None = None) -> Outcome:
    """One line: `job.yml: 2 errors, 1 warning (sweep job) — line 4: Unknown key …` or `job.yml: valid (…)`."""
    reports = [r for r in analysis.reports if number is None or r.yaml_doc.number == number]
    found = [*analysis.document.diagnostics, *analysis.extra]
    for report in reports:
        found.extend(report.diagnostics)
    found.sort(key=lambda d: (d.range.start.line, d.range.start.column))
    errors = [d for d in found if d.severity == Severity.ERROR]
    warnings = [d for d in found if d.severity == Severity.WARNING]
    label = next((r.kind.label for r in reports if r.kind is not None), None)
    where = f"{name}" + (f" (document {number + 1})" if number is not None and len(analysis.reports) > 1 else "")
    what = f" ({label})" if label else ""
    if not errors and not warnings:
        return Outcome(f"{where}: valid{what}", True)
    counts = ", ".join(part for part in (_count(len(errors), "error"), _count(len(warnings), "warning")) if part)
    first = (errors or warnings)[0]
    message = " ".join(first.message.split())
    if len(message) > 120:
        message = message[:119] + "…"
    return Outcome(f"{where}: {counts}{what} — line {first.range.start.line + 1}: {message}", not errors)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}" if n else ""


def _name(doc: OpenDocument) -> str:
    return doc.path.name if doc.path is not None else doc.uri.rsplit("/", 1)[-1]


# --- Run locally / Submit to <compute> ----------------------------------------------------------------------------

RUNNABLE = {"command", "sweep"}  # job kinds the runner runs today


async def _run(ls: LensServer, doc: OpenDocument, target: JobTarget, report: Report, overrides: list[str]) -> Outcome:
    if doc.path is None:
        return Outcome(f"{_name(doc)}: save the file to run it", False)
    try:
        on_disk = doc.path.read_text(encoding="utf-8-sig")
    except OSError as err:
        return Outcome(f"{_name(doc)}: cannot read {doc.path}: {err.strerror or err}", False)
    if on_disk.replace("\r\n", "\n") != doc.text.lstrip("\ufeff").replace("\r\n", "\n"):
        return Outcome(f"{_name(doc)}: save the file first (the run uses what is on disk)", False)
    args = [sys.executable, "-m", "mljob", "run", str(doc.path)]
    for override in overrides:
        args += ["--set", override]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=str(doc.path.parent), stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    facts: dict[str, str] = {}
    tail: list[str] = []
    assert process.stdout is not None
    async for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip()
        key, sep, value = line.partition(": ")
        if sep and key in ("RunId", "Status", "Record", "Show it"):
            facts[key] = value
        if line.strip():
            tail = [*tail[-4:], line]
            report(line[:200])
    code = await process.wait()
    name = facts.get("RunId", "?")
    status = facts.get("Status") or ("Completed" if code == 0 else "Failed")
    record = facts.get("Record")
    if "RunId" not in facts:  # refused before a run existed (invalid job, unknown compute…): say why
        return Outcome(f"{_name(doc)}: not run — {' '.join(tail[-2:]) or f'exit status {code}'}", False)
    where = f"; record: {record}" if record else ""
    return Outcome(f"{_name(doc)}: run {name} {status}{where} (mljob job show -n {name})", status == "Completed")


async def _run_locally(ls: LensServer, doc: OpenDocument, target: JobTarget, report: Report) -> Outcome:
    return await _run(ls, doc, target, report, ["compute=local"])


async def _submit(ls: LensServer, doc: OpenDocument, target: JobTarget, report: Report) -> Outcome:
    return await _run(ls, doc, target, report, [])


def _submit_title(target: JobTarget) -> str | None:
    # Only a compute the registry knows is worth a lens; `local` is what "Run locally" already does.
    if target.job not in RUNNABLE or target.compute is None or target.compute == "local":
        return None
    return f"Submit to {target.compute}"


LENSES: list[JobLens] = [
    JobLens("mljob.runLocally", lambda t: "▶ Run locally" if t.job in RUNNABLE else None, "Running", _run_locally),
    JobLens("mljob.validate", lambda target: "Validate", "Validating", _validate),
    JobLens("mljob.submit", _submit_title, "Submitting", _submit),
]


# --- executing a lens's command --------------------------------------------------------------------------------------


def _command(lens: JobLens) -> Callable[..., Awaitable[str | None]]:
    async def execute(ls: LensServer, *args: Any) -> str | None:
        try:
            return await _execute(ls, lens, list(args))
        except Exception as err:  # a command must answer, whatever happens
            log.error("%s failed: %s\n%s", lens.command, err, traceback.format_exc())
            ls.window_show_message(lsp.ShowMessageParams(
                type=lsp.MessageType.Error, message=f"mljob: {lens.command} failed: {type(err).__name__}: {err}"))
            return None

    execute.__name__ = lens.command.replace(".", "_")
    return execute


async def _execute(ls: LensServer, lens: JobLens, args: list[Any]) -> str | None:
    uri = args[0] if args and isinstance(args[0], str) else None
    number = args[1] if len(args) > 1 and isinstance(args[1], int) else 0
    doc = ls.store.get(uri) if uri else None
    if doc is None:
        ls.window_show_message(lsp.ShowMessageParams(
            type=lsp.MessageType.Warning, message=f"mljob: {uri or 'the file'} is not open in the editor."))
        return None
    targets = job_targets(doc, doc.analysis(ls.settings.validation(), ls.generation), ls.context())
    target = next((t for t in targets if t.number == number), None) or (targets[0] if targets else JobTarget(
        doc.uri, number, 0, "document", "", None))
    token = await _begin(ls, f"{lens.progress_title} {_name(doc)}")

    def report(message: str) -> None:
        if token is not None:
            ls.work_done_progress.report(token, lsp.WorkDoneProgressReport(message=message))

    outcome: Outcome | None = None
    try:
        outcome = await lens.work(ls, doc, target, report)
    finally:
        if token is not None:
            ls.work_done_progress.end(token, lsp.WorkDoneProgressEnd(
                message=outcome.message if outcome else "failed"))
    ls.window_show_message(lsp.ShowMessageParams(
        type=lsp.MessageType.Info if outcome.ok else lsp.MessageType.Error, message=f"mljob: {outcome.message}"))
    return outcome.message


async def _begin(ls: LensServer, title: str) -> str | None:
    window = ls.client_capabilities.window
    if not (window and window.work_done_progress):
        return None
    token = f"mljob-{uuid.uuid4()}"
    try:
        await ls.work_done_progress.create_async(token)
    except Exception as err:  # a client that advertises progress but refuses the token: go on without
        log.info("no work-done progress: %s", err)
        return None
    ls.work_done_progress.begin(token, lsp.WorkDoneProgressBegin(title=title, cancellable=False))
    return token


COMMANDS: dict[str, Callable[..., Any]] = {lens.command: _command(lens) for lens in LENSES}
