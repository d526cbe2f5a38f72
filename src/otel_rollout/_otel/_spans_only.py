"""Bundles from spans alone: GenAI spans that no recording API fed live.

Spans of other instrumentations (or of any pipeline built by ``opentelemetry-instrument``
with ``OTEL_TRACES_EXPORTER=...,rollout_bundle``) reach the exporter only when they
end, children first. :class:`SpansOnlyAssembler` buffers a trace's spans until its
local root span ends (spilling to a file past a size bound); the planner
(:mod:`otel_rollout._otel._spans_plan`) turns them into one plan per rollout, and
:func:`write_plan` writes each plan as a bundle.

Durable while a trace runs: fed by ``RolloutSpanProcessor``, which also reports spans as
they start (:meth:`SpansOnlyAssembler.started`), the assembler checkpoints every trace that
changed, every :data:`CHECKPOINT_INTERVAL_S`, on its own thread: the trace planned with its
open spans as still running, the plan cut before their ends (so the bundle holds everything
that ended, and the starts of what has not, as a killed live recording does), written into a
staging directory and swapped in place of the previous checkpoint. A ``kill -9`` or SIGTERM
then leaves a valid bundle of everything that ended before the latest checkpoint; the
trace's end replaces it with the complete bundle.

Traces of one conversation join: a trace whose work (under no agent run) carries one
``gen_ai.conversation.id`` is planned with the earlier traces of that conversation
(:func:`~otel_rollout._otel._spans_plan.plan_conversation`) into the bundle of the first,
rewritten as each ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
import threading
import time
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
from otel_rollout._bundle._writer import BundleWriter, bundle_dir_name
from otel_rollout._config import CAPTURE_CONTENT_ENV
from otel_rollout._errors import Component
from otel_rollout._otel._ownership import is_trace_owned
from otel_rollout._otel._span_conventions import is_genai
from otel_rollout._otel._spans_plan import (
    RolloutPlan,
    SpanRecord,
    conversation_of,
    plan_conversation,
    plan_rollouts,
    span_record,
)

logger = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
"""Past this many buffered bytes, the biggest trace buffer is spilled to disk."""
_MAX_FLUSHED_TRACES = 4096
MAX_CONVERSATIONS = 256
"""Conversations whose traces are kept to join later ones (the least recent forgotten: a
later trace of a forgotten conversation starts a bundle of its own)."""
MAX_CONVERSATION_SPANS = 10_000
"""A trace that would take a conversation past this many spans starts a bundle of its own
(the conversation's bundle is rewritten whole as each trace joins: this bounds the memory and
the work of one join)."""

_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(SpanRecord)


CHECKPOINT_INTERVAL_S = 0.05
"""How often a running trace's bundle is rewritten, when it changed (processor path)."""
CHECKPOINT_BACKOFF = 10
"""A checkpoint that took ``d`` seconds delays that trace's next one to ``10 * d`` after its
start: at most about a tenth of a core goes to checkpointing a long trace."""
_STILL_OPEN = 2**63 - 1
"""The end time planned for a span still running at a checkpoint (cut off the plan)."""


@dataclass
class _TraceBuffer:
    records: list[SpanRecord] = field(default_factory=list)
    size: int = 0
    spill: Path | None = None
    has_genai: bool = False
    open: dict[int, SpanRecord] = field(default_factory=dict)
    """Spans started and not ended (known through :meth:`SpansOnlyAssembler.started`)."""
    changed: bool = False
    """Changed since its last checkpoint."""
    not_before: float = 0.0
    """``time.monotonic()`` before which it is not checkpointed again."""


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
        self._checkpoints: dict[int, set[str]] = {}
        """Trace id -> the bundle directory names its latest checkpoint wrote."""
        self._write_lock = threading.Lock()
        """Held while a trace's bundles are written (a checkpoint, or the final write)."""
        self._kick = threading.Event()
        """Wakes the background thread before its interval (a trace ended, or closing)."""
        self._closed = False
        self._background: threading.Thread | None = None
        self._ended: list[tuple[int, _TraceBuffer]] = []
        """Traces whose root ended, for the background thread to write (processor path)."""
        self._writing = 0
        self._idle = threading.Condition(self._lock)
        """Notified when the background thread has written every ended trace."""
        self._conversations: dict[str, tuple[int, list[list[SpanRecord]]]] = {}
        """Conversation id -> its first trace id and its ended traces' records, oldest first
        (least recently joined first; guarded by the write lock)."""

    def started(self, span: ReadableSpan) -> None:
        """A span started (the processor path): the trace's checkpoints show it running."""
        context = span.context
        if context is None:
            return
        record = msgspec.structs.replace(span_record(span), end_ns=_STILL_OPEN)
        with self._lock:
            if context.trace_id in self._flushed or self._closed:
                return
            buffer = self._traces.setdefault(context.trace_id, _TraceBuffer())
            buffer.open[record.span_id] = record
            buffer.has_genai = buffer.has_genai or is_genai(record.attributes)
            buffer.changed = True
            self._start_background()

    def _start_background(self) -> None:
        """Start the thread that checkpoints and writes ended traces (hold the lock)."""
        if self._background is None:
            self._background = threading.Thread(
                target=self._background_loop, name="otel-rollout-spans-only", daemon=True
            )
            self._background.start()

    def add(self, spans: Sequence[ReadableSpan], *, background: bool = False) -> None:
        """Buffer finished spans; write the bundles of every trace whose local root ended:
        here, or on the background thread (``background``: the processor path, which runs on
        the app's thread)."""
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
                buffer.open.pop(record.span_id, None)
                buffer.changed = True
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
            if ready and background and not self._closed:
                self._ended.extend(ready)
                self._start_background()
                ready = []
                self._kick.set()
        for trace_id, buffer in ready:
            self._write(trace_id, buffer)

    def flush(self, timeout_s: float) -> bool:
        """Wait until every ended trace is written; ``False`` on timeout."""
        self._kick.set()
        with self._idle:
            return self._idle.wait_for(lambda: not self._ended and not self._writing, timeout_s)

    def close(self) -> None:
        """Write the ended traces, stop the background thread, and write every trace still
        buffered (their roots never ended)."""
        with self._lock:
            self._closed = True
            background = self._background
        self._kick.set()
        if background is not None:
            background.join()
        with self._lock:
            pending = [*self._ended, *self._traces.items()]
            self._ended.clear()
            self._traces.clear()
            self._buffered = 0
        for trace_id, buffer in pending:
            self._write(trace_id, buffer)

    def _background_loop(self) -> None:
        """Write ended traces as they end; checkpoint running ones every interval."""
        while True:
            self._kick.wait(CHECKPOINT_INTERVAL_S)
            self._kick.clear()
            with self._lock:
                ended, self._ended = self._ended, []
                self._writing += len(ended)
                closed = self._closed
            for trace_id, buffer in ended:
                self._write(trace_id, buffer)
            with self._idle:
                self._writing -= len(ended)
                self._idle.notify_all()
            if closed:
                return
            try:
                self._checkpoint()
            except Exception:
                _errors.background_error(Component.SPANS_ONLY, "checkpointing a running trace")

    def _checkpoint(self) -> None:
        """Rewrite the bundles of every running trace that changed since its last checkpoint
        (a trace whose checkpoint took ``d`` waits ``CHECKPOINT_BACKOFF * d`` before the next:
        checkpoints of long traces take a bounded share of a core)."""
        now = time.monotonic()
        with self._lock:
            changed = []
            for trace_id, buffer in self._traces.items():
                if (
                    buffer.changed
                    and buffer.has_genai
                    and buffer.spill is None
                    and buffer.not_before <= now
                ):
                    buffer.changed = False
                    changed.append((trace_id, buffer, [*buffer.records, *buffer.open.values()]))
        for trace_id, buffer, records in changed:
            if is_trace_owned(trace_id):
                continue  # its end leaves it out (and removes its checkpoints)
            started = time.monotonic()
            with self._write_lock:
                with self._lock:
                    if trace_id in self._flushed or self._closed:
                        continue  # its end was written meanwhile
                plans = [_cut(plan) for plan in self._plans(trace_id, records, final=False)]
                try:
                    self._replace(trace_id, plans)
                    elapsed = time.monotonic() - started
                    buffer.not_before = started + elapsed * CHECKPOINT_BACKOFF
                except OSError as error:
                    warn_once(
                        "checkpoint failed",
                        "rollout trace: checkpointing a running trace's bundle failed (%s); "
                        "its bundle is written when the trace ends",
                        error,
                    )

    def _replace(self, trace_id: int, plans: list[RolloutPlan], *, final: bool = False) -> None:
        """Write ``plans`` in place of the trace's previous checkpoint (hold the write lock)."""
        previous = self._checkpoints.pop(trace_id, set())
        staging = self.trace_root / ".staging"
        written: set[str] = set()
        for plan in plans:
            name = bundle_dir_name(plan.trace_id, plan.root_thread_id)
            if not previous and final and not (self.trace_root / name).exists():
                path = self._write_plan(self.trace_root, plan)
            else:
                make_private_dirs(staging)
                scratch = Path(tempfile.mkdtemp(dir=staging))
                path = self._write_plan(scratch, plan)
                if path is not None:
                    path = _swap_in(path, self.trace_root / name, scratch)
            if path is not None:
                written.add(name)
                if final:
                    self.bundles_written.append(path)
        for name in previous - written:  # a checkpoint's rollout the trace no longer has
            shutil.rmtree(self.trace_root / name, ignore_errors=True)
        if not final:
            self._checkpoints[trace_id] = written

    def forget(self, trace_id: int) -> None:
        """A live rollout owns ``trace_id``, whose local root ended: drop what was buffered of
        it (spans that began before the claim), its checkpoints too, counting them left out."""
        with self._lock:
            buffer = self._traces.pop(trace_id, None)
            if buffer is None:
                return
            self._buffered -= buffer.size
            self._mark_flushed(trace_id)
        if buffer.spill is not None:
            buffer.spill.unlink(missing_ok=True)
        self._leave_out(trace_id, len(buffer.records))  # the open ones count as they end

    def _leave_out(self, trace_id: int, spans: int) -> None:
        """A live rollout owns the trace: no bundle of its spans, and none of its checkpoints
        stays (their spans are counted as left out)."""
        _errors.count_spans_left_out(spans)
        with self._write_lock:
            for name in self._checkpoints.pop(trace_id, set()):
                shutil.rmtree(self.trace_root / name, ignore_errors=True)

    def _plans(self, trace_id: int, records: list[SpanRecord], *, final: bool) -> list[RolloutPlan]:
        """The trace's rollouts: its conversation's, joined with the earlier traces of that
        conversation (``final``: kept to join later ones), else one per local root (hold the
        write lock)."""
        conversation = conversation_of(records)
        if conversation is not None:
            first, earlier = self._conversations.get(conversation, (trace_id, []))
            if sum(map(len, earlier)) + len(records) > MAX_CONVERSATION_SPANS:
                first, earlier = trace_id, []
            plan = plan_conversation(first, [*earlier, records])
            if plan is not None:
                if final:
                    self._keep_conversation(conversation, first, [*earlier, records])
                return [plan]
        return list(plan_rollouts(trace_id, records))

    def _keep_conversation(
        self, conversation: str, first: int, traces: list[list[SpanRecord]]
    ) -> None:
        """Keep a conversation's traces to join later ones, the most recent
        :data:`MAX_CONVERSATIONS` (hold the write lock)."""
        self._conversations.pop(conversation, None)
        self._conversations[conversation] = (first, traces)
        if len(self._conversations) > MAX_CONVERSATIONS:
            del self._conversations[next(iter(self._conversations))]

    def _write_plan(self, root: Path, plan: RolloutPlan) -> Path | None:
        return write_plan(
            root,
            plan,
            schema_version=self.schema_version,
            max_bytes=self.max_bytes,
            max_payload_bytes=self.max_payload_bytes,
            redactor=self.redactor,
        )

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
        if is_trace_owned(trace_id):  # a live rollout claimed it after these spans began
            self._leave_out(trace_id, len(records))
            return
        records += buffer.open.values()  # shut down while they run: planned as running
        try:
            with self._write_lock:
                plans = self._plans(trace_id, records, final=True)
                if buffer.open:
                    plans = [_cut(plan) for plan in plans]
                self._replace(trace_id, plans, final=True)
            _warn_about(plans, records)
        except OSError as error:
            logger.warning("rollout trace: writing a bundle from spans failed: %s", error)
        except Exception:
            _errors.background_error(Component.SPANS_ONLY, "building a bundle from spans")


def _warn_about(plans: list[RolloutPlan], records: list[SpanRecord]) -> None:
    """Warn (once per reason) when a GenAI trace gave no bundle, or bundles without content."""
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


def _cut(plan: RolloutPlan) -> RolloutPlan:
    """``plan`` without the ends of spans still running (and so without the rollout's end)."""
    return dataclasses.replace(
        plan, events=tuple(event for event in plan.events if event.time_ns < _STILL_OPEN)
    )


def _swap_in(staged: Path, final: Path, scratch: Path) -> Path:
    """Move the bundle ``staged`` to ``final``, replacing what is there; remove ``scratch``."""
    old = scratch / "previous"
    if final.exists():
        os.rename(final, old)
    os.rename(staged, final)
    shutil.rmtree(scratch, ignore_errors=True)
    return final


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
