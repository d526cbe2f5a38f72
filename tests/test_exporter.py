"""RolloutBundleSpanExporter: the SDK contract, and bundles from spans not recorded live."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_rollout
from otel_rollout import (
    RolloutBundleSpanExporter,
    RolloutSpanProcessor,
    ThreadTraceContext,
    _config,
    reduce_bundle,
    validate_bundle,
    write_state,
)
from otel_rollout._otel._spans_only import SpansOnlyAssembler
from support.codex import codex_reduce
from support.recording import Pipeline, event_types, pipeline_fixture, read_events
from support.spans import foreign_agent_run


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch)


def test_export_contract(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    exporter = RolloutBundleSpanExporter(tmp_path)
    assert exporter.export([]) is SpanExportResult.SUCCESS
    assert exporter.force_flush() is True
    exporter.shutdown()
    exporter.shutdown()  # idempotent
    with caplog.at_level(logging.WARNING):
        assert exporter.export([]) is SpanExportResult.FAILURE
    assert "after shutdown" in caplog.text
    assert list(tmp_path.iterdir()) == []


def test_zero_argument_construction_reads_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_config.TRACE_ROOT_ENV, str(tmp_path))
    assert RolloutBundleSpanExporter().trace_root == tmp_path
    monkeypatch.delenv(_config.TRACE_ROOT_ENV)
    assert RolloutBundleSpanExporter().trace_root is None


def _private_types(hint: object) -> list[str]:
    """The package's types named in ``hint`` that the package does not export."""
    if isinstance(hint, list):  # the parameters of a Callable
        return [name for part in hint for name in _private_types(part)]
    if typing.get_args(hint):
        parts = [typing.get_origin(hint), *typing.get_args(hint)]
        return [name for part in parts for name in _private_types(part)]
    if isinstance(hint, type) and hint.__module__.startswith("otel_rollout"):
        if getattr(otel_rollout, hint.__name__, None) is not hint:
            return [f"{hint.__module__}.{hint.__qualname__}"]
    return []


def _surface_private_types(public: object, instance: object = None) -> dict[str, list[str]]:
    """Private types in the signatures and attributes of a public class or function."""
    hints: dict[str, object] = {}
    if isinstance(public, type):
        for name, member in vars(public).items():
            target = member.fget if isinstance(member, property) else member
            if callable(target) and (not name.startswith("_") or name == "__init__"):
                hints.update({f"{name}:{k}": v for k, v in typing.get_type_hints(target).items()})
        hints.update(typing.get_type_hints(public))
    else:
        hints.update(typing.get_type_hints(public))
    if instance is not None:
        hints.update({name: type(value) for name, value in vars(instance).items()})
    found = {name: _private_types(hint) for name, hint in hints.items()}
    return {name: types for name, types in found.items() if types and not name.startswith("_")}


def test_the_otel_public_surface_exposes_no_private_types(tmp_path: Path) -> None:
    exporter = RolloutBundleSpanExporter(tmp_path)
    assert _surface_private_types(RolloutBundleSpanExporter, exporter) == {}
    assert _surface_private_types(RolloutSpanProcessor, RolloutSpanProcessor(exporter)) == {}
    assert _surface_private_types(otel_rollout.ExportResult) == {}
    assert _surface_private_types(otel_rollout.ExportError) == {}
    assert _surface_private_types(otel_rollout.export_bundle) == {}
    exporter.shutdown()


def test_live_spans_are_never_written_twice(pipeline: Pipeline) -> None:
    thread = ThreadTraceContext.start_root_or_disabled()
    with thread, thread.turn():
        pass
    spans = pipeline.spans()
    assert spans
    assert pipeline.exporter.export(spans) is SpanExportResult.SUCCESS
    pipeline.exporter.force_flush()
    assert len(pipeline.bundles()) == 1


def _export_with_broken_assembler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    exporter = RolloutBundleSpanExporter(tmp_path)

    def broken(self: SpansOnlyAssembler, spans: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(SpansOnlyAssembler, "add", broken)
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("x").start_as_current_span("s"):
        pass
    assert exporter.export(memory.get_finished_spans()) is SpanExportResult.FAILURE
    return exporter


def test_export_never_raises_and_counts_the_error_outside_strict_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OTEL_ROLLOUT_STRICT")
    with caplog.at_level(logging.WARNING):
        exporter = _export_with_broken_assembler(tmp_path, monkeypatch)
        assert isinstance(exporter, RolloutBundleSpanExporter)
        exporter.shutdown()
    assert otel_rollout.stats().internal_errors == {"exporter": 1}
    assert [r.message for r in caplog.records if "internal error" in r.message]


def test_export_errors_are_re_raised_by_shutdown_in_strict_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = _export_with_broken_assembler(tmp_path, monkeypatch)
    assert isinstance(exporter, RolloutBundleSpanExporter)
    with pytest.raises(RuntimeError, match="disk on fire"):
        exporter.shutdown()


def test_live_path_does_not_depend_on_span_event_limits(tmp_path: Path) -> None:
    exporter = RolloutBundleSpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_events=2))
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    otel_rollout.configure(trace_root=tmp_path, tracer_provider=provider, exporter=exporter)
    thread = ThreadTraceContext.start_root_or_disabled()
    with thread, thread.turn() as turn:
        for i in range(300):
            thread.record_history_item_accepted(turn.turn_id, f"item-{i}")
    provider.shutdown()
    [bundle] = tmp_path.glob("trace-*")
    assert event_types(bundle).count("history_item_accepted") == 300


@pytest.mark.parametrize("schema_version", [3, 2])
def test_spans_only_bundle_from_foreign_genai_spans(
    tmp_path: Path, codex_for: Callable[[int], Path], schema_version: int
) -> None:
    """Schema 3 by default (with prepared prompts, for Codex 0.171.0), or schema 2; the
    Codex of that schema reduces the bundle to our bytes."""
    exporter = RolloutBundleSpanExporter(
        tmp_path / "traces", schema_version=None if schema_version == 3 else schema_version
    )
    provider = TracerProvider()
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    foreign_agent_run(provider.get_tracer("some.genai.instrumentation"))
    provider.shutdown()
    [bundle] = (tmp_path / "traces").glob("trace-*")
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    assert (report.threads, report.turns) == (2, 2)
    types = event_types(bundle)
    assert types[0] == "rollout_started" and types[-1] == "recording_completed"
    assert types.count("inference_started") == 3 and types.count("inference_failed") == 1
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["schema_version"] == schema_version
    if schema_version == 3:
        started = [e for e in read_events(bundle) if e["payload"]["type"] == "inference_started"]
        prompts = [e["payload"]["prepared_prompt_payload"] for e in started]
        assert all(p["kind"] == {"type": "prepared_prompt"} for p in prompts)
        assert any(p.get("parts") for p in prompts)  # the request's items, as model items
    done = codex_reduce(codex_for(schema_version), bundle, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    ours = write_state(reduce_bundle(bundle), tmp_path / "ours.json").read_bytes()
    assert ours == (tmp_path / "state.json").read_bytes()
    state = json.loads((tmp_path / "state.json").read_text())
    [child] = [t for t in state["threads"].values() if t["origin"]["type"] == "spawned"]
    assert child["agent_path"] == "/root/checker"
    [tool] = state["tool_calls"].values()
    assert tool["model_visible_call_id"] == "call_add"
    usages = [call["usage"] for call in state["inference_calls"].values() if call["usage"]]
    assert usages and usages[0]["input_tokens"] == 11


def test_spans_only_spills_big_traces_to_disk(tmp_path: Path) -> None:
    assembler = SpansOnlyAssembler(tmp_path, max_buffered_bytes=1)
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    foreign_agent_run(provider.get_tracer("x"))
    spans = list(memory.get_finished_spans())
    assembler.add(spans[:3])
    assert list((tmp_path / ".spill").iterdir())
    assembler.add(spans[3:])
    assert list((tmp_path / ".spill").iterdir()) == []
    [bundle] = assembler.bundles_written
    assert validate_bundle(bundle).ok
    assert event_types(bundle).count("inference_started") == 3


AUTOCONFIG_SCRIPT = textwrap.dedent(
    """
    import sys
    from opentelemetry import trace
    from opentelemetry.sdk._configuration import _OTelSDKConfigurator
    from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext

    _OTelSDKConfigurator().configure()  # what opentelemetry-instrument does
    sys.path.insert(0, sys.argv[1])
    from test_exporter import foreign_agent_run

    foreign_agent_run(trace.get_tracer("other.instrumentation"))
    meta = ThreadStartedTraceMetadata(thread_id="live-root")
    live = ThreadTraceContext.start_root_or_disabled(meta)
    with live, live.turn():
        pass
    """
)


def test_spans_only_path_with_the_sdk_auto_configuration(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console,rollout_bundle",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_ROLLOUT_TRACE_ROOT": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-c", AUTOCONFIG_SCRIPT, str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"name": "invoke_agent planner"' in done.stdout  # the console exporter saw them too
    bundles = sorted(tmp_path.glob("trace-*"))
    live = [bundle for bundle in bundles if bundle.name.endswith("-live-root")]
    foreign = [bundle for bundle in bundles if not bundle.name.endswith("-live-root")]
    assert len(live) == 1 and len(foreign) == 1, bundles
    for bundle in bundles:
        assert validate_bundle(bundle).ok
    assert event_types(live[0]).count("thread_started") == 1
    assert event_types(foreign[0]).count("thread_started") == 2


def test_the_apps_otlp_exporter_receives_the_same_spans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import http.server
    import threading

    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from support.recording import load_example

    received: list[bytes] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        monkeypatch.delenv(_config.TRACE_ROOT_ENV, raising=False)
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        otel_rollout.configure(trace_root=tmp_path, tracer_provider=provider)
        bundle = load_example().run_rollout()
        assert otel_rollout.force_flush()
        provider.shutdown()
    finally:
        server.shutdown()
        server.server_close()
    names = []
    for body in received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                assert scope_spans.scope.name == "otel_rollout"
                names += [span.name for span in scope_spans.spans]
    assert sorted(set(names)) == sorted(
        {
            "invoke_agent planner",
            "invoke_agent researcher",
            "turn",
            "chat gpt-demo",
            "execute_tool spawn_agent",
            "execute_tool lookup",
            "compaction",
            "compact gpt-demo",
            "agent_result researcher",
        }
    )
    assert len(names) == 14
    assert bundle is not None and validate_bundle(bundle).ok
