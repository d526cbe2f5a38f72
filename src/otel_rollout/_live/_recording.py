"""The recording handles: the implementations of :mod:`._handles` that write a rollout.

Each public method is :func:`_guarded`: an internal failure never reaches the app
outside strict mode. Events go to the rollout's :class:`RolloutRecorder`, which queues
them for the bundle and the live spans: :meth:`~RolloutRecorder.emit` for events
without a payload, :meth:`~RolloutRecorder.record` for events with one. A handle that
cannot be had (a failed start, an invocation factory that returns ``None``) is the
no-op one. On every handle with terminal calls, the first one wins
(:func:`_first_terminal`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import itertools
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, ParamSpec, TypeVar

import msgspec

from otel_rollout import _errors
from otel_rollout._bundle import _bodies
from otel_rollout._bundle._bodies import (
    AgentResultTracePayload,
    ThreadStartedTraceMetadata,
    new_id,
    tool_call_kind,
)
from otel_rollout._bundle._models import (
    AgentResultObserved,
    AgentSummary,
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
    GenericSummary,
    HistoryItemAccepted,
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceStarted,
    McpToolCallCorrelationAssigned,
    ModelRequester,
    PayloadKind,
    ProtocolEventObserved,
    RawPayloadRef,
    RawTraceEventPayload,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    SpawnAgentKind,
    ThreadEnded,
    ThreadStarted,
    ToolCallEnded,
    ToolCallKind,
    ToolCallRuntimeEnded,
    ToolCallRuntimeStarted,
    ToolCallStarted,
)
from otel_rollout._bundle._writer import unix_ms
from otel_rollout._errors import Component
from otel_rollout._live import _noop, _runtime, _scope
from otel_rollout._live._handles import (
    CodeCellTraceContext,
    CompactionTraceAttempt,
    CompactionTraceContext,
    InferenceTraceAttempt,
    InferenceTraceContext,
    McpCallTraceContext,
    ThreadTraceContext,
    ToolDispatchInvocation,
    ToolDispatchTraceContext,
    TurnTraceContext,
)
from otel_rollout._live._recorder import RolloutRecorder

logger = logging.getLogger(__name__)

_TOOL_DISPATCH: Final[contextvars.ContextVar[_RecordingToolDispatch | None]] = (
    contextvars.ContextVar("otel_rollout_current_tool", default=None)
)
"""The tool dispatch in scope: a child thread started inside a ``spawn_agent`` one is tied to it."""

MCP_CALL_ID_META_KEY: Final = "codex_bridge_mcp_call_id"
"""Request ``_meta`` key carrying the MCP call id (Codex's name, for cross-process joins)."""

_INPUT_PREVIEW_CHARS = 160
_compaction_request_counter = itertools.count(1)
_P = ParamSpec("_P")
_R = TypeVar("_R")
_Refs = Sequence[RawPayloadRef | None]
_Exc = type[BaseException] | None


def _guarded_or(fallback: _R) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Decorate a recording method: an internal error returns ``fallback`` instead of
    reaching the app (re-raised in strict mode; see :mod:`otel_rollout._errors`)."""

    def decorate(method: Callable[_P, _R]) -> Callable[_P, _R]:
        what = method.__qualname__

        @functools.wraps(method)
        def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return method(*args, **kwargs)
            except Exception:
                _errors.internal_error(Component.RECORDING, what)
                return fallback

        return guarded

    return decorate


_guarded = _guarded_or(None)
"""Decorate a recording method that returns nothing (see :func:`_guarded_or`)."""


def _first_terminal(ended: threading.Lock, call: str, handle: str, handle_id: str) -> bool:
    """Take a handle's terminal call: ``True`` for the first; a later one is logged (debug)."""
    if ended.acquire(blocking=False):
        return True
    logger.debug(
        "rollout trace: %s ignored on %s %s: it already ended (the first terminal call wins)",
        call,
        handle,
        handle_id,
    )
    return False


def _required(refs: _Refs) -> RawPayloadRef:
    """The ref of an event whose payload is required (:meth:`RolloutRecorder.record` checked)."""
    ref = refs[0]
    assert ref is not None
    return ref


def _exit_status(exc: BaseException | None) -> ExecutionStatus:
    if exc is None:
        return ExecutionStatus.COMPLETED
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)):
        return ExecutionStatus.CANCELLED
    return ExecutionStatus.FAILED


def _execution_status(status: ExecutionStatus | str) -> ExecutionStatus:
    """``status`` as the enum (given as one, the usual case, without the enum's call)."""
    return status if type(status) is ExecutionStatus else ExecutionStatus(status)


def _error_text(exc: object) -> str:
    """An error as recorded: an exception as ``"<class name>: <message>"`` (so ``error.type``
    can name its class), anything else as its text."""
    if isinstance(exc, BaseException):
        return f"{type(exc).__name__}: {exc}"
    return str(exc)


def _preview(text: str) -> str:
    if len(text) > _INPUT_PREVIEW_CHARS:
        return text[:_INPUT_PREVIEW_CHARS] + "..."
    return text


def start_root(root: Path, metadata: ThreadStartedTraceMetadata | None) -> ThreadTraceContext:
    """Open a new bundle under ``root`` and start its root thread.

    Raises:
        OSError: the bundle could not be created.
    """
    metadata = metadata or ThreadStartedTraceMetadata()
    rec = _runtime.open_recorder(root, metadata.thread_id)
    trace_id, root_thread_id = rec.trace_id, metadata.thread_id
    rec.emit(lambda _: RolloutStarted(trace_id=trace_id, root_thread_id=root_thread_id), None, None)
    thread = _RecordingThread(rec, metadata.thread_id, metadata.agent_path, 0)
    thread._record_started(metadata, None)
    return thread


def record_inference_call(
    thread: ThreadTraceContext,
    turn_id: str,
    model: str,
    provider_name: str,
    request: Any,
    output_items: Sequence[Any],
    *,
    response_id: str,
    token_usage: Mapping[str, Any] | None = None,
    response_model: str | None = None,
    error: str | None = None,
) -> None:
    """Record one inference attempt seen only once it is over (an integration's model call
    span): started with ``request``, then completed with ``output_items`` (or failed with
    ``error``, the items received a partial response). The same events as the attempt
    handle's calls; on a recording thread without building the handles."""
    if type(thread) is not _RecordingThread:
        attempt = thread.inference_trace_context(turn_id, model, provider_name).start_attempt()
        attempt.record_started(request)
        if error is not None:
            attempt.record_failed(error, output_items=output_items)
        else:
            attempt.record_completed(
                response_id, output_items, token_usage=token_usage, response_model=response_model
            )
        return
    # On a recording thread: the events and payloads of the calls above, without the handles.
    try:
        ctx = _RecordingInference(thread._rec, thread.thread_id, turn_id, model, provider_name)
        call_id = new_id()
        if not _record_inference_started(ctx, call_id, request):
            return
        if error is None:
            _record_inference_completed(
                ctx, call_id, response_id, None, token_usage, output_items, response_model
            )
            return
        _record_inference_failed(ctx, call_id, error, None, output_items)
    except Exception:
        _errors.internal_error(Component.RECORDING, "record_inference_call")


def record_tool_call(
    thread: ThreadTraceContext,
    invocation: ToolDispatchInvocation,
    result: Any = None,
    *,
    error: str | None = None,
) -> None:
    """Record one tool call seen only once it is over (an integration's tool span): the
    events of ``start_tool_dispatch_trace`` then ``record_completed(result)`` (or
    ``record_failed(error)``); on a recording thread without the dispatch handle's calls."""
    if type(thread) is _RecordingThread:
        thread._record_tool_call(invocation, result, error)
        return
    dispatch = thread.start_tool_dispatch_trace(lambda: invocation)
    if error is not None:
        dispatch.record_failed(error)
    else:
        dispatch.record_completed(result)


# --- thread ---

# Globals for the per-event paths: an enum member looked up on its class is a slow class
# attribute lookup.
_REQUEST: Final = PayloadKind.INFERENCE_REQUEST
_RESPONSE: Final = PayloadKind.INFERENCE_RESPONSE
_TOOL_INVOCATION: Final = PayloadKind.TOOL_INVOCATION
_TOOL_RESULT: Final = PayloadKind.TOOL_RESULT
_COMPLETED: Final = ExecutionStatus.COMPLETED

_ROLLOUT_STATUS_ON_EXIT: Final = {
    ExecutionStatus.COMPLETED: RolloutStatus.COMPLETED,
    ExecutionStatus.CANCELLED: RolloutStatus.ABORTED,
    ExecutionStatus.FAILED: RolloutStatus.FAILED,
}


class _RecordingThread(ThreadTraceContext):
    """A thread that records; its terminal call is :meth:`record_ended`."""

    __slots__ = ("_ended", "_rec", "_scope", "_tokens", "agent_path", "depth", "thread_id")

    def __init__(self, rec: RolloutRecorder, thread_id: str, agent_path: str, depth: int) -> None:
        self._rec = rec
        self.thread_id = thread_id
        self.agent_path = agent_path
        self.depth = depth
        self._ended = threading.Lock()
        self._scope: _scope.SpanScope | None = None
        self._tokens: list[contextvars.Token[ThreadTraceContext | None]] = []

    def _record_started(
        self, metadata: ThreadStartedTraceMetadata, parent_thread_id: str | None
    ) -> None:
        self._rec.record(
            lambda refs: ThreadStarted(
                thread_id=metadata.thread_id,
                agent_path=metadata.agent_path,
                metadata_payload=refs[0],
            ),
            None,
            None,
            PayloadKind.SESSION_METADATA,
            metadata.to_payload(parent_thread_id, self.depth),
        )

    def is_enabled(self) -> bool:
        return not self._rec.stopped

    @property
    def trace_id(self) -> str | None:
        return self._rec.trace_id

    @property
    def bundle_dir(self) -> Path | None:
        return self._rec.bundle.writer.bundle_dir

    @_guarded_or(_noop.THREAD)
    def start_child_thread_trace_or_disabled(
        self, metadata: ThreadStartedTraceMetadata
    ) -> ThreadTraceContext:
        child = _RecordingThread(self._rec, metadata.thread_id, metadata.agent_path, self.depth + 1)
        self._rec.child_started(metadata.thread_id)
        child._record_started(metadata, self.thread_id)
        spawning = _TOOL_DISPATCH.get()
        if spawning is not None and spawning.thread_id == self.thread_id:
            spawning._observe_spawned(self, metadata)
        return child

    @_guarded
    def record_ended(self, status: RolloutStatus = RolloutStatus.COMPLETED) -> None:
        if not _first_terminal(self._ended, "record_ended", "thread", self.thread_id):
            return
        rec, thread_id = self._rec, self.thread_id
        status = status if type(status) is RolloutStatus else RolloutStatus(status)
        rec.emit(lambda _: ThreadEnded(thread_id=thread_id, status=status), None, None)
        final = rec.thread_ended(thread_id, status)
        if (
            final is not None
        ):  # the root has ended, and so has every child (children may outlive it)
            rec.emit(lambda _: RolloutEnded(status=final), None, None)
            rec.emit(lambda _: RecordingCompleted(), None, None)
            rec.close()

    @_guarded
    def record_protocol_event(self, event_type: str, payload: Any) -> None:
        self._rec.record(
            lambda refs: ProtocolEventObserved(
                event_type=event_type, event_payload=_required(refs)
            ),
            None,
            None,
            PayloadKind.PROTOCOL_EVENT,
            payload,
            required=True,
        )

    @_guarded
    def record_turn_started(self, turn_id: str) -> None:
        thread_id = self.thread_id
        self._rec.emit(
            lambda _: CodexTurnStarted(codex_turn_id=turn_id, thread_id=thread_id),
            thread_id,
            turn_id,
        )

    @_guarded
    def record_turn_ended(
        self, turn_id: str, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        status = _execution_status(status)
        self._rec.emit(
            lambda _: CodexTurnEnded(codex_turn_id=turn_id, status=status),
            self.thread_id,
            turn_id,
        )

    @_guarded
    def record_tool_call_runtime_started(
        self, turn_id: str, tool_call_id: str, kind: ToolCallKind | str, payload: Any
    ) -> None:
        tool_kind = tool_call_kind(kind) if isinstance(kind, str) else kind
        self._rec.record(
            lambda refs: ToolCallRuntimeStarted(
                tool_call_id=tool_call_id, kind=tool_kind, runtime_payload=_required(refs)
            ),
            self.thread_id,
            turn_id,
            PayloadKind.TOOL_RUNTIME_EVENT,
            payload,
            required=True,
        )

    @_guarded
    def record_tool_call_runtime_ended(
        self, turn_id: str, tool_call_id: str, status: ExecutionStatus, payload: Any
    ) -> None:
        status = ExecutionStatus(status)
        self._rec.record(
            lambda refs: ToolCallRuntimeEnded(
                tool_call_id=tool_call_id, status=status, runtime_payload=_required(refs)
            ),
            self.thread_id,
            turn_id,
            PayloadKind.TOOL_RUNTIME_EVENT,
            payload,
            required=True,
        )

    @_guarded
    def record_history_item_accepted(
        self, turn_id: str, item_id: str, agent_message: Any = None, *, tool_output: Any = None
    ) -> None:
        rec = self._rec
        if tool_output is None or not rec.sharded:  # schema 2 has no tool_output_payload
            rec.record(
                lambda refs: HistoryItemAccepted(item_id=item_id, agent_message_payload=refs[0]),
                self.thread_id,
                turn_id,
                None if agent_message is None else PayloadKind.PROTOCOL_EVENT,
                agent_message,
            )
            return
        rec.emit(
            lambda refs: HistoryItemAccepted(
                item_id=item_id, agent_message_payload=refs[0], tool_output_payload=refs[1]
            ),
            self.thread_id,
            turn_id,
            (
                None
                if agent_message is None
                else rec.encode(PayloadKind.PROTOCOL_EVENT, agent_message),
                rec.encode(PayloadKind.PROTOCOL_EVENT, tool_output),
            ),
        )

    @_guarded
    def record_agent_result_interaction(
        self, child_turn_id: str, parent_thread_id: str, payload: AgentResultTracePayload
    ) -> None:
        child_thread_id = self.thread_id
        edge_id = f"edge:agent_result:{child_thread_id}:{child_turn_id}:{parent_thread_id}"
        self._rec.record(
            lambda refs: AgentResultObserved(
                edge_id=edge_id,
                child_thread_id=child_thread_id,
                child_codex_turn_id=child_turn_id,
                parent_thread_id=parent_thread_id,
                message=payload.message,
                carried_payload=refs[0],
            ),
            child_thread_id,
            child_turn_id,
            PayloadKind.AGENT_RESULT,
            payload.to_payload(),
        )

    def start_code_cell_trace(
        self, turn_id: str, runtime_cell_id: str, model_visible_call_id: str, source: str
    ) -> CodeCellTraceContext:
        cell = self.code_cell_trace_context(turn_id, runtime_cell_id)
        cell.record_started(model_visible_call_id, source)
        return cell

    def code_cell_trace_context(self, turn_id: str, runtime_cell_id: str) -> CodeCellTraceContext:
        return _RecordingCodeCell(self._rec, self.thread_id, turn_id, runtime_cell_id)

    @_guarded_or(_noop.TOOL_DISPATCH)
    def start_tool_dispatch_trace(
        self, invocation_factory: Callable[[], ToolDispatchInvocation | None]
    ) -> ToolDispatchTraceContext:
        invocation = invocation_factory()
        if invocation is None:
            return _noop.TOOL_DISPATCH
        tool = _RecordingToolDispatch(self._rec, self.thread_id, invocation)
        tool._record_started()
        return tool

    @_guarded
    def _record_tool_call(
        self, invocation: ToolDispatchInvocation, result: Any, error: str | None
    ) -> None:
        """:func:`record_tool_call` on a recording thread."""
        tool = _RecordingToolDispatch(self._rec, self.thread_id, invocation)
        tool._record_started()
        if error is not None:
            tool._record_ended(ExecutionStatus.FAILED, _bodies.tool_error(error))
            return
        call_id = invocation.model_visible_call_id or invocation.tool_call_id
        tool._record_ended(_COMPLETED, _bodies.tool_output(call_id, result))

    def inference_trace_context(
        self,
        turn_id: str,
        model: str,
        provider_name: str,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> InferenceTraceContext:
        return _RecordingInference(
            self._rec, self.thread_id, turn_id, model, provider_name, server_address, server_port
        )

    def compaction_trace_context(
        self, turn_id: str, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        return _RecordingCompaction(
            self._rec, self.thread_id, turn_id, compaction_id, model, provider_name
        )

    @_guarded_or(_noop.MCP_CALL)
    def start_mcp_call_trace(self, tool_call_id: str) -> McpCallTraceContext:
        mcp_call_id = new_id()
        self._rec.emit(
            lambda _: McpToolCallCorrelationAssigned(
                tool_call_id=tool_call_id, mcp_call_id=mcp_call_id
            ),
            None,
            None,
        )
        return _RecordingMcpCall(mcp_call_id)

    def turn(self, turn_id: str | None = None) -> TurnTraceContext:
        return _RecordingTurn(self, turn_id or new_id())

    def __enter__(self) -> ThreadTraceContext:
        self._tokens.append(_scope.THREAD.set(self))
        if self._scope is None:
            self._scope = _scope.SpanScope()
            self._scope.attach(self._rec, f"thread:{self.thread_id}")
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._scope is not None:
            self._scope.detach()
            self._scope = None
        if self._tokens:
            _scope.restore(_scope.THREAD, self._tokens.pop())
        if not self._ended.locked():
            self.record_ended(_ROLLOUT_STATUS_ON_EXIT[_exit_status(exc)])


# --- turn ---


class _RecordingTurn(TurnTraceContext):
    """A turn that records: started on the first enter, ended on the first exit."""

    __slots__ = ("_ended", "_scope", "_started", "_thread", "_tokens", "turn_id")

    def __init__(self, thread: _RecordingThread, turn_id: str) -> None:
        self._thread = thread
        self.turn_id = turn_id
        self._started = False
        self._ended = threading.Lock()
        self._scope = _scope.SpanScope()
        self._tokens: list[contextvars.Token[TurnTraceContext | None]] = []

    @property
    def thread(self) -> ThreadTraceContext:
        return self._thread

    def is_enabled(self) -> bool:
        return not self._thread._rec.stopped

    def inference(
        self,
        model: str,
        provider_name: str,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> InferenceTraceContext:
        return self._thread.inference_trace_context(
            self.turn_id,
            model,
            provider_name,
            server_address=server_address,
            server_port=server_port,
        )

    def compaction(
        self, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        return self._thread.compaction_trace_context(
            self.turn_id, compaction_id, model, provider_name
        )

    def tool_call(
        self,
        tool_name: str,
        arguments: Any = None,
        *,
        tool_call_id: str | None = None,
        tool_namespace: str | None = None,
        target_agent_path: str | None = None,
    ) -> ToolDispatchTraceContext:
        invocation = ToolDispatchInvocation(
            turn_id=self.turn_id,
            tool_name=tool_name,
            arguments=arguments,
            tool_call_id=tool_call_id or new_id(),
            tool_namespace=tool_namespace,
            target_agent_path=target_agent_path,
        )
        thread = self._thread
        return _RecordingToolDispatch(thread._rec, thread.thread_id, invocation, deferred=True)

    def __enter__(self) -> TurnTraceContext:
        thread = self._thread
        if not self._started:
            self._started = True
            thread.record_turn_started(self.turn_id)
        self._tokens.append(_scope.TURN.set(self))
        self._scope.attach(thread._rec, f"turn:{self.turn_id}")
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._scope.detach()
        if self._tokens:
            _scope.restore(_scope.TURN, self._tokens.pop())
        if _first_terminal(self._ended, "turn end", "turn", self.turn_id):
            self._thread.record_turn_ended(self.turn_id, _exit_status(exc))


# --- inference ---


class _RecordingInference(InferenceTraceContext):
    """Starts recording inference attempts."""

    __slots__ = (
        "_rec",
        "model",
        "provider_name",
        "server_address",
        "server_port",
        "thread_id",
        "turn_id",
    )

    def __init__(
        self,
        rec: RolloutRecorder,
        thread_id: str,
        turn_id: str,
        model: str,
        provider_name: str,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> None:
        self._rec = rec
        self.thread_id = thread_id
        self.turn_id = turn_id
        self.model = model
        self.provider_name = provider_name
        self.server_address: str | msgspec.UnsetType = (
            msgspec.UNSET if server_address is None else server_address
        )
        self.server_port: int | msgspec.UnsetType = (
            msgspec.UNSET if server_port is None else server_port
        )

    def is_enabled(self) -> bool:
        return not self._rec.stopped

    def start_attempt(self) -> InferenceTraceAttempt:
        return _RecordingInferenceAttempt(self, new_id())

    def attempt(self, request: Any) -> InferenceTraceAttempt:
        attempt = _RecordingInferenceAttempt(self, new_id())
        attempt.record_started(request)
        return attempt


def _record_inference_started(ctx: _RecordingInference, call_id: str, request: Any) -> bool:
    """Record an attempt's start with its request; whether it was recorded."""
    return ctx._rec.record(
        lambda refs: InferenceStarted(
            inference_call_id=call_id,
            thread_id=ctx.thread_id,
            codex_turn_id=ctx.turn_id,
            model=ctx.model,
            provider_name=ctx.provider_name,
            request_payload=_required(refs),
            server_address=ctx.server_address,
            server_port=ctx.server_port,
        ),
        ctx.thread_id,
        ctx.turn_id,
        _REQUEST,
        request,
        required=True,
    )


def _record_inference_completed(
    ctx: _RecordingInference,
    call_id: str,
    response_id: str,
    upstream_request_id: str | None,
    token_usage: Mapping[str, Any] | None,
    output_items: Sequence[Any],
    response_model: str | None,
) -> None:
    """Record an attempt's completion with its response."""
    ctx._rec.record(
        lambda refs: InferenceCompleted(
            inference_call_id=call_id,
            response_id=response_id,
            upstream_request_id=upstream_request_id,
            response_payload=_required(refs),
        ),
        ctx.thread_id,
        ctx.turn_id,
        _RESPONSE,
        _bodies.inference_response(
            response_id, upstream_request_id, token_usage, output_items, response_model
        ),
        required=True,
    )


def _record_inference_unfinished(
    ctx: _RecordingInference,
    build: Callable[[_Refs], RawTraceEventPayload],
    upstream_request_id: str | None,
    output_items: Sequence[Any],
) -> None:
    """Record a failure or cancellation; output items received so far are a partial
    response payload."""
    if not output_items:
        ctx._rec.record(build, ctx.thread_id, ctx.turn_id)
        return
    partial = _bodies.inference_response(None, upstream_request_id, None, output_items)
    ctx._rec.record(build, ctx.thread_id, ctx.turn_id, _RESPONSE, partial)


def _record_inference_failed(
    ctx: _RecordingInference,
    call_id: str,
    error: str,
    upstream_request_id: str | None,
    output_items: Sequence[Any],
) -> None:
    """Record an attempt's failure (the items received so far as its partial response)."""
    _record_inference_unfinished(
        ctx,
        lambda refs: InferenceFailed(
            inference_call_id=call_id,
            upstream_request_id=upstream_request_id,
            error=error,
            partial_response_payload=refs[0],
        ),
        upstream_request_id,
        output_items,
    )


class _RecordingInferenceAttempt(InferenceTraceAttempt):
    """An inference attempt that records; no terminal event without a recorded start."""

    __slots__ = ("_ctx", "_ended", "_scope", "_started", "inference_call_id")

    def __init__(self, ctx: _RecordingInference, inference_call_id: str) -> None:
        self._ctx = ctx
        self.inference_call_id = inference_call_id
        self._started = False
        self._ended = threading.Lock()
        self._scope = _scope.SpanScope()

    def is_enabled(self) -> bool:
        return not self._ctx._rec.stopped

    @_guarded
    def record_started(self, request: Any) -> None:
        self._started = _record_inference_started(self._ctx, self.inference_call_id, request)

    def _take_terminal(self, call: str) -> bool:
        first = _first_terminal(self._ended, call, "inference attempt", self.inference_call_id)
        return first and self._started

    @_guarded
    def record_completed(
        self,
        response_id: str,
        output_items: Sequence[Any] = (),
        *,
        token_usage: Mapping[str, Any] | None = None,
        upstream_request_id: str | None = None,
        response_model: str | None = None,
    ) -> None:
        if not self._take_terminal("record_completed"):
            return
        _record_inference_completed(
            self._ctx,
            self.inference_call_id,
            response_id,
            upstream_request_id,
            token_usage,
            output_items,
            response_model,
        )

    @_guarded
    def record_failed(
        self,
        error: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        if not self._take_terminal("record_failed"):
            return
        message, call_id = _error_text(error), self.inference_call_id
        _record_inference_failed(self._ctx, call_id, message, upstream_request_id, output_items)

    @_guarded
    def record_cancelled(
        self,
        reason: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        if not self._take_terminal("record_cancelled"):
            return
        message, call_id = str(reason), self.inference_call_id
        _record_inference_unfinished(
            self._ctx,
            lambda refs: InferenceCancelled(
                inference_call_id=call_id,
                upstream_request_id=upstream_request_id,
                reason=message,
                partial_response_payload=refs[0],
            ),
            upstream_request_id,
            output_items,
        )

    def __enter__(self) -> InferenceTraceAttempt:
        self._scope.attach(self._ctx._rec, f"inference:{self.inference_call_id}")
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._scope.detach()
        if self._ended.locked():
            return
        if _exit_status(exc) is ExecutionStatus.FAILED:
            self.record_failed(_error_text(exc))
        else:
            self.record_cancelled(
                "cancelled" if exc is not None else "attempt ended without a response"
            )


# --- compaction ---


class _RecordingCompaction(CompactionTraceContext):
    """A compaction that records; its terminal call is :meth:`record_installed`."""

    __slots__ = (
        "_installed",
        "_rec",
        "compaction_id",
        "model",
        "provider_name",
        "thread_id",
        "turn_id",
    )

    def __init__(
        self,
        rec: RolloutRecorder,
        thread_id: str,
        turn_id: str,
        compaction_id: str,
        model: str,
        provider_name: str,
    ) -> None:
        self._rec = rec
        self.thread_id = thread_id
        self.turn_id = turn_id
        self.compaction_id = compaction_id
        self.model = model
        self.provider_name = provider_name
        self._installed = threading.Lock()

    def is_enabled(self) -> bool:
        return not self._rec.stopped

    @_guarded_or(_noop.COMPACTION_ATTEMPT)
    def start_attempt(self, request: Any) -> CompactionTraceAttempt:
        request_id = f"compaction_request:{next(_compaction_request_counter)}"
        started = self._rec.record(
            lambda refs: CompactionRequestStarted(
                compaction_id=self.compaction_id,
                compaction_request_id=request_id,
                thread_id=self.thread_id,
                codex_turn_id=self.turn_id,
                model=self.model,
                provider_name=self.provider_name,
                request_payload=_required(refs),
            ),
            self.thread_id,
            self.turn_id,
            PayloadKind.COMPACTION_REQUEST,
            request,
            required=True,
        )
        return (
            _RecordingCompactionAttempt(self, request_id) if started else _noop.COMPACTION_ATTEMPT
        )

    def attempt(self, request: Any) -> CompactionTraceAttempt:
        return self.start_attempt(request)

    @_guarded
    def record_installed(
        self, input_history: Sequence[Any], replacement_history: Sequence[Any]
    ) -> None:
        if not _first_terminal(
            self._installed, "record_installed", "compaction", self.compaction_id
        ):
            return
        self._rec.record(
            lambda refs: CompactionInstalled(
                compaction_id=self.compaction_id, checkpoint_payload=_required(refs)
            ),
            self.thread_id,
            self.turn_id,
            PayloadKind.COMPACTION_CHECKPOINT,
            _bodies.compaction_checkpoint(input_history, replacement_history),
            required=True,
        )


class _RecordingCompactionAttempt(CompactionTraceAttempt):
    """A compaction request that records."""

    __slots__ = ("_ctx", "_ended", "compaction_request_id")

    def __init__(self, ctx: _RecordingCompaction, compaction_request_id: str) -> None:
        self._ctx = ctx
        self.compaction_request_id = compaction_request_id
        self._ended = threading.Lock()

    def is_enabled(self) -> bool:
        return not self._ctx._rec.stopped

    def _take_terminal(self, call: str) -> bool:
        return _first_terminal(self._ended, call, "compaction attempt", self.compaction_request_id)

    @_guarded
    def record_completed(
        self, output_items: Sequence[Any], *, token_usage: Mapping[str, Any] | None = None
    ) -> None:
        if not self._take_terminal("record_completed"):
            return
        ctx, request_id = self._ctx, self.compaction_request_id
        ctx._rec.record(
            lambda refs: CompactionRequestCompleted(
                compaction_id=ctx.compaction_id,
                compaction_request_id=request_id,
                response_payload=_required(refs),
            ),
            ctx.thread_id,
            ctx.turn_id,
            PayloadKind.COMPACTION_RESPONSE,
            _bodies.compaction_response(output_items, token_usage),
            required=True,
        )

    @_guarded
    def record_failed(self, error: object) -> None:
        if not self._take_terminal("record_failed"):
            return
        ctx, request_id, message = self._ctx, self.compaction_request_id, _error_text(error)
        ctx._rec.emit(
            lambda _: CompactionRequestFailed(
                compaction_id=ctx.compaction_id,
                compaction_request_id=request_id,
                error=message,
            ),
            ctx.thread_id,
            ctx.turn_id,
        )

    def __enter__(self) -> CompactionTraceAttempt:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc is not None and not self._ended.locked():
            self.record_failed(_error_text(exc))


# --- tool dispatch ---


class _RecordingToolDispatch(ToolDispatchTraceContext):
    """A tool dispatch that records; started at once, or on enter when ``deferred``."""

    __slots__ = (
        "_ended",
        "_invocation",
        "_rec",
        "_scope",
        "_started",
        "_tokens",
        "thread_id",
        "tool_call_id",
    )

    def __init__(
        self,
        rec: RolloutRecorder,
        thread_id: str,
        invocation: ToolDispatchInvocation,
        *,
        deferred: bool = False,
    ) -> None:
        self._rec = rec
        self.thread_id = thread_id
        self.tool_call_id = invocation.tool_call_id
        self._invocation = invocation
        self._started = not deferred
        self._ended = threading.Lock()
        self._scope = _scope.SpanScope()
        self._tokens: list[contextvars.Token[_RecordingToolDispatch | None]] = []

    def is_enabled(self) -> bool:
        return not self._rec.stopped

    def _record_started(self) -> None:
        invocation = self._invocation
        self._started = True
        arguments = _bodies.arguments_text(invocation.arguments)
        if self._rec.redactor is not None:  # the preview too, not only the payload
            arguments = self._rec.redactor.body({"arguments": arguments})["arguments"]
        kind = invocation.kind or tool_call_kind(invocation.tool_name)
        label = (
            f"{invocation.tool_namespace}.{invocation.tool_name}"
            if invocation.tool_namespace
            else invocation.tool_name
        )
        summary: GenericSummary | AgentSummary
        if invocation.target_agent_path is not None:
            summary = AgentSummary(
                target_agent_path=invocation.target_agent_path,
                message_preview=_preview(arguments),
            )
        else:
            summary = GenericSummary(label=label, input_preview=_preview(arguments))
        if invocation.runtime_cell_id is not None:
            requester: ModelRequester | CodeCellRequester = CodeCellRequester(
                runtime_cell_id=invocation.runtime_cell_id
            )
            visible: str | None = None
            runtime_tool_id = invocation.runtime_tool_call_id
        else:
            requester = ModelRequester()
            visible = invocation.model_visible_call_id or invocation.tool_call_id
            runtime_tool_id = None
        self._rec.record(
            lambda refs: ToolCallStarted(
                tool_call_id=invocation.tool_call_id,
                model_visible_call_id=visible,
                code_mode_runtime_tool_id=runtime_tool_id,
                requester=requester,
                kind=kind,
                summary=summary,
                invocation_payload=refs[0],
            ),
            self.thread_id,
            invocation.turn_id,
            _TOOL_INVOCATION,
            _bodies.tool_invocation(invocation.tool_name, invocation.tool_namespace, arguments),
        )

    @_guarded
    def _record_deferred_start(self) -> None:
        self._record_started()

    def _take_terminal(self, call: str) -> bool:
        return self._started and _first_terminal(
            self._ended, call, "tool dispatch", self._invocation.tool_call_id
        )

    @_guarded
    def record_completed(
        self, result: Any = None, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        if not self._take_terminal("record_completed"):
            return
        invocation = self._invocation
        call_id = invocation.model_visible_call_id or invocation.tool_call_id
        self._record_ended(_execution_status(status), _bodies.tool_output(call_id, result))

    @_guarded
    def record_failed(self, error: object) -> None:
        if not self._take_terminal("record_failed"):
            return
        self._record_ended(ExecutionStatus.FAILED, _bodies.tool_error(_error_text(error)))

    def _record_ended(self, status: ExecutionStatus, body: dict[str, Any]) -> None:
        invocation = self._invocation
        self._rec.record(
            lambda refs: ToolCallEnded(
                tool_call_id=invocation.tool_call_id, status=status, result_payload=refs[0]
            ),
            self.thread_id,
            invocation.turn_id,
            _TOOL_RESULT,
            body,
        )

    def _observe_spawned(
        self, parent: ThreadTraceContext, metadata: ThreadStartedTraceMetadata
    ) -> None:
        """A child thread started inside this ``spawn_agent`` dispatch: record what Codex's
        runtime observes (its sub-agent activity event), which ties the child to this call
        (the reducer's ``spawn_agent`` edge, and the child span's parent)."""
        invocation = self._invocation
        if not isinstance(invocation.kind or tool_call_kind(invocation.tool_name), SpawnAgentKind):
            return
        parent.record_tool_call_runtime_ended(
            invocation.turn_id,
            invocation.tool_call_id,
            ExecutionStatus.COMPLETED,
            _bodies.spawn_activity(invocation.tool_call_id, unix_ms(), metadata),
        )

    def __enter__(self) -> ToolDispatchTraceContext:
        if not self._started:
            self._record_deferred_start()
        self._scope.attach(self._rec, f"tool:{self._invocation.tool_call_id}")
        self._tokens.append(_TOOL_DISPATCH.set(self))
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._scope.detach()
        if self._tokens:
            _scope.restore(_TOOL_DISPATCH, self._tokens.pop())
        if self._ended.locked():
            return
        status = _exit_status(exc)
        if status is ExecutionStatus.COMPLETED:
            self.record_completed()
        elif status is ExecutionStatus.CANCELLED:
            self.record_completed(None, ExecutionStatus.CANCELLED)
        else:
            self.record_failed(_error_text(exc))


# --- code cells and MCP ---


class _RecordingCodeCell(CodeCellTraceContext):
    """A code cell that records; its terminal call is :meth:`record_ended` (per handle)."""

    __slots__ = ("_ended", "_rec", "runtime_cell_id", "thread_id", "turn_id")

    def __init__(
        self, rec: RolloutRecorder, thread_id: str, turn_id: str, runtime_cell_id: str
    ) -> None:
        self._rec = rec
        self.thread_id = thread_id
        self.turn_id = turn_id
        self.runtime_cell_id = runtime_cell_id
        self._ended = threading.Lock()

    def is_enabled(self) -> bool:
        return not self._rec.stopped

    @_guarded
    def record_started(self, model_visible_call_id: str, source: str) -> None:
        cell_id = self.runtime_cell_id
        self._rec.emit(
            lambda _: CodeCellStarted(
                runtime_cell_id=cell_id,
                model_visible_call_id=model_visible_call_id,
                source_js=source,
            ),
            self.thread_id,
            self.turn_id,
        )

    @_guarded
    def record_initial_response(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        cell_id, status = self.runtime_cell_id, CodeCellRuntimeStatus(status)
        self._record_response(
            lambda refs: CodeCellInitialResponse(
                runtime_cell_id=cell_id, status=status, response_payload=refs[0]
            ),
            response,
        )

    @_guarded
    def record_ended(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        if not _first_terminal(self._ended, "record_ended", "code cell", self.runtime_cell_id):
            return
        cell_id, status = self.runtime_cell_id, CodeCellRuntimeStatus(status)
        self._record_response(
            lambda refs: CodeCellEnded(
                runtime_cell_id=cell_id, status=status, response_payload=refs[0]
            ),
            response,
        )

    def _record_response(
        self, build: Callable[[_Refs], RawTraceEventPayload], response: Any
    ) -> None:
        if response is None:
            self._rec.record(build, self.thread_id, self.turn_id)
            return
        self._rec.record(
            build,
            self.thread_id,
            self.turn_id,
            PayloadKind.TOOL_RESULT,
            _bodies.code_cell_response(response),
        )


class _RecordingMcpCall(McpCallTraceContext):
    """An assigned MCP call id."""

    __slots__ = ("mcp_call_id",)

    def __init__(self, mcp_call_id: str) -> None:
        self.mcp_call_id = mcp_call_id

    def is_enabled(self) -> bool:
        return True

    def add_request_meta(self, meta: Any) -> Any:
        if meta is None:
            return {MCP_CALL_ID_META_KEY: self.mcp_call_id}
        if isinstance(meta, dict):
            return {**meta, MCP_CALL_ID_META_KEY: self.mcp_call_id}
        return meta
