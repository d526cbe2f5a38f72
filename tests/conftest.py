"""Shared pytest fixtures: strict error policy, the real Codex CLI (the reference oracle)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest

# Internal errors of the library raise in tests (outside tests they are counted and warned).
os.environ["OTEL_ROLLOUT_STRICT"] = "1"

from otel_rollout import _errors
from otel_rollout._live import _runtime
from support.codex import CODEX_SCHEMA_2, CODEX_SCHEMA_3, codex_reduce, find_codex

__all__ = ["codex_reduce"]


def _oracle(version: str) -> Path:
    """The Codex CLI ``version``; fails under ``CI=true`` when it cannot be had, else skips."""
    try:
        return find_codex(version)
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        reason = f"Codex CLI {version} unavailable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    """Path of the Codex CLI 0.169.0 binary (the schema 2 oracle), fetched on first use."""
    return _oracle(CODEX_SCHEMA_2)


@pytest.fixture(scope="session")
def codex_bin_0171() -> Path:
    """Path of the Codex CLI 0.171.0 binary (the schema 3 oracle), fetched on first use."""
    return _oracle(CODEX_SCHEMA_3)


@pytest.fixture
def codex_for(request: pytest.FixtureRequest) -> Callable[[int], Path]:
    """The Codex CLI that reads a bundle schema: 0.169.0 for 2, 0.171.0 for 3."""

    def codex(schema_version: int) -> Path:
        name = "codex_bin" if schema_version == 2 else "codex_bin_0171"
        path: Path = request.getfixturevalue(name)
        return path

    return codex


CHROMIUM: Final = Path(os.environ.get("OTEL_ROLLOUT_CHROMIUM", "/usr/bin/chromium"))
"""Debian's Chromium (``apt-get install chromium``; ``scripts/test`` installs it)."""


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Chromium for the view's browser tests; fails under ``CI=true`` when missing, else skips.

    Playwright for Python drives it (the ``test`` extra); ``playwright install`` is never
    used: its download host is not reachable.
    """
    missing = []
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} not found (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        missing.append("playwright is not installed (pip install -e '.[test]')")
    if missing:
        reason = "Chromium unavailable: " + "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(autouse=True)
def _reset_configuration() -> Iterator[None]:
    """What a test set with ``otel_rollout.configure`` does not leak into the next test."""
    yield
    _runtime.reset()


@pytest.fixture(autouse=True)
def _background_errors_reach_the_test() -> Iterator[None]:
    """An internal error of a background thread that no flush re-raised fails its test."""
    _errors.reset()
    yield
    _errors.raise_pending()
