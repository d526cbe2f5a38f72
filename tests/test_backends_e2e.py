"""End-to-end: OTLP into a real collector (rotel) and a real trace store (MLflow), then query it."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

from otel_rollout._otel._mapping import derive_span_id, trace_id_from_uuid
from otel_rollout._otel._replay import bundle_spans
from otel_rollout.cli import main

if TYPE_CHECKING:
    from support.backends import Backends

pytest_plugins = ["support.backends"]
pytestmark = [pytest.mark.backend]


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests choose endpoints and protocols themselves: ignore the caller's OTEL_*."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def span_id_hex(value: str) -> str:
    """An id as MLflow returns it (base64) in lowercase hex."""
    return base64.b64decode(value).hex() if value else ""


def _send_sdk_trace(exporter: SpanExporter) -> tuple[int, dict[str, int]]:
    """Record parent -> child with an event and a link to another trace; return ids."""
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-rollout-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e")
    target = SpanContext(
        trace_id=0x0123456789ABCDEF0123456789ABCDEF,
        span_id=0x0123456789ABCDEF,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with tracer.start_as_current_span("parent") as parent:
        with tracer.start_as_current_span(
            "child", links=[Link(target, {"link.kind": "agent_result"})]
        ) as child:
            child.add_event("first.token", {"n": 1})
            child.set_attribute("gen_ai.operation.name", "chat")
            child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    ids = {"parent": parent.get_span_context().span_id, "child": child.get_span_context().span_id}
    return parent.get_span_context().trace_id, ids


def _assert_sdk_trace(spans: list[dict[str, Any]], ids: dict[str, int]) -> None:
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"parent", "child"}
    parent, child = by_name["parent"], by_name["child"]
    assert span_id_hex(parent["span_id"]) == f"{ids['parent']:016x}"
    assert span_id_hex(child["span_id"]) == f"{ids['child']:016x}"
    assert span_id_hex(child["parent_span_id"]) == f"{ids['parent']:016x}"
    assert [event["name"] for event in child["events"]] == ["first.token"]
    (link,) = child["links"]
    assert span_id_hex(link["trace_id"]) == "0123456789abcdef0123456789abcdef"
    assert span_id_hex(link["span_id"]) == "0123456789abcdef"
    assert {"key": "link.kind", "value": {"string_value": "agent_result"}} in link["attributes"]
    assert child["status"]["code"] == "STATUS_CODE_ERROR"


def test_sdk_span_over_grpc_through_rotel_reaches_mlflow(backends: Backends) -> None:
    exporter = GrpcExporter(endpoint=backends.rotel_grpc, insecure=True, timeout=10)
    trace_id, ids = _send_sdk_trace(exporter)
    _assert_sdk_trace(backends.wait_for_spans(trace_id, 2), ids)


def test_sdk_span_over_http_reaches_mlflow(backends: Backends) -> None:
    exporter = HttpExporter(
        endpoint=f"{backends.mlflow_url}/v1/traces", headers=backends.mlflow_headers, timeout=10
    )
    trace_id, ids = _send_sdk_trace(exporter)
    _assert_sdk_trace(backends.wait_for_spans(trace_id, 2), ids)


# --- bundles replayed over OTLP, checked against the bundle's reduced state ---

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "codex-0.169.0"


def fixture_bundle(scenario: str) -> Path:
    (bundle,) = sorted((FIXTURES / scenario).glob("trace-*"))
    return bundle


def _value(value: dict[str, Any]) -> Any:
    """An OTLP proto-JSON AnyValue as MLflow returns it, as a Python value."""
    if not value:  # an empty AnyValue (e.g. an empty string in proto3 JSON)
        return None
    (kind, inner), *_ = value.items()
    if kind == "int_value":
        return int(inner)
    if kind == "array_value":
        return [_value(item) for item in inner.get("values", [])]
    if kind == "kvlist_value":
        return {kv["key"]: _value(kv.get("value", {})) for kv in inner.get("values", [])}
    return inner


def _attributes(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: _value(item.get("value", {})) for item in items}


@dataclass
class StoredSpan:
    """A span as the trace store returned it."""

    name: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    links: list[tuple[str, str, dict[str, Any]]]
    start_ns: int


def stored_spans(raw: list[dict[str, Any]]) -> dict[str, StoredSpan]:
    spans: dict[str, StoredSpan] = {}
    for span in raw:
        stored = StoredSpan(
            name=span["name"],
            span_id=span_id_hex(span["span_id"]),
            parent_id=span_id_hex(span.get("parent_span_id", "")),
            attributes=_attributes(span.get("attributes", [])),
            links=[
                (
                    span_id_hex(link["trace_id"]),
                    span_id_hex(link["span_id"]),
                    _attributes(link.get("attributes", [])),
                )
                for link in span.get("links", [])
            ],
            start_ns=int(span["start_time_unix_nano"]),
        )
        spans[stored.span_id] = stored
    return spans


def expected_names(state: dict[str, Any]) -> Counter[str]:
    """Span count per name that the reduced state implies for threads, turns, inference calls,
    tool calls and agent results."""
    names: Counter[str] = Counter()
    for thread in state["threads"].values():
        names[f"invoke_agent {thread['nickname'] or thread['agent_path']}"] += 1
    names["turn"] += len(state["codex_turns"])
    for call in state["inference_calls"].values():
        names[f"chat {call['model']}"] += 1
    for call in state["tool_calls"].values():
        names[f"execute_tool {tool_name(call)}"] += 1
    for edge in state["interaction_edges"].values():
        if edge["kind"] == "agent_result":
            thread_id = edge["edge_id"].split(":")[2]
            thread = state["threads"][thread_id]
            names[f"agent_result {thread['nickname'] or thread['agent_path']}"] += 1
    return names


def tool_name(call: dict[str, Any]) -> str:
    """The tool's name as GenAI conventions want it: the function or MCP tool, else the label."""
    kind = call["kind"]
    if kind["type"] == "other":
        return str(kind["name"])
    if kind["type"] == "mcp":
        return str(kind["tool"])
    label = (call.get("summary") or {}).get("label")
    return str(label) if label else str(kind["type"])


def assert_trace_matches_state(spans: dict[str, StoredSpan], state: dict[str, Any]) -> None:
    """Span counts per name, parentage, GenAI attributes and agent-result links."""
    trace_id = trace_id_from_uuid(state["trace_id"])

    def span_of(key: str) -> StoredSpan:
        span_id = f"{derive_span_id(trace_id, key):016x}"
        assert span_id in spans, f"no span for {key}"
        return spans[span_id]

    names = Counter(span.name for span in spans.values())
    expected = expected_names(state)
    for name, count in expected.items():
        assert names[name] == count, f"{name}: {names[name]} spans, state says {count}"

    root = span_of(f"thread:{state['root_thread_id']}")
    assert root.parent_id == ""
    for thread_id, thread in state["threads"].items():
        span = span_of(f"thread:{thread_id}")
        assert span.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert span.attributes["gen_ai.agent.id"] == thread_id
        origin = thread["origin"]
        if origin["type"] == "spawned":
            # A child agent sits under the tool call that spawned it.
            edge = state["interaction_edges"][origin["spawn_edge_id"]]
            assert edge["source"]["type"] == "tool_call"
            spawner = span_of(f"tool:{edge['source']['tool_call_id']}")
            assert span.parent_id == spawner.span_id
    for turn_id, turn in state["codex_turns"].items():
        assert (
            span_of(f"turn:{turn_id}").parent_id == span_of(f"thread:{turn['thread_id']}").span_id
        )
    for call_id, call in state["inference_calls"].items():
        span = span_of(f"inference:{call_id}")
        assert span.parent_id == span_of(f"turn:{call['codex_turn_id']}").span_id
        assert span.attributes["gen_ai.operation.name"] == "chat"
        assert span.attributes["gen_ai.request.model"] == call["model"]
        assert span.attributes["gen_ai.provider.name"] == call["provider_name"]
        # Recorded times: the bundle keeps milliseconds, live spans may carry finer ones.
        assert span.start_ns // 1_000_000 == call["execution"]["started_at_unix_ms"]
    for call_id, call in state["tool_calls"].items():
        span = span_of(f"tool:{call_id}")
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.name == f"execute_tool {tool_name(call)}"
        requester = call["requester"]
        if requester["type"] == "code_cell":
            # A tool called from a code cell sits under that cell.
            cell = state["code_cells"][requester["code_cell_id"]]
            parent = span_of(f"code_cell:{cell['thread_id']}:{cell['runtime_cell_id']}")
            assert span.parent_id == parent.span_id
        elif call["started_by_codex_turn_id"] is not None:
            assert span.parent_id == span_of(f"turn:{call['started_by_codex_turn_id']}").span_id
    for edge_id, edge in state["interaction_edges"].items():
        if edge["kind"] != "agent_result":
            continue
        span = span_of(f"agent_result:{edge_id}")
        child_thread = edge_id.split(":")[2]
        targets = {
            f"{derive_span_id(trace_id, key):016x}"
            for key in (f"thread:{child_thread}", *_turn_keys(state, child_thread))
        }
        (link,) = span.links
        assert link[0] == f"{trace_id:032x}"
        assert link[1] in targets, "the agent result links to the child agent's work"
        assert link[2]["rollout.edge.kind"] == "agent_result"
        assert link[2]["rollout.edge.id"] == edge_id


def _turn_keys(state: dict[str, Any], thread_id: str) -> list[str]:
    return [
        f"turn:{turn_id}"
        for turn_id, turn in state["codex_turns"].items()
        if turn["thread_id"] == thread_id
    ]


def reduced_state(bundle: Path) -> dict[str, Any]:
    """The bundle's reduced state as Codex 0.169.0 wrote it next to the fixture."""
    state: dict[str, Any] = json.loads((bundle / "state.json").read_text(encoding="utf-8"))
    return state


def test_replay_codex_bundle_over_http_into_mlflow_twice_gives_one_trace(
    backends: Backends, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = fixture_bundle("multi_agent_v2_spawn")
    state = reduced_state(bundle)
    header = f"x-mlflow-experiment-id={backends.experiment_id}"
    argv = ["replay", str(bundle), "--endpoint", backends.mlflow_url, "--header", header]
    assert main([*argv, "--protocol", "http/protobuf"]) == 0
    first_raw = backends.wait_for_spans(state["trace_id"].replace("-", ""), 1)
    first = stored_spans(first_raw)
    assert len(first) == len(first_raw) == len(bundle_spans(bundle))
    assert_trace_matches_state(first, state)

    assert main(argv) == 0  # http/protobuf is the default protocol
    second_raw = backends.wait_for_spans(state["trace_id"].replace("-", ""), 1)
    assert len(second_raw) == len(first_raw), "replaying again must not add spans"
    assert stored_spans(second_raw).keys() == first.keys()
    traces = backends.search_traces()
    assert traces.count(f"tr-{state['trace_id'].replace('-', '')}") == 1, traces
    out = capsys.readouterr().out
    assert out.count(f"of trace {trace_id_from_uuid(state['trace_id']):032x}") == 2


def test_replay_over_grpc_through_rotel_into_mlflow(backends: Backends) -> None:
    bundle = fixture_bundle("tool_call")
    state = reduced_state(bundle)
    expected = len(bundle_spans(bundle))
    argv = ["replay", str(bundle), "--endpoint", backends.rotel_grpc, "--protocol", "grpc"]
    assert main(argv) == 0
    spans = stored_spans(backends.wait_for_spans(state["trace_id"].replace("-", ""), expected))
    assert len(spans) == expected
    assert_trace_matches_state(spans, state)


def test_big_bundle_goes_over_grpc_in_several_requests_under_4_mib_without_loss(
    backends: Backends, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Content capture with a 64 KiB bound makes this bundle's spans ~8 MB in all: more than
    # rotel's 4 MiB gRPC message limit allows in one request.
    monkeypatch.setenv("OTEL_ROLLOUT_CONTENT_MAX_BYTES", str(64 * 1024))
    (bundle,) = sorted((FIXTURES.parent / "codex-0.169.0-large" / "long_tools").glob("trace-*"))
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    expected = len(bundle_spans(bundle, capture_content=True))
    argv = ["replay", str(bundle), "--endpoint", backends.rotel_grpc, "--protocol", "grpc"]
    assert main([*argv, "--capture-content", "--no-progress"]) == 0
    requests = int(capsys.readouterr().out.split(" in ")[1].split(" request")[0])
    assert requests > 1
    spans = backends.wait_for_spans(manifest["trace_id"].replace("-", ""), expected, timeout=60)
    assert len(stored_spans(spans)) == len(spans) == expected


EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "two_agents.py"


def test_example_app_exports_over_grpc_through_rotel_into_mlflow(
    backends: Backends, tmp_path: Path
) -> None:
    from otel_rollout import reduce_bundle, write_state

    # The example as a user runs it, configured by the standard OTel variables only.
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=backends.rotel_grpc,
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_ROLLOUT_TRACE_ROOT=str(tmp_path),
    )
    done = subprocess.run(
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    bundle = Path(done.stdout.strip().splitlines()[-1])
    state = json.loads(write_state(reduce_bundle(bundle), tmp_path / "state.json").read_bytes())
    trace_hex = state["trace_id"].replace("-", "")
    expected = len(bundle_spans(bundle))
    live = backends.wait_for_spans(trace_hex, expected)
    spans = stored_spans(live)
    assert len(spans) == len(live) == expected
    assert_trace_matches_state(spans, state)

    # Replaying the bundle of a rollout that was already exported live adds nothing.
    header = f"x-mlflow-experiment-id={backends.experiment_id}"
    assert main(["replay", str(bundle), "--endpoint", backends.mlflow_url, "--header", header]) == 0
    again = backends.wait_for_spans(trace_hex, expected)
    assert len(again) == len(live)
    assert stored_spans(again).keys() == spans.keys()


@pytest.mark.parametrize(
    "scenario", sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())
)
def test_every_codex_fixture_replays_into_mlflow_as_its_reduced_state(
    backends: Backends, scenario: str
) -> None:
    bundle = fixture_bundle(scenario)
    state = reduced_state(bundle)
    header = f"x-mlflow-experiment-id={backends.experiment_id}"
    assert main(["replay", str(bundle), "--endpoint", backends.mlflow_url, "--header", header]) == 0
    expected = len(bundle_spans(bundle))
    raw = backends.wait_for_spans(state["trace_id"].replace("-", ""), expected)
    spans = stored_spans(raw)
    assert len(spans) == len(raw) == expected
    assert_trace_matches_state(spans, state)


def _decoded(value: Any) -> Any:
    """A message attribute as MLflow returns it: a JSON string, or already an object."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value  # plain text (a tool result) stays text
    return value


def test_replayed_message_attributes_arrive_intact_in_mlflow(
    backends: Backends, tmp_path: Path
) -> None:
    """GenAI content (messages, instructions, tool arguments and results) of a replayed
    rollout reaches MLflow 3.17.2 unchanged, and MLflow maps it to its span inputs and
    outputs (``mlflow.spanInputs``/``mlflow.spanOutputs``) and span types."""
    import otel_rollout
    from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext
    from otel_rollout import semconv as sc

    otel_rollout.configure(trace_root=tmp_path / "traces")
    try:
        meta = ThreadStartedTraceMetadata(nickname="weather", provider_name="openai")
        user = {"type": "message", "role": "user", "content": "Weather in Paris? ünïcode"}
        call = {
            "type": "function_call",
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": '{"city":"Paris"}',
        }
        answer = {"type": "message", "role": "assistant", "content": "Sunny."}
        with ThreadTraceContext.start_root_or_disabled(meta) as root, root.turn() as turn:
            request = {"instructions": "Be brief.", "input": [user]}
            with turn.inference("gpt-5", "openai").attempt(request) as attempt:
                attempt.record_completed("resp_1", [call])
            with turn.tool_call("get_weather", call["arguments"], tool_call_id="call_1") as tool:
                tool.record_completed("sunny")
            output = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
            with turn.inference("gpt-5", "openai").attempt({"input": [user, call, output]}) as a:
                a.record_completed("resp_2", [answer])
        assert otel_rollout.force_flush()
    finally:
        otel_rollout._live._runtime.reset()
    bundle = root.bundle_dir
    assert bundle is not None
    expected = {
        span.name + str(i): dict(span.attributes or {})
        for i, span in enumerate(bundle_spans(bundle, capture_content=True))
    }
    header = f"x-mlflow-experiment-id={backends.experiment_id}"
    argv = ["replay", str(bundle), "--endpoint", backends.mlflow_url, "--header", header]
    assert main([*argv, "--capture-content"]) == 0
    trace_id = json.loads((bundle / "manifest.json").read_text())["trace_id"]
    raw = backends.wait_for_spans(trace_id.replace("-", ""), len(expected))
    stored = list(stored_spans(raw).values())
    content_names = (
        sc.GEN_AI_INPUT_MESSAGES,
        sc.GEN_AI_OUTPUT_MESSAGES,
        sc.GEN_AI_SYSTEM_INSTRUCTIONS,
        sc.GEN_AI_TOOL_CALL_ARGUMENTS,
    )
    sent = [attrs for attrs in expected.values() if any(n in attrs for n in content_names)]
    assert len(sent) == 3  # two chats, one tool
    for attrs in sent:
        [span] = [
            s
            for s in stored
            if s.attributes.get(
                sc.ROLLOUT_INFERENCE_CALL_ID, s.attributes.get(sc.GEN_AI_TOOL_CALL_ID)
            )
            == attrs.get(sc.ROLLOUT_INFERENCE_CALL_ID, attrs.get(sc.GEN_AI_TOOL_CALL_ID))
        ]
        for name in content_names:
            if name in attrs:
                assert _decoded(span.attributes[name]) == _decoded(attrs[name]), name
        if sc.GEN_AI_INPUT_MESSAGES in attrs:
            assert span.attributes["mlflow.spanType"] in ('"CHAT_MODEL"', "CHAT_MODEL")
            assert _decoded(span.attributes["mlflow.spanInputs"]) == _decoded(
                attrs[sc.GEN_AI_INPUT_MESSAGES]
            )
            assert _decoded(span.attributes["mlflow.spanOutputs"]) == _decoded(
                attrs[sc.GEN_AI_OUTPUT_MESSAGES]
            )
        else:
            assert _decoded(span.attributes["mlflow.spanInputs"]) == _decoded(
                attrs[sc.GEN_AI_TOOL_CALL_ARGUMENTS]
            )
            assert _decoded(span.attributes["mlflow.spanOutputs"]) == _decoded(
                attrs[sc.GEN_AI_TOOL_CALL_RESULT]
            )
    [first] = [a for a in sent if a.get(sc.GEN_AI_RESPONSE_ID) == "resp_1"]
    messages = _decoded(first[sc.GEN_AI_INPUT_MESSAGES])
    assert messages == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris? ünïcode"}]}
    ]
