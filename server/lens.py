"""Code lens (being written)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lsprotocol import types as lsp
from mljob.server.features import FeatureContext
from mljob.server.store import OpenDocument

COMMANDS: dict[str, Callable[..., Any]] = {}


def code_lenses(doc: OpenDocument, ctx: FeatureContext) -> list[lsp.CodeLens]:
    return []
