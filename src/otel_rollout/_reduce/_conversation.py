"""The conversation: model-visible items reconciled from request, response and checkpoint payloads.

A full request is a snapshot of the live context: its items reuse the ids of the
thread's previous snapshot, by position first and otherwise by first unused match.
Responses and incremental requests append after a known prefix. Compaction installs
a boundary marker and replacement history that the next full request compares to.

Codex 0.169.0 adds the Responses item id (found by running the binary): after the
positional rule, response output reuses the latest item of its thread with the same id
and content, and a request reuses an accepted agent message (a "receipt") by id; an
item enters the thread's history when a request or checkpoint carries it or when it is
accepted (``history_item_accepted``).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from otel_rollout._reduce import _code_cells, _edges, _tools
from otel_rollout._reduce._model import (
    CompactionProducer,
    ConversationBody,
    ConversationItem,
    EncodedPart,
    InferenceProducer,
    JsonPart,
    PayloadRefPart,
    ProducerRef,
    SummaryPart,
    TextPart,
    ToolProducer,
)
from otel_rollout._reduce._normalize import Normalized, normalize_item, normalize_items, token_usage
from otel_rollout._reduce._payload import is_cut
from otel_rollout._reduce._request_input import Known, RequestInput
from otel_rollout._reduce._state import ReduceError, ReducerState
from otel_rollout._reduce._tools import CALL_KINDS, OUTPUT_KINDS


def reduce_request(
    state: ReducerState, wall: int, call_id: str, thread_id: str, turn_id: str, payload_ref: Any
) -> list[str]:
    """Reconcile an inference request's ``input`` and return the full request item ids."""
    if is_cut(payload_ref):
        # Schema 3: a size limit cut the request. 0.171.0 gives it no items and keeps the
        # thread's snapshot, but the call owns it: a response makes the snapshot that
        # response alone (its empty request plus its output), so the next full request
        # reuses only those items and creates the rest again.
        state.snapshot_owner[thread_id] = call_id
        return []
    payload = state.read_request(payload_ref)
    pid = payload_ref.raw_payload_id
    if type(payload) is RequestInput:
        items = _normalize_known(state, payload, pid)
        previous_response_id = payload.fields.get("previous_response_id")
    else:
        if not isinstance(payload, dict) or "input" not in payload:
            raise ReduceError(f"inference request payload {pid} did not contain input")
        request_items = payload["input"]
        if not isinstance(request_items, list):
            raise ReduceError(f"inference request payload {pid} had non-array input")
        items = normalize_items(request_items, pid)
        previous_response_id = payload.get("previous_response_id")
        del request_items
    if not isinstance(previous_response_id, str):
        previous_response_id = None
    del payload
    override = None
    if previous_response_id is None:
        override = state.pending_replacements.get(thread_id)
        ids = reconcile(state, items, thread_id, turn_id, wall, [], 0, True, override)
    else:
        base = traced_response_snapshot(state, thread_id, previous_response_id)
        if base is None:
            raise ReduceError(
                f"incremental inference request {call_id} referenced unknown "
                f"previous_response_id {previous_response_id}"
            )
        ids = base + reconcile(state, items, thread_id, turn_id, wall, [], len(base), False, None)
    state.merge_request_items(thread_id, ids)
    state.history_items.update(ids)
    if override is not None:
        del state.pending_replacements[thread_id]
    state.snapshots[thread_id] = list(ids)
    state.snapshot_owner[thread_id] = call_id
    return ids


_PLACEHOLDER_ID: Final = "".join(("<payload id", ">"))
"""The payload id a :class:`Known` item's parts hold, filled in per request (a string
object of its own: parts hold it, never an equal string read from a payload)."""


def _normalize_known(state: ReducerState, request: RequestInput, pid: str) -> list[Normalized]:
    """Normalize a request's input items, reusing those a recent request held (by bytes)."""
    known_items: dict[bytes, Known] = {}
    items: list[Normalized] = []
    for key, value in zip(request.keys, request.values, strict=True):
        if type(value) is Known:
            known = value
        else:
            try:
                item = normalize_item(value, _PLACEHOLDER_ID)
            except ReduceError:
                normalize_item(value, pid)  # raises the same error, naming the payload
                raise
            known = Known(item, any(_names_placeholder(part) for part in item.parts))
        known_items[key] = known
        items.append(_with_payload_id(known, pid))
    state.item_memo.remember(pid, known_items)
    return items


def _names_placeholder(part: Any) -> bool:
    kind = type(part)
    return (kind is JsonPart or kind is PayloadRefPart) and part.raw_payload_id is _PLACEHOLDER_ID


def _with_payload_id(known: Known, pid: str) -> Normalized:
    """A known item as request ``pid`` normalizes it: its parts name ``pid``."""
    item: Normalized = known.item
    if not known.with_payload_id:
        return item
    parts = [
        (
            JsonPart(summary=part.summary, raw_payload_id=pid)
            if type(part) is JsonPart
            else msgspec.structs.replace(part, raw_payload_id=pid)
        )
        if _names_placeholder(part)
        else part
        for part in item.parts
    ]
    return Normalized(
        item.role,
        item.channel,
        item.kind,
        parts,
        item.call_id,
        item.agent_message,
        item.responses_item_id,
    )


def traced_response_snapshot(
    state: ReducerState, thread_id: str, response_id: str
) -> list[str] | None:
    """Request plus response ids of the first call (key order) in the thread with that response."""
    keys = state.calls_by_response_id.get((thread_id, response_id))
    if not keys:
        return None
    call = state.trace.inference_calls[min(keys)]
    return call.request_item_ids + call.response_item_ids


def reduce_response(
    state: ReducerState, wall: int, call_id: str, payload_ref: Any
) -> list[str] | None:
    """Reconcile an inference response's ``output_items``, appended to the thread snapshot.

    ``None`` (nothing reduced) if a size limit cut the response (schema 3).
    """
    if is_cut(payload_ref):
        return None
    payload = state.read_payload(payload_ref)
    pid = payload_ref.raw_payload_id
    output_items = payload.get("output_items") if isinstance(payload, dict) else None
    if not isinstance(output_items, list):
        raise ReduceError(f"inference response payload {pid} did not contain output_items")
    call = state.trace.inference_calls.get(call_id)
    if call is None:
        raise ReduceError(f"inference response referenced unknown call {call_id}")
    items = normalize_items(output_items, pid)
    usage = token_usage(payload.get("token_usage"))
    del payload, output_items
    thread_id = call.thread_id
    snapshot = state.snapshots.get(thread_id)
    append_at = len(snapshot) if snapshot is not None else 0
    producers: list[ProducerRef] = [InferenceProducer(call_id)]
    ids = reconcile(
        state, items, thread_id, call.codex_turn_id, wall, producers, append_at, False, None
    )
    state.append_thread_items(thread_id, ids)
    if state.snapshot_owner.get(thread_id) == call_id:
        # The snapshot becomes the thread's latest request plus its response (0.169.0): a
        # stale call's response leaves it alone, a repeated completion does not grow it.
        state.snapshots[thread_id] = call.request_item_ids + ids
    if usage is not None:
        call.usage = usage
    return ids


def reconcile(
    state: ReducerState,
    items: list[Normalized],
    thread_id: str,
    turn_id: str,
    wall: int,
    producers: list[ProducerRef],
    start_index: int,
    full_snapshot: bool,
    override: list[str] | None,
) -> list[str]:
    """Give each item an id: reuse the previous snapshot's, or create one (Codex's rules)."""
    previous = override if override is not None else state.snapshots.get(thread_id, [])
    conversation = state.trace.conversation_items
    ids: list[str] = []
    used: set[str] = set()
    index = start_index
    for item in items:
        if item.call_id is not None and item.kind in CALL_KINDS:
            ensure_call_id_consistency(state, thread_id, item)
        item_id = None
        candidate = previous[index] if index < len(previous) else None
        if candidate is not None:
            existing = conversation.get(candidate)
            if existing is not None and item_matches(existing, item):
                item_id = candidate
        if item_id is None and item.responses_item_id is not None:
            if producers:
                # Response output may reuse any item of the thread by Responses id.
                item_id = _same_responses_item(state, thread_id, item, used)
            else:
                # A request reuses by Responses id only accepted agent messages.
                item_id = _receipt(state, thread_id, turn_id, item, used)
        if item_id is None and candidate is not None and not full_snapshot:
            raise ReduceError(
                f"model conversation mismatch while reducing turn {turn_id} for thread "
                f"{thread_id} at item index {index}: existing item {candidate} does not "
                "match the current model payload item"
            )
        if item_id is None:
            if full_snapshot:
                item_id = _first_unused_match(state, previous, used, item)
            if item_id is None:
                item_id = create_item(state, thread_id, turn_id, wall, item, list(producers))
        sighted(state, item_id, item, producers)
        ids.append(item_id)
        used.add(item_id)
        index += 1
    _code_cells.flush_pending_starts(state)
    return ids


def reconcile_detached(
    state: ReducerState,
    items: list[Normalized],
    thread_id: str,
    turn_id: str,
    wall: int,
    producers: list[ProducerRef],
    candidates: list[str] | None,
) -> list[str]:
    """Reconcile by first unused match among ``candidates``, then an accepted agent message
    with the same Responses id (compaction input history); ``None``: create every item
    (replacement history).
    """
    ids: list[str] = []
    used: set[str] = set()
    for item in items:
        if item.call_id is not None and item.kind in CALL_KINDS:
            ensure_call_id_consistency(state, thread_id, item)
        item_id = None
        if candidates is not None:
            item_id = _first_unused_match(state, candidates, used, item)
            if item_id is None:
                item_id = _receipt(state, thread_id, turn_id, item, used)
        if item_id is None:
            item_id = create_item(state, thread_id, turn_id, wall, item, list(producers))
        sighted(state, item_id, item, producers)
        ids.append(item_id)
        used.add(item_id)
    _code_cells.flush_pending_starts(state)
    return ids


def sighted(
    state: ReducerState, item_id: str, item: Normalized, producers: list[ProducerRef]
) -> None:
    """Update an item seen (again) in a payload, then link it to tools, cells and edges."""
    existing = state.trace.conversation_items[item_id]
    if existing.kind == "reasoning":
        _merge_reasoning(existing.body, item.parts)
    elif item_id in state.receipts and not body_matches(existing.body.parts, item.parts):
        existing.body.parts = list(item.parts)
        _edges.forget_delivery(state, existing.thread_id, item_id)
    elif item_id in state.floating_outputs and existing.body.parts != item.parts:
        existing.body.parts = list(item.parts)  # schema 3: as the first request carries it
    if existing.responses_item_id is None and item.responses_item_id is not None:
        existing.responses_item_id = item.responses_item_id
        key = (existing.thread_id, item.responses_item_id)
        state.items_by_responses_id.setdefault(key, []).append(item_id)
        if item_id in state.receipts or item_id in state.floating_outputs:
            state.receipts_by_responses_id.setdefault(key, []).append(item_id)
    for producer in producers:
        if producer not in existing.produced_by:
            existing.produced_by.append(producer)
    call_id = item.call_id
    if call_id is not None:
        kind = item.kind
        if kind in CALL_KINDS or kind in OUTPUT_KINDS:
            _tools.attach_model_visible_item(state, item_id, call_id, kind)
        if kind == "custom_tool_call_output":
            _code_cells.attach_output_item(state, item_id, call_id)
    _edges.resolve_pending_for_item(state, item_id)


def _same_responses_item(
    state: ReducerState, thread_id: str, item: Normalized, used: set[str]
) -> str | None:
    """The latest item of the thread with this Responses id, if it has the same content (or
    is a receipt) and this payload has not used it yet: after the positional rule, 0.169.0
    reuses it for response output.
    """
    rid = item.responses_item_id
    if rid is None:
        return None
    candidates = state.items_by_responses_id.get((thread_id, rid))
    if not candidates:
        return None
    latest = candidates[-1]
    if latest in used:
        return None
    if latest in state.receipts or item_matches(state.trace.conversation_items[latest], item):
        return latest
    return None


def _receipt(
    state: ReducerState, thread_id: str, turn_id: str, item: Normalized, used: set[str]
) -> str | None:
    """The accepted agent message (receipt) of this turn with this item's Responses id, or
    (schema 3) an accepted tool output of any turn that nothing has carried yet: once a
    request or checkpoint carried it, 0.171.0 matches it by content only.
    """
    rid = item.responses_item_id
    if rid is None:
        return None
    conversation = state.trace.conversation_items
    for candidate in state.receipts_by_responses_id.get((thread_id, rid), ()):
        if candidate in used:
            continue
        if candidate in state.floating_outputs:
            return candidate  # schema 3: from any turn, until a request carries it
        if candidate in state.receipts and conversation[candidate].codex_turn_id == turn_id:
            return candidate
    return None


def _first_unused_match(
    state: ReducerState, candidates: list[str], used: set[str], item: Normalized
) -> str | None:
    conversation = state.trace.conversation_items
    for candidate in candidates:
        if candidate not in used:
            existing = conversation.get(candidate)
            if existing is not None and item_matches(existing, item):
                return candidate
    return None


def create_item(
    state: ReducerState,
    thread_id: str,
    turn_id: str | None,
    wall: int,
    item: Normalized,
    producers: list[ProducerRef],
) -> str:
    """Insert a new conversation item and return its id."""
    item_id = f"conversation_item:{state.next_item_ordinal}"
    state.next_item_ordinal += 1
    state.trace.conversation_items[item_id] = ConversationItem(
        item_id=item_id,
        responses_item_id=item.responses_item_id,
        thread_id=thread_id,
        codex_turn_id=turn_id,
        first_seen_at_unix_ms=wall,
        role=item.role,
        channel=item.channel,
        kind=item.kind,
        agent_message=item.agent_message,
        body=ConversationBody(parts=list(item.parts)),
        call_id=item.call_id,
        produced_by=producers,
    )
    if item.call_id is not None:
        state.items_by_call_id.setdefault((thread_id, item.call_id), []).append(item_id)
    if item.role == "assistant" and item.kind == "message" and item.agent_message is None:
        if turn_id is not None:
            state.replies_by_turn.setdefault((thread_id, turn_id), []).append(item_id)
    rid = item.responses_item_id
    if rid is not None:
        state.items_by_responses_id.setdefault((thread_id, rid), []).append(item_id)
    return item_id


def accept(
    state: ReducerState,
    wall: int,
    seq: int,
    thread_id: str,
    turn_id: str | None,
    item_id: str,
    agent_message: Any,
    tool_output: Any = None,
) -> None:
    """``history_item_accepted``: the item (by Responses id) enters the thread's history."""
    state.thread(thread_id)
    key = (thread_id, item_id)
    state.accepted.setdefault(key, (wall, seq))
    if agent_message is not None:
        accept_agent_message(state, wall, thread_id, turn_id, item_id, agent_message)
    if tool_output is not None:
        accept_tool_output(state, wall, thread_id, turn_id, item_id, tool_output)


def accept_agent_message(
    state: ReducerState,
    wall: int,
    thread_id: str,
    turn_id: str | None,
    item_id: str,
    payload_ref: Any,
) -> None:
    """An accepted inter-agent message enters the thread's history now, from its payload."""
    pid = payload_ref.raw_payload_id
    if is_cut(payload_ref):
        return  # a size limit cut the message
    value = state.read_payload(payload_ref)
    item = normalize_item(value, pid)
    if item.agent_message is None or item.responses_item_id != item_id:
        raise ReduceError(f"accepted agent message does not match receipt {item_id}")
    if (thread_id, item_id) in state.items_by_responses_id:
        return
    new_id = create_item(state, thread_id, turn_id, wall, item, [])
    state.receipts.add(new_id)
    _index_receipt(state, thread_id, item, new_id)
    state.append_thread_items(thread_id, [new_id])
    state.history_items.add(new_id)
    sighted(state, new_id, item, [])
    _code_cells.flush_pending_starts(state)


def accept_tool_output(
    state: ReducerState,
    wall: int,
    thread_id: str,
    turn_id: str | None,
    item_id: str,
    payload_ref: Any,
) -> None:
    """Schema 3: an accepted tool output enters the thread's history now, from its payload.

    The item is produced by the tool call of its call id; it is linked to that call (and
    its cell or terminal) only when a request carries it, as 0.171.0 does.
    """
    if is_cut(payload_ref):
        return  # a size limit cut the output
    value = state.read_payload(payload_ref)
    item = normalize_item(value, payload_ref.raw_payload_id)
    if (thread_id, item_id) in state.items_by_responses_id:
        return
    producers: list[ProducerRef] = []
    if item.call_id is not None:
        tool_call_id = _tools.single_tool_for_call_id(state, item.call_id)
        if tool_call_id is not None:
            producers.append(ToolProducer(tool_call_id))
    new_id = create_item(state, thread_id, turn_id, wall, item, producers)
    state.floating_outputs.add(new_id)
    _index_receipt(state, thread_id, item, new_id)
    state.append_thread_items(thread_id, [new_id])
    state.history_items.add(new_id)


def _index_receipt(state: ReducerState, thread_id: str, item: Normalized, item_id: str) -> None:
    """Index a receipt or floating output (just created: last of its Responses id)."""
    rid = item.responses_item_id
    if rid is not None:
        state.receipts_by_responses_id.setdefault((thread_id, rid), []).append(item_id)


def ensure_call_id_consistency(state: ReducerState, thread_id: str, item: Normalized) -> None:
    """Call items of a thread sharing a call id and kind must have the same content
    (0.169.0 checks calls only, not their outputs).
    """
    assert item.call_id is not None
    same = state.items_by_call_id.get((thread_id, item.call_id))
    if not same:
        return
    conversation = state.trace.conversation_items
    for item_id in same:
        existing = conversation[item_id]
        if existing.kind == item.kind and not item_matches(existing, item, by_content=True):
            raise ReduceError(
                f"model-visible call id {item.call_id} was reused with different content"
            )


def item_matches(existing: ConversationItem, item: Normalized, *, by_content: bool = False) -> bool:
    """Codex's ``conversation_item_matches``; unless ``by_content``, two different Responses
    ids also keep items apart (the call-id consistency check compares content only).
    """
    if (
        existing.kind != item.kind
        or existing.role != item.role
        or existing.channel != item.channel
        or existing.call_id != item.call_id
        or existing.agent_message != item.agent_message
    ):
        return False
    rid = existing.responses_item_id
    if (
        not by_content
        and rid is not None
        and item.responses_item_id is not None
        and rid != item.responses_item_id
    ):
        return False
    if item.kind == "reasoning":
        return _reasoning_body_matches(existing.body.parts, item.parts)
    return body_matches(existing.body.parts, item.parts)


def body_matches(left: list[Any], right: list[Any]) -> bool:
    """Parts pairwise equal; ``json`` parts compare only their summary."""
    if left == right:
        return True
    if len(left) != len(right):
        return False
    for a, b in zip(left, right, strict=True):
        if a != b:
            kind = type(a)
            if kind is not type(b):
                return False
            if kind is JsonPart and a.summary == b.summary:
                continue
            if (
                kind is PayloadRefPart
                and a.content_sha256 is not None
                and a.content_sha256 == b.content_sha256
                and a.label == b.label
            ):
                continue
            return False
    return True


def _first_encoded(parts: list[Any]) -> EncodedPart | None:
    for part in parts:
        if type(part) is EncodedPart:
            return part
    return None


def _reasoning_body_matches(left: list[Any], right: list[Any]) -> bool:
    if body_matches(left, right):
        return True
    a = _first_encoded(left)
    if a is None:
        return False
    b = _first_encoded(right)
    return b is not None and a == b


def _merge_reasoning(existing: ConversationBody, incoming: list[Any]) -> None:
    """Fill in readable reasoning text or summary the first sighting lacked."""
    parts = existing.parts
    if body_matches(parts, incoming):
        return
    if not _reasoning_body_matches(parts, incoming):
        raise ReduceError(
            "reasoning item merge attempted with different encrypted_content identity"
        )
    texts = [p for p in parts if type(p) is TextPart]
    summaries = [p for p in parts if type(p) is SummaryPart]
    if texts and summaries:
        return
    if not texts:
        texts = [p for p in incoming if type(p) is TextPart]
    if not summaries:
        summaries = [p for p in incoming if type(p) is SummaryPart]
    encoded = [p for p in parts if type(p) is EncodedPart]
    existing.parts = [*texts, *summaries, *encoded]


def reduce_checkpoint(
    state: ReducerState,
    wall: int,
    thread_id: str,
    turn_id: str,
    compaction_id: str,
    payload_ref: Any,
) -> tuple[list[str], str, list[str]]:
    """Install a compaction checkpoint: (input ids, marker id, replacement ids)."""
    payload = state.read_payload(payload_ref)
    pid = payload_ref.raw_payload_id
    histories: list[list[Any]] = []
    for key in ("input_history", "replacement_history"):
        if is_cut(payload_ref):  # a size limit cut the checkpoint
            histories.append([])
            continue
        value = payload.get(key) if isinstance(payload, dict) else None
        if not isinstance(value, list):
            raise ReduceError(f"compaction checkpoint payload {pid} did not contain array {key}")
        histories.append(value)
    input_items = normalize_items(histories[0], pid)
    replacement_items = normalize_items(histories[1], pid)
    del payload, histories
    candidates = list(state.snapshots.get(thread_id, []))
    input_ids = reconcile_detached(state, input_items, thread_id, turn_id, wall, [], candidates)
    producer: list[ProducerRef] = [CompactionProducer(compaction_id)]
    marker = Normalized("assistant", None, "compaction_marker", [])
    marker_id = create_item(state, thread_id, turn_id, wall, marker, list(producer))
    replacement_ids = reconcile_detached(
        state, replacement_items, thread_id, turn_id, wall, producer, None
    )
    state.merge_request_items(thread_id, input_ids)
    state.append_thread_items(thread_id, [marker_id])
    state.append_thread_items(thread_id, replacement_ids)
    state.history_items.update(input_ids)
    state.history_items.add(marker_id)
    state.history_items.update(replacement_ids)
    return input_ids, marker_id, replacement_ids


def apply_acceptances(state: ReducerState) -> None:
    """Stamp each item with the first acceptance of its Responses id in its thread, and keep
    in each thread's history only items a request or checkpoint carried, or accepted ones.
    """
    accepted = state.accepted
    kept = state.history_items
    if accepted:
        for item in state.trace.conversation_items.values():
            rid = item.responses_item_id
            if rid is not None:
                stamp = accepted.get((item.thread_id, rid))
                if stamp is not None:
                    item.accepted_at_unix_ms, item.accepted_seq = stamp
                    kept.add(item.item_id)
    for thread in state.trace.threads.values():
        ids = thread.conversation_item_ids
        if not all(item_id in kept for item_id in ids):
            thread.conversation_item_ids = [item_id for item_id in ids if item_id in kept]
