"""The recording API's public handles: one interface per handle, a Python port of Codex's
rollout trace contexts.

An app starts a root thread with :meth:`ThreadTraceContext.start_root_or_disabled`
and records what its agent does through the handles it hands out. Each handle type
here is an interface with two private implementations: a recording one
(:mod:`._recording`) that appends raw events to the rollout's bundle and drives its
live OpenTelemetry spans, and a no-op one (:mod:`._noop`) whose methods return at
once, touch no disk, serialize nothing and allocate nothing (its handles are
singletons). Which one a rollout gets is decided once, when its root thread starts;
every handle then hands out handles of its own kind.

Recording is best-effort: an internal failure never raises into the app (outside
strict mode, see :mod:`otel_rollout._errors`). On every handle that has terminal
calls, the first terminal call wins; later ones are ignored (logged at debug level).
"""

from __future__ import annotations

import abc
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from otel_rollout import _errors
from otel_rollout._bundle._bodies import (
    AgentResultTracePayload,
    ThreadStartedTraceMetadata,
    new_id,
)
from otel_rollout._bundle._models import (
    CodeCellRuntimeStatus,
    ExecutionStatus,
    RolloutStatus,
    ToolCallKind,
)
from otel_rollout._errors import Component
from otel_rollout._live import _runtime

logger = logging.getLogger(__name__)

_S = TypeVar("_S", bound="_Scoped")


@dataclass(frozen=True, init=False)
class ToolDispatchInvocation:
    """One tool call as dispatched (Codex's ``ToolDispatchInvocation``)."""

    turn_id: str
    tool_name: str
    arguments: Any = None
    """The call's arguments: a string (e.g. the model's JSON arguments) or JSON-able data."""
    tool_call_id: str = field(default_factory=new_id)
    """A new id unless given."""
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

    def __init__(
        self,
        turn_id: str,
        tool_name: str,
        arguments: Any = None,
        tool_call_id: str | None = None,
        tool_namespace: str | None = None,
        model_visible_call_id: str | None = None,
        runtime_cell_id: str | None = None,
        runtime_tool_call_id: str | None = None,
        kind: ToolCallKind | None = None,
        target_agent_path: str | None = None,
    ) -> None:
        """The fields, set at once (a frozen dataclass's own ``__init__`` sets each one
        through ``object.__setattr__``: twice the cost, on every tool call)."""
        self.__dict__.update(
            turn_id=turn_id,
            tool_name=tool_name,
            arguments=arguments,
            tool_call_id=new_id() if tool_call_id is None else tool_call_id,
            tool_namespace=tool_namespace,
            model_visible_call_id=model_visible_call_id,
            runtime_cell_id=runtime_cell_id,
            runtime_tool_call_id=runtime_tool_call_id,
            kind=kind,
            target_agent_path=target_agent_path,
        )


class _Scoped(abc.ABC):
    """A handle usable as a context manager, sync or async."""

    __slots__ = ()

    @abc.abstractmethod
    def __enter__(self) -> Any: ...

    @abc.abstractmethod
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def __aenter__(self: _S) -> _S:
        """Async form of ``__enter__``."""
        self.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Async form of ``__exit__``."""
        self.__exit__(exc_type, exc, tb)


# --- thread ---


class ThreadTraceContext(_Scoped):
    """One thread (agent) of a rollout: the root, or a child writing into the root's bundle.

    Use as a context manager (sync or async) to make it the current thread (and its
    span the current span) and to end it on exit: ``completed``, ``failed`` if the
    block raised (the exception propagates), ``aborted`` on cancellation.

    Example:
        >>> meta = ThreadStartedTraceMetadata(model="gpt-5", provider_name="openai")
        >>> with ThreadTraceContext.start_root_or_disabled(meta) as thread:  # doctest: +SKIP
        ...     with thread.turn() as turn:
        ...         ...
    """

    __slots__ = ()

    thread_id: str
    """The thread's id (``""`` when disabled)."""
    agent_path: str
    """The thread's agent path (``/root`` for the root)."""
    depth: int
    """0 for the root thread, 1 for its children, and so on."""

    # --- construction: the one place that decides between recording and no-op (the
    # implementations subclass these interfaces; otel_rollout._live binds them here) ---

    @classmethod
    def disabled(cls) -> ThreadTraceContext:
        """The disabled thread: every method is a no-op."""
        return _bound().disabled_thread

    @classmethod
    def start_root_or_disabled(
        cls, metadata: ThreadStartedTraceMetadata | None = None
    ) -> ThreadTraceContext:
        """Start a root thread in a new bundle, or return the disabled thread.

        Disabled when ``OTEL_ROLLOUT_TRACE_ROOT`` is unset or empty (and
        :func:`configure` set no root). A bundle that cannot be created logs a
        warning and gives the disabled thread.
        """
        implementations = _bound()
        settings = _runtime.configured()[1]
        if settings.trace_root is None:
            return implementations.disabled_thread
        try:
            return implementations.start_root(settings.trace_root, metadata)
        except OSError as error:  # the disk or directory, not a bug: one warning, app goes on
            logger.warning("rollout trace: failed to initialize rollout trace bundle: %s", error)
        except Exception:
            _errors.internal_error(Component.ROOT_START, "starting a root thread")
        return implementations.disabled_thread

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
        return _bound().start_root(Path(root), metadata)

    # --- state ---

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether this thread records."""

    @property
    @abc.abstractmethod
    def trace_id(self) -> str | None:
        """The bundle's trace id (the OTel trace id as a UUID), ``None`` when disabled."""

    @property
    @abc.abstractmethod
    def bundle_dir(self) -> Path | None:
        """The bundle directory, ``None`` when disabled."""

    @abc.abstractmethod
    def start_child_thread_trace_or_disabled(
        self, metadata: ThreadStartedTraceMetadata
    ) -> ThreadTraceContext:
        """Start a child thread writing into this rollout's bundle (disabled if this is).

        Started inside a ``spawn_agent`` tool dispatch of this thread, the child is
        tied to that call (the ``spawn_agent`` edge; its span sits under the tool's).
        """

    # --- thread events ---

    @abc.abstractmethod
    def record_ended(self, status: RolloutStatus = RolloutStatus.COMPLETED) -> None:
        """End this thread (terminal); ending the root thread also ends the rollout and bundle."""

    @abc.abstractmethod
    def record_protocol_event(self, event_type: str, payload: Any) -> None:
        """Record an app protocol event (a type name and a JSON-able payload)."""

    @abc.abstractmethod
    def record_turn_started(self, turn_id: str) -> None:
        """Record that turn ``turn_id`` began on this thread."""

    @abc.abstractmethod
    def record_turn_ended(
        self, turn_id: str, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        """Record that turn ``turn_id`` ended with ``status``.

        A method form keyed by id (as Codex's): it records what it is given. The
        :meth:`turn` handle ends its turn once.
        """

    @abc.abstractmethod
    def record_tool_call_runtime_started(
        self, turn_id: str, tool_call_id: str, kind: ToolCallKind | str, payload: Any
    ) -> None:
        """Record that the runtime began executing a tool call (``payload``: its runtime event)."""

    @abc.abstractmethod
    def record_tool_call_runtime_ended(
        self, turn_id: str, tool_call_id: str, status: ExecutionStatus, payload: Any
    ) -> None:
        """Record that the runtime finished a tool call."""

    @abc.abstractmethod
    def record_history_item_accepted(
        self, turn_id: str, item_id: str, agent_message: Any = None, *, tool_output: Any = None
    ) -> None:
        """Record that an item entered this thread's history.

        ``agent_message``: for a delivered inter-agent message, the item itself (see
        :func:`agent_message_item`); its body is stored as a payload.
        ``tool_output``: for a tool's output (a ``function_call_output`` or
        ``custom_tool_call_output`` item with ``item_id`` as its ``id``), the item itself,
        as Codex 0.171.0 records it after the tool call (schema 3's
        ``tool_output_payload``; a schema 2 bundle records the event without it).
        """

    @abc.abstractmethod
    def record_agent_result_interaction(
        self, child_turn_id: str, parent_thread_id: str, payload: AgentResultTracePayload
    ) -> None:
        """On a child thread: record that its result (of ``child_turn_id``) goes to the parent.

        The reducer's ``agent_result`` edge ends at the parent's copy of the message:
        record it on the parent with ``record_history_item_accepted(turn_id, item["id"],
        agent_message=item)`` where ``item = agent_message_item(payload.child_agent_path,
        parent_path, payload.message)``, and send the item in the parent's next request.
        """

    # --- sub-handles ---

    @abc.abstractmethod
    def start_code_cell_trace(
        self, turn_id: str, runtime_cell_id: str, model_visible_call_id: str, source: str
    ) -> CodeCellTraceContext:
        """Start a code cell (records ``code_cell_started``) and return its handle."""

    @abc.abstractmethod
    def code_cell_trace_context(self, turn_id: str, runtime_cell_id: str) -> CodeCellTraceContext:
        """A handle for an existing code cell (records nothing)."""

    @abc.abstractmethod
    def start_tool_dispatch_trace(
        self, invocation_factory: Callable[[], ToolDispatchInvocation | None]
    ) -> ToolDispatchTraceContext:
        """Start a tool dispatch; ``invocation_factory`` is never called when disabled."""

    @abc.abstractmethod
    def inference_trace_context(
        self,
        turn_id: str,
        model: str,
        provider_name: str,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> InferenceTraceContext:
        """A handle that starts inference attempts of one turn (records nothing itself).

        ``server_address``/``server_port`` (optional) name the model server: they fill
        ``server.address``/``server.port`` on the chat spans."""

    @abc.abstractmethod
    def compaction_trace_context(
        self, turn_id: str, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        """A handle for one compaction (its attempts and its installed checkpoint)."""

    @abc.abstractmethod
    def start_mcp_call_trace(self, tool_call_id: str) -> McpCallTraceContext:
        """Assign an MCP call id to a tool call (records the correlation) and return it."""

    @abc.abstractmethod
    def turn(self, turn_id: str | None = None) -> TurnTraceContext:
        """A turn to use as a context manager: started on enter, ended on exit.

        The turn ends ``completed``, ``failed`` if the block raised, or ``cancelled``
        on cancellation; the exception propagates. ``turn_id`` defaults to a UUID.
        """

    @abc.abstractmethod
    def __enter__(self) -> ThreadTraceContext:
        """Make this the current thread (and its span the current span)."""

    @abc.abstractmethod
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """End the thread (unless it ended): ``completed``, else ``failed`` (``aborted``
        on cancellation)."""

    def __repr__(self) -> str:
        """Show the thread id and whether it records."""
        state = "enabled" if self.is_enabled() else "disabled"
        return f"ThreadTraceContext({self.thread_id!r}, {state})"


# --- turn ---


class TurnTraceContext(_Scoped):
    """One turn of a thread, used as a context manager (sync or async).

    Entering records the turn's start (once) and makes it the current turn and span;
    exiting records its end (once: the first end wins): ``completed``, ``failed`` if
    the block raised, ``cancelled`` on cancellation.

    Example:
        >>> with thread.turn() as turn:  # doctest: +SKIP
        ...     with turn.inference("gpt-5", "openai").attempt(request) as attempt:
        ...         attempt.record_completed("resp_1", output_items)
    """

    __slots__ = ()

    turn_id: str
    """The turn's id (``""`` when disabled)."""

    @property
    @abc.abstractmethod
    def thread(self) -> ThreadTraceContext:
        """The thread this turn runs on."""

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether this turn records."""

    @abc.abstractmethod
    def inference(
        self,
        model: str,
        provider_name: str,
        *,
        server_address: str | None = None,
        server_port: int | None = None,
    ) -> InferenceTraceContext:
        """Inference attempts of this turn (``server_*``: the model server, optional)."""

    @abc.abstractmethod
    def compaction(
        self, compaction_id: str, model: str, provider_name: str
    ) -> CompactionTraceContext:
        """A compaction in this turn."""

    @abc.abstractmethod
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

    @abc.abstractmethod
    def __enter__(self) -> TurnTraceContext:
        """Record the turn's start; make it the current turn and span."""

    @abc.abstractmethod
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record the turn's end (``completed``, ``failed`` or ``cancelled``)."""


# --- inference ---


class InferenceTraceContext(abc.ABC):
    """Starts the inference attempts of one turn (one per upstream request)."""

    __slots__ = ()

    thread_id: str
    turn_id: str
    model: str
    provider_name: str

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether attempts record."""

    @abc.abstractmethod
    def start_attempt(self) -> InferenceTraceAttempt:
        """A new attempt with a fresh ``inference_call_id`` (records nothing yet)."""

    @abc.abstractmethod
    def attempt(self, request: Any) -> InferenceTraceAttempt:
        """Start an attempt and record its request; use as a context manager.

        On exit without a terminal record: ``failed`` if the block raised,
        ``cancelled`` otherwise (or on cancellation); the exception propagates.
        """


class InferenceTraceAttempt(_Scoped):
    """One upstream inference request.

    Its terminal calls are :meth:`record_completed`, :meth:`record_failed` and
    :meth:`record_cancelled`: the first one wins, and none is recorded without a
    recorded start.
    """

    __slots__ = ()

    inference_call_id: str
    """The attempt's id (``""`` when disabled)."""

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether this attempt records."""

    @abc.abstractmethod
    def record_started(self, request: Any) -> None:
        """Record the request (Codex's reducer reads its ``input`` list of Responses items)."""

    @abc.abstractmethod
    def record_completed(
        self,
        response_id: str,
        output_items: Sequence[Any] = (),
        *,
        token_usage: Mapping[str, Any] | None = None,
        upstream_request_id: str | None = None,
        response_model: str | None = None,
    ) -> None:
        """Record the whole response (``output_items``: Responses API output items;
        ``response_model``: the model that answered, for ``gen_ai.response.model``)."""

    @abc.abstractmethod
    def record_failed(
        self,
        error: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        """Record a failure (``output_items`` received so far are kept as a partial response)."""

    @abc.abstractmethod
    def record_cancelled(
        self,
        reason: object,
        *,
        upstream_request_id: str | None = None,
        output_items: Sequence[Any] = (),
    ) -> None:
        """Record a cancellation."""

    @abc.abstractmethod
    def __enter__(self) -> InferenceTraceAttempt:
        """Make the attempt's span current."""

    @abc.abstractmethod
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record ``failed`` / ``cancelled`` unless a terminal record was made."""


# --- compaction ---


class CompactionTraceContext(abc.ABC):
    """One compaction: its endpoint attempts and the checkpoint it installs (once)."""

    __slots__ = ()

    thread_id: str
    turn_id: str
    compaction_id: str
    model: str
    provider_name: str

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether this compaction records."""

    @abc.abstractmethod
    def start_attempt(self, request: Any) -> CompactionTraceAttempt:
        """Record a compaction request now and return its attempt."""

    @abc.abstractmethod
    def attempt(self, request: Any) -> CompactionTraceAttempt:
        """:meth:`start_attempt` as a context manager: a raising block records ``failed``."""

    @abc.abstractmethod
    def record_installed(
        self, input_history: Sequence[Any], replacement_history: Sequence[Any]
    ) -> None:
        """Record the checkpoint: the history compacted and the history that replaced it.

        Terminal: a compaction installs one checkpoint (the first call wins).
        """


class CompactionTraceAttempt(_Scoped):
    """One request to the compaction endpoint; its first terminal record wins."""

    __slots__ = ()

    compaction_request_id: str
    """The request's id (``""`` when disabled)."""

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether this attempt records."""

    @abc.abstractmethod
    def record_completed(
        self, output_items: Sequence[Any], *, token_usage: Mapping[str, Any] | None = None
    ) -> None:
        """Record the endpoint's output items (and its token usage, when known)."""

    @abc.abstractmethod
    def record_failed(self, error: object) -> None:
        """Record a failed request."""

    @abc.abstractmethod
    def __enter__(self) -> CompactionTraceAttempt:
        """Enter the attempt."""

    @abc.abstractmethod
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Record ``failed`` if the block raised and nothing was recorded."""


# --- tool dispatch ---


class ToolDispatchTraceContext(_Scoped):
    """One tool dispatch: started, then ended with a result or an error (the first wins)."""

    __slots__ = ()

    thread_id: str
    tool_call_id: str | None
    """The tool call's id (``None`` when disabled)."""

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether this dispatch records."""

    @abc.abstractmethod
    def record_completed(
        self, result: Any = None, status: ExecutionStatus = ExecutionStatus.COMPLETED
    ) -> None:
        """Record the tool's result (as a ``function_call_output`` for the model)."""

    @abc.abstractmethod
    def record_failed(self, error: object) -> None:
        """Record that the dispatch failed with ``error``."""

    @abc.abstractmethod
    def __enter__(self) -> ToolDispatchTraceContext:
        """Record the start (context-manager form) and make the tool span current."""

    @abc.abstractmethod
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """End the dispatch unless a result was recorded: ``completed`` or ``failed``."""


# --- code cells and MCP ---


class CodeCellTraceContext(abc.ABC):
    """A code-mode cell: started, an initial response, then its end (the first end wins)."""

    __slots__ = ()

    thread_id: str
    turn_id: str
    runtime_cell_id: str

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether this cell records."""

    @abc.abstractmethod
    def record_started(self, model_visible_call_id: str, source: str) -> None:
        """Record that the cell began running ``source``."""

    @abc.abstractmethod
    def record_initial_response(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        """Record the cell's first response (``yielded`` if it keeps running)."""

    @abc.abstractmethod
    def record_ended(self, status: CodeCellRuntimeStatus, response: Any = None) -> None:
        """Record the cell's end (terminal)."""


class McpCallTraceContext(abc.ABC):
    """The MCP call id of a tool call, to send in the MCP request's ``_meta``."""

    __slots__ = ()

    mcp_call_id: str | None
    """The assigned id (``None`` when disabled)."""

    @abc.abstractmethod
    def is_enabled(self) -> bool:
        """Whether an id was assigned."""

    @abc.abstractmethod
    def add_request_meta(self, meta: Any) -> Any:
        """Return ``meta`` with the MCP call id added (unchanged when disabled or not a dict)."""


# --- the implementations, bound by the package (otel_rollout._live) once both exist ---


@dataclass(frozen=True)
class Implementations:
    """What :class:`ThreadTraceContext`'s constructors hand out: recording or no-op."""

    start_root: Callable[[Path, ThreadStartedTraceMetadata | None], ThreadTraceContext]
    """Start a recording root thread in a new bundle under a directory (raises ``OSError``)."""
    disabled_thread: ThreadTraceContext
    """The no-op thread."""


_implementations: Implementations | None = None


def bind(implementations: Implementations) -> None:
    """Install the handle implementations (done once, by ``otel_rollout._live``)."""
    global _implementations
    _implementations = implementations


def _bound() -> Implementations:
    implementations = _implementations
    assert implementations is not None, "otel_rollout._live binds the implementations on import"
    return implementations
