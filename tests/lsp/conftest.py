"""A real `mljob lsp` process driven over stdio by pytest-lsp, with the capabilities of real editors."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest_lsp
from lsprotocol import types as lsp
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

SERVER = [sys.executable, "-m", "mljob", "lsp"]


def _remember_versions(client: LanguageClient) -> None:
    # pytest-lsp keeps the latest diagnostics per uri but not the version they were computed for; tests that edit
    # need to wait for the answer to *their* edit, so keep (version, diagnostics) as well.
    client.published = {}  # type: ignore[attr-defined]
    features = client.protocol.fm.features
    original = features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def publish(params: lsp.PublishDiagnosticsParams) -> None:
        original(params)
        client.published[params.uri] = (params.version, list(params.diagnostics))  # type: ignore[attr-defined]

    features[lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    # Real editors accept dynamic registrations (file watchers); pytest-lsp's client has no handler for them.
    features.setdefault(lsp.CLIENT_REGISTER_CAPABILITY, lambda params: None)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER), params=["visual-studio-code", "neovim"])
async def client(request, lsp_client: LanguageClient, tmp_path_factory):
    root = tmp_path_factory.mktemp("ws")
    _remember_versions(lsp_client)
    await lsp_client.initialize_session(lsp.InitializeParams(
        capabilities=client_capabilities(request.param), root_uri=root.as_uri(),
        workspace_folders=[lsp.WorkspaceFolder(uri=root.as_uri(), name="ws")]))
    lsp_client.root = root  # type: ignore[attr-defined]
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, path: Path, text: str, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(lsp.DidOpenTextDocumentParams(
        lsp.TextDocumentItem(uri=uri, language_id="yaml", version=version, text=text)))
    return uri


def change_doc(client: LanguageClient, uri: str, version: int, text: str | None = None,
               edit: tuple[int, int, int, int, str] | None = None) -> None:
    """Send a whole-text change, or one incremental edit (start line, start char, end line, end char, text)."""
    if edit is not None:
        sl, sc, el, ec, new = edit
        change: lsp.TextDocumentContentChangeEvent = lsp.TextDocumentContentChangePartial(
            range=lsp.Range(start=lsp.Position(line=sl, character=sc), end=lsp.Position(line=el, character=ec)),
            text=new)
    else:
        change = lsp.TextDocumentContentChangeWholeDocument(text=text or "")
    client.text_document_did_change(lsp.DidChangeTextDocumentParams(
        text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version), content_changes=[change]))


async def diagnostics_for(client: LanguageClient, uri: str, version: int | None = None,
                          timeout: float = 20.0) -> list[lsp.Diagnostic]:
    """The diagnostics the server published for this uri (for this version, when given)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        found = client.published.get(uri)  # type: ignore[attr-defined]
        if found is not None and (version is None or found[0] == version):
            return found[1]
        await asyncio.sleep(0.01)
    raise TimeoutError(f"no diagnostics for {uri} version {version}")
