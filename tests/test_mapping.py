"""Live spans follow the mapping table, and replaying a bundle reproduces them (ids included)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

import otel_rollout
from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext, _config, validate_bundle
from otel_rollout import semconv as sc
from otel_rollout._bundle._models import RawPayloadRef
from otel_rollout._bundle._reader import Bundle
from otel_rollout._otel._mapping import (
    Attributes,
    LinkSpec,
    SpanStart,
    derive_span_id,
    map_events,
    trace_id_from_uuid,
)
from support.recording import Pipeline, attrs, load_example, make_pipeline, pipeline_fixture

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(params=[2, 3], ids=["schema2", "schema3"])
def pipeline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    """Live recording into a schema 2 or a schema 3 bundle (the live spans must match a
    replay of either)."""
    yield from pipeline_fixture(tmp_path, monkeypatch, schema_version=request.param)


@dataclass
class Mapped:
    """One span as a collecting sink saw it."""

    start: SpanStart
    events: list[str] = field(default_factory=list)
    attributes: Attributes = field(default_factory=dict)
    links: list[LinkSpec] = field(default_factory=list)
    status: StatusCode | None = None
    ended: bool = False


class CollectingSink:
    """A SpanSink that keeps everything, and checks the mapper's calling contract."""

    def __init__(self) -> None:
        self.spans: dict[str, Mapped] = {}

    def start_span(self, start: SpanStart) -> None:
        assert start.key not in self.spans
        assert start.parent is None or start.parent in self.spans
        self.spans[start.key] = Mapped(start, attributes=dict(start.attributes))

    def _open(self, key: str) -> Mapped:
        mapped = self.spans[key]
        assert not mapped.ended, f"{key} already ended"
        return mapped

    def add_event(self, key: str, name: str, attributes: Attributes, time_ns: int) -> None:
        self._open(key).events.append(name)

    def set_attributes(self, key: str, attributes: Attributes) -> None:
        self._open(key).attributes.update(attributes)

    def add_link(self, key: str, link: LinkSpec) -> None:
        self._open(key).links.append(link)

    def end_span(
        self, key: str, status: StatusCode, description: str | None, end_time_ns: int
    ) -> None:
        mapped = self._open(key)
        mapped.status = status
        mapped.ended = True


def replay(bundle_dir: Path, *, omitted_ok: bool = False) -> CollectingSink:
    """Map a bundle; a payload that cannot be read fails, unless ``omitted_ok`` and a size
    limit left it out (it then has no body, as in ``otel-rollout replay``)."""
    bundle = Bundle(bundle_dir)
    sink = CollectingSink()

    def read(ref: RawPayloadRef) -> bytes | None:
        if omitted_ok and ref.shard is None:
            return None
        return bundle.read_payload_bytes(ref)

    map_events(
        (event for _, event in bundle.events()),
        sink,
        trace_id=bundle.manifest.trace_id,
        rollout_id=bundle.manifest.rollout_id,
        read_payload=read,
    )
    assert all(span.ended for span in sink.spans.values())
    return sink


def by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    named: dict[str, list[ReadableSpan]] = {}
    for span in sorted(spans, key=lambda span: span.start_time or 0):
        named.setdefault(span.name, []).append(span)
    return named


def test_live_spans_follow_the_table(pipeline: Pipeline) -> None:
    bundle = load_example().run_rollout()
    assert bundle is not None
    spans = pipeline.spans()
    named = by_name(spans)
    ids = {span.context.span_id: span for span in spans}

    def parent(span: ReadableSpan) -> ReadableSpan | None:
        return ids.get(span.parent.span_id) if span.parent is not None else None

    [root] = named["invoke_agent planner"]
    [child] = named["invoke_agent researcher"]
    [spawn] = named["execute_tool spawn_agent"]
    [lookup] = named["execute_tool lookup"]
    [compaction] = named["compaction"]
    [compact] = named["compact gpt-demo"]
    [result] = named["agent_result researcher"]
    root_turn, child_turn = named["turn"]
    chats = named["chat gpt-demo"]
    assert len(spans) == 14 and len(chats) == 5

    assert root.parent is None and root.kind is SpanKind.INTERNAL
    assert attrs(root)[sc.GEN_AI_OPERATION_NAME] == "invoke_agent"
    assert attrs(root)[sc.GEN_AI_AGENT_ID] == attrs(root)[sc.ROLLOUT_THREAD_ID]
    assert attrs(root)[sc.GEN_AI_CONVERSATION_ID] == attrs(root)[sc.ROLLOUT_THREAD_ID]
    assert attrs(root)[sc.GEN_AI_AGENT_NAME] == "planner"
    assert attrs(root)[sc.GEN_AI_PROVIDER_NAME] == "scripted"
    assert attrs(root)[sc.GEN_AI_REQUEST_MODEL] == "gpt-demo"
    assert attrs(root)[sc.ROLLOUT_STATUS] == "completed"
    if pipeline.schema_version == 2:
        assert str(attrs(root)["rollout.payload.metadata.path"]) == "payloads/1.json"
    else:  # records in zstd shards: named by id and shard
        assert "rollout.payload.metadata.path" not in attrs(root)
        assert attrs(root)["rollout.payload.metadata.id"] == "raw_payload:1"
        assert attrs(root)["rollout.payload.metadata.shard"] == 1
    assert len(str(attrs(root)["rollout.payload.metadata.sha256"])) == 64

    assert parent(child) is spawn  # the spawning tool span
    assert attrs(child)[sc.ROLLOUT_PARENT_THREAD_ID] == attrs(root)[sc.ROLLOUT_THREAD_ID]
    assert attrs(child)[sc.ROLLOUT_EDGE_KIND] == "spawn_agent"
    [spawn_link] = child.links
    assert spawn_link.context.span_id == spawn.context.span_id
    assert spawn_link.attributes is not None
    assert spawn_link.attributes[sc.ROLLOUT_EDGE_KIND] == "spawn_agent"

    assert parent(root_turn) is root and parent(child_turn) is child
    assert attrs(root_turn)[sc.ROLLOUT_STATUS] == "completed"
    for chat in chats:
        assert chat.kind is SpanKind.CLIENT
        assert attrs(chat)[sc.GEN_AI_OPERATION_NAME] == "chat"
        assert attrs(chat)[sc.GEN_AI_REQUEST_MODEL] == "gpt-demo"
        assert attrs(chat)[sc.GEN_AI_PROVIDER_NAME] == "scripted"
        assert parent(chat) in (root_turn, child_turn)
    failed, completed = chats[0], chats[1]
    assert failed.status.status_code is StatusCode.ERROR
    assert attrs(failed)[sc.ERROR_TYPE] == "500"  # the class, by the one rule
    assert failed.status.description == "HTTP 500 from provider"
    assert completed.status.status_code is StatusCode.UNSET
    assert attrs(completed)[sc.GEN_AI_RESPONSE_ID] == "resp_1"
    assert attrs(completed)[sc.GEN_AI_USAGE_INPUT_TOKENS] == 30
    assert attrs(completed)[sc.GEN_AI_USAGE_OUTPUT_TOKENS] == 12
    assert "rollout.payload.response.sha256" in attrs(completed)
    assert "rollout.payload.request.content" not in attrs(completed)

    assert parent(spawn) is root_turn and parent(lookup) is child_turn
    assert attrs(spawn)[sc.GEN_AI_OPERATION_NAME] == "execute_tool"
    assert attrs(spawn)[sc.GEN_AI_TOOL_NAME] == "spawn_agent"
    assert attrs(spawn)[sc.GEN_AI_TOOL_CALL_ID] == "call_spawn_1"
    assert attrs(spawn)[sc.GEN_AI_TOOL_TYPE] == "function"
    assert [event.name for event in spawn.events] == ["tool_call_runtime_ended"]

    assert parent(compaction) is root_turn and parent(compact) is compaction
    assert compact.kind is SpanKind.CLIENT
    assert attrs(compact)[sc.GEN_AI_REQUEST_MODEL] == "gpt-demo"
    assert [event.name for event in compaction.events] == ["compaction_installed"]

    assert parent(result) is root_turn  # the parent thread's open turn
    assert result.start_time == result.end_time
    assert attrs(result)[sc.ROLLOUT_EDGE_KIND] == "agent_result"
    [result_link] = result.links
    assert result_link.context.span_id == child_turn.context.span_id
    assert result_link.attributes is not None
    assert result_link.attributes[sc.ROLLOUT_EDGE_ID] == attrs(result)[sc.ROLLOUT_EDGE_ID]


def test_trace_and_span_ids_derive_from_the_bundle_and_replay_reproduces_them(
    pipeline: Pipeline,
) -> None:
    bundle = load_example().run_rollout()
    assert bundle is not None
    spans = pipeline.spans()
    manifest_trace_id = Bundle(bundle).manifest.trace_id
    assert {span.context.trace_id for span in spans} == {trace_id_from_uuid(manifest_trace_id)}
    replayed = replay(bundle)
    live = {
        span.context.span_id: (span.name, span.kind, span.parent.span_id if span.parent else None)
        for span in spans
    }
    again = {
        derive_span_id(trace_id_from_uuid(manifest_trace_id), key): (
            mapped.start.name,
            mapped.start.kind,
            derive_span_id(trace_id_from_uuid(manifest_trace_id), mapped.start.parent)
            if mapped.start.parent
            else None,
        )
        for key, mapped in replayed.spans.items()
    }
    assert live == again
    live_attributes = {span.context.span_id: dict(span.attributes or {}) for span in spans}
    replayed_attributes = {
        derive_span_id(trace_id_from_uuid(manifest_trace_id), key): mapped.attributes
        for key, mapped in replayed.spans.items()
    }
    assert live_attributes == replayed_attributes  # payload sizes and hashes included


def test_live_spans_equal_replayed_ones_when_size_limits_cut_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schema 3 with both limits: truncated and omitted payloads (and requests cut into
    model items) carry the same attributes live as replayed (capture, original size)."""
    for name in (_config.TRACE_ROOT_ENV, _config.MAX_BYTES_ENV, _config.MAX_PAYLOAD_BYTES_ENV):
        monkeypatch.delenv(name, raising=False)
    made = make_pipeline(tmp_path / "traces", schema_version=3)
    otel_rollout.configure(
        trace_root=made.root,
        tracer_provider=made.provider,
        exporter=made.exporter,
        max_bytes=9000,
        max_payload_bytes=120,
    )
    try:
        bundle = load_example().run_rollout()
        assert bundle is not None
        spans = made.spans()
        assert validate_bundle(bundle).ok
        trace_id = trace_id_from_uuid(Bundle(bundle).manifest.trace_id)
        live = {span.context.span_id: dict(span.attributes or {}) for span in spans}
        replayed = {
            derive_span_id(trace_id, key): mapped.attributes
            for key, mapped in replay(bundle, omitted_ok=True).spans.items()
        }
        assert live == replayed
        captures = {str(v) for a in live.values() for k, v in a.items() if k.endswith(".capture")}
        assert captures == {"truncated", "omitted"}
    finally:
        made.provider.shutdown()


def test_the_rollout_joins_the_apps_current_span(pipeline: Pipeline) -> None:
    tracer = pipeline.provider.get_tracer("app")
    with tracer.start_as_current_span("app request") as app_span:
        thread = ThreadTraceContext.start_root_or_disabled()
        with thread, thread.turn():
            pass
    spans = by_name(pipeline.spans())
    [root] = spans["invoke_agent /root"]
    assert root.parent is not None
    assert root.parent.span_id == app_span.get_span_context().span_id
    assert thread.trace_id is not None
    assert trace_id_from_uuid(thread.trace_id) == app_span.get_span_context().trace_id
    [turn] = spans["turn"]
    assert turn.context.trace_id == app_span.get_span_context().trace_id


def test_context_managers_make_spans_current(pipeline: Pipeline) -> None:
    tracer = pipeline.provider.get_tracer("app")
    thread = ThreadTraceContext.start_root_or_disabled()
    with thread, thread.turn() as turn, turn.tool_call("fetch"):
        with tracer.start_as_current_span("http get"):
            pass
    spans = by_name(pipeline.spans())
    [http] = spans["http get"]
    [tool] = spans["execute_tool fetch"]
    assert http.parent is not None and http.parent.span_id == tool.context.span_id


def test_the_current_span_keeps_what_the_app_sets_on_it(pipeline: Pipeline) -> None:
    """Inside the context managers the current span is a stand-in for a span the writer
    thread builds later; what the app sets on it reaches the real span before it ends."""
    tracer = pipeline.provider.get_tracer("app")
    request = {"input": [{"type": "message", "role": "user", "content": []}]}
    thread = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata(nickname="bot"))
    with thread:
        trace.get_current_span().set_attribute("app.session", "s1")
        with thread.turn() as turn:
            current = trace.get_current_span()
            assert current.is_recording()
            current.set_attributes({"app.turn": 1, "app.tags": ["a", "b"]})
            with turn.inference("m", "p").attempt(request) as attempt:
                span = trace.get_current_span()
                span.add_event("app.retry", {"n": 2}, timestamp=1_000)
                span.update_name("chat custom")
                attempt.record_completed("resp_1")
            with turn.tool_call("fetch"):
                span = trace.get_current_span()
                with tracer.start_as_current_span("http get") as http:
                    pass
                span.add_link(http.get_span_context(), {"why": "retry"})
                try:
                    raise ValueError("boom")
                except ValueError as error:
                    span.record_exception(error)
                span.set_status(StatusCode.ERROR, "app says no")
                span.end()  # the stand-in's end is a no-op: the tool span ends with its event
                span.set_attribute("app.after_end", True)
    spans = by_name(pipeline.spans())
    [root] = spans["invoke_agent bot"]
    assert root.attributes is not None and root.attributes["app.session"] == "s1"
    [turn_span] = spans["turn"]
    assert turn_span.attributes is not None
    assert (turn_span.attributes["app.turn"], turn_span.attributes["app.tags"]) == (1, ("a", "b"))
    assert "chat m" not in spans
    [chat] = spans["chat custom"]
    assert [(e.name, e.timestamp, dict(e.attributes or {})) for e in chat.events] == [
        ("app.retry", 1_000, {"n": 2})
    ]
    [tool] = spans["execute_tool fetch"]
    assert tool.attributes is not None and tool.attributes["app.after_end"] is True
    assert (tool.status.status_code, tool.status.description) == (StatusCode.ERROR, "app says no")
    [exception] = [event for event in tool.events if event.name == "exception"]
    assert exception.attributes is not None
    assert exception.attributes["exception.type"] == "ValueError"
    assert "boom" in str(exception.attributes["exception.stacktrace"])
    [http_span] = spans["http get"]
    links = [link for link in tool.links if link.context.span_id == http_span.context.span_id]
    assert [dict(link.attributes or {}) for link in links] == [{"why": "retry"}]


def test_a_dropped_span_stand_in_is_not_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(_config.TRACE_ROOT_ENV, raising=False)
    dropped = make_pipeline(tmp_path / "traces", sampler=ALWAYS_OFF)
    try:
        with ThreadTraceContext.start_root_or_disabled() as thread, thread.turn():
            span = trace.get_current_span()
            assert not span.is_recording()
            span.set_attribute("app.x", 1)
        assert dropped.spans() == []
    finally:
        dropped.provider.shutdown()


def test_a_sampler_that_drops_spans_leaves_the_bundle_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(_config.TRACE_ROOT_ENV, raising=False)
    dropped = make_pipeline(tmp_path / "traces", sampler=ALWAYS_OFF)
    try:
        bundle = load_example().run_rollout()
        assert dropped.spans() == []
        assert bundle is not None and dropped.bundles() == [bundle]
        report = validate_bundle(bundle)
        assert report.ok and report.events == 34
    finally:
        dropped.provider.shutdown()


@pytest.mark.parametrize(
    ("schema_version", "stored"), [(2, '{\n  "thread_id"'), (3, '{"thread_id":"')]
)
def test_content_is_captured_only_when_asked_and_truncated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schema_version: int, stored: str
) -> None:
    """Payloads the conventions do not cover (thread metadata) keep ``.content``: the body
    as stored (a pretty file in schema 2, a compact record in 3), cut at the bound; a
    chat's request becomes ``gen_ai.input.messages``, bounded and still valid JSON."""
    monkeypatch.setenv(_config.CAPTURE_CONTENT_ENV, "true")
    monkeypatch.setenv(_config.CONTENT_MAX_BYTES_ENV, "100")
    monkeypatch.delenv(_config.TRACE_ROOT_ENV, raising=False)
    captured = make_pipeline(tmp_path / "traces", schema_version=schema_version)
    try:
        thread = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata())
        request = {"input": [{"role": "user", "content": "é" * 100}], "note": "x"}
        with thread, thread.turn() as turn:
            with turn.inference("m", "p").attempt(request) as attempt:
                attempt.record_completed("r1")
        spans = by_name(captured.spans())
        [chat] = spans["chat m"]
        [agent] = [
            span
            for name, group in spans.items()
            if name.startswith("invoke_agent")
            for span in group
        ]
        content = str(attrs(agent)["rollout.payload.metadata.content"])
        assert 0 < len(content.encode()) <= 100
        assert content.startswith(stored)
        messages = str(attrs(chat)[sc.GEN_AI_INPUT_MESSAGES])
        assert len(messages.encode()) <= 100
        [message] = json.loads(messages)
        assert message["role"] == "user"
        assert message["parts"][0]["content"].endswith("...[truncated]")
        assert "rollout.payload.request.content" not in attrs(chat)
    finally:
        captured.provider.shutdown()


@pytest.mark.parametrize(
    "bundle_dir",
    sorted(FIXTURES.glob("codex-0.169.0/*/trace-*")),
    ids=lambda path: path.parent.name,
)
def test_every_codex_fixture_maps_to_a_well_formed_span_tree(bundle_dir: Path) -> None:
    sink = replay(bundle_dir)
    roots = [mapped for mapped in sink.spans.values() if mapped.start.parent is None]
    assert len(roots) == 1 and roots[0].start.name.startswith("invoke_agent ")
    names = {mapped.start.name.split(" ")[0] for mapped in sink.spans.values()}
    assert {"invoke_agent", "turn", "chat"} <= names
    spans = sink.spans
    if bundle_dir.parent.name == "multi_agent_v2_spawn":
        results = [m for k, m in spans.items() if k.startswith("agent_result:")]
        assert results and all(m.start.links for m in results)
        child = next(
            m for m in spans.values() if m.attributes.get(sc.ROLLOUT_PARENT_THREAD_ID) is not None
        )
        assert child.start.parent is not None and child.start.parent.startswith("tool:")
    if bundle_dir.parent.name == "code_mode_cell":
        nested = [m for m in spans.values() if (m.start.parent or "").startswith("code_cell:")]
        assert nested


def test_agent_tools_link_to_their_target_thread(pipeline: Pipeline) -> None:
    root = ThreadTraceContext.start_root_or_disabled()
    with root, root.turn() as turn:
        kid = root.start_child_thread_trace_or_disabled(
            ThreadStartedTraceMetadata(agent_path="/root/kid")
        )
        with turn.tool_call("send_message", '{"message":"hi"}', target_agent_path="/root/kid"):
            pass
        kid.record_ended()
    spans = by_name(pipeline.spans())
    [tool] = spans["execute_tool send_message"]
    [kid_span] = spans["invoke_agent /root/kid"]
    [link] = tool.links
    assert link.context.span_id == kid_span.context.span_id
    assert link.attributes is not None and link.attributes[sc.ROLLOUT_EDGE_KIND] == "send_message"
    assert attrs(tool)[sc.ROLLOUT_EDGE_ID] == link.attributes[sc.ROLLOUT_EDGE_ID]


def test_no_attribute_name_is_both_a_leaf_and_a_prefix() -> None:
    names = [
        value
        for name, value in vars(sc).items()
        if name.isupper() and isinstance(value, str) and "." in value and not value.endswith(".")
    ]
    names += [
        sc.payload_attribute(role, suffix)
        for role in ("request", "response", "metadata", "invocation", "result", "checkpoint")
        for suffix in (
            sc.PAYLOAD_PATH_SUFFIX,
            sc.PAYLOAD_SIZE_SUFFIX,
            sc.PAYLOAD_SHA256_SUFFIX,
            sc.PAYLOAD_CONTENT_SUFFIX,
        )
    ]
    assert len(names) > 30
    for leaf in names:
        assert not any(other.startswith(leaf + ".") for other in names), leaf


def test_loose_raw_events_become_span_events_where_they_belong(pipeline: Pipeline) -> None:
    root = ThreadTraceContext.start_root_or_disabled()
    with root, root.turn("turn-1") as turn:
        root.record_protocol_event("warning", {"type": "warning", "message": "careful"})
        root.record_history_item_accepted("turn-1", "item-1", {"type": "message"})
        with turn.tool_call("lookup", tool_call_id="call-1"):
            root.start_mcp_call_trace("call-1")
            root.record_tool_call_runtime_started(
                "turn-1", "call-1", "lookup", {"call_id": "call-1"}
            )
    spans = by_name(pipeline.spans())
    [thread_span] = spans["invoke_agent /root"]
    [turn_span] = spans["turn"]
    [tool] = spans["execute_tool lookup"]
    assert [event.name for event in thread_span.events] == ["protocol_event_observed"]
    assert [event.name for event in turn_span.events] == ["history_item_accepted"]
    assert [event.name for event in tool.events] == [
        "mcp_tool_call_correlation_assigned",
        "tool_call_runtime_started",
    ]
    [history] = turn_span.events
    assert history.attributes is not None
    assert '"item_id":"item-1"' in str(history.attributes[sc.ROLLOUT_EVENT_JSON])
    if pipeline.schema_version == 2:
        where = history.attributes["rollout.payload.agent_message.path"]
        assert str(where).startswith("payloads/")
    else:
        assert str(history.attributes["rollout.payload.agent_message.id"]).startswith(
            "raw_payload:"
        )
