"""The GenAI semantic conventions on our spans: compared with what the real
opentelemetry-instrumentation-openai-v2 (latest experimental mode) emits for the same
exchange, the requirement levels, the content switch, messages, and redaction."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import zstandard
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import otel_rollout
from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext
from otel_rollout import semconv as sc
from otel_rollout._bundle import _messages
from otel_rollout._bundle._redact import REDACTED, Redactor, pattern_redact
from otel_rollout._config import CONTENT_MODES
from otel_rollout._otel._mapping import error_type
from otel_rollout._otel._replay import bundle_spans
from support.codex import codex_reduce
from support.recording import Pipeline, make_pipeline

MODEL = "gpt-4o-mini"
SNAPSHOT = "gpt-4o-mini-2024-07-18"
SYSTEM = "You are helpful."
QUESTION = "Weather in Paris?"
ARGUMENTS = '{"city":"Paris"}'
RESULT = "sunny"
ANSWER = "Sunny in Paris."
USAGE_1 = {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25}
USAGE_2 = {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
SCRIPT = [
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": SNAPSHOT,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ARGUMENTS},
                        }
                    ],
                },
            }
        ],
        "usage": USAGE_1,
    },
    {
        "id": "chatcmpl-2",
        "object": "chat.completion",
        "created": 2,
        "model": SNAPSHOT,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": ANSWER},
            }
        ],
        "usage": USAGE_2,
    },
]
FINISH_REASONS = {"tool_calls": "tool_call", "stop": "stop"}
"""OpenAI's finish reasons (passed through by openai-v2) -> the conventions' values (ours)."""


class _ScriptedServer(HTTPServer):
    replies: list[dict[str, Any]]


class _Handler(BaseHTTPRequestHandler):
    server: _ScriptedServer

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(self.server.replies.pop(0)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def scripted_server() -> Iterator[_ScriptedServer]:
    """A Chat Completions server on loopback answering with :data:`SCRIPT`."""
    server = _ScriptedServer(("127.0.0.1", 0), _Handler)
    server.replies = [dict(reply) for reply in SCRIPT]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _openai_v2_chat_spans(
    server: _ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> list[ReadableSpan]:
    """The exchange through the real openai client and the real instrumentation."""
    openai = pytest.importorskip("openai")
    openai_v2 = pytest.importorskip("opentelemetry.instrumentation.openai_v2")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    monkeypatch.setenv(sc_content_env(), "span_only")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    instrumentor = openai_v2.OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider, logger_provider=LoggerProvider())
    try:
        port = server.server_address[1]
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test")
        tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": QUESTION},
        ]
        first = client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
        messages.append(first.choices[0].message.model_dump(exclude_none=True))
        messages.append({"role": "tool", "tool_call_id": "call_1", "content": RESULT})
        client.chat.completions.create(model=MODEL, messages=messages, tools=tools)
    finally:
        instrumentor.uninstrument()
    return [span for span in memory.get_finished_spans() if span.name == f"chat {MODEL}"]


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    """Spans grouped by name, in start order."""
    named: dict[str, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        named.setdefault(span.name, []).append(span)
    return named


def sc_content_env() -> str:
    from otel_rollout._config import CAPTURE_CONTENT_ENV

    return CAPTURE_CONTENT_ENV


def _usage(usage: dict[str, int]) -> dict[str, int]:
    return {
        "input_tokens": usage["prompt_tokens"],
        "cached_input_tokens": 0,
        "output_tokens": usage["completion_tokens"],
        "reasoning_output_tokens": 0,
        "total_tokens": usage["total_tokens"],
    }


def _record_exchange(port: int, *, secret: str = "") -> Path | None:
    """The same exchange recorded with the recording API (Responses items)."""
    system = {
        "type": "message",
        "role": "system",
        "content": [{"type": "input_text", "text": SYSTEM}],
    }
    user = {
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": QUESTION + secret}],
    }
    arguments = (
        json.dumps({"city": "Paris" + secret}, separators=(",", ":")) if secret else ARGUMENTS
    )
    call = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": arguments,
    }
    answer = {
        "type": "message",
        "id": "msg_2",
        "role": "assistant",
        "content": [{"type": "output_text", "text": ANSWER, "annotations": []}],
    }
    meta = ThreadStartedTraceMetadata(nickname="weather", model=MODEL, provider_name="openai")
    with ThreadTraceContext.start_root_or_disabled(meta) as root, root.turn() as turn:
        history: list[dict[str, Any]] = [system, user]
        inference = turn.inference(MODEL, "openai", server_address="127.0.0.1", server_port=port)
        with inference.attempt({"model": MODEL, "input": list(history)}) as attempt:
            attempt.record_completed(
                "chatcmpl-1", [call], token_usage=_usage(USAGE_1), response_model=SNAPSHOT
            )
        with turn.tool_call("get_weather", arguments, tool_call_id="call_1") as tool:
            tool.record_completed(RESULT + secret)
        output = {"type": "function_call_output", "call_id": "call_1", "output": RESULT + secret}
        history += [call, output]
        with inference.attempt({"model": MODEL, "input": list(history)}) as attempt:
            attempt.record_completed(
                "chatcmpl-2", [answer], token_usage=_usage(USAGE_2), response_model=SNAPSHOT
            )
    return root.bundle_dir


@pytest.fixture
def content_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    for name in ("OTEL_ROLLOUT_TRACE_ROOT", "OTEL_ROLLOUT_REDACT_PATTERNS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(sc_content_env(), "span_only")
    made = make_pipeline(tmp_path / "traces")
    yield made
    made.provider.shutdown()
    otel_rollout._live._runtime.reset()


def _shape(value: Any) -> Any:
    """The JSON shape of an attribute value: keys and types, not the values."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shape(item) for item in value]
    return type(value).__name__


def _normalized_messages(text: Any) -> Any:
    messages = json.loads(str(text))
    for message in messages:
        if "finish_reason" in message:
            message["finish_reason"] = FINISH_REASONS.get(
                message["finish_reason"], message["finish_reason"]
            )
    return messages


MESSAGE_ATTRIBUTES = (sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES)


def test_chat_spans_match_openai_v2_attribute_by_attribute(
    scripted_server: _ScriptedServer, content_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every attribute openai-v2 sets (the data supports all of them here) is on our chat
    span, of the same type; messages are equal as JSON (finish reasons in the conventions'
    values: OpenAI's ``tool_calls`` is the conventions' ``tool_call``)."""
    theirs = _openai_v2_chat_spans(scripted_server, monkeypatch)
    assert _record_exchange(scripted_server.server_address[1]) is not None
    ours = by_name(content_pipeline.spans())[f"chat {MODEL}"]
    assert len(theirs) == len(ours) == 2
    for their_span, our_span in zip(theirs, ours, strict=True):
        assert their_span.kind == our_span.kind
        their_attrs: dict[str, Any] = dict(their_span.attributes or {})
        our_attrs: dict[str, Any] = dict(our_span.attributes or {})
        missing = set(their_attrs) - set(our_attrs)
        assert not missing, missing
        for name, value in their_attrs.items():
            mine = our_attrs[name]
            assert type(mine) is type(value), name
            if name in MESSAGE_ATTRIBUTES:
                assert _normalized_messages(mine) == _normalized_messages(value), name
            elif name == sc.GEN_AI_RESPONSE_FINISH_REASONS:
                assert list(mine) == [FINISH_REASONS[reason] for reason in value]
            else:
                assert mine == value, name
        assert json.loads(str(our_attrs[sc.GEN_AI_INPUT_MESSAGES]))[0]["role"] == "system"


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


REQUIRED = {
    "chat": {sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME, sc.GEN_AI_REQUEST_MODEL},
    "execute_tool": {sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_TOOL_NAME},
    "invoke_agent": {sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_PROVIDER_NAME},
}
"""Required attributes of each span type (GenAI conventions v1.41)."""
CONDITIONALLY_REQUIRED = {
    "chat": {sc.GEN_AI_CONVERSATION_ID, sc.SERVER_PORT},
    "execute_tool": set(),
    "invoke_agent": {sc.GEN_AI_AGENT_ID, sc.GEN_AI_AGENT_NAME, sc.GEN_AI_CONVERSATION_ID},
}
"""Conditionally required where the data exists (all of it does in this rollout)."""
RECOMMENDED = {
    "chat": {
        sc.GEN_AI_RESPONSE_ID,
        sc.GEN_AI_RESPONSE_MODEL,
        sc.GEN_AI_RESPONSE_FINISH_REASONS,
        sc.GEN_AI_USAGE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
        sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
        sc.SERVER_ADDRESS,
    },
    "execute_tool": {sc.GEN_AI_TOOL_CALL_ID, sc.GEN_AI_TOOL_TYPE},
    "invoke_agent": {sc.GEN_AI_REQUEST_MODEL},
}


def test_requirement_levels_of_chat_execute_tool_and_invoke_agent(
    content_pipeline: Pipeline,
) -> None:
    _record_exchange(8443)
    root = ThreadTraceContext.start_root_or_disabled()  # no provider in its metadata
    with root, root.turn() as turn:
        child = root.start_child_thread_trace_or_disabled(
            ThreadStartedTraceMetadata(agent_path="/root/kid", nickname="kid")
        )
        with child, child.turn() as child_turn:
            with child_turn.inference(MODEL, "openai").attempt({"input": []}) as attempt:
                attempt.record_failed(TimeoutError("read timed out"))
        with turn.tool_call("lookup", "{}") as tool:
            tool.record_failed(KeyError("missing"))
        with turn.inference(MODEL, "openai").attempt({"input": []}) as attempt:
            attempt.record_failed("HTTP 503 from upstream")
        root.record_ended(otel_rollout.RolloutStatus.FAILED)
    spans = content_pipeline.spans()
    for span in spans:
        operation = _attrs(span).get(sc.GEN_AI_OPERATION_NAME)
        if operation not in REQUIRED:
            continue
        present = set(_attrs(span))
        assert REQUIRED[operation] <= present, (span.name, REQUIRED[operation] - present)
        if span.status.status_code is StatusCode.ERROR:
            assert _attrs(span)[sc.ERROR_TYPE]
            assert span.status.description, span.name
    by = by_name(spans)
    [weather] = by["invoke_agent weather"]
    [ok_tool] = by["execute_tool get_weather"]
    for span, operation in ((weather, "invoke_agent"), (ok_tool, "execute_tool")):
        wanted = CONDITIONALLY_REQUIRED[operation] | RECOMMENDED[operation]
        assert wanted <= set(_attrs(span)), wanted - set(_attrs(span))
    for chat in by[f"chat {MODEL}"][:2]:
        wanted = CONDITIONALLY_REQUIRED["chat"] | RECOMMENDED["chat"]
        assert wanted <= set(_attrs(chat)), wanted - set(_attrs(chat))
    failures = {
        span.name: (_attrs(span)[sc.ERROR_TYPE], span.status.description)
        for span in spans
        if span.status.status_code is StatusCode.ERROR
    }
    assert failures["execute_tool lookup"] == ("KeyError", "KeyError: 'missing'")
    chat_errors = sorted(
        (_attrs(s)[sc.ERROR_TYPE], s.status.description)
        for s in by[f"chat {MODEL}"]
        if s.status.status_code is StatusCode.ERROR
    )
    assert chat_errors == [
        ("503", "HTTP 503 from upstream"),
        ("TimeoutError", "TimeoutError: read timed out"),
    ]
    [kid] = by["invoke_agent kid"]
    assert _attrs(kid)[sc.GEN_AI_PROVIDER_NAME] == "openai"  # its first inference's
    [anonymous] = [s for s in by_name(spans) if s.startswith("invoke_agent /root")]
    assert failures[anonymous] == (sc.ERROR_TYPE_OTHER, "thread failed")
    [root_span] = by[anonymous]
    assert _attrs(root_span)[sc.GEN_AI_PROVIDER_NAME] == "openai"  # before it ended


def test_provider_falls_back_to_other_when_nothing_says(content_pipeline: Pipeline) -> None:
    root = ThreadTraceContext.start_root_or_disabled()
    with root, root.turn():
        pass
    [span] = [s for s in content_pipeline.spans() if s.name.startswith("invoke_agent")]
    assert _attrs(span)[sc.GEN_AI_PROVIDER_NAME] == sc.PROVIDER_OTHER


def test_child_agent_inherits_its_parents_provider(content_pipeline: Pipeline) -> None:
    meta = ThreadStartedTraceMetadata(nickname="boss", provider_name="anthropic")
    with ThreadTraceContext.start_root_or_disabled(meta) as root:
        child = root.start_child_thread_trace_or_disabled(
            ThreadStartedTraceMetadata(agent_path="/root/kid", nickname="kid")
        )
        child.record_ended()
    [kid] = by_name(content_pipeline.spans())["invoke_agent kid"]
    assert _attrs(kid)[sc.GEN_AI_PROVIDER_NAME] == "anthropic"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("HTTP 500", "500"),
        ("HTTP 500 from provider", "500"),
        ("TimeoutError: read timed out", "TimeoutError"),
        ("openai.APIConnectionError: boom", "APIConnectionError"),
        ("KeyboardInterrupt", "KeyboardInterrupt"),
        ("the model refused", "_OTHER"),
        ("", "_OTHER"),
    ],
)
def test_error_type_rule(message: str, expected: str) -> None:
    assert error_type(message) == expected


def test_content_switch_values() -> None:
    assert CONTENT_MODES["true"] == CONTENT_MODES["span_only"] == (True, False)
    assert CONTENT_MODES["event_only"] == (False, True)
    assert CONTENT_MODES["span_and_event"] == (True, True)
    assert CONTENT_MODES["no_content"] == (False, False)


@pytest.mark.parametrize("mode", ["EVENT_ONLY", "span_and_event", "no_content"])
def test_event_only_sends_the_conventions_log_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    from opentelemetry import _logs

    monkeypatch.delenv("OTEL_ROLLOUT_TRACE_ROOT", raising=False)
    monkeypatch.setenv(sc_content_env(), mode)
    logs = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    monkeypatch.setattr(_logs._internal, "_LOGGER_PROVIDER", provider)
    made = make_pipeline(tmp_path / "traces")
    try:
        bundle = _record_exchange(1234)
        chats = by_name(made.spans())[f"chat {MODEL}"]
    finally:
        made.provider.shutdown()
        otel_rollout._live._runtime.reset()
    assert bundle is not None
    on_spans = mode.lower() == "span_and_event"
    assert all((sc.GEN_AI_INPUT_MESSAGES in _attrs(c)) is on_spans for c in chats)
    records = [r.log_record for r in logs.get_finished_logs()]
    if mode == "no_content":
        assert records == []
        return
    assert [r.event_name for r in records] == [sc.EVENT_INFERENCE_DETAILS] * 2
    first: dict[str, Any] = dict(records[0].attributes or {})
    assert first[sc.GEN_AI_REQUEST_MODEL] == MODEL
    assert first[sc.GEN_AI_INPUT_MESSAGES][1]["parts"][0]["content"] == QUESTION
    assert first[sc.GEN_AI_OUTPUT_MESSAGES][0]["parts"][0]["type"] == "tool_call"
    assert records[0].span_id == chats[0].context.span_id
    assert records[0].trace_id == chats[0].context.trace_id


def test_messages_convert_both_ways() -> None:
    items = [
        {
            "type": "message",
            "role": "developer",
            "content": [{"type": "input_text", "text": "be nice"}],
        },
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "think"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "done"},
    ]
    messages = _messages.messages_from_items(items)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["parts"] == [
        {"type": "reasoning", "content": "think"},
        {"type": "tool_call", "id": "c1", "name": "f", "arguments": {"a": 1}},
    ]
    back = _messages.items_from_messages(messages)
    assert _messages.messages_from_items(back) == messages
    assert back[3] == {
        "type": "function_call",
        "call_id": "c1",
        "name": "f",
        "arguments": '{"a":1}',
    }


def test_bounded_messages_drop_oldest_then_shorten_and_stay_json() -> None:
    messages = [
        {"role": "user", "parts": [{"type": "text", "content": f"message {n} " + "x" * 200}]}
        for n in range(10)
    ]
    whole = _messages.bounded_messages(messages, 1_000_000)
    assert whole is not None and json.loads(whole) == messages
    for bound in (900, 300, 100, 70):
        text = _messages.bounded_messages(messages, bound)
        assert text is not None and len(text.encode()) <= bound
        kept = json.loads(text)
        head = kept[-1]["parts"][0]["content"].removesuffix(_messages.TRUNCATION_MARKER)
        assert ("message 9 " + "x" * 200).startswith(head)  # the newest message, kept
        if bound < 300:
            assert len(kept) == 1 and kept[0]["parts"][0]["content"].endswith("...[truncated]")
    assert _messages.bounded_messages(messages, 10) is None
    value = _messages.bounded_value({"city": "Paris" * 100}, 60)
    assert value is not None and len(value.encode()) <= 60
    assert json.loads(value).endswith("...[truncated]")


def test_bounded_messages_keep_what_dropping_one_message_at_a_time_keeps() -> None:
    """Sizes measured once per message give the result of re-measuring the list after each
    drop (the quadratic way), non-ASCII text included."""

    def one_at_a_time(messages: list[dict[str, Any]], max_bytes: int) -> list[dict[str, Any]]:
        kept = list(messages)
        while len(kept) > 1 and len(_messages.dumps(kept).encode()) > max_bytes:
            kept.pop(0)
        return kept

    messages = [
        {"role": "user", "parts": [{"type": "text", "content": f"{n} é✓ " * (n % 7 + 1)}]}
        for n in range(60)
    ]
    for bound in range(40, len(_messages.dumps(messages).encode()) + 2, 37):
        text = _messages.bounded_messages(messages, bound)
        kept = one_at_a_time(messages, bound)
        if len(_messages.dumps(kept).encode()) <= bound:
            assert text == _messages.dumps(kept), bound
        else:  # one message left, too big: its text is shortened
            assert text is None or json.loads(text)[0]["role"] == kept[0]["role"]


def test_redactor_keeps_ids_keys_and_json_arguments_valid() -> None:
    redactor = Redactor(pattern_redact([r"sk-[a-z0-9]+"]))
    body = {
        "id": "sk-id1",
        "call_id": "sk-call",
        "type": "function_call",
        "name": "sk-tool",
        "arguments": '{"token":"sk-abc123","n":1}',
        "output": "key sk-zzz here",
        "sk-key": ["sk-abc", 3, None],
    }
    redacted = redactor.body(body)
    assert redacted["id"] == "sk-id1" and redacted["call_id"] == "sk-call"
    assert redacted["name"] == "sk-tool" and redacted["type"] == "function_call"
    assert json.loads(redacted["arguments"]) == {"token": REDACTED, "n": 1}
    assert redacted["output"] == f"key {REDACTED} here"
    assert redacted["sk-key"] == [REDACTED, 3, None]
    clean = {"arguments": '{ "a" : 1 }', "text": "fine"}
    assert redactor.body(clean) is clean  # untouched: the exact bytes stay


SECRET = "sk-SECRET0123456789"


def _all_bundle_bytes(bundle: Path) -> bytes:
    data = b""
    for path in sorted(bundle.rglob("*")):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        if path.suffix == ".zst":
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            raw = reader.read()  # every frame of the shard
        data += raw
    return data


@pytest.mark.parametrize("schema_version", [2, 3])
def test_request_items_and_tools_given_encoded_are_redacted_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema_version: int
) -> None:
    """An integration may give a request's input items and tools encoded (``msgspec.Raw``,
    as the Agents SDK processor does): the redactor sees their text all the same."""
    import msgspec

    from otel_rollout._live._recording import record_inference_call

    monkeypatch.delenv("OTEL_ROLLOUT_TRACE_ROOT", raising=False)
    monkeypatch.setenv("OTEL_ROLLOUT_REDACT_PATTERNS", r'["sk-[A-Za-z0-9]+"]')
    made = make_pipeline(tmp_path / "traces", schema_version=schema_version)
    try:
        text = {"type": "input_text", "text": SECRET}
        item = {"type": "message", "role": "user", "content": [text]}
        tools = [{"type": "function", "name": "f", "description": SECRET}]
        request = {
            "model": MODEL,
            "input": [msgspec.Raw(msgspec.json.encode(item))],
            "tools": msgspec.Raw(msgspec.json.encode(tools)),
        }
        meta = ThreadStartedTraceMetadata()
        with ThreadTraceContext.start_root_or_disabled(meta) as root, root.turn() as turn:
            record_inference_call(root, turn.turn_id, MODEL, "p", request, [], response_id="r")
        assert otel_rollout.force_flush()
        bundle = root.bundle_dir
    finally:
        made.provider.shutdown()
        otel_rollout._live._runtime.reset()
    assert bundle is not None
    data = _all_bundle_bytes(bundle)
    assert SECRET.encode() not in data
    assert data.count(REDACTED.encode()) >= 2  # the item's text and the tool's description


@pytest.mark.parametrize("schema_version", [2, 3])
def test_redaction_keeps_a_secret_out_of_bundles_and_spans_and_codex_still_reduces(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    codex_for: Any,
    schema_version: int,
) -> None:
    monkeypatch.delenv("OTEL_ROLLOUT_TRACE_ROOT", raising=False)
    monkeypatch.setenv("OTEL_ROLLOUT_REDACT_PATTERNS", r'["sk-[A-Za-z0-9]+"]')
    monkeypatch.setenv(sc_content_env(), "span_only")
    made = make_pipeline(tmp_path / "traces", schema_version=schema_version)
    try:
        bundle = _record_exchange(443, secret=" " + SECRET)
        live = made.spans()
    finally:
        made.provider.shutdown()
        otel_rollout._live._runtime.reset()
    assert bundle is not None
    data = _all_bundle_bytes(bundle)
    assert SECRET.encode() not in data and REDACTED.encode() in data
    replayed = bundle_spans(bundle, capture_content=True)
    for span in [*live, *replayed]:
        for value in _attrs(span).values():
            assert SECRET not in str(value), span.name
    chat = [s for s in live if s.name == f"chat {MODEL}"][1]
    inputs = json.loads(str(_attrs(chat)[sc.GEN_AI_INPUT_MESSAGES]))
    assert inputs[2]["parts"][0]["arguments"] == {"city": f"Paris {REDACTED}"}
    out = tmp_path / "state.json"
    result = codex_reduce(codex_for(schema_version), bundle, out)
    assert result.returncode == 0, result.stderr
    assert SECRET not in out.read_text()
