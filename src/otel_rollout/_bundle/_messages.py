"""Responses API items <-> GenAI semantic-convention messages, and their bounded JSON.

One home for the conversion both ways (OTel-free, so any layer can use it): the live and
replayed spans put a request's items on ``gen_ai.input.messages`` and a response's on
``gen_ai.output.messages`` (:func:`input_messages`, :func:`output_messages`); instrumented
frameworks that report GenAI messages become Responses items (:func:`items_from_messages`).

Message shape (``gen-ai-input-messages.json`` / ``gen-ai-output-messages.json``): ``{"role":
"system" | "user" | "assistant" | "tool", "parts": [...]}``, output messages with a
``finish_reason``; parts ``{"type": "text", "content"}``, ``{"type": "tool_call", "id",
"name", "arguments"}``, ``{"type": "tool_call_response", "id", "response"}``, ``{"type":
"reasoning", "content"}``. :func:`bounded_json` keeps an attribute under a byte bound and
still valid JSON: the oldest messages go first, then text parts are shortened with
:data:`TRUNCATION_MARKER`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

TRUNCATION_MARKER: Final = "...[truncated]"
"""Appended to a text part shortened to fit the bound."""
FINISH_STOP: Final = "stop"
FINISH_TOOL_CALL: Final = "tool_call"

_TEXT_PART_TYPES = frozenset({"input_text", "output_text", "text", "summary_text", "refusal"})
_TOOL_CALL_TYPES = frozenset({"function_call", "custom_tool_call"})
_TOOL_OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output"})
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _json_value(text: Any) -> Any:
    """A tool call's ``arguments``: parsed when it is JSON text, else as given."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    parts: list[dict[str, Any]] = []
    if not isinstance(content, Sequence):
        return parts
    for part in content:
        if not isinstance(part, Mapping):
            continue
        kind = part.get("type")
        if kind in _TEXT_PART_TYPES:
            text = part.get("text", part.get("refusal", ""))
            parts.append({"type": "text", "content": text if isinstance(text, str) else ""})
        elif isinstance(kind, str):
            parts.append({"type": kind})  # images, files, audio: the part type, no data
    return parts


def _item_parts(item: Mapping[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """The role and parts of one Responses item; ``None`` for items with no message form."""
    kind = item.get("type", "message")
    if kind == "message":
        role = _ROLES.get(str(item.get("role")), "user")
        return role, _text_parts(item.get("content"))
    if kind in _TOOL_CALL_TYPES:
        arguments = item.get("arguments", item.get("input"))
        return "assistant", [
            {
                "type": "tool_call",
                "id": item.get("call_id"),
                "name": item.get("name"),
                "arguments": _json_value(arguments),
            }
        ]
    if kind in _TOOL_OUTPUT_TYPES:
        call_id, output = item.get("call_id"), item.get("output")
        return "tool", [{"type": "tool_call_response", "id": call_id, "response": output}]
    if kind == "reasoning":
        summary = item.get("summary")
        texts = [p.get("text", "") for p in summary or () if isinstance(p, Mapping)]
        text = "\n".join(t for t in texts if isinstance(t, str))
        return ("assistant", [{"type": "reasoning", "content": text}]) if text else None
    return None


def messages_from_items(items: Iterable[Any]) -> list[dict[str, Any]]:
    """GenAI messages of Responses items: consecutive assistant items (text, reasoning, tool
    calls) merge into one message, as a chat completion returns them."""
    messages: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, str):
            item = {"type": "message", "role": "user", "content": item}
        if not isinstance(item, Mapping):
            continue
        converted = _item_parts(item)
        if converted is None:
            continue
        role, parts = converted
        if messages and role == "assistant" and messages[-1]["role"] == "assistant":
            messages[-1]["parts"].extend(parts)
        else:
            messages.append({"role": role, "parts": parts})
    return messages


def input_messages(request: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The input messages and system instructions of a Responses request body."""
    if not isinstance(request, Mapping):
        return [], []
    items = request.get("input")
    if isinstance(items, str):
        items = [items]
    messages = messages_from_items(items if isinstance(items, Sequence) else ())
    instructions = request.get("instructions")
    system = [{"type": "text", "content": instructions}] if isinstance(instructions, str) else []
    return messages, system


def finish_reason(output_items: Iterable[Any]) -> str:
    """``tool_call`` when the response asks for a tool, else ``stop``."""
    for item in output_items:
        if isinstance(item, Mapping) and item.get("type") in _TOOL_CALL_TYPES:
            return FINISH_TOOL_CALL
    return FINISH_STOP


def output_messages(output_items: Sequence[Any]) -> list[dict[str, Any]]:
    """The output messages of a response's items (one assistant message with its reason)."""
    messages = messages_from_items(output_items)
    reason = finish_reason(output_items)
    for message in messages:
        message["finish_reason"] = reason
    return messages


def _item_of_part(part: Mapping[str, Any]) -> dict[str, Any] | None:
    """The Responses item of a non-text part (``None`` for text and unknown parts)."""
    kind = part.get("type")
    if kind == "tool_call":
        arguments = part.get("arguments")
        text = arguments if isinstance(arguments, str) else dumps(arguments)
        return {
            "type": "function_call",
            "call_id": part.get("id"),
            "name": part.get("name"),
            "arguments": text,
        }
    if kind == "tool_call_response":
        response = part.get("response")
        output = response if isinstance(response, str) else dumps(response)
        return {"type": "function_call_output", "call_id": part.get("id"), "output": output}
    if kind == "reasoning":
        summary = [{"type": "summary_text", "text": str(part.get("content", ""))}]
        return {"type": "reasoning", "summary": summary}
    return None


def items_from_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Responses input items of GenAI messages (the inverse of :func:`messages_from_items`)."""
    items: list[dict[str, Any]] = []
    for message in messages:
        role = str(message.get("role", "user"))
        text_type = "output_text" if role == "assistant" else "input_text"
        content: list[dict[str, Any]] = []
        for part in message.get("parts") or ():
            if part.get("type") == "text":
                content.append({"type": text_type, "text": str(part.get("content", ""))})
                continue
            item = _item_of_part(part)
            if item is None:
                continue
            if content:
                items.append({"type": "message", "role": role, "content": content})
                content = []
            items.append(item)
        if content:
            items.append({"type": "message", "role": role, "content": content})
    return items


def dumps(value: Any) -> str:
    """Compact JSON text, non-ASCII kept (what goes on a span)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _size(value: Any) -> int:
    return len(dumps(value).encode())


def _shorten_texts(messages: list[dict[str, Any]], max_bytes: int) -> bool:
    """Shorten text parts, longest first, until ``messages`` fit; whether they do."""
    texts = [
        part
        for message in messages
        for part in message.get("parts", ())
        if part.get("type") in ("text", "reasoning") and isinstance(part.get("content"), str)
    ]
    for part in sorted(texts, key=lambda p: len(p["content"]), reverse=True):
        text: str = part["content"]
        low, high = 0, len(text) - 1  # the longest head that fits, by bisection
        part["content"] = TRUNCATION_MARKER
        if _size(messages) > max_bytes:
            continue  # even the marker alone does not fit: shorten the next part too
        while low < high:
            mid = (low + high + 1) // 2
            part["content"] = text[:mid] + TRUNCATION_MARKER
            if _size(messages) <= max_bytes:
                low = mid
            else:
                high = mid - 1
        part["content"] = text[:low] + TRUNCATION_MARKER
        return True
    return _size(messages) <= max_bytes


def bounded_messages(messages: list[dict[str, Any]], max_bytes: int) -> str | None:
    """``messages`` as JSON of at most ``max_bytes`` bytes (oldest messages dropped first,
    then text shortened with :data:`TRUNCATION_MARKER`); ``None`` when nothing fits."""
    text = dumps(messages)
    if len(text.encode()) <= max_bytes:
        return text
    # Compact JSON of a list is "[" + ",".join(items) + "]": drop the oldest messages by
    # their sizes, each measured once (not the whole list again after every drop).
    sizes = [_size(message) for message in messages]
    total = len(text.encode())
    first = 0
    while first < len(messages) - 1 and total > max_bytes:
        total -= sizes[first] + 1
        first += 1
    kept = [dict(m, parts=[dict(p) for p in m.get("parts", ())]) for m in messages[first:]]
    if total > max_bytes and not _shorten_texts(kept, max_bytes):
        return None
    return dumps(kept)


def bounded_value(value: Any, max_bytes: int) -> str | None:
    """A tool argument or result as text of at most ``max_bytes`` bytes: a string as is,
    other values as JSON; text that does not fit becomes a JSON string of its head and
    :data:`TRUNCATION_MARKER` (still valid JSON); ``None`` when nothing fits."""
    text = value if isinstance(value, str) else dumps(value)
    if len(text.encode()) <= max_bytes:
        return text
    budget = max_bytes - len(TRUNCATION_MARKER.encode()) - 2
    while budget > 0:
        head = text.encode()[:budget].decode("utf-8", errors="ignore")
        shortened = dumps(head + TRUNCATION_MARKER)
        overflow = len(shortened.encode()) - max_bytes
        if overflow <= 0:
            return shortened
        budget -= overflow
    return None
