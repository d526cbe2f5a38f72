"""The per-rollout recorder: one ordered stream of raw events, to the bundle and to live spans.

Every recording call of a rollout goes through :meth:`RolloutRecorder.emit`, which,
under one lock, numbers the event's payload files, builds the raw event and queues it
for the background writer. The writer thread writes it, then maps it to OTel spans
(:class:`SpanMapper` driving :class:`LiveSpanSink`). The bundle and the spans see the
events in the same order, and the bundle is complete whatever the sampler decided.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.trace import Link, Span, SpanContext, StatusCode, TraceFlags, Tracer
from opentelemetry.trace.status import Status
from opentelemetry.util import types

from otel_rollout._background import BundleSink, PendingEvent, PendingPayload, PendingSpanCall
from otel_rollout._json import encode_compact
from otel_rollout._mapping import Attributes, LinkSpec, SpanMapper, SpanStart, derive_span_id
from otel_rollout._models import (
    PayloadKind,
    RawPayloadKind,
    RawPayloadRef,
    RawTraceEventPayload,
)

logger = logging.getLogger(__name__)

LIVE_SCOPE_NAME = "otel_rollout"
"""Instrumentation scope of the spans recorded live; the bundle exporter skips them."""

_PAYLOAD_KINDS = {kind: RawPayloadKind(type=kind) for kind in PayloadKind}


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
            return SpanContext(self.trace_id, derive_span_id(self.trace_id, key), False, self.flags)
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


class ForwardingSpan(Span):
    """The current span inside a recording context manager, before its real span exists.

    Live spans are built on the writer thread, so the context managers make this
    stand-in current instead. It carries the real span's context, and forwards what
    the app sets on it (attributes, events, links, status, exceptions, a new name) to
    the writer thread, which applies it to the real span before that span ends. Times
    are taken when the app makes the call. ``end()`` does nothing: the recorded event
    ends the span. What is set here goes to the live span only, not to the bundle.
    """

    __slots__ = ("_context", "_key", "_rec")

    def __init__(self, rec: RolloutRecorder, key: str, context: SpanContext) -> None:
        """Stand in for span ``key`` of ``rec``."""
        self._rec = rec
        self._key = key
        self._context = context

    def get_span_context(self) -> SpanContext:
        """The real span's context (its ids are known before it is built)."""
        return self._context

    def is_recording(self) -> bool:
        """Whether calls are kept: the span is sampled and its rollout still records."""
        return self._context.trace_flags.sampled and self._rec.active

    def _forward(self, method: str, *args: Any) -> None:
        if self._context.trace_flags.sampled:
            try:
                self._rec.span_call(self._key, method, args)
            except Exception:  # never raise into the app
                logger.warning("rollout trace: span %s failed", method, exc_info=True)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        """Set one attribute on the real span."""
        self._forward("set_attribute", key, value)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        """Set attributes on the real span."""
        self._forward("set_attributes", dict(attributes))

    def add_event(
        self,
        name: str,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
    ) -> None:
        """Add an event (timestamped now unless given)."""
        self._forward(
            "add_event",
            name,
            dict(attributes) if attributes else None,
            time.time_ns() if timestamp is None else timestamp,
        )

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        """Add a link to ``context``."""
        self._forward("add_link", context, dict(attributes) if attributes else None)

    def update_name(self, name: str) -> None:
        """Rename the real span."""
        self._forward("update_name", name)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """Set the real span's status (an ``OK`` set by the app is final, as in the SDK)."""
        self._forward("set_status", status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """Record ``exception`` as an ``exception`` event (timestamped now unless given)."""
        self._forward(
            "record_exception",
            exception,
            dict(attributes) if attributes else None,
            time.time_ns() if timestamp is None else timestamp,
            escaped,
        )

    def end(self, end_time: int | None = None) -> None:
        """Do nothing: the span ends with its recorded end event."""

    def __repr__(self) -> str:
        """Name the span key."""
        return f"ForwardingSpan({self._key!r})"


class RolloutRecorder:
    """Records one rollout (all its threads): bundle events and live spans, in one order.

    The calling thread only numbers payloads, builds the raw event and queues it. The
    writer thread writes it, then maps it to spans (:meth:`_on_written`), so the
    mapper runs on one thread, in ``seq`` order. Span contexts are known up front
    (ids derive from the raw ids), so the context managers can make a span current
    before the writer thread has created it.
    """

    def __init__(
        self,
        bundle: BundleSink,
        submit: Callable[[PendingEvent | PendingSpanCall, int], bool],
        sink: LiveSpanSink,
        *,
        trace_flags: TraceFlags,
        capture_content: bool,
        content_max_bytes: int,
    ) -> None:
        """Wire a bundle, the writer queue and a live span sink together."""
        manifest = bundle.writer.manifest
        self.bundle = bundle
        self.trace_id = manifest.trace_id
        self.root_thread_id = manifest.root_thread_id
        self.trace_flags = trace_flags
        self._submit = submit
        self.sink = sink
        self._current: dict[str, bytes] = {}
        self.mapper = SpanMapper(
            sink,
            trace_id=manifest.trace_id,
            rollout_id=manifest.rollout_id,
            read_payload=self._read_current_payload,
            capture_content=capture_content,
            content_max_bytes=content_max_bytes,
        )
        bundle.on_written = self._on_written
        bundle.on_span_call = self._on_span_call
        self._lock = threading.Lock()
        self._next_payload = 1
        self.active = True
        """False once the bundle is complete, lost or inherited by a forked child."""
        _track_for_fork(self)

    def _read_current_payload(self, ref: RawPayloadRef) -> bytes | None:
        return self._current.get(ref.path)

    def encode(self, kind: PayloadKind, value: Any) -> PendingPayload | None:
        """Encode a payload body (outside the lock); ``None`` if it is not JSON."""
        try:
            body = encode_compact(value)
        except (TypeError, ValueError, OverflowError) as error:
            logger.warning("rollout trace: payload of kind %s is not JSON: %s", kind.value, error)
            return None
        return PendingPayload(0, kind, body)

    def emit(
        self,
        build: Callable[[Sequence[RawPayloadRef | None]], RawTraceEventPayload],
        thread_id: str | None,
        codex_turn_id: str | None,
        payloads: Sequence[PendingPayload | None] = (),
    ) -> bool:
        """Record one event: number its payloads, build it, queue it (spans follow).

        ``build`` receives one ref per entry of ``payloads`` (``None`` where the entry
        is ``None``). Returns ``False`` when the event was not recorded.
        """
        if not self.active:  # also cleared in a forked child (no getpid per event)
            return False
        with self._lock:
            if not self.active:
                return False
            refs: list[RawPayloadRef | None] = []
            files: list[PendingPayload] = []
            nbytes = 256
            for payload in payloads:
                if payload is None:
                    refs.append(None)
                    continue
                ordinal = self._next_payload
                self._next_payload += 1
                payload.ordinal = ordinal
                refs.append(
                    RawPayloadRef(
                        raw_payload_id=f"raw_payload:{ordinal}",
                        kind=_PAYLOAD_KINDS[payload.kind],
                        path=f"payloads/{ordinal}.json",
                    )
                )
                files.append(payload)
                nbytes += len(payload.body)
            item = PendingEvent(
                self.bundle, tuple(files), build(refs), thread_id, codex_turn_id, time.time_ns()
            )
            if not self._submit(item, nbytes):
                self._lose()
                return False
            return True

    def _on_written(self, item: PendingEvent) -> None:
        """Map one event to live spans (writer thread, in ``seq`` order)."""
        self._current = {f"payloads/{file.ordinal}.json": file.body for file in item.payloads}
        try:
            self.mapper.map_event(
                item.event,
                thread_id=item.thread_id,
                codex_turn_id=item.codex_turn_id,
                time_ns=item.time_ns,
            )
        finally:
            self._current = {}

    def _on_span_call(self, item: PendingSpanCall) -> None:
        self.sink.call(item.key, item.method, item.args)

    def span_call(self, key: str, method: str, args: tuple[Any, ...]) -> None:
        """Queue a call on span ``key``'s real span (a loss never stops the bundle)."""
        if self.active:
            self._submit(PendingSpanCall(self.bundle, key, method, args), 256)

    def _lose(self) -> None:
        """An event could not be queued: stop this bundle so it stays a valid prefix."""
        self.active = False
        self.bundle.stopped = True
        self.bundle.lost_events += 1
        logger.warning(
            "rollout trace: an event could not be queued (the writer queue stayed full, "
            "or the exporter was shut down); recording of %s stopped (events recorded so "
            "far are kept)",
            self.bundle.writer.bundle_dir,
        )

    def close(self) -> None:
        """Stop recording (after ``recording_completed``); later events are ignored."""
        with self._lock:
            self.active = False

    def span_context(self, key: str) -> SpanContext:
        """The context of span ``key`` (its real span may not exist yet)."""
        return SpanContext(
            self.sink.trace_id,
            self.mapper.span_id(key),
            is_remote=False,
            trace_flags=self.trace_flags,
        )


_live_recorders: weakref.WeakSet[RolloutRecorder] = weakref.WeakSet()


def _track_for_fork(recorder: RolloutRecorder) -> None:
    """Make ``recorder`` inactive in any child this process forks (it is the parent's bundle)."""
    _live_recorders.add(recorder)


def _deactivate_in_child() -> None:
    for recorder in list(_live_recorders):
        recorder.active = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_deactivate_in_child)
