"""The spans-only planner's shapes in the reduced state: threads, turns, calls and edges.

Span records as instrumentations report them (GenAI, OpenInference, OpenLLMetry) are planned,
written as a bundle and reduced; the tests read what Codex sees (``rollout_shape``), and Codex
0.171.0 (0.169.0 for schema 2) must agree with our reduction of the richest ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_rollout import RolloutBundleSpanExporter, RolloutSpanProcessor
from otel_rollout._otel import _spans_only
from otel_rollout._otel._spans_only import write_plan
from otel_rollout._otel._spans_plan import (
    SpanRecord,
    conversation_of,
    plan_conversation,
    plan_rollouts,
)
from support.rollout_shape import RolloutShape, assert_codex_accepts, rollout_shape

TRACE_ID = 0x5EED
MS = 1_000_000


def span(
    span_id: int,
    parent_id: int,
    name: str,
    start_ms: int,
    end_ms: int,
    **attributes: Any,
) -> SpanRecord:
    """A finished span; attribute keys with ``__`` for ``.`` (``gen_ai__agent__name``)."""
    attrs = {key.replace("__", "."): value for key, value in attributes.items()}
    return SpanRecord(span_id, parent_id, name, start_ms * MS, end_ms * MS, None, attrs)


def agent(span_id: int, parent_id: int, name: str, start: int, end: int) -> SpanRecord:
    return span(
        span_id,
        parent_id,
        f"invoke_agent {name}",
        start,
        end,
        gen_ai__operation__name="invoke_agent",
        gen_ai__agent__name=name,
    )


def chat(
    span_id: int, parent_id: int, start: int, end: int, user: str, reply: Any, model: str = "m"
) -> SpanRecord:
    parts = (
        [{"type": "text", "content": reply}]
        if isinstance(reply, str)
        else [{"type": "tool_call", "id": reply[0], "name": reply[1], "arguments": reply[2]}]
    )
    return span(
        span_id,
        parent_id,
        f"chat {model}",
        start,
        end,
        gen_ai__operation__name="chat",
        gen_ai__request__model=model,
        gen_ai__input__messages=json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": user}]}]
        ),
        gen_ai__output__messages=json.dumps([{"role": "assistant", "parts": parts}]),
    )


def tool(
    span_id: int, parent_id: int, name: str, start: int, end: int, **attributes: Any
) -> SpanRecord:
    return span(
        span_id,
        parent_id,
        f"execute_tool {name}",
        start,
        end,
        gen_ai__operation__name="execute_tool",
        gen_ai__tool__name=name,
        **attributes,
    )


def shapes(records: list[SpanRecord], root: Path, schema_version: int = 3) -> list[RolloutShape]:
    bundles = []
    for plan in plan_rollouts(TRACE_ID, records):
        path = write_plan(root, plan, schema_version=schema_version)
        assert path is not None
        bundles.append(rollout_shape(path))
    return bundles


def agents_sdk_like() -> list[SpanRecord]:
    """The Agents SDK bridge's shape: a nameless workflow span; triage runs twice (2 user
    turns); it calls a researcher as a tool and hands off to billing."""
    return [
        span(1, 0, "Agent workflow", 0, 100, gen_ai__operation__name="invoke_agent"),
        agent(2, 1, "triage", 1, 40),
        span(3, 2, "turn", 1, 40),
        chat(4, 3, 2, 3, "rates?", ("call_t1", "research", '{"input": "rates"}')),
        tool(5, 3, "research", 4, 20, gen_ai__tool__call__arguments='{"input": "rates"}'),
        agent(6, 5, "researcher", 5, 19),
        chat(7, 6, 6, 7, "rates", "5%."),
        chat(8, 3, 21, 22, "rates?", ("call_t2", "transfer_to_billing", None)),
        span(
            9,
            3,
            "handoff",
            23,
            24,
            gen_ai__operation__name="agent_handoff",
            gen_ai__handoff__to_agent="billing",
        ),
        agent(10, 1, "billing", 41, 60),
        chat(11, 10, 42, 43, "rates?", "$10."),
        agent(12, 1, "triage", 61, 80),
        chat(13, 12, 62, 63, "thanks", "Bye."),
    ]


@pytest.mark.parametrize("schema_version", [3, 2])
def test_agents_as_tools_handoffs_and_turns(
    tmp_path: Path, codex_for: Callable[[int], Path], schema_version: int
) -> None:
    [shape] = shapes(agents_sdk_like(), tmp_path, schema_version)
    assert set(shape.threads) == {"/root", "/root/researcher", "/root/billing"}
    triage = shape.threads["/root"]
    assert (triage.nickname, triage.turns, triage.inferences) == ("triage", 2, 3)
    assert triage.tools == [
        ("research", "call_t1", "spawn_agent"),
        ("transfer_to_billing", "call_t2", "spawn_agent"),
    ]
    assert triage.arguments == {"call_t1": '{"input": "rates"}', "call_t2": "{}"}
    assert shape.edges == [
        ("agent_result", "/root/researcher", "/root", None),
        ("spawn_agent", "/root", "/root/billing", "call_t2"),
        ("spawn_agent", "/root", "/root/researcher", "call_t1"),
    ]
    assert shape.threads["/root/billing"].replies == ["$10."]
    assert triage.user_texts == ["rates?", "thanks"]
    [bundle] = tmp_path.glob("trace-*")
    assert_codex_accepts(bundle, codex_for(schema_version), tmp_path)


@pytest.mark.parametrize("schema_version", [3, 2])
def test_an_agent_called_twice_as_a_tool_gets_a_task_edge_the_second_time(
    tmp_path: Path, codex_for: Callable[[int], Path], schema_version: int
) -> None:
    """The first call spawns the helper's thread; the second assigns it a task (Codex's
    ``assign_agent_task`` shape: the task delivered into the helper's next turn); both
    answers come back as ``agent_result`` edges."""
    records = [
        agent(1, 0, "triage", 0, 100),
        chat(2, 1, 1, 2, "rates?", ("call_1", "research", '{"input": "rates"}')),
        tool(3, 1, "research", 3, 20, gen_ai__tool__call__arguments='{"input": "rates"}'),
        agent(4, 3, "researcher", 4, 19),
        chat(5, 4, 5, 6, "rates", "5%."),
        chat(6, 1, 21, 22, "and fees?", ("call_2", "research", '{"input": "fees"}')),
        tool(7, 1, "research", 23, 40, gen_ai__tool__call__arguments='{"input": "fees"}'),
        agent(8, 7, "researcher", 24, 39),
        chat(9, 8, 25, 26, "fees", "$1."),
        chat(10, 1, 41, 42, "and?", "5% and $1."),
    ]
    [shape] = shapes(records, tmp_path, schema_version)
    assert set(shape.threads) == {"/root", "/root/researcher"}
    triage, researcher = shape.threads["/root"], shape.threads["/root/researcher"]
    assert triage.tools == [
        ("research", "call_1", "spawn_agent"),
        ("research", "call_2", "assign_agent_task"),
    ]
    assert triage.arguments == {"call_1": '{"input": "rates"}', "call_2": '{"input": "fees"}'}
    assert (researcher.turns, researcher.replies) == (2, ["5%.", "$1."])
    assert shape.edges == [
        ("agent_result", "/root/researcher", "/root", None),
        ("agent_result", "/root/researcher", "/root", None),
        ("assign_agent_task", "/root", "/root/researcher", "call_2"),
        ("spawn_agent", "/root", "/root/researcher", "call_1"),
    ]
    [bundle] = tmp_path.glob("trace-*")
    assert_codex_accepts(bundle, codex_for(schema_version), tmp_path)


def test_work_under_app_spans_goes_to_its_nearest_agent(tmp_path: Path) -> None:
    records = [
        agent(1, 0, "planner", 0, 50),
        span(2, 1, "step", 1, 10),
        chat(3, 2, 2, 3, "go", ("c1", "ask", '{"q":"x"}')),
        tool(4, 2, "ask", 4, 9),
        span(5, 4, "app code", 5, 8),
        agent(6, 5, "helper", 5, 8),
        span(7, 6, "step", 6, 7),
        chat(8, 7, 6, 7, "x", "done"),
    ]
    [shape] = shapes(records, tmp_path)
    assert (shape.threads["/root"].inferences, shape.threads["/root/helper"].inferences) == (1, 1)
    assert shape.threads["/root"].tools == [("ask", "c1", "spawn_agent")]  # id from the model
    assert shape.threads["/root"].arguments == {"c1": '{"q":"x"}'}


def test_spans_without_agent_work_make_no_bundle(tmp_path: Path) -> None:
    records = [
        span(1, 0, "GET /", 0, 10),
        span(2, 0, "create_agent x", 0, 1, gen_ai__operation__name="create_agent"),
        span(3, 0, "embeddings m", 2, 3, gen_ai__operation__name="embeddings"),
    ]
    assert shapes(records, tmp_path) == []


def test_an_agent_reported_twice_is_one_run(tmp_path: Path) -> None:
    """OpenLLMetry: ``invoke_agent planner`` around ``planner.workflow`` (also an agent span)."""
    records = [
        agent(1, 0, "planner", 0, 10),
        span(
            2,
            1,
            "planner.workflow",
            0,
            10,
            gen_ai__operation__name="invoke_agent",
            gen_ai__agent__name="planner",
        ),
        chat(3, 2, 1, 2, "hi", "hello"),
    ]
    [shape] = shapes(records, tmp_path)
    assert list(shape.threads) == ["/root"] and shape.threads["/root"].turns == 1


def test_openinference_spans_are_read_natively(tmp_path: Path) -> None:
    records = [
        span(1, 0, "Agent workflow", 0, 20, openinference__span__kind="AGENT"),
        span(2, 1, "weather", 1, 19, openinference__span__kind="AGENT", agent__name="weather"),
        span(
            3,
            2,
            "generation",
            2,
            3,
            openinference__span__kind="LLM",
            llm__model_name="m",
            llm__provider="openai",
            llm__input_messages__0__message__role="system",
            llm__input_messages__0__message__content="Answer.",
            llm__input_messages__1__message__role="user",
            llm__input_messages__1__message__content="Paris?",
            llm__output_messages__0__message__role="assistant",
            llm__output_messages__0__message__tool_calls__0__tool_call__id="call_1",
            llm__output_messages__0__message__tool_calls__0__tool_call__function__name="forecast",
            llm__token_count__prompt=9,
        ),
        span(
            4,
            2,
            "forecast",
            4,
            5,
            openinference__span__kind="TOOL",
            tool__name="forecast",
            input__value='{"city":"Paris"}',
            output__value="Sunny",
        ),
    ]
    [shape] = shapes(records, tmp_path)
    [weather] = shape.threads.values()
    assert (weather.nickname, weather.model, weather.inferences) == ("weather", "m", 1)
    assert weather.instructions == ["Answer."] and weather.user_texts == ["Paris?"]
    assert weather.tools == [("forecast", "call_1", "other")]
    assert weather.arguments == {"call_1": '{"city":"Paris"}'}


def test_langchain_agents_are_found_by_their_lc_agent_name(tmp_path: Path) -> None:
    """OpenInference's LangChain spans: CHAIN spans, the agent in ``metadata``."""

    def chain(span_id: int, parent: int, name: str, agent_name: str, start: int, end: int) -> Any:
        metadata = json.dumps({"lc_agent_name": agent_name})
        return span(
            span_id, parent, name, start, end, openinference__span__kind="CHAIN", metadata=metadata
        )

    records = [
        chain(1, 0, "planner", "planner", 0, 50),
        chain(2, 1, "model", "planner", 1, 4),
        chat(3, 2, 2, 3, "plan", ("call_ask", "ask_helper", '{"q":"?"}')),
        chain(4, 1, "tools", "planner", 5, 40),
        span(5, 4, "ask_helper", 6, 39, openinference__span__kind="TOOL", tool__name="ask_helper"),
        chain(6, 5, "helper", "helper", 7, 38),
        chain(7, 6, "model", "helper", 8, 9),
        chat(8, 7, 8, 9, "?", "done"),
    ]
    [shape] = shapes(records, tmp_path)
    assert set(shape.threads) == {"/root", "/root/helper"}
    assert shape.threads["/root"].tools == [("ask_helper", "call_ask", "spawn_agent")]
    assert shape.threads["/root"].arguments == {"call_ask": '{"q":"?"}'}  # the model's, exactly


def test_the_agents_bridge_repr_messages_and_result_parts_are_read(tmp_path: Path) -> None:
    repr_text = (
        "{'content': None, 'role': 'assistant', 'tool_calls': [{'id': 'call_1', 'function': "
        "{'arguments': '{\"a\": 1}', 'name': 'add'}, 'type': 'function'}]}"
    )
    output = [{"role": "assistant", "parts": [{"type": "text", "content": repr_text}]}]
    tool_turn = [
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c0", "result": "5"}]}
    ]
    records = [
        agent(1, 0, "a", 0, 10),
        span(
            2,
            1,
            "chat m",
            1,
            2,
            gen_ai__operation__name="chat",
            gen_ai__input__messages=json.dumps(tool_turn),
            gen_ai__output__messages=json.dumps(output),
        ),
        tool(3, 1, "add", 3, 4),
    ]
    [shape] = shapes(records, tmp_path)
    assert shape.threads["/root"].tools == [("add", "call_1", "other")]
    assert shape.threads["/root"].arguments == {"call_1": '{"a": 1}'}
    items = shape.state["conversation_items"].values()
    outputs = [item for item in items if item["kind"] == "function_call_output"]
    assert [item["call_id"] for item in outputs] == ["c0"]


def test_the_agents_bridge_repr_of_a_responses_function_call_gives_the_models_call(
    tmp_path: Path,
) -> None:
    """With a Responses API model the bridge writes the ``function_call`` item as its pydantic
    ``repr``: the call is read back (literals only), so the tool span gets the model's call id
    and arguments; a repr that is not one stays text."""
    repr_text = (
        "ResponseFunctionToolCall(arguments='{\"input\": \"x\"}', call_id='call_9', "
        "name='research', type='function_call', id='fc_9', async_=None, status='completed')"
    )
    not_a_call = "ResponseFunctionToolCall(arguments=open('/etc/passwd'), call_id='c', name='n')"
    records = [
        agent(1, 0, "a", 0, 20),
        chat(2, 1, 1, 2, "go", "placeholder"),
        tool(3, 1, "research", 3, 4),
        chat(4, 1, 5, 6, "go", not_a_call),
    ]
    output = [{"role": "assistant", "parts": [{"type": "text", "content": repr_text}]}]
    records[1].attributes["gen_ai.output.messages"] = json.dumps(output)
    [shape] = shapes(records, tmp_path)
    assert shape.threads["/root"].tools == [("research", "call_9", "other")]
    assert shape.threads["/root"].arguments == {"call_9": '{"input": "x"}'}
    assert shape.threads["/root"].replies == [not_a_call]


def test_a_conversations_traces_join_one_turn_per_trace_without_content(tmp_path: Path) -> None:
    """Traces joined by ``gen_ai.conversation.id``; with no content to tell a user message from
    tool results, each trace is a turn. Agent runs, or two ids, join nothing."""

    def bare_chat(span_id: int, start: int, conversation: str = "c1") -> SpanRecord:
        return span(
            span_id,
            0,
            "chat m",
            start,
            start + 1,
            gen_ai__operation__name="chat",
            gen_ai__request__model="m",
            gen_ai__conversation__id=conversation,
        )

    traces = [[bare_chat(1, 0)], [bare_chat(2, 5)]]
    assert [conversation_of(records) for records in traces] == ["c1", "c1"]
    openinference = span(7, 0, "llm", 0, 1, openinference__span__kind="LLM", session__id="c1")
    assert conversation_of([openinference]) == "c1"  # OpenInference's session id
    assert conversation_of([bare_chat(3, 0), bare_chat(4, 2, "c2")]) is None
    assert conversation_of([agent(5, 0, "a", 0, 9), bare_chat(6, 1)]) is None
    plan = plan_conversation(TRACE_ID, traces)
    assert plan is not None
    path = write_plan(tmp_path, plan)
    assert path is not None
    root = rollout_shape(path).threads["/root"]
    assert (root.nickname, root.turns, root.inferences) == ("m", 2, 2)


@pytest.mark.parametrize("max_spans", [_spans_only.MAX_CONVERSATION_SPANS, 1])
def test_the_exporter_joins_a_conversations_traces_within_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_spans: int
) -> None:
    """Through the exporter, as spans end: two traces of conversation ``c1`` give one bundle
    of two turns; a trace that would take the conversation past its bound of spans starts a
    bundle of its own."""
    monkeypatch.setattr(_spans_only, "MAX_CONVERSATION_SPANS", max_spans)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(RolloutBundleSpanExporter(tmp_path)))
    tracer = provider.get_tracer("an.instrumentation")
    for user in ("hi", "again"):
        messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": user}]}])
        attributes = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "m",
            "gen_ai.conversation.id": "c1",
            "gen_ai.input.messages": messages,
        }
        with tracer.start_as_current_span("chat m", attributes=attributes):
            pass
    provider.shutdown()
    bundles = [rollout_shape(path) for path in sorted(tmp_path.glob("trace-*"))]
    turns = sorted(shape.threads["/root"].turns for shape in bundles)
    assert turns == ([2] if max_spans > 1 else [1, 1])
    if max_spans > 1:
        assert bundles[0].threads["/root"].user_texts == ["hi", "again"]


def test_a_genai_trace_with_no_bundle_warns_once_and_other_traces_stay_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_spans_only, "_warned", set())
    provider = TracerProvider()
    provider.add_span_processor(RolloutSpanProcessor(RolloutBundleSpanExporter(tmp_path)))
    tracer = provider.get_tracer("an.instrumentation")
    with tracer.start_as_current_span("GET /health"):
        pass  # a web request: no GenAI span, no word
    for _ in range(2):
        with tracer.start_as_current_span(
            "create_agent helper", attributes={"gen_ai.operation.name": "create_agent"}
        ):
            pass
    provider.shutdown()
    assert list(tmp_path.glob("trace-*")) == []
    warnings = [r.getMessage() for r in caplog.records if "no agent run" in r.getMessage()]
    assert warnings == [
        "rollout trace: a trace's GenAI spans hold no agent run, inference or tool call "
        "(operations: create_agent), so it has no bundle"
    ]
