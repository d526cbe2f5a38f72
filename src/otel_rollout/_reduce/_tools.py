"""Tool calls: dispatch lifecycle, runtime observations, and links to model-visible items."""

from __future__ import annotations

from otel_rollout._bundle._models import (
    SCHEMA_2,
    ExecutionStatus,
    RawPayloadRef,
    TerminalSummary,
    ToolCallRuntimeEnded,
    ToolCallRuntimeStarted,
    ToolCallStarted,
)
from otel_rollout._bundle._models import (
    CodeCellRequester as RawCodeCellRequester,
)
from otel_rollout._reduce import _code_cells, _edges, _terminals
from otel_rollout._reduce._model import (
    CodeCellRequester,
    ExecutionWindow,
    ModelRequester,
    ToolCall,
    ToolCallRequester,
    ToolProducer,
)
from otel_rollout._reduce._state import ReduceError, ReducerState, push_unique

CALL_KINDS = frozenset({"function_call", "custom_tool_call"})
"""Conversation item kinds of a model-visible tool call."""
OUTPUT_KINDS = frozenset({"function_call_output", "custom_tool_call_output"})
"""Conversation item kinds of a model-visible tool output."""


def _kind_tag(kind: object) -> str:
    tag: str = type(kind).__struct_config__.tag  # type: ignore[attr-defined]
    return tag


def single_tool_for_call_id(state: ReducerState, call_id: str) -> str | None:
    """The one tool call (any thread) with this model-visible call id, if any."""
    tools = state.tools_by_call_id.get(call_id)
    if not tools:
        return None
    if len(tools) > 1:
        raise ReduceError(f"multiple tool calls matched model-visible call id {call_id}")
    return tools[0]


def start(
    state: ReducerState,
    seq: int,
    wall: int,
    envelope_thread_id: str | None,
    envelope_turn_id: str | None,
    event: ToolCallStarted,
) -> None:
    """``tool_call_started``: insert the tool call and link what is already known."""
    trace = state.trace
    tool_call_id = event.tool_call_id
    if tool_call_id in trace.tool_calls:
        raise ReduceError(f"duplicate tool call start for {tool_call_id}")
    mv_call_id = event.model_visible_call_id
    if mv_call_id is not None:
        existing = single_tool_for_call_id(state, mv_call_id)
        if existing is not None and existing != tool_call_id:
            raise ReduceError(f"duplicate tool call for model-visible call id {mv_call_id}")
    thread_id = envelope_thread_id
    if thread_id is None:
        if envelope_turn_id is None:
            raise ReduceError("tool call start did not include thread or Codex turn context")
        turn = trace.codex_turns.get(envelope_turn_id)
        if turn is None:
            raise ReduceError(f"tool call start referenced unknown Codex turn {envelope_turn_id}")
        thread_id = turn.thread_id
    if thread_id not in trace.threads:
        raise ReduceError(f"tool call start referenced unknown thread {thread_id}")
    if envelope_turn_id is not None:
        turn = trace.codex_turns.get(envelope_turn_id)
        if turn is None:
            raise ReduceError(f"tool call start referenced unknown Codex turn {envelope_turn_id}")
        if turn.thread_id != thread_id:
            raise ReduceError(
                f"tool call start used thread {thread_id}, but Codex turn {envelope_turn_id} "
                f"belongs to {turn.thread_id}"
            )
    requester: ToolCallRequester
    raw_requester = event.requester
    if isinstance(raw_requester, RawCodeCellRequester):
        code_cell_id = state.code_cell_ids_by_runtime.get(
            (thread_id, raw_requester.runtime_cell_id)
        )
        if code_cell_id is None:
            raise ReduceError(
                f"code-mode nested tool referenced unknown runtime cell "
                f"{raw_requester.runtime_cell_id} in thread {thread_id}"
            )
        requester = CodeCellRequester(code_cell_id)
    else:
        requester = ModelRequester()
    call_item_ids: list[str] = []
    output_item_ids: list[str] = []
    if mv_call_id is not None:
        call_item_ids = state.items_for_call(thread_id, mv_call_id, CALL_KINDS)
        output_item_ids = state.items_for_call(thread_id, mv_call_id, OUTPUT_KINDS)
    operation_id = _terminals.start_from_invocation(
        state, seq, wall, thread_id, tool_call_id, _kind_tag(event.kind), event.invocation_payload
    )
    summary = event.summary if operation_id is None else TerminalSummary(operation_id=operation_id)
    invocation = event.invocation_payload
    if invocation is not None and state.schema == SCHEMA_2:
        _code_cells.link_wait_tool_call(state, thread_id, tool_call_id, invocation)
    trace.tool_calls[tool_call_id] = ToolCall(
        tool_call_id=tool_call_id,
        mcp_call_id=None,
        model_visible_call_id=mv_call_id,
        code_mode_runtime_tool_id=event.code_mode_runtime_tool_id,
        started_code_cell_id=_code_cells.started_cell_for_call(state, mv_call_id, event.kind),
        thread_id=thread_id,
        started_by_codex_turn_id=envelope_turn_id,
        execution=ExecutionWindow.running(wall, seq),
        requester=requester,
        kind=event.kind,
        model_visible_call_item_ids=call_item_ids,
        model_visible_output_item_ids=[],
        terminal_operation_id=operation_id,
        summary=summary,
        raw_invocation_payload_id=invocation.raw_payload_id if invocation is not None else None,
        raw_result_payload_id=None,
        raw_runtime_payload_ids=[],
    )
    if mv_call_id is not None:
        state.tools_by_call_id.setdefault(mv_call_id, []).append(tool_call_id)
    if isinstance(requester, CodeCellRequester):
        state.tools_by_code_cell.setdefault(requester.code_cell_id, []).append(tool_call_id)
        _code_cells.link_nested_tool(state, tool_call_id, requester.code_cell_id)
    link_to_inference_response(state, tool_call_id)
    for item_id in output_item_ids:
        _add_output_item(state, tool_call_id, item_id)
    _terminals.sync_observation(state, tool_call_id)


def correlate_mcp(state: ReducerState, tool_call_id: str, mcp_call_id: str) -> None:
    """``mcp_tool_call_correlation_assigned``: record the MCP request id."""
    tool = state.trace.tool_calls.get(tool_call_id)
    if tool is None:
        raise ReduceError(f"MCP correlation referenced unknown tool call {tool_call_id}")
    previous = tool.mcp_call_id
    tool.mcp_call_id = mcp_call_id
    if previous is not None:
        raise ReduceError(f"duplicate MCP correlation for tool call {tool_call_id}")


def end(
    state: ReducerState,
    seq: int,
    wall: int,
    tool_call_id: str,
    status: ExecutionStatus,
    result: RawPayloadRef | None,
) -> None:
    """``tool_call_ended``: close the call (and a dispatch-only terminal operation)."""
    tool = state.trace.tool_calls.get(tool_call_id)
    if tool is None:
        raise ReduceError(f"tool call end referenced unknown call {tool_call_id}")
    tool.execution.close(wall, seq, status)
    tool.raw_result_payload_id = result.raw_payload_id if result is not None else None
    operation_id = tool.terminal_operation_id
    if operation_id is not None and not tool.raw_runtime_payload_ids:
        _terminals.end_operation(state, seq, wall, tool.thread_id, operation_id, status, result)
    if result is not None:
        _edges.attach_tool_result(state, tool_call_id, result.raw_payload_id)


def runtime_start(state: ReducerState, seq: int, wall: int, event: ToolCallRuntimeStarted) -> None:
    """``tool_call_runtime_started``: the runtime's kind wins; exec calls open an operation."""
    tool_call_id = event.tool_call_id
    tool = state.trace.tool_calls.get(tool_call_id)
    if tool is None:
        raise ReduceError(f"tool runtime start referenced unknown call {tool_call_id}")
    payload = event.runtime_payload
    push_unique(tool.raw_runtime_payload_ids, payload.raw_payload_id)
    tool.kind = event.kind
    kind = _kind_tag(tool.kind)
    if tool.terminal_operation_id is not None and kind in _terminals.TERMINAL_KINDS:
        raise ReduceError(
            f"tool runtime start would create a second terminal operation for {tool_call_id}"
        )
    operation_id = _terminals.start_from_runtime(
        state, seq, wall, tool.thread_id, tool_call_id, kind, payload
    )
    if operation_id is not None:
        if tool.terminal_operation_id is None:
            tool.terminal_operation_id = operation_id
            tool.summary = TerminalSummary(operation_id=operation_id)
        _terminals.sync_observation(state, tool_call_id)
    _edges.start_from_runtime(state, tool_call_id, kind, payload)


def runtime_end(state: ReducerState, seq: int, wall: int, event: ToolCallRuntimeEnded) -> None:
    """``tool_call_runtime_ended``: end the terminal operation; agent edges from the payload."""
    tool_call_id = event.tool_call_id
    tool = state.trace.tool_calls.get(tool_call_id)
    if tool is None:
        raise ReduceError(f"tool runtime end referenced unknown call {tool_call_id}")
    payload = event.runtime_payload
    push_unique(tool.raw_runtime_payload_ids, payload.raw_payload_id)
    if tool.terminal_operation_id is not None:
        _terminals.end_operation(
            state, seq, wall, tool.thread_id, tool.terminal_operation_id, event.status, payload
        )
    _edges.end_from_runtime(state, wall, tool_call_id, _kind_tag(tool.kind), payload)


def attach_model_visible_item(state: ReducerState, item_id: str, call_id: str, kind: str) -> None:
    """Link a (re)sighted call or output item to its tool call."""
    tool_call_id = single_tool_for_call_id(state, call_id)
    if tool_call_id is None:
        return
    if kind in CALL_KINDS:
        push_unique(state.trace.tool_calls[tool_call_id].model_visible_call_item_ids, item_id)
        link_to_inference_response(state, tool_call_id)
    else:
        _add_output_item(state, tool_call_id, item_id)
    _terminals.sync_observation(state, tool_call_id)


def _add_output_item(state: ReducerState, tool_call_id: str, item_id: str) -> None:
    push_unique(state.trace.tool_calls[tool_call_id].model_visible_output_item_ids, item_id)
    item = state.trace.conversation_items[item_id]
    producer = ToolProducer(tool_call_id)
    if producer not in item.produced_by:
        item.produced_by.append(producer)


def link_to_inference_response(state: ReducerState, tool_call_id: str) -> None:
    """Record the tool on every inference call whose response holds one of its call items."""
    call_items = state.trace.tool_calls[tool_call_id].model_visible_call_item_ids
    if not call_items:
        return
    calls = state.trace.inference_calls
    owners = state.inferences_by_response_item
    for item_id in call_items:
        for inference_call_id in owners.get(item_id, ()):
            push_unique(calls[inference_call_id].tool_call_ids_started_by_response, tool_call_id)
