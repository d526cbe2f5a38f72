"""One bundle per rollout: a trace a live rollout owns gets no second, spans-only bundle."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import otel_rollout
from otel_rollout import RolloutBundleSpanExporter, RolloutSpanProcessor, ThreadTraceContext
from otel_rollout._otel import _ownership
from otel_rollout._otel._exporter import is_live_span
from support.recording import pipeline_fixture
from support.spans import foreign_agent_run


def test_foreign_genai_spans_inside_a_live_rollout_make_no_second_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another instrumentation's GenAI spans under a recording-API rollout (the openai-v2
    client beside the recording API on one provider, the spans-only path on) are left out
    of bundles and counted, and still reach the app's own exporter."""
    for pipeline in pipeline_fixture(tmp_path, monkeypatch):
        exporter = RolloutBundleSpanExporter(pipeline.root)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(pipeline.memory))
        provider.add_span_processor(RolloutSpanProcessor(exporter))
        otel_rollout.configure(
            trace_root=pipeline.root, tracer_provider=provider, exporter=exporter
        )
        before = otel_rollout.stats().foreign_spans_left_out
        thread = ThreadTraceContext.start_root_or_disabled()
        with thread, thread.turn():
            foreign_agent_run(provider.get_tracer("opentelemetry.instrumentation.openai_v2"))
        assert exporter.force_flush()
        provider.shutdown()
        spans = pipeline.memory.get_finished_spans()
        foreign = [s for s in spans if not is_live_span(s)]
        assert len(foreign) == 7
        assert len(list(pipeline.root.glob("trace-*"))) == 1
        assert otel_rollout.stats().foreign_spans_left_out - before == len(foreign)


def test_a_trace_claimed_by_an_integration_is_left_out(tmp_path: Path) -> None:
    """The rule an integration uses (the native Agents SDK processor beside an OTel bridge):
    claim the bridge's trace id and its spans stay out of bundles, even those ending after
    the claim is released."""
    exporter = RolloutBundleSpanExporter(tmp_path / "traces")
    provider = TracerProvider()
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    tracer = provider.get_tracer("a.bridge")
    with tracer.start_as_current_span("workflow") as outer:
        trace_id = outer.get_span_context().trace_id
        with _ownership.owned_trace(trace_id):
            assert _ownership.is_trace_owned(trace_id)
            foreign_agent_run(tracer)
        assert _ownership.is_trace_owned(trace_id)  # recently released: late spans stay out
    foreign_agent_run(tracer)  # another trace, not owned: its bundle is written
    provider.shutdown()
    assert len(list((tmp_path / "traces").glob("trace-*"))) == 1


def test_claims_nest_and_zero_is_never_owned() -> None:
    _ownership.claim_trace(0)
    assert not _ownership.is_trace_owned(0)
    trace_id = 0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0
    _ownership.claim_trace(trace_id)
    _ownership.claim_trace(trace_id)
    _ownership.release_trace(trace_id)
    assert trace_id in _ownership._claims
    _ownership.release_trace(trace_id)
    assert trace_id not in _ownership._claims and _ownership.is_trace_owned(trace_id)


def test_a_trace_claimed_after_its_spans_began_gets_no_bundle_and_no_checkpoint(
    tmp_path: Path,
) -> None:
    """An integration may claim a trace once a bridge's spans of it are buffered (even
    checkpointed): when it ends, its spans are left out and the checkpoints removed."""
    exporter = RolloutBundleSpanExporter(tmp_path)
    provider = TracerProvider()
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    tracer = provider.get_tracer("a.bridge")
    before = otel_rollout.stats().foreign_spans_left_out
    with tracer.start_as_current_span("workflow") as outer:
        with tracer.start_as_current_span(
            "invoke_agent a",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "a"},
        ):
            pass
        assert exporter.force_flush()
        deadline = time.monotonic() + 30
        while not list(tmp_path.glob("trace-*")) and time.monotonic() < deadline:
            time.sleep(0.01)  # a checkpoint of the running trace
        assert list(tmp_path.glob("trace-*"))
        _ownership.claim_trace(outer.get_span_context().trace_id)
    provider.shutdown()
    assert list(tmp_path.glob("trace-*")) == []
    assert otel_rollout.stats().foreign_spans_left_out - before == 2
