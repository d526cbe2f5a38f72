"""The reducer: a trace bundle to Codex's ``RolloutTrace`` (``state.json``).

A port of Codex 0.169.0's ``replay_bundle``; the output of :func:`write_state` is
byte-identical to ``codex debug trace-reduce``.
"""

from __future__ import annotations

import os
from pathlib import Path

from otel_rollout._bundle._files import write_chunks_whole
from otel_rollout._reduce._model import RolloutTrace
from otel_rollout._reduce._reducer import reduce_bundle
from otel_rollout._reduce._state_json import encode_state, state_chunks

__all__ = ["RolloutTrace", "encode_state", "reduce_bundle", "write_state"]


def write_state(trace: RolloutTrace, path: str | os.PathLike[str]) -> Path:
    """Write ``trace`` to ``path`` as ``state.json`` bytes and return the path.

    The file is owner-only (0600: it holds the conversation) and replaced whole; it is
    written as it is encoded, never whole in memory.
    """
    target = Path(path)
    write_chunks_whole(os.fspath(target), state_chunks(trace))
    return target
