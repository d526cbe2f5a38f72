"""An Agents SDK ``TracingProcessor`` that records each SDK trace as a rollout.

The SDK's spans drive the recording API's handles as they start and end:

- one thread per agent (its name), ``/root`` for the first top-level agent;
- one turn per agent span (one ``Runner.run`` of the top agent is one turn; the SDK's own
  ``turn`` spans, one per model call loop, are steps inside it);
- a ``response`` span is one inference attempt: the request's real input items,
  instructions and tools, and the response's output items, exactly as the SDK holds them;
- a ``function`` span is a tool call (the model's ``call_id`` and exact arguments);
- an agent run inside a function span (``Agent.as_tool``) is a child thread spawned by that
  call (Codex's ``spawn_agent`` shape), its final answer sent back as an ``agent_result``;
  a later call of that agent is a new turn of the same thread, the task assigned by the call
  (Codex's ``assign_agent_task`` shape: the task delivered into the child's turn);
- a ``handoff`` span is the handing-off agent's ``transfer_to_*`` call spawning the target's
  thread, where the target's turns go.

All threads end when the SDK trace ends (the bundle is then complete); everything recorded
before is on disk within the writer's bound, so a killed process leaves a valid bundle.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from agents.tracing import Span, Trace, TracingProcessor
from agents.tracing.span_data import (
    AgentSpanData,
    FunctionSpanData,
    GenerationSpanData,
    HandoffSpanData,
    ResponseSpanData,
)
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace

from otel_rollout import _errors
from otel_rollout._bundle._bodies import (
    AgentResultTracePayload,
    ThreadStartedTraceMetadata,
    agent_message_item,
    new_id,
    spawn_activity,
)
from otel_rollout._bundle._models import (
    AssignAgentTaskKind,
    ExecutionStatus,
    RolloutStatus,
    SpawnAgentKind,
)
from otel_rollout._bundle._writer import unix_ms
from otel_rollout._errors import Component
from otel_rollout._live._handles import (
    ThreadTraceContext,
    ToolDispatchInvocation,
    ToolDispatchTraceContext,
)
from otel_rollout._live._recording import record_inference_call, record_tool_call
from otel_rollout._otel import _ownership
from otel_rollout._otel._mapping import trace_id_from_uuid

logger = logging.getLogger(__name__)

PROVIDER = "openai"
"""The provider name recorded for the SDK's models."""

_UNSAFE = re.compile(r"[^a-z0-9_]+")


def _segment(name: str) -> str:
    """An agent name as a Codex agent path segment."""
    return _UNSAFE.sub("_", name.lower()).strip("_") or "agent"


def _plain(value: Any) -> Any:
    """JSON-able data from the SDK's items (pydantic models as the API sent them).

    Plain data (dicts and lists of JSON values, what the SDK mostly holds) is returned as is:
    one pass of the C encoder checks it, cheaper than walking it in Python."""
    try:
        _check_encoder.encode(value)
    except TypeError:
        return _converted(value)
    return value


def _converted(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    if dump is not None:
        return dump(mode="json", exclude_unset=True)
    if isinstance(value, Mapping):
        return {str(key): _converted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_converted(item) for item in value]
    return value


_check_encoder = msgspec.json.Encoder()

_KINDS = (AgentSpanData, FunctionSpanData, GenerationSpanData, HandoffSpanData, ResponseSpanData)
_kind_by_type: dict[type, type | None] = {}


def _kind(data: Any) -> type | None:
    """Which of the span data classes this processor reads ``data`` is (``None``: another).

    By its type, looked up once per type: ``isinstance`` on the SDK's abstract span data
    classes costs an ABC check per class per span."""
    data_type = type(data)
    try:
        return _kind_by_type[data_type]
    except KeyError:
        kind = next((cls for cls in _KINDS if isinstance(data, cls)), None)
        _kind_by_type[data_type] = kind
        return kind


def _input_items(items: Any) -> list[Any]:
    """A request's input items, each JSON-able, in the Responses API's full form
    (:func:`_input_item`) and encoded once, here (``msgspec.Raw``): the recorder writes those
    bytes as they are (decoding them for its redactor, if one is set), and its writer takes
    the items of the prepared prompt from them without decoding the request."""
    encode = _check_encoder.encode
    try:
        return [msgspec.Raw(encode(_input_item(item))) for item in items]
    except TypeError:  # pydantic models among them (as the API sent them)
        return [msgspec.Raw(encode(_input_item(item))) for item in _converted(items)]


def _encoded(value: Any) -> msgspec.Raw:
    """``value`` (:func:`_plain`) encoded once, here (``msgspec.Raw``, written as is)."""
    try:
        return msgspec.Raw(_check_encoder.encode(value))
    except TypeError:
        return msgspec.Raw(_check_encoder.encode(_converted(value)))


def _is_shorthand(item: Any) -> bool:
    """Whether :func:`_input_item` completes ``item`` (a message without its ``type``)."""
    return isinstance(item, dict) and "type" not in item and "role" in item


def _input_item(item: Any) -> Any:
    """An input item in the Responses API's full form: a shorthand message (``role`` and
    string ``content``, which the API also takes) gets its ``type`` and content parts."""
    if not _is_shorthand(item):
        return item
    content = item.get("content")
    if isinstance(content, str):
        part = "output_text" if item["role"] == "assistant" else "input_text"
        text_part: dict[str, Any] = {"type": part, "text": content}
        if part == "output_text":
            text_part["annotations"] = []
        content = [text_part]
    return {"type": "message", **item, "content": content}


def _token_usage(usage: Any) -> dict[str, int] | None:
    """Codex's token usage from a Responses ``usage`` object, or from the dict a generation
    span holds (the same names; a Chat Completions ``prompt_tokens``/``completion_tokens``
    read too); ``None`` when absent or not numbers."""
    if usage is None:
        return None
    try:
        inputs = int(_field(usage, "input_tokens") or _field(usage, "prompt_tokens") or 0)
        outputs = int(_field(usage, "output_tokens") or _field(usage, "completion_tokens") or 0)
        input_details = _field(usage, "input_tokens_details") or _field(
            usage, "prompt_tokens_details"
        )
        output_details = _field(usage, "output_tokens_details") or _field(
            usage, "completion_tokens_details"
        )
        return {
            "input_tokens": inputs,
            "cached_input_tokens": int(_field(input_details, "cached_tokens") or 0),
            "output_tokens": outputs,
            "reasoning_output_tokens": int(_field(output_details, "reasoning_tokens") or 0),
            "total_tokens": int(_field(usage, "total_tokens") or inputs + outputs),
        }
    except (TypeError, ValueError):
        return None


def _field(value: Any, name: str) -> Any:
    """``value[name]`` of a dict, else its attribute ``name`` (``None`` if absent)."""
    if type(value) is dict or isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": []}


def _assistant_content(content: Any, refusal: Any) -> list[dict[str, Any]]:
    """A Chat Completions assistant message's content as Responses content parts: a string,
    or a list of parts (text parts as ``output_text``, refusals as ``refusal``), then its
    ``refusal`` if any."""
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        if content:
            parts.append(_output_text(content))
    elif isinstance(content, list):
        for part in content:
            if type(part) is not dict and not isinstance(part, Mapping):
                continue
            if isinstance(part.get("refusal"), str):
                parts.append({"type": "refusal", "refusal": part["refusal"]})
            elif isinstance(part.get("text"), str):
                parts.append(_output_text(part["text"]))
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    return parts


def _last_text(output: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last assistant message among output items (``""`` if none)."""
    for item in reversed(output):
        if item.get("type") == "message":
            parts = item.get("content") or []
            return "".join(
                part.get("text", "") for part in parts if part.get("type") == "output_text"
            )
    return ""


@dataclass(slots=True)
class _Agent:
    """One agent's thread and its open turn."""

    name: str
    thread: ThreadTraceContext
    turn_id: str | None = None
    last_output: list[dict[str, Any]] = field(default_factory=list)
    """The output items of this agent's latest response (tool calls are matched there)."""
    used_calls: set[str] = field(default_factory=set)
    """``call_id``s already dispatched."""


@dataclass(slots=True)
class _Tool:
    """A function span: dispatched at its end, or when an agent starts inside it."""

    agent: _Agent
    turn_id: str
    name: str
    dispatch: ToolDispatchTraceContext | None = None
    child: _Agent | None = None
    child_result: str | None = None
    spawn_name: str = ""
    """The agent name it spawns, when known (handoffs)."""
    call: dict[str, Any] | None = None
    """The model's ``function_call`` item, taken when the span starts (parallel calls of one
    tool start in the response's order, and may end in any order)."""


@dataclass(slots=True)
class _SpanState:
    """What a span is attributed to (shared, unchanged, by spans that add nothing to it)."""

    agent: _Agent | None
    tool: _Tool | None = None
    """The nearest enclosing function span not yet crossed by an agent span."""
    own_agent: bool = False
    spawned_by: _Tool | None = None
    """For an agent span run inside a function span (``Agent.as_tool``): that tool."""
    inner: _SpanState | None = None
    """For an agent span's state: the state of the spans inside it (made once)."""


_OUTSIDE_AGENTS = _SpanState(agent=None)
"""The state of a span under no agent span."""


def _inner_state(parent: _SpanState | None) -> _SpanState:
    """The state of a span inside ``parent`` that starts no agent or tool: the parent's own
    (no object per span), or, inside an agent span, that agent with the parent's tool."""
    if parent is None:
        return _OUTSIDE_AGENTS
    if not parent.own_agent:
        return parent
    inner = parent.inner
    if inner is None:
        inner = parent.inner = _SpanState(agent=parent.agent, tool=parent.tool)
    return inner


@dataclass(slots=True)
class _Rollout:
    """One SDK trace being recorded."""

    root: ThreadTraceContext | None = None
    agents: dict[str, _Agent] = field(default_factory=dict)
    spans: dict[str, _SpanState] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)
    disabled: bool = False
    otel_trace_ids: set[int] = field(default_factory=set)
    """OTel traces holding this rollout's work: its own, and any an OTel bridge started
    (claimed, so their spans stay out of spans-only bundles: one bundle per rollout)."""
    claimed: list[int] = field(default_factory=list)
    """The ones this processor claimed (released when the trace ends)."""
    seen_context: object = None
    """The OTel context the last span started in (its trace is already looked at)."""


class RolloutTracingProcessor(TracingProcessor):
    """Records the Agents SDK's traces as Codex-format rollout bundles.

    Add it with ``agents.add_trace_processor(RolloutTracingProcessor())`` (beside the SDK's
    own exporter) or ``agents.set_trace_processors([...])`` (instead of it). Bundles go under
    ``trace_root``, else under ``configure(trace_root=...)`` / ``OTEL_ROLLOUT_TRACE_ROOT``
    (unset: nothing is recorded). Content goes to the bundle in full; whether it also goes on
    the live spans follows the content switch (``configure(capture_content=...)``).
    """

    def __init__(self, trace_root: str | os.PathLike[str] | None = None) -> None:
        self._trace_root = Path(trace_root) if trace_root is not None else None
        self._rollouts: dict[str, _Rollout] = {}
        self._lock = threading.RLock()
        self.enabled = True
        """Cleared to stop recording new traces (the instrumentor's ``uninstrument``)."""

    # --- the SDK's callbacks ---

    def on_trace_start(self, trace: Trace) -> None:
        """Begin a rollout (its bundle starts with its first agent)."""
        if not self.enabled:
            return
        with self._lock:
            self._rollouts[trace.trace_id] = _Rollout()

    def on_trace_end(self, trace: Trace) -> None:
        """End every thread of the trace's rollout: its bundle is complete."""
        with self._lock:
            rollout = self._rollouts.pop(trace.trace_id, None)
            if rollout is None or rollout.root is None:
                return
            try:
                for trace_id in rollout.claimed:
                    _ownership.release_trace(trace_id)
                for agent in rollout.agents.values():
                    if agent.turn_id is not None:
                        agent.thread.record_turn_ended(agent.turn_id, ExecutionStatus.CANCELLED)
                        agent.turn_id = None
                    if agent.thread is not rollout.root:
                        agent.thread.record_ended(RolloutStatus.COMPLETED)
                rollout.root.record_ended(RolloutStatus.COMPLETED)
            except Exception:
                _errors.internal_error(Component.AGENTS_SDK, "ending an Agents SDK trace")

    def on_span_start(self, span: Span[Any]) -> None:
        """Attribute the span to its agent; start agents, turns and spawned children."""
        with self._lock:
            rollout = self._rollouts.get(span.trace_id)
            if rollout is None or rollout.disabled:
                return
            try:
                self._span_started(rollout, span)
                if rollout.root is not None:
                    self._claim_current_trace(rollout)
            except Exception:
                _errors.internal_error(Component.AGENTS_SDK, "an Agents SDK span start")

    def on_span_end(self, span: Span[Any]) -> None:
        """Record what the span did: an inference, a tool call, a handoff, a turn's end."""
        with self._lock:
            rollout = self._rollouts.get(span.trace_id)
            if rollout is None or rollout.disabled:
                return
            try:
                self._span_ended(rollout, span)
            except Exception:
                _errors.internal_error(Component.AGENTS_SDK, "an Agents SDK span end")

    def shutdown(self) -> None:
        """End the rollouts still open (their traces never ended)."""
        with self._lock:
            open_ids = list(self._rollouts)
        for trace_id in open_ids:
            self.on_trace_end(_EndedTrace(trace_id))

    def force_flush(self) -> None:
        """Wait until what was recorded is on disk."""
        from otel_rollout._live._runtime import force_flush

        force_flush()

    # --- span starts ---

    @staticmethod
    def _claim_current_trace(rollout: _Rollout) -> None:
        """Own the OTel trace in context (an OTel bridge's) if it is not this rollout's
        (looked at again only when the OTel context changed since the last span)."""
        context = otel_context.get_current()
        if context is rollout.seen_context:
            return
        rollout.seen_context = context
        trace_id = otel_trace.get_current_span(context).get_span_context().trace_id
        if trace_id and trace_id not in rollout.otel_trace_ids:
            rollout.otel_trace_ids.add(trace_id)
            rollout.claimed.append(trace_id)
            _ownership.claim_trace(trace_id)

    def _span_started(self, rollout: _Rollout, span: Span[Any]) -> None:
        parent_id = span.parent_id
        state = _inner_state(rollout.spans.get(parent_id) if parent_id else None)
        data = span.span_data
        kind = _kind(data)
        if kind is AgentSpanData:
            agent = self._agent_started(rollout, data.name, state)
            if agent is None:
                rollout.disabled = True
                return
            state = _SpanState(agent=agent, own_agent=True, spawned_by=state.tool)
        elif kind is FunctionSpanData and state.agent is not None:
            turn_id = state.agent.turn_id
            if turn_id is not None:
                call = self._take_call(state.agent, data.name)
                tool = _Tool(state.agent, turn_id, data.name, call=call)
                state = _SpanState(agent=state.agent, tool=tool)
        rollout.spans[span.span_id] = state

    def _agent_started(self, rollout: _Rollout, name: str, state: _SpanState) -> _Agent | None:
        agent = rollout.agents.get(name)
        tool = state.tool
        assigned: _Tool | None = None  # a later call of this agent as a tool: its task
        # goes into the agent's new turn
        if agent is None:
            if rollout.root is None:
                thread = self._start_root(name)
                if not thread.is_enabled():
                    return None
                rollout.root = thread
                rollout.paths.add(thread.agent_path)
                if thread.trace_id is not None:  # claimed by the recording API already
                    rollout.otel_trace_ids.add(trace_id_from_uuid(thread.trace_id))
                agent = _Agent(name, thread)
            else:
                spawner = tool.agent if tool is not None else None
                parent = spawner.thread if spawner is not None else rollout.root
                if tool is not None:
                    tool.spawn_name = _segment(name)
                    self._dispatch(tool, spawn=True)
                agent = _Agent(name, self._start_child(rollout, parent, name, tool))
            rollout.agents[name] = agent
        elif tool is not None and tool.dispatch is None:
            self._dispatch(tool, spawn=False, task=True)
            assigned = tool
        if tool is not None:
            tool.child = agent
        agent.turn_id = new_id()
        agent.thread.record_turn_started(agent.turn_id)
        if assigned is not None:
            self._assign_task(assigned, agent, agent.turn_id)
        return agent

    @staticmethod
    def _assign_task(tool: _Tool, agent: _Agent, turn_id: str) -> None:
        """A later call of an agent as a tool: its task delivered into the agent's new turn,
        and the runtime's ``interacted`` activity that ties the call to it (the edge)."""
        dispatch = tool.dispatch
        if dispatch is None or dispatch.tool_call_id is None:
            return
        caller, thread = tool.agent.thread, agent.thread
        task = _task_message(tool.call.get("arguments") if tool.call is not None else None)
        item = agent_message_item(caller.agent_path, thread.agent_path, task)
        thread.record_history_item_accepted(turn_id, item["id"], agent_message=item)
        activity = {
            "event_id": dispatch.tool_call_id,
            "occurred_at_ms": unix_ms(),
            "agent_thread_id": thread.thread_id,
            "agent_path": thread.agent_path,
            "kind": "interacted",
        }
        caller.record_tool_call_runtime_ended(
            tool.turn_id, dispatch.tool_call_id, ExecutionStatus.COMPLETED, activity
        )

    def _start_root(self, name: str) -> ThreadTraceContext:
        metadata = ThreadStartedTraceMetadata(nickname=name, provider_name=PROVIDER)
        if self._trace_root is None:
            return ThreadTraceContext.start_root_or_disabled(metadata)
        try:
            return ThreadTraceContext.start_root_in_root(self._trace_root, metadata)
        except OSError as error:  # the disk, not a bug: one warning per failed bundle
            logger.warning("rollout trace: failed to initialize rollout trace bundle: %s", error)
            return ThreadTraceContext.disabled()

    def _start_child(
        self,
        rollout: _Rollout,
        parent: ThreadTraceContext,
        name: str,
        spawned_by: _Tool | None,
    ) -> ThreadTraceContext:
        path = f"{parent.agent_path}/{_segment(name)}"
        number = 2
        while path in rollout.paths:
            path = f"{parent.agent_path}/{_segment(name)}_{number}"
            number += 1
        rollout.paths.add(path)
        metadata = ThreadStartedTraceMetadata(
            agent_path=path, task_name=path.rsplit("/", 1)[1], nickname=name,
            provider_name=PROVIDER,
        )  # fmt: skip
        child = parent.start_child_thread_trace_or_disabled(metadata)
        dispatch = spawned_by.dispatch if spawned_by is not None else None
        if spawned_by is not None and dispatch is not None and dispatch.tool_call_id is not None:
            # what Codex's runtime observes when a spawn_agent call's child starts
            parent.record_tool_call_runtime_ended(
                spawned_by.turn_id,
                dispatch.tool_call_id,
                ExecutionStatus.COMPLETED,
                spawn_activity(dispatch.tool_call_id, unix_ms(), metadata),
            )
        return child

    def _take_call(self, agent: _Agent, name: str, prefix: bool = False) -> dict[str, Any] | None:
        """The first not yet dispatched ``function_call`` of the agent's latest response."""
        for item in agent.last_output:
            call_id = item.get("call_id")
            if item.get("type") != "function_call" or call_id in agent.used_calls:
                continue
            item_name = str(item.get("name", ""))
            if item_name == name or (prefix and item_name.startswith(name)):
                agent.used_calls.add(str(call_id))
                return item
        return None

    def _dispatch(
        self, tool: _Tool, *, spawn: bool, task: bool = False, arguments: str | None = None
    ) -> None:
        invocation = self._invocation(tool, spawn=spawn, task=task, arguments=arguments)
        tool.dispatch = tool.agent.thread.start_tool_dispatch_trace(lambda: invocation)

    @staticmethod
    def _invocation(
        tool: _Tool, *, spawn: bool, task: bool = False, arguments: str | None = None
    ) -> ToolDispatchInvocation:
        call = tool.call
        call_id = str(call["call_id"]) if call is not None else new_id()
        if call is not None:
            arguments = str(call.get("arguments", ""))
        if task:  # Codex's assign_agent_task arguments: the task as a message
            arguments = json.dumps({"message": _task_message(arguments)}, separators=(",", ":"))
        elif spawn:  # Codex's spawn_agent arguments: the task as a message (the model's exact
            # arguments stay in the response's function_call item)
            arguments = json.dumps(
                {"message": _task_message(arguments), "task_name": tool.spawn_name},
                separators=(",", ":"),
            )
        return ToolDispatchInvocation(
            turn_id=tool.turn_id,
            tool_name=tool.name,
            arguments=arguments,
            tool_call_id=call_id,
            kind=SpawnAgentKind() if spawn else AssignAgentTaskKind() if task else None,
        )

    # --- span ends ---

    def _span_ended(self, rollout: _Rollout, span: Span[Any]) -> None:
        state = rollout.spans.pop(span.span_id, None)
        if state is None or state.agent is None:
            return
        data = span.span_data
        agent = state.agent
        kind = _kind(data)
        if kind is ResponseSpanData:
            self._response_ended(agent, data, span)
        elif kind is GenerationSpanData:
            self._generation_ended(agent, data, span)
        elif kind is FunctionSpanData and state.tool is not None:
            self._function_ended(state.tool, data, span)
        elif kind is HandoffSpanData:
            self._handoff_ended(rollout, agent, data)
        elif kind is AgentSpanData and state.own_agent:
            self._agent_ended(agent, span, state.spawned_by)

    def _response_ended(self, agent: _Agent, data: ResponseSpanData, span: Span[Any]) -> None:
        if agent.turn_id is None:
            return
        response = data.response
        model = str(getattr(response, "model", "") or "")
        request: dict[str, Any] = {"model": model}
        if response is not None and response.instructions is not None:
            request["instructions"] = _plain(response.instructions)
        raw_input = data.input
        if isinstance(raw_input, str):
            raw_input = [{"role": "user", "content": raw_input}]
        request["input"] = _input_items(raw_input or [])
        if response is not None and response.tools:
            request["tools"] = _encoded(response.tools)
        output = [_plain(item) for item in response.output] if response is not None else []
        if span.error is not None:
            record_inference_call(
                agent.thread, agent.turn_id, model, PROVIDER, request, output,
                response_id="", error=_error_text(span.error),
            )  # fmt: skip
        else:
            response_id = str(getattr(response, "id", "") or data._response_id or "")
            record_inference_call(
                agent.thread, agent.turn_id, model, PROVIDER, request, output,
                response_id=response_id or new_id(),
                token_usage=_token_usage(getattr(response, "usage", None)),
                response_model=model or None,
            )  # fmt: skip
        agent.last_output = output
        agent.used_calls.clear()

    def _generation_ended(self, agent: _Agent, data: GenerationSpanData, span: Span[Any]) -> None:
        """A Chat Completions model call: its messages, as Responses-style items."""
        if agent.turn_id is None:
            return
        model = str(data.model or "")
        request = {"model": model, "input": _input_items(data.input or [])}
        output: list[dict[str, Any]] = []
        for number, message in enumerate(data.output or []):
            if type(message) is not dict:  # (a dict's content is not copied: only read)
                message = _plain(message)
                if not isinstance(message, dict):
                    continue
            if message.get("type") is not None:  # already a Responses item
                output.append(message)
                continue
            content = _assistant_content(message.get("content"), message.get("refusal"))
            if content:
                output.append(
                    {
                        "type": "message",
                        "id": f"msg_{span.span_id}_{number}",
                        "role": "assistant",
                        "status": "completed",
                        "content": content,
                    }
                )
            for call in _plain(message.get("tool_calls")) or []:
                function = call.get("function") or {}
                output.append(
                    {
                        "type": "function_call",
                        "id": f"fc_{call.get('id')}",
                        "call_id": call.get("id"),
                        "name": function.get("name"),
                        "arguments": function.get("arguments", ""),
                    }
                )
        record_inference_call(
            agent.thread, agent.turn_id, model, PROVIDER, request, output,
            response_id=f"gen_{span.span_id}", response_model=model or None,
            token_usage=_token_usage(data.usage),
            error=None if span.error is None else _error_text(span.error),
        )  # fmt: skip
        agent.last_output = output
        agent.used_calls.clear()

    def _function_ended(self, tool: _Tool, data: FunctionSpanData, span: Span[Any]) -> None:
        if tool.dispatch is None:  # a plain function tool (no agent ran inside): at once
            output = data.output
            record_tool_call(
                tool.agent.thread,
                self._invocation(tool, spawn=False, arguments=data.input),
                output if isinstance(output, str) else str(output),
                error=None if span.error is None else _error_text(span.error),
            )
            return
        dispatch = tool.dispatch
        assert dispatch is not None
        if span.error is not None:
            dispatch.record_failed(_error_text(span.error))
            return
        output = data.output
        dispatch.record_completed(output if isinstance(output, str) else str(output))
        child = tool.child
        if child is not None and tool.child_result is not None:
            parent = tool.agent.thread
            item = agent_message_item(child.thread.agent_path, parent.agent_path, tool.child_result)
            parent.record_history_item_accepted(tool.turn_id, item["id"], agent_message=item)

    def _handoff_ended(self, rollout: _Rollout, agent: _Agent, data: HandoffSpanData) -> None:
        if agent.turn_id is None or not data.to_agent:
            return
        call = (  # the SDK's default tool name, another transfer_to_*, or a custom name
            self._take_call(agent, f"transfer_to_{_segment(data.to_agent)}")
            or self._take_call(agent, "transfer_to_", prefix=True)
            or self._take_call(agent, "", prefix=True)
        )
        tool = _Tool(
            agent=agent,
            turn_id=agent.turn_id,
            name=str(call["name"]) if call is not None else f"transfer_to_{data.to_agent}",
            spawn_name=_segment(data.to_agent),
            call=call,
        )
        target = rollout.agents.get(data.to_agent)
        self._dispatch(tool, spawn=target is None)
        if target is None and rollout.root is not None:
            thread = self._start_child(rollout, agent.thread, data.to_agent, tool)
            rollout.agents[data.to_agent] = _Agent(data.to_agent, thread)
        if tool.dispatch is not None:
            tool.dispatch.record_completed(json.dumps({"assistant": data.to_agent}))

    def _agent_ended(self, agent: _Agent, span: Span[Any], spawned_by: _Tool | None) -> None:
        turn_id = agent.turn_id
        if turn_id is None:
            return
        agent.turn_id = None
        failed = span.error is not None
        agent.thread.record_turn_ended(
            turn_id, ExecutionStatus.FAILED if failed else ExecutionStatus.COMPLETED
        )
        if spawned_by is None:
            return
        parent = spawned_by.agent.thread
        text = _last_text(agent.last_output)
        result = AgentResultTracePayload(agent.thread.agent_path, text)
        agent.thread.record_agent_result_interaction(turn_id, parent.thread_id, result)
        spawned_by.child_result = text


def _task_message(arguments: str | None) -> str:
    """What a spawned agent is asked: an ``Agent.as_tool`` call's ``input``, else the arguments."""
    try:
        value = json.loads(arguments or "")
    except ValueError:
        return arguments or ""
    if isinstance(value, dict) and isinstance(value.get("input"), str):
        return str(value["input"])
    return "" if value in ({}, None) else (arguments or "")


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        message = error.get("message")
        data = error.get("data")
        return f"{message}: {json.dumps(data, default=str)}" if data else str(message)
    return str(error)


@dataclass(frozen=True)
class _EndedTrace:
    """A stand-in for a trace that never ended, when the processor shuts down."""

    trace_id: str
