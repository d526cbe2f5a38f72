"""The models reproduce Codex 0.169.0 bytes: fixture round trips, field order, null vs omitted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from otel_rollout import events
from otel_rollout._bundle._json import encode_compact, encode_line, encode_pretty
from otel_rollout._bundle._models import (
    CodeCellRuntimeStatus,
    ExecutionStatus,
    PayloadKind,
    RawPayloadKind,
    RawPayloadRef,
    RawTraceEvent,
    RolloutStatus,
    TraceBundleManifest,
    payload_refs,
)
from otel_rollout._bundle._reader import Bundle, decode_event, decode_manifest

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = sorted(FIXTURES.glob("codex-0.169.0*/*/trace-*"))
REF = RawPayloadRef(
    raw_payload_id="raw_payload:1",
    kind=RawPayloadKind(type=PayloadKind.TOOL_RESULT),
    path="payloads/1.json",
)


def _bundle_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}"


def test_fixtures_present() -> None:
    assert len(BUNDLES) >= 12
    assert any("large" in str(path) for path in BUNDLES)


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_fixture_bundle_round_trips_byte_for_byte(bundle_dir: Path) -> None:
    bundle = Bundle(bundle_dir)
    assert encode_pretty(bundle.manifest) == bundle.manifest_path.read_bytes()
    original = bundle.event_log_path.read_bytes()
    rewritten = b"".join(encode_line(event) for _, event in bundle.events())
    assert rewritten == original


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_fixture_payloads_round_trip_byte_for_byte(bundle_dir: Path) -> None:
    """Payload files too, given the request's ``tools`` as Codex keeps it: a verbatim raw value."""
    for path in sorted((bundle_dir / "payloads").iterdir()):
        original = path.read_bytes()
        value = msgspec.json.decode(original)
        if isinstance(value, dict) and "tools" in value:
            value["tools"] = msgspec.Raw(encode_compact(value["tools"]))
        assert encode_pretty(value) == original, path.name


def test_pretty_matches_serde_conventions() -> None:
    value = {"a": [], "b": {}, "c": [1, {"d": None}], "e": "é\u2028<", "f": 1e20, "g": 0.5}
    assert encode_pretty(value) == (
        b'{\n  "a": [],\n  "b": {},\n  "c": [\n    1,\n    {\n      "d": null\n    }\n  ],\n'
        b'  "e": "\xc3\xa9\xe2\x80\xa8<",\n  "f": 1e20,\n  "g": 0.5\n}'
    )


def test_pretty_keeps_top_level_raw_verbatim_and_nested_raw_reindented() -> None:
    raw = msgspec.Raw(b'[{"x":1}]')
    assert encode_pretty({"a": 1, "tools": raw}) == b'{\n  "a": 1,\n  "tools": [{"x":1}]\n}'
    assert encode_pretty({"a": {"tools": raw}}) == encode_pretty({"a": {"tools": [{"x": 1}]}})


def test_exactly_the_29_variants_of_schema_2_and_the_30_of_schema_3() -> None:
    expected = {
        "rollout_started",
        "rollout_ended",
        "thread_started",
        "thread_resumed",
        "thread_ended",
        "codex_turn_started",
        "codex_turn_ended",
        "inference_started",
        "inference_completed",
        "inference_failed",
        "inference_cancelled",
        "tool_call_started",
        "mcp_tool_call_correlation_assigned",
        "tool_call_runtime_started",
        "tool_call_runtime_ended",
        "tool_call_ended",
        "stdin_target_resolved",
        "code_cell_started",
        "code_cell_initial_response",
        "code_cell_ended",
        "compaction_request_started",
        "compaction_request_completed",
        "compaction_request_failed",
        "compaction_installed",
        "agent_result_observed",
        "protocol_event_observed",
        "history_item_accepted",
        "recording_completed",
        "other",
    }
    assert set(events.EVENT_TYPES) - events.SCHEMA_3_ONLY_EVENT_TYPES == expected
    assert len(expected) == 29
    assert set(events.EVENT_TYPES) == expected | {"code_cell_wait_target_resolved"}


@pytest.mark.parametrize("later_type", ["inference_first_delta", "inference_response_created"])
def test_later_upstream_events_are_unknown(later_type: str) -> None:
    line = _envelope({"type": later_type, "inference_call_id": "i"})
    with pytest.raises(ValueError, match=f"unknown event type '{later_type}'"):
        decode_event(line)


def _envelope(payload: dict[str, Any]) -> bytes:
    return encode_compact(
        {
            "schema_version": 2,
            "seq": 1,
            "wall_time_unix_ms": 5,
            "rollout_id": "r",
            "thread_id": None,
            "codex_turn_id": None,
            "payload": payload,
        }
    )


def _minimal(cls: type[Any]) -> Any:
    """An instance of an event class with every required field filled and optionals at None."""
    values: dict[str, Any] = {}
    for field in msgspec.structs.fields(cls):
        if field.required:
            values[field.name] = _sample(field.type)
    return cls(**values)


def _sample(annotation: Any) -> Any:
    samples: dict[Any, Any] = {
        str: "x",
        int: 7,
        RawPayloadRef: REF,
        RolloutStatus: RolloutStatus.COMPLETED,
        ExecutionStatus: ExecutionStatus.COMPLETED,
        CodeCellRuntimeStatus: CodeCellRuntimeStatus.COMPLETED,
        events.ToolCallKind: events.ExecCommandKind(),
        events.ToolCallSummary: events.GenericSummary(label="l"),
        events.RawToolCallRequester: events.ModelRequester(),
        list[RawPayloadRef]: [REF],
        msgspec.Raw: msgspec.Raw(b'{"k":1}'),
    }
    return samples[annotation]


@pytest.mark.parametrize("event_type", sorted(events.EVENT_TYPES))
def test_every_variant_writes_optionals_as_null_except_agent_message_payload(
    event_type: str,
) -> None:
    cls = events.EVENT_TYPES[event_type]
    payload = _minimal(cls)
    written = msgspec.json.decode(encode_compact(payload))
    fields = [f for f in msgspec.structs.fields(cls) if f.default is not msgspec.UNSET]
    names = [field.name for field in fields]  # UNSET: a schema 3 field, not written here
    if cls is events.HistoryItemAccepted:
        assert list(written) == ["type", "item_id"]
    else:
        assert list(written) == ["type", *names]
        optional = [f.name for f in fields if not f.required]
        assert all(written[name] is None for name in optional)
    event = RawTraceEvent(
        schema_version=2, seq=1, wall_time_unix_ms=5, rollout_id="r", payload=payload
    )
    line = encode_line(event)
    assert line.startswith(b'{"schema_version":2,"seq":1,"wall_time_unix_ms":5,"rollout_id":"r",')
    assert (
        b'"thread_id":null,"codex_turn_id":null,"payload":{"type":"%s"' % event_type.encode()
        in (line)
    )
    assert decode_event(line[:-1]) == event


def test_history_item_accepted_writes_agent_message_payload_when_present() -> None:
    payload = events.HistoryItemAccepted(item_id="amsg_1", agent_message_payload=REF)
    assert encode_compact(payload) == (
        b'{"type":"history_item_accepted","item_id":"amsg_1","agent_message_payload":'
        b'{"raw_payload_id":"raw_payload:1","kind":{"type":"tool_result"},"path":"payloads/1.json"}}'
    )


def test_tool_call_runtime_started_has_kind_between_id_and_payload() -> None:
    payload = events.ToolCallRuntimeStarted(
        tool_call_id="call_1",
        kind=events.McpKind(server="echo", tool="echo"),
        runtime_payload=REF,
    )
    assert encode_compact(payload).startswith(
        b'{"type":"tool_call_runtime_started","tool_call_id":"call_1",'
        b'"kind":{"type":"mcp","server":"echo","tool":"echo"},"runtime_payload":'
    )


def test_enums_and_payload_kind_spelling() -> None:
    assert [status.value for status in RolloutStatus] == [
        "running",
        "completed",
        "failed",
        "aborted",
    ]
    assert [status.value for status in ExecutionStatus] == [
        "running",
        "completed",
        "failed",
        "cancelled",
        "aborted",
    ]
    assert [status.value for status in CodeCellRuntimeStatus] == [
        "starting",
        "running",
        "yielded",
        "completed",
        "failed",
        "terminated",
    ]
    assert len(PayloadKind) == 15  # 12 of schema 2, and prepared_prompt, model_item, content_value
    assert encode_compact(RawPayloadKind(type=PayloadKind.SESSION_METADATA)) == (
        b'{"type":"session_metadata"}'
    )
    kinds = [
        events.ExecCommandKind(),
        events.WriteStdinKind(),
        events.ApplyPatchKind(),
        events.McpKind(server="s", tool="t"),
        events.WebKind(),
        events.ImageGenerationKind(),
        events.SpawnAgentKind(),
        events.AssignAgentTaskKind(),
        events.SendMessageKind(),
        events.WaitAgentKind(),
        events.CloseAgentKind(),
        events.OtherKind(name="n"),
    ]
    assert [msgspec.json.decode(encode_compact(kind))["type"] for kind in kinds] == [
        "exec_command",
        "write_stdin",
        "apply_patch",
        "mcp",
        "web",
        "image_generation",
        "spawn_agent",
        "assign_agent_task",
        "send_message",
        "wait_agent",
        "close_agent",
        "other",
    ]
    summaries = [
        events.TerminalSummary(operation_id="o"),
        events.AgentSummary(target_agent_path="/root/a", message_preview="m"),
        events.WaitAgentSummary(),
        events.GenericSummary(label="l"),
    ]
    assert [encode_compact(summary) for summary in summaries] == [
        b'{"type":"terminal","operation_id":"o"}',
        b'{"type":"agent","target_agent_path":"/root/a","task_name":null,"message_preview":"m"}',
        b'{"type":"wait_agent","target_agent_path":null,"timeout_ms":null}',
        b'{"type":"generic","label":"l","input_preview":null,"output_preview":null}',
    ]
    assert encode_compact(events.CodeCellRequester(runtime_cell_id="1")) == (
        b'{"type":"code_cell","runtime_cell_id":"1"}'
    )


def test_reading_accepts_missing_optionals_and_ignores_unknown_fields() -> None:
    line = (
        b'{"schema_version":2,"seq":3,"wall_time_unix_ms":1,"rollout_id":"r","future":1,'
        b'"payload":{"type":"inference_completed","inference_call_id":"i","extra":[1],'
        b'"response_payload":{"raw_payload_id":"raw_payload:2","kind":{"type":"inference_response"},'
        b'"path":"payloads/2.json"}}}'
    )
    event = decode_event(line)
    assert event.thread_id is None
    assert event.payload == events.InferenceCompleted(
        inference_call_id="i",
        response_payload=RawPayloadRef(
            raw_payload_id="raw_payload:2",
            kind=RawPayloadKind(type=PayloadKind.INFERENCE_RESPONSE),
            path="payloads/2.json",
        ),
    )
    assert payload_refs(event.payload) == [event.payload.response_payload]


def test_manifest_field_order_and_defaults() -> None:
    manifest = TraceBundleManifest(
        schema_version=2, trace_id="t", rollout_id="r", root_thread_id="r", started_at_unix_ms=9
    )
    assert encode_pretty(manifest) == (
        b'{\n  "schema_version": 2,\n  "trace_id": "t",\n  "rollout_id": "r",\n'
        b'  "root_thread_id": "r",\n  "started_at_unix_ms": 9,\n'
        b'  "raw_event_log": "trace.jsonl",\n  "payloads_dir": "payloads"\n}'
    )
    assert decode_manifest(encode_pretty(manifest)) == manifest
    with pytest.raises(ValueError, match="missing field"):
        decode_manifest(b'{"schema_version":2}')
