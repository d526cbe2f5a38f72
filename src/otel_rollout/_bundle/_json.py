"""JSON encoding in Codex's byte format.

Codex writes events as compact JSON lines (``serde_json::to_writer``) and payload,
manifest and state files pretty-printed with 2-space indent and no trailing newline
(``serde_json::to_writer_pretty``). msgspec produces the same bytes for both, floats
included, and is far faster than ``json.dumps(indent=2)`` (see benchmarks/json_encode.py).

One Codex quirk is kept too: a value Codex holds as a ``serde_json::RawValue`` (the
``tools`` of an inference request) is written verbatim, compact, inside the pretty
file. Pass such a value as :class:`msgspec.Raw` at the top level of a dict and
:func:`encode_pretty` keeps its bytes as they are.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final

import msgspec

_encoder = msgspec.json.Encoder()
_RAW_MARK: Final = f"otel-rollout-raw-{os.urandom(16).hex()}-"
"""Placeholder prefix for verbatim values; random per process, so no payload holds it."""


encode_compact: Final[Callable[[Any], bytes]] = _encoder.encode
"""Encode a value as compact JSON, keys in insertion (or field) order (the encoder's own
method: no Python call around it, on every event's path)."""


def encode_line(value: Any) -> bytes:
    """Encode ``value`` as one ``trace.jsonl`` line, newline included."""
    buffer = bytearray()
    _encoder.encode_into(value, buffer)
    buffer += b"\n"
    return bytes(buffer)


def encode_pretty(value: Any) -> bytes:
    """Encode ``value`` as serde_json's pretty form: 2-space indent, no trailing newline.

    A :class:`msgspec.Raw` value at the top level of a dict is written verbatim, as
    serde_json writes a ``RawValue``; anywhere else it is re-indented like the rest.
    """
    if type(value) is dict and any(type(item) is msgspec.Raw for item in value.values()):
        return _encode_pretty_keeping_raw(value)
    return pretty(_encoder.encode(value))


def pretty(data: bytes) -> bytes:
    """Re-indent JSON bytes as serde_json's pretty form (what :func:`encode_pretty` writes)."""
    return msgspec.json.format(data, indent=2)


def _encode_pretty_keeping_raw(value: dict[Any, Any]) -> bytes:
    """Pretty-print ``value`` with placeholders for its raw values, then put them back."""
    raws: list[msgspec.Raw] = []
    marked: dict[Any, Any] = {}
    for key, item in value.items():
        if type(item) is msgspec.Raw:
            marked[key] = f"{_RAW_MARK}{len(raws)}"
            raws.append(item)
        else:
            marked[key] = item
    text = pretty(_encoder.encode(marked))
    for index, raw in enumerate(raws):
        placeholder = f'"{_RAW_MARK}{index}"'.encode()
        text = text.replace(placeholder, bytes(raw), 1)
    return text
