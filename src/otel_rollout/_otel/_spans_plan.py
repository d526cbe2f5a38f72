"""Planning bundles from foreign GenAI spans: span records in, raw events and payload bodies out.

Pure: no disk, no writer, no clock. :func:`plan_rollouts` turns a trace's finished
spans (:class:`SpanRecord`) into one :class:`RolloutPlan` per top-level ``invoke_agent``
span (or one per trace when there is none), its events in bundle order:

* ``invoke_agent`` spans become threads (nested ones are child threads), each with one turn;
* ``chat`` (and other inference) spans become inference attempts, their
  ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (when captured) the request
  and response items;
* ``execute_tool`` spans become tool calls.

Other spans only give structure. Ids derive from the trace and span ids, so a trace
gives the same plan every time. :meth:`RolloutPlan.realize` builds the events once
their payloads are written (``_spans_only`` writes them to a bundle).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_rollout import semconv as sc
from otel_rollout._bundle import _bodies as bodies
from otel_rollout._bundle._models import (
    CodexTurnEnded,
    CodexTurnStarted,
    ExecutionStatus,
    GenericSummary,
    InferenceCompleted,
    InferenceFailed,
    InferenceStarted,
    ModelRequester,
    PayloadKind,
    RawPayloadRef,
    RawTraceEventPayload,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    ThreadEnded,
    ThreadStarted,
    ToolCallEnded,
    ToolCallStarted,
)
from otel_rollout._otel._mapping import uuid_from_trace_id

_INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_KEPT_PREFIXES = ("gen_ai.", "error.type")
_MAX_ANCESTORS = 10_000
"""Bound of a walk up the parent chain (a cycle of span ids must not hang the exporter)."""


class SpanRecord(msgspec.Struct, array_like=True):
    """What the planner needs of one finished span."""

    span_id: int
    parent_id: int
    """0 for a local root (no parent, or a remote one)."""
    name: str
    start_ns: int
    end_ns: int
    error: str | None
    """The error description when the span's status is ERROR."""
    attributes: dict[str, Any]
    """The ``gen_ai.*`` and ``error.type`` attributes (sequences as lists)."""

    @property
    def operation(self) -> str | None:
        """``gen_ai.operation.name``, if any."""
        value = self.attributes.get(sc.GEN_AI_OPERATION_NAME)
        return value if isinstance(value, str) else None


def span_record(span: ReadableSpan) -> SpanRecord:
    """Keep what the planner needs of ``span``."""
    attributes = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (span.attributes or {}).items()
        if key.startswith(_KEPT_PREFIXES)
    }
    error = None
    if span.status.status_code is StatusCode.ERROR:
        error = span.status.description or str(attributes.get(sc.ERROR_TYPE) or "error")
    parent = span.parent
    return SpanRecord(
        span_id=span.context.span_id if span.context else 0,
        parent_id=parent.span_id if parent is not None and not parent.is_remote else 0,
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        error=error,
        attributes=attributes,
    )


# --- the plan ---


@dataclass(frozen=True, slots=True)
class PlannedPayload:
    """A payload file to write before its event: its kind and JSON body."""

    kind: PayloadKind
    body: dict[str, Any]


PayloadWriter = Callable[[PayloadKind, Any, str | None], RawPayloadRef | None]
"""Writes a payload body (of the event's thread, given third); returns its ref, or
``None`` when it was not written."""


@dataclass(frozen=True, slots=True, eq=False)
class PlannedEvent:
    """One raw event of a plan, built once its payload (if any) is written."""

    time_ns: int
    """When it happened (the span's start or end), the event's wall time."""
    build: Callable[[RawPayloadRef | None], RawTraceEventPayload | None]
    """The event, given its payload's ref (``None``: no payload, or not written);
    ``None`` leaves the event out."""
    thread_id: str | None = None
    codex_turn_id: str | None = None
    payload: PlannedPayload | None = None
    after: PlannedEvent | None = None
    """An earlier event without which this one is left out (an inference's end needs its start)."""


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    """One bundle to write: its manifest's ids and its events in order."""

    trace_id: str
    """The bundle's trace id (the OTel trace id as a UUID)."""
    root_thread_id: str
    started_at_unix_ms: int
    events: tuple[PlannedEvent, ...]

    def realize(
        self, write_payload: PayloadWriter
    ) -> Iterator[tuple[PlannedEvent, RawTraceEventPayload]]:
        """Yield each event in order, after writing its payload through ``write_payload``.

        Lazy: stop iterating and no later payload is written.
        """
        written: set[int] = set()
        for planned in self.events:
            if planned.after is not None and id(planned.after) not in written:
                continue
            payload = planned.payload
            ref = (
                write_payload(payload.kind, payload.body, planned.thread_id)
                if payload is not None
                else None
            )
            event = planned.build(ref)
            if event is None:
                continue
            written.add(id(planned))
            yield planned, event


def plan_rollouts(trace_id: int, records: list[SpanRecord]) -> Iterator[RolloutPlan]:
    """Plan one bundle per rollout of the trace ``trace_id``.

    Events follow the spans' times; events at the same instant keep the records' order.
    """
    for root, members in _rollouts(records):
        yield _RolloutPlanner(trace_id, root, members).plan()


def _rollouts(records: list[SpanRecord]) -> Iterator[tuple[SpanRecord, list[SpanRecord]]]:
    """Yield each rollout's root agent span (maybe synthetic) and its member spans."""
    by_id = {record.span_id: record for record in records}

    def nearest_agent(record: SpanRecord) -> SpanRecord | None:
        seen = 0
        current = by_id.get(record.parent_id)
        while current is not None and seen < _MAX_ANCESTORS:
            if current.operation == sc.OPERATION_INVOKE_AGENT:
                return current
            current = by_id.get(current.parent_id)
            seen += 1
        return None

    def top_agent(record: SpanRecord) -> SpanRecord | None:
        top = record if record.operation == sc.OPERATION_INVOKE_AGENT else None
        current = nearest_agent(record)
        while current is not None:
            top = current
            current = nearest_agent(current)
        return top

    groups: dict[int, list[SpanRecord]] = {}
    orphans: list[SpanRecord] = []
    for record in records:
        if record.operation is None:
            continue
        top = top_agent(record)
        if top is None:
            orphans.append(record)
        else:
            groups.setdefault(top.span_id, []).append(record)
    for span_id, members in groups.items():
        yield by_id[span_id], members
    if orphans:
        synthetic = SpanRecord(
            span_id=0,
            parent_id=0,
            name=f"{sc.OPERATION_INVOKE_AGENT} agent",
            start_ns=min(record.start_ns for record in orphans),
            end_ns=max(record.end_ns for record in orphans),
            error=None,
            attributes={sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT},
        )
        yield synthetic, [synthetic, *orphans]


_OPENING = 0
_CLOSING = 1


class _RolloutPlanner:
    """Plans one rollout: events keyed by (time, opening before closing, nesting, order).

    At one instant, openings come before closings; outer spans open first and close last.
    """

    def __init__(self, trace_id: int, root: SpanRecord, members: list[SpanRecord]) -> None:
        self.trace_id = trace_id
        self.root = root
        self.members = members
        self.agents = sorted(
            [member for member in members if member.operation == sc.OPERATION_INVOKE_AGENT],
            key=lambda record: (record.start_ns, record.span_id),
        )
        if root not in self.agents:
            self.agents.insert(0, root)
        self.thread_ids = {
            agent.span_id: _span_uuid(trace_id, agent.span_id) for agent in self.agents
        }
        self.by_id = {member.span_id: member for member in members}
        self._keyed: list[tuple[tuple[int, int, float, int], PlannedEvent]] = []

    def plan(self) -> RolloutPlan:
        """The rollout's plan."""
        root = self.root
        root_thread = self.thread_ids[root.span_id]
        trace_uuid = uuid_from_trace_id(self.trace_id)
        started = RolloutStarted(trace_id=trace_uuid, root_thread_id=root_thread)
        self._add(_OPENING, -1, PlannedEvent(root.start_ns, lambda _: started))
        depth_of: dict[int, int] = {}
        for agent in self.agents:
            parent_agent = self._thread_of(agent) if agent is not root else None
            depth = 0 if parent_agent is None else depth_of.get(parent_agent.span_id, 0) + 1
            depth_of[agent.span_id] = depth
            self._plan_thread(agent, parent_agent, depth)
        seen_calls: set[str] = set()
        for member in self.members:
            if member.span_id in self.thread_ids:
                continue
            agent = self._thread_of(member)
            thread_id = self.thread_ids[agent.span_id]
            depth = depth_of.get(agent.span_id, 0) + 1
            if member.operation == sc.OPERATION_EXECUTE_TOOL:
                self._plan_tool(member, thread_id, depth, seen_calls)
            elif member.operation in _INFERENCE_OPERATIONS:
                self._plan_inference(member, thread_id, depth)
        ended = RolloutEnded(status=RolloutStatus.FAILED if root.error else RolloutStatus.COMPLETED)
        self._add(_CLOSING, 1, PlannedEvent(root.end_ns, lambda _: ended))
        completed = RecordingCompleted()
        self._add(_CLOSING, 2, PlannedEvent(root.end_ns, lambda _: completed))
        self._keyed.sort(key=lambda keyed: keyed[0])
        return RolloutPlan(
            trace_id=trace_uuid,
            root_thread_id=root_thread,
            started_at_unix_ms=root.start_ns // 1_000_000,
            events=tuple(planned for _, planned in self._keyed),
        )

    def _add(self, phase: int, depth: float, planned: PlannedEvent) -> None:
        """Plan ``planned`` (``depth``: its order among the events of its instant and phase)."""
        self._keyed.append(((planned.time_ns, phase, depth, len(self._keyed)), planned))

    def _thread_of(self, record: SpanRecord) -> SpanRecord:
        """The agent span whose thread ``record`` belongs to (the root's by default)."""
        current = self.by_id.get(record.parent_id)
        while current is not None:
            if current.span_id in self.thread_ids:
                return current
            current = self.by_id.get(current.parent_id)
        return self.root

    def _plan_thread(self, agent: SpanRecord, parent_agent: SpanRecord | None, depth: int) -> None:
        thread_id = self.thread_ids[agent.span_id]
        name = _str(agent, sc.GEN_AI_AGENT_NAME, default="agent")
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "agent"
        parent_thread = None if parent_agent is None else self.thread_ids[parent_agent.span_id]
        agent_path = "/root" if parent_thread is None else f"/root/{slug}"
        metadata = _session_metadata_body(
            thread_id,
            agent_path,
            None if parent_thread is None else slug,
            name,
            _session_source(parent_thread, depth, agent_path, name),
            model=_str(agent, sc.GEN_AI_REQUEST_MODEL),
            provider_name=_str(agent, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system"),
        )
        turn_id = _turn_id(thread_id)
        status = RolloutStatus.FAILED if agent.error else RolloutStatus.COMPLETED
        turn_status = ExecutionStatus.FAILED if agent.error else ExecutionStatus.COMPLETED
        start, end = agent.start_ns, agent.end_ns
        self._add(
            _OPENING,
            depth,
            PlannedEvent(
                start,
                lambda ref: ThreadStarted(
                    thread_id=thread_id, agent_path=agent_path, metadata_payload=ref
                ),
                payload=PlannedPayload(PayloadKind.SESSION_METADATA, metadata),
            ),
        )
        turn_started = CodexTurnStarted(codex_turn_id=turn_id, thread_id=thread_id)
        self._add(
            _OPENING,
            depth + 0.5,
            PlannedEvent(start, lambda _: turn_started, thread_id, turn_id),
        )
        turn_ended = CodexTurnEnded(codex_turn_id=turn_id, status=turn_status)
        self._add(
            _CLOSING,
            -(depth + 0.5),
            PlannedEvent(end, lambda _: turn_ended, thread_id, turn_id),
        )
        thread_ended = ThreadEnded(thread_id=thread_id, status=status)
        self._add(_CLOSING, -depth, PlannedEvent(end, lambda _: thread_ended))

    def _plan_inference(self, record: SpanRecord, thread_id: str, depth: int) -> None:
        turn_id = _turn_id(thread_id)
        call_id = _span_uuid(self.trace_id, record.span_id)
        model = _str(record, sc.GEN_AI_REQUEST_MODEL, "gen_ai.response.model", default="unknown")
        provider = _str(record, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system", default="unknown")
        request = _inference_request_body(
            model, _response_items(record, "gen_ai.input.messages", "gen_ai.prompt")
        )

        def started(ref: RawPayloadRef | None) -> InferenceStarted | None:
            if ref is None:
                return None  # no request, no attempt (and no end for it)
            return InferenceStarted(
                inference_call_id=call_id,
                thread_id=thread_id,
                codex_turn_id=turn_id,
                model=model,
                provider_name=provider,
                request_payload=ref,
            )

        start = PlannedEvent(
            record.start_ns,
            started,
            thread_id,
            turn_id,
            PlannedPayload(PayloadKind.INFERENCE_REQUEST, request),
        )
        self._add(_OPENING, depth, start)
        if record.error is not None:
            failed = InferenceFailed(inference_call_id=call_id, error=record.error)
            end = PlannedEvent(record.end_ns, lambda _: failed, thread_id, turn_id, after=start)
        else:
            response_id = _str(record, sc.GEN_AI_RESPONSE_ID, default=f"resp_{call_id}")
            response = bodies.inference_response(
                response_id,
                None,
                _token_usage(
                    _int(record, sc.GEN_AI_USAGE_INPUT_TOKENS),
                    _int(record, sc.GEN_AI_USAGE_OUTPUT_TOKENS),
                ),
                _response_items(record, "gen_ai.output.messages", "gen_ai.completion"),
            )

            def completed(ref: RawPayloadRef | None) -> InferenceCompleted | InferenceFailed:
                if ref is None:
                    return InferenceFailed(inference_call_id=call_id, error="response lost")
                return InferenceCompleted(
                    inference_call_id=call_id, response_id=response_id, response_payload=ref
                )

            end = PlannedEvent(
                record.end_ns,
                completed,
                thread_id,
                turn_id,
                PlannedPayload(PayloadKind.INFERENCE_RESPONSE, response),
                after=start,
            )
        self._add(_CLOSING, -depth, end)

    def _plan_tool(
        self, record: SpanRecord, thread_id: str, depth: int, seen_calls: set[str]
    ) -> None:
        turn_id = _turn_id(thread_id)
        name = _str(record, sc.GEN_AI_TOOL_NAME, default=record.name.removeprefix("execute_tool "))
        visible = _str(record, sc.GEN_AI_TOOL_CALL_ID) or None
        if visible in seen_calls:
            visible = None  # a second span with the same call id: keep the first one visible
        if visible is not None:
            seen_calls.add(visible)
        tool_call_id = visible or _span_uuid(self.trace_id, record.span_id)
        arguments = record.attributes.get("gen_ai.tool.call.arguments")
        invocation = bodies.tool_invocation(
            name, None, "" if arguments is None else _json_text(arguments)
        )
        kind = bodies.tool_call_kind(name)
        self._add(
            _OPENING,
            depth,
            PlannedEvent(
                record.start_ns,
                lambda ref: ToolCallStarted(
                    tool_call_id=tool_call_id,
                    model_visible_call_id=visible,
                    requester=ModelRequester(),
                    kind=kind,
                    summary=GenericSummary(label=name),
                    invocation_payload=ref,
                ),
                thread_id,
                turn_id,
                PlannedPayload(PayloadKind.TOOL_INVOCATION, invocation),
            ),
        )
        if record.error is not None:
            result = bodies.tool_error(record.error)
            status = ExecutionStatus.FAILED
        else:
            output = _json_text(record.attributes.get("gen_ai.tool.call.result"))
            result = bodies.tool_output(tool_call_id, output)
            status = ExecutionStatus.COMPLETED
        self._add(
            _CLOSING,
            -depth,
            PlannedEvent(
                record.end_ns,
                lambda ref: ToolCallEnded(
                    tool_call_id=tool_call_id, status=status, result_payload=ref
                ),
                thread_id,
                turn_id,
                PlannedPayload(PayloadKind.TOOL_RESULT, result),
            ),
        )


# --- span attributes ---


def _span_uuid(trace_id: int, span_id: int) -> str:
    """A UUID derived from a span's ids (thread, inference and tool call ids)."""
    digest = hashlib.sha256(f"{trace_id:032x}/{span_id:016x}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _turn_id(thread_id: str) -> str:
    """The id of a thread's one turn."""
    return f"turn-{thread_id}"


def _str(record: SpanRecord, *keys: str, default: str = "") -> str:
    """The first non-empty string attribute among ``keys``."""
    for key in keys:
        value = record.attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return default


def _int(record: SpanRecord, key: str) -> int | None:
    value = record.attributes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_text(value: Any) -> str:
    """A string as is; anything else as JSON text."""
    return value if isinstance(value, str) else json.dumps(value)


def _response_items(record: SpanRecord, key: str, legacy: str) -> list[dict[str, Any]]:
    """Responses API items from ``gen_ai.*.messages`` (JSON) or legacy indexed attributes."""
    raw = record.attributes.get(key)
    messages: list[Any] = []
    if isinstance(raw, str):
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            messages = parsed
    if not messages:
        index = 0
        while f"{legacy}.{index}.content" in record.attributes:
            content = record.attributes[f"{legacy}.{index}.content"]
            role = record.attributes.get(f"{legacy}.{index}.role", "user")
            messages.append({"role": role, "parts": [{"type": "text", "content": str(content)}]})
            index += 1
    items: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user")
        texts: list[str] = []
        parts = message.get("parts")
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                items.append(
                    _function_call_item(
                        str(part.get("id", "")),
                        str(part.get("name", "")),
                        _json_text(part.get("arguments")),
                    )
                )
            elif kind == "tool_call_response":
                items.append(
                    _function_call_output_item(
                        str(part.get("id", "")), _json_text(part.get("response"))
                    )
                )
        if isinstance(message.get("content"), str):
            texts.append(message["content"])
        if texts:
            items.append(_message_item(role, "".join(texts)))
    return items


# --- Codex payload bodies and Responses API items (to share with the recording API) ---


def _session_source(
    parent_thread_id: str | None, depth: int, agent_path: str, nickname: str
) -> Any:
    """Codex's ``SessionSource``: ``"otel_rollout"`` for a root, ``thread_spawn`` for a child."""
    if parent_thread_id is None:
        return "otel_rollout"
    return {
        "subagent": {
            "thread_spawn": {
                "parent_thread_id": parent_thread_id,
                "depth": depth,
                "agent_path": agent_path,
                "agent_nickname": nickname,
                "agent_role": None,
            }
        }
    }


def _session_metadata_body(
    thread_id: str,
    agent_path: str,
    task_name: str | None,
    nickname: str,
    session_source: Any,
    *,
    model: str,
    provider_name: str,
) -> dict[str, Any]:
    """A ``session_metadata`` payload, in Codex's field order."""
    return {
        "thread_id": thread_id,
        "agent_path": agent_path,
        "task_name": task_name,
        "nickname": nickname,
        "agent_role": None,
        "session_source": session_source,
        "cwd": "",
        "rollout_path": None,
        "model": model,
        "provider_name": provider_name,
        "approval_policy": "never",
        "sandbox_policy": "",
    }


def _inference_request_body(model: str, input_items: list[dict[str, Any]]) -> dict[str, Any]:
    """An ``inference_request`` payload."""
    return {"model": model, "input": input_items}


def _token_usage(input_tokens: int | None, output_tokens: int | None) -> dict[str, int] | None:
    """Codex's token usage from the GenAI usage attributes (``None`` when neither is known)."""
    if input_tokens is None and output_tokens is None:
        return None
    return {
        "input_tokens": input_tokens or 0,
        "cached_input_tokens": 0,
        "output_tokens": output_tokens or 0,
        "reasoning_output_tokens": 0,
        "total_tokens": (input_tokens or 0) + (output_tokens or 0),
    }


def _function_call_item(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A Responses API ``function_call`` item."""
    return {"type": "function_call", "call_id": call_id, "name": name, "arguments": arguments}


def _function_call_output_item(call_id: str, output: str) -> dict[str, Any]:
    """A Responses API ``function_call_output`` item."""
    return {"type": "function_call_output", "call_id": call_id, "output": output}


def _message_item(role: str, text: str) -> dict[str, Any]:
    """A Responses API ``message`` item (assistant text is output text)."""
    text_type = "output_text" if role == "assistant" else "input_text"
    return {"type": "message", "role": role, "content": [{"type": text_type, "text": text}]}
