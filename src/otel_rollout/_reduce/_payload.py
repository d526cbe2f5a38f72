"""Payload values as the reducer reads them: schema 3's parts assembled, cut payloads marked.

Schema 3 (Codex 0.171.0) may split a payload into ``parts``: its body is then a JSON array
of string fragments, and ``fragment[0] + part[0] + fragment[1] + ... + fragment[n]`` is the
payload's JSON text (parts assembled the same way, recursively). A part a size limit cut
(``capture``: truncated or omitted) is read as the marker ``{"$trace_unavailable": "<id>"}``;
a payload cut as a whole reads as ``None`` (callers treat it as absent). Found by running
the 0.171.0 binary; see ``docs/reducer-errors.md``.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from otel_rollout._bundle._models import RawPayloadRef
from otel_rollout._bundle._payloads import PayloadStore

UNAVAILABLE_KEY: Final = "$trace_unavailable"
"""The key of the object standing in for a cut part: ``{"$trace_unavailable": "<id>"}``."""

_fragments = msgspec.json.Decoder(list[str])
_any_json = msgspec.json.Decoder(msgspec.Raw)
"""Checks that a text is one JSON value without building it."""


class PayloadReadError(ValueError):
    """A payload cannot be read or assembled; the message is the reason."""


def is_cut(ref: RawPayloadRef) -> bool:
    """Whether a size limit cut this payload (``capture`` present: truncated or omitted)."""
    return bool(ref.capture)


def unavailable_id(value: Any) -> str | None:
    """The payload id if ``value`` is the marker of a cut part, else ``None``."""
    if type(value) is dict and len(value) == 1:
        marker = value.get(UNAVAILABLE_KEY)
        if isinstance(marker, str):
            return marker
    return None


def read_value(
    store: PayloadStore,
    ref: RawPayloadRef,
    decoder: msgspec.json.Decoder[Any],
    texts: PartTexts | None = None,
) -> Any:
    """The JSON value of payload ``ref``; ``None`` if a size limit cut it (parts read with
    ``texts``, as :func:`payload_text`).

    Raises:
        PayloadReadError: A body (or part) is missing or not JSON, or the fragments do
            not fit the parts.
    """
    if is_cut(ref):
        return None
    return decode_text(store, ref, payload_text(store, ref, texts), decoder)


class PartTexts:
    """The checked texts of the whole, unsplit parts the last payload assembled with it held,
    by (id, shard): a thread's requests share most of their parts (its input items)."""

    __slots__ = ("_current", "_previous")

    def __init__(self) -> None:
        self._previous: dict[tuple[str, Any], bytes] = {}
        self._current: dict[tuple[str, Any], bytes] = {}

    def text(self, store: PayloadStore, part: RawPayloadRef) -> bytes:
        """As ``_part_text``, from the last payload's texts where it held the part."""
        if is_cut(part) or part.parts:
            return _part_text(store, part)
        key = (part.raw_payload_id, part.shard)
        text = self._previous.get(key)
        if text is None:
            text = self._current.get(key)
            if text is None:
                text = _part_text(store, part)
        self._current[key] = text
        return text

    def assembled(self) -> None:
        """A payload is assembled: keep its parts' texts only."""
        self._previous = self._current
        self._current = {}


def payload_text(store: PayloadStore, ref: RawPayloadRef, texts: PartTexts | None = None) -> bytes:
    """The JSON text of payload ``ref`` (not cut): its body, or its parts assembled (the
    texts of parts the last payload read with ``texts`` held are not read again).

    Raises:
        PayloadReadError: A body (or part) is missing or not JSON, or the fragments do
            not fit the parts.
    """
    if not ref.parts:
        try:
            return store.read(ref)
        except ValueError as error:
            raise PayloadReadError(str(error)) from None
    if texts is None:
        return _assembled_text(store, ref)
    try:
        return _assembled_text(store, ref, texts)
    finally:
        texts.assembled()


def decode_text(
    store: PayloadStore, ref: RawPayloadRef, text: bytes, decoder: msgspec.json.Decoder[Any]
) -> Any:
    """Decode ``text``, from :func:`payload_text`, as :func:`read_value` does.

    Raises:
        PayloadReadError: The text is not JSON (or nests too deep).
    """
    if not ref.parts:
        try:
            return store.decode(ref, text, decoder)
        except ValueError as error:
            raise PayloadReadError(str(error)) from None
    try:
        return decoder.decode(text)
    except (msgspec.DecodeError, RecursionError) as error:
        raise PayloadReadError(f"assembled parts are not JSON: {error}") from None


def _assembled_text(
    store: PayloadStore, ref: RawPayloadRef, texts: PartTexts | None = None
) -> bytes:
    """The JSON text of a payload with parts: fragments interleaved with the parts' texts."""
    parts = ref.parts
    assert isinstance(parts, list)
    try:
        fragments = _fragments.decode(store.read(ref))
    except (ValueError, msgspec.DecodeError) as error:
        raise PayloadReadError(
            f"fragments of {ref.raw_payload_id} are not a JSON array of strings: {error}"
        ) from None
    if len(fragments) != len(parts) + 1:
        raise PayloadReadError(f"invalid payload fragment count in {ref.raw_payload_id}")
    pieces: list[bytes] = [fragments[0].encode()]
    for part, fragment in zip(parts, fragments[1:], strict=True):
        pieces.append(_part_text(store, part) if texts is None else texts.text(store, part))
        pieces.append(fragment.encode())
    return b"".join(pieces)


def _part_text(store: PayloadStore, part: RawPayloadRef) -> bytes:
    """A part's JSON text, or the marker of a cut part."""
    if is_cut(part):
        return msgspec.json.encode({UNAVAILABLE_KEY: part.raw_payload_id})
    if part.parts:
        text = _assembled_text(store, part)
    else:
        try:
            text = store.read(part)
        except ValueError as error:
            raise PayloadReadError(str(error)) from None
    try:
        _any_json.decode(text)
    except (msgspec.DecodeError, RecursionError) as error:
        raise PayloadReadError(f"invalid payload {part.raw_payload_id}: {error}") from None
    return text
