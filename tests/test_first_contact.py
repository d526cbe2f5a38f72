"""First contact: what a new user following the README hits first says what to do."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_rollout import RolloutBundleSpanExporter, reduce_bundle, validate_bundle
from otel_rollout._otel import _exporter


def test_exporter_without_trace_root_warns_once_saying_what_to_set(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OTEL_ROLLOUT_TRACE_ROOT", raising=False)
    monkeypatch.setattr(_exporter, "_warned_no_trace_root", False)
    exporter = RolloutBundleSpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("app")
    with caplog.at_level(logging.WARNING, logger="otel_rollout"):
        for _ in range(3):
            with tracer.start_as_current_span("invoke_agent demo"):
                pass
    provider.shutdown()
    warnings = [
        record.getMessage() for record in caplog.records if "no bundle" in record.getMessage()
    ]
    assert len(warnings) == 1
    assert "OTEL_ROLLOUT_TRACE_ROOT" in warnings[0]


def test_asyncio_example_records_a_valid_bundle(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "asyncio_tools.py"
    src = Path(__file__).resolve().parent.parent / "src"
    done = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "OTEL_ROLLOUT_TRACE_ROOT": str(tmp_path), "PYTHONPATH": str(src)},
    )
    bundle = Path(done.stdout.strip())
    assert bundle.parent == tmp_path
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    trace = reduce_bundle(bundle)
    assert len(trace.tool_calls) == 2
