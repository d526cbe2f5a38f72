"""Shared pytest fixtures: the real Codex CLI, used as the reference oracle."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from support.codex import codex_reduce, find_codex

__all__ = ["codex_reduce"]


@pytest.fixture(scope="session")
def codex_bin() -> Path:
    """Path of the Codex CLI 0.169.0 binary, fetched by scripts/get-codex on first use.

    Fails under ``CI=true`` when it cannot be had; elsewhere the test is skipped with the reason.
    """
    try:
        return find_codex()
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        reason = f"Codex CLI unavailable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
