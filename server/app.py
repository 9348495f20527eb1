"""The language server: protocol glue only. Every handler delegates to a plain function of a feature module,
and every judgement of a job comes from mljob.runner.validate (the code `mljob validate` runs)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lsprotocol import types as lsp
from mljob.server import completion, fixes, hover, lens, navigation, symbols
from mljob.server.convert import to_diagnostic
from mljob.server.features import FeatureContext
from mljob.server.settings import ServerSettings
from mljob.server.store import OpenDocument, Store
from pygls.lsp.server import LanguageServer

from mljob import __version__

log = logging.getLogger("mljob.server")
T = TypeVar("T")


class MljobServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("mljob", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.store = Store()
        self.settings = ServerSettings()
        self.generation = 0  # bumped when settings or watched files change: cached judgements are stale then
        # One worker: validations run off the event loop (requests stay answered) and in order; a queued
        # validation of a version that is no longer current is dropped before it starts.
        self.validator = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mljob-validate")

    def context(self) -> FeatureContext:
        return FeatureContext(self.settings, self.generation)

    def safely(self, feature: str, fn: Callable[[], T], empty: T) -> T:
        """A feature's exception is logged and answered with an empty result: the server never fails a request."""
        try:
            return fn()
        except Exception as err:  # the whole point is to contain anything
            log.error("%s failed: %s\n%s", feature, err, traceback.format_exc())
            with contextlib.suppress(Exception):
                self.window_log_message(lsp.LogMessageParams(
                    type=lsp.MessageType.Error, message=f"mljob: {feature} failed: {type(err).__name__}: {err}"))
            return empty

    async def validate(self, uri: str) -> None:
        doc = self.store.get(uri)
        if doc is None:
            return
        # Editors send completion right after the keystroke; validation holds the GIL (libyaml does not release
        # it), so give requests already on their way a few milliseconds to be answered first.
        await asyncio.sleep(0.003)
        doc = self.store.get(uri)
        if doc is None:
            return
        version, text, generation, settings = doc.version, doc.text, self.generation, self.settings.validation()

        def work() -> Any:
            current = self.store.get(uri)
            if current is None or current.version != version:
                return None  # superseded while queued: cancel the stale work
            snapshot = OpenDocument(uri, text, version, current.path)
            return snapshot.analysis(settings, generation)

        try:
            analysis = await asyncio.get_running_loop().run_in_executor(self.validator, work)
        except Exception as err:
            log.error("validation of %s failed: %s\n%s", uri, err, traceback.format_exc())
            return
        current = self.store.get(uri)
        if analysis is None or current is None or current.version != version:
            return
        current.remember(version, generation, analysis)
        positions = current.positions
        diagnostics = [to_diagnostic(positions, d) for d in analysis.diagnostics if d.range.start.line >= 0]
        self.text_document_publish_diagnostics(
            lsp.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version))

    async def refresh_settings(self) -> None:
        asked_at = self.generation
        try:
            (raw,) = await self.workspace_configuration_async(
                lsp.ConfigurationParams(items=[lsp.ConfigurationItem(section="mljob")]))
        except Exception as err:  # clients without workspace/configuration keep the defaults
            log.info("no workspace configuration: %s", err)
            return
        if self.generation != asked_at:
            return  # a didChangeConfiguration arrived meanwhile: it is newer than this answer
        self.settings = ServerSettings.from_client(raw)
        self.generation += 1

    async def revalidate_all(self) -> None:
        for uri in list(self.store.documents):
            await self.validate(uri)


def build() -> MljobServer:
    server = MljobServer()

    @server.feature(lsp.INITIALIZED)
    async def initialized(ls: MljobServer, params: lsp.InitializedParams) -> None:
        caps = ls.client_capabilities
        watch = caps.workspace and caps.workspace.did_change_watched_files
        if watch and watch.dynamic_registration:
            # Path rules (code folder, conda file, Dockerfile, input data) must follow files that appear or vanish.
            try:
                await ls.client_register_capability_async(lsp.RegistrationParams(registrations=[lsp.Registration(
                    id="mljob-watch", method=lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                    register_options=lsp.DidChangeWatchedFilesRegistrationOptions(
                        watchers=[lsp.FileSystemWatcher(glob_pattern="**/*")]))]))
            except Exception as err:  # a client that claims the capability but refuses it
                log.warning("could not register file watchers: %s", err)
        if caps.workspace and caps.workspace.configuration:
            await ls.refresh_settings()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    async def did_open(ls: MljobServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.store.open(params.text_document)
        await ls.validate(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: MljobServer, params: lsp.DidChangeTextDocumentParams) -> None:
        doc = ls.store.get(params.text_document.uri)
        if doc is None:
            return
        doc.apply(list(params.content_changes), params.text_document.version)
        await ls.validate(doc.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    async def did_save(ls: MljobServer, params: lsp.DidSaveTextDocumentParams) -> None:
        await ls.validate(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: MljobServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.store.close(params.text_document.uri)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                          diagnostics=[]))

    @server.feature(lsp.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    async def watched_files(ls: MljobServer, params: lsp.DidChangeWatchedFilesParams) -> None:
        ls.generation += 1
        await ls.revalidate_all()

    @server.feature(lsp.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def configuration(ls: MljobServer, params: lsp.DidChangeConfigurationParams) -> None:
        settings = params.settings.get("mljob") if isinstance(params.settings, dict) else None
        if settings is not None:
            ls.settings = ServerSettings.from_client(settings)
            ls.generation += 1
        else:
            await ls.refresh_settings()
        await ls.revalidate_all()

    def with_doc(uri: str, feature: str, fn: Callable[[OpenDocument], T], empty: T) -> T:
        doc = server.store.get(uri)
        if doc is None:
            return empty
        return server.safely(feature, lambda: fn(doc), empty)

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(
        trigger_characters=[":", " ", "{", ".", "/", "-"], resolve_provider=False))
    def on_completion(ls: MljobServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        empty = lsp.CompletionList(is_incomplete=False, items=[])
        return with_doc(params.text_document.uri, "completion", lambda doc: completion.complete(
            doc, params.position.line, params.position.character, ls.context()), empty)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: MljobServer, params: lsp.HoverParams) -> lsp.Hover | None:
        return with_doc(params.text_document.uri, "hover", lambda doc: hover.hover(
            doc, params.position.line, params.position.character, ls.context()), None)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls: MljobServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
        return with_doc(params.text_document.uri, "definition", lambda doc: navigation.definition(
            doc, params.position.line, params.position.character, ls.context()), [])

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def on_references(ls: MljobServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        return with_doc(params.text_document.uri, "references", lambda doc: navigation.references(
            doc, params.position.line, params.position.character, params.context.include_declaration,
            ls.context()), [])

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def on_prepare_rename(ls: MljobServer, params: lsp.PrepareRenameParams) -> lsp.PrepareRenameResult | None:
        return with_doc(params.text_document.uri, "prepareRename", lambda doc: navigation.prepare_rename(
            doc, params.position.line, params.position.character, ls.context()), None)

    @server.feature(lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True))
    def on_rename(ls: MljobServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
        return with_doc(params.text_document.uri, "rename", lambda doc: navigation.rename(
            doc, params.position.line, params.position.character, params.new_name, ls.context()), None)

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(ls: MljobServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        return with_doc(params.text_document.uri, "documentSymbol",
                        lambda doc: symbols.document_symbols(doc, ls.context()), [])

    @server.feature(lsp.TEXT_DOCUMENT_FOLDING_RANGE)
    def on_folding(ls: MljobServer, params: lsp.FoldingRangeParams) -> list[lsp.FoldingRange]:
        return with_doc(params.text_document.uri, "foldingRange",
                        lambda doc: symbols.folding_ranges(doc, ls.context()), [])

    @server.feature(lsp.TEXT_DOCUMENT_SELECTION_RANGE)
    def on_selection(ls: MljobServer, params: lsp.SelectionRangeParams) -> list[lsp.SelectionRange]:
        return with_doc(params.text_document.uri, "selectionRange",
                        lambda doc: symbols.selection_ranges(doc, list(params.positions), ls.context()), [])

    @server.feature(lsp.TEXT_DOCUMENT_CODE_LENS, lsp.CodeLensOptions(resolve_provider=False))
    def on_code_lens(ls: MljobServer, params: lsp.CodeLensParams) -> list[lsp.CodeLens]:
        return with_doc(params.text_document.uri, "codeLens", lambda doc: lens.code_lenses(doc, ls.context()), [])

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
        code_action_kinds=[lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.Source]))
    def on_code_action(ls: MljobServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        return with_doc(params.text_document.uri, "codeAction", lambda doc: fixes.code_actions(
            doc, params.range, list(params.context.diagnostics), ls.context()), [])

    for name, command in lens.COMMANDS.items():
        server.command(name)(command)

    return server
