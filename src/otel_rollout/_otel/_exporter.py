"""The OpenTelemetry side of bundle writing: a SpanExporter and the SpanProcessor feeding it.

:class:`RolloutBundleSpanExporter` owns the background writer that puts recorded
events on disk, so one exporter serves every live rollout of a process. Spans the
recording API produced were written live and are skipped by :meth:`export`; other
spans go through the spans-only path (:mod:`otel_rollout._otel._spans_only`).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_rollout import _errors
from otel_rollout._bundle import _background
from otel_rollout._bundle._background import (
    DEFAULT_MAX_QUEUE_BYTES,
    DEFAULT_MAX_QUEUE_EVENTS,
    DEFAULT_WRITER_STALL_TIMEOUT_S,
    BackgroundWriter,
    BundleSink,
    PendingEvent,
    PendingSpanCall,
)
from otel_rollout._bundle._models import SCHEMA_VERSION
from otel_rollout._bundle._writer import BundleWriter
from otel_rollout._config import (
    TRACE_ROOT_ENV,
    WRITABLE_SCHEMA_VERSIONS,
    settings_from_env,
    writer_stall_timeout_from_env,
)
from otel_rollout._errors import Component
from otel_rollout._otel import _ownership
from otel_rollout._otel._live_spans import LIVE_SCOPE_NAME

if TYPE_CHECKING:
    from otel_rollout._otel._spans_only import SpansOnlyAssembler

logger = logging.getLogger(__name__)


def is_live_span(span: ReadableSpan) -> bool:
    """Whether ``span`` came from the recording API (its events are already on disk)."""
    scope = span.instrumentation_scope
    return scope is not None and scope.name == LIVE_SCOPE_NAME


def spans_for_bundles(spans: Sequence[ReadableSpan]) -> tuple[list[ReadableSpan], list[int]]:
    """The spans the spans-only path should plan: not recorded live, and of no trace a live
    rollout owns (:mod:`otel_rollout._otel._ownership`; those are counted as left out); and
    the owned traces whose local root ended (what was buffered of them before the claim goes)."""
    kept: list[ReadableSpan] = []
    ended_owned: list[int] = []
    left_out = 0
    for span in spans:
        if is_live_span(span):
            continue
        context = span.context
        if context is not None and _ownership.is_trace_owned(context.trace_id):
            left_out += 1
            if span.parent is None or span.parent.is_remote:
                ended_owned.append(context.trace_id)
            continue
        kept.append(span)
    if left_out:
        _errors.count_spans_left_out(left_out)
    return kept, ended_owned


_warned_no_trace_root = False


def _warn_no_trace_root() -> None:
    """Say once per process that spans reach the exporter but no bundle can be written."""
    global _warned_no_trace_root
    if not _warned_no_trace_root:
        _warned_no_trace_root = True
        logger.warning(
            "rollout trace: spans reach the rollout_bundle exporter, but no bundle is written: "
            "set %s to a directory (or pass trace_root= to RolloutBundleSpanExporter)",
            TRACE_ROOT_ENV,
        )


class RolloutBundleSpanExporter(SpanExporter):
    """Materializes rollouts as Codex-format trace bundles.

    Zero-argument construction works (entry point ``rollout_bundle`` of
    ``opentelemetry_traces_exporter``): the root directory then comes from
    ``OTEL_ROLLOUT_TRACE_ROOT``. Live rollouts write through the exporter's
    background writer (the recording API feeds it); :meth:`export` materializes
    rollouts from spans that no processor fed live.
    """

    def __init__(
        self,
        trace_root: str | os.PathLike[str] | None = None,
        *,
        max_queue_events: int | None = None,
        max_queue_bytes: int | None = None,
        max_queue_wait_s: float | None = None,
        schema_version: int | None = None,
        writer_stall_timeout_s: float | None = None,
    ) -> None:
        """Create an exporter.

        Args:
            trace_root: Directory for bundles built from spans; defaults to
                ``OTEL_ROLLOUT_TRACE_ROOT`` (unset: the spans-only path is off).
            max_queue_events: Bound of the writer queue, in events.
            max_queue_bytes: Bound of the writer queue, in payload bytes.
            max_queue_wait_s: The old name of ``writer_stall_timeout_s``.
            schema_version: The schema of bundles built from spans: 3 (Codex 0.171.0)
                or 2 (0.169.0/0.170.0); ``None`` reads ``OTEL_ROLLOUT_SCHEMA_VERSION``
                (default 3), and the size limits come from ``OTEL_ROLLOUT_MAX_BYTES`` /
                ``OTEL_ROLLOUT_MAX_PAYLOAD_BYTES`` (schema 3). Live rollouts follow
                :func:`otel_rollout.configure` instead.
            writer_stall_timeout_s: The load policy's one bound. A recording call
                waits for room in a full queue as long as the writer makes progress
                (nothing is lost under load); only when the writer makes no progress
                for this many seconds (a stuck disk) does that bundle stop, with one
                warning and an exact count of what is lost. Default
                ``OTEL_ROLLOUT_WRITER_STALL_TIMEOUT_S``, else 10.

        Raises:
            ValueError: ``schema_version`` is not 2 or 3.
        """
        if schema_version is not None and schema_version not in WRITABLE_SCHEMA_VERSIONS:
            raise ValueError(f"schema_version must be 2 or 3, not {schema_version!r}")
        env = settings_from_env()
        self.schema_version = schema_version or env.schema_version or SCHEMA_VERSION
        """The schema of bundles built from spans."""
        self._limits = (
            (env.max_bytes, env.max_payload_bytes) if self.schema_version != 2 else (None, None)
        )
        self.trace_root = Path(trace_root) if trace_root else env.trace_root
        self._writer = BackgroundWriter(
            max_events=DEFAULT_MAX_QUEUE_EVENTS if max_queue_events is None else max_queue_events,
            max_bytes=DEFAULT_MAX_QUEUE_BYTES if max_queue_bytes is None else max_queue_bytes,
            stall_timeout_s=next(
                (
                    value
                    for value in (
                        writer_stall_timeout_s,
                        max_queue_wait_s,
                        writer_stall_timeout_from_env(),
                    )
                    if value is not None
                ),
                DEFAULT_WRITER_STALL_TIMEOUT_S,
            ),
        )
        self._lock = threading.Lock()
        self._shut_down = False
        self._bundles: list[BundleSink] = []
        self._assembler: SpansOnlyAssembler | None = None

    # --- live path (the recording runtime's; private: its types are the writer queue's) ---

    def _open_bundle(self, writer: BundleWriter) -> BundleSink:
        """Register a bundle written live; events for it go through :meth:`_submit`."""
        sink = BundleSink(writer)
        with self._lock:
            self._bundles = [bundle for bundle in self._bundles if bundle.writer.is_active]
            self._bundles.append(sink)
        return sink

    def _submit(self, item: PendingEvent | PendingSpanCall, nbytes: int) -> bool:
        """Queue one recorded event (or span call) for the writer thread; ``False`` if lost."""
        if self._shut_down:
            return False
        return self._writer.submit(item, nbytes)

    @property
    def lost_events(self) -> int:
        """Events recorded but not written, over every bundle of the process
        (:func:`otel_rollout.stats` has them per bundle)."""
        return _background.bundle_stats()[1].lost

    # --- SpanExporter ---

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Materialize bundles from spans not recorded live; never raises."""
        if self._shut_down:
            logger.warning(
                "rollout trace: export called after shutdown; %d spans dropped", len(spans)
            )
            return SpanExportResult.FAILURE
        try:
            foreign, ended_owned = spans_for_bundles(spans)
            if foreign and self.trace_root is None:
                _warn_no_trace_root()
            elif foreign:
                self._spans_only().add(foreign)
            self._forget(ended_owned)
        except Exception:
            _errors.background_error(Component.EXPORTER, "exporting spans to a bundle")
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def _span_ended(self, span: ReadableSpan) -> None:
        """A span ended (``RolloutSpanProcessor``, on the app's thread): buffered; a trace's
        bundle is written on the spans-only background thread when its root ends."""
        if self._shut_down or self.trace_root is None:
            return
        foreign, ended_owned = spans_for_bundles((span,))
        if foreign:
            self._spans_only().add(foreign, background=True)
        self._forget(ended_owned)

    def _forget(self, trace_ids: list[int]) -> None:
        """Owned traces ended: drop what the spans-only path buffered of them."""
        assembler = self._assembler
        if assembler is not None:
            for trace_id in trace_ids:
                assembler.forget(trace_id)

    def _span_started(self, span: Span) -> None:
        """A span started (``RolloutSpanProcessor``): running traces are checkpointed."""
        if self.trace_root is None or self._shut_down or is_live_span(span):
            return
        context = span.context
        if context is not None and not _ownership.is_trace_owned(context.trace_id):
            self._spans_only().started(span)

    def _spans_only(self) -> SpansOnlyAssembler:
        with self._lock:
            if self._assembler is None:
                from otel_rollout._bundle._redact import redactor_for
                from otel_rollout._config import redact_patterns_from_env
                from otel_rollout._otel._spans_only import SpansOnlyAssembler

                assert self.trace_root is not None
                self._assembler = SpansOnlyAssembler(
                    self.trace_root,
                    schema_version=self.schema_version,
                    max_bytes=self._limits[0],
                    max_payload_bytes=self._limits[1],
                    redactor=redactor_for(redact_patterns_from_env(), None),
                )
            return self._assembler

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Write every event recorded so far; ``False`` on timeout."""
        try:
            flushed = self._writer.flush(timeout_millis / 1000)
            assembler = self._assembler
            if assembler is not None:
                flushed = assembler.flush(timeout_millis / 1000) and flushed
            _background.report_new_losses()
        except Exception:
            _errors.internal_error(Component.EXPORTER, "flushing")
            return False
        _errors.raise_pending()
        return flushed

    def shutdown(self) -> None:
        """Flush, write pending spans-only bundles, stop the writer. Idempotent."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
            assembler = self._assembler
        try:
            if assembler is not None:
                assembler.close()
            self._writer.close()
            _background.report_new_losses()
        except Exception:
            _errors.internal_error(Component.EXPORTER, "shutting the bundle exporter down")
        _errors.raise_pending()


class RolloutSpanProcessor(SpanProcessor):
    """Feeds a :class:`RolloutBundleSpanExporter` from a tracer provider.

    Spans recorded live pass through untouched (their events are already on disk), and so
    do spans of traces a live rollout owns (:mod:`otel_rollout._otel._ownership`); other
    ended spans go to the exporter's spans-only path.
    """

    def __init__(self, exporter: RolloutBundleSpanExporter | None = None) -> None:
        """Feed ``exporter`` (a new zero-argument exporter by default)."""
        self.exporter = exporter or RolloutBundleSpanExporter()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Tell the spans-only path a span started: while its trace runs, the trace's bundle
        is checkpointed (a killed process leaves a valid bundle of what had ended)."""
        try:
            self.exporter._span_started(span)
        except Exception:
            _errors.internal_error(Component.EXPORTER, "noting a span's start")

    def on_end(self, span: ReadableSpan) -> None:
        """Pass spans not recorded live to the exporter's spans-only path (their bundles are
        written on its background thread)."""
        if is_live_span(span) or self.exporter.trace_root is None:
            return
        try:
            self.exporter._span_ended(span)
        except Exception:
            _errors.internal_error(Component.EXPORTER, "buffering an ended span")

    def shutdown(self) -> None:
        """Shut the exporter down (idempotent)."""
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Flush the exporter."""
        return self.exporter.force_flush(timeout_millis)
