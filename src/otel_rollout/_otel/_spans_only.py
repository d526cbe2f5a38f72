"""Bundles from spans alone: GenAI spans that no recording API fed live.

Spans of other instrumentations (or of any pipeline built by ``opentelemetry-instrument``
with ``OTEL_TRACES_EXPORTER=...,rollout_bundle``) reach the exporter only when they
end, children first. The assembler buffers a trace's spans until its local root span
ends (spilling to a file past a size bound), then writes one bundle per top-level
``invoke_agent`` span (or one per trace when there is none) in recorded order:

* ``invoke_agent`` spans become threads (nested ones are child threads), each with one turn;
* ``chat`` (and other inference) spans become inference attempts, their
  ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (when captured) the request
  and response items;
* ``execute_tool`` spans become tool calls.

Other spans only give structure. Ids derive from the trace and span ids, so a trace
gives the same bundle every time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_rollout import _errors
from otel_rollout import semconv as sc
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
from otel_rollout._bundle._writer import BundleWriter
from otel_rollout._errors import Component
from otel_rollout._otel._mapping import uuid_from_trace_id

logger = logging.getLogger(__name__)

DEFAULT_MAX_BUFFERED_BYTES = 32 * 1024 * 1024
"""Past this many buffered bytes, the biggest trace buffer is spilled to disk."""
_MAX_FLUSHED_TRACES = 4096
_INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_KEPT_PREFIXES = ("gen_ai.", "error.type")


class SpanRecord(msgspec.Struct, array_like=True):
    """What the assembler keeps of one finished span."""

    span_id: int
    parent_id: int
    name: str
    start_ns: int
    end_ns: int
    error: str | None
    attributes: dict[str, Any]

    @property
    def operation(self) -> str | None:
        """``gen_ai.operation.name``, if any."""
        value = self.attributes.get(sc.GEN_AI_OPERATION_NAME)
        return value if isinstance(value, str) else None


_record_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(SpanRecord)


def _record(span: ReadableSpan) -> SpanRecord:
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


@dataclass
class _TraceBuffer:
    records: list[SpanRecord] = field(default_factory=list)
    size: int = 0
    spill: Path | None = None
    has_genai: bool = False


class SpansOnlyAssembler:
    """Buffers foreign spans per trace and writes their bundles when the trace's root ends."""

    def __init__(
        self, trace_root: Path, *, max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES
    ) -> None:
        """Write bundles under ``trace_root``; spill buffers past ``max_buffered_bytes``."""
        self.trace_root = trace_root
        self.max_buffered_bytes = max_buffered_bytes
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
                record = _record(span)
                buffer = self._traces.setdefault(trace_id, _TraceBuffer())
                buffer.records.append(record)
                size = 256 + sum(len(str(value)) for value in record.attributes.values())
                buffer.size += size
                self._buffered += size
                buffer.has_genai = buffer.has_genai or record.operation is not None
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
            spill_dir.mkdir(parents=True, exist_ok=True)
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
            return
        try:
            for root, members in _rollouts(records):
                path = _write_bundle(self.trace_root, trace_id, root, members)
                if path is not None:
                    self.bundles_written.append(path)
        except Exception:
            _errors.background_error(Component.SPANS_ONLY, "building a bundle from spans")


# --- from span records to rollouts ---


def _rollouts(records: list[SpanRecord]) -> Iterable[tuple[SpanRecord, list[SpanRecord]]]:
    """Yield each rollout's root agent span (maybe synthetic) and its member spans."""
    by_id = {record.span_id: record for record in records}

    def nearest_agent(record: SpanRecord) -> SpanRecord | None:
        seen = 0
        current = by_id.get(record.parent_id)
        while current is not None and seen < 10_000:
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


def _thread_id(trace_id: int, span_id: int) -> str:
    digest = hashlib.sha256(f"{trace_id:032x}/{span_id:016x}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _str(record: SpanRecord, *keys: str, default: str = "") -> str:
    for key in keys:
        value = record.attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return default


def _int(record: SpanRecord, key: str) -> int | None:
    value = record.attributes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _messages(record: SpanRecord, key: str, legacy: str) -> list[dict[str, Any]]:
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
                arguments = part.get("arguments")
                items.append(
                    {
                        "type": "function_call",
                        "call_id": str(part.get("id", "")),
                        "name": str(part.get("name", "")),
                        "arguments": arguments
                        if isinstance(arguments, str)
                        else json.dumps(arguments),
                    }
                )
            elif kind == "tool_call_response":
                response = part.get("response")
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": str(part.get("id", "")),
                        "output": response if isinstance(response, str) else json.dumps(response),
                    }
                )
        if isinstance(message.get("content"), str):
            texts.append(message["content"])
        if texts:
            text_type = "output_text" if role == "assistant" else "input_text"
            items.append(
                {
                    "type": "message",
                    "role": role,
                    "content": [{"type": text_type, "text": "".join(texts)}],
                }
            )
    return items


@dataclass(order=True)
class _Planned:
    time_ns: int
    phase: int
    depth: float
    order: int
    build: Any = field(compare=False)


def _write_bundle(
    trace_root: Path, trace_id: int, root: SpanRecord, members: list[SpanRecord]
) -> Path | None:
    """Write one rollout's bundle; ``None`` if it could not be created."""
    agents = sorted(
        [member for member in members if member.operation == sc.OPERATION_INVOKE_AGENT],
        key=lambda record: (record.start_ns, record.span_id),
    )
    if root not in agents:
        agents.insert(0, root)
    thread_ids = {agent.span_id: _thread_id(trace_id, agent.span_id) for agent in agents}
    by_id = {member.span_id: member for member in members}
    root_thread = thread_ids[root.span_id]

    def thread_of(record: SpanRecord) -> SpanRecord:
        current = by_id.get(record.parent_id)
        while current is not None:
            if current.span_id in thread_ids:
                return current
            current = by_id.get(current.parent_id)
        return root

    try:
        writer = BundleWriter.create(
            trace_root,
            root_thread_id=root_thread,
            trace_id=uuid_from_trace_id(trace_id),
            started_at_unix_ms=root.start_ns // 1_000_000,
        )
    except OSError as error:
        logger.warning("rollout trace: creating a bundle from spans failed: %s", error)
        return None
    plan: list[_Planned] = []
    order = 0

    def at(time_ns: int, phase: int, depth: float, build: Any) -> None:
        nonlocal order
        order += 1
        plan.append(_Planned(time_ns, phase, depth, order, build))

    at(
        root.start_ns,
        0,
        -1,
        lambda: (
            RolloutStarted(trace_id=writer.manifest.trace_id, root_thread_id=root_thread),
            None,
            None,
        ),
    )
    depth_of: dict[int, int] = {}
    for agent in agents:
        parent_agent = thread_of(agent) if agent is not root else None
        depth = 0 if parent_agent is None else depth_of.get(parent_agent.span_id, 0) + 1
        depth_of[agent.span_id] = depth
        _plan_thread(at, writer, agent, thread_ids, parent_agent, depth)
    seen_calls: set[str] = set()
    for member in members:
        if member.span_id in thread_ids:
            continue
        agent = thread_of(member)
        thread_id = thread_ids[agent.span_id]
        turn_id = f"turn-{thread_id}"
        depth = depth_of.get(agent.span_id, 0) + 1
        if member.operation == sc.OPERATION_EXECUTE_TOOL:
            _plan_tool(at, writer, member, thread_id, turn_id, depth, trace_id, seen_calls)
        elif member.operation in _INFERENCE_OPERATIONS:
            _plan_inference(at, writer, member, thread_id, turn_id, depth, trace_id)
    status = RolloutStatus.FAILED if root.error else RolloutStatus.COMPLETED
    at(root.end_ns, 1, 1, lambda: (RolloutEnded(status=status), None, None))
    at(root.end_ns, 1, 2, lambda: (RecordingCompleted(), None, None))
    for planned in sorted(plan):
        payload, thread_id, turn_id = planned.build()
        if payload is None:
            continue
        if (
            writer.append(
                payload,
                thread_id=thread_id,
                codex_turn_id=turn_id,
                wall_time_unix_ms=planned.time_ns // 1_000_000,
            )
            is None
        ):
            break
    writer.close()
    return writer.bundle_dir


def _plan_thread(
    at: Any,
    writer: BundleWriter,
    agent: SpanRecord,
    thread_ids: dict[int, str],
    parent_agent: SpanRecord | None,
    depth: int,
) -> None:
    thread_id = thread_ids[agent.span_id]
    name = _str(agent, sc.GEN_AI_AGENT_NAME, default="agent")
    slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "agent"
    agent_path = "/root" if parent_agent is None else f"/root/{slug}"
    source: Any = "otel_rollout"
    if parent_agent is not None:
        source = {
            "subagent": {
                "thread_spawn": {
                    "parent_thread_id": thread_ids[parent_agent.span_id],
                    "depth": depth,
                    "agent_path": agent_path,
                    "agent_nickname": name,
                    "agent_role": None,
                }
            }
        }
    metadata = {
        "thread_id": thread_id,
        "agent_path": agent_path,
        "task_name": None if parent_agent is None else slug,
        "nickname": name,
        "agent_role": None,
        "session_source": source,
        "cwd": "",
        "rollout_path": None,
        "model": _str(agent, sc.GEN_AI_REQUEST_MODEL),
        "provider_name": _str(agent, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system"),
        "approval_policy": "never",
        "sandbox_policy": "",
    }
    turn_id = f"turn-{thread_id}"
    status = RolloutStatus.FAILED if agent.error else RolloutStatus.COMPLETED
    turn_status = ExecutionStatus.FAILED if agent.error else ExecutionStatus.COMPLETED

    def started() -> tuple[RawTraceEventPayload, None, None]:
        ref = writer.write_payload(PayloadKind.SESSION_METADATA, metadata)
        return (
            ThreadStarted(thread_id=thread_id, agent_path=agent_path, metadata_payload=ref),
            None,
            None,
        )

    at(agent.start_ns, 0, depth, started)
    at(
        agent.start_ns,
        0,
        depth + 0.5,
        lambda: (CodexTurnStarted(codex_turn_id=turn_id, thread_id=thread_id), thread_id, turn_id),
    )
    at(
        agent.end_ns,
        1,
        -(depth + 0.5),
        lambda: (CodexTurnEnded(codex_turn_id=turn_id, status=turn_status), thread_id, turn_id),
    )
    at(
        agent.end_ns,
        1,
        -depth,
        lambda: (ThreadEnded(thread_id=thread_id, status=status), None, None),
    )


def _plan_inference(
    at: Any,
    writer: BundleWriter,
    record: SpanRecord,
    thread_id: str,
    turn_id: str,
    depth: int,
    trace_id: int,
) -> None:
    call_id = _thread_id(trace_id, record.span_id)
    model = _str(record, sc.GEN_AI_REQUEST_MODEL, "gen_ai.response.model", default="unknown")
    provider = _str(record, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system", default="unknown")
    ok: list[bool] = []

    def started() -> tuple[RawTraceEventPayload, str, str] | tuple[None, None, None]:
        request = {
            "model": model,
            "input": _messages(record, "gen_ai.input.messages", "gen_ai.prompt"),
        }
        ref = writer.write_payload(PayloadKind.INFERENCE_REQUEST, request)
        if ref is None:
            return None, None, None
        ok.append(True)
        return (
            InferenceStarted(
                inference_call_id=call_id,
                thread_id=thread_id,
                codex_turn_id=turn_id,
                model=model,
                provider_name=provider,
                request_payload=ref,
            ),
            thread_id,
            turn_id,
        )

    def ended() -> tuple[RawTraceEventPayload, str, str] | tuple[None, None, None]:
        if not ok:
            return None, None, None
        if record.error is not None:
            return (
                InferenceFailed(inference_call_id=call_id, error=record.error),
                thread_id,
                turn_id,
            )
        input_tokens = _int(record, sc.GEN_AI_USAGE_INPUT_TOKENS)
        output_tokens = _int(record, sc.GEN_AI_USAGE_OUTPUT_TOKENS)
        usage = None
        if input_tokens is not None or output_tokens is not None:
            usage = {
                "input_tokens": input_tokens or 0,
                "cached_input_tokens": 0,
                "output_tokens": output_tokens or 0,
                "reasoning_output_tokens": 0,
                "total_tokens": (input_tokens or 0) + (output_tokens or 0),
            }
        response_id = _str(record, sc.GEN_AI_RESPONSE_ID, default=f"resp_{call_id}")
        response = {
            "response_id": response_id,
            "upstream_request_id": None,
            "token_usage": usage,
            "output_items": _messages(record, "gen_ai.output.messages", "gen_ai.completion"),
        }
        ref = writer.write_payload(PayloadKind.INFERENCE_RESPONSE, response)
        if ref is None:
            return (
                InferenceFailed(inference_call_id=call_id, error="response lost"),
                thread_id,
                turn_id,
            )
        return (
            InferenceCompleted(
                inference_call_id=call_id, response_id=response_id, response_payload=ref
            ),
            thread_id,
            turn_id,
        )

    at(record.start_ns, 0, depth, started)
    at(record.end_ns, 1, -depth, ended)


def _plan_tool(
    at: Any,
    writer: BundleWriter,
    record: SpanRecord,
    thread_id: str,
    turn_id: str,
    depth: int,
    trace_id: int,
    seen_calls: set[str],
) -> None:
    from otel_rollout._bundle._bodies import tool_call_kind

    name = _str(record, sc.GEN_AI_TOOL_NAME, default=record.name.removeprefix("execute_tool "))
    visible = _str(record, sc.GEN_AI_TOOL_CALL_ID) or None
    if visible in seen_calls:
        visible = None
    if visible is not None:
        seen_calls.add(visible)
    tool_call_id = visible or _thread_id(trace_id, record.span_id)
    arguments = record.attributes.get("gen_ai.tool.call.arguments")
    result = record.attributes.get("gen_ai.tool.call.result")

    def started() -> tuple[RawTraceEventPayload, str, str]:
        text = arguments if isinstance(arguments, str) else json.dumps(arguments)
        invocation = {
            "tool_name": name,
            "tool_namespace": None,
            "payload": {"type": "function", "arguments": text if arguments is not None else ""},
        }
        ref = writer.write_payload(PayloadKind.TOOL_INVOCATION, invocation)
        return (
            ToolCallStarted(
                tool_call_id=tool_call_id,
                model_visible_call_id=visible,
                requester=ModelRequester(),
                kind=tool_call_kind(name),
                summary=GenericSummary(label=name),
                invocation_payload=ref,
            ),
            thread_id,
            turn_id,
        )

    def ended() -> tuple[RawTraceEventPayload, str, str]:
        if record.error is not None:
            body: dict[str, Any] = {"type": "error", "error": record.error}
            status = ExecutionStatus.FAILED
        else:
            body = {
                "type": "direct_response",
                "response_item": {
                    "type": "function_call_output",
                    "call_id": tool_call_id,
                    "output": result if isinstance(result, str) else json.dumps(result),
                },
            }
            status = ExecutionStatus.COMPLETED
        ref = writer.write_payload(PayloadKind.TOOL_RESULT, body)
        return (
            ToolCallEnded(tool_call_id=tool_call_id, status=status, result_payload=ref),
            thread_id,
            turn_id,
        )

    at(record.start_ns, 0, depth, started)
    at(record.end_ns, 1, -depth, ended)
