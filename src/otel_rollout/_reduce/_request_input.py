"""Inference request payloads read item by item, each distinct input item decoded once.

Every request carries its thread's whole history, so most of its ``input`` items are
byte-identical to items of the previous request. A request's text is split into its
top-level fields (decoded) and the raw bytes of each input item; an item whose bytes one
of the last few requests held is not decoded again: it stands as the :class:`Known`
(normalized) form ``_conversation`` kept, which that module reuses.

Nothing is trusted that the plain read would refuse: every byte is decoded by the full
decoder once (items held before were, byte for byte), the text must be UTF-8 (skipping a
value does not check it) and nest less than serde's limit, and anything else (not an
object, ``input`` not an array) returns ``None``: the payload is then read whole, as
before, with the same value or the same error.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from otel_rollout._bundle._bounded import nested_too_deep

MEMO_REQUESTS: Final = 4
"""How many requests' input items :class:`ItemMemo` keeps (a few threads interleaving)."""

_fields = msgspec.json.Decoder(dict[str, msgspec.Raw])
_items = msgspec.json.Decoder(list[msgspec.Raw])


class Known:
    """The normalized form of an input item seen before (``_conversation``'s template)."""

    __slots__ = ("item", "with_payload_id")

    def __init__(self, item: Any, with_payload_id: bool) -> None:
        self.item = item
        self.with_payload_id = with_payload_id
        """Whether parts name the payload (a placeholder id to fill in)."""


class ItemMemo:
    """The :class:`Known` input items of the last :data:`MEMO_REQUESTS` requests, by bytes."""

    __slots__ = ("_requests", "latest")

    def __init__(self) -> None:
        self._requests: dict[str, dict[bytes, Known]] = {}
        self.latest: dict[bytes, Known] = {}
        """The last request's items (looked up first)."""

    def get(self, key: bytes) -> Known | None:
        """The known item with these bytes, the latest request's first."""
        for known in reversed(self._requests.values()):
            found = known.get(key)
            if found is not None:
                return found
        return None

    def remember(self, payload_id: str, items: dict[bytes, Known]) -> None:
        """Keep the items of request ``payload_id``, forgetting the oldest request's."""
        requests = self._requests
        requests.pop(payload_id, None)
        requests[payload_id] = items
        self.latest = items
        while len(requests) > MEMO_REQUESTS:
            del requests[next(iter(requests))]


class RequestInput:
    """A request split for reuse: its other fields decoded, its input items by bytes."""

    __slots__ = ("fields", "keys", "values")

    def __init__(self, fields: dict[str, Any], keys: list[bytes], values: list[Any]) -> None:
        self.fields = fields
        """Top-level fields but ``input``, decoded."""
        self.keys = keys
        """Each input item's JSON text."""
        self.values = values
        """Each input item decoded, or its :class:`Known` form."""


def split_request(
    text: bytes, memo: ItemMemo, decoder: msgspec.json.Decoder[Any]
) -> RequestInput | None:
    """Split a request's JSON ``text`` (see the module docstring); ``None``: read it whole."""
    try:
        raw_fields = _fields.decode(text)
        raw_input = raw_fields.pop("input", None)
        if raw_input is None:
            return None
        raw_items = _items.decode(raw_input)
        if not text.isascii():
            text.decode()  # strictly UTF-8, as the full decoder requires of strings
        if nested_too_deep(text):
            return None
        fields = {key: decoder.decode(raw) for key, raw in raw_fields.items()}
        keys = [bytes(raw) for raw in raw_items]
        values: list[Any] = []
        append = values.append
        latest, get = memo.latest, memo.get
        for key in keys:
            known = latest.get(key)
            if known is None:
                known = get(key)
            append(known if known is not None else decoder.decode(key))
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        return None
    return RequestInput(fields, keys, values)
