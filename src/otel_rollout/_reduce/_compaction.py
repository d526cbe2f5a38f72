"""Remote compaction: request attempts and installed checkpoints."""

from __future__ import annotations

from otel_rollout._bundle._models import (
    CompactionInstalled,
    CompactionRequestStarted,
    ExecutionStatus,
    RawPayloadRef,
)
from otel_rollout._reduce import _conversation
from otel_rollout._reduce._model import Compaction, CompactionRequest, ExecutionWindow
from otel_rollout._reduce._state import ReduceError, ReducerState


def start_request(
    state: ReducerState, seq: int, wall: int, event: CompactionRequestStarted
) -> None:
    """``compaction_request_started``: insert the running attempt."""
    trace = state.trace
    request_id = event.compaction_request_id
    if request_id in trace.compaction_requests:
        raise ReduceError(f"duplicate compaction request start for {request_id}")
    state.thread(event.thread_id)
    state.check_turn(f"compaction request {request_id}", event.thread_id, event.codex_turn_id)
    trace.compaction_requests[request_id] = CompactionRequest(
        compaction_request_id=request_id,
        compaction_id=event.compaction_id,
        thread_id=event.thread_id,
        codex_turn_id=event.codex_turn_id,
        execution=ExecutionWindow.running(wall, seq),
        model=event.model,
        provider_name=event.provider_name,
        raw_request_payload_id=event.request_payload.raw_payload_id,
        raw_response_payload_id=None,
    )
    state.requests_by_compaction.setdefault(event.compaction_id, []).append(request_id)


def finish_request(
    state: ReducerState,
    seq: int,
    wall: int,
    compaction_id: str,
    request_id: str,
    status: ExecutionStatus,
    response: RawPayloadRef | None,
) -> None:
    """``compaction_request_completed|failed``: close the attempt."""
    request = state.trace.compaction_requests.get(request_id)
    if request is None:
        raise ReduceError(f"compaction request completion referenced unknown request {request_id}")
    if request.compaction_id != compaction_id:
        raise ReduceError(
            f"compaction request {request_id} completion used compaction {compaction_id}, "
            f"but start used {request.compaction_id}"
        )
    request.execution.close(wall, seq, status)
    request.raw_response_payload_id = response.raw_payload_id if response is not None else None


def install(
    state: ReducerState,
    wall: int,
    thread_id: str | None,
    turn_id: str | None,
    event: CompactionInstalled,
) -> None:
    """``compaction_installed``: reduce the checkpoint into marker and replacement items."""
    compaction_id = event.compaction_id
    if thread_id is None:
        raise ReduceError(f"compaction installed event {compaction_id} did not include a thread id")
    if turn_id is None:
        raise ReduceError(
            f"compaction installed event {compaction_id} did not include a codex turn id"
        )
    trace = state.trace
    if compaction_id in trace.compactions:
        raise ReduceError(f"duplicate compaction install for {compaction_id}")
    state.thread(thread_id)
    state.check_turn(f"compaction install {compaction_id}", thread_id, turn_id)
    input_ids, marker_id, replacement_ids = _conversation.reduce_checkpoint(
        state, wall, thread_id, turn_id, compaction_id, event.checkpoint_payload
    )
    request_ids = sorted(state.requests_by_compaction.get(compaction_id, ()))
    state.pending_replacements[thread_id] = list(replacement_ids)
    trace.compactions[compaction_id] = Compaction(
        compaction_id=compaction_id,
        thread_id=thread_id,
        codex_turn_id=turn_id,
        installed_at_unix_ms=wall,
        marker_item_id=marker_id,
        request_ids=request_ids,
        input_item_ids=input_ids,
        replacement_item_ids=replacement_ids,
    )
