"""The per-rollout recorder: one ordered stream of raw events, to the bundle and to live spans.

Every recording call of a rollout goes through :meth:`RolloutRecorder.emit`, which,
under one lock, numbers the event's payload files (schema 2; in schema 3 the writer
thread numbers them), builds the raw event and queues it for the background writer.
The writer thread writes it; the span thread then maps it to OTel spans (:class:`SpanMapper` driving
:class:`LiveSpanSink`). The bundle and the spans see the
events in the same order, and the bundle is complete whatever the sampler decided.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec
from opentelemetry.trace import Span, SpanContext, StatusCode, TraceFlags
from opentelemetry.trace.status import Status
from opentelemetry.util import types

from otel_rollout import _errors
from otel_rollout._bundle import _background
from otel_rollout._bundle._background import (
    BundleSink,
    PendingEvent,
    PendingPayload,
    PendingSpanCall,
    prompt_source,
)
from otel_rollout._bundle._json import encode_compact
from otel_rollout._bundle._models import (
    SCHEMA_2,
    PayloadKind,
    RawPayloadRef,
    RawTraceEventPayload,
    RecordingCompleted,
    RolloutEnded,
    RolloutStatus,
)
from otel_rollout._bundle._payloads import PLACEHOLDER_REFS
from otel_rollout._bundle._redact import Redactor
from otel_rollout._errors import Component
from otel_rollout._otel import _ownership
from otel_rollout._otel._live_spans import LiveSpanSink
from otel_rollout._otel._mapping import ContentEventSink, SpanMapper

logger = logging.getLogger(__name__)

_REQUEST: Final = PayloadKind.INFERENCE_REQUEST
"""(A global: an enum member looked up on its class is a slow class attribute lookup.)"""


class ForwardingSpan(Span):
    """The current span inside a recording context manager, before its real span exists.

    Live spans are built on the span thread, so the context managers make this
    stand-in current instead. It carries the real span's context, and forwards what
    the app sets on it (attributes, events, links, status, exceptions, a new name) to
    the span thread, which applies it to the real span before that span ends. Times
    are taken when the app makes the call. ``end()`` does nothing: the recorded event
    ends the span. What is set here goes to the live span only, not to the bundle.
    """

    __slots__ = ("_context_now", "_key", "_rec")

    def __init__(self, rec: RolloutRecorder, key: str, context: SpanContext | None = None) -> None:
        """Stand in for span ``key`` of ``rec`` (its context derived when first asked for:
        a hash per span that most spans never need)."""
        self._rec = rec
        self._key = key
        self._context_now = context

    @property
    def _context(self) -> SpanContext:
        context = self._context_now
        if context is None:
            context = self._context_now = self._rec.span_context(self._key)
        return context

    @property
    def recorder_pid(self) -> int:
        """The process whose rollout this span belongs to."""
        return self._rec.pid

    def get_span_context(self) -> SpanContext:
        """The real span's context (its ids are known before it is built)."""
        return self._context

    def is_recording(self) -> bool:
        """Whether calls are kept: the span is sampled and its rollout still records."""
        return self._rec.trace_flags.sampled and self._rec.active

    def _forward(self, method: str, *args: Any) -> None:
        if self._rec.trace_flags.sampled:
            try:
                self._rec.span_call(self._key, method, args)
            except Exception:
                _errors.internal_error(Component.RECORDING, f"span {method}")

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
    writer thread writes it, then the span thread maps it to spans (:meth:`_on_written`), so the
    mapper runs on one thread, in ``seq`` order. Span contexts are known up front
    (ids derive from the raw ids), so the context managers can make a span current
    before the span thread has created it.
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
        content_events: ContentEventSink | None = None,
        redactor: Redactor | None = None,
        live_spans: bool = True,
        drop_under_load: bool = False,
    ) -> None:
        """Wire a bundle, the writer queue and a live span sink together.

        ``drop_under_load``: the drop policy (a full writer queue never makes a call
        wait). ``live_spans=False``: nothing would receive the spans (the library's private
        provider feeding only the bundle), so none are built: the span thread is skipped.

        ``redactor`` rewrites every payload body before it is encoded (so before the
        bundle, the schema 3 de-duplication of model items, and the spans see it)."""
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
            content_events=content_events,
        )
        self.redactor = redactor
        self.live_spans = live_spans
        bundle.drop_under_load = drop_under_load
        if live_spans:
            bundle.on_written = self._on_written
            bundle.on_span_call = self._on_span_call
        self._lock = threading.Lock()
        writer = bundle.writer
        self.sharded = writer.schema_version != SCHEMA_2
        """Schema 3 (payloads in zstd shards), not 2 (payload files)."""
        self._new_payload_ref: Callable[[PayloadKind], RawPayloadRef] | None = (
            writer.payloads.new_ref if writer.schema_version == SCHEMA_2 else None
        )
        """Schema 2: numbers payload files here; schema 3: the writer thread numbers them."""
        self.active = True
        """False once the bundle is complete, lost or inherited by a forked child."""
        _ownership.claim_trace(sink.trace_id)
        self._trace_released = False
        self.pid = os.getpid()
        self._open_children: set[str] = set()
        """Child threads started and not ended (they may outlive the root)."""
        self._root_status: RolloutStatus | None = None
        """The root thread's end status, once it ended."""
        self._completing = False
        self._warned_late = False
        _track_for_fork(self)

    def _read_current_payload(self, ref: RawPayloadRef) -> bytes | None:
        return self._current.get(ref.raw_payload_id)

    def encode(self, kind: PayloadKind, value: Any) -> PendingPayload | None:
        """Encode a payload body (outside the lock); ``None`` if it is not JSON.

        A value of a top-level key given pre-encoded (``msgspec.Raw``: an integration's
        bytes, encoded once) is written as is, or decoded first for the redactor; a schema 3
        request's encoded items are also kept for the writer (:func:`prompt_source`)."""
        try:
            if self.redactor is not None:
                value = self.redactor.body(_raw_decoded(value))
            body = encode_compact(value)
        except (TypeError, ValueError, OverflowError) as error:
            logger.warning("rollout trace: payload of kind %s is not JSON: %s", kind.value, error)
            return None
        pending = PendingPayload(kind, body)
        if kind is _REQUEST and self.sharded and self.redactor is None:
            pending.prompt_source = prompt_source(value)  # (redacted: read from the body)
        return pending

    def emit(
        self,
        build: Callable[[Sequence[RawPayloadRef | None]], RawTraceEventPayload],
        thread_id: str | None,
        codex_turn_id: str | None,
        payloads: Sequence[PendingPayload | None] = (),
    ) -> bool:
        """Record one event: number its payloads, build it, queue it (spans follow).

        ``build`` receives one ref per entry of ``payloads`` (``None`` where the entry
        is ``None``). Schema 3: an event with payloads is built by the writer thread, with
        their real refs (a ref names its shard, known only there).
        Returns ``False`` when the event was not recorded.
        """
        if self.active:  # also cleared in a forked child (no getpid per event)
            with self._lock:
                if self.active:
                    return self._emit_locked(build, thread_id, codex_turn_id, payloads)
        self._count_after_stop()  # (it takes the lock)
        return False

    def _emit_locked(
        self,
        build: Callable[[Sequence[RawPayloadRef | None]], RawTraceEventPayload],
        thread_id: str | None,
        codex_turn_id: str | None,
        payloads: Sequence[PendingPayload | None],
    ) -> bool:
        """:meth:`emit` of an active recorder, its lock held."""
        bundle = self.bundle
        counts = bundle.counts
        counts.recorded += 1
        new_ref = self._new_payload_ref
        event: RawTraceEventPayload | None = None
        files: tuple[PendingPayload, ...]
        if not payloads:
            files, nbytes, event = (), 256, build(())
        elif len(payloads) == 1:  # the common event: one payload, or none
            payload = payloads[0]
            if payload is None:
                files, nbytes, event = (), 256, build((None,))
            else:
                files, nbytes = (payload,), 256 + len(payload.body)
                if new_ref is None:  # schema 3: the writer thread builds it (real ref)
                    payload.ref = PLACEHOLDER_REFS[0]
                else:
                    payload.ref = new_ref(payload.kind)
                    event = build((payload.ref,))
        else:
            refs, files, nbytes = self._number(payloads)
            if new_ref is not None:
                event = build(refs)
        item = PendingEvent(
            bundle, files, event, thread_id, codex_turn_id, time.time_ns(),
            build=build if event is None else None, slots=payloads,
        )  # fmt: skip
        if not self._submit(item, nbytes):
            if self.bundle.ended_by_policy:
                counts.dropped_before_queue += 1
                self._end_by_policy()
            else:
                counts.lost_before_queue += 1
                self._lose()
            return False
        return True

    def _number(
        self, payloads: Sequence[PendingPayload | None]
    ) -> tuple[list[RawPayloadRef | None], tuple[PendingPayload, ...], int]:
        """An event's payload refs (schema 2: numbered here), the payloads to write, and
        their size (lock held)."""
        refs: list[RawPayloadRef | None] = []
        files: list[PendingPayload] = []
        nbytes = 256
        new_ref = self._new_payload_ref
        for index, payload in enumerate(payloads):
            if payload is None:
                refs.append(None)
                continue
            ref = payload.ref = (
                PLACEHOLDER_REFS[index] if new_ref is None else new_ref(payload.kind)
            )
            refs.append(ref)
            files.append(payload)
            nbytes += len(payload.body)
        return refs, tuple(files), nbytes

    def _count_after_stop(self) -> None:
        """An event recorded after this bundle stopped or completed: lost (a forked child's
        calls on its parent's bundle are not this process's to count)."""
        if self.pid != os.getpid():
            return
        with self._lock:
            counts = self.bundle.counts
            counts.recorded += 1
            if self.bundle.ended_by_policy:
                counts.dropped_before_queue += 1
            else:
                counts.lost_before_queue += 1
            warn = not self.stopped and not self._warned_late
            self._warned_late = True
        if _background.exit_reported():
            _background.note_loss_after_exit()
            return
        if warn:
            logger.warning(
                "rollout trace: an event was recorded after its rollout %s (a thread that "
                "was not started as a child of it, or one still running past the exit grace "
                "period); it and later ones are counted as lost (otel_rollout.stats())",
                self.bundle.writer.bundle_dir,
            )

    @property
    def stopped(self) -> bool:
        """Whether this bundle stopped before completing (its later events are lost, or
        dropped when the drop policy ended it)."""
        bundle = self.bundle
        return (bundle.stopped or bundle.ended_by_policy) and self.pid == os.getpid()

    def child_started(self, thread_id: str) -> None:
        """A child thread starts: the rollout completes only once it has ended too."""
        with self._lock:
            self._open_children.add(thread_id)

    def thread_ended(self, thread_id: str, status: RolloutStatus) -> RolloutStatus | None:
        """A thread ended; returns the rollout's status when the rollout ends now (the
        root has ended and no child is still open), else ``None``. A root that ends
        before its children waits for them: the last one to end completes the bundle."""
        with self._lock:
            if thread_id == self.root_thread_id and self._root_status is None:
                self._root_status = status
            else:
                self._open_children.discard(thread_id)
            if self._root_status is None or self._completing:
                return None
            if self._open_children:
                _awaiting_children.add(self)
                return None
            self._completing = True
            _awaiting_children.discard(self)
            return self._root_status

    def complete_at_exit(self) -> int:
        """The process exits with children still recording past the grace period: end the
        rollout now (with the root's status); what they record later is counted as lost.
        Returns how many children were still open."""
        with self._lock:
            status, open_children = self._root_status, len(self._open_children)
            if status is None or self._completing:
                return 0
            self._completing = True
            # both under one hold of the lock: no event of a child still recording comes
            # between them (a submit may wait for the writer thread, letting others run)
            if self.active:
                self._emit_locked(lambda _: RolloutEnded(status=status), None, None, ())
            if self.active:
                self._emit_locked(lambda _: RecordingCompleted(), None, None, ())
        self.close()
        return open_children

    def record(
        self,
        build: Callable[[Sequence[RawPayloadRef | None]], RawTraceEventPayload],
        thread_id: str | None,
        codex_turn_id: str | None,
        payload_kind: PayloadKind | None = None,
        payload: Any = None,
        *,
        required: bool = False,
    ) -> bool:
        """Record one event with at most one payload: :meth:`encode` it, then :meth:`emit`.

        ``build`` gets one ref: ``None`` when ``payload_kind`` is ``None`` (no payload)
        or the payload is not JSON; a ``required`` payload that is not JSON skips the
        event instead. Returns whether the event was recorded.
        """
        body = None
        if payload_kind is not None:
            body = self.encode(payload_kind, payload)
            if body is None and required:
                return False
        return self.emit(build, thread_id, codex_turn_id, (body,))

    def _on_written(self, item: PendingEvent) -> None:
        """Map one event to live spans (span thread, in ``seq`` order)."""
        bodies = item.bodies
        self._current = (
            bodies
            if bodies is not None
            else {file.ref.raw_payload_id: file.body for file in item.payloads if file.ref}
        )
        try:
            self.mapper.map_event(
                item.built(),
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
        if self.active and self.live_spans:
            self._submit(PendingSpanCall(self.bundle, key, method, args), 256)

    def _lose(self) -> None:
        """An event could not be queued: stop this bundle so it stays a valid prefix."""
        self.active = False
        self.bundle.stopped = True
        counts = self.bundle.counts
        if _background.exit_reported():
            _background.note_loss_after_exit()
            return
        logger.warning(
            "rollout trace: an event could not be queued (the writer queue stayed full "
            "and the writer made no progress for its stall timeout, or the exporter was "
            "shut down); recording of %s stopped after %d recorded events: this one and "
            "every later one are lost and counted (otel_rollout.stats(); reported at "
            "force_flush() and exit)",
            self.bundle.writer.bundle_dir,
            counts.recorded - 1,
        )

    def _end_by_policy(self) -> None:
        """The drop policy ended this bundle (its queue stayed full past the margin for
        body-less events): a valid prefix; this event and later ones count as dropped."""
        self.active = False  # what is queued is still written: the bundle is a prefix
        logger.warning(
            "rollout trace: the writer queue stayed full under load_policy=drop; recording "
            "of %s ended after %d recorded events (a valid prefix): this one and every later "
            "one are dropped and counted (otel_rollout.stats(); reported at force_flush() "
            "and exit)",
            self.bundle.writer.bundle_dir,
            self.bundle.counts.recorded - 1,
        )

    def close(self) -> None:
        """Stop recording (after ``recording_completed``); later events are ignored.

        The rollout's OTel trace stays owned (:mod:`otel_rollout._otel._ownership`) for
        the foreign spans that end after it."""
        with self._lock:
            self.active = False
            released, self._trace_released = self._trace_released, True
        if not released:
            _ownership.release_trace(self.sink.trace_id)

    def span_context(self, key: str) -> SpanContext:
        """The context of span ``key`` (its real span may not exist yet)."""
        return SpanContext(
            self.sink.trace_id,
            self.mapper.span_id(key),
            is_remote=False,
            trace_flags=self.trace_flags,
        )


def _raw_decoded(value: Any) -> Any:
    """``value`` with its pre-encoded values (``msgspec.Raw``) at the top level, or in a
    list at the top level, decoded, so the redactor sees their text."""
    if type(value) is not dict:
        return value
    decoded = {key: _decoded(item) for key, item in value.items()}
    if all(decoded[key] is item for key, item in value.items()):
        return value
    return decoded


def _decoded(value: Any) -> Any:
    """A pre-encoded value decoded; a list's pre-encoded items decoded (a copy); or ``value``."""
    if type(value) is msgspec.Raw:
        return msgspec.json.decode(value)
    if type(value) is list and any(type(item) is msgspec.Raw for item in value):
        return [msgspec.json.decode(item) if type(item) is msgspec.Raw else item for item in value]
    return value


_live_recorders: weakref.WeakSet[RolloutRecorder] = weakref.WeakSet()
_awaiting_children: weakref.WeakSet[RolloutRecorder] = weakref.WeakSet()
"""Rollouts whose root ended while child threads still record."""
DEFAULT_EXIT_GRACE_S = 2.0
"""How long the exit waits for child threads that outlive their root to end
(``OTEL_ROLLOUT_EXIT_GRACE_S``)."""


def _children_at_exit() -> None:
    """At exit: give children that outlive their root a grace period, then count the rest."""
    if not _awaiting_children:
        return
    from otel_rollout._config import exit_grace_from_env

    grace = exit_grace_from_env()
    grace_s = DEFAULT_EXIT_GRACE_S if grace is None else grace
    deadline = time.monotonic() + grace_s
    while _awaiting_children and time.monotonic() < deadline:
        time.sleep(0.01)
    for recorder in list(_awaiting_children):
        if recorder.pid != os.getpid():
            continue
        open_children = recorder.complete_at_exit()
        if open_children:
            logger.warning(
                "rollout trace: %d child threads of %s were still recording %.1f s after "
                "exit began (OTEL_ROLLOUT_EXIT_GRACE_S); the rollout was ended and what "
                "they record later is counted as lost",
                open_children,
                recorder.bundle.writer.bundle_dir,
                grace_s,
            )


_background.before_exit_flush(_children_at_exit)


def _track_for_fork(recorder: RolloutRecorder) -> None:
    """Make ``recorder`` inactive in any child this process forks (it is the parent's bundle)."""
    _live_recorders.add(recorder)


def _deactivate_in_child() -> None:
    for recorder in list(_live_recorders):
        recorder.active = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_deactivate_in_child)
