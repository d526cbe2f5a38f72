"""The recording API: a Python port of Codex's rollout trace contexts.

An app starts a root thread with :meth:`ThreadTraceContext.start_root_or_disabled`
and records what its agent does through the handles it hands out. Each call appends
raw events to the rollout's bundle and drives the rollout's live OpenTelemetry spans.

Every handle has a disabled form (recording off): its methods return at once, touch
no disk, serialize nothing and allocate nothing, and the handles they return are
disabled singletons. Enabled handles never raise into the app: an internal failure
is logged once and recording of that bundle stops.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import random
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_rollout import _errors
from otel_rollout._bundle._json import encode_compact
from otel_rollout._bundle._models import (
    AgentResultObserved,
    AgentSummary,
    ApplyPatchKind,
    AssignAgentTaskKind,
    CloseAgentKind,
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
    ExecCommandKind,
    ExecutionStatus,
    GenericSummary,
    HistoryItemAccepted,
    ImageGenerationKind,
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceStarted,
    McpToolCallCorrelationAssigned,
    ModelRequester,
    OtherKind,
    PayloadKind,
    ProtocolEventObserved,
    RawPayloadRef,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    SendMessageKind,
    SpawnAgentKind,
    ThreadEnded,
    ThreadStarted,
    ToolCallEnded,
    ToolCallKind,
    ToolCallRuntimeEnded,
    ToolCallRuntimeStarted,
    ToolCallStarted,
    WaitAgentKind,
    WebKind,
    WriteStdinKind,
)
from otel_rollout._bundle._writer import unix_ms
from otel_rollout._errors import Component
from otel_rollout._live import _runtime
from otel_rollout._live._queue import flush_all
from otel_rollout._live._recorder import ForwardingSpan, RolloutRecorder

logger = logging.getLogger(__name__)

MCP_CALL_ID_META_KEY: Final = "codex_bridge_mcp_call_id"
"""Request ``_meta`` key carrying the MCP call id (Codex's name, for cross-process joins)."""

_INPUT_PREVIEW_CHARS = 160
_compaction_request_counter = itertools.count(1)
_T = TypeVar("_T")


def _required(refs: Sequence[RawPayloadRef | None]) -> RawPayloadRef:
    """The first ref of an event whose payload is required (the caller checked it exists)."""
    ref = refs[0]
    assert ref is not None
    return ref


def _new_id() -> str:
    """A random UUIDv4 string (from ``random``, as the OTel SDK's ids: no system call)."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _internal_error(what: str) -> None:
    """Handle an internal failure of a recording call (the one error policy, :mod:`_errors`)."""
    _errors.internal_error(Component.RECORDING, what)


# --- metadata and payload types ---


@dataclass(frozen=True)
class ThreadStartedTraceMetadata:
    """Who a thread (agent) is; written as the ``session_metadata`` payload.

    Every field has a default that suits an app that is not Codex.
    """

    thread_id: str = field(default_factory=_new_id)
    """The thread's id (also the rollout id for a root thread)."""
    agent_path: str = "/root"
    """Codex-style agent path: ``/root`` for the root, ``/root/<task>`` for children."""
    task_name: str | None = None
    nickname: str | None = None
    """Display name; span names use it when set (``invoke_agent <nickname>``)."""
    agent_role: str | None = None
    session_source: Any = None
    """Codex ``SessionSource`` JSON; ``None`` writes ``"otel_rollout"`` for a root and
    Codex's ``{"subagent": {"thread_spawn": ...}}`` form for a child."""
    cwd: str | None = None
    """Working directory; ``None`` records the process's current directory."""
    rollout_path: str | None = None
    model: str = ""
    provider_name: str = ""
    approval_policy: str = "never"
    sandbox_policy: str = ""

    def to_payload(self, parent_thread_id: str | None = None, depth: int = 0) -> dict[str, Any]:
        """Return the ``session_metadata`` payload body, in Codex's field order."""
        source = self.session_source
        if source is None:
            if parent_thread_id is None:
                source = "otel_rollout"
            else:
                source = {
                    "subagent": {
                        "thread_spawn": {
                            "parent_thread_id": parent_thread_id,
                            "depth": depth,
                            "agent_path": self.agent_path,
                            "agent_nickname": self.nickname,
                            "agent_role": self.agent_role,
                        }
                    }
                }
        task_name = self.task_name
        if task_name is None and self.agent_path.rstrip("/") not in ("", "/root"):
            task_name = self.agent_path.rstrip("/").rsplit("/", 1)[-1]
        return {
            "thread_id": self.thread_id,
            "agent_path": self.agent_path,
            "task_name": task_name,
            "nickname": self.nickname,
            "agent_role": self.agent_role,
            "session_source": source,
            "cwd": self.cwd if self.cwd is not None else _cwd(),
            "rollout_path": self.rollout_path,
            "model": self.model,
            "provider_name": self.provider_name,
            "approval_policy": self.approval_policy,
            "sandbox_policy": self.sandbox_policy,
        }


def _cwd() -> str:
    try:
        return os.getcwd()
    except OSError:
        return ""


@dataclass(frozen=True)
class AgentResultTracePayload:
    """What a child agent reports back to its parent (the ``agent_result`` payload)."""

    child_agent_path: str
    message: str
    status: Any = None
    """Codex ``AgentStatus`` JSON; ``None`` writes ``{"completed": message}``."""

    def to_payload(self) -> dict[str, Any]:
        """Return the payload body."""
        status = {"completed": self.message} if self.status is None else self.status
        return {
            "child_agent_path": self.child_agent_path,
            "message": self.message,
            "status": status,
        }


def agent_message_item(
    author: str, recipient: str, text: str, *, item_id: str | None = None
) -> dict[str, Any]:
    """An inter-agent message as Codex delivers it into the recipient's history.

    ``author`` and ``recipient`` are agent paths (``/root``, ``/root/researcher``).
    Record its delivery with :meth:`ThreadTraceContext.record_history_item_accepted`
    on the recipient thread (``agent_message=`` this item) and put it in that thread's
    next inference request: the reducer then resolves the edge that carried the text
    (the spawn task to a child, or a child's :class:`AgentResultTracePayload` message
    to its parent) to this item.
    """
    return {
        "type": "agent_message",
        "id": item_id if item_id is not None else f"amsg_{uuid.uuid4().hex}",
        "author": author,
        "recipient": recipient,
        "content": [{"type": "input_text", "text": text}],
    }


@dataclass(frozen=True)
class ToolDispatchInvocation:
    """One tool call as dispatched (Codex's ``ToolDispatchInvocation``)."""

    turn_id: str
    tool_name: str
    arguments: Any = None
    """The call's arguments: a string (e.g. the model's JSON arguments) or JSON-able data."""
    tool_call_id: str = field(default_factory=_new_id)
    tool_namespace: str | None = None
    model_visible_call_id: str | None = None
    """The model's ``call_id``; defaults to ``tool_call_id`` for model-requested calls."""
    runtime_cell_id: str | None = None
    """Set when a code cell (not the model) requested the call."""
    runtime_tool_call_id: str | None = None
    kind: ToolCallKind | None = None
    """Override Codex's name-based kind (``exec_command``, ``spawn_agent``, ...)."""
    target_agent_path: str | None = None
    """For agent tools (send/assign/close): the addressed agent, recorded as an edge."""


_KIND_BY_TOOL_NAME: Mapping[str, ToolCallKind] = {
    **dict.fromkeys(("exec_command", "local_shell", "shell", "shell_command"), ExecCommandKind()),
    "write_stdin": WriteStdinKind(),
    "apply_patch": ApplyPatchKind(),
    **dict.fromkeys(("web_search", "web_search_preview"), WebKind()),
    **dict.fromkeys(("image_generation", "image_query"), ImageGenerationKind()),
    "spawn_agent": SpawnAgentKind(),
    "send_message": SendMessageKind(),
    **dict.fromkeys(("followup_task", "assign_task"), AssignAgentTaskKind()),
    "wait_agent": WaitAgentKind(),
    **dict.fromkeys(("close_agent", "interrupt_agent"), CloseAgentKind()),
}


def tool_call_kind(tool_name: str) -> ToolCallKind:
    """Return Codex's tool kind for a tool name (``other`` for unknown names)."""
    return _KIND_BY_TOOL_NAME.get(tool_name) or OtherKind(name=tool_name)


def _as_kind(kind: ToolCallKind | str) -> ToolCallKind:
    return tool_call_kind(kind) if isinstance(kind, str) else kind


def _preview(text: str) -> str:
    if len(text) > _INPUT_PREVIEW_CHARS:
        return text[:_INPUT_PREVIEW_CHARS] + "..."
    return text


def _arguments_text(arguments: Any) -> str:
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    try:
        return encode_compact(arguments).decode()
    except (TypeError, ValueError, OverflowError):
        return str(arguments)


class _SpanScope:
    """Makes a recorded span's stand-in (:class:`ForwardingSpan`) current for a ``with`` block."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        self._token: contextvars.Token[otel_context.Context] | None = None

    def attach(self, rec: RolloutRecorder, key: str) -> None:
        span = ForwardingSpan(rec, key, rec.span_context(key))
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def detach(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:  # a foreign context (generator closed elsewhere)
                logger.debug("rollout trace: could not restore the OTel context", exc_info=True)


def _exit_status(exc: BaseException | None) -> ExecutionStatus:
    if exc is None:
        return ExecutionStatus.COMPLETED
    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)):
        return ExecutionStatus.CANCELLED
    return ExecutionStatus.FAILED


# --- thread ---

_current_thread: contextvars.ContextVar[ThreadTraceContext | None] = contextvars.ContextVar(
    "otel_rollout_current_thread", default=None
)
_current_turn: contextvars.ContextVar[TurnTraceContext | None] = contextvars.ContextVar(
    "otel_rollout_current_turn", default=None
)
_current_tool: contextvars.ContextVar[ToolDispatchTraceContext | None] = contextvars.ContextVar(
    "otel_rollout_current_tool", default=None
)


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Write every event recorded so far and end its live spans; ``False`` on timeout.

    Spans are built on the writer thread: call this before shutting down a tracer
    provider you passed to :func:`configure` (interpreter exit does it by itself).
    """
    return flush_all(timeout_millis / 1000)


def current_thread() -> ThreadTraceContext:
    """The thread of the innermost ``with thread:`` block (disabled outside one)."""
    return _current_thread.get() or _DISABLED_THREAD


def current_turn() -> TurnTraceContext:
    """The turn of the innermost ``with thread.turn():`` block (disabled outside one)."""
    return _current_turn.get() or _DISABLED_TURN


class ThreadTraceContext:
    """One thread (agent) of a rollout: the root, or a child writing into the root's bundle.

    Use as a context manager (sync or async) to end the thread on exit: ``completed``,
    or ``failed`` if the block raised (the exception propagates).

    Example:
        >>> meta = ThreadStartedTraceMetadata(model="gpt-5", provider_name="openai")
        >>> with ThreadTraceContext.start_root_or_disabled(meta) as thread:  # doctest: +SKIP
        ...     with thread.turn() as turn:
        ...         ...
    """

    __slots__ = ("_rec", "_scope", "_tokens", "agent_path", "depth", "thread_id")

    def __init__(
        self,
        rec: RolloutRecorder | None,
        thread_id: str,
        agent_path: str = "/root",
        depth: int = 0,
    ) -> None:
        """Wrap a recorder; use the ``start_*`` constructors instead."""
        self._rec = rec
        self.thread_id = thread_id
        self.agent_path = agent_path
        self.depth = depth
        self._scope: _SpanScope | None = None
        self._tokens: list[contextvars.Token[ThreadTraceContext | None]] = []

    # --- construction ---

    @classmethod
    def disabled(cls) -> ThreadTraceContext:
        """The disabled thread: every method is a no-op."""
        return _DISABLED_THREAD

    @classmethod
    def start_root_or_disabled(
        cls, metadata: ThreadStartedTraceMetadata | None = None
    ) -> ThreadTraceContext:
        """Start a root thread in a new bundle, or return the disabled thread.

        Disabled when ``OTEL_ROLLOUT_TRACE_ROOT`` is unset or empty (and
        :func:`configure` set no root). A bundle that cannot be created logs a
        warning and gives the disabled thread.
        """
        settings = _runtime.configured()[1]
        if settings.trace_root is None:
            return _DISABLED_THREAD
        try:
            return cls.start_root_in_root(settings.trace_root, metadata)
        except OSError as error:  # the disk or directory, not a bug: one warning, app goes on
            logger.warning("rollout trace: failed to initialize rollout trace bundle: %s", error)
        except Exception:
            _errors.internal_error(Component.ROOT_START, "starting a root thread")
        return _DISABLED_THREAD

    @classmethod
    def start_root_in_root(
        cls,
        root: str | os.PathLike[str],
        metadata: ThreadStartedTraceMetadata | None = None,
    ) -> ThreadTraceContext:
        """Start a root thread in a new bundle under ``root`` (created if missing).

        Raises:
            OSError: the bundle could not be created.
        """
        metadata = metadata or ThreadStartedTraceMetadata()
        rec = _runtime.open_recorder(Path(root), metadata.thread_id)
        trace_id = rec.trace_id
        root_thread_id = metadata.thread_id
        rec.emit(
            lambda _: RolloutStarted(trace_id=trace_id, root_thread_id=root_thread_id), None, None
        )
        thread = cls(rec, metadata.thread_id, metadata.agent_path, 0)
        thread._record_started(metadata, None)
        return thread

    def _record_started(
        self, metadata: ThreadStartedTraceMetadata, parent_thread_id: str | None
    ) -> None:
        rec = self._rec
        assert rec is not None
        body = rec.encode(
            PayloadKind.SESSION_METADATA, metadata.to_payload(parent_thread_id, self.depth)
        )
        rec.emit(
            lambda refs: ThreadStarted(
                thread_id=metadata.thread_id,
                agent_path=metadata.agent_path,
                metadata_payload=refs[0],
            ),
            None,
            None,
            (body,),
        )

    def is_enabled(self) -> bool:
        """Whether this thread records."""
        return self._rec is not None

    @property
    def trace_id(self) -> str | None:
        """The bundle's trace id (the OTel trace id as a UUID), ``None`` when disabled."""
        return self._rec.trace_id if self._rec is not None else None

    @property
    def bundle_dir(self) -> Path | None:
        """The bundle directory, ``None`` when disabled."""
        return self._rec.bundle.writer.bundle_dir if self._rec is not None else None

    def start_child_thread_trace_or_disabled(
        self, metadata: ThreadStartedTraceMetadata
    ) -> ThreadTraceContext:
        """Start a child thread writing into this rollout's bundle (disabled if this is)."""
        rec = self._rec
        if rec is None:
            return _DISABLED_THREAD
        try:
            child = ThreadTraceContext(rec, metadata.thread_id, metadata.agent_path, self.depth + 1)
            child._record_started(metadata, self.thread_id)
            spawning = _current_tool.get()
            if spawning is not None and spawning.thread_id == self.thread_id:
                spawning._observe_spawned(self, metadata)
            return child
        except Exception:
            _internal_error("starting a child thread")
            return _DISABLED_THREAD

    # --- thread events ---

    def record_ended(self, status: RolloutStatus = RolloutStatus.COMPLETED) -> None:
        """End this thread; ending the root thread also ends the rollout and the bundle."""
        rec = self._rec
        if rec is None:
            return
        try:
            thread_id = self.thread_id
            status = RolloutStatus(status)
            rec.emit(lambda _: ThreadEnded(thread_id=thread_id, status=status), None, None)
            if thread_id == rec.root_thread_id:
                rec.emit(lambda _: RolloutEnded(status=status), None, None)
                rec.emit(lambda _: RecordingCompleted(), None, None)
                rec.close()
        except Exception:
            _internal_error("record_ended")

    def record_protocol_event(self, event_type: str, payload: Any) -> None:
        """Record an app protocol event (a type name and a JSON-able payload)."""
        rec = self._rec
        if rec is None:
            return
        try:
            body = rec.encode(PayloadKind.PROTOCOL_EVENT, payload)
            if body is None:
                return
            rec.emit(
                lambda refs: ProtocolEventObserved(
                    event_type=event_type, event_payload=_required(refs)
                ),
                None,
                None,
                (body,),
            )
        except Exception:
            _internal_error("record_protocol_event")

    def record_turn_started(self, turn_id: str) -> None:
        """Record that turn ``turn_id`` began on this thread."""
        rec = self._rec
        if rec is None:
            return
        try:
            thread_id = self.thread_id
            rec.emit(
                lambda _: CodexTurnStarted(codex_turn_id=turn_id, thread_id=thread_id),
                thread_id,
                turn_id,
            )
        except Exception:
            _internal_error("record_turn_started")

    def record_turn_ended(
        self, turn_id: str, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        """Record that turn ``turn_id`` ended with ``status``."""
        rec = self._rec
        if rec is None:
            return
        try:
            status = ExecutionStatus(status)
            rec.emit(
                lambda _: CodexTurnEnded(codex_turn_id=turn_id, status=status),
                self.thread_id,
                turn_id,
            )
        except Exception:
            _internal_error("record_turn_ended")

    def record_tool_call_runtime_started(
        self, turn_id: str, tool_call_id: str, kind: ToolCallKind | str, payload: Any
    ) -> None:
        """Record that the runtime began executing a tool call (``payload``: its runtime event)."""
        rec = self._rec
        if rec is None:
            return
        try:
            body = rec.encode(PayloadKind.TOOL_RUNTIME_EVENT, payload)
            if body is None:
                return
            tool_kind = _as_kind(kind)
            rec.emit(
                lambda refs: ToolCallRuntimeStarted(
                    tool_call_id=tool_call_id,
                    kind=tool_kind,
                    runtime_payload=_required(refs),
                ),
                self.thread_id,
                turn_id,
                (body,),
            )
        except Exception:
            _internal_error("record_tool_call_runtime_started")

    def record_tool_call_runtime_ended(
        self,
        turn_id: str,
        tool_call_id: str,
        status: ExecutionStatus,
        payload: Any,
    ) -> None:
        """Record that the runtime finished a tool call."""
        rec = self._rec
        if rec is None:
            return
        try:
            body = rec.encode(PayloadKind.TOOL_RUNTIME_EVENT, payload)
            if body is None:
                return
            status = ExecutionStatus(status)
            rec.emit(
                lambda refs: ToolCallRuntimeEnded(
                    tool_call_id=tool_call_id,
                    status=status,
                    runtime_payload=_required(refs),
                ),
                self.thread_id,
                turn_id,
                (body,),
            )
        except Exception:
            _internal_error("record_tool_call_runtime_ended")

    def record_history_item_accepted(
        self, turn_id: str, item_id: str, agent_message: Any = None
    ) -> None:
        """Record that an item entered this thread's history.

        ``agent_message``: for a delivered inter-agent message, the item itself (see
        :func:`agent_message_item`); its body is stored as a payload.
        """
        rec = self._rec
        if rec is None:
            return
        try:
            body = (
                rec.encode(PayloadKind.PROTOCOL_EVENT, agent_message)
                if agent_message is not None
                else None
            )
            rec.emit(
                lambda refs: HistoryItemAccepted(item_id=item_id, agent_message_payload=refs[0]),
                self.thread_id,
                turn_id,
                (body,),
            )
        except Exception:
            _internal_error("record_history_item_accepted")

    def record_agent_result_interaction(
        self, child_turn_id: str, parent_thread_id: str, payload: AgentResultTracePayload
    ) -> None:
        """On a child thread: record that its result (of ``child_turn_id``) goes to the parent.

        The reducer's ``agent_result`` edge ends at the parent's copy of the message:
        record it on the parent with ``record_history_item_accepted(turn_id, item["id"],
        agent_message=item)`` where ``item = agent_message_item(payload.child_agent_path,
        parent_path, payload.message)``, and send the item in the parent's next request.
        """
        rec = self._rec
        if rec is None:
            return
        try:
            body = rec.encode(PayloadKind.AGENT_RESULT, payload.to_payload())
            child_thread_id = self.thread_id
            edge_id = f"edge:agent_result:{child_thread_id}:{child_turn_id}:{parent_thread_id}"
            rec.emit(
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
                (body,),
            )
        except Exception:
            _internal_error("record_agent_result_interaction")

    # --- sub-handles ---

    def start_code_cell_trace(
        self, turn_id: str, runtime_cell_id: str, model_visible_call_id: str, source: str
    ) -> CodeCellTraceContext:
        """Start a code cell (records ``code_cell_started``) and return its handle."""
        if self._rec is None:
            return _DISABLED_CODE_CELL
        cell = self.code_cell_trace_context(turn_id, runtime_cell_id)
        cell.record_started(model_visible_call_id, source)
        return cell

    def code_cell_trace_context(self, turn_id: str, runtime_cell_id: str) -> CodeCellTraceContext:
        """A handle for an existing code cell (records nothing)."""
        if self._rec is None:
            return _DISABLED_CODE_CELL
        return CodeCellTraceContext(self._rec, self.thread_id, turn_id, runtime_cell_id)

    def start_tool_dispatch_trace(
        self, invocation_factory: Callable[[], ToolDispatchInvocation | None]
    ) -> ToolDispatchTraceContext:
        """Start a tool dispatch; ``invocation_factory`` is never called when disabled."""
        rec = self._rec
        if rec is None:
            return _DISABLED_TOOL
        try:
            invocation = invocation_factory()
            if invocation is None:
                return _DISABLED_TOOL
            tool = ToolDispatchTraceContext(rec, self.thread_id, invocation)
            tool._record_started()
            return tool
        except Exception:
            _internal_error("start_tool_dispatch_trace")
            return _DISABLED_TOOL

    def inference_trace_context(
        self, turn_id: str, model: str, provider_name: str
    ) -> InferenceTraceContext:
        """A handle that starts inference attempts of one turn (records nothing itself)."""
        if self._rec is None:
            return _DISABLED_INFERENCE
        return InferenceTraceContext(self._rec, self.thread_id, turn_id, model, provider_name)

    def compaction_trace_context(
        self, turn_id: str, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        """A handle for one compaction (its attempts and its installed checkpoint)."""
        if self._rec is None:
            return _DISABLED_COMPACTION
        return CompactionTraceContext(
            self._rec, self.thread_id, turn_id, compaction_id, model, provider_name
        )

    def start_mcp_call_trace(self, tool_call_id: str) -> McpCallTraceContext:
        """Assign an MCP call id to a tool call (records the correlation) and return it."""
        rec = self._rec
        if rec is None:
            return _DISABLED_MCP
        try:
            mcp_call_id = _new_id()
            rec.emit(
                lambda _: McpToolCallCorrelationAssigned(
                    tool_call_id=tool_call_id, mcp_call_id=mcp_call_id
                ),
                None,
                None,
            )
            return McpCallTraceContext(mcp_call_id)
        except Exception:
            _internal_error("start_mcp_call_trace")
            return _DISABLED_MCP

    # --- Pythonic forms ---

    def turn(self, turn_id: str | None = None) -> TurnTraceContext:
        """A turn to use as a context manager: started on enter, ended on exit.

        The turn ends ``completed``, ``failed`` if the block raised, or ``cancelled``
        on cancellation; the exception propagates. ``turn_id`` defaults to a UUID.
        """
        if self._rec is None:
            return _DISABLED_TURN
        return TurnTraceContext(self, turn_id or _new_id())

    def __enter__(self) -> ThreadTraceContext:
        """Make this the current thread (and its span the current span)."""
        rec = self._rec
        if rec is not None:
            self._tokens.append(_current_thread.set(self))
            if self._scope is None:
                self._scope = _SpanScope()
                self._scope.attach(rec, f"thread:{self.thread_id}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """End the thread: ``completed``, else ``failed`` (``aborted`` on cancellation)."""
        if self._rec is None:
            return
        if self._scope is not None:
            self._scope.detach()
            self._scope = None
        if self._tokens:
            _reset(_current_thread, self._tokens.pop())
        status = _exit_status(exc)
        self.record_ended(
            RolloutStatus.COMPLETED
            if status is ExecutionStatus.COMPLETED
            else RolloutStatus.ABORTED
            if status is ExecutionStatus.CANCELLED
            else RolloutStatus.FAILED
        )

    async def __aenter__(self) -> ThreadTraceContext:
        """Async form of :meth:`__enter__`."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Async form of :meth:`__exit__`."""
        self.__exit__(exc_type, exc, tb)

    def __repr__(self) -> str:
        """Show the thread id and whether it records."""
        state = "enabled" if self._rec is not None else "disabled"
        return f"ThreadTraceContext({self.thread_id!r}, {state})"


def _reset(var: contextvars.ContextVar[_T], token: contextvars.Token[_T]) -> None:
    try:
        var.reset(token)
    except ValueError:  # token from another context (e.g. exit in another task)
        logger.debug("rollout trace: context variable %s not restored", var.name)


# --- turn (Pythonic) ---


class TurnTraceContext:
    """One turn of a thread, used as a context manager (sync or async).

    Example:
        >>> with thread.turn() as turn:  # doctest: +SKIP
        ...     with turn.inference("gpt-5", "openai").attempt(request) as attempt:
        ...         attempt.record_completed("resp_1", output_items)
    """

    __slots__ = ("_scope", "_thread", "_tokens", "turn_id")

    def __init__(self, thread: ThreadTraceContext, turn_id: str) -> None:
        """Use :meth:`ThreadTraceContext.turn` instead."""
        self._thread = thread
        self.turn_id = turn_id
        self._scope = _SpanScope()
        self._tokens: list[contextvars.Token[TurnTraceContext | None]] = []

    @property
    def thread(self) -> ThreadTraceContext:
        """The thread this turn runs on."""
        return self._thread

    def is_enabled(self) -> bool:
        """Whether this turn records."""
        return self._thread._rec is not None

    def inference(self, model: str, provider_name: str) -> InferenceTraceContext:
        """Inference attempts of this turn."""
        return self._thread.inference_trace_context(self.turn_id, model, provider_name)

    def compaction(
        self, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        """A compaction in this turn."""
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
        """A tool dispatch of this turn, to use as a context manager.

        On exit it ends ``completed`` (unless a result was recorded) or ``failed``
        if the block raised; the exception propagates.
        """
        rec = self._thread._rec
        if rec is None:
            return _DISABLED_TOOL
        invocation = ToolDispatchInvocation(
            turn_id=self.turn_id,
            tool_name=tool_name,
            arguments=arguments,
            tool_call_id=tool_call_id or _new_id(),
            tool_namespace=tool_namespace,
            target_agent_path=target_agent_path,
        )
        return ToolDispatchTraceContext(rec, self._thread.thread_id, invocation, deferred=True)

    def __enter__(self) -> TurnTraceContext:
        """Record the turn's start; make it the current turn and span."""
        rec = self._thread._rec
        if rec is not None:
            self._thread.record_turn_started(self.turn_id)
            self._tokens.append(_current_turn.set(self))
            self._scope.attach(rec, f"turn:{self.turn_id}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record the turn's end (``completed``, ``failed`` or ``cancelled``)."""
        if self._thread._rec is None:
            return
        self._scope.detach()
        if self._tokens:
            _reset(_current_turn, self._tokens.pop())
        self._thread.record_turn_ended(self.turn_id, _exit_status(exc))

    async def __aenter__(self) -> TurnTraceContext:
        """Async form of :meth:`__enter__`."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Async form of :meth:`__exit__`."""
        self.__exit__(exc_type, exc, tb)


# --- inference ---


class InferenceTraceContext:
    """Starts the inference attempts of one turn (one per upstream request)."""

    __slots__ = ("_rec", "model", "provider_name", "thread_id", "turn_id")

    def __init__(
        self,
        rec: RolloutRecorder | None,
        thread_id: str,
        turn_id: str,
        model: str,
        provider_name: str,
    ) -> None:
        """Use :meth:`ThreadTraceContext.inference_trace_context` instead."""
        self._rec = rec
        self.thread_id = thread_id
        self.turn_id = turn_id
        self.model = model
        self.provider_name = provider_name

    def is_enabled(self) -> bool:
        """Whether attempts record."""
        return self._rec is not None

    def start_attempt(self) -> InferenceTraceAttempt:
        """A new attempt with a fresh ``inference_call_id`` (records nothing yet)."""
        if self._rec is None:
            return _DISABLED_ATTEMPT
        return InferenceTraceAttempt(self, _new_id())

    def attempt(self, request: Any) -> InferenceTraceAttempt:
        """Start an attempt and record its request; use as a context manager.

        On exit without a terminal record: ``failed`` if the block raised,
        ``cancelled`` otherwise (or on cancellation); the exception propagates.
        """
        if self._rec is None:
            return _DISABLED_ATTEMPT
        attempt = InferenceTraceAttempt(self, _new_id())
        attempt.record_started(request)
        return attempt


class InferenceTraceAttempt:
    """One upstream inference request; the first terminal record wins."""

    __slots__ = ("_ctx", "_scope", "_started", "_terminal", "inference_call_id")

    def __init__(self, ctx: InferenceTraceContext | None, inference_call_id: str) -> None:
        """Use :meth:`InferenceTraceContext.start_attempt` instead."""
        self._ctx = ctx
        self.inference_call_id = inference_call_id
        self._started = False
        self._terminal = threading.Lock()
        self._scope = _SpanScope()

    def is_enabled(self) -> bool:
        """Whether this attempt records."""
        return self._ctx is not None

    def record_started(self, request: Any) -> None:
        """Record the request (Codex's reducer reads its ``input`` list of Responses items)."""
        ctx = self._ctx
        if ctx is None or ctx._rec is None:
            return
        rec = ctx._rec
        try:
            body = rec.encode(PayloadKind.INFERENCE_REQUEST, request)
            if body is None:
                return
            call_id = self.inference_call_id
            self._started = rec.emit(
                lambda refs: InferenceStarted(
                    inference_call_id=call_id,
                    thread_id=ctx.thread_id,
                    codex_turn_id=ctx.turn_id,
                    model=ctx.model,
                    provider_name=ctx.provider_name,
                    request_payload=_required(refs),
                ),
                ctx.thread_id,
                ctx.turn_id,
                (body,),
            )
        except Exception:
            _internal_error("inference record_started")

    def _take_terminal(self) -> InferenceTraceContext | None:
        ctx = self._ctx
        if ctx is None or not self._terminal.acquire(blocking=False):
            return None
        return ctx if self._started else None  # no terminal event without a start

    def record_completed(
        self,
        response_id: str,
        output_items: Sequence[Any] = (),
        *,
        token_usage: Mapping[str, Any] | None = None,
        upstream_request_id: str | None = None,
    ) -> None:
        """Record the whole response (``output_items``: Responses API output items)."""
        ctx = self._take_terminal()
        if ctx is None or ctx._rec is None:
            return
        rec = ctx._rec
        try:
            body = rec.encode(
                PayloadKind.INFERENCE_RESPONSE,
                {
                    "response_id": response_id,
                    "upstream_request_id": upstream_request_id,
                    "token_usage": token_usage,
                    "output_items": list(output_items),
                },
            )
            if body is None:
                return
            call_id = self.inference_call_id
            rec.emit(
                lambda refs: InferenceCompleted(
                    inference_call_id=call_id,
                    response_id=response_id,
                    upstream_request_id=upstream_request_id,
                    response_payload=_required(refs),
                ),
                ctx.thread_id,
                ctx.turn_id,
                (body,),
            )
        except Exception:
            _internal_error("inference record_completed")

    def record_failed(
        self,
        error: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        """Record a failure (``output_items`` received so far are kept as a partial response)."""
        self._record_unfinished(True, str(error), upstream_request_id, output_items)

    def record_cancelled(
        self,
        reason: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        """Record a cancellation."""
        self._record_unfinished(False, str(reason), upstream_request_id, output_items)

    def _record_unfinished(
        self,
        failed: bool,
        message: str,
        upstream_request_id: str | None,
        output_items: Sequence[Any],
    ) -> None:
        ctx = self._take_terminal()
        if ctx is None or ctx._rec is None:
            return
        rec = ctx._rec
        try:
            partial = (
                rec.encode(
                    PayloadKind.INFERENCE_RESPONSE,
                    {
                        "response_id": None,
                        "upstream_request_id": upstream_request_id,
                        "token_usage": None,
                        "output_items": list(output_items),
                    },
                )
                if output_items
                else None
            )
            call_id = self.inference_call_id

            def build(refs: Sequence[RawPayloadRef | None]) -> InferenceFailed | InferenceCancelled:
                if failed:
                    return InferenceFailed(
                        inference_call_id=call_id,
                        upstream_request_id=upstream_request_id,
                        error=message,
                        partial_response_payload=refs[0],
                    )
                return InferenceCancelled(
                    inference_call_id=call_id,
                    upstream_request_id=upstream_request_id,
                    reason=message,
                    partial_response_payload=refs[0],
                )

            rec.emit(build, ctx.thread_id, ctx.turn_id, (partial,))
        except Exception:
            _internal_error("inference terminal record")

    def __enter__(self) -> InferenceTraceAttempt:
        """Make the attempt's span current."""
        ctx = self._ctx
        if ctx is not None and ctx._rec is not None:
            self._scope.attach(ctx._rec, f"inference:{self.inference_call_id}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record ``failed`` / ``cancelled`` unless a terminal record was made."""
        if self._ctx is None:
            return
        self._scope.detach()
        status = _exit_status(exc)
        if status is ExecutionStatus.FAILED:
            self.record_failed(f"{type(exc).__name__}: {exc}")
        else:
            self.record_cancelled(
                "cancelled" if exc is not None else "attempt ended without a response"
            )

    async def __aenter__(self) -> InferenceTraceAttempt:
        """Async form of :meth:`__enter__`."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Async form of :meth:`__exit__`."""
        self.__exit__(exc_type, exc, tb)


# --- compaction ---


class CompactionTraceContext:
    """One compaction: its endpoint attempts and the checkpoint it installs."""

    __slots__ = ("_rec", "compaction_id", "model", "provider_name", "thread_id", "turn_id")

    def __init__(
        self,
        rec: RolloutRecorder | None,
        thread_id: str,
        turn_id: str,
        compaction_id: str,
        model: str,
        provider_name: str,
    ) -> None:
        """Use :meth:`ThreadTraceContext.compaction_trace_context` instead."""
        self._rec = rec
        self.thread_id = thread_id
        self.turn_id = turn_id
        self.compaction_id = compaction_id
        self.model = model
        self.provider_name = provider_name

    def is_enabled(self) -> bool:
        """Whether this compaction records."""
        return self._rec is not None

    def start_attempt(self, request: Any) -> CompactionTraceAttempt:
        """Record a compaction request now and return its attempt."""
        rec = self._rec
        if rec is None:
            return _DISABLED_COMPACTION_ATTEMPT
        try:
            request_id = f"compaction_request:{next(_compaction_request_counter)}"
            attempt = CompactionTraceAttempt(self, request_id)
            body = rec.encode(PayloadKind.COMPACTION_REQUEST, request)
            if body is None:
                return _DISABLED_COMPACTION_ATTEMPT
            rec.emit(
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
                (body,),
            )
            return attempt
        except Exception:
            _internal_error("compaction start_attempt")
            return _DISABLED_COMPACTION_ATTEMPT

    def attempt(self, request: Any) -> CompactionTraceAttempt:
        """:meth:`start_attempt` as a context manager: a raising block records ``failed``."""
        return self.start_attempt(request)

    def record_installed(
        self, input_history: Sequence[Any], replacement_history: Sequence[Any]
    ) -> None:
        """Record the checkpoint: the history compacted and the history that replaced it."""
        rec = self._rec
        if rec is None:
            return
        try:
            body = rec.encode(
                PayloadKind.COMPACTION_CHECKPOINT,
                {
                    "input_history": list(input_history),
                    "replacement_history": list(replacement_history),
                },
            )
            if body is None:
                return
            rec.emit(
                lambda refs: CompactionInstalled(
                    compaction_id=self.compaction_id,
                    checkpoint_payload=_required(refs),
                ),
                self.thread_id,
                self.turn_id,
                (body,),
            )
        except Exception:
            _internal_error("compaction record_installed")


class CompactionTraceAttempt:
    """One request to the compaction endpoint."""

    __slots__ = ("_ctx", "_done", "compaction_request_id")

    def __init__(self, ctx: CompactionTraceContext | None, compaction_request_id: str) -> None:
        """Use :meth:`CompactionTraceContext.start_attempt` instead."""
        self._ctx = ctx
        self.compaction_request_id = compaction_request_id
        self._done = False

    def is_enabled(self) -> bool:
        """Whether this attempt records."""
        return self._ctx is not None

    def record_completed(self, output_items: Sequence[Any]) -> None:
        """Record the endpoint's output items."""
        ctx = self._ctx
        if ctx is None or ctx._rec is None:
            return
        rec = ctx._rec
        try:
            self._done = True
            body = rec.encode(PayloadKind.COMPACTION_RESPONSE, {"output_items": list(output_items)})
            if body is None:
                return
            rec.emit(
                lambda refs: CompactionRequestCompleted(
                    compaction_id=ctx.compaction_id,
                    compaction_request_id=self.compaction_request_id,
                    response_payload=_required(refs),
                ),
                ctx.thread_id,
                ctx.turn_id,
                (body,),
            )
        except Exception:
            _internal_error("compaction record_completed")

    def record_failed(self, error: object) -> None:
        """Record a failed request."""
        ctx = self._ctx
        if ctx is None or ctx._rec is None:
            return
        try:
            self._done = True
            message = str(error)
            ctx._rec.emit(
                lambda _: CompactionRequestFailed(
                    compaction_id=ctx.compaction_id,
                    compaction_request_id=self.compaction_request_id,
                    error=message,
                ),
                ctx.thread_id,
                ctx.turn_id,
            )
        except Exception:
            _internal_error("compaction record_failed")

    def __enter__(self) -> CompactionTraceAttempt:
        """Enter the attempt."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record ``failed`` if the block raised and nothing was recorded."""
        if self._ctx is not None and exc is not None and not self._done:
            self.record_failed(f"{type(exc).__name__}: {exc}")

    async def __aenter__(self) -> CompactionTraceAttempt:
        """Async form of :meth:`__enter__`."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Async form of :meth:`__exit__`."""
        self.__exit__(exc_type, exc, tb)


# --- tool dispatch ---


class ToolDispatchTraceContext:
    """One tool dispatch: started, then ended with a result or an error."""

    __slots__ = ("_done", "_invocation", "_rec", "_scope", "_started", "_tokens", "thread_id")

    def __init__(
        self,
        rec: RolloutRecorder | None,
        thread_id: str,
        invocation: ToolDispatchInvocation | None,
        *,
        deferred: bool = False,
    ) -> None:
        """Use :meth:`ThreadTraceContext.start_tool_dispatch_trace` instead."""
        self._rec = rec
        self.thread_id = thread_id
        self._invocation = invocation
        self._started = not deferred
        self._done = False
        self._scope = _SpanScope()
        self._tokens: list[contextvars.Token[ToolDispatchTraceContext | None]] = []

    @property
    def tool_call_id(self) -> str | None:
        """The tool call's id (``None`` when disabled)."""
        return self._invocation.tool_call_id if self._invocation is not None else None

    def is_enabled(self) -> bool:
        """Whether this dispatch records."""
        return self._rec is not None

    def _record_started(self) -> None:
        rec, invocation = self._rec, self._invocation
        assert rec is not None and invocation is not None
        self._started = True
        arguments = _arguments_text(invocation.arguments)
        body = rec.encode(
            PayloadKind.TOOL_INVOCATION,
            {
                "tool_name": invocation.tool_name,
                "tool_namespace": invocation.tool_namespace,
                "payload": {"type": "function", "arguments": arguments},
            },
        )
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
        rec.emit(
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
            (body,),
        )

    def record_completed(
        self, result: Any = None, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        """Record the tool's result (as a ``function_call_output`` for the model)."""
        rec, invocation = self._rec, self._invocation
        if rec is None or invocation is None or not self._started:
            return
        try:
            self._done = True
            call_id = invocation.model_visible_call_id or invocation.tool_call_id
            output = result if isinstance(result, str) else _arguments_text(result)
            body = rec.encode(
                PayloadKind.TOOL_RESULT,
                {
                    "type": "direct_response",
                    "response_item": {
                        "type": "function_call_output",
                        "call_id": call_id,
                        "output": output,
                    },
                },
            )
            self._record_ended(ExecutionStatus(status), body)
        except Exception:
            _internal_error("tool record_completed")

    def record_failed(self, error: object) -> None:
        """Record that the dispatch failed with ``error``."""
        rec = self._rec
        if rec is None or self._invocation is None or not self._started:
            return
        try:
            self._done = True
            body = rec.encode(PayloadKind.TOOL_RESULT, {"type": "error", "error": str(error)})
            self._record_ended(ExecutionStatus.FAILED, body)
        except Exception:
            _internal_error("tool record_failed")

    def _record_ended(self, status: ExecutionStatus, body: Any) -> None:
        rec, invocation = self._rec, self._invocation
        assert rec is not None and invocation is not None
        rec.emit(
            lambda refs: ToolCallEnded(
                tool_call_id=invocation.tool_call_id, status=status, result_payload=refs[0]
            ),
            self.thread_id,
            invocation.turn_id,
            (body,),
        )

    def _observe_spawned(
        self, parent: ThreadTraceContext, metadata: ThreadStartedTraceMetadata
    ) -> None:
        """A child thread started inside this ``spawn_agent`` dispatch: record what Codex's
        runtime observes (its sub-agent activity event), which ties the child to this call
        (the reducer's ``spawn_agent`` edge, and the child span's parent)."""
        invocation = self._invocation
        if invocation is None or self._rec is None:
            return
        if not isinstance(invocation.kind or tool_call_kind(invocation.tool_name), SpawnAgentKind):
            return
        activity: dict[str, Any] = {
            "event_id": invocation.tool_call_id,
            "occurred_at_ms": unix_ms(),
            "agent_thread_id": metadata.thread_id,
            "agent_path": metadata.agent_path,
            "kind": "started",
        }
        if metadata.model:
            activity["model"] = metadata.model
        parent.record_tool_call_runtime_ended(
            invocation.turn_id, invocation.tool_call_id, ExecutionStatus.COMPLETED, activity
        )

    def __enter__(self) -> ToolDispatchTraceContext:
        """Record the start (context-manager form) and make the tool span current."""
        rec = self._rec
        if rec is not None and self._invocation is not None:
            if not self._started:
                try:
                    self._record_started()
                except Exception:
                    _internal_error("tool dispatch start")
            self._scope.attach(rec, f"tool:{self._invocation.tool_call_id}")
            self._tokens.append(_current_tool.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """End the dispatch unless a result was recorded: ``completed`` or ``failed``."""
        if self._rec is None:
            return
        self._scope.detach()
        if self._tokens:
            _reset(_current_tool, self._tokens.pop())
        if self._done:
            return
        status = _exit_status(exc)
        if status is ExecutionStatus.COMPLETED:
            self.record_completed()
        elif status is ExecutionStatus.CANCELLED:
            self.record_completed(None, ExecutionStatus.CANCELLED)
        else:
            self.record_failed(f"{type(exc).__name__}: {exc}")

    async def __aenter__(self) -> ToolDispatchTraceContext:
        """Async form of :meth:`__enter__`."""
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Async form of :meth:`__exit__`."""
        self.__exit__(exc_type, exc, tb)


# --- code cells and MCP ---


class CodeCellTraceContext:
    """A code-mode cell: started, an initial response, then its end."""

    __slots__ = ("_rec", "runtime_cell_id", "thread_id", "turn_id")

    def __init__(
        self, rec: RolloutRecorder | None, thread_id: str, turn_id: str, runtime_cell_id: str
    ) -> None:
        """Use :meth:`ThreadTraceContext.start_code_cell_trace` instead."""
        self._rec = rec
        self.thread_id = thread_id
        self.turn_id = turn_id
        self.runtime_cell_id = runtime_cell_id

    def is_enabled(self) -> bool:
        """Whether this cell records."""
        return self._rec is not None

    def record_started(self, model_visible_call_id: str, source: str) -> None:
        """Record that the cell began running ``source``."""
        rec = self._rec
        if rec is None:
            return
        try:
            rec.emit(
                lambda _: CodeCellStarted(
                    runtime_cell_id=self.runtime_cell_id,
                    model_visible_call_id=model_visible_call_id,
                    source_js=source,
                ),
                self.thread_id,
                self.turn_id,
            )
        except Exception:
            _internal_error("code cell record_started")

    def record_initial_response(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        """Record the cell's first response (``yielded`` if it keeps running)."""
        self._record(True, status, response)

    def record_ended(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        """Record the cell's end."""
        self._record(False, status, response)

    def _record(self, initial: bool, status: CodeCellRuntimeStatus, response: Any) -> None:
        rec = self._rec
        if rec is None:
            return
        try:
            status = CodeCellRuntimeStatus(status)
            body = (
                rec.encode(PayloadKind.TOOL_RESULT, {"response": response})
                if response is not None
                else None
            )
            cell_id = self.runtime_cell_id

            def build(
                refs: Sequence[RawPayloadRef | None],
            ) -> CodeCellInitialResponse | CodeCellEnded:
                if initial:
                    return CodeCellInitialResponse(
                        runtime_cell_id=cell_id, status=status, response_payload=refs[0]
                    )
                return CodeCellEnded(
                    runtime_cell_id=cell_id, status=status, response_payload=refs[0]
                )

            rec.emit(build, self.thread_id, self.turn_id, (body,))
        except Exception:
            _internal_error("code cell record")


class McpCallTraceContext:
    """The MCP call id of a tool call, to send in the MCP request's ``_meta``."""

    __slots__ = ("mcp_call_id",)

    def __init__(self, mcp_call_id: str | None) -> None:
        """Use :meth:`ThreadTraceContext.start_mcp_call_trace` instead."""
        self.mcp_call_id = mcp_call_id

    def is_enabled(self) -> bool:
        """Whether an id was assigned."""
        return self.mcp_call_id is not None

    def add_request_meta(self, meta: Any) -> Any:
        """Return ``meta`` with the MCP call id added (unchanged when disabled or not a dict)."""
        if self.mcp_call_id is None:
            return meta
        if meta is None:
            return {MCP_CALL_ID_META_KEY: self.mcp_call_id}
        if isinstance(meta, dict):
            return {**meta, MCP_CALL_ID_META_KEY: self.mcp_call_id}
        return meta


# --- disabled forms: same interface, every method a bare no-op (no attribute checks) ---

_Exc = type[BaseException] | None


class _DisabledThread(ThreadTraceContext):
    """The disabled thread."""

    __slots__ = ()

    def is_enabled(self) -> bool:
        return False

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
        self, turn_id: str, item_id: str, agent_message: Any = None
    ) -> None:
        return None

    def record_agent_result_interaction(
        self, child_turn_id: str, parent_thread_id: str, payload: AgentResultTracePayload
    ) -> None:
        return None

    def start_code_cell_trace(
        self, turn_id: str, runtime_cell_id: str, model_visible_call_id: str, source: str
    ) -> CodeCellTraceContext:
        return _DISABLED_CODE_CELL

    def code_cell_trace_context(self, turn_id: str, runtime_cell_id: str) -> CodeCellTraceContext:
        return _DISABLED_CODE_CELL

    def start_tool_dispatch_trace(
        self, invocation_factory: Callable[[], ToolDispatchInvocation | None]
    ) -> ToolDispatchTraceContext:
        return _DISABLED_TOOL

    def inference_trace_context(
        self, turn_id: str, model: str, provider_name: str
    ) -> InferenceTraceContext:
        return _DISABLED_INFERENCE

    def compaction_trace_context(
        self, turn_id: str, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        return _DISABLED_COMPACTION

    def start_mcp_call_trace(self, tool_call_id: str) -> McpCallTraceContext:
        return _DISABLED_MCP

    def turn(self, turn_id: str | None = None) -> TurnTraceContext:
        return _DISABLED_TURN

    def __enter__(self) -> ThreadTraceContext:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _DisabledTurn(TurnTraceContext):
    """The disabled turn."""

    __slots__ = ()

    def is_enabled(self) -> bool:
        return False

    def inference(self, model: str, provider_name: str) -> InferenceTraceContext:
        return _DISABLED_INFERENCE

    def compaction(
        self, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        return _DISABLED_COMPACTION

    def tool_call(
        self,
        tool_name: str,
        arguments: Any = None,
        *,
        tool_call_id: str | None = None,
        tool_namespace: str | None = None,
        target_agent_path: str | None = None,
    ) -> ToolDispatchTraceContext:
        return _DISABLED_TOOL

    def __enter__(self) -> TurnTraceContext:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _DisabledInference(InferenceTraceContext):
    """The disabled inference context."""

    __slots__ = ()

    def is_enabled(self) -> bool:
        return False

    def start_attempt(self) -> InferenceTraceAttempt:
        return _DISABLED_ATTEMPT

    def attempt(self, request: Any) -> InferenceTraceAttempt:
        return _DISABLED_ATTEMPT


class _DisabledAttempt(InferenceTraceAttempt):
    """The disabled inference attempt."""

    __slots__ = ()

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


class _DisabledCompaction(CompactionTraceContext):
    """The disabled compaction."""

    __slots__ = ()

    def is_enabled(self) -> bool:
        return False

    def start_attempt(self, request: Any) -> CompactionTraceAttempt:
        return _DISABLED_COMPACTION_ATTEMPT

    def attempt(self, request: Any) -> CompactionTraceAttempt:
        return _DISABLED_COMPACTION_ATTEMPT

    def record_installed(
        self, input_history: Sequence[Any], replacement_history: Sequence[Any]
    ) -> None:
        return None


class _DisabledCompactionAttempt(CompactionTraceAttempt):
    """The disabled compaction attempt."""

    __slots__ = ()

    def is_enabled(self) -> bool:
        return False

    def record_completed(self, output_items: Sequence[Any]) -> None:
        return None

    def record_failed(self, error: object) -> None:
        return None

    def __enter__(self) -> CompactionTraceAttempt:
        return self

    def __exit__(self, exc_type: _Exc, exc: BaseException | None, tb: TracebackType | None) -> None:
        return None


class _DisabledTool(ToolDispatchTraceContext):
    """The disabled tool dispatch."""

    __slots__ = ()

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


class _DisabledCodeCell(CodeCellTraceContext):
    """The disabled code cell."""

    __slots__ = ()

    def is_enabled(self) -> bool:
        return False

    def record_started(self, model_visible_call_id: str, source: str) -> None:
        return None

    def record_initial_response(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        return None

    def record_ended(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        return None


_DISABLED_THREAD: Final[ThreadTraceContext] = _DisabledThread(None, "")
_DISABLED_TURN: Final[TurnTraceContext] = _DisabledTurn(_DISABLED_THREAD, "")
_DISABLED_INFERENCE: Final[InferenceTraceContext] = _DisabledInference(None, "", "", "", "")
_DISABLED_ATTEMPT: Final[InferenceTraceAttempt] = _DisabledAttempt(None, "")
_DISABLED_COMPACTION: Final[CompactionTraceContext] = _DisabledCompaction(None, "", "", "", "", "")
_DISABLED_COMPACTION_ATTEMPT: Final[CompactionTraceAttempt] = _DisabledCompactionAttempt(None, "")
_DISABLED_TOOL: Final[ToolDispatchTraceContext] = _DisabledTool(None, "", None)
_DISABLED_CODE_CELL: Final[CodeCellTraceContext] = _DisabledCodeCell(None, "", "", "")
_DISABLED_MCP: Final = McpCallTraceContext(None)
