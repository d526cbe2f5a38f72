"""Terminal operations and sessions, from exec_command and write_stdin tool calls.

Codex 0.169.0 names each session after the operation that opened it
(``terminal_session:<operation id>``). An exec_command operation opens one as soon as
its process id is known (runtime begin or end) and registers that process; without a
process id it has no session. A write_stdin operation joins the session of the process
it writes to: the exec call named by ``stdin_target_resolved``, or else its
``session_id`` argument; if neither is known by the time it ends (or the replay ends)
it gets a session of its own, and a ``stdin_target_resolved`` that comes later still
moves it into the exec's session (as Codex 0.169.0 does).
"""

from __future__ import annotations

from typing import Any

import msgspec

from otel_rollout._bundle._json import encode_compact
from otel_rollout._bundle._models import ExecutionStatus, RawPayloadRef
from otel_rollout._bundle._serde_forms import struct_from_array, tagged_from_array
from otel_rollout._reduce._model import (
    ExecCommandRequest,
    ExecutionWindow,
    TerminalModelObservation,
    TerminalOperation,
    TerminalRequest,
    TerminalResult,
    TerminalSession,
    WriteStdinRequest,
)
from otel_rollout._reduce._payload import is_cut
from otel_rollout._reduce._state import (
    JSON_DECODER,
    ReduceError,
    ReducerState,
    TerminalProcess,
    push_unique,
)

TERMINAL_KINDS = frozenset({"exec_command", "write_stdin"})
"""Tool kinds that run a terminal operation."""

_DISPATCH_FIELDS = ("tool_name", "tool_namespace", "payload")
"""Codex's dispatch invocation struct, in declaration order (serde also takes it as an array)."""
_DISPATCH_PAYLOADS = {"function": ("arguments",)}
_DISPATCH_RESULTS = {
    "direct_response": ("response_item",),
    "code_mode_response": ("value",),
    "error": ("error",),
}
"""Tagged variants Codex reads here, with their fields (serde also takes ``[tag, ...]``)."""


def _new_operation(
    state: ReducerState,
    seq: int,
    wall: int,
    tool_call_id: str,
    kind: str,
    request: TerminalRequest,
    payload_id: str,
) -> TerminalOperation:
    operation_id = f"terminal_operation:{state.next_operation_ordinal}"
    state.next_operation_ordinal += 1
    operation = TerminalOperation(
        operation_id=operation_id,
        terminal_id=None,
        tool_call_id=tool_call_id,
        kind=kind,
        execution=ExecutionWindow.running(wall, seq),
        request=request,
        result=None,
        model_observations=[],
        raw_payload_ids=[payload_id],
    )
    state.trace.terminal_operations[operation_id] = operation
    return operation


def _join_session(
    state: ReducerState, thread_id: str, operation: TerminalOperation, session_id: str
) -> None:
    session = state.trace.terminal_sessions.get(session_id)
    if session is None:
        session = TerminalSession(
            terminal_id=session_id,
            thread_id=thread_id,
            created_by_operation_id=operation.operation_id,
            operation_ids=[],
            execution=ExecutionWindow.running(
                operation.execution.started_at_unix_ms, operation.execution.started_seq
            ),
        )
        state.trace.terminal_sessions[session_id] = session
    elif session.thread_id != thread_id:
        raise ReduceError(
            f"terminal session {session_id} belongs to thread {session.thread_id}, not {thread_id}"
        )
    operation.terminal_id = session_id
    member = (session_id, operation.operation_id)
    if member not in state.session_members:
        state.session_members.add(member)
        session.operation_ids.append(operation.operation_id)


def _own_session(state: ReducerState, thread_id: str, operation: TerminalOperation) -> str:
    """Open the session named after ``operation`` and return its id."""
    session_id = f"terminal_session:{operation.operation_id}"
    _join_session(state, thread_id, operation, session_id)
    return session_id


def _target_process(
    state: ReducerState, thread_id: str, operation: TerminalOperation, process_id: str | None
) -> None:
    """A write_stdin operation writes to ``process_id``: join its session if it is known."""
    state.operation_processes[operation.operation_id] = TerminalProcess(None, process_id)
    session_id = state.process_sessions.get(process_id) if process_id is not None else None
    if session_id is not None:
        _join_session(state, thread_id, operation, session_id)


def start_from_invocation(
    state: ReducerState,
    seq: int,
    wall: int,
    thread_id: str,
    tool_call_id: str,
    kind_tag: str,
    invocation: RawPayloadRef | None,
) -> str | None:
    """A write_stdin call's operation, from its dispatch invocation payload (if it parses)."""
    if kind_tag != "write_stdin" or invocation is None:
        return None
    if is_cut(invocation):
        return None  # schema 3: a size limit cut the payload
    value = state.read_payload(invocation)
    parsed = _parse_write_stdin_invocation(value, invocation.raw_payload_id)
    if parsed is None:
        return None
    process_id, request = parsed
    operation = _new_operation(
        state, seq, wall, tool_call_id, "write_stdin", request, invocation.raw_payload_id
    )
    _target_process(state, thread_id, operation, process_id)
    return operation.operation_id


def _parse_write_stdin_invocation(value: Any, pid: str) -> tuple[str, WriteStdinRequest] | None:
    """A write_stdin dispatch invocation: its target process and request.

    A malformed envelope is an error (as in Codex); arguments that do not parse, or
    lack a session id, give no terminal operation (Codex 0.169.0 skips them).
    """
    value = struct_from_array(value, _DISPATCH_FIELDS)
    if isinstance(value, dict) and "payload" in value:
        value["payload"] = tagged_from_array(value["payload"], _DISPATCH_PAYLOADS)
    problem = _dispatch_envelope_problem(value)
    if problem is None and value.get("tool_namespace") is not None:
        return None  # a namespaced tool is no terminal dispatch (as in Codex)
    problem = problem or _write_stdin_dispatch_problem(value)
    if problem is not None:
        raise ReduceError(f"parse terminal invocation payload {pid} as dispatch payload: {problem}")
    arguments = value["payload"]["arguments"]
    try:
        args = JSON_DECODER.decode(arguments)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(args, dict):
        return None
    session = args.get("session_id")
    if isinstance(session, str) and session:
        process_id = session
    elif type(session) is int:
        process_id = str(session)
    elif isinstance(session, msgspec.Raw):
        process_id = bytes(session).decode()
    else:
        return None
    chars = args.get("chars", "")
    yield_time = args.get("yield_time_ms")
    max_tokens = args.get("max_output_tokens")
    if not isinstance(chars, str):
        return None
    for number in (yield_time, max_tokens):
        if number is not None and (type(number) is not int or not 0 <= number < 2**64):
            return None
    return process_id, WriteStdinRequest(
        stdin=chars, yield_time_ms=yield_time, max_output_tokens=max_tokens
    )


def _dispatch_envelope_problem(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "not an object"
    tool_name = value.get("tool_name")
    if not isinstance(tool_name, str):
        return "missing field `tool_name`" if tool_name is None else "invalid `tool_name`"
    namespace = value.get("tool_namespace")
    if namespace is not None and not isinstance(namespace, str):
        return "invalid `tool_namespace`"
    payload = value.get("payload")
    if not isinstance(payload, dict):
        return "missing field `payload`" if payload is None else "invalid `payload`"
    kind = payload.get("type")
    if not isinstance(kind, str):
        return "missing field `type`" if kind is None else "invalid `type`"
    arguments = payload.get("arguments")
    if arguments is not None and not isinstance(arguments, str):
        return "invalid `arguments`"
    return None


def _write_stdin_dispatch_problem(value: dict[str, Any]) -> str | None:
    """Why a well-formed dispatch invocation is not a write_stdin function call, if it is not."""
    tool_name = value["tool_name"]
    kind = value["payload"]["type"]
    arguments = value["payload"].get("arguments")
    if tool_name != "write_stdin":
        return f"dispatch terminal request is for {tool_name}, not write_stdin"
    if kind != "function":
        return f"write_stdin dispatch payload used unsupported {kind} payload"
    if arguments is None:
        return "write_stdin dispatch payload omitted function arguments"
    return None


def start_from_runtime(
    state: ReducerState,
    seq: int,
    wall: int,
    thread_id: str,
    tool_call_id: str,
    kind_tag: str,
    runtime: RawPayloadRef,
) -> str | None:
    """An exec_command (or write_stdin) operation from its runtime begin payload."""
    if kind_tag not in TERMINAL_KINDS:
        return None
    kind = kind_tag
    if is_cut(runtime):
        return None  # schema 3: a size limit cut the payload
    value = state.read_payload(runtime)
    pid = runtime.raw_payload_id
    command = value.get("command") if isinstance(value, dict) else None
    cwd = value.get("cwd") if isinstance(value, dict) else None
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        raise ReduceError(f"parse terminal runtime start payload {pid}: missing field `command`")
    if not isinstance(cwd, str):
        raise ReduceError(f"parse terminal runtime start payload {pid}: missing field `cwd`")
    process_id = _optional_str(value, "process_id", pid)
    stdin = _optional_str(value, "interaction_input", pid)
    request: TerminalRequest
    if kind == "exec_command":
        request = ExecCommandRequest(
            command=command,
            display_command=" ".join(command),
            cwd=cwd,
            yield_time_ms=None,
            max_output_tokens=None,
        )
    else:
        request = WriteStdinRequest(stdin=stdin or "", yield_time_ms=None, max_output_tokens=None)
    operation = _new_operation(state, seq, wall, tool_call_id, kind, request, pid)
    if kind == "exec_command":
        state.operation_processes[operation.operation_id] = TerminalProcess(process_id, None)
        if process_id is not None:
            _open_process_session(state, thread_id, operation, process_id)
    else:
        _target_process(state, thread_id, operation, process_id)
    return operation.operation_id


def _open_process_session(
    state: ReducerState, thread_id: str, operation: TerminalOperation, process_id: str
) -> None:
    """An exec_command's process is known: it opens a session named after the operation."""
    state.process_sessions[process_id] = _own_session(state, thread_id, operation)


def _optional_str(value: dict[str, Any], key: str, pid: str) -> str | None:
    found = value.get(key)
    if found is None or isinstance(found, str):
        return found
    raise ReduceError(f"parse terminal runtime start payload {pid}: invalid type for `{key}`")


def end_operation(
    state: ReducerState,
    seq: int,
    wall: int,
    thread_id: str,
    operation_id: str,
    status: ExecutionStatus,
    payload: RawPayloadRef | None,
) -> None:
    """End an operation with its runtime end (exec) or dispatch result (write_stdin) payload."""
    operation = state.trace.terminal_operations.get(operation_id)
    if operation is None:
        raise ReduceError(f"terminal end referenced unknown operation {operation_id}")
    result: TerminalResult | None = None
    process_id: str | None = None
    value = None if payload is None else state.read_payload(payload)
    if payload is not None and not is_cut(payload):
        if operation.kind == "exec_command":
            process_id, result = _exec_end(value, payload.raw_payload_id)
        else:
            parsed = _exec_end_or_none(value)
            if parsed is not None:
                process_id, result = parsed
            else:
                result = _dispatch_result(value, payload.raw_payload_id)
    operation.execution.close(wall, seq, status)
    book = state.operation_processes.get(operation_id)
    if payload is not None and value is None:
        push_unique(operation.raw_payload_ids, payload.raw_payload_id)  # schema 3: cut
    if payload is not None and result is not None:
        push_unique(operation.raw_payload_ids, payload.raw_payload_id)
        if book is not None and operation.kind == "exec_command" and process_id is not None:
            if book.process_id is not None and book.process_id != process_id:
                raise ReduceError(
                    f"terminal operation {operation_id} changed process id from "
                    f"{book.process_id} to {process_id}"
                )
            if book.process_id is None:
                book.process_id = process_id
        operation.result = result
    if operation.terminal_id is None:
        if operation.kind == "write_stdin":
            _own_session(state, thread_id, operation)
        elif book is not None and book.process_id is not None:
            _open_process_session(state, thread_id, operation, book.process_id)


def _exec_end(value: Any, pid: str) -> tuple[str | None, TerminalResult]:
    parsed = _exec_end_or_reason(value)
    if isinstance(parsed, str):
        raise ReduceError(f"parse exec terminal response {pid}: {parsed}")
    return parsed


def _exec_end_or_none(value: Any) -> tuple[str | None, TerminalResult] | None:
    parsed = _exec_end_or_reason(value)
    return None if isinstance(parsed, str) else parsed


def _exec_end_or_reason(value: Any) -> tuple[str | None, TerminalResult] | str:
    """Codex's exec end payload: ``exit_code`` (i32) required, ``process_id`` optional,
    ``aggregated_output`` a string when present; or the reason it is not one.
    """
    if not isinstance(value, dict):
        return "not an object"
    process_id = value.get("process_id")
    if process_id is not None and not isinstance(process_id, str):
        return "invalid type for `process_id`"
    output = value.get("aggregated_output", "")
    if not isinstance(output, str):
        return "invalid type for `aggregated_output`"
    if "exit_code" not in value:
        return "missing field `exit_code`"
    exit_code = value["exit_code"]
    if type(exit_code) is not int or not -(2**31) <= exit_code < 2**31:
        return "invalid type for `exit_code`"
    return process_id, TerminalResult(
        exit_code=exit_code,
        stdout=output,
        stderr="",
        formatted_output=None,
        original_token_count=None,
        chunk_id=None,
    )


def _text_content(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        texts = [
            entry["text"]
            for entry in value
            if isinstance(entry, dict) and isinstance(entry.get("text"), str)
        ]
        text = "\n".join(texts)
        return text or None
    if value is None:
        return None
    return encode_compact(value).decode()


def _dispatch_result(value: Any, pid: str) -> TerminalResult:
    value = tagged_from_array(value, _DISPATCH_RESULTS)
    if _has_wide_integer(value):  # serde's dispatch payload takes i64 and u64 only
        raise ReduceError(
            f"parse write_stdin terminal response {pid} as protocol payload or dispatch payload"
        )
    kind = value.get("type") if isinstance(value, dict) else None
    assert isinstance(value, dict) or kind is None
    if kind == "direct_response" and "response_item" in value:
        item = value["response_item"]
        output = item.get("output") if isinstance(item, dict) else None
        text = _text_content(output)
        if text is None:
            text = encode_compact(item).decode()
        return _text_result(text)
    if kind == "code_mode_response" and "value" in value:
        inner = value["value"]
        structured = _code_mode_exec_result(inner)
        if structured is not None:
            return structured
        text = _text_content(inner)
        return _text_result(text if text is not None else encode_compact(inner).decode())
    if kind == "error" and isinstance(value.get("error"), str):
        error = value["error"]
        return TerminalResult(
            exit_code=None,
            stdout="",
            stderr=error,
            formatted_output=error,
            original_token_count=None,
            chunk_id=None,
        )
    raise ReduceError(
        f"parse write_stdin terminal response {pid} as protocol payload or dispatch payload"
    )


def _has_wide_integer(value: Any) -> bool:
    """Whether an integer outside both i64 and u64 is anywhere inside ``value``."""
    if type(value) is int:
        return not -(2**63) <= value < 2**64
    if isinstance(value, dict):
        return any(_has_wide_integer(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_wide_integer(item) for item in value)
    return False


def _text_result(text: str) -> TerminalResult:
    return TerminalResult(
        exit_code=None,
        stdout=text,
        stderr="",
        formatted_output=text,
        original_token_count=None,
        chunk_id=None,
    )


def _code_mode_exec_result(value: Any) -> TerminalResult | None:
    if not isinstance(value, dict) or not isinstance(value.get("output"), str):
        return None
    chunk_id = value.get("chunk_id")
    exit_code = value.get("exit_code")
    tokens = value.get("original_token_count")
    if chunk_id is not None and not isinstance(chunk_id, str):
        return None
    if exit_code is not None and (type(exit_code) is not int or not -(2**31) <= exit_code < 2**31):
        return None  # Codex's exit_code is an i32: the result is then text
    if tokens is not None and (type(tokens) is not int or tokens < 0):
        return None
    return TerminalResult(
        exit_code=exit_code,
        stdout=value["output"],
        stderr="",
        formatted_output=value["output"],
        original_token_count=tokens,
        chunk_id=chunk_id,
    )


def resolve_stdin_target(state: ReducerState, tool_call_id: str, exec_tool_call_id: str) -> None:
    """``stdin_target_resolved``: point a write_stdin operation at the exec call's process."""
    tools = state.trace.tool_calls
    tool = tools.get(tool_call_id)
    if tool is None:
        raise ReduceError(f"stdin target referenced unknown call {tool_call_id}")
    exec_tool = tools.get(exec_tool_call_id)
    if exec_tool is None:
        raise ReduceError(f"stdin target referenced unknown exec {exec_tool_call_id}")
    operation_id = tool.terminal_operation_id
    exec_operation_id = exec_tool.terminal_operation_id
    if operation_id is None or exec_operation_id is None:
        return
    operation = state.trace.terminal_operations[operation_id]
    book = state.operation_processes
    exec_book = book.get(exec_operation_id)
    if exec_book is None or exec_book.process_id is None:
        return
    session_id = state.process_sessions.get(exec_book.process_id)
    if session_id is None:
        return
    own = book.get(operation_id)
    if own is not None:
        own.target_process_id = exec_book.process_id
    if operation.terminal_id is not None and operation.terminal_id != session_id:
        _leave_session(state, operation)  # resolved late (after the call ended): it moves
    _join_session(state, tool.thread_id, operation, session_id)


def _leave_session(state: ReducerState, operation: TerminalOperation) -> None:
    """Take ``operation`` out of its session; a session left without operations goes."""
    sessions = state.trace.terminal_sessions
    session_id = operation.terminal_id
    session = sessions.get(session_id) if session_id is not None else None
    if session is not None and session_id is not None:
        member = (session_id, operation.operation_id)
        if member in state.session_members:
            state.session_members.discard(member)
            session.operation_ids.remove(operation.operation_id)
        if not session.operation_ids:
            del sessions[session_id]
    operation.terminal_id = None


def finish_replay(state: ReducerState) -> None:
    """Give each write_stdin operation still without a session a session of its own."""
    tools = state.trace.tool_calls
    for operation in list(state.trace.terminal_operations.values()):
        if operation.terminal_id is None and operation.kind == "write_stdin":
            _own_session(state, tools[operation.tool_call_id].thread_id, operation)


def sync_observation(state: ReducerState, tool_call_id: str) -> None:
    """Mirror a tool's model-visible call and output items onto its terminal operation."""
    tool = state.trace.tool_calls[tool_call_id]
    operation_id = tool.terminal_operation_id
    if operation_id is None:
        return
    calls = tool.model_visible_call_item_ids
    outputs = tool.model_visible_output_item_ids
    if not calls and not outputs:
        return
    operation = state.trace.terminal_operations.get(operation_id)
    if operation is None:
        raise ReduceError(
            f"terminal operation {operation_id} disappeared during observation linking"
        )
    for observation in operation.model_observations:
        if observation.source == "direct_tool_call":
            observation.call_item_ids = list(calls)
            observation.output_item_ids = list(outputs)
            return
    operation.model_observations.append(
        TerminalModelObservation(
            call_item_ids=list(calls), output_item_ids=list(outputs), source="direct_tool_call"
        )
    )
