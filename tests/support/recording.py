"""Shared helpers for the recording tests: a real SDK pipeline and the example rollout."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler
from opentelemetry.util.types import AnyValue

import otel_rollout
from otel_rollout import _config
from otel_rollout._bundle._models import SCHEMA_VERSION
from otel_rollout._live import _runtime
from otel_rollout._otel._exporter import RolloutBundleSpanExporter, RolloutSpanProcessor

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Pipeline:
    """An SDK provider with an in-memory exporter beside the bundle exporter."""

    root: Path
    provider: TracerProvider
    memory: InMemorySpanExporter
    exporter: RolloutBundleSpanExporter
    schema_version: int = SCHEMA_VERSION
    """The schema of the bundles it writes."""

    def spans(self) -> list[ReadableSpan]:
        """Every finished span, after flushing (the writer thread builds the spans)."""
        assert self.exporter.force_flush()
        self.provider.force_flush()
        return list(self.memory.get_finished_spans())

    def bundles(self) -> list[Path]:
        """Bundle directories under the trace root, after flushing the writer."""
        assert self.exporter.force_flush()
        return sorted(self.root.glob("trace-*")) if self.root.exists() else []


def make_pipeline(
    root: Path, sampler: Sampler | None = None, *, schema_version: int | None = None
) -> Pipeline:
    """Configure recording into ``root`` through a fresh SDK pipeline (``schema_version``:
    the bundles' schema, the default when ``None``)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporter = RolloutBundleSpanExporter()
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    otel_rollout.configure(
        trace_root=root, tracer_provider=provider, exporter=exporter, schema_version=schema_version
    )
    schema = SCHEMA_VERSION if schema_version is None else schema_version
    return Pipeline(root, provider, memory, exporter, schema)


def pipeline_fixture(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, schema_version: int | None = None
) -> Iterator[Pipeline]:
    """Body of a ``pipeline`` fixture: recording into ``tmp_path/traces``, a real SDK pipeline."""
    for name in (
        _config.TRACE_ROOT_ENV,
        _config.CAPTURE_CONTENT_ENV,
        _config.CONTENT_MAX_BYTES_ENV,
        _config.SCHEMA_VERSION_ENV,
        _config.MAX_BYTES_ENV,
        _config.MAX_PAYLOAD_BYTES_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    made = make_pipeline(tmp_path / "traces", schema_version=schema_version)
    yield made
    _runtime.reset()
    made.provider.shutdown()


def load_example() -> ModuleType:
    """Import examples/two_agents.py as a module."""
    path = REPO_ROOT / "examples" / "two_agents.py"
    spec = importlib.util.spec_from_file_location("two_agents_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_events(bundle: Path) -> list[dict[str, Any]]:
    """The bundle's events as JSON objects."""
    lines = (bundle / "trace.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def event_types(bundle: Path) -> list[str]:
    """The bundle's event types, in order."""
    return [str(event["payload"]["type"]) for event in read_events(bundle)]


def attrs(span: ReadableSpan) -> Mapping[str, AnyValue]:
    """The span's attributes; the SDK types them optional, but a finished span always has them."""
    assert span.attributes is not None
    return span.attributes
