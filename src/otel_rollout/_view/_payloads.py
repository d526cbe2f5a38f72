"""Every raw payload of a rollout, packed for the page: repeated items stored once.

An inference request carries the whole conversation so far, so a long rollout's requests
repeat the same items over and over (the long_tools fixture: 14 MB of requests, a few
hundred distinct items). Each list of objects inside a payload becomes
``{"\\u0000": [i, j, ...]}``, indices into one pool of distinct objects, and the page
rebuilds a payload only when asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from otel_rollout._bundle._models import RawPayloadRef
from otel_rollout._bundle._reader import Bundle
from otel_rollout._reduce._payload import PayloadReadError, read_value

POOL_KEY: Final = "\u0000"
"""The key of a list of pooled objects: ``{POOL_KEY: [pool index, ...]}``."""

_ANY_JSON: Final = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


class PackedPayloads:
    """Payload bodies by id, lists of objects replaced by references into :attr:`pool`."""

    def __init__(self) -> None:
        self.bodies: dict[str, Any] = {}
        """Payload id -> packed body; ``None`` when a size limit cut it or it is unreadable."""
        self.problems: dict[str, str] = {}
        """Payload id -> why it could not be read."""
        self.pool: list[Any] = []
        self._index: dict[bytes, int] = {}

    def add(self, payload_id: str, body: Any) -> None:
        """Pack ``body`` as payload ``payload_id``."""
        self.bodies[payload_id] = self._pack(body)

    def _pack(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._pack(inner) for key, inner in value.items()}
        if isinstance(value, list):
            if value and all(isinstance(inner, dict) for inner in value):
                return {POOL_KEY: [self._pooled(inner) for inner in value]}
            return [self._pack(inner) for inner in value]
        return value

    def _pooled(self, value: dict[str, Any]) -> int:
        packed = self._pack(value)
        key = _encode(packed)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.pool)
            self.pool.append(packed)
        return index

    def to_builtins(self) -> dict[str, Any]:
        """``{"pool": [...], "bodies": {...}, "problems": {...}}`` for the page."""
        return {"pool": self.pool, "bodies": self.bodies, "problems": self.problems}


def pack_payloads(bundle: Bundle, refs: Mapping[str, RawPayloadRef]) -> PackedPayloads:
    """Read and pack every payload of ``refs`` (schema 3 parts assembled, cut ones ``None``)."""
    packed = PackedPayloads()
    for payload_id, ref in refs.items():
        try:
            body = read_value(bundle.payloads, ref, _ANY_JSON)
        except (PayloadReadError, ValueError, OSError) as error:
            packed.problems[payload_id] = str(error)
            body = None
        else:
            if body is None:
                packed.problems[payload_id] = "cut by a size limit when recorded"
        packed.add(payload_id, body)
    return packed
