"""Normalization of Responses-API items (request input, response output) into conversation data."""

from __future__ import annotations

from typing import Any, Final

import msgspec

from otel_rollout._bundle._json import encode_compact
from otel_rollout._bundle._serde_forms import tagged_from_array
from otel_rollout._reduce._model import (
    AgentMessageMetadata,
    CodePart,
    ConversationPart,
    EncodedPart,
    JsonPart,
    PayloadRefPart,
    SummaryPart,
    TextPart,
    TokenUsage,
)
from otel_rollout._reduce._payload import unavailable_id
from otel_rollout._reduce._state import JSON_DECODER, ReduceError

MAX_JSON_SUMMARY_BYTES = 240


class Normalized:
    """One model item's conversation fields, before it gets an id."""

    __slots__ = (
        "agent_message",
        "call_id",
        "channel",
        "kind",
        "parts",
        "responses_item_id",
        "role",
    )

    def __init__(
        self,
        role: str,
        channel: str | None,
        kind: str,
        parts: list[ConversationPart],
        call_id: str | None = None,
        agent_message: AgentMessageMetadata | None = None,
        responses_item_id: str | None = None,
    ) -> None:
        self.role = role
        self.channel = channel
        self.kind = kind
        self.parts = parts
        self.call_id = call_id
        self.agent_message = agent_message
        self.responses_item_id = responses_item_id


_ROLES = {role: role for role in ("system", "developer", "user", "assistant", "tool")}
"""Each role, as the one string every item of that role holds (not a copy per payload)."""
_PHASES = {"commentary": "commentary", "final_answer": "final", "summary": "summary"}
_TEXT_TYPES = frozenset({"input_text", "output_text", "text"})
_ENCRYPTED = "encrypted_content"


def normalize_items(items: list[Any], payload_id: str) -> list[Normalized]:
    """Normalize every item of a payload.

    Raises:
        ReduceError: An item has no string type, an unsupported type or a malformed body.
    """
    return [normalize_item(item, payload_id) for item in items]


def normalize_item(item: Any, pid: str) -> Normalized:
    """Normalize one Responses item (see the module docstring)."""
    item_type = item.get("type") if isinstance(item, dict) else None
    if not isinstance(item_type, str):
        raise ReduceError(f"model item in payload {pid} did not contain a string type")
    call_id = item.get("call_id")
    if not isinstance(call_id, str):
        call_id = None
    rid = item.get("id")
    if not isinstance(rid, str):
        rid = None
    if item_type == "message":
        role = item.get("role")
        if not isinstance(role, str):
            raise ReduceError(f"message item in payload {pid} did not contain a string role")
        known = _ROLES.get(role)
        if known is None:
            raise ReduceError(f"unsupported message role {role} in payload {pid}")
        role = known
        phase = item.get("phase")
        channel = _PHASES.get(phase) if isinstance(phase, str) else None
        return Normalized(
            role, channel, "message", content_parts(item.get("content"), pid), None, None, rid
        )
    if item_type == "function_call":
        return Normalized(
            "assistant",
            "commentary",
            "function_call",
            _text_or_json(item, pid),
            call_id,
            None,
            rid,
        )
    if item_type == "function_call_output" or item_type == "custom_tool_call_output":
        kind = (  # the constant, not the payload's copy
            "function_call_output"
            if item_type == "function_call_output"
            else "custom_tool_call_output"
        )
        return Normalized("tool", "commentary", kind, _tool_output(item, pid), call_id, None, rid)
    if item_type == "reasoning":
        return Normalized(
            "assistant", "analysis", "reasoning", _reasoning_parts(item, pid), None, None, rid
        )
    if item_type == "custom_tool_call":
        source = item.get("input")
        parts: list[ConversationPart]
        if not isinstance(source, str):
            parts = [json_part(item, pid)]
        elif item.get("name") == "exec":
            parts = [CodePart(language="javascript", source=source)]
        else:
            parts = [TextPart(source)]
        return Normalized("assistant", "commentary", "custom_tool_call", parts, call_id, None, rid)
    if item_type == "agent_message":
        return _agent_message(item, pid, rid)
    if item_type in (
        "tool_search_call",
        "web_search_call",
        "image_generation_call",
        "local_shell_call",
    ):
        return Normalized(
            "assistant", "commentary", "function_call", [json_part(item, pid)], call_id, None, rid
        )
    if item_type in ("tool_search_output", "mcp_tool_call_output"):
        return Normalized(
            "tool", "commentary", "function_call_output", [json_part(item, pid)], call_id, None, rid
        )
    if item_type in ("compaction", "compaction_summary", "context_compaction"):
        encrypted = item.get(_ENCRYPTED)
        if not isinstance(encrypted, str):
            raise ReduceError(
                f"compaction item in payload {pid} did not contain string encrypted_content"
            )
        return Normalized(
            "assistant",
            "summary",
            "message",
            [EncodedPart(label=_ENCRYPTED, value=encrypted)],
            None,
            None,
            rid,
        )
    raise ReduceError(f"unsupported model item type {item_type} in payload {pid}")


def content_parts(content: Any, pid: str) -> list[ConversationPart]:
    """Parts of a message's ``content`` array (or a tool output array).

    Text entries become text (non-string text is skipped); any other entry is left in
    the payload, labelled by its type (``content`` without one) and fingerprinted.
    """
    if not isinstance(content, list):
        return [PayloadRefPart(label="content", raw_payload_id=pid)]
    parts: list[ConversationPart] = []
    for entry in content:
        part_type = entry.get("type") if isinstance(entry, dict) else None
        if isinstance(part_type, str) and part_type in _TEXT_TYPES:
            text = entry.get("text")
            if isinstance(text, str):
                parts.append(TextPart(text))
            else:
                cut = unavailable_id(text)
                if cut is not None:
                    parts.append(PayloadRefPart(label="text", raw_payload_id=cut))
            continue
        label = part_type if isinstance(part_type, str) else "content"
        digest = _sha256_hex(_canonical.encode(entry))
        parts.append(PayloadRefPart(label=label, raw_payload_id=pid, content_sha256=digest))
    return parts


_canonical = msgspec.json.Encoder(order="sorted")
"""Canonical JSON of a content entry (keys sorted), the input of ``content_sha256``."""


def _sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` in hex; hashlib (OpenSSL) loads on first use, not at start-up."""
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _text_or_json(item: dict[str, Any], pid: str) -> list[ConversationPart]:
    if "arguments" not in item:
        return [PayloadRefPart(label="payload", raw_payload_id=pid)]
    arguments = item["arguments"]
    if isinstance(arguments, str):
        try:
            value = JSON_DECODER.decode(arguments)
        except (msgspec.DecodeError, RecursionError):
            return [TextPart(arguments)]
        return [json_part(value, pid)]
    return [json_part(arguments, pid)]


def _tool_output(item: dict[str, Any], pid: str) -> list[ConversationPart]:
    if "output" not in item:
        return [PayloadRefPart(label="tool_output", raw_payload_id=pid)]
    output = item["output"]
    if isinstance(output, str):
        return [TextPart(output)]
    if isinstance(output, list):
        return content_parts(output, pid)
    return [json_part(output, pid)]


def _reasoning_parts(item: dict[str, Any], pid: str) -> list[ConversationPart]:
    parts: list[ConversationPart] = []
    for key, allowed, label in (
        ("content", ("reasoning_text", "text"), "content"),
        ("summary", ("summary_text",), "summary"),
    ):
        if key not in item:
            continue
        entries = item[key]
        if entries is None and key == "content":
            continue
        if not isinstance(entries, list):
            raise ReduceError(f"reasoning item in payload {pid} had non-array {key}")
        for entry in entries:
            entry_type = entry.get("type") if isinstance(entry, dict) else None
            if not isinstance(entry_type, str):
                raise ReduceError(
                    f"reasoning item in payload {pid} had {key} entry without string type"
                )
            if entry_type not in allowed:
                raise ReduceError(
                    f"reasoning item in payload {pid} had unsupported {key} type {entry_type}"
                )
            text = entry.get("text")
            if not isinstance(text, str):
                raise ReduceError(
                    f"reasoning item in payload {pid} had {label} entry without string text"
                )
            parts.append(TextPart(text) if key == "content" else SummaryPart(text))
    if _ENCRYPTED in item:
        encrypted = item[_ENCRYPTED]
        if isinstance(encrypted, str):
            parts.append(EncodedPart(label=_ENCRYPTED, value=encrypted))
        elif encrypted is not None:
            raise ReduceError(f"reasoning item in payload {pid} had non-string encrypted_content")
    if not parts:
        raise ReduceError(
            f"reasoning item in payload {pid} contained no content, summary, or encrypted_content"
        )
    return parts


_AGENT_CONTENT: Final = {"input_text": ("text",), _ENCRYPTED: (_ENCRYPTED,)}
"""An agent message's content variants and their fields (serde also takes ``[tag, field]``)."""


def _agent_message(item: dict[str, Any], pid: str, rid: str | None) -> Normalized:
    author = item.get("author")
    recipient = item.get("recipient")
    content = item.get("content")
    if (
        not isinstance(author, str)
        or not isinstance(recipient, str)
        or not isinstance(content, list)
    ):
        raise ReduceError(f"failed to parse agent_message item in payload {pid}")
    parts: list[ConversationPart] = []
    for given in content:
        entry = tagged_from_array(given, _AGENT_CONTENT)
        entry_type = entry.get("type") if isinstance(entry, dict) else None
        if entry_type == "input_text" and isinstance(entry.get("text"), str):
            parts.append(TextPart(entry["text"]))
        elif entry_type == _ENCRYPTED and isinstance(entry.get(_ENCRYPTED), str):
            parts.append(EncodedPart(label=_ENCRYPTED, value=entry[_ENCRYPTED]))
        else:
            raise ReduceError(f"failed to parse agent_message item in payload {pid}")
    if not parts:
        raise ReduceError(f"agent_message item in payload {pid} contained no content")
    return Normalized(
        "assistant",
        "analysis",
        "message",
        parts,
        None,
        AgentMessageMetadata(author, recipient),
        rid,
    )


def json_part(value: Any, pid: str) -> JsonPart:
    """A ``json`` part: compact JSON (keys in document order), cut at 240 bytes plus ``...``."""
    summary = encode_compact(value)
    if len(summary) > MAX_JSON_SUMMARY_BYTES:
        cut = MAX_JSON_SUMMARY_BYTES
        while cut > 0 and (summary[cut] & 0xC0) == 0x80:
            cut -= 1
        text = summary[:cut].decode() + "..."
    else:
        text = summary.decode()
    return JsonPart(summary=text, raw_payload_id=pid)


def token_usage(value: Any) -> TokenUsage | None:
    """Reduced usage: ``None`` unless the four classic counters are 64-bit integers.

    Negative counts clamp to 0; ``cache_write_input_tokens`` (0.169.0) defaults to 0.
    """
    if not isinstance(value, dict):
        return None
    counts = []
    for key in ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens"):
        count = _i64(value.get(key))
        if count is None:
            return None
        counts.append(count)
    cache_write = _i64(value.get("cache_write_input_tokens")) or 0
    return TokenUsage(counts[0], counts[1], cache_write, counts[2], counts[3])


def _i64(value: Any) -> int | None:
    """``serde_json``'s ``as_i64``, clamped at 0 below."""
    if type(value) is not int or not -(2**63) <= value < 2**63:
        return None
    return max(value, 0)
