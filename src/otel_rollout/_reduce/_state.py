"""The reducer's state: the trace being built, Codex's pending queues, and lookup indexes.

Codex scans its ``BTreeMap``s for every lookup; the indexes here give the same
answers (``min``/``sorted`` restore key order where a rule says "first") without
the quadratic cost.
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import field

from otel_rollout._bundle._models import SCHEMA_2, PayloadKind, RawPayloadRef, RolloutStatus
from otel_rollout._bundle._reader import Bundle
from otel_rollout._reduce._model import AgentThread, RolloutTrace
from otel_rollout._reduce._payload import PartTexts, decode_text, is_cut, payload_text, read_value
from otel_rollout._reduce._request_input import ItemMemo, RequestInput, split_request


def _float_text(text: str) -> msgspec.Raw:
    """Keep a JSON float's own text, as serde_json's ``arbitrary_precision`` prints it.

    Codex 0.169.0 re-serializes payload JSON (``json`` part summaries, terminal outputs)
    with the number text it read, ``E`` lowercased and ``+`` added to a bare exponent.
    """
    text = text.replace("E", "e")
    mark = text.find("e")
    if mark >= 0 and text[mark + 1 : mark + 2].isdigit():
        text = f"{text[: mark + 1]}+{text[mark + 1 :]}"
    return msgspec.Raw(text.encode())


JSON_DECODER = msgspec.json.Decoder(float_hook=_float_text)
"""Decoder for payload JSON: keys keep document order, floats keep their text."""


class ReduceError(Exception):
    """A reducer rule rejected the bundle; the message is Codex's reason (or ours)."""


class PendingEdge(msgspec.Struct):
    """An agent delivery edge waiting for its recipient-side conversation item."""

    edge_id: str
    kind: str
    source: Any
    target_thread_id: str
    message_author: str
    message_content: str
    unresolved_spawn_thread_id: str | None
    started_at_unix_ms: int
    ended_at_unix_ms: int | None
    carried_raw_payload_ids: list[str]


class PendingCodeCellStart(msgspec.Struct):
    """A code-cell start waiting for its model-visible ``custom_tool_call`` item."""

    seq: int
    wall_time_unix_ms: int
    thread_id: str
    codex_turn_id: str | None
    code_cell_id: str
    runtime_cell_id: str
    model_visible_call_id: str
    source_js: str


class PendingCodeCellEvent(msgspec.Struct):
    """An initial-response or end event of a code cell whose start is still queued."""

    seq: int
    wall_time_unix_ms: int
    ended: bool
    runtime_cell_id: str
    status: Any
    payload_id: str | None


class TerminalProcess(msgspec.Struct):
    """The process a terminal operation runs (exec) or writes to (write_stdin)."""

    process_id: str | None
    target_process_id: str | None


class ReducerState(msgspec.Struct):
    """Everything one replay needs, besides the event being applied."""

    bundle: Bundle
    trace: RolloutTrace
    schema: int = SCHEMA_2
    """The bundle's schema: 2 is reduced as Codex 0.169.0, 3 as Codex 0.171.0."""
    next_item_ordinal: int = 1
    next_operation_ordinal: int = 1
    snapshots: dict[str, list[str]] = field(default_factory=dict)
    snapshot_owner: dict[str, str] = field(default_factory=dict)
    """thread -> the inference call whose request is the thread's snapshot."""
    pending_replacements: dict[str, list[str]] = field(default_factory=dict)
    code_cell_ids_by_runtime: dict[tuple[str, str], str] = field(default_factory=dict)
    pending_code_cell_starts: dict[str, PendingCodeCellStart] = field(default_factory=dict)
    pending_code_cell_events: dict[str, list[PendingCodeCellEvent]] = field(default_factory=dict)
    pending_edges: list[PendingEdge] = field(default_factory=list)
    receipts: set[str] = field(default_factory=set)
    """Items created from an accepted agent message's payload."""
    history_items: set[str] = field(default_factory=set)
    """Items a request, checkpoint or accepted agent message carried into a thread's history."""
    accepted: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """(thread, Responses item id) -> (wall time, seq) of its first acceptance."""
    # indexes
    items_by_call_id: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(thread, call_id) -> conversation items with that call id, in creation order."""
    items_by_responses_id: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(thread, Responses item id) -> conversation items with it, in creation order."""
    receipts_by_responses_id: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """The part of ``items_by_responses_id`` that are receipts or (ever) floating outputs,
    in the same order: the only candidates a request may reuse by Responses id."""
    tools_by_call_id: dict[str, list[str]] = field(default_factory=dict)
    """model-visible call id -> tool calls (any thread)."""
    inferences_by_response_item: dict[str, list[str]] = field(default_factory=dict)
    """conversation item -> inference calls whose response contains it."""
    calls_by_response_id: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(thread, Responses response id) -> inference calls that completed with it."""
    requests_by_compaction: dict[str, list[str]] = field(default_factory=dict)
    """compaction id -> its compaction requests, in start order."""
    session_members: set[tuple[str, str]] = field(default_factory=set)
    """(terminal session, operation) pairs: the ``operation_ids`` of each session, as a set."""
    edge_target_items: set[str] = field(default_factory=set)
    edges_by_source_tool: dict[str, list[str]] = field(default_factory=dict)
    deliveries: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    """(thread, author, content) -> inter-agent message items in thread history order."""
    delivery_scan: dict[str, int] = field(default_factory=dict)
    """thread -> how much of its history ``deliveries`` covers."""
    inter_agent: dict[str, tuple[str, str, str] | None] = field(default_factory=dict)
    """item -> (thread, author, content) if it is an inter-agent delivery (memo)."""
    replies_by_turn: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(thread, turn) -> assistant messages without agent-message metadata."""
    thread_item_sets: dict[str, set[str]] = field(default_factory=dict)
    inferences_by_turn: dict[str, list[str]] = field(default_factory=dict)
    code_cells_by_turn: dict[str, list[str]] = field(default_factory=dict)
    tools_by_code_cell: dict[str, list[str]] = field(default_factory=dict)
    process_sessions: dict[str, str] = field(default_factory=dict)
    """process id -> terminal session of the exec_command that started it."""
    operation_processes: dict[str, TerminalProcess] = field(default_factory=dict)
    """terminal operation -> its process bookkeeping (see ``_terminals``)."""
    floating_outputs: set[str] = field(default_factory=set)
    """Schema 3: tool outputs accepted (in their thread) that no request carried yet."""
    event_payloads: dict[str, Any] = field(default_factory=dict)
    """The values of the current event's payloads, by id (read before its handler runs);
    an inference request's may be a :class:`RequestInput` (see :meth:`read_request`)."""
    item_memo: ItemMemo = field(default_factory=ItemMemo)
    """Input items of the last few requests, normalized (``_request_input``)."""
    part_texts: PartTexts = field(default_factory=PartTexts)
    """Schema 3: the texts of the parts of the last request or prepared prompt read (the
    thread's input items)."""

    def read_payload(self, ref: RawPayloadRef) -> Any:
        """Read a payload's JSON, confined to the bundle.

        Schema 3: parts are assembled, and a payload a size limit cut reads as ``None``
        (see ``_payload``); callers tell it from a ``null`` body by ``_payload.is_cut``.

        Raises:
            ReduceError: The file is missing, unreadable, not JSON or outside the bundle.
        """
        values = self.event_payloads
        if ref.raw_payload_id in values:
            value = values[ref.raw_payload_id]
            if type(value) is not RequestInput:
                return value
        return self._read_value(ref)

    def read_request(self, ref: RawPayloadRef) -> Any:
        """Read an inference request: a :class:`RequestInput`, or its value as
        :meth:`read_payload` gives it.

        Raises:
            ReduceError: As :meth:`read_payload`.
        """
        value = self.event_payloads.get(ref.raw_payload_id)
        if type(value) is RequestInput:
            return value
        return self.read_payload(ref)

    def load_event_payloads(self, refs: list[RawPayloadRef]) -> None:
        """Read (so check) every payload an event references, as Codex (0.169.0 and
        0.171.0) does, whether or not a handler uses it.

        Handlers of the event then read them from memory; the next event forgets them.

        Raises:
            ReduceError: A payload is missing, not JSON, or its parts do not assemble.
        """
        values = self.event_payloads
        values.clear()
        for ref in refs:
            kind = ref.kind.type
            if kind is PayloadKind.INFERENCE_REQUEST and not is_cut(ref):
                values[ref.raw_payload_id] = self._read_request_input(ref)
            elif kind is PayloadKind.PREPARED_PROMPT and self.schema != SCHEMA_2:
                values[ref.raw_payload_id] = self._read_value(ref, self.part_texts)
            else:
                values[ref.raw_payload_id] = self._read_value(ref)

    def _read_request_input(self, ref: RawPayloadRef) -> Any:
        """An inference request split for reuse, or (if it does not split) its value."""
        store = self.bundle.payloads
        try:  # a schema 2 ref has no parts: its body is read and decoded alike
            text = payload_text(store, ref, self.part_texts)
            split = split_request(text, self.item_memo, JSON_DECODER)
            return split if split is not None else decode_text(store, ref, text, JSON_DECODER)
        except ValueError as error:
            raise ReduceError(f"payload {ref.raw_payload_id}: {error}") from None

    def _read_value(self, ref: RawPayloadRef, texts: PartTexts | None = None) -> Any:
        try:
            if self.schema == SCHEMA_2:
                return self.bundle.payloads.read_json(ref, JSON_DECODER)
            return read_value(self.bundle.payloads, ref, JSON_DECODER, texts)
        except ValueError as error:
            raise ReduceError(f"payload {ref.raw_payload_id}: {error}") from None

    def thread(self, thread_id: str) -> AgentThread:
        """Return a thread.

        Raises:
            ReduceError: The thread was never started.
        """
        thread = self.trace.threads.get(thread_id)
        if thread is None:
            raise ReduceError(f"trace event referenced unknown thread {thread_id}")
        return thread

    def check_turn(self, subject: str, thread_id: str, turn_id: str) -> None:
        """Check that ``turn_id`` exists and belongs to ``thread_id``.

        Raises:
            ReduceError: The turn is unknown or belongs to another thread.
        """
        turn = self.trace.codex_turns.get(turn_id)
        if turn is None:
            raise ReduceError(f"{subject} referenced unknown codex turn {turn_id}")
        if turn.thread_id != thread_id:
            raise ReduceError(
                f"{subject} used thread {thread_id}, but codex turn {turn_id} "
                f"belongs to {turn.thread_id}"
            )

    def items_for_call(self, thread_id: str, call_id: str, kinds: frozenset[str]) -> list[str]:
        """The thread's conversation items with this call id and one of ``kinds``, in key order."""
        conversation = self.trace.conversation_items
        return sorted(
            item_id
            for item_id in self.items_by_call_id.get((thread_id, call_id), ())
            if conversation[item_id].kind in kinds
        )

    def merge_request_items(self, thread_id: str, item_ids: list[str]) -> None:
        """Add a request's items to its thread's conversation, each once, in order.

        Schema 3: an item new to the thread that the request (or checkpoint) puts before a
        tool output accepted earlier and carried by nothing yet goes just before the first
        such output after it, as 0.171.0 orders them.
        """
        floating = self.floating_outputs
        if not floating:
            self.append_thread_items(thread_id, item_ids)
            return
        seen = self.thread_item_sets[thread_id]
        conversation = self.thread(thread_id).conversation_item_ids
        before: str | None = None
        targets: dict[str, str] = {}
        for item_id in reversed(item_ids):
            if item_id in floating:
                before = item_id
            elif item_id not in seen and before is not None:
                targets[item_id] = before
        for item_id in item_ids:
            floating.discard(item_id)
            if item_id in seen:
                continue
            seen.add(item_id)
            target = targets.get(item_id)
            if target is None:
                conversation.append(item_id)
            else:
                conversation.insert(_index_near_end(conversation, target), item_id)

    def append_thread_items(self, thread_id: str, item_ids: list[str]) -> None:
        """Append items to a thread's conversation, each once, in order."""
        thread = self.thread(thread_id)
        seen = self.thread_item_sets[thread_id]
        for item_id in item_ids:
            if item_id not in seen:
                seen.add(item_id)
                thread.conversation_item_ids.append(item_id)


def new_trace(
    *,
    schema_version: int,
    trace_id: str,
    rollout_id: str,
    root_thread_id: str,
    started_at_unix_ms: int,
) -> RolloutTrace:
    """Return an empty trace initialized from the manifest."""
    return RolloutTrace(
        schema_version=schema_version,
        trace_id=trace_id,
        rollout_id=rollout_id,
        started_at_unix_ms=started_at_unix_ms,
        ended_at_unix_ms=None,
        status=RolloutStatus.RUNNING,
        root_thread_id=root_thread_id,
        threads={},
        codex_turns={},
        conversation_items={},
        inference_calls={},
        code_cells={},
        tool_calls={},
        terminal_sessions={},
        terminal_operations={},
        compactions={},
        compaction_requests={},
        interaction_edges={},
        raw_payloads={},
    )


def _index_near_end(items: list[str], item: str, window: int = 64) -> int:
    """``items.index(item)`` for an item held once, looked for near the end first: a
    floating output is one of the thread's latest items, and a search from the start made
    every insertion cost the thread's length.
    """
    try:
        return items.index(item, max(0, len(items) - window))
    except ValueError:
        return items.index(item)


def push_unique(items: list[str], item: str) -> None:
    """Append ``item`` unless present."""
    if item not in items:
        items.append(item)


def extend_unique(items: list[str], new_items: list[str]) -> None:
    """Append each new item unless present."""
    for item in new_items:
        if item not in items:
            items.append(item)
