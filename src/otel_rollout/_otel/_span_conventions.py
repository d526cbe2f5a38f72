"""Other instrumentations' span conventions read as the GenAI ones: pure attribute rewriting.

The spans-only planner reads GenAI semantic conventions (``gen_ai.*``). This module rewrites,
span by span, what other instrumentations say into those attributes:

* OpenInference (``openinference.span.kind``): ``AGENT`` -> ``invoke_agent`` (``agent.name``),
  ``LLM`` -> ``chat`` (``llm.model_name``, ``llm.provider``/``llm.system``, the flattened
  ``llm.input_messages.*`` / ``llm.output_messages.*``, ``llm.token_count.*``), ``TOOL`` ->
  ``execute_tool`` (``tool.name``, ``input.value`` the arguments, ``output.value`` the
  result; the Agents SDK's ``handoff to X`` tool -> ``agent_handoff``; ``session.id`` ->
  ``gen_ai.conversation.id``);
* OpenLLMetry (``traceloop.*``): tool arguments and results unwrapped from LangChain's
  callback envelopes;
* bridge quirks of GenAI messages: the OpenAI Agents bridge's assistant message (a Chat
  Completions message, or a Responses API ``function_call`` item) written as Python ``repr``
  text, ``tool_call_response`` parts with ``result`` for ``response``, tool
  calls without ``arguments``.

LangChain names the agent that made each call (``lc_agent_name``, in OpenInference's
``metadata`` and OpenLLMetry's association properties): :func:`langchain_agent` reads it.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping
from typing import Any, Final

from otel_rollout import semconv as sc
from otel_rollout._bundle._bodies import arguments_text

KEPT_PREFIXES: Final = (
    "gen_ai.",
    "error.type",
    "openinference.span.kind",
    "llm.",
    "tool.",
    "tool_call.",
    "input.value",
    "output.value",
    "agent.name",
    "metadata",
    "session.id",
    "traceloop.entity.",
    "traceloop.span.kind",
    "traceloop.association.properties.lc_agent_name",
)
"""The attributes the planner reads, of every convention it knows."""

OPERATION_HANDOFF: Final = "agent_handoff"
HANDOFF_FROM: Final = "gen_ai.handoff.from_agent"
HANDOFF_TO: Final = "gen_ai.handoff.to_agent"
_OI_KIND: Final = "openinference.span.kind"
_LC_AGENT_TL: Final = "traceloop.association.properties.lc_agent_name"
_HANDOFF_PREFIX: Final = "handoff to "
_REPR_FUNCTION_CALL: Final = "ResponseFunctionToolCall"


def to_genai(name: str, attributes: Mapping[str, Any]) -> dict[str, Any] | None:
    """``attributes`` with what they say in other conventions added as GenAI attributes
    (``None``: they say nothing more).

    On an OpenInference span, what OpenInference says wins over the GenAI attributes it may
    carry too: its GenAI flag (``OPENINFERENCE_ENABLE_GENAI_SEMCONV``) converts lossily (a
    handoff becomes ``execute_tool``)."""
    found: dict[str, Any] = {}
    kind = attributes.get(_OI_KIND)
    if isinstance(kind, str):
        found = _from_openinference(name, kind.upper(), attributes)
        if found and sc.GEN_AI_CONVERSATION_ID not in attributes:
            _copy(found, attributes, sc.GEN_AI_CONVERSATION_ID, "session.id")
    elif "traceloop.span.kind" in attributes:
        found = _from_openllmetry(attributes)
    return {**attributes, **found} if found else None


def is_genai(attributes: Mapping[str, Any]) -> bool:
    """Whether a span says it is GenAI work, in any convention known here."""
    return sc.GEN_AI_OPERATION_NAME in attributes or _OI_KIND in attributes


def langchain_agent(attributes: Mapping[str, Any]) -> str | None:
    """The LangChain agent (``create_agent(name=...)``) a span ran in, if named."""
    value = attributes.get(_LC_AGENT_TL)
    if isinstance(value, str) and value:
        return value
    metadata = attributes.get("metadata")
    if isinstance(metadata, str) and "lc_agent_name" in metadata:
        parsed = _json(metadata)
        if isinstance(parsed, dict) and isinstance(parsed.get("lc_agent_name"), str):
            return str(parsed["lc_agent_name"]) or None
    return None


def genai_messages(value: Any) -> list[dict[str, Any]]:
    """GenAI messages of a ``gen_ai.*.messages`` value (JSON text or a list), repaired."""
    parsed = _json(value) if isinstance(value, str) else value
    if not isinstance(parsed, list):
        return []
    messages: list[dict[str, Any]] = []
    for message in parsed:
        if not isinstance(message, dict):
            continue
        parts = message.get("parts")
        if not isinstance(parts, list):
            content = message.get("content")
            parts = [{"type": "text", "content": content}] if isinstance(content, str) else []
        repaired: list[dict[str, Any]] = []
        for part in parts:
            if isinstance(part, dict):
                repaired.extend(_repaired_part(str(message.get("role")), part))
        messages.append({"role": str(message.get("role") or "user"), "parts": repaired})
    return messages


def instructions_text(value: Any) -> str | None:
    """The text of ``gen_ai.system_instructions`` (a JSON list of parts, or plain text)."""
    parsed = _json(value) if isinstance(value, str) else value
    if isinstance(parsed, list):
        texts = [
            str(part.get("content", ""))
            for part in parsed
            if isinstance(part, dict) and part.get("type", "text") == "text"
        ]
        return "\n".join(texts) if texts else None
    return value if isinstance(value, str) and value else None


# --- OpenInference ---


def _from_openinference(name: str, kind: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    if kind == "AGENT":
        found: dict[str, Any] = {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT}
        agent = attrs.get("agent.name")
        if isinstance(agent, str) and agent:
            found[sc.GEN_AI_AGENT_NAME] = agent
        return found
    if kind == "LLM":
        found = {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_CHAT}
        _copy(found, attrs, sc.GEN_AI_REQUEST_MODEL, "llm.model_name")
        _copy(found, attrs, sc.GEN_AI_PROVIDER_NAME, "llm.provider", "llm.system")
        _copy(found, attrs, sc.GEN_AI_USAGE_INPUT_TOKENS, "llm.token_count.prompt")
        _copy(found, attrs, sc.GEN_AI_USAGE_OUTPUT_TOKENS, "llm.token_count.completion")
        inputs = _flattened_messages(attrs, "llm.input_messages")
        system = [m for m in inputs if m["role"] == "system"]
        if inputs:
            found[sc.GEN_AI_INPUT_MESSAGES] = inputs
        if system:
            found[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = [p for m in system for p in m["parts"]]
        outputs = _flattened_messages(attrs, "llm.output_messages")
        if outputs:
            found[sc.GEN_AI_OUTPUT_MESSAGES] = outputs
        return found
    if kind == "TOOL":
        if name.startswith(_HANDOFF_PREFIX):
            target = attrs.get("output.value")
            return {
                sc.GEN_AI_OPERATION_NAME: OPERATION_HANDOFF,
                HANDOFF_FROM: attrs.get("input.value"),
                HANDOFF_TO: target
                if isinstance(target, str)
                else name.removeprefix(_HANDOFF_PREFIX),
            }
        found = {sc.GEN_AI_OPERATION_NAME: sc.OPERATION_EXECUTE_TOOL}
        _copy(found, attrs, sc.GEN_AI_TOOL_NAME, "tool.name")
        _copy(found, attrs, sc.GEN_AI_TOOL_CALL_ID, "tool_call.id")
        if "input.value" in attrs:
            found[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = attrs["input.value"]
        if "output.value" in attrs:
            found[sc.GEN_AI_TOOL_CALL_RESULT] = _langchain_tool_output(attrs["output.value"])
        return found
    return {}


def _copy(found: dict[str, Any], attrs: Mapping[str, Any], key: str, *sources: str) -> None:
    for source in sources:
        value = attrs.get(source)
        if value is not None and value != "":
            found[key] = value
            return


def _flattened_messages(attrs: Mapping[str, Any], prefix: str) -> list[dict[str, Any]]:
    """GenAI messages from OpenInference's ``<prefix>.<i>.message.*`` attributes."""
    messages: list[dict[str, Any]] = []
    index = 0
    while f"{prefix}.{index}.message.role" in attrs:
        base = f"{prefix}.{index}.message."
        role = str(attrs[base + "role"])
        parts: list[dict[str, Any]] = []
        content = attrs.get(base + "content")
        call_id = attrs.get(base + "tool_call_id")
        if role == "tool" and isinstance(call_id, str):
            parts.append({"type": "tool_call_response", "id": call_id, "response": content})
        elif isinstance(content, str) and content:
            parts.append({"type": "text", "content": content})
        if not (isinstance(content, str) and content):  # the same text, as content parts
            texts = _indexed(attrs, base + "contents", "message_content.text")
            parts.extend({"type": "text", "content": str(text)} for text in texts)
        calls = sorted(
            {
                key[len(base + "tool_calls.") :].split(".", 1)[0]
                for key in attrs
                if key.startswith(base + "tool_calls.")
            },
            key=lambda digits: int(digits) if digits.isdigit() else 0,
        )
        for call in calls:
            at = f"{base}tool_calls.{call}.tool_call."
            part: dict[str, Any] = {
                "type": "tool_call",
                "id": attrs.get(at + "id"),
                "name": attrs.get(at + "function.name"),
            }
            if at + "function.arguments" in attrs:
                part["arguments"] = attrs[at + "function.arguments"]
            parts.append(part)
        messages.append({"role": role, "parts": parts})
        index += 1
    return messages


def _indexed(attrs: Mapping[str, Any], prefix: str, leaf: str) -> list[Any]:
    values = []
    index = 0
    while f"{prefix}.{index}.{leaf}" in attrs:
        values.append(attrs[f"{prefix}.{index}.{leaf}"])
        index += 1
    return values


# --- OpenLLMetry ---


def _from_openllmetry(attrs: Mapping[str, Any]) -> dict[str, Any]:
    if attrs.get(sc.GEN_AI_OPERATION_NAME) != sc.OPERATION_EXECUTE_TOOL:
        return {}
    found: dict[str, Any] = {}
    arguments = _json(attrs.get(sc.GEN_AI_TOOL_CALL_ARGUMENTS))
    if isinstance(arguments, dict) and isinstance(arguments.get("input_str"), str):
        found[sc.GEN_AI_TOOL_CALL_ARGUMENTS] = arguments["input_str"]
    result = attrs.get(sc.GEN_AI_TOOL_CALL_RESULT)
    if result is not None:
        found[sc.GEN_AI_TOOL_CALL_RESULT] = _langchain_tool_output(result)
    return found


def _langchain_tool_output(value: Any) -> Any:
    """A tool's output unwrapped from LangChain's serialized ``ToolMessage`` envelopes."""
    parsed = _json(value) if isinstance(value, str) else value
    if isinstance(parsed, dict) and isinstance(parsed.get("output"), dict):
        parsed = parsed["output"]
    if isinstance(parsed, dict):
        for holder in (parsed.get("kwargs"), parsed.get("data")):
            if isinstance(holder, dict) and holder.get("type") == "tool" and "content" in holder:
                return holder["content"]
    return value


# --- GenAI message parts ---


def _repaired_part(role: str, part: dict[str, Any]) -> list[dict[str, Any]]:
    kind = part.get("type")
    if kind == "tool_call_response" and "response" not in part and "result" in part:
        return [{**part, "response": part["result"]}]
    if kind == "tool_call" and part.get("arguments") is None:
        return [{**part, "arguments": "{}"}]  # what a model sends for a call without arguments
    if kind == "text" and role == "assistant":
        content = part.get("content")
        if isinstance(content, str) and content.startswith("{'") and "'role': " in content:
            return _repr_message_parts(content) or [part]
        if isinstance(content, str) and content.startswith(_REPR_FUNCTION_CALL + "("):
            return _repr_function_call_parts(content) or [part]
    return [part]


def _repr_message_parts(text: str) -> list[dict[str, Any]] | None:
    """The parts of a chat message the OpenAI Agents bridge wrote as its Python ``repr``."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(value, dict) or value.get("role") != "assistant":
        return None
    parts: list[dict[str, Any]] = []
    if isinstance(value.get("content"), str) and value["content"]:
        parts.append({"type": "text", "content": value["content"]})
    for call in value.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            parts.append(
                _tool_call_part(call.get("id"), function.get("name"), function.get("arguments"))
            )
    return parts


def _repr_function_call_parts(text: str) -> list[dict[str, Any]] | None:
    """The tool call in a Responses API ``function_call`` item the OpenAI Agents bridge wrote
    as its pydantic ``repr`` (``ResponseFunctionToolCall(arguments='...', call_id='...',
    name='...', ...)``): only literal keyword values are read, nothing is evaluated."""
    try:
        tree = ast.parse(text, mode="eval").body
        if not (
            isinstance(tree, ast.Call)
            and isinstance(tree.func, ast.Name)
            and tree.func.id == _REPR_FUNCTION_CALL
        ):
            return None
        fields = {
            keyword.arg: ast.literal_eval(keyword.value)
            for keyword in tree.keywords
            if keyword.arg in ("arguments", "call_id", "name")
        }
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if not isinstance(fields.get("name"), str) or not isinstance(fields.get("call_id"), str):
        return None
    return [_tool_call_part(fields["call_id"], fields["name"], fields.get("arguments"))]


def _tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """A ``tool_call`` part, its arguments as the model sent them (``{}``: none)."""
    return {
        "type": "tool_call",
        "id": call_id,
        "name": name,
        "arguments": "{}" if arguments is None else arguments_text(arguments),
    }


def _json(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return None
