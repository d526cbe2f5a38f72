"""Attribute names and values that otel-rollout puts on spans, span events and links.

``gen_ai.*`` names are pinned copies of the OpenTelemetry GenAI semantic conventions
(the upstream module is ``_incubating``): the latest experimental conventions
(:data:`GEN_AI_SEMCONV_VERSION`), as ``opentelemetry-instrumentation-openai-v2`` 2.4b0 emits
them with ``OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental`` (through
``opentelemetry-util-genai`` 1.1b0). Everything else lives under ``rollout.*``. No name is
both a leaf and the prefix of another name.

Extension: compaction requests use the custom operation ``compact`` (the conventions allow
custom values where no well-known one applies), named ``compact {model}``, with the
inference attributes (provider, model, usage when the response body carries
``token_usage``).
"""

from __future__ import annotations

from typing import Final

# --- OpenTelemetry GenAI semantic conventions (pinned) ---

GEN_AI_SEMCONV_VERSION: Final = "1.41.1"
"""The GenAI semantic conventions release whose names are pinned here (the last released in
the main repository; ``cache_read``/``reasoning`` usage are v1.40/v1.41 names)."""
GEN_AI_SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.37.0"
"""The schema URL ``opentelemetry-util-genai`` 1.1b0 declares for these spans."""

GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_AGENT_ID: Final = "gen_ai.agent.id"
GEN_AI_AGENT_NAME: Final = "gen_ai.agent.name"
GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_ID: Final = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS: Final = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
"""Opt-in content: JSON text of the request's messages (``_bundle/_messages.py``)."""
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
GEN_AI_SYSTEM_INSTRUCTIONS: Final = "gen_ai.system_instructions"
GEN_AI_TOOL_NAME: Final = "gen_ai.tool.name"
GEN_AI_TOOL_CALL_ID: Final = "gen_ai.tool.call.id"
GEN_AI_TOOL_TYPE: Final = "gen_ai.tool.type"
GEN_AI_TOOL_CALL_ARGUMENTS: Final = "gen_ai.tool.call.arguments"
"""Opt-in content: the call's arguments (JSON text as the model wrote them)."""
GEN_AI_TOOL_CALL_RESULT: Final = "gen_ai.tool.call.result"
ERROR_TYPE: Final = "error.type"
"""A low-cardinality class: an exception's class name, an HTTP status code, else
:data:`ERROR_TYPE_OTHER` (the full text is the span's status description)."""
ERROR_TYPE_OTHER: Final = "_OTHER"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
PROVIDER_OTHER: Final = "_OTHER"
"""``gen_ai.provider.name`` of an agent whose provider is not known."""

EVENT_INFERENCE_DETAILS: Final = "gen_ai.client.inference.operation.details"
"""The conventions' log event carrying an inference's content (``event_only`` mode)."""

OPERATION_INVOKE_AGENT: Final = "invoke_agent"
OPERATION_CHAT: Final = "chat"
OPERATION_EXECUTE_TOOL: Final = "execute_tool"
OPERATION_COMPACT: Final = "compact"

TOOL_TYPE_FUNCTION: Final = "function"
TOOL_TYPE_EXTENSION: Final = "extension"

# --- rollout.* identities ---

ROLLOUT_TRACE_ID: Final = "rollout.trace_id"
"""The bundle's ``trace_id`` (the OTel trace id written as a UUID)."""
ROLLOUT_ID: Final = "rollout.rollout_id"
ROLLOUT_THREAD_ID: Final = "rollout.thread_id"
ROLLOUT_PARENT_THREAD_ID: Final = "rollout.parent_thread_id"
ROLLOUT_AGENT_PATH: Final = "rollout.agent_path"
ROLLOUT_TURN_ID: Final = "rollout.turn_id"
ROLLOUT_STATUS: Final = "rollout.status"
"""Final status of the thread, turn, attempt, tool call, code cell or compaction."""
ROLLOUT_INFERENCE_CALL_ID: Final = "rollout.inference_call_id"
ROLLOUT_UPSTREAM_REQUEST_ID: Final = "rollout.upstream_request_id"
ROLLOUT_TOOL_CALL_ID: Final = "rollout.tool_call_id"
ROLLOUT_TOOL_KIND: Final = "rollout.tool_kind"
ROLLOUT_CODE_CELL_ID: Final = "rollout.code_cell_id"
ROLLOUT_COMPACTION_ID: Final = "rollout.compaction_id"
ROLLOUT_COMPACTION_REQUEST_ID: Final = "rollout.compaction_request_id"
ROLLOUT_ERROR: Final = "rollout.error"
"""The error or cancellation reason recorded with a failed or cancelled object."""

# --- edges (on links, mirrored on the span holding the link: Jaeger drops link attributes) ---

ROLLOUT_EDGE_KIND: Final = "rollout.edge.kind"
ROLLOUT_EDGE_ID: Final = "rollout.edge.id"

EDGE_SPAWN_AGENT: Final = "spawn_agent"
EDGE_ASSIGN_AGENT_TASK: Final = "assign_agent_task"
EDGE_SEND_MESSAGE: Final = "send_message"
EDGE_CLOSE_AGENT: Final = "close_agent"
EDGE_AGENT_RESULT: Final = "agent_result"

# --- span events ---

ROLLOUT_EVENT_JSON: Final = "rollout.event.json"
"""On a span event: the raw event's payload object as compact JSON."""

# --- payload references: rollout.payload.<role>.{path | id,shard,capture,original_size}
#     and .{size,sha256,content} ---

PAYLOAD_PREFIX: Final = "rollout.payload."
PAYLOAD_PATH_SUFFIX: Final = ".path"
"""Schema 2 (payload files): the payload's file, relative to the bundle (``payloads/5.json``)."""
PAYLOAD_ID_SUFFIX: Final = ".id"
"""Schema 3 (zstd shards), in place of ``.path``: the ref's ``raw_payload_id``
(``raw_payload:5``)."""
PAYLOAD_SHARD_SUFFIX: Final = ".shard"
"""Schema 3: the number of the shard holding the body (``payloads/000001.zst`` is 1); absent
when the payload was omitted."""
PAYLOAD_CAPTURE_SUFFIX: Final = ".capture"
"""Schema 3: ``truncated`` or ``omitted`` when a size limit cut the payload (absent when whole)."""
PAYLOAD_ORIGINAL_SIZE_SUFFIX: Final = ".original_size"
"""Schema 3, with ``.capture``: the payload's size before the cut (``.size`` is what was kept)."""
PAYLOAD_SIZE_SUFFIX: Final = ".size"
"""Bytes of the body as stored (a truncated capture's retained prefix)."""
PAYLOAD_SHA256_SUFFIX: Final = ".sha256"
PAYLOAD_CONTENT_SUFFIX: Final = ".content"
"""Only with ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true``, truncated."""


def payload_attribute(role: str, suffix: str) -> str:
    """Return ``rollout.payload.<role><suffix>``, e.g. ``rollout.payload.request.sha256``."""
    return f"{PAYLOAD_PREFIX}{role}{suffix}"


__all__ = [name for name in dir() if name.isupper()] + ["payload_attribute"]
