"""Typed models of the raw trace bundle, byte-compatible with Codex 0.169.0 and 0.171.0.

One set of models serves both schemas: schema 2 (Codex 0.169.0/0.170.0: payload files,
refs with a ``path``) and schema 3 (Codex 0.171.0: zstd payload shards, refs with a
``shard`` and optional ``capture``/``parts``, ``inference_started.prepared_prompt_payload``,
``history_item_accepted.tool_output_payload``, ``code_cell_wait_target_resolved``).
Fields of one schema only default to ``UNSET`` and are then not written.

Field order is serialization order. Optional fields default to ``None`` and are
written as ``null``, except where Codex omits them (``history_item_accepted``'s
``agent_message_payload``). Unknown fields are ignored on read, as Codex does.
"""

from __future__ import annotations

import enum
import typing
from typing import Annotated, Any, Final

import msgspec
from msgspec import UNSET, UnsetType

I64 = Annotated[int, msgspec.Meta(ge=-(1 << 63), le=(1 << 63) - 1)]
"""An integer Codex holds as ``i64`` (times in ms): serde refuses one outside it."""
U64 = Annotated[int, msgspec.Meta(ge=0)]
"""An integer Codex holds as ``u64`` (``seq``, timeouts); msgspec bounds only the lower
end, so a struct that must refuse values past 2^64 - 1 checks in ``__post_init__``."""
U64_MAX: Final = (1 << 64) - 1

SCHEMA_2: Final = 2
"""The ``schema_version`` Codex 0.169.0 and 0.170.0 write and accept (payload files)."""
SCHEMA_3: Final = 3
"""The ``schema_version`` Codex 0.171.0 writes and accepts (zstd payload shards)."""
SCHEMA_VERSIONS: Final = (SCHEMA_2, SCHEMA_3)
"""Every schema this package reads and writes."""
SCHEMA_VERSION: Final = SCHEMA_3
"""The schema written when none is chosen: 3, what current Codex (0.171.0) reads."""

MANIFEST_FILE_NAME: Final = "manifest.json"
RAW_EVENT_LOG_FILE_NAME: Final = "trace.jsonl"
PAYLOADS_DIR_NAME: Final = "payloads"
REDUCED_STATE_FILE_NAME: Final = "state.json"


class RolloutStatus(str, enum.Enum):
    """Status of a rollout or a thread."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"


class ExecutionStatus(str, enum.Enum):
    """Status of a turn, tool call or runtime operation."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    ABORTED = "aborted"


class CodeCellRuntimeStatus(str, enum.Enum):
    """Status of a code-mode cell."""

    STARTING = "starting"
    RUNNING = "running"
    YIELDED = "yielded"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATED = "terminated"


class PayloadKind(str, enum.Enum):
    """What a payload file holds; written inside a ``RawPayloadKind`` object."""

    INFERENCE_REQUEST = "inference_request"
    INFERENCE_RESPONSE = "inference_response"
    COMPACTION_REQUEST = "compaction_request"
    COMPACTION_CHECKPOINT = "compaction_checkpoint"
    COMPACTION_RESPONSE = "compaction_response"
    TOOL_INVOCATION = "tool_invocation"
    TOOL_RESULT = "tool_result"
    TOOL_RUNTIME_EVENT = "tool_runtime_event"
    TERMINAL_RUNTIME_EVENT = "terminal_runtime_event"
    PROTOCOL_EVENT = "protocol_event"
    SESSION_METADATA = "session_metadata"
    AGENT_RESULT = "agent_result"
    PREPARED_PROMPT = "prepared_prompt"
    """Schema 3: the prepared prompt's string fragments (``parts`` fill the gaps)."""
    MODEL_ITEM = "model_item"
    """Schema 3: one input item of a prepared prompt, shared across a thread's requests."""
    CONTENT_VALUE = "content_value"
    """Schema 3: a long string split out of another payload under ``max_payload_bytes``."""


class _Model(msgspec.Struct, frozen=True):
    """Base of every bundle model: immutable (each subclass makes its own fields keyword-only)."""


class RawPayloadKind(_Model, frozen=True, kw_only=True):
    """Codex's adjacently tagged payload kind: serializes as ``{"type": "<kind>"}``."""

    type: PayloadKind


class CaptureStatus(str, enum.Enum):
    """Schema 3: how much of a payload a size limit let through."""

    COMPLETE = "complete"
    """Whole (Codex 0.171.0 accepts it; its sizes are not checked, as no capture)."""
    TRUNCATED = "truncated"
    OMITTED = "omitted"


class PayloadCapture(_Model, frozen=True, kw_only=True):
    """Schema 3: a payload cut by ``max_payload_bytes`` or ``max_bytes``."""

    status: CaptureStatus
    original_bytes: int
    retained_bytes: int | UnsetType = UNSET
    """Bytes kept in the shard record (required when truncated, ignored otherwise)."""


class RawPayloadRef(_Model, frozen=True, kw_only=True):
    """A reference from an event to a payload of the same bundle.

    Schema 2 names a file (``path``); schema 3 a shard (``shard``, ``null`` when the
    payload was omitted), with the ``capture`` of a cut payload and the ``parts`` it
    was split into.
    """

    raw_payload_id: str
    kind: RawPayloadKind
    path: str | UnsetType = UNSET
    shard: int | None | UnsetType = UNSET
    """Schema 3: the shard holding the body; ``null`` or absent when omitted."""
    capture: PayloadCapture | UnsetType = UNSET
    parts: list[RawPayloadRef] | UnsetType = UNSET


class TraceBundleManifest(_Model, frozen=True, kw_only=True):
    """``manifest.json``: the bundle's identity."""

    schema_version: int
    trace_id: str
    rollout_id: str
    root_thread_id: str
    started_at_unix_ms: I64
    raw_event_log: str = RAW_EVENT_LOG_FILE_NAME
    payloads_dir: str = PAYLOADS_DIR_NAME


# --- tool call kinds, summaries and requesters (internally tagged by "type") ---


class _Tagged(_Model, frozen=True, tag_field="type"):
    """Base of internally tagged unions."""


class ExecCommandKind(_Tagged, tag="exec_command", frozen=True, kw_only=True):
    """A terminal command started by the model."""


class WriteStdinKind(_Tagged, tag="write_stdin", frozen=True, kw_only=True):
    """Input written to a running terminal process."""


class ApplyPatchKind(_Tagged, tag="apply_patch", frozen=True, kw_only=True):
    """A patch applied to the workspace."""


class McpKind(_Tagged, tag="mcp", frozen=True, kw_only=True):
    """A call to a tool of an MCP server."""

    server: str
    tool: str


class WebKind(_Tagged, tag="web", frozen=True, kw_only=True):
    """A web search or fetch."""


class ImageGenerationKind(_Tagged, tag="image_generation", frozen=True, kw_only=True):
    """An image generation call."""


class SpawnAgentKind(_Tagged, tag="spawn_agent", frozen=True, kw_only=True):
    """Spawning a child agent."""


class AssignAgentTaskKind(_Tagged, tag="assign_agent_task", frozen=True, kw_only=True):
    """Assigning a task to an existing agent (Codex's ``followup_task``)."""


class SendMessageKind(_Tagged, tag="send_message", frozen=True, kw_only=True):
    """Sending a message to another agent."""


class WaitAgentKind(_Tagged, tag="wait_agent", frozen=True, kw_only=True):
    """Waiting for other agents."""


class CloseAgentKind(_Tagged, tag="close_agent", frozen=True, kw_only=True):
    """Closing a child agent."""


class OtherKind(_Tagged, tag="other", frozen=True, kw_only=True):
    """Any other tool, by name."""

    name: str


ToolCallKind = (
    ExecCommandKind
    | WriteStdinKind
    | ApplyPatchKind
    | McpKind
    | WebKind
    | ImageGenerationKind
    | SpawnAgentKind
    | AssignAgentTaskKind
    | SendMessageKind
    | WaitAgentKind
    | CloseAgentKind
    | OtherKind
)


class TerminalSummary(_Tagged, tag="terminal", frozen=True, kw_only=True):
    """A tool call that operates a terminal."""

    operation_id: str


class AgentSummary(_Tagged, tag="agent", frozen=True, kw_only=True):
    """A tool call addressed to another agent."""

    target_agent_path: str
    task_name: str | None = None
    message_preview: str


class WaitAgentSummary(_Tagged, tag="wait_agent", frozen=True, kw_only=True):
    """A wait for another agent."""

    target_agent_path: str | None = None
    timeout_ms: U64 | None = None

    def __post_init__(self) -> None:
        """Refuse a ``timeout_ms`` past u64, as serde does."""
        if self.timeout_ms is not None and self.timeout_ms > U64_MAX:
            raise ValueError(f"timeout_ms {self.timeout_ms} is not a u64")


class GenericSummary(_Tagged, tag="generic", frozen=True, kw_only=True):
    """A label with short previews of input and output."""

    label: str
    input_preview: str | None = None
    output_preview: str | None = None


ToolCallSummary = TerminalSummary | AgentSummary | WaitAgentSummary | GenericSummary


class ModelRequester(_Tagged, tag="model", frozen=True, kw_only=True):
    """The model asked for the tool call."""


class CodeCellRequester(_Tagged, tag="code_cell", frozen=True, kw_only=True):
    """A code-mode cell asked for the tool call."""

    runtime_cell_id: str


RawToolCallRequester = ModelRequester | CodeCellRequester


# --- raw event payloads (internally tagged by "type") ---


class RolloutStarted(_Tagged, tag="rollout_started", frozen=True, kw_only=True):
    """The rollout began; always the first event."""

    trace_id: str
    root_thread_id: str


class RolloutEnded(_Tagged, tag="rollout_ended", frozen=True, kw_only=True):
    """The root thread ended the rollout."""

    status: RolloutStatus


class ThreadStarted(_Tagged, tag="thread_started", frozen=True, kw_only=True):
    """A thread (agent) started: the root, or a child writing into the root's bundle."""

    thread_id: str
    agent_path: str
    metadata_payload: RawPayloadRef | None = None


class ThreadResumed(_Tagged, tag="thread_resumed", frozen=True, kw_only=True):
    """A thread was resumed (accepted by Codex 0.169.0, never seen produced)."""

    thread_id: str


class ThreadEnded(_Tagged, tag="thread_ended", frozen=True, kw_only=True):
    """A thread ended."""

    thread_id: str
    status: RolloutStatus


class CodexTurnStarted(_Tagged, tag="codex_turn_started", frozen=True, kw_only=True):
    """A turn began on a thread."""

    codex_turn_id: str
    thread_id: str


class CodexTurnEnded(_Tagged, tag="codex_turn_ended", frozen=True, kw_only=True):
    """A turn ended."""

    codex_turn_id: str
    status: ExecutionStatus


class InferenceStarted(_Tagged, tag="inference_started", frozen=True, kw_only=True):
    """An inference attempt sent its request."""

    inference_call_id: str
    thread_id: str
    codex_turn_id: str
    model: str
    provider_name: str
    request_payload: RawPayloadRef
    prepared_prompt_payload: RawPayloadRef | UnsetType = UNSET
    """Schema 3 (required there): the prompt as prepared, of kind ``prepared_prompt``."""
    server_address: str | UnsetType = UNSET
    """Extension (not written by Codex, ignored by its reducer): the model server's host,
    given to the inference context; only written when given."""
    server_port: int | UnsetType = UNSET
    """Extension, as ``server_address``: the model server's port."""


class InferenceCompleted(_Tagged, tag="inference_completed", frozen=True, kw_only=True):
    """An inference attempt received its whole response."""

    inference_call_id: str
    response_id: str | None = None
    upstream_request_id: str | None = None
    response_payload: RawPayloadRef


class InferenceFailed(_Tagged, tag="inference_failed", frozen=True, kw_only=True):
    """An inference attempt failed."""

    inference_call_id: str
    upstream_request_id: str | None = None
    error: str
    partial_response_payload: RawPayloadRef | None = None


class InferenceCancelled(_Tagged, tag="inference_cancelled", frozen=True, kw_only=True):
    """An inference attempt was cancelled."""

    inference_call_id: str
    upstream_request_id: str | None = None
    reason: str
    partial_response_payload: RawPayloadRef | None = None


class ToolCallStarted(_Tagged, tag="tool_call_started", frozen=True, kw_only=True):
    """A tool dispatch began."""

    tool_call_id: str
    model_visible_call_id: str | None = None
    code_mode_runtime_tool_id: str | None = None
    requester: RawToolCallRequester
    kind: ToolCallKind
    summary: ToolCallSummary
    invocation_payload: RawPayloadRef | None = None


class McpToolCallCorrelationAssigned(
    _Tagged, tag="mcp_tool_call_correlation_assigned", frozen=True, kw_only=True
):
    """An MCP request id was tied to a tool call."""

    tool_call_id: str
    mcp_call_id: str


class ToolCallRuntimeStarted(_Tagged, tag="tool_call_runtime_started", frozen=True, kw_only=True):
    """The runtime began executing a tool call."""

    tool_call_id: str
    kind: ToolCallKind
    runtime_payload: RawPayloadRef


class ToolCallRuntimeEnded(_Tagged, tag="tool_call_runtime_ended", frozen=True, kw_only=True):
    """The runtime finished executing a tool call."""

    tool_call_id: str
    status: ExecutionStatus
    runtime_payload: RawPayloadRef


class ToolCallEnded(_Tagged, tag="tool_call_ended", frozen=True, kw_only=True):
    """A tool dispatch finished."""

    tool_call_id: str
    status: ExecutionStatus
    result_payload: RawPayloadRef | None = None


class StdinTargetResolved(_Tagged, tag="stdin_target_resolved", frozen=True, kw_only=True):
    """A ``write_stdin`` call was tied to the ``exec_command`` call owning the process."""

    tool_call_id: str
    exec_tool_call_id: str


class CodeCellWaitTargetResolved(
    _Tagged, tag="code_cell_wait_target_resolved", frozen=True, kw_only=True
):
    """Schema 3: a wait tool call resolved to the code cell it waits on."""

    tool_call_id: str
    runtime_cell_id: str


class CodeCellStarted(_Tagged, tag="code_cell_started", frozen=True, kw_only=True):
    """A code-mode cell began running."""

    runtime_cell_id: str
    model_visible_call_id: str
    source_js: str


class CodeCellInitialResponse(_Tagged, tag="code_cell_initial_response", frozen=True, kw_only=True):
    """A code-mode cell returned its first response."""

    runtime_cell_id: str
    status: CodeCellRuntimeStatus
    response_payload: RawPayloadRef | None = None


class CodeCellEnded(_Tagged, tag="code_cell_ended", frozen=True, kw_only=True):
    """A code-mode cell finished."""

    runtime_cell_id: str
    status: CodeCellRuntimeStatus
    response_payload: RawPayloadRef | None = None


class CompactionRequestStarted(
    _Tagged, tag="compaction_request_started", frozen=True, kw_only=True
):
    """A compaction attempt sent its request."""

    compaction_id: str
    compaction_request_id: str
    thread_id: str
    codex_turn_id: str
    model: str
    provider_name: str
    request_payload: RawPayloadRef


class CompactionRequestCompleted(
    _Tagged, tag="compaction_request_completed", frozen=True, kw_only=True
):
    """A compaction attempt received its response."""

    compaction_id: str
    compaction_request_id: str
    response_payload: RawPayloadRef


class CompactionRequestFailed(_Tagged, tag="compaction_request_failed", frozen=True, kw_only=True):
    """A compaction attempt failed."""

    compaction_id: str
    compaction_request_id: str
    error: str


class CompactionInstalled(_Tagged, tag="compaction_installed", frozen=True, kw_only=True):
    """A compacted history replaced the thread's history."""

    compaction_id: str
    checkpoint_payload: RawPayloadRef


class AgentResultObserved(_Tagged, tag="agent_result_observed", frozen=True, kw_only=True):
    """A child agent's result reached its parent."""

    edge_id: str
    child_thread_id: str
    child_codex_turn_id: str
    parent_thread_id: str
    message: str
    carried_payload: RawPayloadRef | None = None


class ProtocolEventObserved(_Tagged, tag="protocol_event_observed", frozen=True, kw_only=True):
    """An application protocol event, kept as a payload."""

    event_type: str
    event_payload: RawPayloadRef


class HistoryItemAccepted(
    _Tagged, tag="history_item_accepted", omit_defaults=True, frozen=True, kw_only=True
):
    """An item entered a thread's history (payload refs omitted when absent)."""

    item_id: str
    agent_message_payload: RawPayloadRef | None = None
    tool_output_payload: RawPayloadRef | None = None
    """Schema 3: the tool output item that entered the history."""


class RecordingCompleted(_Tagged, tag="recording_completed", frozen=True, kw_only=True):
    """The recorder closed the bundle; always the last event."""


class Other(_Tagged, tag="other", frozen=True, kw_only=True):
    """A free-form event (Codex's reducer rejects it)."""

    kind: str
    summary: str
    payloads: list[RawPayloadRef]
    metadata: msgspec.Raw


RawTraceEventPayload = (
    RolloutStarted
    | RolloutEnded
    | ThreadStarted
    | ThreadResumed
    | ThreadEnded
    | CodexTurnStarted
    | CodexTurnEnded
    | InferenceStarted
    | InferenceCompleted
    | InferenceFailed
    | InferenceCancelled
    | ToolCallStarted
    | McpToolCallCorrelationAssigned
    | ToolCallRuntimeStarted
    | ToolCallRuntimeEnded
    | ToolCallEnded
    | StdinTargetResolved
    | CodeCellWaitTargetResolved
    | CodeCellStarted
    | CodeCellInitialResponse
    | CodeCellEnded
    | CompactionRequestStarted
    | CompactionRequestCompleted
    | CompactionRequestFailed
    | CompactionInstalled
    | AgentResultObserved
    | ProtocolEventObserved
    | HistoryItemAccepted
    | RecordingCompleted
    | Other
)


def _tags(union: Any) -> dict[str, Any]:
    """Map each ``type`` tag of a tagged union to its class."""
    classes: tuple[type[msgspec.Struct], ...] = typing.get_args(union)
    return {str(cls.__struct_config__.tag): cls for cls in classes}


EVENT_TYPES: Final[dict[str, type[RawTraceEventPayload]]] = _tags(RawTraceEventPayload)
"""Every raw event type of schema 3 (Codex 0.171.0), by its ``type`` tag."""

SCHEMA_3_ONLY_EVENT_TYPES: Final = frozenset({"code_cell_wait_target_resolved"})
"""Event types schema 2 (Codex 0.169.0) does not know."""


class RawTraceEvent(_Model, frozen=True, kw_only=True):
    """One line of ``trace.jsonl``: the envelope around a raw event payload."""

    schema_version: int
    seq: U64
    wall_time_unix_ms: I64
    rollout_id: str
    thread_id: str | None = None
    codex_turn_id: str | None = None
    payload: RawTraceEventPayload


def payload_refs(payload: RawTraceEventPayload) -> list[RawPayloadRef]:
    """Return the payload references an event carries, in Codex's order."""
    if isinstance(payload, Other):
        return list(payload.payloads)
    refs: list[RawPayloadRef] = []
    for name in payload.__struct_fields__:
        value = getattr(payload, name)
        if isinstance(value, RawPayloadRef):
            refs.append(value)
    return refs
