"""Live OpenTelemetry spans of a recording: the span sink the mapper drives, and derived ids.

The writer thread maps each recorded event (:class:`SpanMapper`) onto a
:class:`LiveSpanSink`, which starts and ends real spans through an OTel tracer. A
:class:`PendingIdGenerator` on that tracer hands each span the id the mapper derived,
so a live span and its later replay share ids.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Link, Span, SpanContext, StatusCode, TraceFlags, Tracer

from otel_rollout._otel._mapping import Attributes, LinkSpec, SpanStart, derived_span_context

LIVE_SCOPE_NAME = "otel_rollout"
"""Instrumentation scope of the spans recorded live; the bundle exporter skips them."""


class PendingIdGenerator(IdGenerator):
    """Hands out the ids the mapper derived, falling back to another generator.

    Installed on the library's own :class:`~opentelemetry.sdk.trace.Tracer`, so a
    recorded span gets the id replay will derive for it. Ids are passed per OS thread.
    """

    def __init__(self, fallback: IdGenerator | None = None) -> None:
        """Wrap ``fallback`` (random ids by default)."""
        self._fallback = fallback or RandomIdGenerator()
        self._pending = threading.local()

    def set_next(self, trace_id: int, span_id: int) -> None:
        """Use these ids for the next span started on this OS thread."""
        self._pending.trace_id = trace_id
        self._pending.span_id = span_id

    def clear(self) -> None:
        """Forget ids not consumed."""
        self._pending.trace_id = 0
        self._pending.span_id = 0

    def generate_span_id(self) -> int:
        """Return the pending span id, else a fallback id."""
        span_id: int = getattr(self._pending, "span_id", 0)
        if span_id:
            self._pending.span_id = 0
            return span_id
        return self._fallback.generate_span_id()

    def generate_trace_id(self) -> int:
        """Return the pending trace id, else a fallback id."""
        trace_id: int = getattr(self._pending, "trace_id", 0)
        if trace_id:
            self._pending.trace_id = 0
            return trace_id
        return self._fallback.generate_trace_id()

    def is_trace_id_random(self) -> bool:
        """Derived trace ids are not promised random (W3C ``random`` flag unset)."""
        return False


class LiveSpanSink:
    """A :class:`SpanSink` that records real spans through an OTel tracer."""

    def __init__(
        self,
        tracer: Tracer,
        ids: PendingIdGenerator | None,
        trace_id: int,
        outer_context: otel_context.Context,
    ) -> None:
        """Record through ``tracer``; the root thread span's parent comes from ``outer_context``."""
        self.tracer = tracer
        self.ids = ids
        self.trace_id = trace_id
        self.outer_context = outer_context
        self.spans: dict[str, Span] = {}
        """Open spans (and, without derived ids, the contexts of ended ones)."""
        self.ended: set[str] = set()
        """Ended spans that may still be a parent or a link target."""
        self.flags = TraceFlags(TraceFlags.SAMPLED)

    def _context(self, key: str) -> SpanContext | None:
        """The context of span ``key``: live, or derived again once it ended."""
        span = self.spans.get(key)
        if span is not None:
            return span.get_span_context()
        if self.ids is not None and key in self.ended:
            return derived_span_context(self.trace_id, key, self.flags)
        return None

    def start_span(self, start: SpanStart) -> None:
        """Start a real span (ids come from the mapper when the library owns the generator)."""
        parent = self._context(start.parent) if start.parent is not None else None
        if parent is not None:
            context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        else:
            context = self.outer_context
        links = []
        for link in start.links:
            target = self._context(link.target)
            if target is not None:
                links.append(Link(target, link.attributes))
        if self.ids is not None:
            self.ids.set_next(self.trace_id, start.span_id)
        try:
            span = self.tracer.start_span(
                start.name,
                context=context,
                kind=start.kind,
                attributes=start.attributes,
                links=links,
                start_time=start.start_time_ns,
                record_exception=False,
                set_status_on_exception=False,
            )
        finally:
            if self.ids is not None:
                self.ids.clear()
        if start.parent is None:
            self.flags = span.get_span_context().trace_flags
        self.spans[start.key] = span

    def add_event(self, key: str, name: str, attributes: Attributes, time_ns: int) -> None:
        """Add a span event."""
        span = self.spans.get(key)
        if span is not None and span.is_recording():
            span.add_event(name, attributes, time_ns)

    def set_attributes(self, key: str, attributes: Attributes) -> None:
        """Set attributes."""
        span = self.spans.get(key)
        if span is not None and span.is_recording():
            span.set_attributes(attributes)

    def add_link(self, key: str, link: LinkSpec) -> None:
        """Add a link after start."""
        span = self.spans.get(key)
        target = self._context(link.target)
        if span is not None and target is not None and span.is_recording():
            span.add_link(target, link.attributes)

    def call(self, key: str, method: str, args: tuple[Any, ...]) -> None:
        """Apply a call the app made on the stand-in of span ``key`` (if it is open)."""
        span = self.spans.get(key)
        if span is not None and span.is_recording():
            getattr(span, method)(*args)

    def end_span(
        self, key: str, status: StatusCode, description: str | None, end_time_ns: int
    ) -> None:
        """End a span with a status."""
        span = self.spans.pop(key, None)
        if span is None:
            return
        if status is StatusCode.ERROR:
            span.set_status(status, description)
        span.end(end_time_ns)
        if self.ids is None:  # ids not derivable: keep the context for children and links
            self.spans[key] = trace.NonRecordingSpan(span.get_span_context())
        elif key.startswith(("thread:", "turn:", "code_cell:", "compaction:")):
            self.ended.add(key)  # may still parent or be linked to; others never are
