"""Running the real Codex CLI (the oracle) from tests and benchmarks, in either version."""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Final

REPO_ROOT = Path(__file__).resolve().parents[2]
GET_CODEX = REPO_ROOT / "scripts" / "get-codex"

CODEX_SCHEMA_2: Final = "0.169.0"
"""The Codex version that reads and writes schema 2 (payload files): the oracle for it."""
CODEX_SCHEMA_3: Final = "0.171.0"
"""The Codex version that reads and writes schema 3 (zstd payload shards): the oracle for it."""
CODEX_BY_SCHEMA: Final = {2: CODEX_SCHEMA_2, 3: CODEX_SCHEMA_3}


@functools.cache
def find_codex(version: str = CODEX_SCHEMA_2) -> Path:
    """Run ``scripts/get-codex`` for ``version`` and return the binary's path.

    Raises:
        RuntimeError: the helper failed; the message is its stderr.
        OSError, subprocess.TimeoutExpired: the helper could not be run.
    """
    env = {**os.environ, "CODEX_VERSION": version}
    done = subprocess.run(
        ["bash", str(GET_CODEX)], capture_output=True, text=True, timeout=600, check=False, env=env
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or f"scripts/get-codex exited {done.returncode}")
    return Path(done.stdout.strip())


def codex_reduce(
    codex_bin: Path, bundle: Path, out: Path, *, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``codex debug trace-reduce BUNDLE -o OUT`` with a fresh, empty ``CODEX_HOME``."""
    with tempfile.TemporaryDirectory(prefix="codex-home-") as home:
        env = {**os.environ, "CODEX_HOME": home}
        return subprocess.run(
            [str(codex_bin), "debug", "trace-reduce", str(bundle), "-o", str(out)],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
