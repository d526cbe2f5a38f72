"""The one mapping from raw trace events to OpenTelemetry spans, span events and links.

:class:`SpanMapper` consumes raw events in ``seq`` order (live, as they are recorded,
or replayed from a bundle) and drives a :class:`SpanSink` with span starts, span
events, attributes, links and span ends. Span ids derive from the rollout's trace id
and the raw objects' ids (:func:`derive_span_id`), so a replayed bundle reproduces
the span ids of its live export wherever the library owned the id generator.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from otel_rollout import semconv as sc
from otel_rollout._bundle import _messages
from otel_rollout._bundle._json import encode_compact
from otel_rollout._bundle._models import (
    AgentResultObserved,
    AgentSummary,
    CaptureStatus,
    CodeCellEnded,
    CodeCellInitialResponse,
    CodeCellRequester,
    CodeCellRuntimeStatus,
    CodeCellStarted,
    CodexTurnEnded,
    CodexTurnStarted,
    CompactionInstalled,
    CompactionRequestCompleted,
    CompactionRequestFailed,
    CompactionRequestStarted,
    ExecutionStatus,
    HistoryItemAccepted,
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceStarted,
    McpKind,
    McpToolCallCorrelationAssigned,
    OtherKind,
    PayloadCapture,
    ProtocolEventObserved,
    RawPayloadRef,
    RawTraceEvent,
    RawTraceEventPayload,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    StdinTargetResolved,
    ThreadEnded,
    ThreadStarted,
    ToolCallEnded,
    ToolCallKind,
    ToolCallRuntimeEnded,
    ToolCallRuntimeStarted,
    ToolCallStarted,
)
from otel_rollout._bundle._redact import Redactor
from otel_rollout._config import DEFAULT_CONTENT_MAX_BYTES

Attributes = dict[str, AttributeValue]
PayloadReader = Callable[[RawPayloadRef], "bytes | None"]
"""Returns the exact bytes of a payload file, or ``None`` when it is unavailable."""
ContentEventSink = Callable[[int, str, "dict[str, Any]", int], None]
"""Emits a content log event: (span id, event name, attributes, time in ns)."""

_HTTP_STATUS = re.compile(r"\bHTTP(?:/[\d.]+)?[ :]+(\d{3})\b", re.IGNORECASE)
_EXCEPTION_PREFIX = re.compile(r"^([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::|$)")
_EXCEPTION_SUFFIXES = ("Error", "Exception", "Timeout", "Interrupt", "Exit", "Failure")

_EDGE_KIND_BY_TOOL_KIND = {
    "spawn_agent": sc.EDGE_SPAWN_AGENT,
    "assign_agent_task": sc.EDGE_ASSIGN_AGENT_TASK,
    "send_message": sc.EDGE_SEND_MESSAGE,
    "close_agent": sc.EDGE_CLOSE_AGENT,
}


_LEAF_PREFIXES = ("inference:", "tool:", "compaction_request:", "agent_result:")


def trace_id_from_uuid(trace_id: str) -> int:
    """Return the OTel trace id (128-bit int) of a bundle ``trace_id`` UUID string."""
    return uuid.UUID(trace_id).int


def uuid_from_trace_id(trace_id: int) -> str:
    """Return an OTel trace id written as a UUID string (the bundle's ``trace_id``)."""
    return str(uuid.UUID(int=trace_id))


def derive_span_id(trace_id: int, key: str) -> int:
    """Return the span id of the raw object ``key`` in the trace ``trace_id``.

    ``key`` is the mapper's span key (see :class:`SpanMapper`). The id is the first
    8 bytes of ``sha256("<trace id as 32 hex digits>/<key>")``, never 0.
    """
    digest = hashlib.sha256(f"{trace_id:032x}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def derived_span_context(trace_id: int, key: str, flags: TraceFlags) -> SpanContext:
    """The context of the span ``key`` with its derived id (see :func:`derive_span_id`)."""
    return SpanContext(trace_id, derive_span_id(trace_id, key), False, flags)


@dataclass(slots=True)
class LinkSpec:
    """A link from one mapped span to another, by span key."""

    target: str
    attributes: Attributes


@dataclass(slots=True)
class SpanStart:
    """Everything needed to start one span."""

    key: str
    span_id: int
    parent: str | None
    """Key of the parent span; ``None`` for the root thread (the sink picks the outer parent)."""
    name: str
    kind: SpanKind
    start_time_ns: int
    attributes: Attributes
    links: list[LinkSpec] = field(default_factory=list)


class SpanSink(Protocol):
    """Receives the mapper's output. Keys name spans the mapper started earlier."""

    def start_span(self, start: SpanStart) -> None:
        """Start a span."""

    def add_event(self, key: str, name: str, attributes: Attributes, time_ns: int) -> None:
        """Add a span event to an open span."""

    def set_attributes(self, key: str, attributes: Attributes) -> None:
        """Set attributes on an open span."""

    def add_link(self, key: str, link: LinkSpec) -> None:
        """Add a link to an open span."""

    def end_span(
        self, key: str, status: StatusCode, description: str | None, end_time_ns: int
    ) -> None:
        """End an open span with a status."""


# --- lenient views of the payload bodies the mapping reads ---


class _ThreadSpawn(msgspec.Struct):
    parent_thread_id: str | None = None


class _SubAgent(msgspec.Struct):
    thread_spawn: _ThreadSpawn | None = None


class _SessionSource(msgspec.Struct):
    subagent: _SubAgent | None = None


class _ThreadMetadata(msgspec.Struct):
    agent_path: str | None = None
    nickname: str | None = None
    model: str | None = None
    provider_name: str | None = None
    session_source: Any = None


class _TokenUsage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    reasoning_output_tokens: int | None = None


class _ItemType(msgspec.Struct):
    type: str | None = None


class _InferenceResponse(msgspec.Struct):
    token_usage: _TokenUsage | None = None
    output_items: list[_ItemType] | None = None
    model: str | None = None


class _RuntimeTargets(msgspec.Struct):
    receiver_thread_id: str | None = None
    receiver_thread_ids: list[str] | None = None
    new_thread_id: str | None = None


_metadata_decoder = msgspec.json.Decoder(_ThreadMetadata)
_response_decoder = msgspec.json.Decoder(_InferenceResponse)
_runtime_decoder = msgspec.json.Decoder(_RuntimeTargets)
_any_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


@dataclass(slots=True)
class _Thread:
    key: str
    agent_name: str
    agent_path: str
    provider: str | None = None
    """``gen_ai.provider.name`` once known (metadata, parent thread, first inference)."""
    open_turns: list[str] = field(default_factory=list)
    open_spawns: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Span:
    thread_id: str | None
    turn_key: str | None


class SpanMapper:
    """Maps one rollout's raw events, in order, onto a :class:`SpanSink`.

    Span keys (and so span ids, see :func:`derive_span_id`): ``thread:<thread_id>``,
    ``turn:<codex_turn_id>``, ``inference:<inference_call_id>``, ``tool:<tool_call_id>``,
    ``code_cell:<thread_id>:<runtime_cell_id>``, ``compaction:<thread_id>:<compaction_id>``,
    ``compaction_request:<compaction_request_id>``, ``agent_result:<edge_id>``.

    Not thread-safe: the caller serializes :meth:`map_event` calls.
    """

    def __init__(
        self,
        sink: SpanSink,
        *,
        trace_id: str,
        rollout_id: str,
        read_payload: PayloadReader,
        capture_content: bool = False,
        content_max_bytes: int = DEFAULT_CONTENT_MAX_BYTES,
        content_events: ContentEventSink | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        """Create a mapper for the bundle ``trace_id`` / ``rollout_id``.

        Args:
            sink: Receives spans, events, links and ends.
            trace_id: The bundle's trace id (a UUID string).
            rollout_id: The bundle's rollout id.
            read_payload: Returns a payload file's bytes (used for sizes, hashes,
                content and the few fields the mapping reads from payloads).
            capture_content: Put content on spans: GenAI messages, tool arguments and
                results, and ``rollout.payload.<role>.content`` for the other payloads.
            content_max_bytes: Bound of each content attribute.
            content_events: Where the conventions' content log events go (``None``: none).
            redactor: Redacts content read from payloads (replay; live payloads are
                redacted before they are written).
        """
        self.sink = sink
        self.trace_id = trace_id
        self.otel_trace_id = trace_id_from_uuid(trace_id)
        self.rollout_id = rollout_id
        self.read_payload = read_payload
        self.capture_content = capture_content
        self.content_max_bytes = content_max_bytes
        self.content_events = content_events
        self.redactor = redactor
        self._inputs: dict[str, tuple[Attributes, list[dict[str, Any]], list[dict[str, Any]]]] = {}
        """Start attributes, input messages and instructions of open inferences, kept for
        their log event."""
        self.root_thread_id: str | None = None
        self._spans: dict[str, _Span] = {}
        self._open: dict[str, None] = {}
        """Keys of open spans, in start order."""
        self._threads: dict[str, _Thread] = {}
        self._thread_by_path: dict[str, str] = {}
        self._tool_kind: dict[str, str] = {}
        self._compaction_of_request: dict[str, str] = {}

    # --- public entry points ---

    def map_raw_event(self, event: RawTraceEvent) -> None:
        """Map one event read from a bundle (time from ``wall_time_unix_ms``)."""
        self.map_event(
            event.payload,
            thread_id=event.thread_id,
            codex_turn_id=event.codex_turn_id,
            time_ns=event.wall_time_unix_ms * 1_000_000,
        )

    def map_event(
        self,
        payload: RawTraceEventPayload,
        *,
        thread_id: str | None,
        codex_turn_id: str | None,
        time_ns: int,
    ) -> None:
        """Map one raw event given by its payload and envelope context."""
        handler = _HANDLERS.get(type(payload))
        if handler is None:
            self._span_event(payload, self._fallback_key(thread_id, codex_turn_id), time_ns)
            return
        handler(self, payload, thread_id, codex_turn_id, time_ns)

    def finish(self, time_ns: int) -> None:
        """End every span still open (end of the recording, or of a replay)."""
        for key in reversed(list(self._open)):
            self._end(key, StatusCode.UNSET, None, time_ns)

    def span_id(self, key: str) -> int:
        """Return the derived span id of the span ``key``."""
        return derive_span_id(self.otel_trace_id, key)

    def is_open(self, key: str) -> bool:
        """Whether the span ``key`` was started and has not ended."""
        return key in self._open

    # --- helpers ---

    def _start(
        self,
        key: str,
        parent: str | None,
        name: str,
        kind: SpanKind,
        time_ns: int,
        attributes: Attributes,
        *,
        thread_id: str | None,
        turn_key: str | None,
        links: list[LinkSpec] | None = None,
    ) -> bool:
        if key in self._spans:
            return False
        self._spans[key] = _Span(thread_id, turn_key)
        self._open[key] = None
        if key.startswith("thread:"):  # identities once per thread, not on every span
            attributes[sc.ROLLOUT_TRACE_ID] = self.trace_id
            attributes[sc.ROLLOUT_ID] = self.rollout_id
            if thread_id is not None:
                attributes[sc.ROLLOUT_THREAD_ID] = thread_id
        self.sink.start_span(
            SpanStart(
                key=key,
                span_id=self.span_id(key),
                parent=parent,
                name=name,
                kind=kind,
                start_time_ns=time_ns,
                attributes=attributes,
                links=links or [],
            )
        )
        return True

    def _end(self, key: str, status: StatusCode, description: str | None, time_ns: int) -> None:
        if key not in self._open:
            return
        del self._open[key]
        span = self._spans[key]
        if key.startswith("thread:") and span.thread_id is not None:
            thread = self._threads.get(span.thread_id)
            if thread is not None and thread.provider is None:
                thread.provider = sc.PROVIDER_OTHER
                self.sink.set_attributes(key, {sc.GEN_AI_PROVIDER_NAME: sc.PROVIDER_OTHER})
        if key.startswith(_LEAF_PREFIXES):  # never a parent or link target again: forget it
            del self._spans[key]
            if key.startswith("tool:"):
                self._tool_kind.pop(key[5:], None)
        if span.thread_id is not None:
            thread = self._threads.get(span.thread_id)
            if thread is not None:
                if key in thread.open_turns:
                    thread.open_turns.remove(key)
                if key in thread.open_spawns:
                    thread.open_spawns.remove(key)
        self.sink.end_span(key, status, description, time_ns)

    def _set(self, key: str, attributes: Attributes) -> None:
        if attributes and self.is_open(key):
            self.sink.set_attributes(key, attributes)

    def _fallback_key(self, thread_id: str | None, codex_turn_id: str | None) -> str | None:
        """The open span a loose event belongs to: its turn, its thread, else the root."""
        if codex_turn_id is not None and self.is_open(f"turn:{codex_turn_id}"):
            return f"turn:{codex_turn_id}"
        if thread_id is not None and self.is_open(f"thread:{thread_id}"):
            return f"thread:{thread_id}"
        if self.root_thread_id is not None and self.is_open(f"thread:{self.root_thread_id}"):
            return f"thread:{self.root_thread_id}"
        return None

    def _span_event(
        self,
        payload: RawTraceEventPayload,
        key: str | None,
        time_ns: int,
        extra: Attributes | None = None,
    ) -> None:
        if key is None or not self.is_open(key):
            return
        attributes: Attributes = {sc.ROLLOUT_EVENT_JSON: encode_compact(payload).decode()}
        for name in payload.__struct_fields__:
            value = getattr(payload, name)
            if isinstance(value, RawPayloadRef):
                self._payload_attributes(attributes, name.removesuffix("_payload"), value)
        if extra:
            attributes.update(extra)
        self.sink.add_event(key, _tag(payload), attributes, time_ns)

    def _payload_attributes(
        self, attributes: Attributes, role: str, ref: RawPayloadRef, *, covered: bool = False
    ) -> None:
        """Add ``rollout.payload.<role>.*`` for ``ref``: where it is (schema 2: ``path``;
        schema 3: ``id``, ``shard``, and ``capture``/``original_size`` when cut), then the
        stored body's ``size``, ``sha256`` and (when captured, and the GenAI attributes do
        not ``cover`` it) ``content``."""
        path = ref.path
        if isinstance(path, str):  # schema 2: one file per payload
            attributes[sc.payload_attribute(role, sc.PAYLOAD_PATH_SUFFIX)] = path
        else:  # schema 3: records in zstd shards, named by id
            attributes[sc.payload_attribute(role, sc.PAYLOAD_ID_SUFFIX)] = ref.raw_payload_id
            shard = ref.shard
            if isinstance(shard, int):
                attributes[sc.payload_attribute(role, sc.PAYLOAD_SHARD_SUFFIX)] = shard
            capture = ref.capture
            if isinstance(capture, PayloadCapture) and capture.status is not CaptureStatus.COMPLETE:
                attributes[sc.payload_attribute(role, sc.PAYLOAD_CAPTURE_SUFFIX)] = (
                    capture.status.value
                )
                attributes[sc.payload_attribute(role, sc.PAYLOAD_ORIGINAL_SIZE_SUFFIX)] = (
                    capture.original_bytes
                )
        body = self.read_payload(ref)
        if body is None:
            return
        attributes[sc.payload_attribute(role, sc.PAYLOAD_SIZE_SUFFIX)] = len(body)
        attributes[sc.payload_attribute(role, sc.PAYLOAD_SHA256_SUFFIX)] = hashlib.sha256(
            body
        ).hexdigest()
        if self.capture_content and not covered:
            if self.redactor is not None:
                try:
                    body = encode_compact(self.redactor.body(_any_decoder.decode(body)))
                except (msgspec.DecodeError, RecursionError):
                    body = self.redactor.text(body.decode("utf-8", "replace")).encode()
            attributes[sc.payload_attribute(role, sc.PAYLOAD_CONTENT_SUFFIX)] = truncate_utf8(
                body, self.content_max_bytes
            )

    @property
    def wants_content(self) -> bool:
        """Whether content goes anywhere (span attributes or log events)."""
        return self.capture_content or self.content_events is not None

    def _content(self, ref: RawPayloadRef | None) -> Any:
        """A payload body as JSON, redacted when a redactor is set; ``None`` if unreadable."""
        value = self._decode(ref, _any_decoder)
        if value is not None and self.redactor is not None:
            value = self.redactor.body(value)
        return value

    def _bounded(self, messages: list[dict[str, Any]]) -> str | None:
        return _messages.bounded_messages(messages, self.content_max_bytes) if messages else None

    def _decode(self, ref: RawPayloadRef | None, decoder: msgspec.json.Decoder[Any]) -> Any:
        if ref is None:
            return None
        body = self.read_payload(ref)
        if body is None:
            return None
        try:
            return decoder.decode(body)
        except (msgspec.DecodeError, RecursionError):
            return None

    # --- threads and turns ---

    def _on_rollout_started(
        self, event: RolloutStarted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        self.root_thread_id = event.root_thread_id

    def _on_thread_started(
        self, event: ThreadStarted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        if self.root_thread_id is None:
            self.root_thread_id = event.thread_id
        metadata: _ThreadMetadata | None = self._decode(event.metadata_payload, _metadata_decoder)
        parent_thread_id = _parent_thread_id(metadata)
        agent_path = (metadata.agent_path if metadata else None) or event.agent_path
        agent_name = (metadata.nickname if metadata else None) or agent_path
        key = f"thread:{event.thread_id}"
        attributes: Attributes = {
            sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT,
            sc.GEN_AI_AGENT_ID: event.thread_id,
            sc.GEN_AI_AGENT_NAME: agent_name,
            sc.GEN_AI_CONVERSATION_ID: event.thread_id,
            sc.ROLLOUT_AGENT_PATH: agent_path,
        }
        provider = metadata.provider_name if metadata is not None else None
        if not provider and parent_thread_id is not None:
            parent_of = self._threads.get(parent_thread_id)
            provider = parent_of.provider if parent_of is not None else None
        if provider:
            attributes[sc.GEN_AI_PROVIDER_NAME] = provider
        if metadata is not None and metadata.model:
            attributes[sc.GEN_AI_REQUEST_MODEL] = metadata.model
        if event.metadata_payload is not None:
            self._payload_attributes(attributes, "metadata", event.metadata_payload)
        parent: str | None = None
        links: list[LinkSpec] = []
        if parent_thread_id is not None and event.thread_id != self.root_thread_id:
            attributes[sc.ROLLOUT_PARENT_THREAD_ID] = parent_thread_id
            parent_thread = self._threads.get(parent_thread_id)
            if parent_thread is not None:
                parent = parent_thread.open_spawns[-1] if parent_thread.open_spawns else None
                parent = parent or (parent_thread.key if self.is_open(parent_thread.key) else None)
            edge_id = f"edge:spawn:{parent_thread_id}:{event.thread_id}"
            attributes[sc.ROLLOUT_EDGE_KIND] = sc.EDGE_SPAWN_AGENT
            attributes[sc.ROLLOUT_EDGE_ID] = edge_id
            if parent is not None:
                links.append(LinkSpec(parent, _edge(sc.EDGE_SPAWN_AGENT, edge_id)))
        if parent is None and self.root_thread_id not in (None, event.thread_id):
            root_key = f"thread:{self.root_thread_id}"
            parent = root_key if self.is_open(root_key) else None
        if self._start(
            key,
            parent,
            f"{sc.OPERATION_INVOKE_AGENT} {agent_name}",
            SpanKind.INTERNAL,
            time_ns,
            attributes,
            thread_id=event.thread_id,
            turn_key=None,
            links=links,
        ):
            self._threads[event.thread_id] = _Thread(key, agent_name, agent_path, provider or None)
            self._thread_by_path.setdefault(agent_path, event.thread_id)

    def _on_thread_ended(
        self, event: ThreadEnded, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        key = f"thread:{event.thread_id}"
        if not self.is_open(key):
            return
        self._end_children(event.thread_id, time_ns)
        attributes: Attributes = {sc.ROLLOUT_STATUS: event.status.value}
        failed = event.status is RolloutStatus.FAILED
        if failed:
            attributes[sc.ERROR_TYPE] = sc.ERROR_TYPE_OTHER
        self._set(key, attributes)
        self._end(
            key,
            StatusCode.ERROR if failed else StatusCode.UNSET,
            "thread failed" if failed else None,
            time_ns,
        )

    def _end_children(self, thread_id: str, time_ns: int, *, turn_key: str | None = None) -> None:
        """End the open spans of a thread (or of one of its turns), newest first."""
        thread_key = f"thread:{thread_id}"
        for key in reversed(list(self._open)):
            span = self._spans[key]
            if span.thread_id != thread_id or key in (thread_key, turn_key):
                continue
            if turn_key is not None and span.turn_key != turn_key:
                continue
            if turn_key is not None and key.startswith(("tool:", "code_cell:")):
                continue  # tools and yielded cells may outlive their turn
            self._end(key, StatusCode.UNSET, None, time_ns)

    def _on_rollout_ended(
        self, event: RolloutEnded, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        if self.root_thread_id is not None:
            self._set(f"thread:{self.root_thread_id}", {sc.ROLLOUT_STATUS: event.status.value})

    def _on_recording_completed(
        self, event: RecordingCompleted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        self.finish(time_ns)

    def _on_turn_started(
        self, event: CodexTurnStarted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        thread = self._threads.get(event.thread_id)
        if thread is None:
            return
        key = f"turn:{event.codex_turn_id}"
        attributes: Attributes = {sc.ROLLOUT_TURN_ID: event.codex_turn_id}
        if self._start(
            key,
            thread.key,
            "turn",
            SpanKind.INTERNAL,
            time_ns,
            attributes,
            thread_id=event.thread_id,
            turn_key=key,
        ):
            thread.open_turns.append(key)

    def _on_turn_ended(
        self, event: CodexTurnEnded, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        key = f"turn:{event.codex_turn_id}"
        if not self.is_open(key):
            return
        span = self._spans[key]
        if span.thread_id is not None:
            self._end_children(span.thread_id, time_ns, turn_key=key)
        self._set(key, {sc.ROLLOUT_STATUS: event.status.value, **_failure_type(event.status)})
        self._end(
            key, _execution_status_code(event.status), _failure_text(event.status, "turn"), time_ns
        )

    # --- inference ---

    def _on_inference_started(
        self, event: InferenceStarted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        turn_key = f"turn:{event.codex_turn_id}"
        parent = turn_key if turn_key in self._spans else f"thread:{event.thread_id}"
        attributes: Attributes = {
            sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CHAT,
            sc.GEN_AI_PROVIDER_NAME: event.provider_name,
            sc.GEN_AI_REQUEST_MODEL: event.model,
            sc.GEN_AI_CONVERSATION_ID: event.thread_id,
            sc.ROLLOUT_INFERENCE_CALL_ID: event.inference_call_id,
        }
        if isinstance(event.server_address, str):
            attributes[sc.SERVER_ADDRESS] = event.server_address
        if isinstance(event.server_port, int):
            attributes[sc.SERVER_PORT] = event.server_port
        key = f"inference:{event.inference_call_id}"
        self._payload_attributes(attributes, "request", event.request_payload, covered=True)
        if self.wants_content and key not in self._spans:
            messages, system = _messages.input_messages(self._content(event.request_payload))
            if self.capture_content:
                _put(attributes, sc.GEN_AI_INPUT_MESSAGES, self._bounded(messages))
                _put(attributes, sc.GEN_AI_SYSTEM_INSTRUCTIONS, self._bounded_parts(system))
            if self.content_events is not None:
                self._inputs[key] = (dict(attributes), messages, system)
        self._start(
            key,
            parent,
            f"{sc.OPERATION_CHAT} {event.model}",
            SpanKind.CLIENT,
            time_ns,
            attributes,
            thread_id=event.thread_id,
            turn_key=turn_key,
        )
        thread = self._threads.get(event.thread_id)
        if thread is not None and thread.provider is None and event.provider_name:
            thread.provider = event.provider_name
            self._set(thread.key, {sc.GEN_AI_PROVIDER_NAME: event.provider_name})

    def _bounded_parts(self, parts: list[dict[str, Any]]) -> str | None:
        """System instructions (a list of parts) bounded like messages."""
        if not parts:
            return None
        wrapped = [{"role": "system", "parts": parts}]
        bounded = _messages.bounded_messages(wrapped, self.content_max_bytes)
        if bounded is None:
            return None
        return _messages.dumps(msgspec.json.decode(bounded)[0]["parts"])

    def _on_inference_completed(
        self, event: InferenceCompleted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        key = f"inference:{event.inference_call_id}"
        if not self.is_open(key):
            return
        attributes: Attributes = {}
        if event.response_id is not None:
            attributes[sc.GEN_AI_RESPONSE_ID] = event.response_id
        if event.upstream_request_id is not None:
            attributes[sc.ROLLOUT_UPSTREAM_REQUEST_ID] = event.upstream_request_id
        self._payload_attributes(attributes, "response", event.response_payload, covered=True)
        response: _InferenceResponse | None = self._decode(
            event.response_payload, _response_decoder
        )
        if response is not None:
            if response.model:
                attributes[sc.GEN_AI_RESPONSE_MODEL] = response.model
            _usage_attributes(attributes, response.token_usage)
            if response.output_items is not None:
                attributes[sc.GEN_AI_RESPONSE_FINISH_REASONS] = (
                    _messages.finish_reason(
                        [{"type": item.type} for item in response.output_items]
                    ),
                )
        outputs = self._output_messages(event.response_payload)
        if self.capture_content:
            _put(attributes, sc.GEN_AI_OUTPUT_MESSAGES, self._bounded(outputs))
        self._set(key, attributes)
        self._emit_details(key, attributes, outputs, time_ns)
        self._end(key, StatusCode.UNSET, None, time_ns)

    def _output_messages(self, ref: RawPayloadRef | None) -> list[dict[str, Any]]:
        if not self.wants_content or ref is None:
            return []
        body = self._content(ref)
        items = body.get("output_items") if isinstance(body, dict) else None
        return _messages.output_messages(items) if isinstance(items, list) else []

    def _emit_details(
        self, key: str, attributes: Attributes, outputs: list[dict[str, Any]], time_ns: int
    ) -> None:
        """The conventions' ``gen_ai.client.inference.operation.details`` log event."""
        inputs = self._inputs.pop(key, None)
        if self.content_events is None:
            return
        start, messages, system = inputs if inputs is not None else ({}, [], [])
        details: dict[str, Any] = {
            name: value
            for name, value in {**start, **attributes}.items()
            if name.startswith(("gen_ai.", "server.", "error."))
            and name not in _SPAN_CONTENT_ATTRIBUTES
        }
        for name, value in (
            (sc.GEN_AI_INPUT_MESSAGES, self._bounded(messages)),
            (sc.GEN_AI_SYSTEM_INSTRUCTIONS, self._bounded_parts(system)),
            (sc.GEN_AI_OUTPUT_MESSAGES, self._bounded(outputs)),
        ):
            if value is not None:
                details[name] = msgspec.json.decode(value)
        self.content_events(self.span_id(key), sc.EVENT_INFERENCE_DETAILS, details, time_ns)

    def _on_inference_unfinished(
        self,
        event: InferenceFailed | InferenceCancelled,
        thread_id: str | None,
        turn_id: str | None,
        time_ns: int,
    ) -> None:
        key = f"inference:{event.inference_call_id}"
        if not self.is_open(key):
            return
        failed = isinstance(event, InferenceFailed)
        reason = event.error if isinstance(event, InferenceFailed) else event.reason
        status = ExecutionStatus.FAILED if failed else ExecutionStatus.CANCELLED
        attributes: Attributes = {
            sc.ROLLOUT_STATUS: status.value,
            sc.ROLLOUT_ERROR: reason,
            sc.ERROR_TYPE: error_type(reason) if failed else "cancelled",
        }
        if event.upstream_request_id is not None:
            attributes[sc.ROLLOUT_UPSTREAM_REQUEST_ID] = event.upstream_request_id
        if event.partial_response_payload is not None:
            self._payload_attributes(
                attributes, "response", event.partial_response_payload, covered=True
            )
        outputs = self._output_messages(event.partial_response_payload)
        if self.capture_content:
            _put(attributes, sc.GEN_AI_OUTPUT_MESSAGES, self._bounded(outputs))
        self._set(key, attributes)
        self._emit_details(key, attributes, outputs, time_ns)
        self._end(key, StatusCode.ERROR if failed else StatusCode.UNSET, reason, time_ns)

    # --- tools ---

    def _on_tool_call_started(
        self, event: ToolCallStarted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        kind_tag = _tag(event.kind)
        self._tool_kind[event.tool_call_id] = kind_tag
        turn_key = f"turn:{turn_id}" if turn_id is not None else None
        parent: str | None = None
        if isinstance(event.requester, CodeCellRequester) and thread_id is not None:
            cell_key = f"code_cell:{thread_id}:{event.requester.runtime_cell_id}"
            parent = cell_key if cell_key in self._spans else None
        if parent is None and turn_key is not None and turn_key in self._spans:
            parent = turn_key
        if parent is None and thread_id is not None:
            parent = f"thread:{thread_id}"
        tool_name = _tool_name(event)
        attributes: Attributes = {
            sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL,
            sc.GEN_AI_TOOL_NAME: tool_name,
            sc.GEN_AI_TOOL_CALL_ID: event.model_visible_call_id or event.tool_call_id,
            sc.GEN_AI_TOOL_TYPE: (
                sc.TOOL_TYPE_EXTENSION if isinstance(event.kind, McpKind) else sc.TOOL_TYPE_FUNCTION
            ),
            sc.ROLLOUT_TOOL_KIND: kind_tag,
        }
        if event.model_visible_call_id != event.tool_call_id:
            attributes[sc.ROLLOUT_TOOL_CALL_ID] = event.tool_call_id
        if event.invocation_payload is not None:
            self._payload_attributes(
                attributes, "invocation", event.invocation_payload, covered=self.capture_content
            )
            if self.capture_content:
                arguments = _tool_arguments(self._content(event.invocation_payload))
                if arguments is not None:
                    _put(
                        attributes,
                        sc.GEN_AI_TOOL_CALL_ARGUMENTS,
                        _messages.bounded_value(arguments, self.content_max_bytes),
                    )
        links: list[LinkSpec] = []
        edge_kind = _EDGE_KIND_BY_TOOL_KIND.get(kind_tag)
        if edge_kind is not None and edge_kind != sc.EDGE_SPAWN_AGENT:
            edge_id = f"edge:tool:{event.tool_call_id}"
            attributes[sc.ROLLOUT_EDGE_KIND] = edge_kind
            attributes[sc.ROLLOUT_EDGE_ID] = edge_id
            if isinstance(event.summary, AgentSummary):
                target = self._thread_by_path.get(event.summary.target_agent_path)
                if target is not None:
                    links.append(LinkSpec(f"thread:{target}", _edge(edge_kind, edge_id)))
        key = f"tool:{event.tool_call_id}"
        started = self._start(
            key,
            parent,
            f"{sc.OPERATION_EXECUTE_TOOL} {tool_name}",
            SpanKind.INTERNAL,
            time_ns,
            attributes,
            thread_id=thread_id,
            turn_key=turn_key,
            links=links,
        )
        if started and kind_tag == "spawn_agent" and thread_id in self._threads:
            self._threads[thread_id].open_spawns.append(key)

    def _on_tool_call_ended(
        self, event: ToolCallEnded, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        key = f"tool:{event.tool_call_id}"
        if not self.is_open(key):
            return
        attributes: Attributes = {sc.ROLLOUT_STATUS: event.status.value}
        failed = event.status is ExecutionStatus.FAILED
        description = "tool call failed" if failed else None
        if event.result_payload is not None:
            self._payload_attributes(
                attributes, "result", event.result_payload, covered=self.capture_content
            )
            if failed or self.capture_content:
                error, result = _tool_result(self._content(event.result_payload))
                if error is not None and failed:
                    description = error
                if self.capture_content and result is not None:
                    _put(
                        attributes,
                        sc.GEN_AI_TOOL_CALL_RESULT,
                        _messages.bounded_value(result, self.content_max_bytes),
                    )
        if failed:
            attributes[sc.ERROR_TYPE] = (
                error_type(description) if description else sc.ERROR_TYPE_OTHER
            )
        self._set(key, attributes)
        self._end(key, _execution_status_code(event.status), description, time_ns)

    def _on_tool_runtime(
        self,
        event: ToolCallRuntimeStarted | ToolCallRuntimeEnded,
        thread_id: str | None,
        turn_id: str | None,
        time_ns: int,
    ) -> None:
        key = f"tool:{event.tool_call_id}"
        if not self.is_open(key):
            self._span_event(event, self._fallback_key(thread_id, turn_id), time_ns)
            return
        edge_kind = _EDGE_KIND_BY_TOOL_KIND.get(self._tool_kind.get(event.tool_call_id, ""))
        if edge_kind is not None and edge_kind != sc.EDGE_SPAWN_AGENT:
            targets: _RuntimeTargets | None = self._decode(event.runtime_payload, _runtime_decoder)
            if targets is not None:
                receivers = list(targets.receiver_thread_ids or [])
                if targets.receiver_thread_id is not None:
                    receivers.append(targets.receiver_thread_id)
                edge_id = f"edge:tool:{event.tool_call_id}"
                for receiver in dict.fromkeys(receivers):
                    if f"thread:{receiver}" in self._spans:
                        self.sink.add_link(
                            key, LinkSpec(f"thread:{receiver}", _edge(edge_kind, edge_id))
                        )
        self._span_event(event, key, time_ns)

    def _on_tool_side_event(
        self,
        event: McpToolCallCorrelationAssigned | StdinTargetResolved,
        thread_id: str | None,
        turn_id: str | None,
        time_ns: int,
    ) -> None:
        key = f"tool:{event.tool_call_id}"
        if not self.is_open(key):
            key = self._fallback_key(thread_id, turn_id) or key
        self._span_event(event, key, time_ns)

    # --- code cells ---

    def _on_code_cell_started(
        self, event: CodeCellStarted, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        if thread_id is None:
            return
        turn_key = f"turn:{turn_id}" if turn_id is not None else None
        parent = turn_key if turn_key is not None and turn_key in self._spans else None
        attributes: Attributes = {
            sc.ROLLOUT_CODE_CELL_ID: event.runtime_cell_id,
            sc.GEN_AI_TOOL_CALL_ID: event.model_visible_call_id,
        }
        self._start(
            f"code_cell:{thread_id}:{event.runtime_cell_id}",
            parent or f"thread:{thread_id}",
            "code_cell",
            SpanKind.INTERNAL,
            time_ns,
            attributes,
            thread_id=thread_id,
            turn_key=turn_key,
        )

    def _on_code_cell_response(
        self,
        event: CodeCellInitialResponse | CodeCellEnded,
        thread_id: str | None,
        turn_id: str | None,
        time_ns: int,
    ) -> None:
        key = f"code_cell:{thread_id}:{event.runtime_cell_id}"
        if isinstance(event, CodeCellInitialResponse):
            self._span_event(event, key, time_ns)
            return
        if not self.is_open(key):
            return
        attributes: Attributes = {sc.ROLLOUT_STATUS: event.status.value}
        if event.response_payload is not None:
            self._payload_attributes(attributes, "response", event.response_payload)
        self._set(key, attributes)
        failed = event.status is CodeCellRuntimeStatus.FAILED
        if failed:
            self._set(key, {sc.ERROR_TYPE: sc.ERROR_TYPE_OTHER})
        self._end(
            key,
            StatusCode.ERROR if failed else StatusCode.UNSET,
            "code cell failed" if failed else None,
            time_ns,
        )

    # --- compaction ---

    def _on_compaction_request_started(
        self,
        event: CompactionRequestStarted,
        thread_id: str | None,
        turn_id: str | None,
        time_ns: int,
    ) -> None:
        turn_key = f"turn:{event.codex_turn_id}"
        compaction_key = f"compaction:{event.thread_id}:{event.compaction_id}"
        self._compaction_of_request[event.compaction_request_id] = compaction_key
        if compaction_key not in self._spans:
            parent = turn_key if turn_key in self._spans else f"thread:{event.thread_id}"
            self._start(
                compaction_key,
                parent,
                "compaction",
                SpanKind.INTERNAL,
                time_ns,
                {sc.ROLLOUT_COMPACTION_ID: event.compaction_id},
                thread_id=event.thread_id,
                turn_key=turn_key,
            )
        attributes: Attributes = {
            sc.GEN_AI_OPERATION_NAME: sc.OPERATION_COMPACT,
            sc.GEN_AI_PROVIDER_NAME: event.provider_name,
            sc.GEN_AI_REQUEST_MODEL: event.model,
            sc.ROLLOUT_COMPACTION_ID: event.compaction_id,
            sc.ROLLOUT_COMPACTION_REQUEST_ID: event.compaction_request_id,
        }
        self._payload_attributes(attributes, "request", event.request_payload)
        self._start(
            f"compaction_request:{event.compaction_request_id}",
            compaction_key,
            f"{sc.OPERATION_COMPACT} {event.model}",
            SpanKind.CLIENT,
            time_ns,
            attributes,
            thread_id=event.thread_id,
            turn_key=turn_key,
        )

    def _on_compaction_request_finished(
        self,
        event: CompactionRequestCompleted | CompactionRequestFailed,
        thread_id: str | None,
        turn_id: str | None,
        time_ns: int,
    ) -> None:
        key = f"compaction_request:{event.compaction_request_id}"
        if not self.is_open(key):
            return
        if isinstance(event, CompactionRequestCompleted):
            attributes: Attributes = {sc.ROLLOUT_STATUS: ExecutionStatus.COMPLETED.value}
            self._payload_attributes(attributes, "response", event.response_payload)
            response: _InferenceResponse | None = self._decode(
                event.response_payload, _response_decoder
            )
            if response is not None:
                _usage_attributes(attributes, response.token_usage)
            self._set(key, attributes)
            self._end(key, StatusCode.UNSET, None, time_ns)
            return
        self._set(
            key,
            {
                sc.ROLLOUT_STATUS: ExecutionStatus.FAILED.value,
                sc.ROLLOUT_ERROR: event.error,
                sc.ERROR_TYPE: error_type(event.error),
            },
        )
        self._end(key, StatusCode.ERROR, event.error, time_ns)

    def _on_compaction_installed(
        self, event: CompactionInstalled, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        key = f"compaction:{thread_id}:{event.compaction_id}"
        if not self.is_open(key):
            self._span_event(event, self._fallback_key(thread_id, turn_id), time_ns)
            return
        attributes: Attributes = {sc.ROLLOUT_STATUS: ExecutionStatus.COMPLETED.value}
        self._payload_attributes(attributes, "checkpoint", event.checkpoint_payload)
        self._span_event(event, key, time_ns)
        self._set(key, attributes)
        self._end(key, StatusCode.UNSET, None, time_ns)

    # --- agent results ---

    def _on_agent_result(
        self, event: AgentResultObserved, thread_id: str | None, turn_id: str | None, time_ns: int
    ) -> None:
        parent_thread = self._threads.get(event.parent_thread_id)
        if parent_thread is None:
            self._span_event(event, self._fallback_key(thread_id, turn_id), time_ns)
            return
        parent = parent_thread.open_turns[-1] if parent_thread.open_turns else parent_thread.key
        child = self._threads.get(event.child_thread_id)
        child_name = child.agent_name if child is not None else event.child_thread_id
        attributes: Attributes = {
            sc.ROLLOUT_EDGE_KIND: sc.EDGE_AGENT_RESULT,
            sc.ROLLOUT_EDGE_ID: event.edge_id,
            sc.ROLLOUT_PARENT_THREAD_ID: event.parent_thread_id,
            sc.ROLLOUT_TURN_ID: event.child_codex_turn_id,
        }
        if event.carried_payload is not None:
            self._payload_attributes(attributes, "carried", event.carried_payload)
        links: list[LinkSpec] = []
        for target in (f"turn:{event.child_codex_turn_id}", f"thread:{event.child_thread_id}"):
            if target in self._spans:
                links.append(LinkSpec(target, _edge(sc.EDGE_AGENT_RESULT, event.edge_id)))
                break
        key = f"agent_result:{event.edge_id}"
        if self._start(
            key,
            parent,
            f"agent_result {child_name}",
            SpanKind.INTERNAL,
            time_ns,
            attributes,
            thread_id=event.child_thread_id,
            turn_key=None,
            links=links,
        ):
            self._end(key, StatusCode.UNSET, None, time_ns)

    # --- loose events ---

    def _on_loose_event(
        self,
        event: HistoryItemAccepted | ProtocolEventObserved,
        thread_id: str | None,
        turn_id: str | None,
        time_ns: int,
    ) -> None:
        self._span_event(event, self._fallback_key(thread_id, turn_id), time_ns)


_HANDLERS: Mapping[type[Any], Callable[..., None]] = {
    RolloutStarted: SpanMapper._on_rollout_started,
    RolloutEnded: SpanMapper._on_rollout_ended,
    RecordingCompleted: SpanMapper._on_recording_completed,
    ThreadStarted: SpanMapper._on_thread_started,
    ThreadEnded: SpanMapper._on_thread_ended,
    CodexTurnStarted: SpanMapper._on_turn_started,
    CodexTurnEnded: SpanMapper._on_turn_ended,
    InferenceStarted: SpanMapper._on_inference_started,
    InferenceCompleted: SpanMapper._on_inference_completed,
    InferenceFailed: SpanMapper._on_inference_unfinished,
    InferenceCancelled: SpanMapper._on_inference_unfinished,
    ToolCallStarted: SpanMapper._on_tool_call_started,
    ToolCallEnded: SpanMapper._on_tool_call_ended,
    ToolCallRuntimeStarted: SpanMapper._on_tool_runtime,
    ToolCallRuntimeEnded: SpanMapper._on_tool_runtime,
    McpToolCallCorrelationAssigned: SpanMapper._on_tool_side_event,
    StdinTargetResolved: SpanMapper._on_tool_side_event,
    CodeCellStarted: SpanMapper._on_code_cell_started,
    CodeCellInitialResponse: SpanMapper._on_code_cell_response,
    CodeCellEnded: SpanMapper._on_code_cell_response,
    CompactionRequestStarted: SpanMapper._on_compaction_request_started,
    CompactionRequestCompleted: SpanMapper._on_compaction_request_finished,
    CompactionRequestFailed: SpanMapper._on_compaction_request_finished,
    CompactionInstalled: SpanMapper._on_compaction_installed,
    AgentResultObserved: SpanMapper._on_agent_result,
    HistoryItemAccepted: SpanMapper._on_loose_event,
    ProtocolEventObserved: SpanMapper._on_loose_event,
}


def map_events(
    events: Sequence[RawTraceEvent] | Any,
    sink: SpanSink,
    *,
    trace_id: str,
    rollout_id: str,
    read_payload: PayloadReader,
    capture_content: bool = False,
    content_max_bytes: int = DEFAULT_CONTENT_MAX_BYTES,
    content_events: ContentEventSink | None = None,
    redactor: Redactor | None = None,
) -> SpanMapper:
    """Map a whole event stream (e.g. a bundle's ``trace.jsonl``) and end what stays open.

    Spans still open after the last event end at the last event's time.
    """
    mapper = SpanMapper(
        sink,
        trace_id=trace_id,
        rollout_id=rollout_id,
        read_payload=read_payload,
        capture_content=capture_content,
        content_max_bytes=content_max_bytes,
        content_events=content_events,
        redactor=redactor,
    )
    last_ns = 0
    for event in events:
        mapper.map_raw_event(event)
        last_ns = event.wall_time_unix_ms * 1_000_000
    mapper.finish(last_ns)
    return mapper


def truncate_utf8(body: bytes, max_bytes: int) -> str:
    """Decode ``body`` as UTF-8, cut to at most ``max_bytes`` bytes on a character boundary."""
    return body[: max(max_bytes, 0)].decode("utf-8", errors="ignore")


def _edge(kind: str, edge_id: str) -> Attributes:
    return {sc.ROLLOUT_EDGE_KIND: kind, sc.ROLLOUT_EDGE_ID: edge_id}


def _tag(value: RawTraceEventPayload | ToolCallKind) -> str:
    """The type tag of an event payload or a tool kind (``tool_call_started``, ``exec_command``)."""
    tag: str = value.__struct_config__.tag  # type: ignore[assignment]
    return tag


def _tool_name(event: ToolCallStarted) -> str:
    if isinstance(event.kind, OtherKind):
        return event.kind.name
    if isinstance(event.kind, McpKind):
        return event.kind.tool
    label = getattr(event.summary, "label", None)
    return label if isinstance(label, str) and label else _tag(event.kind)


def _parent_thread_id(metadata: _ThreadMetadata | None) -> str | None:
    if metadata is None or not isinstance(metadata.session_source, dict):
        return None
    try:
        source = msgspec.convert(metadata.session_source, _SessionSource)
    except msgspec.ValidationError:
        return None
    if source.subagent is None or source.subagent.thread_spawn is None:
        return None
    return source.subagent.thread_spawn.parent_thread_id


def _execution_status_code(status: ExecutionStatus) -> StatusCode:
    return StatusCode.ERROR if status is ExecutionStatus.FAILED else StatusCode.UNSET


_SPAN_CONTENT_ATTRIBUTES = frozenset(
    {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS}
)


def _put(attributes: Attributes, name: str, value: str | None) -> None:
    if value is not None:
        attributes[name] = value


def _usage_attributes(attributes: Attributes, usage: _TokenUsage | None) -> None:
    """The conventions' usage attributes of a Codex ``token_usage``."""
    if usage is None:
        return
    for name, value in (
        (sc.GEN_AI_USAGE_INPUT_TOKENS, usage.input_tokens),
        (sc.GEN_AI_USAGE_OUTPUT_TOKENS, usage.output_tokens),
        (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, usage.cached_input_tokens),
        (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, usage.reasoning_output_tokens),
    ):
        if value is not None:
            attributes[name] = value


def _failure_type(status: ExecutionStatus) -> Attributes:
    return {sc.ERROR_TYPE: sc.ERROR_TYPE_OTHER} if status is ExecutionStatus.FAILED else {}


def _failure_text(status: ExecutionStatus, what: str) -> str | None:
    return f"{what} failed" if status is ExecutionStatus.FAILED else None


def error_type(message: str) -> str:
    """``error.type`` of a recorded error message, by one rule: an exception (``"TimeoutError:
    read timed out"``) gives its class name, a message with an HTTP status (``"HTTP 500"``)
    gives the code (``"500"``), anything else :data:`~otel_rollout.semconv.ERROR_TYPE_OTHER`."""
    text = message.strip()
    match = _EXCEPTION_PREFIX.match(text)
    if match is not None:
        name = match.group(1).rsplit(".", 1)[-1]
        builtin = getattr(builtins, name, None)
        if name.endswith(_EXCEPTION_SUFFIXES) or (
            isinstance(builtin, type) and issubclass(builtin, BaseException)
        ):
            return name
    status = _HTTP_STATUS.search(text)
    if status is not None:
        return status.group(1)
    return sc.ERROR_TYPE_OTHER


def _tool_arguments(invocation: Any) -> Any:
    """A tool invocation body's arguments (as the model wrote them), else its payload."""
    if not isinstance(invocation, dict):
        return None
    payload = invocation.get("payload")
    if isinstance(payload, dict):
        for name in ("arguments", "input"):
            if name in payload:
                return payload[name]
        return payload
    return invocation


def _tool_result(body: Any) -> tuple[str | None, Any]:
    """(error text, result given to the model) of a tool result body."""
    if not isinstance(body, dict):
        return None, body
    if body.get("type") == "error":
        error = body.get("error")
        return (error if isinstance(error, str) else None), error
    item = body.get("response_item")
    if isinstance(item, dict) and "output" in item:
        return None, item["output"]
    if "response" in body and len(body) == 1:
        return None, body["response"]
    return None, body
