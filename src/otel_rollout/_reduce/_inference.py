"""Inference calls: the lifecycle around request and response payloads."""

from __future__ import annotations

from msgspec import UnsetType

from otel_rollout._bundle._models import (
    ExecutionStatus,
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceStarted,
    RawPayloadRef,
)
from otel_rollout._reduce import _conversation
from otel_rollout._reduce._model import ExecutionWindow, InferenceCall
from otel_rollout._reduce._state import ReduceError, ReducerState


def start(state: ReducerState, seq: int, wall: int, event: InferenceStarted) -> None:
    """``inference_started``: reduce the request, then insert the running call."""
    trace = state.trace
    call_id = event.inference_call_id
    if call_id in trace.inference_calls:
        raise ReduceError(f"duplicate inference start for {call_id}")
    turn_id = event.codex_turn_id
    thread_id = event.thread_id
    state.check_turn(f"inference start {call_id}", thread_id, turn_id)
    request_ids = _conversation.reduce_request(
        state, wall, call_id, thread_id, turn_id, event.request_payload
    )
    state.thread(thread_id)
    trace.inference_calls[call_id] = InferenceCall(
        inference_call_id=call_id,
        thread_id=thread_id,
        codex_turn_id=turn_id,
        execution=ExecutionWindow.running(wall, seq),
        model=event.model,
        provider_name=event.provider_name,
        response_id=None,
        upstream_request_id=None,
        request_item_ids=request_ids,
        response_item_ids=[],
        tool_call_ids_started_by_response=[],
        usage=None,
        raw_request_payload_id=event.request_payload.raw_payload_id,
        prepared_prompt_payload_id=_payload_id(event.prepared_prompt_payload),
        raw_response_payload_id=None,
    )
    state.inferences_by_turn.setdefault(turn_id, []).append(call_id)


def finish(
    state: ReducerState,
    seq: int,
    wall: int,
    event: InferenceCompleted | InferenceFailed | InferenceCancelled,
) -> None:
    """``inference_completed|failed|cancelled``: reduce the (partial) response, close the call."""
    call_id = event.inference_call_id
    response_id: str | None = None
    payload: RawPayloadRef | None
    if isinstance(event, InferenceCompleted):
        status = ExecutionStatus.COMPLETED
        response_id = event.response_id
        payload = event.response_payload
    else:
        status = (
            ExecutionStatus.FAILED
            if isinstance(event, InferenceFailed)
            else ExecutionStatus.CANCELLED
        )
        payload = event.partial_response_payload
    call = state.trace.inference_calls.get(call_id)
    if call is None:
        raise ReduceError(f"inference completion referenced unknown call {call_id}")
    response_ids = None
    if payload is not None:
        response_ids = _conversation.reduce_response(state, wall, call_id, payload)
    if call.response_id != response_id:
        _index_response_id(state, call_id, call.thread_id, call.response_id, response_id)
    call.response_id = response_id
    execution = call.execution
    if execution.status is ExecutionStatus.RUNNING:
        execution.close(wall, seq, status)
    if event.upstream_request_id is not None:
        call.upstream_request_id = event.upstream_request_id
    if payload is not None:
        call.raw_response_payload_id = payload.raw_payload_id
    if response_ids is not None:
        index = state.inferences_by_response_item
        for item_id in call.response_item_ids:
            owners = index.get(item_id)
            if owners is not None and call_id in owners:
                owners.remove(call_id)
        call.response_item_ids = response_ids
        for item_id in response_ids:
            owners = index.setdefault(item_id, [])
            if call_id not in owners:
                owners.append(call_id)


def _index_response_id(
    state: ReducerState, call_id: str, thread_id: str, old: str | None, new: str | None
) -> None:
    """Move ``call_id`` from the calls with response id ``old`` to those with ``new``."""
    index = state.calls_by_response_id
    if old is not None:
        index[(thread_id, old)].remove(call_id)
    if new is not None:
        index.setdefault((thread_id, new), []).append(call_id)


def _payload_id(ref: RawPayloadRef | UnsetType) -> str | UnsetType:
    """The id of a schema 3 ref (``UNSET`` in schema 2, where the field does not exist)."""
    return ref if isinstance(ref, UnsetType) else ref.raw_payload_id
