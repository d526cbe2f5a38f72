"""What a reduced trace leaves out but a reader wants: why things failed, what tools got and gave.

Codex's ``state.json`` keeps an inference attempt's status but not its error text, and a
tool call's payload ids but not its arguments or result. ``read_facts`` finds them in the
bundle: the error of ``inference_failed``, ``inference_cancelled`` and
``compaction_request_failed`` events, the error or output of a failed tool call or code
cell, and each tool call's arguments and result text (from the conversation items the model
saw, else from the invocation and result payloads). ``show`` and ``view`` both use them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from otel_rollout._bundle._models import RawPayloadRef
from otel_rollout._bundle._reader import Bundle
from otel_rollout._reduce._model import RolloutTrace
from otel_rollout._reduce._payload import PayloadReadError, read_value

_FAILED: Final = frozenset({"failed", "cancelled", "aborted"})
_ANY_JSON: Final = msgspec.json.Decoder()
_MARKERS: Final = (
    b'"inference_failed"',
    b'"inference_cancelled"',
    b'"compaction_request_failed"',
    b'"tool_call_ended"',
    b'"code_cell_ended"',
)
"""Event types that can carry a failure; other lines are not decoded."""


class _FailureEvent(msgspec.Struct):
    type: str
    inference_call_id: str | None = None
    compaction_request_id: str | None = None
    tool_call_id: str | None = None
    runtime_cell_id: str | None = None
    status: str | None = None
    error: str | None = None
    reason: str | None = None
    result_payload: dict[str, Any] | None = None
    response_payload: dict[str, Any] | None = None


class _Envelope(msgspec.Struct):
    payload: _FailureEvent


_ENVELOPE: Final = msgspec.json.Decoder(_Envelope)


@dataclass
class Facts:
    """Failure reasons and tool texts of one rollout, by the reduced trace's object ids."""

    errors: dict[str, str] = field(default_factory=dict)
    """Object id (inference call, compaction request, tool call, code cell, turn) -> why."""
    arguments: dict[str, str] = field(default_factory=dict)
    """Tool call id -> its arguments (or input) as text."""
    results: dict[str, str] = field(default_factory=dict)
    """Tool call id -> its result as text."""

    def for_show(self) -> dict[str, dict[str, str]]:
        """``{"errors": ..., "arguments": ..., "results": ...}`` for ``build_tree``."""
        return {"errors": self.errors, "arguments": self.arguments, "results": self.results}


def read_facts(bundle: Bundle, trace: RolloutTrace) -> Facts:
    """Collect failure reasons and tool texts of ``trace``, reduced from ``bundle``."""
    facts = Facts()
    reader = _PayloadText(bundle, trace.raw_payloads)
    cells_by_runtime = {
        cell.runtime_cell_id: cell_id
        for cell_id, cell in trace.code_cells.items()
        if cell.runtime_cell_id is not None
    }
    for line in bundle.lines():
        data = line.data
        if not any(marker in data for marker in _MARKERS):
            continue
        try:
            event = _ENVELOPE.decode(data).payload
        except (msgspec.DecodeError, RecursionError):
            continue  # the reducer has judged the bundle already; a reader is lenient
        _collect(facts, event, reader, cells_by_runtime)
    for tool_id, tool in trace.tool_calls.items():
        arguments = _items_text(trace, tool.model_visible_call_item_ids)
        if arguments is None:
            arguments = reader.invocation(tool.raw_invocation_payload_id)
        if arguments:
            facts.arguments[tool_id] = arguments
        result = _items_text(trace, tool.model_visible_output_item_ids)
        if result is None:
            result = reader.result(tool.raw_result_payload_id)
        if result:
            facts.results[tool_id] = result
    _turn_errors(facts, trace)
    return facts


def _collect(
    facts: Facts, event: _FailureEvent, reader: _PayloadText, cells: Mapping[str, str]
) -> None:
    kind = event.type
    if kind in ("inference_failed", "inference_cancelled") and event.inference_call_id:
        reason = event.error if kind == "inference_failed" else event.reason
        facts.errors[event.inference_call_id] = reason or kind.replace("_", " ")
    elif kind == "compaction_request_failed" and event.compaction_request_id:
        facts.errors[event.compaction_request_id] = event.error or "failed"
    elif kind == "tool_call_ended" and event.tool_call_id and event.status in _FAILED:
        text = reader.result(_ref_id(event.result_payload))
        facts.errors[event.tool_call_id] = text or str(event.status)
    elif kind == "code_cell_ended" and event.status in ("failed", "terminated"):
        cell_id = cells.get(event.runtime_cell_id or "")
        if cell_id is not None:
            text = reader.result(_ref_id(event.response_payload))
            facts.errors[cell_id] = text or str(event.status)


def _turn_errors(facts: Facts, trace: RolloutTrace) -> None:
    """A turn's reason when it failed or ended on a failed inference: the last failure inside it."""
    last: dict[str, tuple[int, str]] = {}
    last_call: dict[str, tuple[int, str]] = {}

    def note(turn_id: str | None, seq: int, object_id: str) -> None:
        reason = facts.errors.get(object_id)
        if turn_id is not None and reason is not None and seq >= last.get(turn_id, (-1, ""))[0]:
            last[turn_id] = (seq, reason)

    for call_id, call in trace.inference_calls.items():
        note(call.codex_turn_id, call.execution.ended_seq or 0, call_id)
        started = call.execution.started_seq
        if started >= last_call.get(call.codex_turn_id, (-1, ""))[0]:
            last_call[call.codex_turn_id] = (started, call_id)
    for tool_id, tool in trace.tool_calls.items():
        note(tool.started_by_codex_turn_id, tool.execution.ended_seq or 0, tool_id)
    for cell_id, cell in trace.code_cells.items():
        note(cell.codex_turn_id, cell.execution.ended_seq or 0, cell_id)
    for request_id, request in trace.compaction_requests.items():
        note(request.codex_turn_id, request.execution.ended_seq or 0, request_id)
    for turn_id, turn in trace.codex_turns.items():
        ended_on_failure = last_call.get(turn_id, (0, ""))[1] in facts.errors
        if turn_id in last and (turn.execution.status.value in _FAILED or ended_on_failure):
            facts.errors[turn_id] = last[turn_id][1]


def _ref_id(ref: Mapping[str, Any] | None) -> str | None:
    value = (ref or {}).get("raw_payload_id")
    return value if isinstance(value, str) else None


def _items_text(trace: RolloutTrace, item_ids: Iterable[str]) -> str | None:
    """The text of conversation items (a call's arguments, an output), or ``None`` if none."""
    texts: list[str] = []
    for item_id in item_ids:
        item = trace.conversation_items.get(item_id)
        if item is None:
            continue
        texts.extend(part_text(msgspec.to_builtins(part)) for part in item.body.parts)
    joined = "\n".join(t for t in texts if t)
    return joined or None


def part_text(part: Mapping[str, Any]) -> str:
    """The readable text of one conversation body part (``""`` if it has none)."""
    kind = part.get("type")
    if kind in ("text", "summary"):
        return str(part.get("text") or "")
    if kind == "json":
        return str(part.get("summary") or "")
    if kind == "code":
        return str(part.get("source") or "")
    if kind == "encoded":
        return f"[{part.get('label') or 'encoded'}]"
    return ""


class _PayloadText:
    """Reads payloads of one bundle and turns tool bodies into text; unreadable means ``None``."""

    def __init__(self, bundle: Bundle, refs: Mapping[str, RawPayloadRef]) -> None:
        self.bundle = bundle
        self.refs = refs

    def value(self, payload_id: str | None) -> Any:
        ref = self.refs.get(payload_id or "")
        if ref is None:
            return None
        try:
            return read_value(self.bundle.payloads, ref, _ANY_JSON)
        except (PayloadReadError, ValueError, OSError):
            return None

    def invocation(self, payload_id: str | None) -> str | None:
        body = self.value(payload_id)
        if not isinstance(body, dict):
            return None
        call = body.get("payload")
        if isinstance(call, dict):
            for key in ("arguments", "input"):
                if isinstance(call.get(key), str):
                    return str(call[key])
            return to_text({k: v for k, v in call.items() if k != "type"})
        return to_text(body)

    def result(self, payload_id: str | None) -> str | None:
        body = self.value(payload_id)
        if not isinstance(body, dict):
            return None if body is None else to_text(body)
        if body.get("type") == "error":
            return str(body.get("error") or "error")
        item = body.get("response_item")
        if isinstance(item, dict) and "output" in item:
            return to_text(item["output"])
        response = body.get("response", body.get("value", body))
        if isinstance(response, dict) and len(response) == 1:
            (inner,) = response.values()
            if isinstance(inner, dict) and inner.get("error_text"):
                return str(inner["error_text"])
            if isinstance(inner, dict) and "content_items" in inner:
                return to_text(inner["content_items"])
        return to_text(response)


def to_text(value: Any) -> str:
    """A JSON value as text: strings as is, content items joined, other values as JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, dict) and "text" in v for v in value):
        return "\n".join(str(v["text"]) for v in value)
    return msgspec.json.encode(value).decode()
