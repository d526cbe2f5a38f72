"""RolloutSampler: a dropping sampler still leaves complete bundles, and exports nothing more."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased

from otel_rollout import RolloutBundleSpanExporter, RolloutSampler, RolloutSpanProcessor
from support.rollout_shape import rollout_shape
from support.spans import foreign_agent_run


def _run(tmp_path: Path, sampler: Sampler) -> tuple[list[Path], InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(RolloutSpanProcessor(RolloutBundleSpanExporter(tmp_path)))
    foreign_agent_run(provider.get_tracer("an.instrumentation"))
    provider.shutdown()
    return sorted(tmp_path.glob("trace-*")), memory


def test_a_dropping_sampler_alone_leaves_no_bundle(tmp_path: Path) -> None:
    bundles, memory = _run(tmp_path, ParentBased(TraceIdRatioBased(0)))
    assert bundles == [] and memory.get_finished_spans() == ()


def test_wrapped_it_leaves_the_complete_bundle_and_exports_nothing(tmp_path: Path) -> None:
    sampler = RolloutSampler(ParentBased(TraceIdRatioBased(0)))
    [bundle], memory = _run(tmp_path, sampler)
    assert memory.get_finished_spans() == ()  # the app's exporter sees what it saw before
    shape = rollout_shape(bundle)
    assert set(shape.threads) == {"/root", "/root/checker"}
    assert shape.threads["/root"].tools == [("add", "call_add", "spawn_agent")]  # runs checker
    assert sampler.get_description().startswith("RolloutSampler{ParentBased")


def test_what_the_wrapped_sampler_keeps_is_exported_as_before(tmp_path: Path) -> None:
    [bundle], memory = _run(tmp_path, RolloutSampler(ALWAYS_ON))
    assert len(memory.get_finished_spans()) == 7
    assert rollout_shape(bundle).threads["/root"].nickname == "planner"
