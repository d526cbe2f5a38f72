"""Bundles from spans alone: GenAI spans that no recording API fed live.

Spans of other instrumentations (or of any pipeline built by ``opentelemetry-instrument``
with ``OTEL_TRACES_EXPORTER=...,rollout_bundle``) reach the exporter only when they
end, children first. :class:`SpansOnlyAssembler` buffers a trace's spans until its
local root span ends (spilling to a file past a size bound); the planner
(:mod:`otel_rollout._otel._spans_plan`) turns them into one plan per rollout, and
:func:`write_plan` writes each plan as a bundle.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from opentelemetry.sdk.trace import ReadableSpan

from otel_rollout import _errors
from otel_rollout._bundle._bodies import prompt_from_request, session_metadata_to
from otel_rollout._bundle._files import make_private_dirs
from otel_rollout._bundle._models import (
    SCHEMA_2,
    SCHEMA_VERSION,
    InferenceStarted,
    PayloadKind,
    RawPayloadRef,
)
from otel_rollout._bundle._redact import Redactor
from otel_rollout._bundle._writer import BundleWriter
from otel_rollout._config import CAPTURE_CONTENT_ENV
from otel_rollout._errors import Component
from otel_rollout._otel._span_conventions import is_genai
from otel_rollout._otel._spans_plan import RolloutPlan, SpanRecord, plan_rollouts, span_record

logger = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
"""Past this many buffered bytes, the biggest trace buffer is spilled to disk."""
_MAX_FLUSHED_TRACES = 4096

_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(SpanRecord)


@dataclass
class _TraceBuffer:
    records: list[SpanRecord] = field(default_factory=list)
    size: int = 0
    spill: Path | None = None
    has_genai: bool = False


class SpansOnlyAssembler:
    """Buffers foreign spans per trace and writes their bundles when the trace's root ends."""

    def __init__(
        self,
        trace_root: Path,
        *,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        schema_version: int = SCHEMA_VERSION,
        max_bytes: int | None = None,
        max_payload_bytes: int | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        """Write bundles of ``schema_version`` (size limits: schema 3 only) under
        ``trace_root``; spill buffers past ``max_buffered_bytes``; ``redactor`` rewrites
        payload bodies before they are written."""
        self.redactor = redactor
        self.trace_root = trace_root
        self.max_buffered_bytes = max_buffered_bytes
        self.schema_version = schema_version
        self.max_bytes = max_bytes
        self.max_payload_bytes = max_payload_bytes
        self._lock = threading.Lock()
        self._traces: dict[int, _TraceBuffer] = {}
        self._buffered = 0
        self._flushed: dict[int, None] = {}
        self.bundles_written: list[Path] = []

    def add(self, spans: Sequence[ReadableSpan]) -> None:
        """Buffer finished spans; write the bundles of every trace whose local root ended."""
        ready: list[tuple[int, _TraceBuffer]] = []
        with self._lock:
            for span in spans:
                if span.context is None:
                    continue
                trace_id = span.context.trace_id
                if trace_id in self._flushed:
                    continue  # a late span of a trace already written: never write twice
                record = span_record(span)
                buffer = self._traces.setdefault(trace_id, _TraceBuffer())
                buffer.records.append(record)
                size = 256 + sum(len(str(value)) for value in record.attributes.values())
                buffer.size += size
                self._buffered += size
                buffer.has_genai = buffer.has_genai or is_genai(record.attributes)
                if record.parent_id == 0:
                    ready.append((trace_id, self._traces.pop(trace_id)))
                    self._buffered -= buffer.size
                    self._mark_flushed(trace_id)
            if self._buffered > self.max_buffered_bytes:
                self._spill_largest()
        for trace_id, buffer in ready:
            self._write(trace_id, buffer)

    def close(self) -> None:
        """Write every trace still buffered (their roots never ended)."""
        with self._lock:
            pending = list(self._traces.items())
            self._traces.clear()
            self._buffered = 0
        for trace_id, buffer in pending:
            self._write(trace_id, buffer)

    def _mark_flushed(self, trace_id: int) -> None:
        self._flushed[trace_id] = None
        if len(self._flushed) > _MAX_FLUSHED_TRACES:
            del self._flushed[next(iter(self._flushed))]

    def _spill_largest(self) -> None:
        trace_id, buffer = max(self._traces.items(), key=lambda item: item[1].size)
        try:
            spill_dir = self.trace_root / ".spill"
            make_private_dirs(spill_dir)
            path = spill_dir / f"{os.getpid()}-{trace_id:032x}.jsonl"
            with path.open("ab") as spill:
                for record in buffer.records:
                    spill.write(_record_encoder.encode(record) + b"\n")
        except OSError as error:
            logger.warning("rollout trace: spilling buffered spans failed: %s", error)
            return
        buffer.spill = path
        self._buffered -= buffer.size
        buffer.records = []
        buffer.size = 0

    def _write(self, trace_id: int, buffer: _TraceBuffer) -> None:
        records = list(buffer.records)
        if buffer.spill is not None:
            try:
                with buffer.spill.open("rb") as spill:
                    records = [_record_decoder.decode(line) for line in spill] + records
                buffer.spill.unlink()
            except (OSError, msgspec.DecodeError) as error:
                logger.warning("rollout trace: reading spilled spans failed: %s", error)
        if not buffer.has_genai:
            return  # a web app's request, say: silence
        try:
            plans = list(plan_rollouts(trace_id, records))
            if not plans:
                warn_once(
                    "no agent work",
                    "rollout trace: a trace's GenAI spans hold no agent run, inference or "
                    "tool call (operations: %s), so it has no bundle",
                    ", ".join(sorted(_operations(records))) or "none",
                )
            if any(plan.without_content for plan in plans):
                warn_once(
                    "no content",
                    "rollout trace: GenAI inference spans carry no message content, so "
                    "bundles hold no requests or replies: set %s=span_only (or "
                    "span_and_event); "
                    "opentelemetry-instrumentation-openai-v2 also needs "
                    "OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental (its legacy mode "
                    "puts content in log events only)",
                    CAPTURE_CONTENT_ENV,
                )
            for plan in plans:
                path = write_plan(
                    self.trace_root,
                    plan,
                    schema_version=self.schema_version,
                    max_bytes=self.max_bytes,
                    max_payload_bytes=self.max_payload_bytes,
                    redactor=self.redactor,
                )
                if path is not None:
                    self.bundles_written.append(path)
        except Exception:
            _errors.background_error(Component.SPANS_ONLY, "building a bundle from spans")


_warned: set[str] = set()
_warned_lock = threading.Lock()


def warn_once(reason: str, message: str, *args: object) -> None:
    """Log ``message`` (a ``%`` format of ``args``) once per ``reason`` per process."""
    with _warned_lock:
        if reason in _warned:
            return
        _warned.add(reason)
    logger.warning(message, *args)


def _operations(records: list[SpanRecord]) -> set[str]:
    operations = set()
    for record in records:
        value = record.attributes.get("gen_ai.operation.name")
        kind = record.attributes.get("openinference.span.kind")
        if isinstance(value, str):
            operations.add(value)
        elif isinstance(kind, str):
            operations.add(f"openinference {kind}")
    return operations


def write_plan(
    trace_root: Path,
    plan: RolloutPlan,
    *,
    schema_version: int = SCHEMA_VERSION,
    max_bytes: int | None = None,
    max_payload_bytes: int | None = None,
    redactor: Redactor | None = None,
) -> Path | None:
    """Write one rollout's bundle under ``trace_root``; ``None`` if it could not be created.

    Schema 3 (the default) adds each inference request's prepared prompt, as 0.171.0
    records it, and names the session metadata's sandbox field as 0.171.0 does. A failed
    write ends the bundle there (it stays a valid prefix).
    """
    try:
        writer = BundleWriter.create(
            trace_root,
            root_thread_id=plan.root_thread_id,
            trace_id=plan.trace_id,
            started_at_unix_ms=plan.started_at_unix_ms,
            schema_version=schema_version,
            max_bytes=max_bytes,
            max_payload_bytes=max_payload_bytes,
        )
    except OSError as error:
        logger.warning("rollout trace: creating a bundle from spans failed: %s", error)
        return None
    sharded = schema_version != SCHEMA_2

    def write_payload(kind: PayloadKind, body: Any, thread_id: str | None) -> RawPayloadRef | None:
        if redactor is not None:
            body = redactor.body(body)
        if sharded and kind is PayloadKind.SESSION_METADATA:
            body = session_metadata_to(body, schema_version)
        return writer.write_payload(kind, body, thread_id=thread_id)

    for planned, event in plan.realize(write_payload):
        if sharded and isinstance(event, InferenceStarted) and planned.payload is not None:
            request = planned.payload.body
            if redactor is not None:
                request = redactor.body(request)
            prompt = writer.write_prepared_prompt(planned.thread_id, prompt_from_request(request))
            if prompt is None:
                break
            event = msgspec.structs.replace(event, prepared_prompt_payload=prompt)
        written = writer.append(
            event,
            thread_id=planned.thread_id,
            codex_turn_id=planned.codex_turn_id,
            wall_time_unix_ms=planned.time_ns // 1_000_000,
        )
        if written is None:
            break
    writer.close()
    return writer.bundle_dir
