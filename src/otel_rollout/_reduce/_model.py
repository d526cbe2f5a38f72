"""The reduced rollout graph (``state.json``), byte-compatible with Codex 0.169.0.

Field order is serialization order. Optional fields are written as ``null``, except
the few Codex omits when absent (``responses_item_id``, ``accepted_at_unix_ms``,
``accepted_seq`` and ``agent_message`` of a conversation item): those are the only
fields with a default, and their structs set ``omit_defaults``. Maps are ``dict``s
whose keys :func:`~otel_rollout._reduce.reduce_bundle` sorts, as Codex's ``BTreeMap``.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import msgspec
from msgspec import UNSET, UnsetType

from otel_rollout._bundle._models import (
    CodeCellRuntimeStatus,
    ExecutionStatus,
    RawPayloadRef,
    RolloutStatus,
    ToolCallKind,
    ToolCallSummary,
)


class _Node(msgspec.Struct, kw_only=True):
    """Base of the mutable reduced objects."""


class _Tagged(msgspec.Struct, frozen=True, tag_field="type"):
    """Base of immutable internally tagged values."""


class RecordingStatus(str, enum.Enum):
    """Schema 3: how the recording of a bundle ended (``recording_status``)."""

    COMPLETE = "complete"
    """``recording_completed`` was recorded and every payload was kept whole."""
    CLOSED_WITH_PARTIAL_PAYLOADS = "closed_with_partial_payloads"
    """``recording_completed`` was recorded, but a size limit cut a payload."""
    UNCLOSED = "unclosed"
    """No ``recording_completed``: still being written, or the writer died."""


class ExecutionWindow(_Node):
    """When something ran and how it ended."""

    started_at_unix_ms: int
    started_seq: int
    ended_at_unix_ms: int | None
    ended_seq: int | None
    status: ExecutionStatus

    @classmethod
    def running(cls, started_at_unix_ms: int, started_seq: int) -> ExecutionWindow:
        """A window opened at ``started_seq`` and still running."""
        return cls(
            started_at_unix_ms=started_at_unix_ms,
            started_seq=started_seq,
            ended_at_unix_ms=None,
            ended_seq=None,
            status=ExecutionStatus.RUNNING,
        )

    def close(self, ended_at_unix_ms: int, ended_seq: int, status: ExecutionStatus) -> None:
        """End the window at ``ended_seq`` with ``status``."""
        self.ended_at_unix_ms = ended_at_unix_ms
        self.ended_seq = ended_seq
        self.status = status


# --- threads and turns ---


class RootOrigin(_Tagged, frozen=True, tag="root"):
    """The rollout's root thread."""


class SpawnedOrigin(_Tagged, frozen=True, tag="spawned", kw_only=True):
    """A child thread spawned by another thread."""

    parent_thread_id: str
    spawn_edge_id: str
    task_name: str
    agent_role: str


class UnknownOrigin(_Tagged, frozen=True, tag="unknown"):
    """Schema 3: a thread other than the root whose metadata a size limit cut."""


AgentOrigin: TypeAlias = RootOrigin | SpawnedOrigin | UnknownOrigin


class AgentThread(_Node):
    """One agent thread of the rollout."""

    thread_id: str
    agent_path: str
    nickname: str | None
    origin: AgentOrigin
    execution: ExecutionWindow
    default_model: str | None
    conversation_item_ids: list[str]


class CodexTurn(_Node):
    """One turn of a thread."""

    codex_turn_id: str
    thread_id: str
    execution: ExecutionWindow
    input_item_ids: list[str]


# --- conversation ---


class TextPart(_Tagged, frozen=True, tag="text"):
    """Readable text."""

    text: str


class SummaryPart(_Tagged, frozen=True, tag="summary"):
    """A reasoning summary."""

    text: str


class EncodedPart(_Tagged, frozen=True, tag="encoded", kw_only=True):
    """An opaque value, e.g. encrypted content."""

    label: str
    value: str


class JsonPart(_Tagged, frozen=True, tag="json", kw_only=True):
    """A JSON value, summarized; the full value stays in the payload."""

    summary: str
    raw_payload_id: str


class CodePart(_Tagged, frozen=True, tag="code", kw_only=True):
    """Source code."""

    language: str
    source: str


class PayloadRefPart(_Tagged, frozen=True, tag="payload_ref", kw_only=True, omit_defaults=True):
    """Content left in the payload, by label, with the SHA-256 of its canonical JSON if known."""

    label: str
    raw_payload_id: str
    content_sha256: str | None = None


ConversationPart: TypeAlias = (
    TextPart | SummaryPart | EncodedPart | JsonPart | CodePart | PayloadRefPart
)


class ConversationBody(_Node):
    """The parts of a conversation item."""

    parts: list[ConversationPart]


class AgentMessageMetadata(msgspec.Struct, frozen=True):
    """Routing of an inter-agent message."""

    author: str
    recipient: str


class UserInputProducer(_Tagged, frozen=True, tag="user_input"):
    """Produced by user input."""


class InferenceProducer(_Tagged, frozen=True, tag="inference"):
    """Produced by an inference call."""

    inference_call_id: str


class ToolProducer(_Tagged, frozen=True, tag="tool"):
    """Produced by a tool call."""

    tool_call_id: str


class CodeCellProducer(_Tagged, frozen=True, tag="code_cell"):
    """Produced by a code cell."""

    code_cell_id: str


class InteractionEdgeProducer(_Tagged, frozen=True, tag="interaction_edge"):
    """Produced by an interaction edge."""

    edge_id: str


class CompactionProducer(_Tagged, frozen=True, tag="compaction"):
    """Produced by a compaction."""

    compaction_id: str


class HarnessProducer(_Tagged, frozen=True, tag="harness"):
    """Produced by the harness."""


ProducerRef: TypeAlias = (
    UserInputProducer
    | InferenceProducer
    | ToolProducer
    | CodeCellProducer
    | InteractionEdgeProducer
    | CompactionProducer
    | HarnessProducer
)


class ConversationItem(_Node, omit_defaults=True, kw_only=True):
    """One model-visible item of a thread's conversation."""

    item_id: str
    responses_item_id: str | None = None
    accepted_at_unix_ms: int | None = None
    accepted_seq: int | None = None
    thread_id: str
    codex_turn_id: str | None
    first_seen_at_unix_ms: int
    role: str
    channel: str | None
    kind: str
    agent_message: AgentMessageMetadata | None = None
    body: ConversationBody
    call_id: str | None
    produced_by: list[ProducerRef]


# --- inference ---


class TokenUsage(_Node):
    """Token counts of an inference call."""

    input_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int
    reasoning_output_tokens: int


class InferenceCall(_Node, kw_only=True):
    """One inference attempt."""

    inference_call_id: str
    thread_id: str
    codex_turn_id: str
    execution: ExecutionWindow
    model: str
    provider_name: str
    response_id: str | None
    upstream_request_id: str | None
    request_item_ids: list[str]
    response_item_ids: list[str]
    tool_call_ids_started_by_response: list[str]
    usage: TokenUsage | None
    raw_request_payload_id: str
    prepared_prompt_payload_id: str | UnsetType = UNSET
    """Schema 3: the ``prepared_prompt`` payload of the request."""
    raw_response_payload_id: str | None


# --- code cells ---


class CodeCell(_Node):
    """A code-mode cell: model-authored JavaScript run by the runtime."""

    code_cell_id: str
    model_visible_call_id: str
    thread_id: str
    codex_turn_id: str
    source_item_id: str
    output_item_ids: list[str]
    runtime_cell_id: str | None
    execution: ExecutionWindow
    runtime_status: CodeCellRuntimeStatus
    initial_response_at_unix_ms: int | None
    initial_response_seq: int | None
    initial_response_status: CodeCellRuntimeStatus | None
    raw_initial_response_payload_id: str | None
    raw_result_payload_id: str | None
    yielded_at_unix_ms: int | None
    yielded_seq: int | None
    source_js: str
    nested_tool_call_ids: list[str]
    wait_tool_call_ids: list[str]


# --- tools and terminals ---


class ModelRequester(_Tagged, frozen=True, tag="model"):
    """The model asked for the tool call."""


class CodeCellRequester(_Tagged, frozen=True, tag="code_cell"):
    """A code cell asked for the tool call."""

    code_cell_id: str


ToolCallRequester: TypeAlias = ModelRequester | CodeCellRequester


class ToolCall(_Node, omit_defaults=True, kw_only=True):
    """One tool dispatch."""

    tool_call_id: str
    mcp_call_id: str | None
    model_visible_call_id: str | None
    code_mode_runtime_tool_id: str | None
    started_code_cell_id: str | None = None
    resolved_wait_runtime_cell_id: str | None = None
    """Schema 3: the runtime cell a wait call resolved to (``code_cell_wait_target_resolved``)."""
    thread_id: str
    started_by_codex_turn_id: str | None
    execution: ExecutionWindow
    requester: ToolCallRequester
    kind: ToolCallKind
    model_visible_call_item_ids: list[str]
    model_visible_output_item_ids: list[str]
    terminal_operation_id: str | None
    summary: ToolCallSummary
    raw_invocation_payload_id: str | None
    raw_result_payload_id: str | None
    raw_runtime_payload_ids: list[str]


class TerminalSession(_Node):
    """A terminal (process) that one or more operations used."""

    terminal_id: str
    thread_id: str
    created_by_operation_id: str
    operation_ids: list[str]
    execution: ExecutionWindow


class ExecCommandRequest(_Tagged, frozen=True, tag="exec_command", kw_only=True):
    """A command started in a terminal."""

    command: list[str]
    display_command: str
    cwd: str
    yield_time_ms: int | None
    max_output_tokens: int | None


class WriteStdinRequest(_Tagged, frozen=True, tag="write_stdin", kw_only=True):
    """Input written to a terminal."""

    stdin: str
    yield_time_ms: int | None
    max_output_tokens: int | None


TerminalRequest: TypeAlias = ExecCommandRequest | WriteStdinRequest


class TerminalResult(_Node):
    """What a terminal operation returned."""

    exit_code: int | None
    stdout: str
    stderr: str
    formatted_output: str | None
    original_token_count: int | None
    chunk_id: str | None


class TerminalModelObservation(_Node):
    """Where the model saw a terminal operation: its call and output items."""

    call_item_ids: list[str]
    output_item_ids: list[str]
    source: str


class TerminalOperation(_Node):
    """One exec_command or write_stdin on a terminal."""

    operation_id: str
    terminal_id: str | None
    tool_call_id: str
    kind: str
    execution: ExecutionWindow
    request: TerminalRequest
    result: TerminalResult | None
    model_observations: list[TerminalModelObservation]
    raw_payload_ids: list[str]


# --- compaction ---


class Compaction(_Node):
    """An installed compaction checkpoint."""

    compaction_id: str
    thread_id: str
    codex_turn_id: str
    installed_at_unix_ms: int
    marker_item_id: str
    request_ids: list[str]
    input_item_ids: list[str]
    replacement_item_ids: list[str]


class CompactionRequest(_Node):
    """One upstream compaction attempt."""

    compaction_request_id: str
    compaction_id: str
    thread_id: str
    codex_turn_id: str
    execution: ExecutionWindow
    model: str
    provider_name: str
    raw_request_payload_id: str
    raw_response_payload_id: str | None


# --- interaction edges ---


class ConversationItemAnchor(_Tagged, frozen=True, tag="conversation_item"):
    """An edge end at a conversation item."""

    item_id: str


class ToolCallAnchor(_Tagged, frozen=True, tag="tool_call"):
    """An edge end at a tool call."""

    tool_call_id: str


class ThreadAnchor(_Tagged, frozen=True, tag="thread"):
    """An edge end at a thread."""

    thread_id: str


TraceAnchor: TypeAlias = ConversationItemAnchor | ToolCallAnchor | ThreadAnchor


class InteractionEdge(_Node):
    """A link between threads: spawn, task, message, result or close."""

    edge_id: str
    kind: str
    source: TraceAnchor
    target: TraceAnchor
    started_at_unix_ms: int
    ended_at_unix_ms: int | None
    carried_item_ids: list[str]
    carried_raw_payload_ids: list[str]


# --- the whole trace ---


class RolloutTrace(_Node, kw_only=True):
    """A reduced rollout: Codex's ``RolloutTrace``, written as ``state.json``."""

    schema_version: int
    trace_id: str
    rollout_id: str
    started_at_unix_ms: int
    ended_at_unix_ms: int | None
    status: RolloutStatus
    recording_complete: bool | UnsetType = UNSET
    """Schema 2: ``recording_completed`` was recorded."""
    recording_status: RecordingStatus | UnsetType = UNSET
    """Schema 3: whether the recording ended, and whether every payload was kept whole."""
    root_thread_id: str
    threads: dict[str, AgentThread]
    codex_turns: dict[str, CodexTurn]
    conversation_items: dict[str, ConversationItem]
    inference_calls: dict[str, InferenceCall]
    code_cells: dict[str, CodeCell]
    tool_calls: dict[str, ToolCall]
    terminal_sessions: dict[str, TerminalSession]
    terminal_operations: dict[str, TerminalOperation]
    compactions: dict[str, Compaction]
    compaction_requests: dict[str, CompactionRequest]
    interaction_edges: dict[str, InteractionEdge]
    raw_payloads: dict[str, RawPayloadRef]
