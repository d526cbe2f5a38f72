"""What each schema accepts beyond the shared models, and how one bundle's refs must agree.

The models (``_models``) decode both schemas; this module rejects what the Codex version
of the bundle's schema rejects (found by running the binaries, see ``docs/schema3.md``):

- schema 2 (Codex 0.169.0): a ref needs ``path``; the payload kinds ``prepared_prompt``,
  ``model_item``, ``content_value`` and the event ``code_cell_wait_target_resolved`` are
  unknown. Schema 3 fields (``shard``, ``capture``, ``parts``, ``prepared_prompt_payload``,
  ``tool_output_payload``) are ignored, as unknown fields are.
- schema 3 (Codex 0.171.0): ``inference_started`` needs ``prepared_prompt_payload``; a
  ``truncated`` capture needs ``retained_bytes``; ``shard`` is a u64 (absent means
  ``null``). ``path`` is ignored.

:class:`RefRegistry` keeps the first ref seen for each payload id and reports what 0.171.0
refuses across refs: an omitted payload with a shard, the same id referenced with another
kind, shard, capture or parts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from msgspec import UNSET, UnsetType

from otel_rollout._bundle._models import (
    SCHEMA_2,
    SCHEMA_3_ONLY_EVENT_TYPES,
    CaptureStatus,
    InferenceStarted,
    Other,
    PayloadCapture,
    PayloadKind,
    RawPayloadRef,
    RawTraceEventPayload,
    payload_refs,
)

SCHEMA_3_ONLY_KINDS: Final = frozenset(
    {PayloadKind.PREPARED_PROMPT, PayloadKind.MODEL_ITEM, PayloadKind.CONTENT_VALUE}
)
"""Payload kinds schema 2 (Codex 0.169.0) does not know."""


SCHEMA_3_ONLY_REF_FIELDS: Final = frozenset({"prepared_prompt_payload", "tool_output_payload"})
"""Event fields holding a ref that schema 2 (Codex 0.169.0) ignores."""


def all_refs(payload: RawTraceEventPayload) -> Iterator[RawPayloadRef]:
    """Every ref an event carries, each followed by its ``parts`` (depth first)."""
    for ref in payload_refs(payload):
        yield from _with_parts(ref)


def schema_refs(payload: RawTraceEventPayload, schema_version: int) -> Iterator[RawPayloadRef]:
    """The refs the Codex of ``schema_version`` reads: schema 2 has no parts and ignores
    :data:`SCHEMA_3_ONLY_REF_FIELDS`; schema 3 reads every ref and its parts."""
    if schema_version != SCHEMA_2:
        yield from all_refs(payload)
        return
    if isinstance(payload, Other):
        yield from payload.payloads
        return
    for name in payload.__struct_fields__:
        if name not in SCHEMA_3_ONLY_REF_FIELDS:
            value = getattr(payload, name)
            if isinstance(value, RawPayloadRef):
                yield value


def _with_parts(ref: RawPayloadRef) -> Iterator[RawPayloadRef]:
    yield ref
    parts = ref.parts
    if parts is not UNSET:
        assert not isinstance(parts, UnsetType)
        for part in parts:
            yield from _with_parts(part)


def schema_problem(payload: RawTraceEventPayload, schema_version: int) -> str | None:
    """Why the Codex of ``schema_version`` would refuse to parse this event, or ``None``.

    The reasons read like the other decode errors (``unknown event type``, ``missing
    field``, ``bad event``).
    """
    event_type = payload.__struct_config__.tag
    if schema_version == SCHEMA_2:
        if event_type in SCHEMA_3_ONLY_EVENT_TYPES:
            return f"unknown event type {event_type!r} (schema 3 only)"
        for ref in schema_refs(payload, SCHEMA_2):
            if ref.path is UNSET:
                return f"missing field: `path` in the ref of {ref.raw_payload_id}"
            if ref.kind.type in SCHEMA_3_ONLY_KINDS:
                return f"unknown payload kind {ref.kind.type.value!r} (schema 3 only)"
        return None
    if isinstance(payload, InferenceStarted) and payload.prepared_prompt_payload is UNSET:
        return "missing field: `prepared_prompt_payload`"
    for ref in all_refs(payload):
        shard = ref.shard
        if isinstance(shard, int) and shard < 0:
            return f"bad event: shard {shard} of {ref.raw_payload_id} is not a u64"
        capture = ref.capture
        if (
            isinstance(capture, PayloadCapture)
            and capture.status is CaptureStatus.TRUNCATED
            and capture.retained_bytes is UNSET
        ):
            return f"missing field: `retained_bytes` in the capture of {ref.raw_payload_id}"
    return None


def is_omitted(ref: RawPayloadRef) -> bool:
    """Whether ``ref`` is an ``omitted`` capture (no body anywhere)."""
    capture = ref.capture
    return isinstance(capture, PayloadCapture) and capture.status is CaptureStatus.OMITTED


def is_truncated(ref: RawPayloadRef) -> bool:
    """Whether ``ref`` is a ``truncated`` capture (its body is a prefix, not JSON on its own)."""
    capture = ref.capture
    return isinstance(capture, PayloadCapture) and capture.status is CaptureStatus.TRUNCATED


_Identity = tuple[object, ...]


def _identity(ref: RawPayloadRef) -> _Identity:
    """What two refs to one payload must agree on, as Codex 0.171.0 compares them.

    Kind, shard (absent = ``null``), the capture (a ``complete`` one counts as none) and
    the parts' ids (no parts = empty); unknown keys and ``path`` do not count.
    """
    shard = None if ref.shard is UNSET else ref.shard
    capture = ref.capture
    cut: _Identity = ()
    if isinstance(capture, PayloadCapture) and capture.status is not CaptureStatus.COMPLETE:
        retained = capture.retained_bytes if capture.status is CaptureStatus.TRUNCATED else None
        cut = (capture.status, capture.original_bytes, retained)
    parts = ref.parts
    part_ids: _Identity = ()
    if not isinstance(parts, UnsetType):
        part_ids = tuple(part.raw_payload_id for part in parts)
    return (ref.kind.type, shard, cut, part_ids)


class RefRegistry:
    """The first ref seen for each payload id of a schema 3 bundle, checked against the rest."""

    def __init__(self) -> None:
        """Start with no ref seen."""
        self._seen: dict[str, _Identity] = {}

    def add(self, ref: RawPayloadRef) -> tuple[bool, str | None]:
        """Record ``ref``; return whether its id is new, and why 0.171.0 would refuse it.

        The reasons are 0.171.0's: ``omitted payload has a shard``, ``conflicting
        references for payload <id>``.
        """
        payload_id = ref.raw_payload_id
        if is_omitted(ref) and isinstance(ref.shard, int):
            return payload_id not in self._seen, f"omitted payload {payload_id} has a shard"
        identity = _identity(ref)
        first = self._seen.setdefault(payload_id, identity)
        if first is identity:
            return True, None
        if first != identity:
            return False, f"conflicting references for payload {payload_id}"
        return False, None
