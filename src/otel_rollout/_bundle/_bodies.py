"""Codex's payload bodies and tool kinds: what the recording API writes into ``payloads/N.json``.

Pure data shaping (no I/O beyond reading the working directory, no OpenTelemetry):
each function returns the JSON-able body of one payload kind, in Codex's field
order, from the values the app handed to the recording API.
"""

from __future__ import annotations

import os
import random
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from otel_rollout._bundle._json import encode_compact
from otel_rollout._bundle._models import (
    SCHEMA_2,
    SCHEMA_3,
    ApplyPatchKind,
    AssignAgentTaskKind,
    CloseAgentKind,
    ExecCommandKind,
    ImageGenerationKind,
    OtherKind,
    SendMessageKind,
    SpawnAgentKind,
    ToolCallKind,
    WaitAgentKind,
    WebKind,
    WriteStdinKind,
)

_UUID4_CLEAR: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET: Final = (4 << 76) | (0x8000 << 48)
"""The version (4) and variant (RFC 4122) bits of a UUIDv4, as ``uuid.UUID`` sets them."""


def new_id() -> str:
    """A random UUIDv4 string (from ``random``, as the OTel SDK's ids: no system call).

    Formatted directly: ``str(uuid.UUID(int=..., version=4))`` gives the same text
    at several times the cost, on every handle that makes its own id.
    """
    h = "%032x" % (random.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# --- threads and agents ---


@dataclass(frozen=True)
class ThreadStartedTraceMetadata:
    """Who a thread (agent) is; written as the ``session_metadata`` payload.

    Every field has a default that suits an app that is not Codex.
    """

    thread_id: str = field(default_factory=new_id)
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


def spawn_activity(
    event_id: str, occurred_at_ms: int, metadata: ThreadStartedTraceMetadata
) -> dict[str, Any]:
    """The runtime event of a ``spawn_agent`` call whose child thread started.

    What Codex's runtime observes (its sub-agent activity event); it ties the child
    to the call (the reducer's ``spawn_agent`` edge).
    """
    activity: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at_ms": occurred_at_ms,
        "agent_thread_id": metadata.thread_id,
        "agent_path": metadata.agent_path,
        "kind": "started",
    }
    if metadata.model:
        activity["model"] = metadata.model
    return activity


# --- tools ---

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


def arguments_text(arguments: Any) -> str:
    """A tool call's arguments as the model sees them: a string as is, data as compact JSON."""
    if arguments is None:
        return ""
    if isinstance(arguments, str):
        return arguments
    try:
        return encode_compact(arguments).decode()
    except (TypeError, ValueError, OverflowError):
        return str(arguments)


def tool_invocation(tool_name: str, tool_namespace: str | None, arguments: str) -> dict[str, Any]:
    """The ``tool_invocation`` body of a function-style call (``arguments``: its text)."""
    return {
        "tool_name": tool_name,
        "tool_namespace": tool_namespace,
        "payload": {"type": "function", "arguments": arguments},
    }


def tool_output(call_id: str, result: Any) -> dict[str, Any]:
    """The ``tool_result`` body of a call that returned ``result`` to the model."""
    return {
        "type": "direct_response",
        "response_item": {
            "type": "function_call_output",
            "call_id": call_id,
            "output": result if isinstance(result, str) else arguments_text(result),
        },
    }


def tool_error(error: object) -> dict[str, Any]:
    """The ``tool_result`` body of a call that failed with ``error``."""
    return {"type": "error", "error": str(error)}


def code_cell_response(response: Any) -> dict[str, Any]:
    """The ``tool_result`` body of a code cell's (initial or final) response."""
    return {"response": response}


# --- inference and compaction ---


def inference_response(
    response_id: str | None,
    upstream_request_id: str | None,
    token_usage: Mapping[str, Any] | None,
    output_items: Sequence[Any],
    model: str | None = None,
) -> dict[str, Any]:
    """The ``inference_response`` body (``response_id`` ``None`` for a partial response;
    ``model``, the model that answered, is an extension written only when given)."""
    body = {
        "response_id": response_id,
        "upstream_request_id": upstream_request_id,
        "token_usage": token_usage,
        "output_items": list(output_items),
    }
    if model is not None:
        body["model"] = model
    return body


def compaction_response(
    output_items: Sequence[Any], token_usage: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The ``compaction_response`` body: the compaction endpoint's output items (and, an
    extension written only when given, its ``token_usage``)."""
    body: dict[str, Any] = {"output_items": list(output_items)}
    if token_usage is not None:
        body["token_usage"] = dict(token_usage)
    return body


def compaction_checkpoint(
    input_history: Sequence[Any], replacement_history: Sequence[Any]
) -> dict[str, Any]:
    """The ``compaction_checkpoint`` body: the history compacted and its replacement."""
    return {
        "input_history": list(input_history),
        "replacement_history": list(replacement_history),
    }


# --- schema 3 (Codex 0.171.0): prepared prompts, tool outputs, the session metadata rename ---

PROMPT_DEFAULTS: Final[dict[str, Any]] = {
    "base_instructions": None,
    "output_schema": None,
    "output_schema_strict": True,
    "prompt_cache_ttl": None,
    "cyber_access_program": None,
}
"""Prepared prompt fields a 0.169.0 request does not carry, as 0.171.0 writes them unset
(``output_schema``, ``output_schema_strict``, ``prompt_cache_ttl`` and
``cyber_access_program`` as in every 0.171.0 fixture; ``base_instructions``, always set by
0.171.0, as ``null``)."""
TOOL_OUTPUT_TYPES: Final = frozenset({"function_call_output", "custom_tool_call_output"})
"""Input item types that are tool outputs (``history_item_accepted.tool_output_payload``)."""
_PASCAL_WORD = re.compile(r"[A-Z][a-z0-9]*")


def prompt_from_request(request: Any) -> dict[str, Any]:
    """The prepared prompt 0.171.0 would record for ``request`` (a Responses API request body).

    An app's request may hold only ``{"input": [...]}``: the fields it lacks take the
    values 0.171.0 writes when they are unset.
    """
    body = request if isinstance(request, dict) else {}
    return {
        "input": body.get("input") or [],
        "tools": body.get("tools") or [],
        "parallel_tool_calls": bool(body.get("parallel_tool_calls", False)),
        **PROMPT_DEFAULTS,
    }


def _rename_key(value: dict[str, Any], old: str, new: str, new_value: Any) -> dict[str, Any]:
    """``value`` with key ``old`` replaced, in place in the key order, by ``new: new_value``."""
    return {
        (new if key == old else key): (new_value if key == old else v) for key, v in value.items()
    }


def _to_kebab(policy: Any) -> Any:
    if isinstance(policy, str):
        return "-".join(word.lower() for word in _PASCAL_WORD.findall(policy)) or policy
    return policy


def _to_pascal(profile: Any) -> Any:
    if isinstance(profile, str):
        return "".join(word.capitalize() for word in profile.split("-"))
    return profile


def session_metadata_to(value: Any, schema_version: int) -> Any:
    """Session metadata as ``schema_version`` writes it (the sandbox field renamed:
    ``sandbox_policy: "DangerFullAccess"`` in schema 2, ``permissions_profile:
    "danger-full-access"`` in schema 3)."""
    if not isinstance(value, dict):
        return value
    if schema_version == SCHEMA_3 and "sandbox_policy" in value:
        return _rename_key(
            value, "sandbox_policy", "permissions_profile", _to_kebab(value["sandbox_policy"])
        )
    if schema_version == SCHEMA_2 and "permissions_profile" in value:
        return _rename_key(
            value, "permissions_profile", "sandbox_policy", _to_pascal(value["permissions_profile"])
        )
    return value
