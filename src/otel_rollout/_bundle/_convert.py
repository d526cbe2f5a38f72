"""Converting a bundle between schema 2 (Codex 0.169.0/0.170.0) and schema 3 (Codex 0.171.0).

2 -> 3: every payload moves into shards; each ``inference_started`` gains a
``prepared_prompt_payload`` made from its request (:func:`prompt_from_request`); each
``history_item_accepted`` of a tool output gains a ``tool_output_payload`` holding that
output as the next request carries it; session metadata's ``sandbox_policy`` becomes
``permissions_profile``.
3 -> 2: ``code_cell_wait_target_resolved`` events are dropped (``seq`` renumbered),
prepared prompts and tool-output refs are dropped, payloads cut into parts are joined
again, ``permissions_profile`` becomes ``sandbox_policy``. A bundle with a truncated or
omitted payload cannot go back (schema 2 has no way to say so): :class:`ConvertError`.
Events keep their order, wall times, threads and turns; payloads are numbered afresh.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from otel_rollout._bundle._bodies import (
    TOOL_OUTPUT_TYPES,
    prompt_from_request,
    session_metadata_to,
)
from otel_rollout._bundle._capture import join_fragments
from otel_rollout._bundle._models import (
    SCHEMA_2,
    SCHEMA_3,
    SCHEMA_3_ONLY_EVENT_TYPES,
    HistoryItemAccepted,
    InferenceStarted,
    PayloadKind,
    RawPayloadRef,
    RawTraceEvent,
    RawTraceEventPayload,
    payload_refs,
)
from otel_rollout._bundle._reader import Bundle
from otel_rollout._bundle._writer import BundleWriter


class ConvertError(ValueError):
    """The bundle cannot be converted; the message says why."""


def convert_bundle(
    source: str | os.PathLike[str], out_root: str | os.PathLike[str], to: int
) -> Path:
    """Write ``source`` again as schema ``to`` under ``out_root``; return the new bundle.

    Raises:
        ConvertError: ``to`` is not 2 or 3, the bundle is already schema ``to``, or
            (3 -> 2) a payload was truncated or omitted by a size limit.
        BundleError: The source bundle is malformed.
        ValueError: A payload is missing or not JSON.
        OSError: The output cannot be written.
    """
    if to not in (SCHEMA_2, SCHEMA_3):
        raise ConvertError(f"cannot convert to schema {to} (2 or 3)")
    bundle = Bundle(source)
    manifest = bundle.manifest
    if manifest.schema_version == to:
        raise ConvertError(f"{bundle.path} is already schema {to}")
    events = [event for _, event in bundle.events()]
    if to == SCHEMA_2:
        _refuse_cut_payloads(events)
    writer = BundleWriter.create(
        out_root,
        root_thread_id=manifest.root_thread_id,
        trace_id=manifest.trace_id,
        rollout_id=manifest.rollout_id,
        started_at_unix_ms=manifest.started_at_unix_ms,
        schema_version=to,
    )
    try:
        converter = _Converter(bundle, writer, events)
        for event in events:
            converter.event(event)
    finally:
        writer.close()
    if writer.failure is not None:
        raise writer.failure
    return writer.bundle_dir


def _refuse_cut_payloads(events: list[RawTraceEvent]) -> None:
    for event in events:
        stack = payload_refs(event.payload)
        while stack:
            ref = stack.pop()
            capture = ref.capture
            if not isinstance(capture, msgspec.UnsetType):
                raise ConvertError(
                    f"cannot convert to schema 2: payload {ref.raw_payload_id} (event {event.seq})"
                    f" was {capture.status.value} by a size limit, and schema 2 can only hold"
                    " whole payloads"
                )
            if isinstance(ref.parts, list):
                stack.extend(ref.parts)


class _Converter:
    """Writes one source bundle's events and payloads through a writer of the other schema."""

    def __init__(self, bundle: Bundle, writer: BundleWriter, events: list[RawTraceEvent]) -> None:
        self.bundle = bundle
        self.writer = writer
        self.to = writer.schema_version
        self.written: dict[str, RawPayloadRef] = {}
        self.tool_outputs: dict[str, Any] = {}
        """2 -> 3: tool output items by id, as the requests carry them."""
        if self.to == SCHEMA_3:
            for event in events:
                if isinstance(event.payload, InferenceStarted):
                    request = self.bundle.read_payload(event.payload.request_payload)
                    for item in request.get("input") or [] if isinstance(request, dict) else []:
                        if isinstance(item, dict) and item.get("type") in TOOL_OUTPUT_TYPES:
                            self.tool_outputs.setdefault(str(item.get("id")), item)

    def event(self, event: RawTraceEvent) -> None:
        payload = event.payload
        if self.to == SCHEMA_2 and payload.__struct_config__.tag in SCHEMA_3_ONLY_EVENT_TYPES:
            return
        thread_id = getattr(payload, "thread_id", None) or event.thread_id
        changes: dict[str, Any] = {}
        for name in payload.__struct_fields__:
            ref = getattr(payload, name)
            if isinstance(ref, RawPayloadRef):
                if self.to == SCHEMA_2 and name in (
                    "prepared_prompt_payload",
                    "tool_output_payload",
                ):
                    changes[name] = msgspec.UNSET if name == "prepared_prompt_payload" else None
                    continue
                changes[name] = self._payload(ref, thread_id)
        if self.to == SCHEMA_3 and isinstance(payload, InferenceStarted):
            request = self.bundle.read_payload(payload.request_payload)
            changes["prepared_prompt_payload"] = self._check(
                self.writer.write_prepared_prompt(thread_id, prompt_from_request(request))
            )
        if (
            self.to == SCHEMA_3
            and isinstance(payload, HistoryItemAccepted)
            and payload.agent_message_payload is None
            and payload.item_id in self.tool_outputs
        ):
            changes["tool_output_payload"] = self._check(
                self.writer.write_payload(
                    PayloadKind.PROTOCOL_EVENT, self.tool_outputs[payload.item_id]
                )
            )
        converted: RawTraceEventPayload = (
            msgspec.structs.replace(payload, **changes) if changes else payload
        )
        self._check(
            self.writer.append(
                converted,
                thread_id=event.thread_id,
                codex_turn_id=event.codex_turn_id,
                wall_time_unix_ms=event.wall_time_unix_ms,
            )
        )

    def _payload(self, ref: RawPayloadRef, thread_id: str | None) -> RawPayloadRef:
        key = ref.raw_payload_id
        done = self.written.get(key)
        if done is not None:
            return done
        value = msgspec.json.decode(self._whole(ref))
        kind = ref.kind.type
        if kind is PayloadKind.SESSION_METADATA:
            value = session_metadata_to(value, self.to)
        new: RawPayloadRef = self._check(
            self.writer.write_payload(kind, value, thread_id=thread_id)
        )
        self.written[key] = new
        return new

    def _whole(self, ref: RawPayloadRef) -> bytes:
        """A payload's whole JSON: its record, or its fragments joined with its parts."""
        data = self.bundle.read_payload_bytes(ref)
        if isinstance(ref.parts, list) and ref.parts:
            fragments = msgspec.json.decode(data, type=list[str])
            return join_fragments(fragments, [self._whole(part) for part in ref.parts])
        return data

    def _check(self, result: Any) -> Any:
        if result is None:
            failure = self.writer.failure
            if failure is not None:
                raise failure
            raise ConvertError("the converted bundle could not be written")
        return result
