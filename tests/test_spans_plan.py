"""The spans-only planner, without a disk: span records in, raw events and payload bodies out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from otel_rollout._bundle._models import (
    InferenceCompleted,
    InferenceFailed,
    PayloadKind,
    RawPayloadKind,
    RawPayloadRef,
    ThreadStarted,
    ToolCallStarted,
)
from otel_rollout._otel._spans_plan import RolloutPlan, SpanRecord, plan_rollouts

TRACE_ID = 0xABC
MS = 1_000_000


def record(
    span_id: int,
    parent_id: int,
    operation: str | None,
    start_ms: int,
    end_ms: int,
    attributes: dict[str, Any] | None = None,
    *,
    error: str | None = None,
) -> SpanRecord:
    """A finished span (times in ms)."""
    attrs = dict(attributes or {})
    if operation is not None:
        attrs["gen_ai.operation.name"] = operation
    name = f"{operation or 'span'} {span_id}"
    return SpanRecord(span_id, parent_id, name, start_ms * MS, end_ms * MS, error, attrs)


def messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


@dataclass
class Written:
    """One realized event: its type, thread and turn ids, and its payload (kind, body)."""

    type: str
    thread_id: str | None
    turn_id: str | None
    payload: tuple[PayloadKind, Any] | None
    event: Any


def realize(plan: RolloutPlan, *, refuse: frozenset[PayloadKind] = frozenset()) -> list[Written]:
    """The plan's events as a writer would write them (payloads of kinds in ``refuse`` fail)."""
    bodies: dict[str, tuple[PayloadKind, Any]] = {}

    def write_payload(kind: PayloadKind, body: Any, thread_id: str | None) -> RawPayloadRef | None:
        if kind in refuse:
            return None
        path = f"payloads/{len(bodies) + 1}.json"
        bodies[path] = (kind, body)
        return RawPayloadRef(raw_payload_id=path, kind=RawPayloadKind(type=kind), path=path)

    written = []
    for planned, event in plan.realize(write_payload):
        fields = [getattr(event, name) for name in event.__struct_fields__]
        refs = [field for field in fields if isinstance(field, RawPayloadRef)]
        payload = bodies[str(refs[0].path)] if refs else None
        tag = event.__struct_config__.tag
        assert isinstance(tag, str)
        written.append(Written(tag, planned.thread_id, planned.codex_turn_id, payload, event))
    return written


def types(written: list[Written]) -> list[str]:
    return [event.type for event in written]


def test_an_agent_with_a_chat_and_a_tool() -> None:
    records = [
        record(
            2,
            1,
            "chat",
            2,
            3,
            {
                "gen_ai.request.model": "gpt-x",
                "gen_ai.provider.name": "openai",
                "gen_ai.response.id": "resp_1",
                "gen_ai.usage.input_tokens": 11,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.input.messages": messages("user", "add 2 and 3"),
                "gen_ai.output.messages": messages("assistant", "calling add"),
            },
        ),
        record(
            3,
            1,
            "execute_tool",
            4,
            5,
            {
                "gen_ai.tool.name": "add",
                "gen_ai.tool.call.id": "call_add",
                "gen_ai.tool.call.arguments": '{"a":2}',
                "gen_ai.tool.call.result": "5",
            },
        ),
        record(1, 0, "invoke_agent", 1, 6, {"gen_ai.agent.name": "planner"}),
    ]
    [plan] = plan_rollouts(TRACE_ID, records)
    written = realize(plan)
    assert types(written) == [
        "rollout_started",
        "thread_started",
        "codex_turn_started",
        "inference_started",
        "inference_completed",
        "tool_call_started",
        "tool_call_ended",
        "codex_turn_ended",
        "thread_ended",
        "rollout_ended",
        "recording_completed",
    ]
    thread = plan.root_thread_id
    turn = f"turn-{thread}"
    assert plan.trace_id == "00000000-0000-0000-0000-000000000abc"
    assert plan.started_at_unix_ms == 1
    assert [e.time_ns // MS for e in plan.events] == [1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 6]
    outside, inside = (None, None), (thread, turn)
    assert [(w.thread_id, w.turn_id) for w in written] == [outside] * 2 + [inside] * 6 + [
        outside
    ] * 3
    assert written[1].payload == (
        PayloadKind.SESSION_METADATA,
        {
            "thread_id": thread,
            "agent_path": "/root",
            "task_name": None,
            "nickname": "planner",
            "agent_role": None,
            "session_source": "otel_rollout",
            "cwd": "",
            "rollout_path": None,
            "model": "gpt-x",  # the agent span names none: its first inference's
            "provider_name": "openai",
            "approval_policy": "never",
            "sandbox_policy": "",
        },
    )
    user = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": "add 2 and 3"}],
    }
    assert written[3].payload == (
        PayloadKind.INFERENCE_REQUEST,
        {"model": "gpt-x", "input": [user]},
    )
    assistant = {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "calling add"}],
    }
    assert written[4].payload == (
        PayloadKind.INFERENCE_RESPONSE,
        {
            "response_id": "resp_1",
            "upstream_request_id": None,
            "token_usage": {
                "input_tokens": 11,
                "cached_input_tokens": 0,
                "output_tokens": 7,
                "reasoning_output_tokens": 0,
                "total_tokens": 18,
            },
            "output_items": [assistant],
        },
    )
    started = written[5].event
    assert isinstance(started, ToolCallStarted)
    assert (started.tool_call_id, started.model_visible_call_id) == ("call_add", "call_add")
    assert written[5].payload == (
        PayloadKind.TOOL_INVOCATION,
        {
            "tool_name": "add",
            "tool_namespace": None,
            "payload": {"type": "function", "arguments": '{"a":2}'},
        },
    )
    assert written[6].payload == (
        PayloadKind.TOOL_RESULT,
        {
            "type": "direct_response",
            "response_item": {"type": "function_call_output", "call_id": "call_add", "output": "5"},
        },
    )


def test_two_chats_under_one_agent_give_one_thread_and_turn() -> None:
    records = [
        record(2, 1, "chat", 2, 3),
        record(3, 1, "chat", 4, 5),
        record(1, 0, "invoke_agent", 1, 6),
    ]
    [plan] = plan_rollouts(TRACE_ID, records)
    written = realize(plan)
    assert types(written).count("thread_started") == 1
    assert types(written).count("codex_turn_started") == 1
    inferences = [w for w in written if w.type == "inference_started"]
    assert len(inferences) == 2
    assert {(w.thread_id, w.turn_id) for w in inferences} == {
        (plan.root_thread_id, f"turn-{plan.root_thread_id}")
    }
    assert len({w.event.inference_call_id for w in inferences}) == 2


def test_events_follow_the_span_times_not_the_order_spans_arrive_in() -> None:
    records = [
        record(2, 1, "chat", 2, 3),
        record(3, 1, "execute_tool", 4, 5, {"gen_ai.tool.name": "t"}),
        record(4, 1, "invoke_agent", 3, 4),
        record(1, 0, "invoke_agent", 1, 6),
    ]
    [first] = plan_rollouts(TRACE_ID, records)
    [second] = plan_rollouts(TRACE_ID, records[::-1])
    assert [w.event for w in realize(first)] == [w.event for w in realize(second)]


def test_content_attributes_become_payload_bodies() -> None:
    output = [
        {
            "role": "assistant",
            "parts": [
                {"type": "text", "content": "let me "},
                {"type": "text", "content": "check"},
                {"type": "tool_call", "id": "c1", "name": "look", "arguments": {"q": 1}},
            ],
        }
    ]
    tool_turn = [
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c0", "response": [1]}]}
    ]
    records = [
        record(
            2,
            0,
            "chat",
            1,
            2,
            {
                "gen_ai.input.messages": json.dumps(tool_turn),
                "gen_ai.output.messages": json.dumps(output),
            },
        ),
        record(  # legacy indexed attributes, when no gen_ai.*.messages
            3,
            0,
            "text_completion",
            3,
            4,
            {
                "gen_ai.prompt.0.content": "hi",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.completion.0.content": "yo",
                "gen_ai.completion.0.role": "assistant",
            },
        ),
    ]
    [plan] = plan_rollouts(TRACE_ID, records)
    bodies = [w.payload[1] for w in realize(plan) if w.payload and w.type.startswith("inference")]
    assert bodies[0]["input"] == [
        {"type": "function_call_output", "call_id": "c0", "output": "[1]"}
    ]
    assert bodies[1]["output_items"] == [  # in the parts' order, arguments compact JSON
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "let me "},
                {"type": "output_text", "text": "check"},
            ],
        },
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": '{"q":1}'},
    ]
    assert bodies[1]["token_usage"] is None
    assert bodies[2]["input"] == [
        {"type": "message", "role": "system", "content": [{"type": "input_text", "text": "hi"}]}
    ]
    assert bodies[3]["output_items"][0]["content"] == [{"type": "output_text", "text": "yo"}]


def test_spans_without_an_agent_get_a_synthetic_root_thread() -> None:
    records = [record(2, 1, "chat", 2, 3), record(1, 0, None, 1, 9)]
    [plan] = plan_rollouts(TRACE_ID, records)
    written = realize(plan)
    assert types(written)[:3] == ["rollout_started", "thread_started", "codex_turn_started"]
    assert plan.events[0].time_ns == 2 * MS  # the synthetic root spans the GenAI spans only
    # named after the app's span around the work, with the model its calls used
    assert written[1].payload is not None and written[1].payload[1]["nickname"] == "span 1"


def test_a_synthetic_root_thread_without_a_span_around_is_named_after_its_model() -> None:
    records = [record(2, 0, "chat", 2, 3, {"gen_ai.request.model": "gpt-x"})]
    [plan] = plan_rollouts(TRACE_ID, records)
    metadata = realize(plan)[1].payload
    assert metadata is not None
    assert (metadata[1]["nickname"], metadata[1]["model"]) == ("gpt-x", "gpt-x")


def test_nested_agents_become_child_threads_and_top_level_agents_rollouts() -> None:
    records = [
        record(3, 2, "chat", 3, 4, error="rate limited"),
        record(2, 1, "invoke_agent", 2, 5, {"gen_ai.agent.name": "checker"}),
        record(1, 0, "invoke_agent", 1, 6, {"gen_ai.agent.name": "planner"}),
        record(9, 0, "invoke_agent", 7, 8, {"gen_ai.agent.name": "other"}),
    ]
    first, second = plan_rollouts(TRACE_ID, records)
    written = realize(first)
    threads = [w.event for w in written if isinstance(w.event, ThreadStarted)]
    assert [t.agent_path for t in threads] == ["/root", "/root/checker"]
    child = [w for w in written if w.type == "thread_started"][1]
    assert child.payload is not None
    spawn = child.payload[1]["session_source"]["subagent"]["thread_spawn"]
    assert (spawn["parent_thread_id"], spawn["depth"]) == (first.root_thread_id, 1)
    failed = [w for w in written if w.type == "inference_failed"]
    assert [w.thread_id for w in failed] == [threads[1].thread_id]
    assert types(written)[-6:] == [
        "codex_turn_ended",
        "thread_ended",
        "codex_turn_ended",
        "thread_ended",
        "rollout_ended",
        "recording_completed",
    ]
    assert types(realize(second)).count("thread_started") == 1
    assert second.root_thread_id != first.root_thread_id


def test_a_second_span_with_the_same_call_id_is_not_model_visible() -> None:
    records = [
        record(2, 0, "execute_tool", 1, 2, {"gen_ai.tool.call.id": "dup"}),
        record(3, 0, "execute_tool", 3, 4, {"gen_ai.tool.call.id": "dup"}, error="boom"),
    ]
    [plan] = plan_rollouts(TRACE_ID, records)
    written = realize(plan)
    first, second = [w.event for w in written if w.type == "tool_call_started"]
    assert first.model_visible_call_id == "dup"
    assert second.model_visible_call_id is None and second.tool_call_id != "dup"
    [error] = [
        w.payload for w in written if w.type == "tool_call_ended" and w.event.status == "failed"
    ]
    assert error == (PayloadKind.TOOL_RESULT, {"type": "error", "error": "boom"})


def test_payloads_not_written_drop_or_degrade_their_events() -> None:
    records = [record(2, 1, "chat", 2, 3), record(1, 0, "invoke_agent", 1, 4)]
    [plan] = plan_rollouts(TRACE_ID, records)
    no_request = realize(plan, refuse=frozenset({PayloadKind.INFERENCE_REQUEST}))
    assert "inference_started" not in types(no_request)
    assert "inference_completed" not in types(no_request)  # no end without its start
    no_response = realize(plan, refuse=frozenset({PayloadKind.INFERENCE_RESPONSE}))
    [lost] = [
        w.event
        for w in no_response
        if w.type.startswith("inference_") and w.type != "inference_started"
    ]
    assert isinstance(lost, InferenceFailed) and lost.error == "response lost"
    no_metadata = realize(plan, refuse=frozenset({PayloadKind.SESSION_METADATA}))
    [thread] = [w.event for w in no_metadata if isinstance(w.event, ThreadStarted)]
    assert thread.metadata_payload is None
    assert any(isinstance(w.event, InferenceCompleted) for w in no_metadata)
