"""Interaction edges between threads: spawn, task, message, agent result and close.

A delivery edge targets the recipient-side conversation item that carried the
message; until that item is reduced the edge waits in a queue. Spawn edges still
waiting when the replay ends fall back to the child thread; others are dropped.
"""

from __future__ import annotations

from typing import Any

import msgspec

from otel_rollout._bundle._models import SCHEMA_2, AgentResultObserved, RawPayloadRef
from otel_rollout._reduce._model import (
    ConversationItemAnchor,
    EncodedPart,
    InteractionEdge,
    TextPart,
    ThreadAnchor,
    ToolCallAnchor,
    TraceAnchor,
)
from otel_rollout._reduce._payload import is_cut
from otel_rollout._reduce._state import (
    PendingEdge,
    ReduceError,
    ReducerState,
    extend_unique,
    push_unique,
)

_ENCRYPTED = "encrypted_content"


def spawn_edge_id(parent_thread_id: str, child_thread_id: str) -> str:
    """The id of the spawn edge between two threads."""
    return f"edge:spawn:{parent_thread_id}:{child_thread_id}"


def tool_edge_id(tool_call_id: str) -> str:
    """The id of the edge a tool call creates (task, message, close)."""
    return f"edge:tool:{tool_call_id}"


def _agent_path(state: ReducerState, thread_id: str) -> str:
    thread = state.trace.threads.get(thread_id)
    if thread is None:
        raise ReduceError(f"agent edge referenced unknown thread {thread_id}")
    return thread.agent_path


def _tool_payload_ids(state: ReducerState, tool_call_id: str) -> list[str]:
    tool = state.trace.tool_calls[tool_call_id]
    ids: list[str] = []
    if tool.raw_invocation_payload_id is not None:
        ids.append(tool.raw_invocation_payload_id)
    extend_unique(ids, tool.raw_runtime_payload_ids)
    if tool.raw_result_payload_id is not None:
        push_unique(ids, tool.raw_result_payload_id)
    return ids


_STR, _OPT_STR, _UUID, _OPT_UUID, _STATUS, _OPT_I64, _AGENT_PATH, _ACTIVITY_KIND = range(8)
_EFFORT, _OPT_EFFORT = 8, 9
"""A reasoning effort: any string but the empty one (Codex: ``must not be empty``)."""

_SPAWN_END = {
    "call_id": _STR,
    "sender_thread_id": _UUID,
    "new_thread_id": _OPT_UUID,
    "new_agent_nickname": _OPT_STR,
    "new_agent_role": _OPT_STR,
    "prompt": _STR,
    "model": _STR,
    "reasoning_effort": _EFFORT,
    "status": _STATUS,
    "completed_at_ms": _OPT_I64,
}
_INTERACTION = {
    "call_id": _STR,
    "sender_thread_id": _UUID,
    "receiver_thread_id": _UUID,
    "prompt": _STR,
}
_INTERACTION_BEGIN = {**_INTERACTION, "started_at_ms": _OPT_I64}
_INTERACTION_END = {
    **_INTERACTION,
    "receiver_agent_nickname": _OPT_STR,
    "receiver_agent_role": _OPT_STR,
    "status": _STATUS,
    "completed_at_ms": _OPT_I64,
}
_CLOSE = {"call_id": _STR, "sender_thread_id": _UUID, "receiver_thread_id": _UUID}
_CLOSE_BEGIN = {**_CLOSE, "started_at_ms": _OPT_I64}
_CLOSE_END = {
    **_CLOSE,
    "receiver_agent_nickname": _OPT_STR,
    "receiver_agent_role": _OPT_STR,
    "status": _STATUS,
    "completed_at_ms": _OPT_I64,
}
_ACTIVITY_EVENT = {
    "event_id": _STR,
    "occurred_at_ms": _OPT_I64,
    "agent_thread_id": _UUID,
    "agent_path": _AGENT_PATH,
    "kind": _ACTIVITY_KIND,
    "model": _OPT_STR,
    "reasoning_effort": _OPT_EFFORT,
}
_AGENT_STATUSES = frozenset(
    {"pending_init", "running", "interrupted", "completed", "errored", "shutdown", "not_found"}
)
_ACTIVITY_KINDS = frozenset({"started", "interacted", "interrupted", "completed"})


def _parse(value: Any, schema: dict[str, int], pid: str) -> dict[str, Any]:
    """Check a protocol payload as Codex's serde types do; return it.

    Raises:
        ReduceError: A required field is missing or a field has the wrong type.
    """
    if not isinstance(value, dict):
        raise ReduceError(f"parse agent runtime payload {pid}: not an object")
    for key, kind in schema.items():
        if key not in value or value[key] is None:
            if kind in (_OPT_STR, _OPT_UUID, _OPT_I64, _OPT_EFFORT):
                continue
            if key not in value:
                raise ReduceError(f"parse agent runtime payload {pid}: missing field `{key}`")
        field = value[key]
        if kind == _ACTIVITY_KIND and isinstance(field, dict):
            field = value[key] = _unit_variant(field)  # serde's map form of a unit variant
        if not _valid(field, kind):
            raise ReduceError(f"parse agent runtime payload {pid}: invalid `{key}`")
        if kind in (_EFFORT, _OPT_EFFORT) and not field:
            raise ReduceError(f"parse agent runtime payload {pid}: {key} must not be empty")
    return value


def _unit_variant(value: dict[str, Any]) -> Any:
    """``{"started": null}`` -> ``"started"`` (serde takes a unit variant in map form too)."""
    if len(value) == 1:
        ((variant, detail),) = value.items()
        if detail is None:
            return variant
    return value


def _valid(field: Any, kind: int) -> bool:
    if kind in (_STR, _OPT_STR, _EFFORT, _OPT_EFFORT):
        return isinstance(field, str)
    if kind in (_UUID, _OPT_UUID):
        return isinstance(field, str) and _is_uuid(field)
    if kind == _OPT_I64:
        return type(field) is int and -(2**63) <= field < 2**63
    if kind == _AGENT_PATH:
        return isinstance(field, str) and (
            field == "/root" or field.startswith("/root/") or field == "/morpheus"
        )
    if kind == _ACTIVITY_KIND:
        return isinstance(field, str) and field in _ACTIVITY_KINDS
    return _valid_status(field)


def _valid_status(status: Any) -> bool:
    """An ``AgentStatus``: a unit variant, or ``{"completed": text?}`` / ``{"errored": text}``."""
    if isinstance(status, str):
        return status in _AGENT_STATUSES
    if isinstance(status, dict) and len(status) == 1:
        ((variant, detail),) = status.items()
        if variant == "completed":
            return detail is None or isinstance(detail, str)
        if variant == "errored":
            return isinstance(detail, str)
        return variant in _AGENT_STATUSES and detail is None
    return False


def _is_uuid(text: str) -> bool:
    import uuid  # on first use: it costs start-up

    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def start_from_runtime(
    state: ReducerState, tool_call_id: str, kind: str, payload: RawPayloadRef
) -> None:
    """Runtime begin of a task, message or close tool."""
    if kind not in ("assign_agent_task", "send_message", "close_agent"):
        return
    value = state.read_payload(payload)
    pid = payload.raw_payload_id
    if kind == "close_agent":
        begin = _parse(value, _CLOSE_BEGIN, pid)
        _upsert_close(state, tool_call_id, begin["receiver_thread_id"], None)
        return
    begin = _parse(value, _INTERACTION_BEGIN, pid)
    _queue_message(state, tool_call_id, kind, begin["receiver_thread_id"], begin["prompt"], None)


def end_from_runtime(
    state: ReducerState, wall: int, tool_call_id: str, kind: str, payload: RawPayloadRef
) -> None:
    """Runtime end: sub-agent activity, or the collab end event of an agent tool."""
    if is_cut(payload):
        return  # schema 3: a size limit cut the payload
    value = state.read_payload(payload)
    pid = payload.raw_payload_id
    if isinstance(value, dict) and "agent_thread_id" in value:
        activity = _parse(value, _ACTIVITY_EVENT, pid)
        _end_activity(
            state, wall, tool_call_id, kind, activity["agent_thread_id"], activity["kind"]
        )
        return
    if kind == "spawn_agent":
        spawn = _parse(value, _SPAWN_END, pid)
        child = spawn["new_thread_id"]
        if child is None:
            return
        _queue_message(
            state,
            tool_call_id,
            kind,
            child,
            spawn["prompt"],
            wall,
            edge_id=spawn_edge_id(spawn["sender_thread_id"], child),
            spawn_fallback=child,
        )
    elif kind in ("assign_agent_task", "send_message"):
        end = _parse(value, _INTERACTION_END, pid)
        _queue_message(state, tool_call_id, kind, end["receiver_thread_id"], end["prompt"], wall)
    elif kind == "close_agent":
        end = _parse(value, _CLOSE_END, pid)
        _upsert_close(state, tool_call_id, end["receiver_thread_id"], wall)


_ACTIVITY = {
    ("spawn_agent", "started"),
    ("assign_agent_task", "interacted"),
    ("send_message", "interacted"),
    ("close_agent", "interrupted"),
}


def _debug_kind(kind: str) -> str:
    """A tool kind as Rust's ``Debug`` prints it (``SpawnAgent``)."""
    return "".join(word.capitalize() for word in kind.split("_"))


def _end_activity(
    state: ReducerState, wall: int, tool_call_id: str, kind: str, target: str, activity: str
) -> None:
    if (kind, activity) not in _ACTIVITY:
        raise ReduceError(
            f"sub-agent activity {activity.capitalize()} does not match tool call kind "
            f"{_debug_kind(kind)}"
        )
    if kind == "close_agent":
        _upsert_close(state, tool_call_id, target, wall)
        return
    content = _invocation_message(state, tool_call_id)
    if content is None:
        return  # schema 3: a size limit cut the invocation
    if kind != "spawn_agent":
        _queue_message(state, tool_call_id, kind, target, content, wall)
        return
    parent = state.trace.tool_calls[tool_call_id].thread_id
    _queue_message(
        state,
        tool_call_id,
        kind,
        target,
        content,
        wall,
        edge_id=spawn_edge_id(parent, target),
        spawn_fallback=target,
    )


def _invocation_message(state: ReducerState, tool_call_id: str) -> str | None:
    tool = state.trace.tool_calls[tool_call_id]
    payload_id = tool.raw_invocation_payload_id
    if payload_id is None:
        raise ReduceError(f"agent activity tool call {tool_call_id} missing invocation payload")
    ref = state.trace.raw_payloads.get(payload_id)
    if ref is None:
        raise ReduceError(
            f"agent activity tool call {tool_call_id} referenced missing invocation payload "
            f"{payload_id}"
        )
    if is_cut(ref):
        return None
    invocation = state.read_payload(ref)
    inner = invocation.get("payload") if isinstance(invocation, dict) else None
    arguments = inner.get("arguments") if isinstance(inner, dict) else None
    if not isinstance(arguments, str):
        raise ReduceError(f"agent activity tool call {tool_call_id} missing function arguments")
    try:
        args = msgspec.json.decode(arguments)
    except (msgspec.DecodeError, RecursionError):
        args = None
    message = args.get("message") if isinstance(args, dict) else None
    if not isinstance(message, str):
        raise ReduceError(f"parse agent activity tool call {tool_call_id} arguments")
    return message


def _queue_message(
    state: ReducerState,
    tool_call_id: str,
    kind: str,
    target_thread_id: str,
    content: str,
    ended_at: int | None,
    *,
    edge_id: str | None = None,
    spawn_fallback: str | None = None,
) -> None:
    """Queue (or resolve) the delivery edge a tool call sources: ``edge:tool:...`` unless
    ``edge_id`` is given; a spawn's ``spawn_fallback`` is the child thread.
    """
    tool = state.trace.tool_calls[tool_call_id]
    _queue_or_resolve(
        state,
        PendingEdge(
            edge_id=edge_id if edge_id is not None else tool_edge_id(tool_call_id),
            kind=kind,
            source=ToolCallAnchor(tool_call_id),
            target_thread_id=target_thread_id,
            message_author=_agent_path(state, tool.thread_id),
            message_content=content,
            unresolved_spawn_thread_id=spawn_fallback,
            started_at_unix_ms=tool.execution.started_at_unix_ms,
            ended_at_unix_ms=ended_at,
            carried_raw_payload_ids=_tool_payload_ids(state, tool_call_id),
        ),
    )


def _upsert_close(
    state: ReducerState, tool_call_id: str, target_thread_id: str, ended_at: int | None
) -> None:
    if target_thread_id not in state.trace.threads:
        return
    tool = state.trace.tool_calls[tool_call_id]
    _upsert(
        state,
        InteractionEdge(
            edge_id=tool_edge_id(tool_call_id),
            kind="close_agent",
            source=ToolCallAnchor(tool_call_id),
            target=ThreadAnchor(target_thread_id),
            started_at_unix_ms=tool.execution.started_at_unix_ms,
            ended_at_unix_ms=ended_at,
            carried_item_ids=[],
            carried_raw_payload_ids=_tool_payload_ids(state, tool_call_id),
        ),
    )


def attach_tool_result(state: ReducerState, tool_call_id: str, payload_id: str) -> None:
    """Add a tool's result payload to the edge (or pending edge) it is the source of."""
    edge_ids = state.edges_by_source_tool.get(tool_call_id)
    if edge_ids:
        push_unique(
            state.trace.interaction_edges[min(edge_ids)].carried_raw_payload_ids, payload_id
        )
        return
    source = ToolCallAnchor(tool_call_id)
    for pending in state.pending_edges:
        if pending.source == source:
            push_unique(pending.carried_raw_payload_ids, payload_id)
            return


def agent_result(state: ReducerState, wall: int, event: AgentResultObserved) -> None:
    """``agent_result_observed``: the child's last reply (or the child) to the parent's notice."""
    author = _agent_path(state, event.child_thread_id)
    source: TraceAnchor = ThreadAnchor(event.child_thread_id)
    best: tuple[int, str] | None = None
    conversation = state.trace.conversation_items
    for item_id in state.replies_by_turn.get(
        (event.child_thread_id, event.child_codex_turn_id), ()
    ):
        key = (conversation[item_id].first_seen_at_unix_ms, item_id)
        if best is None or key >= best:
            best = key
    if best is not None:
        source = ConversationItemAnchor(best[1])
    carried = [event.carried_payload.raw_payload_id] if event.carried_payload is not None else []
    _queue_or_resolve(
        state,
        PendingEdge(
            edge_id=event.edge_id,
            kind="agent_result",
            source=source,
            target_thread_id=event.parent_thread_id,
            message_author=author,
            message_content=event.message,
            unresolved_spawn_thread_id=None,
            started_at_unix_ms=wall,
            ended_at_unix_ms=wall,
            carried_raw_payload_ids=carried,
        ),
    )


def _queue_or_resolve(state: ReducerState, pending: PendingEdge) -> None:
    item_id = _find_unlinked_message(
        state, pending.target_thread_id, pending.message_author, pending.message_content
    )
    if item_id is not None:
        _materialize(state, pending, item_id)
        return
    for existing in state.pending_edges:
        if existing.edge_id == pending.edge_id:
            if (
                existing.kind != pending.kind
                or existing.source != pending.source
                or existing.target_thread_id != pending.target_thread_id
                or existing.message_author != pending.message_author
                or existing.message_content != pending.message_content
                or existing.unresolved_spawn_thread_id != pending.unresolved_spawn_thread_id
            ):
                raise ReduceError(
                    f"pending interaction edge {pending.edge_id} was observed with "
                    "conflicting delivery data"
                )
            existing.started_at_unix_ms = min(
                existing.started_at_unix_ms, pending.started_at_unix_ms
            )
            existing.ended_at_unix_ms = _max_end(
                existing.ended_at_unix_ms, pending.ended_at_unix_ms
            )
            extend_unique(existing.carried_raw_payload_ids, pending.carried_raw_payload_ids)
            return
    state.pending_edges.append(pending)


def _max_end(left: int | None, right: int | None) -> int | None:
    if left is None:
        return right
    if right is None:
        return left
    return max(left, right)


def _find_unlinked_message(
    state: ReducerState, thread_id: str, author: str, content: str
) -> str | None:
    thread = state.trace.threads.get(thread_id)
    if thread is None:
        return None
    history = thread.conversation_item_ids
    start = state.delivery_scan.get(thread_id, 0)
    if start < len(history):
        for item_id in history[start:]:
            found = _inter_agent_message(state, item_id)
            if found is not None:
                state.deliveries.setdefault(found, []).append(item_id)
        state.delivery_scan[thread_id] = len(history)
    targets = state.edge_target_items
    for item_id in state.deliveries.get((thread_id, author, content), ()):
        if item_id not in targets:
            return item_id
    return None


def forget_delivery(state: ReducerState, thread_id: str, item_id: str) -> None:
    """An item's body changed: drop what the delivery index knew about it."""
    state.inter_agent.pop(item_id, None)
    if state.delivery_scan.pop(thread_id, None) is not None:
        for key in [key for key in state.deliveries if key[0] == thread_id]:
            del state.deliveries[key]


def resolve_pending_for_item(state: ReducerState, item_id: str) -> None:
    """Materialize the first pending edge delivered by this (new) conversation item."""
    if not state.pending_edges or item_id in state.edge_target_items:
        return
    found = _inter_agent_message(state, item_id)
    if found is None:
        return
    thread_id, author, content = found
    for index, pending in enumerate(state.pending_edges):
        if (
            pending.target_thread_id == thread_id
            and pending.message_author == author
            and pending.message_content == content
        ):
            del state.pending_edges[index]
            _materialize(state, pending, item_id)
            return


def _materialize(state: ReducerState, pending: PendingEdge, item_id: str) -> None:
    _upsert(
        state,
        InteractionEdge(
            edge_id=pending.edge_id,
            kind=pending.kind,
            source=pending.source,
            target=ConversationItemAnchor(item_id),
            started_at_unix_ms=pending.started_at_unix_ms,
            ended_at_unix_ms=pending.ended_at_unix_ms,
            carried_item_ids=[item_id],
            carried_raw_payload_ids=pending.carried_raw_payload_ids,
        ),
    )


def _upsert(state: ReducerState, edge: InteractionEdge) -> None:
    edges = state.trace.interaction_edges
    existing = edges.get(edge.edge_id)
    if existing is None:
        edges[edge.edge_id] = edge
        if isinstance(edge.source, ToolCallAnchor):
            state.edges_by_source_tool.setdefault(edge.source.tool_call_id, []).append(edge.edge_id)
    else:
        if (
            existing.kind != edge.kind
            or existing.source != edge.source
            or existing.target != edge.target
        ):
            raise ReduceError(
                f"interaction edge {edge.edge_id} was observed with conflicting endpoints"
            )
        existing.started_at_unix_ms = min(existing.started_at_unix_ms, edge.started_at_unix_ms)
        existing.ended_at_unix_ms = _max_end(existing.ended_at_unix_ms, edge.ended_at_unix_ms)
        extend_unique(existing.carried_item_ids, edge.carried_item_ids)
        extend_unique(existing.carried_raw_payload_ids, edge.carried_raw_payload_ids)
    if isinstance(edge.target, ConversationItemAnchor):
        state.edge_target_items.add(edge.target.item_id)


def _inter_agent_message(state: ReducerState, item_id: str) -> tuple[str, str, str] | None:
    """(thread, author, content) if the item is a message delivered to its own thread's agent."""
    memo = state.inter_agent
    if item_id in memo:
        return memo[item_id]
    found = _inter_agent_message_uncached(state, item_id)
    memo[item_id] = found
    return found


def _inter_agent_message_uncached(state: ReducerState, item_id: str) -> tuple[str, str, str] | None:
    item = state.trace.conversation_items.get(item_id)
    if item is None or item.role != "assistant" or item.kind != "message":
        return None
    parts = item.body.parts
    metadata = item.agent_message
    if metadata is not None:
        content: str | None = None
        if len(parts) == 1:
            part = parts[0]
            if isinstance(part, TextPart):
                content = part.text
            elif isinstance(part, EncodedPart) and part.label == _ENCRYPTED:
                content = part.value
        elif len(parts) == 2 and isinstance(parts[0], TextPart):
            part = parts[1]
            if isinstance(part, EncodedPart) and part.label == _ENCRYPTED:
                content = part.value
        if content is None:
            return None
        author, recipient = metadata.author, metadata.recipient
    else:
        if state.schema != SCHEMA_2:
            return None  # 0.171.0 no longer reads the legacy serialized delivery
        if len(parts) != 1 or type(parts[0]) is not TextPart:
            return None
        parsed = _inter_agent_communication(parts[0].text)
        if parsed is None:
            return None
        author, recipient, content = parsed
    thread = state.trace.threads.get(item.thread_id)
    if thread is None or recipient != thread.agent_path:
        return None
    return item.thread_id, author, content


def _inter_agent_communication(text: str) -> tuple[str, str, str] | None:
    """Legacy delivery: the text is a serialized ``InterAgentCommunication``."""
    if not text.startswith("{"):
        return None
    try:
        value = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    author = value.get("author")
    recipient = value.get("recipient")
    content = value.get("content")
    others = value.get("other_recipients")
    trigger = value.get("trigger_turn")
    if not (
        isinstance(author, str)
        and isinstance(recipient, str)
        and isinstance(content, str)
        and isinstance(others, list)
        and isinstance(trigger, bool)
        and author.startswith("/")
        and recipient.startswith("/")
    ):
        return None
    encrypted = value.get(_ENCRYPTED)
    if isinstance(encrypted, str):
        content = encrypted
    return author, recipient, content


def resolve_spawn_fallbacks(state: ReducerState) -> None:
    """End of replay: pending spawn edges target the child thread; other pending edges drop."""
    pending_edges, state.pending_edges = state.pending_edges, []
    for pending in pending_edges:
        child = pending.unresolved_spawn_thread_id
        if child is None:
            continue
        if pending.kind != "spawn_agent":
            raise ReduceError(
                f"non-spawn interaction edge {pending.edge_id} carried a spawn fallback target"
            )
        if child not in state.trace.threads:
            continue
        _upsert(
            state,
            InteractionEdge(
                edge_id=pending.edge_id,
                kind=pending.kind,
                source=pending.source,
                target=ThreadAnchor(child),
                started_at_unix_ms=pending.started_at_unix_ms,
                ended_at_unix_ms=pending.ended_at_unix_ms,
                carried_item_ids=[],
                carried_raw_payload_ids=pending.carried_raw_payload_ids,
            ),
        )
