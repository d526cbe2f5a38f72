"""The no-op handles: what a rollout gets when recording is off.

Each class implements one interface of :mod:`._handles` with bare methods (no
attribute checks), and exists once (the singletons at the bottom): a disabled call
costs about as much as a plain method call and allocates nothing, and every handle
it returns is a singleton too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from otel_rollout._bundle._bodies import AgentResultTracePayload, ThreadStartedTraceMetadata
from otel_rollout._bundle._models import (
    CodeCellRuntimeStatus,
    ExecutionStatus,
    RolloutStatus,
    ToolCallKind,
)
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

_Exc = type[BaseException] | None


class _NoopThread(ThreadTraceContext):
    __slots__ = ()

    thread_id = ""
    agent_path = "/root"
    depth = 0

    def is_enabled(self) -> bool:
        return False

    @property
    def trace_id(self) -> str | None:
        return None

    @property
    def bundle_dir(self) -> Path | None:
        return None

    def start_child_thread_trace_or_disabled(
        self, metadata: ThreadStartedTraceMetadata
    ) -> ThreadTraceContext:
        return self

    def record_ended(self, status: RolloutStatus = RolloutStatus.COMPLETED) -> None:
        return None

    def record_protocol_event(self, event_type: str, payload: Any) -> None:
        return None

    def record_turn_started(self, turn_id: str) -> None:
        return None

    def record_turn_ended(
        self, turn_id: str, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        return None

    def record_tool_call_runtime_started(
        self, turn_id: str, tool_call_id: str, kind: ToolCallKind | str, payload: Any
    ) -> None:
        return None

    def record_tool_call_runtime_ended(
        self, turn_id: str, tool_call_id: str, status: ExecutionStatus, payload: Any
    ) -> None:
        return None

    def record_history_item_accepted(
        self, turn_id: str, item_id: str, agent_message: Any = None, *, tool_output: Any = None
    ) -> None:
        return None

    def record_agent_result_interaction(
        self, child_turn_id: str, parent_thread_id: str, payload: AgentResultTracePayload
    ) -> None:
        return None

    def start_code_cell_trace(
        self, turn_id: str, runtime_cell_id: str, model_visible_call_id: str, source: str
    ) -> CodeCellTraceContext:
        return CODE_CELL

    def code_cell_trace_context(self, turn_id: str, runtime_cell_id: str) -> CodeCellTraceContext:
        return CODE_CELL

    def start_tool_dispatch_trace(
        self, invocation_factory: Callable[[], ToolDispatchInvocation | None]
    ) -> ToolDispatchTraceContext:
        return TOOL_DISPATCH

    def inference_trace_context(
        self,
        turn_id: str,
        model: str,
        provider_name: str,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> InferenceTraceContext:
        return INFERENCE

    def compaction_trace_context(
        self, turn_id: str, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        return COMPACTION

    def start_mcp_call_trace(self, tool_call_id: str) -> McpCallTraceContext:
        return MCP_CALL

    def turn(self, turn_id: str | None = None) -> TurnTraceContext:
        return TURN

    def __enter__(self) -> ThreadTraceContext:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _NoopTurn(TurnTraceContext):
    __slots__ = ()

    turn_id = ""

    @property
    def thread(self) -> ThreadTraceContext:
        return THREAD

    def is_enabled(self) -> bool:
        return False

    def inference(
        self,
        model: str,
        provider_name: str,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> InferenceTraceContext:
        return INFERENCE

    def compaction(
        self, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        return COMPACTION

    def tool_call(
        self,
        tool_name: str,
        arguments: Any = None,
        *,
        tool_call_id: str | None = None,
        tool_namespace: str | None = None,
        target_agent_path: str | None = None,
    ) -> ToolDispatchTraceContext:
        return TOOL_DISPATCH

    def __enter__(self) -> TurnTraceContext:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _NoopInference(InferenceTraceContext):
    __slots__ = ()

    thread_id = ""
    turn_id = ""
    model = ""
    provider_name = ""

    def is_enabled(self) -> bool:
        return False

    def start_attempt(self) -> InferenceTraceAttempt:
        return INFERENCE_ATTEMPT

    def attempt(self, request: Any) -> InferenceTraceAttempt:
        return INFERENCE_ATTEMPT


class _NoopInferenceAttempt(InferenceTraceAttempt):
    __slots__ = ()

    inference_call_id = ""

    def is_enabled(self) -> bool:
        return False

    def record_started(self, request: Any) -> None:
        return None

    def record_completed(
        self,
        response_id: str,
        output_items: Sequence[Any] = (),
        *,
        token_usage: Mapping[str, Any] | None = None,
        upstream_request_id: str | None = None,
        response_model: str | None = None,
    ) -> None:
        return None

    def record_failed(
        self,
        error: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        return None

    def record_cancelled(
        self,
        reason: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        return None

    def __enter__(self) -> InferenceTraceAttempt:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _NoopCompaction(CompactionTraceContext):
    __slots__ = ()

    thread_id = ""
    turn_id = ""
    compaction_id = ""
    model = ""
    provider_name = ""

    def is_enabled(self) -> bool:
        return False

    def start_attempt(self, request: Any) -> CompactionTraceAttempt:
        return COMPACTION_ATTEMPT

    def attempt(self, request: Any) -> CompactionTraceAttempt:
        return COMPACTION_ATTEMPT

    def record_installed(
        self, input_history: Sequence[Any], replacement_history: Sequence[Any]
    ) -> None:
        return None


class _NoopCompactionAttempt(CompactionTraceAttempt):
    __slots__ = ()

    compaction_request_id = ""

    def is_enabled(self) -> bool:
        return False

    def record_completed(
        self, output_items: Sequence[Any], *, token_usage: Mapping[str, Any] | None = None
    ) -> None:
        return None

    def record_failed(self, error: object) -> None:
        return None

    def __enter__(self) -> CompactionTraceAttempt:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _NoopToolDispatch(ToolDispatchTraceContext):
    __slots__ = ()

    thread_id = ""
    tool_call_id = None

    def is_enabled(self) -> bool:
        return False

    def record_completed(
        self, result: Any = None, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        return None

    def record_failed(self, error: object) -> None:
        return None

    def __enter__(self) -> ToolDispatchTraceContext:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _NoopCodeCell(CodeCellTraceContext):
    __slots__ = ()

    thread_id = ""
    turn_id = ""
    runtime_cell_id = ""

    def is_enabled(self) -> bool:
        return False

    def record_started(self, model_visible_call_id: str, source: str) -> None:
        return None

    def record_initial_response(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        return None

    def record_ended(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        return None


class _NoopMcpCall(McpCallTraceContext):
    __slots__ = ()

    mcp_call_id = None

    def is_enabled(self) -> bool:
        return False

    def add_request_meta(self, meta: Any) -> Any:
        return meta


THREAD: Final[ThreadTraceContext] = _NoopThread()
TURN: Final[TurnTraceContext] = _NoopTurn()
INFERENCE: Final[InferenceTraceContext] = _NoopInference()
INFERENCE_ATTEMPT: Final[InferenceTraceAttempt] = _NoopInferenceAttempt()
COMPACTION: Final[CompactionTraceContext] = _NoopCompaction()
COMPACTION_ATTEMPT: Final[CompactionTraceAttempt] = _NoopCompactionAttempt()
TOOL_DISPATCH: Final[ToolDispatchTraceContext] = _NoopToolDispatch()
CODE_CELL: Final[CodeCellTraceContext] = _NoopCodeCell()
MCP_CALL: Final[McpCallTraceContext] = _NoopMcpCall()
