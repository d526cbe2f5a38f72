"""The reducer: a trace bundle to Codex's ``RolloutTrace`` (``state.json``).

A port of Codex 0.169.0's ``replay_bundle``; the output of :func:`write_state` is
byte-identical to ``codex debug trace-reduce``.
"""

from __future__ import annotations

import os
from pathlib import Path

from otel_rollout._bundle._files import write_whole
from otel_rollout._bundle._json import encode_pretty
from otel_rollout._reduce._model import RolloutTrace
from otel_rollout._reduce._reducer import reduce_bundle

__all__ = ["RolloutTrace", "encode_state", "reduce_bundle", "write_state"]


def encode_state(trace: RolloutTrace) -> bytes:
    """Serialize a trace as Codex writes ``state.json``: 2-space indent, no final newline."""
    return encode_pretty(trace)


def write_state(trace: RolloutTrace, path: str | os.PathLike[str]) -> Path:
    """Write ``trace`` to ``path`` as ``state.json`` bytes and return the path.

    The file is owner-only (0600: it holds the conversation) and replaced whole.
    """
    target = Path(path)
    write_whole(os.fspath(target), encode_state(trace))
    return target
