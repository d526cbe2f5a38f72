"""Codex 0.171.0 (schema 3), the oracle for the writer's tests until the shared conftest has it."""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

from support.codex import GET_CODEX

CODEX_0171 = "0.171.0"


@functools.lru_cache(maxsize=1)
def find_codex_0171() -> Path:
    """Run ``CODEX_VERSION=0.171.0 scripts/get-codex`` and return the binary's path.

    Raises:
        RuntimeError: the helper failed; the message is its stderr.
    """
    done = subprocess.run(
        ["bash", str(GET_CODEX)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "CODEX_VERSION": CODEX_0171},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or f"scripts/get-codex exited {done.returncode}")
    return Path(done.stdout.strip())


@pytest.fixture(scope="session")
def codex_bin_0171() -> Path:
    """Path of the Codex CLI 0.171.0 binary (fails under ``CI=true`` when unavailable)."""
    try:
        return find_codex_0171()
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        reason = f"Codex CLI {CODEX_0171} unavailable: {error}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
