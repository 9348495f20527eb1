"""The real parts the tests drive — a Docker engine and its images, Ray, CPU torch, Neovim, code-server, Chromium,
Emacs, the extension's npm build, the job-file corpus beside the project — and what a test does when one is missing.

On a developer's machine it skips, saying what is missing and which setup script provides it. Under CI (`CI=true`:
`.ci/run` → `./scripts/test`, which runs every setup script first) a missing part means a broken set-up, so the
test FAILS with the same words: CI cannot turn green by skipping. A skip for a declared platform reason is not a
missing part and does not come here.

    missing(part, how)            in a test or fixture: skip here, fail under CI (module level too)
    importorskip(module, how)     pytest.importorskip for an optional package (ray, torch), same rule
    needs(present, part, how)     a mark, for decorators and `pytestmark`: tests/conftest.py applies it at set-up
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

MARK = "real_part"  # registered, and applied before any skip mark, in tests/conftest.py
# The job-file corpus (azureml-examples, seed-2021) is the one part no setup script provides.
CORPUS_HOW = "no setup script fetches it; the job-file corpus must sit in ../shared/corpus (or MLJOB_CORPUS name it)"


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def message(part: str, how: str) -> str:
    return f"{part}: {how}"


def missing(part: str, how: str) -> NoReturn:
    """`part` says what is missing (e.g. "no Docker engine answers (…)"), `how` which setup script provides it."""
    __tracebackhide__ = True  # a skip is reported at the caller's line, not here
    text = message(part, how)
    if under_ci():
        pytest.fail(f"CI=true, so a missing real part fails instead of skipping: {text}", pytrace=False)
    pytest.skip(text, allow_module_level=True)


def importorskip(module: str, how: str) -> ModuleType:
    """The module, or `missing(...)` (a skip here, a failure under CI) when it cannot be imported."""
    __tracebackhide__ = True
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        missing(f"{module} cannot be imported ({exc})", how)


def needs(present: bool, part: str, how: str) -> pytest.MarkDecorator:
    """A mark for a test (or a module's `pytestmark`) that needs a part: when `present` is false, the test skips
    here and fails under CI, at set-up (see pytest_runtest_setup in tests/conftest.py)."""
    return getattr(pytest.mark, MARK)(present=present, part=part, how=how)


def check_marks(item: pytest.Item) -> None:
    """Called at each test's set-up by tests/conftest.py, before skip marks are evaluated."""
    for mark in item.iter_markers(MARK):
        if mark.kwargs["present"]:
            continue
        if under_ci():
            missing(mark.kwargs["part"], mark.kwargs["how"])
        # A skip mark, first (before an empty parameter set's): the skipping plugin, which runs next, reports it at
        # the test's own line.
        item.add_marker(pytest.mark.skip(reason=message(mark.kwargs["part"], mark.kwargs["how"])), append=False)
        return
