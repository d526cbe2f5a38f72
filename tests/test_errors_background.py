"""The error policy off the app's thread: the span mapper, the writer thread, the spans-only path.

Strict mode (``OTEL_ROLLOUT_STRICT=1``, set by conftest) keeps a background error for the
next flush or shutdown, which re-raises it; the bundle and the background thread go on.
Outside strict mode the error is swallowed, counted under its component in
``otel_rollout.stats()`` and warned once per component.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

import otel_rollout
from otel_rollout import (
    RolloutBundleSpanExporter,
    RolloutSpanProcessor,
    ThreadStartedTraceMetadata,
    ThreadTraceContext,
    validate_bundle,
)
from otel_rollout import semconv as sc
from otel_rollout._bundle._background import BundleSink, PendingEvent, PendingSpanCall
from otel_rollout._bundle._models import CodexTurnStarted, RawTraceEventPayload
from otel_rollout._errors import STRICT_ENV
from otel_rollout._otel import _spans_only
from otel_rollout._otel._mapping import SpanMapper
from support.recording import Pipeline, attrs, event_types, pipeline_fixture

FULL_ROLLOUT = [
    "rollout_started",
    "thread_started",
    "codex_turn_started",
    "codex_turn_ended",
    "thread_ended",
    "rollout_ended",
    "recording_completed",
]


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch)


def record_rollout(thread_id: str) -> None:
    """A root thread with one turn."""
    thread = ThreadTraceContext.start_root_or_disabled(
        ThreadStartedTraceMetadata(thread_id=thread_id)
    )
    with thread, thread.turn():
        pass


def bundle_of(pipeline: Pipeline, thread_id: str) -> Path:
    [bundle] = pipeline.root.glob(f"trace-*-{thread_id}")
    return bundle


def internal_error_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.message for record in caplog.records if "internal error" in record.message]


# --- (a) the span mapper, on the writer thread ---


def break_the_mapper_at_turn_starts(monkeypatch: pytest.MonkeyPatch, threads: set[str]) -> None:
    original = SpanMapper.map_event

    def map_event(self: SpanMapper, payload: RawTraceEventPayload, **context: Any) -> None:
        if isinstance(payload, CodexTurnStarted) and context["thread_id"] in threads:
            raise RuntimeError("mapper bug")
        original(self, payload, **context)

    monkeypatch.setattr(SpanMapper, "map_event", map_event)


def test_a_mapper_error_is_re_raised_by_the_next_flush_and_the_writer_goes_on(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_the_mapper_at_turn_starts(monkeypatch, {"first"})
    record_rollout("first")
    with pytest.raises(RuntimeError, match="mapper bug"):
        otel_rollout.force_flush()
    first = bundle_of(pipeline, "first")
    assert event_types(first) == FULL_ROLLOUT  # the bundle is whole; only its spans stopped
    assert validate_bundle(first).ok
    record_rollout("second")
    assert otel_rollout.force_flush()
    assert event_types(bundle_of(pipeline, "second")) == FULL_ROLLOUT
    threads = {attrs(span).get(sc.ROLLOUT_THREAD_ID) for span in pipeline.spans()}
    assert "second" in threads


def test_mapper_errors_are_counted_and_warned_once_outside_strict_mode(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(STRICT_ENV)
    break_the_mapper_at_turn_starts(monkeypatch, {"first", "second"})
    with caplog.at_level(logging.WARNING):
        record_rollout("first")
        record_rollout("second")
        assert otel_rollout.force_flush()
    assert otel_rollout.stats().internal_errors == {"mapper": 2}
    assert len(internal_error_warnings(caplog)) == 1
    for thread_id in ("first", "second"):
        assert event_types(bundle_of(pipeline, thread_id)) == FULL_ROLLOUT


# --- (b) the writer thread itself ---


def break_the_writer_at_turn_starts(monkeypatch: pytest.MonkeyPatch, threads: set[str]) -> None:
    original = BundleSink.write

    def write(self: BundleSink, item: PendingEvent | PendingSpanCall) -> None:
        if (
            isinstance(item, PendingEvent)
            and isinstance(item.event, CodexTurnStarted)
            and item.thread_id in threads
        ):
            raise RuntimeError("writer bug")
        original(self, item)

    monkeypatch.setattr(BundleSink, "write", write)


def test_a_writer_error_is_re_raised_by_the_next_flush_and_the_thread_goes_on(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    break_the_writer_at_turn_starts(monkeypatch, {"first"})
    record_rollout("first")
    with pytest.raises(RuntimeError, match="writer bug"):
        otel_rollout.force_flush()
    first = bundle_of(pipeline, "first")
    assert event_types(first) == ["rollout_started", "thread_started"]  # stopped: a valid prefix
    assert validate_bundle(first).ok
    record_rollout("second")
    assert otel_rollout.force_flush()
    second = bundle_of(pipeline, "second")
    assert event_types(second) == FULL_ROLLOUT
    assert validate_bundle(second).ok


def test_writer_errors_are_counted_and_warned_once_outside_strict_mode(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(STRICT_ENV)
    break_the_writer_at_turn_starts(monkeypatch, {"first", "second"})
    with caplog.at_level(logging.WARNING):
        record_rollout("first")
        record_rollout("second")
        assert otel_rollout.force_flush()
    assert otel_rollout.stats().internal_errors == {"writer": 2}
    assert len(internal_error_warnings(caplog)) == 1
    for thread_id in ("first", "second"):
        assert event_types(bundle_of(pipeline, thread_id)) == ["rollout_started", "thread_started"]


# --- (c) the spans-only path ---


def break_the_spans_only_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    def plan_rollouts(trace_id: int, records: object) -> Iterator[object]:
        raise RuntimeError("spans-only bug")

    monkeypatch.setattr(_spans_only, "plan_rollouts", plan_rollouts)


def foreign_agent_runs(tmp_path: Path, runs: int) -> RolloutBundleSpanExporter:
    """Another instrumentation's GenAI spans reaching the exporter through its processor."""
    exporter = RolloutBundleSpanExporter(tmp_path)
    provider = TracerProvider()
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    tracer = provider.get_tracer("some.genai.instrumentation")
    for _ in range(runs):
        with tracer.start_as_current_span(
            "invoke_agent planner", attributes={"gen_ai.operation.name": "invoke_agent"}
        ):
            with tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}):
                pass
    return exporter


@pytest.mark.parametrize("end", ["force_flush", "shutdown"])
def test_a_spans_only_error_is_re_raised_by_the_exporters_flush_or_shutdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str
) -> None:
    break_the_spans_only_planner(monkeypatch)
    exporter = foreign_agent_runs(tmp_path, 1)
    with pytest.raises(RuntimeError, match="spans-only bug"):
        getattr(exporter, end)()
    exporter.shutdown()
    assert not list(tmp_path.glob("trace-*"))


def test_spans_only_errors_are_counted_and_warned_once_outside_strict_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(STRICT_ENV)
    break_the_spans_only_planner(monkeypatch)
    with caplog.at_level(logging.WARNING):
        exporter = foreign_agent_runs(tmp_path, 2)
        assert exporter.force_flush()
        exporter.shutdown()
    assert otel_rollout.stats().internal_errors == {"spans_only": 2}
    assert len(internal_error_warnings(caplog)) == 1
