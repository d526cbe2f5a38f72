"""The replay loop: read a bundle's events in order, check the envelope, dispatch each event."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from msgspec.structs import force_setattr

from otel_rollout._bundle._models import (
    SCHEMA_2,
    SCHEMA_VERSIONS,
    AgentResultObserved,
    CodeCellEnded,
    CodeCellInitialResponse,
    CodeCellStarted,
    CodeCellWaitTargetResolved,
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
    McpToolCallCorrelationAssigned,
    Other,
    PayloadKind,
    ProtocolEventObserved,
    RawPayloadKind,
    RawPayloadRef,
    RawTraceEvent,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    StdinTargetResolved,
    ThreadEnded,
    ThreadResumed,
    ThreadStarted,
    ToolCallEnded,
    ToolCallRuntimeEnded,
    ToolCallRuntimeStarted,
    ToolCallStarted,
)
from otel_rollout._bundle._reader import Bundle, BundleError, decode_event
from otel_rollout._reduce import (
    _code_cells,
    _compaction,
    _conversation,
    _edges,
    _inference,
    _terminals,
    _threads,
    _tools,
)
from otel_rollout._reduce._model import RecordingStatus, RolloutTrace
from otel_rollout._reduce._state import ReduceError, ReducerState, new_trace

Handler = Callable[[ReducerState, RawTraceEvent, Any], None]


def reduce_bundle(
    path: str | os.PathLike[str] | Bundle,
    *,
    warn: Callable[[str], None] | None = None,
    on_event: Callable[[int, RawTraceEvent], None] | None = None,
) -> RolloutTrace:
    """Reduce the bundle at ``path`` to a :class:`RolloutTrace`, as ``codex debug trace-reduce``.

    Strict where Codex 0.169.0 is strict: any malformed line, envelope, reference or
    payload raises. A torn last line (bytes after the last newline, from a crash) is
    dropped with a warning, passed to ``warn`` (default: the ``otel_rollout`` logger).
    ``path`` may be a :class:`Bundle` already open; ``on_event`` is given each event the
    reducer accepted, with its line number, once its payloads were read (replay maps it then).

    Raises:
        BundleError: The bundle is malformed; names the file, the line and the reason.
    """
    bundle = path if isinstance(path, Bundle) else Bundle(path)
    manifest = bundle.manifest
    schema = manifest.schema_version
    if schema not in SCHEMA_VERSIONS:
        raise BundleError(
            bundle.manifest_path,
            0,
            f"unsupported schema_version {schema} (schema 2 is reduced as Codex 0.169.0, "
            "schema 3 as Codex 0.171.0)",
        )
    state = ReducerState(
        bundle=bundle,
        schema=schema,
        trace=new_trace(
            schema_version=schema,
            trace_id=manifest.trace_id,
            rollout_id=manifest.rollout_id,
            root_thread_id=manifest.root_thread_id,
            started_at_unix_ms=manifest.started_at_unix_ms,
        ),
    )
    log_path = bundle.event_log_path
    expected_seq = 1
    completed = False
    rollout_id = manifest.rollout_id
    raw_payloads = state.trace.raw_payloads
    ids: dict[str, str] = {}
    number = 0
    for line in bundle.lines():
        number = line.number
        data = line.data
        if not data.strip():
            continue
        if completed:
            raise BundleError(log_path, number, "event after recording_completed")
        try:
            event = decode_event(data)
        except ValueError as error:
            raise BundleError(log_path, number, str(error)) from None
        if event.schema_version != schema:
            raise BundleError(
                log_path, number, f"unsupported event schema_version {event.schema_version}"
            )
        if event.seq != expected_seq:
            raise BundleError(
                log_path,
                number,
                f"missing or reordered event: seq {event.seq}, expected {expected_seq}",
            )
        if event.rollout_id != rollout_id:
            raise BundleError(
                log_path,
                number,
                f"event of another rollout ({event.rollout_id}, manifest says {rollout_id})",
            )
        expected_seq += 1
        _share_ids(ids, event)
        payload = event.payload
        refs = _keep_refs(raw_payloads, payload)
        try:
            state.load_event_payloads(refs)
            _HANDLERS[type(payload)](state, event, payload)
        except ReduceError as error:
            raise BundleError(log_path, number, str(error)) from None
        if on_event is not None:
            on_event(number, event)
        if type(payload) is RecordingCompleted:
            completed = True
    torn = bundle.torn_tail_size()
    if torn:
        message = (
            f"{log_path}:{number + 1}: dropped a torn last line ({torn} bytes after the "
            "last newline)"
        )
        if warn is None:
            import logging  # only here: the command line passes ``warn``, and starts faster

            logging.getLogger("otel_rollout").warning("%s", message)
        else:
            warn(message)
    try:
        _edges.resolve_spawn_fallbacks(state)
        _terminals.finish_replay(state)
    except ReduceError as error:
        raise BundleError(log_path, number, str(error)) from None
    _conversation.apply_acceptances(state)
    trace = state.trace
    del state, bundle  # the indexes and the payload cache go before the maps are copied sorted
    if schema == SCHEMA_2:
        trace.recording_complete = completed
    else:
        trace.recording_status = _recording_status(completed, raw_payloads)
    _sort_maps(trace)
    return trace


def _share_ids(ids: dict[str, str], event: RawTraceEvent) -> None:
    """Give the event the thread and turn ids, models and providers earlier events named,
    as the very strings they had: one copy of each in memory, however many items, calls and
    index keys of the trace hold it."""
    for holder in (event, event.payload):
        for name in _SHARED_FIELDS:
            value = getattr(holder, name, None)
            if type(value) is str:
                shared = ids.setdefault(value, value)
                if shared is not value:
                    force_setattr(holder, name, shared)


_SHARED_FIELDS = ("thread_id", "codex_turn_id", "model", "provider_name")
"""Fields, of an event or its payload, whose few values every event repeats."""


def _keep_refs(raw_payloads: dict[str, RawPayloadRef], payload: Any) -> list[RawPayloadRef]:
    """Keep the payload refs of an event in ``raw_payloads`` (a later ref replaces one of
    the same id, as in Codex's map) and return them, in Codex's order.

    A ref equal to the one kept for its id (a payload that many events name, as schema 3's
    shared prompt items) is replaced, in the event, by the kept one: the trace holds one.
    """
    if isinstance(payload, Other):
        payload.payloads[:] = [_keep_ref(raw_payloads, ref) for ref in payload.payloads]
        return list(payload.payloads)
    refs: list[RawPayloadRef] = []
    for name in payload.__struct_fields__:
        value = getattr(payload, name)
        if isinstance(value, RawPayloadRef):
            kept = _keep_ref(raw_payloads, value)
            if kept is not value:
                force_setattr(payload, name, kept)
            refs.append(kept)
    return refs


def _keep_ref(raw_payloads: dict[str, RawPayloadRef], ref: RawPayloadRef) -> RawPayloadRef:
    """``ref``, or the equal ref already kept; kept, with its nested ``parts`` (schema 3)."""
    kept = raw_payloads.get(ref.raw_payload_id)
    if kept is not None:
        if kept == ref:
            return kept
        force_setattr(ref, "raw_payload_id", kept.raw_payload_id)
    kind = _KINDS.setdefault(ref.kind.type, ref.kind)
    if kind is not ref.kind:
        force_setattr(ref, "kind", kind)
    raw_payloads[ref.raw_payload_id] = ref
    if isinstance(ref.parts, list):
        ref.parts[:] = [_keep_ref(raw_payloads, part) for part in ref.parts]
    return ref


_KINDS: dict[PayloadKind, RawPayloadKind] = {}
"""One (immutable) ``RawPayloadKind`` per kind, shared by every ref."""


def _recording_status(completed: bool, raw_payloads: dict[str, RawPayloadRef]) -> RecordingStatus:
    """Schema 3: ``unclosed`` without ``recording_completed``, else whether a payload was cut."""
    if not completed:
        return RecordingStatus.UNCLOSED
    if any(ref.capture for ref in raw_payloads.values()):
        return RecordingStatus.CLOSED_WITH_PARTIAL_PAYLOADS
    return RecordingStatus.COMPLETE


def _sort_maps(trace: RolloutTrace) -> None:
    """Order every map by key, as Codex's ``BTreeMap`` serializes."""
    for name in (
        "threads",
        "codex_turns",
        "conversation_items",
        "inference_calls",
        "code_cells",
        "tool_calls",
        "terminal_sessions",
        "terminal_operations",
        "compactions",
        "compaction_requests",
        "interaction_edges",
        "raw_payloads",
    ):
        mapping: dict[str, Any] = getattr(trace, name)
        setattr(trace, name, {key: mapping[key] for key in sorted(mapping)})


# --- handlers: one per event type ---


def _rollout_started(state: ReducerState, event: RawTraceEvent, p: RolloutStarted) -> None:
    state.trace.trace_id = p.trace_id
    state.trace.root_thread_id = p.root_thread_id


def _rollout_ended(state: ReducerState, event: RawTraceEvent, p: RolloutEnded) -> None:
    state.trace.status = p.status
    state.trace.ended_at_unix_ms = event.wall_time_unix_ms


def _thread_started(state: ReducerState, event: RawTraceEvent, p: ThreadStarted) -> None:
    _threads.start_thread(
        state, event.seq, event.wall_time_unix_ms, p.thread_id, p.agent_path, p.metadata_payload
    )


def _thread_resumed(state: ReducerState, event: RawTraceEvent, p: ThreadResumed) -> None:
    _threads.resume_thread(state, p.thread_id)


def _thread_ended(state: ReducerState, event: RawTraceEvent, p: ThreadEnded) -> None:
    _threads.end_thread(state, event.seq, event.wall_time_unix_ms, p.thread_id, p.status)


def _turn_started(state: ReducerState, event: RawTraceEvent, p: CodexTurnStarted) -> None:
    _threads.start_turn(state, event.seq, event.wall_time_unix_ms, p.codex_turn_id, p.thread_id)


def _turn_ended(state: ReducerState, event: RawTraceEvent, p: CodexTurnEnded) -> None:
    _threads.end_turn(
        state, event.seq, event.wall_time_unix_ms, event.thread_id, p.codex_turn_id, p.status
    )


def _history_item_accepted(
    state: ReducerState, event: RawTraceEvent, p: HistoryItemAccepted
) -> None:
    thread_id = event.thread_id
    if thread_id is None:
        raise ReduceError("history acceptance has no thread")
    _conversation.accept(
        state,
        event.wall_time_unix_ms,
        event.seq,
        thread_id,
        event.codex_turn_id,
        p.item_id,
        p.agent_message_payload,
        p.tool_output_payload,
    )


def _inference_started(state: ReducerState, event: RawTraceEvent, p: InferenceStarted) -> None:
    _inference.start(state, event.seq, event.wall_time_unix_ms, p)


def _inference_finished(
    state: ReducerState,
    event: RawTraceEvent,
    p: InferenceCompleted | InferenceFailed | InferenceCancelled,
) -> None:
    _inference.finish(state, event.seq, event.wall_time_unix_ms, p)


def _protocol_event(state: ReducerState, event: RawTraceEvent, p: ProtocolEventObserved) -> None:
    """Evidence only: its payload ref is kept in ``raw_payloads``."""


def _recording_completed(state: ReducerState, event: RawTraceEvent, p: RecordingCompleted) -> None:
    """Marks the end of the log; later events are rejected by the loop."""


def _tool_started(state: ReducerState, event: RawTraceEvent, p: ToolCallStarted) -> None:
    _tools.start(state, event.seq, event.wall_time_unix_ms, event.thread_id, event.codex_turn_id, p)


def _mcp_correlation(
    state: ReducerState, event: RawTraceEvent, p: McpToolCallCorrelationAssigned
) -> None:
    _tools.correlate_mcp(state, p.tool_call_id, p.mcp_call_id)


def _stdin_target(state: ReducerState, event: RawTraceEvent, p: StdinTargetResolved) -> None:
    _terminals.resolve_stdin_target(state, p.tool_call_id, p.exec_tool_call_id)


def _runtime_started(state: ReducerState, event: RawTraceEvent, p: ToolCallRuntimeStarted) -> None:
    _tools.runtime_start(state, event.seq, event.wall_time_unix_ms, p)


def _runtime_ended(state: ReducerState, event: RawTraceEvent, p: ToolCallRuntimeEnded) -> None:
    _tools.runtime_end(state, event.seq, event.wall_time_unix_ms, p)


def _tool_ended(state: ReducerState, event: RawTraceEvent, p: ToolCallEnded) -> None:
    _tools.end(
        state, event.seq, event.wall_time_unix_ms, p.tool_call_id, p.status, p.result_payload
    )


def _wait_target(state: ReducerState, event: RawTraceEvent, p: CodeCellWaitTargetResolved) -> None:
    _code_cells.resolve_wait_target(state, event.thread_id, p.tool_call_id, p.runtime_cell_id)


def _code_cell_started(state: ReducerState, event: RawTraceEvent, p: CodeCellStarted) -> None:
    thread_id = _code_cells.event_thread_id(
        state, event.thread_id, event.codex_turn_id, p.runtime_cell_id, "code cell start"
    )
    _code_cells.start(
        state,
        event.seq,
        event.wall_time_unix_ms,
        thread_id,
        event.codex_turn_id,
        p.runtime_cell_id,
        p.model_visible_call_id,
        p.source_js,
    )


def _reduced_cell(
    state: ReducerState, event: RawTraceEvent, runtime_cell_id: str, name: str
) -> str:
    """The reduced id of the cell a lifecycle event names by its runtime id."""
    thread_id = _code_cells.event_thread_id(
        state, event.thread_id, event.codex_turn_id, runtime_cell_id, name
    )
    return _code_cells.runtime_cell(state, thread_id, runtime_cell_id, name)


def _code_cell_initial(
    state: ReducerState, event: RawTraceEvent, p: CodeCellInitialResponse
) -> None:
    cell_id = _reduced_cell(state, event, p.runtime_cell_id, "code cell initial response")
    payload_id = p.response_payload.raw_payload_id if p.response_payload is not None else None
    _code_cells.initial_response(
        state, event.seq, event.wall_time_unix_ms, cell_id, p.runtime_cell_id, p.status, payload_id
    )


def _code_cell_ended(state: ReducerState, event: RawTraceEvent, p: CodeCellEnded) -> None:
    cell_id = _reduced_cell(state, event, p.runtime_cell_id, "code cell end")
    payload_id = p.response_payload.raw_payload_id if p.response_payload is not None else None
    _code_cells.end(state, event.seq, event.wall_time_unix_ms, cell_id, p.status, payload_id)


def _compaction_started(
    state: ReducerState, event: RawTraceEvent, p: CompactionRequestStarted
) -> None:
    _compaction.start_request(state, event.seq, event.wall_time_unix_ms, p)


def _compaction_completed(
    state: ReducerState, event: RawTraceEvent, p: CompactionRequestCompleted
) -> None:
    _compaction.finish_request(
        state,
        event.seq,
        event.wall_time_unix_ms,
        p.compaction_id,
        p.compaction_request_id,
        ExecutionStatus.COMPLETED,
        p.response_payload,
    )


def _compaction_failed(
    state: ReducerState, event: RawTraceEvent, p: CompactionRequestFailed
) -> None:
    _compaction.finish_request(
        state,
        event.seq,
        event.wall_time_unix_ms,
        p.compaction_id,
        p.compaction_request_id,
        ExecutionStatus.FAILED,
        None,
    )


def _compaction_installed(
    state: ReducerState, event: RawTraceEvent, p: CompactionInstalled
) -> None:
    _compaction.install(state, event.wall_time_unix_ms, event.thread_id, event.codex_turn_id, p)


def _agent_result(state: ReducerState, event: RawTraceEvent, p: AgentResultObserved) -> None:
    _edges.agent_result(state, event.wall_time_unix_ms, p)


def _other(state: ReducerState, event: RawTraceEvent, p: Other) -> None:
    raise ReduceError("raw trace event has no reducer implementation")


_HANDLERS: dict[type, Handler] = {
    RolloutStarted: _rollout_started,
    RolloutEnded: _rollout_ended,
    ThreadStarted: _thread_started,
    ThreadResumed: _thread_resumed,
    ThreadEnded: _thread_ended,
    CodexTurnStarted: _turn_started,
    CodexTurnEnded: _turn_ended,
    HistoryItemAccepted: _history_item_accepted,
    InferenceStarted: _inference_started,
    InferenceCompleted: _inference_finished,
    InferenceFailed: _inference_finished,
    InferenceCancelled: _inference_finished,
    ProtocolEventObserved: _protocol_event,
    RecordingCompleted: _recording_completed,
    ToolCallStarted: _tool_started,
    McpToolCallCorrelationAssigned: _mcp_correlation,
    StdinTargetResolved: _stdin_target,
    CodeCellWaitTargetResolved: _wait_target,
    ToolCallRuntimeStarted: _runtime_started,
    ToolCallRuntimeEnded: _runtime_ended,
    ToolCallEnded: _tool_ended,
    CodeCellStarted: _code_cell_started,
    CodeCellInitialResponse: _code_cell_initial,
    CodeCellEnded: _code_cell_ended,
    CompactionRequestStarted: _compaction_started,
    CompactionRequestCompleted: _compaction_completed,
    CompactionRequestFailed: _compaction_failed,
    CompactionInstalled: _compaction_installed,
    AgentResultObserved: _agent_result,
    Other: _other,
}
