"""Code-mode cells: model-authored JavaScript, with nested tools, waits and outputs.

A cell materializes only once its model-visible ``custom_tool_call`` item exists;
until then its start and lifecycle events wait in queues (Codex's rule).
"""

from __future__ import annotations

from typing import Any

import msgspec

from otel_rollout._bundle._models import (
    CodeCellRuntimeStatus,
    ExecutionStatus,
    OtherKind,
    RawPayloadRef,
    ToolCallKind,
)
from otel_rollout._reduce._model import CodeCell, CodeCellProducer, ExecutionWindow
from otel_rollout._reduce._state import (
    PendingCodeCellEvent,
    PendingCodeCellStart,
    ReduceError,
    ReducerState,
    push_unique,
)

_EXECUTION_STATUS = {
    CodeCellRuntimeStatus.STARTING: ExecutionStatus.RUNNING,
    CodeCellRuntimeStatus.RUNNING: ExecutionStatus.RUNNING,
    CodeCellRuntimeStatus.YIELDED: ExecutionStatus.RUNNING,
    CodeCellRuntimeStatus.COMPLETED: ExecutionStatus.COMPLETED,
    CodeCellRuntimeStatus.FAILED: ExecutionStatus.FAILED,
    CodeCellRuntimeStatus.TERMINATED: ExecutionStatus.CANCELLED,
}
_SOURCE_KIND = frozenset({"custom_tool_call"})
_OUTPUT_KIND = frozenset({"custom_tool_call_output"})


def code_cell_id(model_visible_call_id: str) -> str:
    """The reduced id of the cell started by a model-visible ``exec`` call."""
    return f"code_cell:{model_visible_call_id}"


def starts_cells(kind: ToolCallKind) -> bool:
    """Whether a tool call of this kind is the code-mode ``exec`` that starts a cell.

    A tool call of another kind with the cell's model-visible call id is not linked to it.
    """
    return isinstance(kind, OtherKind) and kind.name == "exec"


def started_cell_for_call(
    state: ReducerState, model_visible_call_id: str | None, kind: ToolCallKind
) -> str | None:
    """The (materialized) cell a tool call with this model-visible call id started."""
    if model_visible_call_id is None or not starts_cells(kind):
        return None
    cell_id = code_cell_id(model_visible_call_id)
    return cell_id if cell_id in state.trace.code_cells else None


def event_thread_id(
    state: ReducerState,
    thread_id: str | None,
    turn_id: str | None,
    runtime_cell_id: str,
    event_name: str,
) -> str:
    """The envelope thread, else the envelope turn's thread."""
    if thread_id is not None:
        return thread_id
    if turn_id is None:
        raise ReduceError(f"{event_name} {runtime_cell_id} did not include a thread id")
    turn = state.trace.codex_turns.get(turn_id)
    if turn is None:
        raise ReduceError(f"{event_name} {runtime_cell_id} referenced unknown Codex turn {turn_id}")
    return turn.thread_id


def runtime_cell(state: ReducerState, thread_id: str, runtime_cell_id: str, event_name: str) -> str:
    """The reduced cell id of a runtime cell id."""
    found = state.code_cell_ids_by_runtime.get((thread_id, runtime_cell_id))
    if found is None:
        raise ReduceError(
            f"{event_name} referenced unknown runtime cell {runtime_cell_id} in thread {thread_id}"
        )
    return found


def start(
    state: ReducerState,
    seq: int,
    wall: int,
    thread_id: str,
    turn_id: str | None,
    runtime_cell_id: str,
    model_visible_call_id: str,
    source_js: str,
) -> None:
    """``code_cell_started``: map the runtime id, then start the cell or queue the start."""
    cell_id = code_cell_id(model_visible_call_id)
    key = (thread_id, runtime_cell_id)
    existing = state.code_cell_ids_by_runtime.get(key)
    if existing is not None and existing != cell_id:
        raise ReduceError(
            f"runtime code cell {runtime_cell_id} in thread {thread_id} mapped to both "
            f"{existing} and {cell_id}"
        )
    state.code_cell_ids_by_runtime[key] = cell_id
    pending = PendingCodeCellStart(
        seq, wall, thread_id, turn_id, cell_id, runtime_cell_id, model_visible_call_id, source_js
    )
    if not state.items_for_call(thread_id, model_visible_call_id, _SOURCE_KIND):
        if cell_id in state.trace.code_cells or cell_id in state.pending_code_cell_starts:
            raise ReduceError(f"duplicate code cell start for {cell_id}")
        state.pending_code_cell_starts[cell_id] = pending
        return
    _materialize(state, pending)


def flush_pending_starts(state: ReducerState) -> None:
    """Materialize queued starts (key order) whose source item now exists."""
    pending = state.pending_code_cell_starts
    if not pending:
        return
    ready = [
        cell_id
        for cell_id in sorted(pending)
        if state.items_for_call(
            pending[cell_id].thread_id, pending[cell_id].model_visible_call_id, _SOURCE_KIND
        )
    ]
    for cell_id in ready:
        start_event = pending.pop(cell_id, None)
        if start_event is not None:
            _materialize(state, start_event)


def _materialize(state: ReducerState, pending: PendingCodeCellStart) -> None:
    trace = state.trace
    cell_id = pending.code_cell_id
    if cell_id in trace.code_cells:
        raise ReduceError(f"duplicate code cell start for {cell_id}")
    turn_id = pending.codex_turn_id
    if turn_id is None:
        raise ReduceError(f"code cell start {cell_id} did not include a Codex turn id")
    thread_id = pending.thread_id
    if thread_id not in trace.threads:
        raise ReduceError(f"code cell start referenced unknown thread {thread_id}")
    turn = trace.codex_turns.get(turn_id)
    if turn is None:
        raise ReduceError(f"code cell start referenced unknown Codex turn {turn_id}")
    if turn.thread_id != thread_id:
        raise ReduceError(
            f"code cell start used thread {thread_id}, but Codex turn {turn_id} belongs "
            f"to {turn.thread_id}"
        )
    call_id = pending.model_visible_call_id
    sources = state.items_for_call(thread_id, call_id, _SOURCE_KIND)
    if not sources:
        raise ReduceError(
            f"code cell {cell_id} referenced model-visible call {call_id}, "
            "but no custom tool call item was observed"
        )
    outputs = state.items_for_call(thread_id, call_id, _OUTPUT_KIND)
    nested = sorted(state.tools_by_code_cell.get(cell_id, ()))
    trace.code_cells[cell_id] = CodeCell(
        code_cell_id=cell_id,
        model_visible_call_id=call_id,
        thread_id=thread_id,
        codex_turn_id=turn_id,
        source_item_id=sources[0],
        output_item_ids=list(outputs),
        runtime_cell_id=pending.runtime_cell_id,
        execution=ExecutionWindow.running(pending.wall_time_unix_ms, pending.seq),
        runtime_status=CodeCellRuntimeStatus.STARTING,
        initial_response_at_unix_ms=None,
        initial_response_seq=None,
        initial_response_status=None,
        raw_initial_response_payload_id=None,
        raw_result_payload_id=None,
        yielded_at_unix_ms=None,
        yielded_seq=None,
        source_js=pending.source_js,
        nested_tool_call_ids=nested,
        wait_tool_call_ids=[],
    )
    state.code_cells_by_turn.setdefault(turn_id, []).append(cell_id)
    for tool_call_id in state.tools_by_call_id.get(call_id, ()):
        tool = trace.tool_calls[tool_call_id]
        if starts_cells(tool.kind):
            tool.started_code_cell_id = cell_id
    for item_id in outputs:
        _add_output_item(state, cell_id, item_id)
    events = state.pending_code_cell_events.pop(cell_id, None)
    for event in events or ():
        if event.ended:
            _end(state, event.seq, event.wall_time_unix_ms, cell_id, event.status, event.payload_id)
        else:
            _initial_response(
                state,
                event.seq,
                event.wall_time_unix_ms,
                cell_id,
                event.runtime_cell_id,
                event.status,
                event.payload_id,
            )


def initial_response(
    state: ReducerState,
    seq: int,
    wall: int,
    cell_id: str,
    runtime_cell_id: str,
    status: CodeCellRuntimeStatus,
    payload_id: str | None,
) -> None:
    """``code_cell_initial_response``: record it, or queue it behind a pending start."""
    if cell_id not in state.trace.code_cells:
        if cell_id in state.pending_code_cell_starts:
            event = PendingCodeCellEvent(seq, wall, False, runtime_cell_id, status, payload_id)
            _queue(state, cell_id, event)
            return
        raise ReduceError(f"code cell initial response referenced unknown cell {cell_id}")
    _initial_response(state, seq, wall, cell_id, runtime_cell_id, status, payload_id)


def _initial_response(
    state: ReducerState,
    seq: int,
    wall: int,
    cell_id: str,
    runtime_cell_id: str,
    status: CodeCellRuntimeStatus,
    payload_id: str | None,
) -> None:
    cell = state.trace.code_cells[cell_id]
    cell.runtime_cell_id = runtime_cell_id
    if cell.initial_response_status is None:
        # The first real initial response wins, even over the time an earlier end filled in.
        cell.initial_response_at_unix_ms = wall
        cell.initial_response_seq = seq
        cell.initial_response_status = status
        cell.raw_initial_response_payload_id = payload_id
    if status is CodeCellRuntimeStatus.YIELDED:
        cell.yielded_at_unix_ms = wall
        cell.yielded_seq = seq
    cell.runtime_status = status


def end(
    state: ReducerState,
    seq: int,
    wall: int,
    cell_id: str,
    status: CodeCellRuntimeStatus,
    payload_id: str | None,
) -> None:
    """``code_cell_ended``: end it, or queue the end behind a pending start."""
    if cell_id not in state.trace.code_cells:
        if cell_id in state.pending_code_cell_starts:
            _queue(state, cell_id, PendingCodeCellEvent(seq, wall, True, "", status, payload_id))
            return
        raise ReduceError(f"code cell end referenced unknown cell {cell_id}")
    _end(state, seq, wall, cell_id, status, payload_id)


def _end(
    state: ReducerState,
    seq: int,
    wall: int,
    cell_id: str,
    status: CodeCellRuntimeStatus,
    payload_id: str | None,
) -> None:
    cell = state.trace.code_cells[cell_id]
    if payload_id is not None:
        cell.raw_result_payload_id = payload_id
    if cell.initial_response_at_unix_ms is None:
        cell.initial_response_at_unix_ms = wall
        cell.initial_response_seq = seq
    cell.execution.close(wall, seq, _EXECUTION_STATUS[status])
    cell.runtime_status = status


def _queue(state: ReducerState, cell_id: str, event: PendingCodeCellEvent) -> None:
    events = state.pending_code_cell_events.setdefault(cell_id, [])
    events.append(event)
    events.sort(key=lambda queued: queued.seq)


def terminate_running_for_turn_end(
    state: ReducerState, seq: int, wall: int, turn_id: str, turn_status: ExecutionStatus
) -> None:
    """A failed turn fails its running cells; a cancelled or aborted one terminates them."""
    if turn_status is ExecutionStatus.FAILED:
        runtime_status = CodeCellRuntimeStatus.FAILED
    elif turn_status in (ExecutionStatus.CANCELLED, ExecutionStatus.ABORTED):
        runtime_status = CodeCellRuntimeStatus.TERMINATED
    else:
        return
    cells = state.trace.code_cells
    for cell_id in sorted(state.code_cells_by_turn.get(turn_id, ())):
        if cells[cell_id].execution.status is ExecutionStatus.RUNNING:
            _end(state, seq, wall, cell_id, runtime_status, None)


def link_nested_tool(state: ReducerState, tool_call_id: str, cell_id: str) -> None:
    """Record a nested tool on its (materialized) cell."""
    cell = state.trace.code_cells.get(cell_id)
    if cell is not None:
        push_unique(cell.nested_tool_call_ids, tool_call_id)


def link_wait_tool_call(
    state: ReducerState, thread_id: str, tool_call_id: str, invocation: RawPayloadRef
) -> None:
    """A ``wait`` tool call waits on the cell named by its ``cell_id`` argument."""
    payload: Any = state.read_payload(invocation)
    if not isinstance(payload, dict) or payload.get("tool_name") != "wait":
        return
    pid = invocation.raw_payload_id
    inner = payload.get("payload")
    arguments = inner.get("arguments") if isinstance(inner, dict) else None
    if not isinstance(arguments, str):
        raise ReduceError(f"wait tool request payload {pid} did not contain function arguments")
    try:
        args = msgspec.json.decode(arguments)
    except (msgspec.DecodeError, RecursionError):
        raise ReduceError(f"wait tool request payload {pid} had invalid JSON arguments") from None
    runtime_cell_id = args.get("cell_id") if isinstance(args, dict) else None
    if not isinstance(runtime_cell_id, str):
        raise ReduceError(f"wait tool request payload {pid} did not contain cell_id")
    cell_id = state.code_cell_ids_by_runtime.get((thread_id, runtime_cell_id))
    if cell_id is None:
        return
    cell = state.trace.code_cells.get(cell_id)
    if cell is not None:
        push_unique(cell.wait_tool_call_ids, tool_call_id)


def resolve_wait_target(
    state: ReducerState, thread_id: str | None, tool_call_id: str, runtime_cell_id: str
) -> None:
    """Schema 3: ``code_cell_wait_target_resolved`` names the cell a ``wait`` call waits on."""
    tool = state.trace.tool_calls.get(tool_call_id)
    if tool is None:
        raise ReduceError(f"code cell wait target referenced unknown tool call {tool_call_id}")
    tool.resolved_wait_runtime_cell_id = runtime_cell_id
    cell_id = state.code_cell_ids_by_runtime.get((tool.thread_id, runtime_cell_id))
    if cell_id is None:
        return
    cell = state.trace.code_cells.get(cell_id)
    if cell is not None:
        push_unique(cell.wait_tool_call_ids, tool_call_id)


def attach_output_item(state: ReducerState, item_id: str, call_id: str) -> None:
    """Link a (re)sighted ``custom_tool_call_output`` item to its cell."""
    cell_id = code_cell_id(call_id)
    if cell_id in state.trace.code_cells:
        _add_output_item(state, cell_id, item_id)


def _add_output_item(state: ReducerState, cell_id: str, item_id: str) -> None:
    push_unique(state.trace.code_cells[cell_id].output_item_ids, item_id)
    item = state.trace.conversation_items[item_id]
    producer = CodeCellProducer(cell_id)
    if producer not in item.produced_by:
        item.produced_by.append(producer)
