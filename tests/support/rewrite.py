"""Feeding a recorded schema 3 bundle's events and payloads through our ``BundleWriter``."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from otel_rollout._bundle._models import (
    MANIFEST_FILE_NAME,
    RAW_EVENT_LOG_FILE_NAME,
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


def rewrite(source: Path, root: Path, **writer_options: object) -> BundleWriter:
    """Write ``source``'s events and payloads (schema 3) again through a new ``BundleWriter``.

    Each payload is written (its recorded bytes, ``msgspec.Raw``) in the order of its id,
    just before the first event naming it; events keep their thread, turn and wall time.
    Omitted or truncated payloads are written from what the source kept. Returns the
    closed writer.
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
        pending = sorted(
            {
                ref.raw_payload_id: ref
                for top in payload_refs(event.payload)
                for ref in _all_refs(top)
            }.values(),
            key=_number,
        )
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
        payload = _remap(event.payload, written)
        appended = writer.append(
            payload,
            thread_id=event.thread_id,
            codex_turn_id=event.codex_turn_id,
            wall_time_unix_ms=event.wall_time_unix_ms,
        )
        assert appended is not None
    writer.close()
    return writer


def _remap(
    payload: RawTraceEventPayload, written: dict[str, RawPayloadRef]
) -> RawTraceEventPayload:
    changes = {
        name: written[value.raw_payload_id]
        for name in payload.__struct_fields__
        if isinstance(value := getattr(payload, name), RawPayloadRef)
    }
    return msgspec.structs.replace(payload, **changes) if changes else payload
