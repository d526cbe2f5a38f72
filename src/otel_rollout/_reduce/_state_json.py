"""``state.json`` bytes, produced a slice at a time so the whole document never sits in memory.

The bytes are those of ``msgspec.json.format(encode(trace), indent=2)`` (serde_json's
pretty form): each top-level field, and each slice of a top-level map's entries, is
encoded and re-indented on its own, then shifted to its depth. A pretty JSON text holds
no raw newline inside a string, so shifting is replacing every newline with a newline
and the indent.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

import msgspec
from msgspec import UNSET

from otel_rollout._reduce._model import RolloutTrace

_SLICE = 256
"""Map entries encoded together (fewer calls; memory stays a slice's worth)."""

_encoder = msgspec.json.Encoder()


def _pretty(value: object) -> bytes:
    return msgspec.json.format(_encoder.encode(value), indent=2)


def state_chunks(trace: RolloutTrace) -> Iterator[bytes]:
    """The ``state.json`` bytes of ``trace`` in pieces (2-space indent, no final newline)."""
    names = [name for name in trace.__struct_fields__ if getattr(trace, name) is not UNSET]
    yield b"{"
    separator = b"\n  "
    for name in names:
        value = getattr(trace, name)
        yield separator + b'"' + name.encode() + b'": '
        separator = b",\n  "
        if type(value) is not dict or len(value) <= _SLICE:
            yield _pretty(value).replace(b"\n", b"\n  ")
            continue
        # {"k": v, ...} formats as b'{\n  "k": v,\n  ...\n}': keep the inside of each slice
        yield b"{"
        entries = iter(value.items())
        inner_separator = b"\n    "
        while piece := dict(islice(entries, _SLICE)):
            yield inner_separator + _pretty(piece)[4:-2].replace(b"\n", b"\n  ")
            inner_separator = b",\n    "
        yield b"\n  }"
    yield b"\n}" if names else b"}"


def encode_state(trace: RolloutTrace) -> bytes:
    """Serialize a trace as Codex writes ``state.json``: 2-space indent, no final newline."""
    return b"".join(state_chunks(trace))
