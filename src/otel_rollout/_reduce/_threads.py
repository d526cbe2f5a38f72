"""Threads and turns: start, end, and the cleanup a turn end implies."""

from __future__ import annotations

from typing import Any

from otel_rollout._bundle._models import ExecutionStatus, RawPayloadRef, RolloutStatus
from otel_rollout._reduce import _code_cells
from otel_rollout._reduce._edges import spawn_edge_id
from otel_rollout._reduce._model import (
    AgentOrigin,
    AgentThread,
    CodexTurn,
    ExecutionWindow,
    RootOrigin,
    SpawnedOrigin,
    UnknownOrigin,
)
from otel_rollout._reduce._payload import is_cut
from otel_rollout._reduce._state import ReduceError, ReducerState


def _task_name_from_agent_path(agent_path: str) -> str:
    for segment in reversed(agent_path.split("/")):
        if segment:
            return segment
    return agent_path


def _optional_str(metadata: dict[str, Any], key: str, payload_id: str) -> str | None:
    value = metadata.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ReduceError(f"parse thread metadata {payload_id}: {key} is not a string")


def start_thread(
    state: ReducerState,
    seq: int,
    wall: int,
    thread_id: str,
    agent_path: str,
    metadata_payload: RawPayloadRef | None,
) -> None:
    """``thread_started``: insert the thread, its identity taken from the metadata payload."""
    trace = state.trace
    if thread_id in trace.threads:
        raise ReduceError(f"duplicate thread start for {thread_id}")
    nickname: str | None = None
    default_model: str | None = None
    origin: AgentOrigin = RootOrigin()
    if metadata_payload is not None and is_cut(metadata_payload):
        # Schema 3: 0.171.0 cannot tell where a thread other than the root came from.
        if thread_id != trace.root_thread_id:
            origin = UnknownOrigin()
    metadata = None if metadata_payload is None else state.read_payload(metadata_payload)
    if metadata_payload is not None and not is_cut(metadata_payload):
        pid = metadata_payload.raw_payload_id
        if not isinstance(metadata, dict):
            raise ReduceError(f"parse thread metadata {pid}: not an object")
        meta_path = _optional_str(metadata, "agent_path", pid)
        meta_task = _optional_str(metadata, "task_name", pid)
        nickname = _optional_str(metadata, "nickname", pid)
        meta_role = _optional_str(metadata, "agent_role", pid)
        default_model = _optional_str(metadata, "model", pid)
        spawn = _thread_spawn(metadata.get("session_source"))
        if spawn is not None:
            spawn_path = spawn.get("agent_path")
            path = spawn_path if isinstance(spawn_path, str) else meta_path
            agent_path = path if path is not None else meta_path or agent_path
            task = spawn.get("task_name")
            task_name = task if isinstance(task, str) else meta_task
            if task_name is None and path is not None:
                task_name = _task_name_from_agent_path(path)
            role = spawn.get("agent_role")
            agent_role = role if isinstance(role, str) else meta_role
            parent = spawn["parent_thread_id"]
            origin = SpawnedOrigin(
                parent_thread_id=parent,
                spawn_edge_id=spawn_edge_id(parent, thread_id),
                task_name=task_name
                if task_name is not None
                else _task_name_from_agent_path(agent_path),
                agent_role=agent_role or "",
            )
        elif meta_path is not None:
            agent_path = meta_path
    trace.threads[thread_id] = AgentThread(
        thread_id=thread_id,
        agent_path=agent_path,
        nickname=nickname,
        origin=origin,
        execution=ExecutionWindow.running(wall, seq),
        default_model=default_model,
        conversation_item_ids=[],
    )
    state.thread_item_sets[thread_id] = set()


def _thread_spawn(session_source: Any) -> dict[str, Any] | None:
    """The ``subagent.thread_spawn`` record with a string parent, if any."""
    if not isinstance(session_source, dict):
        return None
    subagent = session_source.get("subagent")
    if not isinstance(subagent, dict):
        return None
    spawn = subagent.get("thread_spawn")
    if not isinstance(spawn, dict) or not isinstance(spawn.get("parent_thread_id"), str):
        return None
    return spawn


_THREAD_STATUS = {
    RolloutStatus.RUNNING: ExecutionStatus.RUNNING,
    RolloutStatus.COMPLETED: ExecutionStatus.COMPLETED,
    RolloutStatus.FAILED: ExecutionStatus.FAILED,
    RolloutStatus.ABORTED: ExecutionStatus.ABORTED,
}


def end_thread(
    state: ReducerState, seq: int, wall: int, thread_id: str, status: RolloutStatus
) -> None:
    """``thread_ended``: close the thread; the rollout status is left alone."""
    state.thread(thread_id).execution.close(wall, seq, _THREAD_STATUS[status])


def resume_thread(state: ReducerState, thread_id: str) -> None:
    """``thread_resumed``: the thread runs again."""
    execution = state.thread(thread_id).execution
    if execution.ended_seq is None:
        raise ReduceError(f"resumed thread {thread_id} has not ended")
    execution.ended_at_unix_ms = None
    execution.ended_seq = None
    execution.status = ExecutionStatus.RUNNING


def start_turn(state: ReducerState, seq: int, wall: int, turn_id: str, thread_id: str) -> None:
    """``codex_turn_started``: insert the turn into an existing thread."""
    trace = state.trace
    if turn_id in trace.codex_turns:
        raise ReduceError(f"duplicate codex turn start for {turn_id}")
    state.thread(thread_id)
    trace.codex_turns[turn_id] = CodexTurn(
        codex_turn_id=turn_id,
        thread_id=thread_id,
        execution=ExecutionWindow.running(wall, seq),
        input_item_ids=[],
    )


_INFERENCE_STATUS_AT_TURN_END = {
    ExecutionStatus.COMPLETED: ExecutionStatus.CANCELLED,
    ExecutionStatus.CANCELLED: ExecutionStatus.CANCELLED,
    ExecutionStatus.FAILED: ExecutionStatus.FAILED,
    ExecutionStatus.ABORTED: ExecutionStatus.ABORTED,
}


def end_turn(
    state: ReducerState,
    seq: int,
    wall: int,
    envelope_thread_id: str | None,
    turn_id: str,
    status: ExecutionStatus,
) -> None:
    """``codex_turn_ended``: close the turn, its interrupted cells and its open inferences."""
    turn = state.trace.codex_turns.get(turn_id)
    if envelope_thread_id is not None and turn is not None and turn.thread_id != envelope_thread_id:
        raise ReduceError(
            f"codex turn end for {turn_id} used thread {envelope_thread_id}, "
            f"but the turn belongs to {turn.thread_id}"
        )
    if turn is None:
        raise ReduceError(f"codex turn end referenced unknown turn {turn_id}")
    turn.execution.close(wall, seq, status)
    _code_cells.terminate_running_for_turn_end(state, seq, wall, turn_id, status)
    inference_status = _INFERENCE_STATUS_AT_TURN_END.get(status)
    if inference_status is None:
        return
    calls = state.trace.inference_calls
    for call_id in state.inferences_by_turn.get(turn_id, ()):
        execution = calls[call_id].execution
        if execution.status is ExecutionStatus.RUNNING:
            execution.close(wall, seq, inference_status)
