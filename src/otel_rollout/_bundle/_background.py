"""The background writer: moves recorded events from the app's threads to disk.

Callers enqueue built events with their payload bytes already encoded; one daemon
thread writes them in order through each bundle's :class:`BundleWriter`, so payloads
precede the events that refer to them. Schema 2: the caller numbered the payload files
(refs are in the event). Schema 3: a ref names its shard, known only here, so the
caller's event holds placeholder refs that the writer thread swaps for the real ones
(numbering each payload, in queue order), adding the prepared prompt of an inference
request; the open shard is sealed :data:`SEAL_DELAY_S` after the oldest event waiting
for it was recorded (or at a flush), then those events are appended. The thread wakes on
the first event after an idle period and writes within :data:`FLUSH_INTERVAL_S`, so an
event is on disk inside the 100 ms durability bound while the writer keeps up.

An app thread that finds :data:`CALLER_DRAIN_ITEMS` items queued writes them itself when
no one else is writing (schema 3, into memory, sealing what is due while its disk is
fast), or else waits briefly while the writer thread does: the two threads take turns
instead of fighting over the GIL (:meth:`BackgroundWriter.submit`).

The load policy: the queue is bounded (memory), and a full queue makes the recording
thread wait for room for as long as the writer makes progress (backpressure: nothing
is lost under load). Only a writer that makes no progress at all for
:data:`DEFAULT_WRITER_STALL_TIMEOUT_S` (a stuck disk; configurable) stops the bundle
being recorded: one warning, the bundle stays a valid prefix, and every event recorded
for it from then on is counted as lost, so the app never hangs. The 100 ms bound holds
while the disk keeps up with the recording rate; a faster producer builds a backlog (up
to the queue bound), then waits for room. The opt-in drop policy never waits: it leaves
payload bodies out (schema 3, counted), then ends the bundle at a valid prefix
(:meth:`BackgroundWriter._submit_dropping`).

Each bundle counts its events (recorded, written, dropped, lost, pending);
:func:`otel_rollout.stats` reads them, and the losses are reported at ``force_flush()``
and at exit.

The same queue carries the app's calls on the current span's stand-in
(:class:`PendingSpanCall`), so each reaches its live span after the event that
started it and before the one that ends it.
"""

from __future__ import annotations

import atexit
import collections
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec

from otel_rollout import _errors
from otel_rollout._bundle._bodies import prompt_from_request, session_metadata_to
from otel_rollout._bundle._json import pretty
from otel_rollout._bundle._models import (
    SCHEMA_3,
    InferenceStarted,
    PayloadKind,
    RawPayloadRef,
    RawTraceEventPayload,
    RecordingCompleted,
)
from otel_rollout._bundle._writer import BundleWriter
from otel_rollout._errors import BundleStats, Component

logger = logging.getLogger(__name__)

_REQUEST: Final = PayloadKind.INFERENCE_REQUEST
_SESSION_METADATA: Final = PayloadKind.SESSION_METADATA
"""(Globals: an enum member looked up on its class costs a slow class attribute lookup, per
payload on the writer's path.)"""

FLUSH_INTERVAL_S = 0.02
"""How long the writer collects a batch after waking up."""
SEAL_DELAY_S = 0.05
"""Schema 3: how long after the oldest unsealed event was recorded its shard is sealed
(the writer batches within :data:`FLUSH_INTERVAL_S`; a flush seals at once)."""
SEAL_DELAY_NS = int(SEAL_DELAY_S * 1e9)
CALLER_DRAIN_ITEMS = 64
"""A recording thread that finds this many items queued writes them itself, when no one
else is writing: schema 3 into memory, then sealing what is due if its disk is fast
(``BackgroundWriter._drain_here``). Otherwise, or when the writer thread's timer has
passed, it waits (up to :data:`HANDOFF_TIMEOUT_S`) while the writer thread writes them
(``BackgroundWriter._yield_to_writer``). Either way the two threads do not run Python at once:
an app thread that never blocks but releases the GIL often (the Agents SDK reads
``os.urandom`` for each span id) would wake a waiting writer thread at each release
without letting it run, and those wake-ups, and the data crossing between cores, can
cost more CPU than the writing."""
HANDOFF_TIMEOUT_S = 0.02
"""How long a recording thread waits for the writer thread's batch at most; a batch or
seal that took longer (a slow disk) stops these waits, and that bundle's seals on
recording threads, until one is quick again."""
SEAL_ITEMS = 256
"""Schema 3: a bundle with this many items written since its last seal is sealed at the
end of the writer's batch, not at its timer: under a high rate the timer would add its
full delay to every event, while a shard of this many events is already large."""
DEFAULT_MAX_QUEUE_EVENTS = 16_384
DEFAULT_MAX_QUEUE_BYTES = 8 * 1024 * 1024
"""Payload bytes queued at most (the producer waits past it): with the batch being
written, what recording holds in memory under load. 8 MiB is ~140 ms of the typical
turn at 20,000 events/s, past the 100 ms bound already; 16 MiB cost ~37 MiB of peak RSS
over 2,000 back-to-back turns against ~21 MiB (benchmarks/load.py)."""
DEFAULT_WRITER_STALL_TIMEOUT_S = 10.0
"""How long the writer may make no progress at all (while a recording thread waits for
room in the full queue) before that bundle stops; ``writer_stall_timeout_s`` of
:class:`~otel_rollout.RolloutBundleSpanExporter`, or ``OTEL_ROLLOUT_WRITER_STALL_TIMEOUT_S``."""
DEFAULT_MAX_WAIT_S = DEFAULT_WRITER_STALL_TIMEOUT_S
"""The old name of :data:`DEFAULT_WRITER_STALL_TIMEOUT_S`."""
EXIT_FLUSH_TIMEOUT_S = 10.0
FINISHED_KEPT = 1024
"""How many finished bundles :func:`otel_rollout.stats` lists one by one (totals are exact)."""
DEFAULT_MAX_SPAN_BACKLOG = 65_536
"""How many events (on disk) may wait for their live spans before a bundle's spans stop."""
_STALL_POLL_S = 0.1
"""How often a waiting recording thread checks the writer's progress."""


class EventCounts:
    """One bundle's event counters. Each counter has one writer at a time: ``recorded`` and
    ``lost_before_queue`` the recording threads (under the recorder's lock), the others
    the drain token's holder (the writer thread, or a recording thread draining)."""

    __slots__ = (
        "abandoned",
        "dropped_before_queue",
        "lost_before_queue",
        "lost_in_writer",
        "path",
        "payloads_dropped",
        "pid",
        "recorded",
        "written",
    )

    def __init__(self, path: str) -> None:
        """Zero counts for the bundle at ``path``."""
        self.path = path
        self.pid = os.getpid()
        self.recorded = 0
        self.written = 0
        self.lost_before_queue = 0
        """Recorded but never queued (the bundle had stopped, or no room in time)."""
        self.lost_in_writer = 0
        """Queued but not written (the bundle had stopped, or its write failed)."""
        self.abandoned = False
        """The process exits with this bundle's queued events unwritten: they are lost."""
        self.dropped_before_queue = 0
        """Recorded after the drop policy ended the bundle (never queued)."""
        self.payloads_dropped = 0
        """Payload bodies the drop policy left out (their events are queued)."""

    def snapshot(self) -> BundleStats:
        """The counts now (pending ones count as lost once abandoned)."""
        written = self.written
        dropped = self.dropped_before_queue
        lost = self.lost_before_queue + self.lost_in_writer
        pending = max(self.recorded - written - dropped - lost, 0)
        if self.abandoned:
            lost, pending = lost + pending, 0
        return BundleStats(
            recorded=self.recorded,
            written=written,
            dropped=dropped,
            lost=lost,
            pending=pending,
            payloads_dropped=self.payloads_dropped,
        )


_counts_lock = threading.Lock()
_open_counts: dict[int, EventCounts] = {}
_finished_counts: collections.deque[tuple[str, BundleStats]] = collections.deque(
    maxlen=FINISHED_KEPT
)
_finished_totals = [0, 0, 0, 0, 0]
"""recorded, written, dropped, lost, payloads dropped over bundles whose sink is gone."""
_reported_lost = 0
"""The total loss last reported (``force_flush()`` reports what is new)."""
_reported_dropped = (0, 0)
"""The drop policy's events and payload bodies dropped, as last reported."""


def _retire(key: int, counts: EventCounts) -> None:
    """A bundle's sink is gone: fold its final counts into the totals."""
    if counts.pid != os.getpid():
        return  # a forked child's copy of the parent's bundle
    final = counts.snapshot()
    with _counts_lock:
        _open_counts.pop(key, None)
        _finished_counts.append((counts.path, final))
        _finished_totals[0] += final.recorded
        _finished_totals[1] += final.written
        _finished_totals[2] += final.dropped
        _finished_totals[3] += final.lost + final.pending
        _finished_totals[4] += final.payloads_dropped


def bundle_stats() -> tuple[dict[str, BundleStats], BundleStats]:
    """Per-bundle counts (open bundles and the latest finished ones) and exact totals."""
    with _counts_lock:
        open_counts = list(_open_counts.values())
        finished = list(_finished_counts)
        recorded, written, dropped, lost, payloads_dropped = _finished_totals
    bundles: dict[str, BundleStats] = {}
    for path, final in finished:
        bundles[path] = final
    pending = 0
    for counts in open_counts:
        snap = counts.snapshot()
        bundles[counts.path] = snap
        recorded += snap.recorded
        written += snap.written
        dropped += snap.dropped
        lost += snap.lost
        pending += snap.pending
        payloads_dropped += snap.payloads_dropped
    totals = BundleStats(
        recorded=recorded,
        written=written,
        dropped=dropped,
        lost=lost,
        pending=pending,
        payloads_dropped=payloads_dropped,
    )
    return bundles, totals


_errors.set_bundle_source(bundle_stats)


def report_new_losses() -> None:
    """Warn once about events lost, and what the drop policy dropped, since the last
    report (``force_flush()``, exit)."""
    global _reported_lost, _reported_dropped
    bundles, totals = bundle_stats()
    with _counts_lock:
        new = totals.lost - _reported_lost
        _reported_lost = totals.lost
        dropped_now = (totals.dropped, totals.payloads_dropped)
        new_dropped = (
            dropped_now[0] - _reported_dropped[0],
            dropped_now[1] - _reported_dropped[1],
        )
        _reported_dropped = dropped_now
    if new > 0:
        where = ", ".join(
            f"{path}: {counts.lost} of {counts.recorded}"
            for path, counts in bundles.items()
            if counts.lost
        )
        logger.warning(
            "rollout trace: %d recorded events were lost (%d in all since start; lost of "
            "recorded per bundle: %s; otel_rollout.stats() has the counts)",
            new,
            totals.lost,
            where,
        )
    if new_dropped[0] > 0 or new_dropped[1] > 0:
        where = ", ".join(
            f"{path}: {counts.payloads_dropped} payload bodies, {counts.dropped} events"
            for path, counts in bundles.items()
            if counts.payloads_dropped or counts.dropped
        )
        logger.warning(
            "rollout trace: load_policy=drop left out %d payload bodies and %d events "
            "(%d and %d in all since start; per bundle: %s; otel_rollout.stats() has the "
            "counts)",
            new_dropped[1],
            new_dropped[0],
            dropped_now[1],
            dropped_now[0],
            where,
        )


class PendingPayload(msgspec.Struct):
    """A payload to write: its kind, JSON bytes and ref (given when its event is recorded).

    Compact JSON when queued; the writer thread turns it into the file's pretty bytes.
    (The queued items are structs: made in C, several per event.)
    """

    kind: PayloadKind
    body: bytes
    ref: RawPayloadRef | None = None
    """Schema 2: given by the bundle's payload writer (``BundleWriter.payloads``) in
    ``emit``. Schema 3: a placeholder (``_payloads.PLACEHOLDER_REFS``) until the writer thread
    writes the payload and puts its real ref here."""
    omitted: int | None = None
    """Set (to the body's size, the body then emptied) when the drop policy left it out."""
    prompt_source: dict[str, Any] | None = None
    """Schema 3, an inference request whose input items came encoded: what its prepared
    prompt is made of (:func:`prompt_source`), read instead of decoding :attr:`body`."""


class PendingSpanCall(msgspec.Struct):
    """A call the app made on a recorded span's stand-in (``set_attribute``, ``add_event``...).

    Queued behind the span's start event; the writer thread applies it to the real span
    (which ends only with a later event), so nothing the app sets is lost.
    """

    bundle: BundleSink
    key: str
    """The mapper's span key (``turn:<id>``, ``tool:<id>``...)."""
    method: str
    args: tuple[Any, ...]


class PendingEvent(msgspec.Struct):
    """One event waiting for the writer thread."""

    bundle: BundleSink
    payloads: tuple[PendingPayload, ...]
    event: RawTraceEventPayload | None
    """The event; ``None`` until the writer thread builds it (:attr:`build`)."""
    thread_id: str | None
    codex_turn_id: str | None
    time_ns: int
    """When it was recorded (wall clock, ns)."""
    bodies: dict[str, bytes] | None = None
    """Set by the writer thread: each payload's body as stored, by payload id (what the
    live spans read, as a replay reads the bundle)."""
    build: Callable[[Sequence[RawPayloadRef | None]], RawTraceEventPayload] | None = None
    """Schema 3, an event with payloads: builds it from one ref per entry of :attr:`slots`
    (the writer thread, once it has written them: a ref names its shard)."""
    slots: Sequence[PendingPayload | None] = ()
    """What :attr:`build` gets a ref of: the event's payloads as recorded (``None``: one
    that was not JSON)."""

    def built(self) -> RawTraceEventPayload:
        """The event, built now from its payloads' refs if it was not yet."""
        build = self.build
        if build is None:
            assert self.event is not None  # (built when recorded)
            return self.event
        self.build = None
        slots = self.slots
        self.event = event = build(
            (slots[0].ref,)
            if len(slots) == 1 and slots[0] is not None
            else [None if slot is None else slot.ref for slot in slots]
        )
        return event


class BundleSink:
    """One bundle as seen by the writer thread: its writer, its loss accounting, and
    what to do with each event once it is on disk (build the live spans)."""

    def __init__(self, writer: BundleWriter) -> None:
        """Wrap an open writer."""
        self.writer = writer
        self.counts = EventCounts(str(writer.bundle_dir))
        """This bundle's event counts (:func:`otel_rollout.stats`)."""
        key = id(self)
        with _counts_lock:
            _open_counts[key] = self.counts
        weakref.finalize(self, _retire, key, self.counts)
        self.stopped = False
        """Set when an event was lost: later events are dropped to keep a valid prefix."""
        self._completed = False
        """``recording_completed`` was written (the writer is closed)."""
        self._sharded = writer.schema_version == SCHEMA_3
        self._discarded = 0
        """How many of ``writer.discarded`` are counted as lost already."""
        self._unmapped: list[PendingEvent | PendingSpanCall] = []
        """Events and span calls written since the last seal, mapped once on disk."""
        self._unmapped_since = 0
        """When the first of them was recorded (wall clock, ns)."""
        self.on_written: Callable[[PendingEvent], None] | None = None
        """Called (span thread) after each event, written or not: maps it to live spans."""
        self.on_span_call: Callable[[PendingSpanCall], None] | None = None
        """Applies a queued span call to its live span (span thread)."""
        self.spans_stopped = False
        """The span thread fell too far behind: this bundle's live spans stopped."""
        self.drop_under_load = False
        """The drop policy: a full queue never makes a recording call wait."""
        self.ended_by_policy = False
        """The drop policy ended this bundle (what was queued is still written)."""
        self.caller_may_write = self._sharded and writer.can_defer_io
        """A recording thread may write this bundle's events (schema 3, no size limits, its
        ``recording_completed`` not queued): :meth:`BackgroundWriter.submit`'s caller drain."""
        self.slow_seal = False
        """The last seal took longer than :data:`HANDOFF_TIMEOUT_S` (a slow disk): the
        next is the writer thread's."""

    def write(self, item: PendingEvent | PendingSpanCall) -> None:
        """Write one event and its payloads (writer thread); keep it for the live spans.

        Schema 3: the event's line goes out when :meth:`end_batch` seals the shard
        holding its payloads. A :class:`PendingSpanCall` is only kept (live spans).
        """
        if type(item) is PendingEvent:
            if self._sharded:
                self._write_sharded(item)
            else:
                self._write(item)
        if not self._unmapped:
            self._unmapped_since = item.time_ns if type(item) is PendingEvent else time.time_ns()
        self._unmapped.append(item)

    def seal_due_in(self, now_ns: int, items: int) -> float:
        """Seconds until this bundle's written events should be sealed, ``items`` of them
        written since its last seal: schema 3 keeps its open shard up to
        :data:`SEAL_DELAY_S` after the oldest of them was recorded (fewer, larger shards for
        slow producers, inside the 100 ms bound), but not past :data:`SEAL_ITEMS` items or a
        full shard; 0 for schema 2 (its events are on disk once written)."""
        if (
            not self._sharded
            or not self._unmapped
            or items >= SEAL_ITEMS
            or self.writer.seal_wanted
        ):
            return 0.0
        return (self._unmapped_since + SEAL_DELAY_NS - now_ns) / 1e9

    def end_batch(self) -> list[PendingEvent | PendingSpanCall]:
        """Finish the batch on disk (schema 3: seal the open shard, appending the events
        waiting for it) and return its events and span calls, in order, for the live
        spans (which the span thread builds: no exporter can delay the disk)."""
        if self._sharded and self.writer.is_active and not self.writer.flush():
            self.writer.close()  # the seal failed and stopped the bundle: its files closed
        self._count_discarded()
        done, self._unmapped = self._unmapped, []
        return done

    def map(self, item: PendingEvent | PendingSpanCall) -> None:
        """Build the live spans of one event or span call (span thread, in order)."""
        if self.spans_stopped:
            return
        if type(item) is PendingSpanCall:
            apply = self.on_span_call
            if apply is not None and self.on_written is not None:
                try:
                    apply(item)
                except Exception:  # the app's value; the bundle and other spans go on
                    logger.warning(
                        "rollout trace: %s on a live span failed", item.method, exc_info=True
                    )
            return
        assert type(item) is PendingEvent
        callback = self.on_written
        if callback is not None:
            try:
                callback(item)
            except Exception:
                self.on_written = None  # this bundle's live spans stop; the bundle goes on
                _errors.background_error(Component.MAPPER, "building live spans")

    def _write(self, item: PendingEvent) -> None:
        if self.stopped or self._completed or self.writer.failure is not None:
            self.counts.lost_in_writer += 1
            return
        for payload in item.payloads:
            # the caller encoded compactly (a cheap snapshot); the file gets Codex's pretty form
            payload.body = pretty(payload.body)
            assert payload.ref is not None  # numbered by RolloutRecorder.emit
            try:
                self.writer.payloads.write(payload.ref, payload.body)
            except OSError as error:
                logger.warning(
                    "rollout trace: writing a payload of %s failed, recording stopped "
                    "(the bundle is valid up to event %d): %s",
                    self.writer.bundle_dir,
                    self.writer.events_written,
                    error,
                )
                self._stop()
                return
            if self.on_written is None:
                payload.body = b""  # on disk, and no live span reads it: memory back
        self._append(item)

    def _write_sharded(self, item: PendingEvent) -> None:
        """Schema 3: write the payloads, build the event with their refs, then append."""
        writer = self.writer
        if self.stopped or self._completed or writer.failure is not None:
            self.counts.lost_in_writer += 1
            item.built()  # (with its placeholder refs: the live spans still map it)
            return
        payloads = item.payloads
        if not payloads:
            self._append(item, 0)
            return
        thread_id = item.thread_id
        bodies: dict[str, bytes] | None = None if self.on_written is None else {}
        request: Any = None
        omitted_request: int | None = None
        ref: RawPayloadRef | None = None
        for payload in payloads:
            kind = payload.kind
            if payload.omitted is not None:  # left out by the drop policy
                ref = writer.write_omitted(kind, payload.omitted)
                if kind is _REQUEST:
                    omitted_request = payload.omitted
            else:
                body = payload.body
                if kind is _REQUEST:
                    if writer.cuts_payloads:
                        request = msgspec.json.decode(body)
                    elif payload.prompt_source is not None:
                        request = payload.prompt_source
                    else:
                        request = _request_for_prompt(body)
                    ref = writer.write_payload(
                        kind, request, encoded=body, thread_id=thread_id, stored=bodies
                    )
                elif kind is _SESSION_METADATA:
                    metadata = session_metadata_to(msgspec.json.decode(body), SCHEMA_3)
                    ref = writer.write_payload(kind, metadata, stored=bodies)
                else:
                    ref = writer.write_payload(kind, None, encoded=body, stored=bodies)
                payload.body = b""  # in the shard now (the live spans read ``bodies``)
            if ref is None:
                self._stop()
                item.built()
                return
            payload.ref = ref
        event = item.built()
        if type(event) is InferenceStarted:
            ref = (
                writer.write_prepared_prompt(thread_id, prompt_from_request(request), stored=bodies)
                if omitted_request is None
                # its request left out: so is the prompt (the request's size standing in)
                else writer.write_omitted(PayloadKind.PREPARED_PROMPT, omitted_request)
            )
            if ref is None:
                self._stop()
                return
            item.event = msgspec.structs.replace(event, prepared_prompt_payload=ref)
        item.bodies = bodies
        # the highest shard its refs name: the last one written (an omitted one names none)
        assert ref is not None
        shard = ref.shard
        self._append(item, shard if type(shard) is int else writer.last_shard)

    def _append(self, item: PendingEvent, highest_shard: int = 0) -> None:
        event = item.event
        assert event is not None  # (built by now)
        if not self.writer.append_event(
            event,
            thread_id=item.thread_id,
            codex_turn_id=item.codex_turn_id,
            wall_time_unix_ms=item.time_ns // 1_000_000,
            highest_shard=highest_shard,
        ):
            self._stop()
            return
        self.counts.written += 1
        if type(event) is RecordingCompleted:
            self._completed = True
            self.writer.close()
            self._count_discarded()

    def _count_discarded(self) -> None:
        """Events the writer accepted and then could not write (a failed shard or line
        write) move from written to lost, each one counted."""
        discarded = self.writer.discarded - self._discarded
        if discarded > 0:
            self._discarded += discarded
            self.counts.written -= discarded
            self.counts.lost_in_writer += discarded

    @property
    def lost_events(self) -> int:
        """Events recorded for this bundle that will never be written (so far)."""
        return self.counts.snapshot().lost

    def _stop(self) -> None:
        """Stop this bundle after a failed write: its files closed, what waits counted lost."""
        self.counts.lost_in_writer += 1
        self.stopped = True
        self.writer.close()  # the event log's descriptor too: nothing more is written
        self._count_discarded()


class _RequestView(msgspec.Struct):
    """What a prepared prompt takes from an inference request; its input items raw."""

    input: list[msgspec.Raw] | None = None
    tools: Any = None
    parallel_tool_calls: Any = False


_request_view = msgspec.json.Decoder(_RequestView)


def _request_for_prompt(body: bytes) -> Any:
    """The request ``body`` as :func:`prompt_from_request` reads it, its input items left
    as their JSON (``msgspec.Raw``: not decoded here nor encoded again for the shard,
    whose model item records are those very bytes). A request of another shape is
    decoded whole."""
    try:
        view = _request_view.decode(body)
    except msgspec.ValidationError:
        return msgspec.json.decode(body)
    tools, parallel = view.tools, view.parallel_tool_calls
    return {"input": view.input, "tools": tools, "parallel_tool_calls": parallel}


def prompt_source(request: Any) -> dict[str, Any] | None:
    """What :func:`_request_for_prompt` would read from ``request``'s JSON, taken from
    ``request`` itself, when its input items are each given encoded (``msgspec.Raw``, as an
    integration that encodes them once passes them) and its tools encoded or absent: a
    snapshot (the app may change its objects later), kept with the queued payload so the
    writer need not decode the request. ``None`` for any other request."""
    if type(request) is not dict:
        return None
    items = request.get("input")
    tools = request.get("tools")
    parallel = request.get("parallel_tool_calls", False)
    if (
        type(items) is not list
        or (tools is not None and (type(tools) is not msgspec.Raw or tools == _NULL))
        or type(parallel) is not bool
    ):
        return None
    for item in items:
        if type(item) is not msgspec.Raw:
            return None
    return {"input": list(items), "tools": tools, "parallel_tool_calls": parallel}


_NULL: Final = msgspec.Raw(b"null")

_KEPT_UNDER_LOAD = frozenset({_REQUEST, _SESSION_METADATA})
"""Payload kinds the drop policy never leaves out."""


def _write_item(sink: BundleSink, item: PendingEvent | PendingSpanCall) -> None:
    """Write one queued item into its bundle (the token's holder: writer or app thread)."""
    try:
        sink.write(item)
    except Exception:  # never let one bad event kill the writer thread, or reach the app
        sink.stopped = True
        if type(item) is PendingEvent:
            sink.counts.lost_in_writer += 1
        _errors.background_error(Component.WRITER, "writing an event")


class BackgroundWriter:
    """A bounded queue drained by one daemon thread (started on first use), or a batch at
    a time by a recording thread (:data:`CALLER_DRAIN_ITEMS`)."""

    def __init__(
        self,
        *,
        max_events: int = DEFAULT_MAX_QUEUE_EVENTS,
        max_bytes: int = DEFAULT_MAX_QUEUE_BYTES,
        stall_timeout_s: float = DEFAULT_WRITER_STALL_TIMEOUT_S,
        max_span_backlog: int = DEFAULT_MAX_SPAN_BACKLOG,
    ) -> None:
        """Create an idle writer; the thread starts with the first event.

        ``stall_timeout_s``: how long a recording thread waits for room in the full
        queue while the writer makes no progress at all, before its event is lost."""
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.stall_timeout_s = stall_timeout_s
        self.lost_events = 0
        """Events that could not be queued (the writer stalled), over all bundles."""
        self.full_waits = 0
        """Submissions that found the queue full and waited (backpressure)."""
        self.max_span_backlog = max_span_backlog
        self._init_state()
        _live_writers.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._queue: collections.deque[PendingEvent | PendingSpanCall] = collections.deque()
        self._queued_bytes = 0
        self._submitted = 0
        self._written = 0
        """Queued items now done: on disk (their batch sealed), or lost."""
        self._seal_requested = False
        """A flush wants every open shard sealed now (not at its seal timer)."""
        self._thread: threading.Thread | None = None
        self._first_at = 0.0
        """When the oldest queued event arrived (monotonic seconds)."""
        self._closed = False
        self._pid = os.getpid()
        self._progress_at = time.monotonic()
        """When the writer thread last took a batch or wrote an event (monotonic seconds)."""
        self._spans = SpanWorker(self.max_span_backlog)
        self._passes = 0
        """How many times the writer thread went (back) to waiting."""
        self._yielding = 0
        """Recording threads waiting for it to do so (:meth:`_yield_to_writer`)."""
        self._wakes_at = math.inf
        """When the writer thread's timer fires (monotonic; ``inf``: no timer, or working)."""
        self._handoff_requested = False
        """A recording thread waits for the next batch: take it now."""
        self._handoff_slow = False
        """The last batch took longer than :data:`HANDOFF_TIMEOUT_S`: no waiting for one."""
        self._idle = False
        """The writer thread waits with no timer: only a notification wakes it."""
        self._token_wanted = False
        """The writer thread waits for a caller drain to end."""
        self._room_waiters = 0
        """Recording threads waiting for room in the full queue (:meth:`_wait_for_room`)."""
        self._drained = False
        """A caller drain ended since the writer thread last had nothing to do: it keeps a
        timer (:data:`SEAL_DELAY_S`) instead of going idle, so the next drain's unsealed
        items need no hand-over to start one."""
        self._draining = False
        """The drain token: the writer thread (writing a batch, sealing) or a recording
        thread (a caller drain) holds it; each writes a bundle's items in queue order."""
        self._unsealed: dict[BundleSink, int] = {}
        """Bundles with items written since their last seal (schema 3: not yet on disk),
        and how many (changed by the token's holder, under the lock)."""

    def submit(self, item: PendingEvent | PendingSpanCall, nbytes: int) -> bool:
        """Queue ``item`` (``nbytes`` of payload); wait for room if the queue is full.

        Returns ``False`` when the event was lost (closed writer, or no room in time).
        """
        with self._lock:  # the condition's lock (cheaper than the Condition's __enter__)
            if self._closed:
                return False
            if self._thread is None:
                self._start()
            queue = self._queue
            if queue and (
                len(queue) >= self.max_events or self._queued_bytes + nbytes > self.max_bytes
            ):  # full (an empty queue takes any item): the policy decides
                if item.bundle.drop_under_load:
                    return self._submit_dropping(item)
                if not self._wait_for_room(nbytes):
                    return False
            if queue:
                queue.append(item)
            else:
                self._first_at = time.monotonic()
                queue.append(item)
                if self._idle:  # (else its timer finds the item)
                    if item.bundle.drop_under_load:  # (that policy never waits)
                        self._cond.notify_all()
                    else:
                        self._yield_to_writer()
            self._queued_bytes += nbytes
            self._submitted += 1
            if type(item) is PendingEvent and type(item.event) is RecordingCompleted:
                item.bundle.caller_may_write = False  # its last items are the writer thread's
            timer_fired = time.monotonic() >= self._wakes_at  # (it waits for the GIL)
            if len(queue) < CALLER_DRAIN_ITEMS and not timer_fired:
                return True
            batch = None
            if not timer_fired and not self._draining and not self._seal_requested:
                batch = self._take_for_caller()
            if batch is None:
                if not item.bundle.drop_under_load:  # (that policy never waits)
                    if not timer_fired:
                        self._handoff_requested = True  # (else it woke for its timer)
                    self._yield_to_writer()
                return True
        self._drain_here(batch)
        return True

    def _take_for_caller(self) -> list[PendingEvent | PendingSpanCall] | None:
        """The queue as a caller drain's batch, the token taken (lock held); ``None`` when
        an item needs the writer thread: schema 2 (payload files), size limits, the drop
        policy (its calls only queue), a full open shard, the event that closes the bundle."""
        queue = self._queue
        checked = None
        for item in queue:
            sink = item.bundle
            if sink is checked:  # (a bundle's items come in runs: each run checked once)
                continue
            if not sink.caller_may_write or sink.drop_under_load or sink.writer.seal_wanted:
                return None
            checked = sink
        batch = list(queue)
        queue.clear()
        self._queued_bytes = 0
        self._draining = True
        self._progress_at = time.monotonic()
        if self._room_waiters:  # (else no one to wake: not the writer thread, which would
            self._cond.notify_all()  # find the token taken and wait for it)
        return batch

    def _drain_here(self, batch: list[PendingEvent | PendingSpanCall]) -> None:
        """Write ``batch`` on this (recording) thread, then seal the bundles due for it
        whose disk is fast (the writer thread's timer seals the others); the token is
        released after. No disk write happens before those seals."""
        unsealed = self._unsealed  # (only the token's holder changes it)
        written: dict[BundleSink, int] = {}
        sealed: list[BundleSink] = []
        finished = 0
        try:
            try:
                for item in batch:
                    sink = item.bundle
                    count = written.get(sink)
                    if count is None:
                        sink.writer.defer_io = True
                        count = unsealed.get(sink, 0)
                    written[sink] = count + 1
                    _write_item(sink, item)
            finally:
                for sink in written:
                    sink.writer.defer_io = False
            now_ns = time.time_ns()
            for sink, count in written.items():
                if sink.seal_due_in(now_ns, count) <= 0 and not sink.slow_seal:
                    self._seal(sink)
                    sealed.append(sink)
                    finished += count
        finally:
            with self._cond:
                for sink, count in written.items():
                    unsealed[sink] = count
                for sink in sealed:
                    del unsealed[sink]
                self._written += finished
                self._draining = False
                self._drained = True
                self._progress_at = time.monotonic()
                if self._token_wanted or (self._idle and unsealed):
                    self._yield_to_writer()  # its turn, or a seal timer to start

    def _seal(self, sink: BundleSink) -> None:
        """Seal one bundle's written items onto the disk (the token held) and hand them to
        the span thread."""
        started = time.monotonic()
        try:
            done = sink.end_batch()
        except Exception:
            sink.stopped = True
            done = sink._unmapped
            sink._unmapped = []
            _errors.background_error(Component.WRITER, "sealing a batch")
        self._progress_at = now = time.monotonic()
        sink.slow_seal = now - started > HANDOFF_TIMEOUT_S
        if done and sink.on_written is not None:
            self._spans.put(sink, done)

    def _yield_to_writer(self) -> None:
        """Wake the writer thread and wait (lock held) until it is waiting again, having
        done what it woke for (with ``_handoff_requested``: written the queue), at most
        :data:`HANDOFF_TIMEOUT_S`: it gets the GIL at once, and this thread, the one that
        would keep it from the writer, waits without spinning. No wait after one timed
        out, until the writer thread's next quick batch."""
        self._cond.notify_all()
        if self._handoff_slow or self._closed or threading.current_thread() is self._thread:
            return
        passes = self._passes
        deadline = time.monotonic() + HANDOFF_TIMEOUT_S
        self._yielding += 1
        try:
            while self._passes == passes and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._handoff_slow = True
                    return
                self._cond.wait(remaining)
        finally:
            self._yielding -= 1

    def _writer_wait(self, timeout: float | None = None) -> None:
        """The writer thread waits (lock held), first letting a yielding recording thread go."""
        self._passes += 1
        if self._yielding:
            self._cond.notify_all()
        self._cond.wait(timeout)

    def _wait_for_room(self, nbytes: int) -> bool:
        """Backpressure (lock held): wait while the writer makes progress; give up only
        after ``stall_timeout_s`` without any (measured from when this wait began at the
        earliest, so an idle writer that just woke up is not "stalled"). ``False``: the
        event is lost (counted) or the writer closed."""
        began = time.monotonic()
        self.full_waits += 1
        self._room_waiters += 1
        try:
            while not self._has_room(nbytes) and not self._closed:
                now = time.monotonic()
                stalled_for = now - max(self._progress_at, began)
                if stalled_for >= self.stall_timeout_s:
                    self.lost_events += 1
                    return False
                self._cond.notify_all()
                self._cond.wait(min(self.stall_timeout_s - stalled_for, _STALL_POLL_S))
        finally:
            self._room_waiters -= 1
        return not self._closed

    def _submit_dropping(self, item: PendingEvent | PendingSpanCall) -> bool:
        """The drop policy, the queue full (lock held): never wait. Schema 3 leaves the
        payload bodies out (each counted; its ref will say ``capture: omitted``) and
        queues the event, up to twice the queue's bounds; past them the bundle ends at a
        valid prefix (``False``: this event is dropped). Span calls are dropped.

        Kept: inference requests (Codex's reducer reads conversation history through
        each prepared prompt; one left out changes how 0.171.0 links the next) and
        session metadata."""
        sink = item.bundle
        if type(item) is not PendingEvent:
            return True  # a call on a live span: dropped (spans are not the bundle)
        kept = 256
        dropped = 0
        if sink._sharded:
            for payload in item.payloads:
                if payload.kind in _KEPT_UNDER_LOAD or payload.omitted is not None:
                    kept += len(payload.body)
                else:
                    dropped += 1
        if (
            not sink._sharded  # schema 2 cannot say a payload was left out
            or len(self._queue) >= 2 * self.max_events
            or self._queued_bytes + kept > 2 * self.max_bytes
        ):
            sink.ended_by_policy = True
            return False
        for payload in item.payloads:
            if payload.kind not in _KEPT_UNDER_LOAD and payload.omitted is None:
                payload.omitted = len(payload.body)
                payload.body = b""
        sink.counts.payloads_dropped += dropped
        self._queue.append(item)
        self._queued_bytes += kept
        self._submitted += 1
        return True

    def _has_room(self, nbytes: int) -> bool:
        if not self._queue:
            return True
        return len(self._queue) < self.max_events and self._queued_bytes + nbytes <= self.max_bytes

    def _start(self) -> None:
        thread = threading.Thread(target=self._run, name="otel-rollout-writer", daemon=True)
        self._thread = thread
        thread.start()
        _register_atexit()

    def _seal_due_in(self, now_ns: int) -> float:
        """Seconds until the first unsealed bundle is due for its seal (lock held)."""
        return min(sink.seal_due_in(now_ns, items) for sink, items in self._unsealed.items())

    def _run(self) -> None:
        cond = self._cond
        unsealed = self._unsealed
        while True:
            with cond:
                while True:
                    if self._draining:  # a recording thread writes a batch: its turn
                        self._token_wanted = True
                        self._wakes_at = math.inf
                        self._writer_wait()
                        self._token_wanted = False  # (wanted again while still taken)
                        continue
                    if self._closed or self._seal_requested or self._handoff_requested:
                        break
                    # a batch FLUSH_INTERVAL_S after its first event arrived, or a backlog
                    # at once; a seal when due (flush() and a waiting recording thread cut
                    # these short)
                    due = math.inf
                    now = time.monotonic()
                    if self._queue:
                        due = self._first_at + FLUSH_INTERVAL_S - now
                    if unsealed:
                        due = min(due, self._seal_due_in(time.time_ns()))
                    if due <= 0:
                        break
                    if due == math.inf and self._drained:  # recording threads drain: a
                        self._drained = False  # timer while they go on (it wakes before
                        due = SEAL_DELAY_S  # any of their items is due)
                    if due == math.inf:
                        self._idle = True
                        self._wakes_at = math.inf
                        self._writer_wait()
                        self._idle = False
                    else:
                        self._wakes_at = now + due
                        self._writer_wait(due)
                self._token_wanted = False
                if not self._queue and self._closed and not unsealed:
                    return
                self._wakes_at = math.inf
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
                seal_all = self._seal_requested or self._closed
                self._seal_requested = False
                self._handoff_requested = False
                self._draining = True
                self._progress_at = started = time.monotonic()
                cond.notify_all()  # room for waiting producers
            finished = 0
            try:
                for item in batch:
                    sink = item.bundle
                    unsealed[sink] = unsealed.get(sink, 0) + 1
                    _write_item(sink, item)
                    self._progress_at = time.monotonic()  # (a plain store: read unlocked)
                now_ns = time.time_ns()
                for sink, items in list(unsealed.items()):
                    if not seal_all and sink.seal_due_in(now_ns, items) > 0:
                        continue  # a short seal timer: fewer, larger shards for slow producers
                    del unsealed[sink]
                    finished += items
                    self._seal(sink)
            finally:
                with cond:
                    self._written += finished
                    self._draining = False
                    self._handoff_slow = time.monotonic() - started > HANDOFF_TIMEOUT_S
                    cond.notify_all()

    def flush(self, timeout_s: float = 30.0, *, spans: bool = True) -> bool:
        """Wait until everything queued so far is written, then (``spans``) until its live
        spans are built and ended; ``False`` on timeout."""
        deadline = time.monotonic() + timeout_s
        current = threading.current_thread()
        if current is self._spans.thread:
            return True  # an exporter flushing from inside span building
        with self._cond:
            if self._pid != os.getpid() or current is self._thread:
                return True  # nothing of ours to flush / the writer cannot wait for itself
            target = self._submitted
            self._seal_requested = True
            self._cond.notify_all()
            while self._written < target:
                if self._thread is None or not self._thread.is_alive():
                    if self._queue:
                        return False
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
                self._seal_requested = True
                self._cond.notify_all()
        return not spans or self._spans.flush(deadline)

    def close(self, timeout_s: float = 30.0) -> bool:
        """Flush, then stop the thread; later submissions are lost. Idempotent."""
        flushed = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            thread = self._thread
        self._spans.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        return flushed

    def _after_fork_in_child(self) -> None:
        """Forget the parent's queue and thread: the child never writes what the parent queued."""
        self._init_state()


class SpanWorker:
    """The span thread: builds (and so exports) the live spans of batches already on disk.

    Off the writer thread, so no span processor or exporter, slow or blocked, can delay
    an event reaching the disk. Its backlog is bounded (:data:`DEFAULT_MAX_SPAN_BACKLOG`
    events): past it, the live spans of the bundle whose batch does not fit stop (one
    warning); its bundle goes on.
    """

    def __init__(self, max_backlog: int) -> None:
        """An idle worker; its thread starts with the first batch."""
        self.max_backlog = max_backlog
        self._cond = threading.Condition(threading.Lock())
        self._queue: collections.deque[tuple[BundleSink, list[PendingEvent | PendingSpanCall]]]
        self._queue = collections.deque()
        self._backlog = 0
        self._put = 0
        self._done = 0
        self._closed = False
        self.thread: threading.Thread | None = None

    def close(self) -> None:
        """Let the thread end once its queue is empty (after the writer thread ended)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def put(self, sink: BundleSink, items: list[PendingEvent | PendingSpanCall]) -> None:
        """Queue one bundle's batch (writer thread; never waits)."""
        with self._cond:
            if self._backlog + len(items) > self.max_backlog:
                if not sink.spans_stopped:
                    sink.spans_stopped = True
                    logger.warning(
                        "rollout trace: live spans of %s stopped: span building and export "
                        "are %d events behind the bundle (a slow or blocked span exporter?); "
                        "the bundle goes on",
                        sink.writer.bundle_dir,
                        self._backlog,
                    )
                return
            if self.thread is None:
                self.thread = threading.Thread(
                    target=self._run, name="otel-rollout-spans", daemon=True
                )
                self.thread.start()
            self._queue.append((sink, items))
            self._backlog += len(items)
            self._put += 1
            self._cond.notify_all()

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue and not self._closed:
                    cond.wait()
                if not self._queue:
                    return
                sink, items = self._queue.popleft()
            for item in items:
                sink.map(item)
            with cond:
                self._backlog -= len(items)
                self._done += 1
                cond.notify_all()

    def flush(self, deadline: float) -> bool:
        """Wait until every batch queued so far has its spans built; ``False`` at ``deadline``."""
        with self._cond:
            target = self._put
            while self._done < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True


_live_writers: weakref.WeakSet[BackgroundWriter] = weakref.WeakSet()
_atexit_registered = False
_atexit_lock = threading.Lock()


def _register_atexit() -> None:
    global _atexit_registered
    with _atexit_lock:
        if not _atexit_registered:
            atexit.register(_flush_all_at_exit)
            if hasattr(os, "register_at_fork"):
                os.register_at_fork(after_in_child=_after_fork_in_child)
            _atexit_registered = True


def flush_all(timeout_s: float = 30.0) -> bool:
    """Flush every writer of this process; ``False`` if one timed out.

    Raises:
        Exception: in strict mode, the first internal error of a background thread.
    """
    flushed = all([writer.flush(timeout_s) for writer in list(_live_writers)])
    report_new_losses()
    _errors.raise_pending()
    return flushed


_before_exit: list[Callable[[], None]] = []
_exit_reported = False
"""The exit report is out: later losses (daemon threads still recording) are reported
by :func:`note_loss_after_exit`."""
_losses_after_exit = 0


def exit_reported() -> bool:
    """Whether the exit report is out (the interpreter is exiting)."""
    return _exit_reported


def note_loss_after_exit() -> None:
    """Count an event lost after the exit report (a daemon thread still recording while
    the interpreter exits) and report the count at 1, 2, 4, 8, ... such events, so the
    last line printed before the process ends is at least half the true count."""
    global _losses_after_exit
    if not _exit_reported:
        return
    with _counts_lock:
        _losses_after_exit += 1
        count = _losses_after_exit
    if count & (count - 1) == 0:
        logger.warning(
            "rollout trace: %d events recorded after the exit report by threads still "
            "running were lost (reported at each power of two)",
            count,
        )


def before_exit_flush(hook: Callable[[], None]) -> None:
    """Run ``hook`` at exit before the final flush (children that outlive their root)."""
    _before_exit.append(hook)


def _flush_all_at_exit() -> None:
    """Write what is still queued before the interpreter exits; report every loss."""
    for hook in _before_exit:
        try:
            hook()
        except Exception:
            _errors.background_error(Component.WRITER, "exit hook")
    timed_out = False
    writers = [writer for writer in list(_live_writers) if writer._pid == os.getpid()]
    for writer in writers:
        if not writer.flush(EXIT_FLUSH_TIMEOUT_S, spans=False):
            timed_out = True
    if timed_out:
        logger.warning(
            "rollout trace: events still queued at exit after %.0f s were not written",
            EXIT_FLUSH_TIMEOUT_S,
        )
        with _counts_lock:
            for counts in _open_counts.values():
                counts.abandoned = True
    global _exit_reported
    for writer in writers:  # what daemon threads record from now on is lost, and counted
        with writer._cond:
            writer._closed = True
            writer._cond.notify_all()
        writer.flush(EXIT_FLUSH_TIMEOUT_S, spans=False)  # what they queued meanwhile
    report_new_losses()
    _exit_reported = True
    for writer in writers:  # the bundles are on disk: now give the live spans their time
        if not writer.flush(EXIT_FLUSH_TIMEOUT_S):
            logger.warning("rollout trace: live spans still being built at exit were not ended")


def _after_fork_in_child() -> None:
    global _reported_lost, _reported_dropped
    with _counts_lock:  # the parent's bundles are the parent's to count
        _open_counts.clear()
        _finished_counts.clear()
        _finished_totals[:] = [0, 0, 0, 0, 0]
        _reported_lost = 0
        _reported_dropped = (0, 0)
    for writer in list(_live_writers):
        writer._after_fork_in_child()
