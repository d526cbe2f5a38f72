"""``otel-rollout replay`` without a backend: settings, request sizes, ids, times, failures."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

from otel_rollout._bundle._models import RawPayloadRef
from otel_rollout._bundle._payloads import PayloadStore
from otel_rollout._bundle._reader import Bundle, BundleError
from otel_rollout._otel import _replay
from otel_rollout._otel._mapping import derive_span_id, trace_id_from_uuid
from otel_rollout._otel._replay import (
    GRPC_MAX_REQUEST_BYTES,
    ExportError,
    bundle_spans,
    estimate_size,
    export_spans,
    plan_requests,
    resolve_target,
)
from otel_rollout._reduce import reduce_bundle
from otel_rollout.cli import main
from otel_rollout.cli._replay import checked_spans
from support.otlp_receiver import receiving
from support.otlp_sink import start_sink

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "codex-0.169.0"


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests set their endpoints themselves: ignore the caller's OTEL_* settings."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def fixture_bundle(scenario: str, version: str = "codex-0.169.0") -> Path:
    (bundle,) = sorted((FIXTURES.parent / version / scenario).glob("trace-*"))
    return bundle


BOTH_SCHEMAS = pytest.mark.parametrize("version", ["codex-0.169.0", "codex-0.171.0"])
"""Runs a test on a schema 2 fixture (Codex 0.169.0) and on a schema 3 one (0.171.0)."""


# --- where to send ---


def test_defaults_are_http_protobuf_to_localhost() -> None:
    target = resolve_target(environ={})
    assert (target.protocol, target.url) == ("http/protobuf", "http://localhost:4318/v1/traces")
    grpc = resolve_target(protocol="grpc", environ={})
    assert (grpc.protocol, grpc.url) == ("grpc", "http://localhost:4317")


def test_endpoint_is_a_base_url_and_env_follows_the_sdk_rules() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-a=1,Authorization=Bearer%20t",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-b=2",
    }
    target = resolve_target(environ=env, headers=["x-a=override", "x-c = 3"])
    assert target.url == "http://collector:4318/v1/traces"
    assert target.headers == {
        "x-a": "override",
        "authorization": "Bearer t",
        "x-b": "2",
        "x-c": "3",
    }
    # The signal-specific endpoint is a full URL, used as given.
    signal = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://x.example/custom/path"}
    assert resolve_target(environ=signal).url == "https://x.example/custom/path"
    # An explicit endpoint wins over both, and gets the signal path appended.
    explicit = resolve_target("http://here:9", environ={**env, **signal})
    assert explicit.url == "http://here:9/v1/traces"
    protocol_env = {"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc", **env}
    assert resolve_target(environ=protocol_env).url == "http://collector:4318/"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"protocol": "http/json"}, "unsupported OTLP protocol"),
        ({"endpoint": "collector:4317"}, "invalid OTLP endpoint"),
        ({"headers": ["novalue"]}, "invalid header"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ExportError, match=message):
        resolve_target(environ={}, **kwargs)  # type: ignore[arg-type]


# --- the spans: the shared mapping, derived ids, recorded times ---


@BOTH_SCHEMAS
def test_replayed_spans_carry_derived_ids_and_the_recorded_times(version: str) -> None:
    bundle = fixture_bundle("multi_agent_v2_spawn", version)
    manifest = Bundle(bundle).manifest
    trace_id = trace_id_from_uuid(manifest.trace_id)
    spans = bundle_spans(bundle)
    again = bundle_spans(bundle)
    assert [_ids(span) for span in spans] == [_ids(span) for span in again]
    assert {span.context.trace_id for span in spans if span.context} == {trace_id}

    by_id = {span.context.span_id: span for span in spans if span.context}
    root = by_id[derive_span_id(trace_id, f"thread:{manifest.root_thread_id}")]
    assert root.parent is None
    times = {event.wall_time_unix_ms * 1_000_000 for _, event in Bundle(bundle).events()}
    for span in spans:
        assert span.start_time in times and span.end_time in times, span.name
        if span.parent is not None:
            assert span.parent.span_id in by_id, f"{span.name}: parent not in the bundle"
        for link in span.links:
            assert link.context.trace_id == trace_id
            assert link.context.span_id in by_id
    scopes = [span.instrumentation_scope for span in spans]
    assert all(scope is not None and scope.name == "otel_rollout" for scope in scopes)


def _ids(span: ReadableSpan) -> tuple[str, int, int | None]:
    assert span.context is not None
    return span.name, span.context.span_id, span.parent.span_id if span.parent else None


# --- request sizes ---


def _big_spans(count: int, size: int) -> list[ReadableSpan]:
    return [
        ReadableSpan(
            name=f"s{index}",
            context=SpanContext(1, index + 1, False, TraceFlags(TraceFlags.SAMPLED)),
            attributes={"blob": "x" * size},
            start_time=1,
            end_time=2,
        )
        for index in range(count)
    ]


def test_requests_stay_under_the_limit_and_keep_every_span_in_order() -> None:
    spans = _big_spans(30, 300_000)  # ~9 MB in all
    batches = plan_requests(spans, GRPC_MAX_REQUEST_BYTES)
    assert len(batches) > 2
    assert [span for batch in batches for span in batch] == spans
    for batch in batches:
        assert encode_spans(batch).ByteSize() <= GRPC_MAX_REQUEST_BYTES
    many = plan_requests(_big_spans(1200, 10), GRPC_MAX_REQUEST_BYTES, max_spans=512)
    assert [len(batch) for batch in many] == [512, 512, 176]


def test_the_size_estimate_is_an_upper_bound_of_the_encoded_size() -> None:
    spans = [
        span
        for scenario in sorted(FIXTURES.iterdir())
        if scenario.is_dir()
        for span in bundle_spans(fixture_bundle(scenario.name), capture_content=True)
    ]
    odd = ReadableSpan(
        name="ünïcødé \U0001f600",
        context=SpanContext(1, 2, False, TraceFlags(TraceFlags.SAMPLED)),
        attributes={"a": ["x", "ÿ" * 100], "b": [1, 2**62], "c": 1.5, "d": True, "e": "€" * 999},
        events=[Event("e", {"k": "v" * 50}, 3)],
        links=[Link(SpanContext(3, 4, False), {"edge": "x"})],
        status=Status(StatusCode.ERROR, "bad ☹"),
        start_time=1,
        end_time=2,
    )
    for span in [*spans, odd]:
        # The span's own message and its framing; the resource and scope around it are paid
        # once per request, out of the margin GRPC_MAX_REQUEST_BYTES keeps under 4 MiB.
        (message,) = encode_spans([span]).resource_spans[0].scope_spans[0].spans
        assert estimate_size(span) >= message.ByteSize() + 10, span.name


def test_a_span_too_big_for_grpc_is_refused_before_anything_is_sent() -> None:
    spans = [*_big_spans(2, 10), *_big_spans(1, 5 * 1024 * 1024)]
    with pytest.raises(ExportError, match=r"alone is \d+ bytes.*http/protobuf"):
        plan_requests(spans, GRPC_MAX_REQUEST_BYTES)


class _Recording(SpanExporter):
    def __init__(self, fail_at: int | None = None) -> None:
        self.batches: list[int] = []
        self.fail_at = fail_at

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.fail_at is not None and len(self.batches) == self.fail_at:
            return SpanExportResult.FAILURE
        self.batches.append(len(spans))
        return SpanExportResult.SUCCESS


def test_export_sends_every_batch_and_stops_at_the_first_failure() -> None:
    target = resolve_target("http://127.0.0.1:1", "grpc", environ={})
    spans = _big_spans(30, 300_000)
    sink = _Recording()
    progress: list[int] = []
    result = export_spans(spans, target, progress.append, exporter=sink)
    assert result.spans == sum(sink.batches) == sum(progress) == 30
    assert result.requests == len(sink.batches) > 2
    failing = _Recording(fail_at=1)
    with pytest.raises(ExportError, match=r"request 2 of \d+ failed after \d+ spans were sent"):
        export_spans(spans, target, exporter=failing)


# --- the command line ---


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_refused_endpoint_is_a_clear_error_and_exit_1(
    protocol: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A refused connection fails at once; the deadline only has to outlast a loaded machine's
    # scheduling (1 s made the exporter report a timeout instead of the refusal under load).
    monkeypatch.setattr(_replay, "REQUEST_TIMEOUT_SECONDS", 5.0)
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    argv = ["replay", str(fixture_bundle("plain")), "--endpoint", endpoint]
    assert main([*argv, "--protocol", protocol]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"otel-rollout: cannot export to {endpoint}")
    assert "refused" in captured.err.lower()
    assert "Traceback" not in captured.err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bundle = str(fixture_bundle("plain"))
    assert main(["replay", bundle, "--protocol", "http/json"]) == 2
    assert main(["replay", str(tmp_path / "missing")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_an_invalid_bundle_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 2}), encoding="utf-8")
    assert main(["replay", str(tmp_path), "--endpoint", "http://127.0.0.1:1"]) == 1
    assert capsys.readouterr().err.startswith("otel-rollout: ")


def test_payloads_are_read_confined_to_the_bundle(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_bundle("plain"), bundle)
    secret = tmp_path / "secret.json"
    secret.write_text('{"secret": true}', encoding="utf-8")

    def hashed(spans: list[ReadableSpan]) -> dict[str, object]:
        found: dict[str, object] = {}
        for span in spans:
            for key, value in (span.attributes or {}).items():
                if key.endswith(".path") and value == "payloads/1.json":
                    found[key] = (span.attributes or {}).get(key[: -len(".path")] + ".sha256")
        return found

    before = hashed(bundle_spans(bundle))
    assert before and all(before.values())
    (bundle / "payloads" / "1.json").unlink()
    (bundle / "payloads" / "1.json").symlink_to(secret)
    after = hashed(bundle_spans(bundle))
    assert after.keys() == before.keys()
    assert not any(after.values()), "a payload symlinked out of the bundle must not be read"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_an_endpoint_that_never_answers_fails_within_the_timeout(
    protocol: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_replay, "REQUEST_TIMEOUT_SECONDS", 1.0)
    with socket.socket() as silent:  # the kernel completes connections; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        argv = ["replay", str(fixture_bundle("plain")), "--endpoint", endpoint]
        assert main([*argv, "--protocol", protocol]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"otel-rollout: cannot export to {endpoint}")
    assert "Traceback" not in err


@BOTH_SCHEMAS
def test_replay_sends_every_span_with_its_ids_and_headers(
    capsys: pytest.CaptureFixture[str], version: str
) -> None:
    bundle = fixture_bundle("multi_agent_v2_spawn", version)
    expected = {(span.name, span.context.span_id) for span in bundle_spans(bundle) if span.context}
    with receiving() as receiver:
        argv = ["replay", str(bundle), "--endpoint", receiver.endpoint, "--header", "X-Tenant=t1"]
        assert main([*argv, "--progress"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"replayed {len(expected)} spans of trace ")
    assert out.count("\n") == 1, "the progress bar goes to stderr"
    (headers, request), *more = receiver.requests
    assert not more
    assert headers["x-tenant"] == "t1"
    assert headers["content-type"] == "application/x-protobuf"
    received = {
        (span.name, int.from_bytes(span.span_id, "big"))
        for resource in request.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    }
    assert received == expected
    (resource,) = request.resource_spans
    names = {kv.key: kv.value.string_value for kv in resource.resource.attributes}
    assert names["service.name"] == "otel-rollout"


def _unused_payload_deleted(bundle: Path) -> None:
    (bundle / "payloads" / "3.json").unlink()  # a protocol event's body: no span needs it


def _unused_payload_not_json(bundle: Path) -> None:
    (bundle / "payloads" / "8.json").write_bytes(b'{"cut": ')


def _tool_end_of_an_unknown_call(bundle: Path) -> None:
    log = bundle / "trace.jsonl"
    text = log.read_text(encoding="utf-8")
    log.write_text(
        text.replace(
            '"tool_call_ended","tool_call_id":"call_echo_1"',
            '"tool_call_ended","tool_call_id":"nobody"',
        ),
        encoding="utf-8",
    )


@pytest.mark.parametrize(
    ("version", "scenario", "edit"),
    [
        ("codex-0.169.0", "plain", _unused_payload_deleted),
        ("codex-0.169.0", "plain", _unused_payload_not_json),
        ("codex-0.169.0", "tool_call", _tool_end_of_an_unknown_call),
        ("codex-0.171.0", "tool_call", _tool_end_of_an_unknown_call),
    ],
)
def test_replay_refuses_what_reduce_refuses_before_sending(
    version: str,
    scenario: str,
    edit: Callable[[Path], None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A payload no span needs, missing or not JSON, or a reducer-level defect: replay
    fails as reduce does (the same ``PATH:LINE: REASON``, exit 1) and sends nothing."""
    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_bundle(scenario, version), bundle)
    (bundle / "state.json").unlink()
    edit(bundle)
    assert main(["reduce", str(bundle), "-o", str(tmp_path / "state.json")]) == 1
    reduce_err = capsys.readouterr().err
    with receiving() as receiver:
        assert main(["replay", str(bundle), "--endpoint", receiver.endpoint]) == 1
    assert capsys.readouterr().err == reduce_err
    assert reduce_err.startswith(f"otel-rollout: {bundle / 'trace.jsonl'}:")
    assert receiver.requests == []


# --- one pass: the command's reduce check and the span build share one read ---


@BOTH_SCHEMAS
@pytest.mark.parametrize("capture", [False, True])
def test_the_command_builds_the_same_spans_from_the_checks_reads(
    version: str, capture: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check and the build share each event and its payload bytes: the spans are the
    ones a build alone gives, and the build reads no payload the check did not read."""
    bundle = fixture_bundle("multi_agent_v2_spawn", version)
    alone = [span.to_json() for span in bundle_spans(bundle, capture_content=capture)]
    store = type(Bundle(bundle).payloads)
    reads: list[str] = []
    read = store.read

    def counting(self: PayloadStore, ref: RawPayloadRef | str) -> bytes:
        reads.append(ref if isinstance(ref, str) else ref.raw_payload_id)
        return read(self, ref)

    monkeypatch.setattr(store, "read", counting)
    reduce_bundle(bundle)
    by_the_check = sorted(reads)
    assert by_the_check, "the check reads every payload"
    reads.clear()
    spans = checked_spans(bundle, capture)
    assert [span.to_json() for span in spans] == alone
    assert sorted(reads) == by_the_check


def _bad_time_then_unknown_tool_call(bundle: Path) -> None:
    """Line 1 has a wall time OTLP cannot carry; a later line is a reducer-level defect."""
    _tool_end_of_an_unknown_call(bundle)
    log = bundle / "trace.jsonl"
    first, rest = log.read_bytes().split(b"\n", 1)
    event = json.loads(first)
    event["wall_time_unix_ms"] = 1 << 62
    log.write_bytes(json.dumps(event, separators=(",", ":")).encode() + b"\n" + rest)


def test_the_reducers_verdict_comes_before_replays_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Built in the same pass, the spans' own refusal (a time OTLP cannot carry, line 1)
    waits for the reducer: a bundle reduce refuses is refused as reduce says."""
    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_bundle("tool_call"), bundle)
    (bundle / "state.json").unlink()
    _bad_time_then_unknown_tool_call(bundle)
    assert main(["reduce", str(bundle), "-o", str(tmp_path / "state.json")]) == 1
    reduce_err = capsys.readouterr().err
    assert ":1:" not in reduce_err
    assert main(["replay", str(bundle), "--endpoint", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err == reduce_err


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_benchmarks_minimal_sink_acknowledges_both_protocols(protocol: str) -> None:
    """The replay benchmark's receiver (tests/support/otlp_sink.py) takes every request."""
    spans = bundle_spans(fixture_bundle("multi_agent_v2_spawn"))
    with start_sink() as sink:
        endpoint = sink.grpc if protocol == "grpc" else sink.http
        sent = export_spans(spans, resolve_target(endpoint, protocol, timeout=5))
    assert sent.spans == len(spans) and sent.requests == 1


def test_a_trace_id_that_is_not_a_uuid_is_blamed_before_any_line(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(fixture_bundle("plain"), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
    manifest["trace_id"] = "not-a-uuid"
    (bundle / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (bundle / "trace.jsonl").write_bytes(b"not json\n")
    with pytest.raises(BundleError, match="manifest.json:0: trace_id is not a UUID"):
        bundle_spans(bundle)
