"""Feeding a recorded schema 3 bundle's events and payloads through our ``BundleWriter``."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from otel_rollout._bundle._capture import join_fragments
from otel_rollout._bundle._models import (
    MANIFEST_FILE_NAME,
    RAW_EVENT_LOG_FILE_NAME,
    PayloadKind,
    RawPayloadRef,
    RawTraceEvent,
    RawTraceEventPayload,
    TraceBundleManifest,
    payload_refs,
)
from otel_rollout._bundle._payloads import PayloadShards
from otel_rollout._bundle._writer import BundleWriter

_ID_NUMBER = re.compile(r"raw_payload:(\d+)")


def bundle_dir(scenario: Path) -> Path:
    """The one ``trace-*`` bundle directory of a fixture scenario."""
    (found,) = scenario.glob("trace-*")
    return found


def read_events(bundle: Path) -> list[RawTraceEvent]:
    """The events of ``bundle``'s ``trace.jsonl``."""
    lines = (bundle / RAW_EVENT_LOG_FILE_NAME).read_bytes().splitlines()
    return [msgspec.json.decode(line, type=RawTraceEvent) for line in lines]


def _number(ref: RawPayloadRef) -> int:
    match = _ID_NUMBER.fullmatch(ref.raw_payload_id)
    assert match is not None, ref.raw_payload_id
    return int(match.group(1))


def _all_refs(ref: RawPayloadRef) -> list[RawPayloadRef]:
    """``ref`` and its parts, deepest first (the order Codex numbers them in)."""
    found: list[RawPayloadRef] = []
    for part in ref.parts if isinstance(ref.parts, list) else []:
        found.extend(_all_refs(part))
    found.append(ref)
    return found


def full_value(store: PayloadShards, ref: RawPayloadRef) -> bytes:
    """The JSON of the payload ``ref`` as it was before the size limits cut it.

    Parts are joined into their fragments; a truncated record is padded with ``x`` to its
    original length; an omitted payload is made up at its original length (an object
    holding its parts' items under ``input``, padded).
    """
    parts = [full_value(store, part) for part in ref.parts] if isinstance(ref.parts, list) else []
    capture = ref.capture
    if not isinstance(ref.shard, int):
        assert not isinstance(capture, msgspec.UnsetType)
        head = b'{"input":[' + b",".join(parts) + b'],"pad":"'
        return head + b"x" * (capture.original_bytes - len(head) - 2) + b'"}'
    body = store.read(ref)
    if not isinstance(capture, msgspec.UnsetType):
        assert body[:1] == b'"', "only truncated content values are rebuilt"
        return body + b"x" * (capture.original_bytes - len(body) - 1) + b'"'
    if parts:
        return join_fragments(msgspec.json.decode(body, type=list[str]), parts)
    return body


def rewrite(
    source: Path, root: Path, *, as_values: bool = False, **writer_options: object
) -> BundleWriter:
    """Write ``source``'s events and payloads (schema 3) again through a new ``BundleWriter``.

    Each payload is written (its recorded bytes, ``msgspec.Raw``, with its parts) in the
    order of its id, just before the first event naming it; events keep their thread,
    turn and wall time. With ``as_values`` the payloads are fed as the values they were
    before the limits cut them (:func:`full_value`) and the writer cuts them itself:
    requests and prepared prompts through ``write_payload``/``write_prepared_prompt``.
    Returns the closed writer.
    """
    manifest = msgspec.json.decode(
        (source / MANIFEST_FILE_NAME).read_bytes(), type=TraceBundleManifest
    )
    store = PayloadShards(source)
    writer = BundleWriter.create(
        root,
        root_thread_id=manifest.root_thread_id,
        trace_id=manifest.trace_id,
        rollout_id=manifest.rollout_id,
        started_at_unix_ms=manifest.started_at_unix_ms,
        schema_version=manifest.schema_version,
        **writer_options,  # type: ignore[arg-type]
    )
    written: dict[str, RawPayloadRef] = {}
    for event in read_events(source):
        if as_values:
            payload = _feed_values(writer, store, event.payload, written)
        else:
            payload = _feed_raw(writer, store, event.payload, written)
        appended = writer.append(
            payload,
            thread_id=event.thread_id,
            codex_turn_id=event.codex_turn_id,
            wall_time_unix_ms=event.wall_time_unix_ms,
        )
        assert appended is not None
    writer.close()
    return writer


def _feed_raw(
    writer: BundleWriter,
    store: PayloadShards,
    payload: RawTraceEventPayload,
    written: dict[str, RawPayloadRef],
) -> RawTraceEventPayload:
    """Write the records ``payload`` names as recorded, in id order; ``payload`` with new refs."""
    named = [ref for top in payload_refs(payload) for ref in _all_refs(top)]
    pending = sorted({ref.raw_payload_id: ref for ref in named}.values(), key=_number)
    for ref in pending:
        if ref.raw_payload_id in written:
            continue
        parts = (
            [written[part.raw_payload_id] for part in ref.parts]
            if isinstance(ref.parts, list)
            else None
        )
        body = store.read(ref) if isinstance(ref.shard, int) else b"null"
        new = writer.write_payload(ref.kind.type, msgspec.Raw(body), parts=parts)
        assert new is not None
        written[ref.raw_payload_id] = new
    return _remap(payload, written)


def _feed_values(
    writer: BundleWriter,
    store: PayloadShards,
    payload: RawTraceEventPayload,
    written: dict[str, RawPayloadRef],
) -> RawTraceEventPayload:
    """Write the payloads ``payload`` names as values; ``payload`` with the new refs."""
    changes: dict[str, RawPayloadRef] = {}
    for name in payload.__struct_fields__:
        ref = getattr(payload, name)
        if not isinstance(ref, RawPayloadRef):
            continue
        new = written.get(ref.raw_payload_id)
        if new is None:
            value = msgspec.json.decode(full_value(store, ref))
            thread_id = getattr(payload, "thread_id", None)
            if ref.kind.type is PayloadKind.PREPARED_PROMPT:
                new = writer.write_prepared_prompt(thread_id, value)
            else:
                new = writer.write_payload(ref.kind.type, value, thread_id=thread_id)
            assert new is not None
            written[ref.raw_payload_id] = new
        changes[name] = new
    return msgspec.structs.replace(payload, **changes) if changes else payload


def _remap(
    payload: RawTraceEventPayload, written: dict[str, RawPayloadRef]
) -> RawTraceEventPayload:
    changes = {
        name: written[value.raw_payload_id]
        for name in payload.__struct_fields__
        if isinstance(value := getattr(payload, name), RawPayloadRef)
    }
    return msgspec.structs.replace(payload, **changes) if changes else payload
