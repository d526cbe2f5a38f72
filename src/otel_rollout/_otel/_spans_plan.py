"""Planning bundles from foreign GenAI spans: span records in, raw events and payload bodies out.

Pure: no disk, no writer, no clock. :func:`plan_rollouts` turns a trace's finished spans
(:class:`SpanRecord`, other conventions read as GenAI ones by
:mod:`~otel_rollout._otel._span_conventions`) into one :class:`RolloutPlan` per local root
span holding agent work, its events in bundle order (``docs/frameworks.md`` has the mapping):

* agent runs (``invoke_agent`` spans) become turns: one thread per agent identity
  (``gen_ai.conversation.id`` and agent name or id) under its parent thread, one turn per
  run; work belongs to its nearest agent run, through any spans in between;
* ``chat`` (and other inference) spans become inference attempts, their
  ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (when captured) and
  ``gen_ai.system_instructions`` the request and response;
* ``execute_tool`` spans become tool calls, their arguments exactly as given;
* an agent run inside another agent's tool call (an agent as a tool) is a child thread that
  call spawned, its answer sent back as an ``agent_result`` edge; a handoff
  (``agent_handoff``, a ``transfer_to_*`` call) spawns the target's thread from the handing-off
  agent's turn.

Other spans only give structure. Ids derive from the trace and span ids, so a trace
gives the same plan every time. :meth:`RolloutPlan.realize` builds the events once
their payloads are written (``_spans_only`` writes them to a bundle).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import msgspec
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from otel_rollout import semconv as sc
from otel_rollout._bundle import _bodies as bodies
from otel_rollout._bundle._messages import items_from_messages
from otel_rollout._bundle._models import (
    AgentResultObserved,
    AssignAgentTaskKind,
    CodexTurnEnded,
    CodexTurnStarted,
    ExecutionStatus,
    GenericSummary,
    HistoryItemAccepted,
    InferenceCompleted,
    InferenceFailed,
    InferenceStarted,
    ModelRequester,
    PayloadKind,
    RawPayloadRef,
    RawTraceEventPayload,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    SpawnAgentKind,
    ThreadEnded,
    ThreadStarted,
    ToolCallEnded,
    ToolCallRuntimeEnded,
    ToolCallStarted,
)
from otel_rollout._otel import _span_conventions as conventions
from otel_rollout._otel._mapping import uuid_from_trace_id

_INFERENCE_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_MAX_ANCESTORS = 10_000
"""Bound of a walk up the parent chain (a cycle of span ids must not hang the exporter)."""


class SpanRecord(msgspec.Struct, array_like=True):
    """What the planner needs of one finished span."""

    span_id: int
    parent_id: int
    """0 for a local root (no parent, or a remote one)."""
    name: str
    start_ns: int
    end_ns: int
    error: str | None
    """The error description when the span's status is ERROR."""
    attributes: dict[str, Any]
    """The attributes of the conventions the planner reads (sequences as lists;
    :data:`~otel_rollout._otel._span_conventions.KEPT_PREFIXES`)."""

    @property
    def operation(self) -> str | None:
        """``gen_ai.operation.name``, if any."""
        value = self.attributes.get(sc.GEN_AI_OPERATION_NAME)
        return value if isinstance(value, str) else None


def span_record(span: ReadableSpan) -> SpanRecord:
    """Keep what the planner needs of ``span``."""
    attributes = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in (span.attributes or {}).items()
        if key.startswith(conventions.KEPT_PREFIXES)
    }
    error = None
    if span.status.status_code is StatusCode.ERROR:
        error = span.status.description or str(attributes.get(sc.ERROR_TYPE) or "error")
    parent = span.parent
    return SpanRecord(
        span_id=span.context.span_id if span.context else 0,
        parent_id=parent.span_id if parent is not None and not parent.is_remote else 0,
        name=span.name,
        start_ns=span.start_time or 0,
        end_ns=span.end_time or span.start_time or 0,
        error=error,
        attributes=attributes,
    )


# --- the plan ---


@dataclass(frozen=True, slots=True)
class PlannedPayload:
    """A payload file to write before its event: its kind and JSON body."""

    kind: PayloadKind
    body: dict[str, Any]


PayloadWriter = Callable[[PayloadKind, Any, str | None], RawPayloadRef | None]
"""Writes a payload body (of the event's thread, given third); returns its ref, or
``None`` when it was not written."""


@dataclass(frozen=True, slots=True, eq=False)
class PlannedEvent:
    """One raw event of a plan, built once its payload (if any) is written."""

    time_ns: int
    """When it happened (the span's start or end), the event's wall time."""
    build: Callable[[RawPayloadRef | None], RawTraceEventPayload | None]
    """The event, given its payload's ref (``None``: no payload, or not written);
    ``None`` leaves the event out."""
    thread_id: str | None = None
    codex_turn_id: str | None = None
    payload: PlannedPayload | None = None
    after: PlannedEvent | None = None
    """An earlier event without which this one is left out (an inference's end needs its start)."""


@dataclass(frozen=True, slots=True)
class RolloutPlan:
    """One bundle to write: its manifest's ids and its events in order."""

    trace_id: str
    """The bundle's trace id (the OTel trace id as a UUID)."""
    root_thread_id: str
    started_at_unix_ms: int
    events: tuple[PlannedEvent, ...]
    without_content: int = 0
    """Inference spans that carried no message content (the content switch is off)."""

    def realize(
        self, write_payload: PayloadWriter
    ) -> Iterator[tuple[PlannedEvent, RawTraceEventPayload]]:
        """Yield each event in order, after writing its payload through ``write_payload``.

        Lazy: stop iterating and no later payload is written.
        """
        written: set[int] = set()
        for planned in self.events:
            if planned.after is not None and id(planned.after) not in written:
                continue
            payload = planned.payload
            ref = (
                write_payload(payload.kind, payload.body, planned.thread_id)
                if payload is not None
                else None
            )
            event = planned.build(ref)
            if event is None:
                continue
            written.add(id(planned))
            yield planned, event


def plan_rollouts(trace_id: int, records: list[SpanRecord]) -> Iterator[RolloutPlan]:
    """Plan one bundle per rollout of the trace ``trace_id``.

    A rollout is the agent work under one local root span; work under no agent at all,
    anywhere in the trace, makes one more rollout with a synthetic root thread. Spans
    with no agent work (a web request, a ``create_agent`` span) make none. Events follow
    the spans' times; events at the same instant keep the records' order.
    """
    structure = _Structure([_normalized(record) for record in records])
    for root, runs, work in structure.rollouts():
        yield _RolloutPlanner(trace_id, structure, root, runs, work).plan()


def conversation_of(records: list[SpanRecord]) -> str | None:
    """The conversation a trace's work joins: the one ``gen_ai.conversation.id`` its
    inference and tool spans carry, when it holds no agent run (``None``: no such id, more
    than one, or agent runs, whose threads the id already keys)."""
    found: set[str] = set()
    for record in records:
        attributes = conventions.to_genai(record.name, record.attributes) or record.attributes
        operation = attributes.get(sc.GEN_AI_OPERATION_NAME)
        if operation == sc.OPERATION_INVOKE_AGENT:
            return None
        conversation = attributes.get(sc.GEN_AI_CONVERSATION_ID)
        if operation in _WORK_OPERATIONS and isinstance(conversation, str) and conversation:
            found.add(conversation)
    return found.pop() if len(found) == 1 else None


def plan_conversation(trace_id: int, traces: list[list[SpanRecord]]) -> RolloutPlan | None:
    """Plan one bundle of a conversation's traces (oldest first), each holding work under no
    agent run (:func:`conversation_of`): one root thread, one turn per user message.

    A trace starts a new turn unless it only carries on the previous one: it has no
    inference (a tool call), or its first inference's input ends with tool results (the
    model called again with what its tools answered). ``trace_id`` (the first trace's) names
    the bundle; ``None`` when the traces hold agent runs or no work.
    """
    groups: list[list[SpanRecord]] = []
    for records in traces:
        normalized = [_normalized(record) for record in records]
        if not groups or _starts_turn(normalized):
            groups.append([])
        groups[-1].extend(normalized)
    structure = _Structure([record for group in groups for record in group])
    if structure.runs or not structure.work:
        return None
    turns = [[r for r in group if r.operation in _WORK_OPERATIONS] for group in groups]
    turns = [turn for turn in turns if turn]
    local_root = structure.by_id.get(structure.local_root(turns[0][0]))
    return _RolloutPlanner(trace_id, structure, local_root, [], structure.work, turns).plan()


def _starts_turn(records: list[SpanRecord]) -> bool:
    """Whether a trace of a conversation starts a turn (see :func:`plan_conversation`)."""
    inferences = [r for r in records if r.operation in _INFERENCE_OPERATIONS]
    if not inferences:
        return False
    first = min(inferences, key=lambda record: (record.start_ns, record.span_id))
    messages = conventions.genai_messages(first.attributes.get(sc.GEN_AI_INPUT_MESSAGES))
    return not messages or messages[-1]["role"] != "tool"


def _normalized(record: SpanRecord) -> SpanRecord:
    """``record`` with other conventions' attributes read as GenAI ones."""
    attributes = conventions.to_genai(record.name, record.attributes)
    return record if attributes is None else msgspec.structs.replace(record, attributes=attributes)


_WORK_OPERATIONS = _INFERENCE_OPERATIONS | {
    sc.OPERATION_EXECUTE_TOOL,
    conventions.OPERATION_HANDOFF,
}


class _Structure:
    """A trace's spans as agent runs and the work (inference, tool calls, handoffs) in them.

    Agent runs: ``invoke_agent`` spans (OpenInference ``AGENT``), and the span where a
    LangChain agent starts (its ``lc_agent_name`` differs from its parent's). Not runs: an
    agent span with no name around other agent spans (a framework's workflow span), an
    agent span inside a run of the same agent (one run reported twice), and an agent span
    with no work beside a run of the same agent that has it.
    """

    def __init__(self, records: list[SpanRecord]) -> None:
        self.by_id = {record.span_id: record for record in records}
        self.records = records
        candidates = {r.span_id: r for r in records if self._is_agent_span(r)}
        self.identity: dict[int, str | None] = {
            span_id: _agent_identity(record) for span_id, record in candidates.items()
        }
        nearest = {
            span_id: self._nearest(record, candidates) for span_id, record in candidates.items()
        }
        has_agent_inside = {parent for parent in nearest.values() if parent is not None}
        runs = {
            span_id: record
            for span_id, record in candidates.items()
            if self.identity[span_id] is not None or span_id not in has_agent_inside
        }
        for span_id in list(runs):  # one run reported twice: keep the outer span
            outer = self._nearest(runs[span_id], runs)
            if outer is not None and self.identity[outer] == self.identity[span_id]:
                del runs[span_id]
        self.work = [r for r in records if r.operation in _WORK_OPERATIONS]
        holders = {self._nearest(r, runs) for r in self.work}
        holders |= {self._nearest(r, runs) for r in runs.values()}
        for span_id, run in list(runs.items()):
            if span_id in holders:
                continue
            if any(
                other in holders
                and self.identity[other] == self.identity[span_id]
                and runs[other].start_ns <= run.end_ns
                and run.start_ns <= runs[other].end_ns
                for other in runs
                if other != span_id
            ):
                del runs[span_id]
        self.runs = runs

    def _is_agent_span(self, record: SpanRecord) -> bool:
        if record.operation == sc.OPERATION_INVOKE_AGENT:
            return True
        if record.operation in _WORK_OPERATIONS:
            return False
        agent = conventions.langchain_agent(record.attributes)
        if agent is None or agent not in (
            record.name,
            record.attributes.get("traceloop.entity.name"),
        ):
            return False
        parent = self.by_id.get(record.parent_id)
        return parent is None or conventions.langchain_agent(parent.attributes) != agent

    def ancestors(self, record: SpanRecord) -> Iterator[SpanRecord]:
        """``record``'s parent, its parent, and so on (bounded: a cycle cannot hang)."""
        current = self.by_id.get(record.parent_id)
        seen = 0
        while current is not None and seen < _MAX_ANCESTORS:
            yield current
            current = self.by_id.get(current.parent_id)
            seen += 1

    def _nearest(self, record: SpanRecord, among: dict[int, SpanRecord]) -> int | None:
        for ancestor in self.ancestors(record):
            if ancestor.span_id in among:
                return ancestor.span_id
        return None

    def run_of(self, record: SpanRecord) -> SpanRecord | None:
        """The agent run ``record`` belongs to (its nearest run ancestor), if any."""
        span_id = self._nearest(record, self.runs)
        return None if span_id is None else self.runs[span_id]

    def local_root(self, record: SpanRecord) -> int:
        """The span id of the topmost ancestor of ``record`` in the trace (itself at the top)."""
        top = record.span_id
        for ancestor in self.ancestors(record):
            top = ancestor.span_id
        return top

    def rollouts(self) -> Iterator[tuple[SpanRecord | None, list[SpanRecord], list[SpanRecord]]]:
        """Each rollout: its local root span (``None``: work under no run, trace-wide), its
        agent runs and its work, in the records' order."""
        groups: dict[int, tuple[list[SpanRecord], list[SpanRecord]]] = {}
        for run in self.runs.values():
            groups.setdefault(self.local_root(run), ([], []))[0].append(run)
        unowned: list[SpanRecord] = []
        for record in self.work:
            root = self.local_root(record)
            if root in groups:
                groups[root][1].append(record)
            else:
                unowned.append(record)
        for root, (runs, work) in groups.items():
            yield self.by_id.get(root), runs, work
        if unowned:
            roots = {self.local_root(record) for record in unowned}
            yield (self.by_id.get(roots.pop()) if len(roots) == 1 else None), [], unowned


def _agent_identity(record: SpanRecord) -> str | None:
    """An agent span's identity: conversation id and agent name (or id); ``None`` if unnamed."""
    name = _str(record, sc.GEN_AI_AGENT_NAME) or conventions.langchain_agent(record.attributes)
    name = name or _str(record, sc.GEN_AI_AGENT_ID)
    if not name:
        return None
    conversation = _str(record, sc.GEN_AI_CONVERSATION_ID)
    return f"{conversation}/{name}" if conversation else name


_OPENING = 0
_CLOSING = 1


@dataclass(eq=False)
class _Thread:
    """One thread of the rollout: an agent identity under its parent thread."""

    thread_id: str
    name: str
    agent_path: str
    depth: int
    parent: _Thread | None
    runs: list[SpanRecord] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Turn:
    thread: _Thread
    turn_id: str


class _RolloutPlanner:
    """Plans one rollout: events keyed by (time, opening before closing, nesting, order).

    At one instant, openings come before closings; outer spans open first and close last.
    """

    def __init__(
        self,
        trace_id: int,
        structure: _Structure,
        local_root: SpanRecord | None,
        runs: list[SpanRecord],
        work: list[SpanRecord],
        turns: list[list[SpanRecord]] | None = None,
    ) -> None:
        """``turns``: the work under no agent run in groups, one turn of the root each
        (default: one turn)."""
        self.trace_id = trace_id
        self.structure = structure
        self.work = work
        self.runs = sorted(runs, key=lambda record: (record.start_ns, record.span_id))
        self.owner = {record.span_id: structure.run_of(record) for record in work}
        orphans = [record for record in work if self.owner[record.span_id] is None]
        self.synthetic: SpanRecord | None = None
        """The synthetic root agent of work under no agent run (its first turn)."""
        self.synthetic_turns: list[SpanRecord] = []
        self.synthetic_of: dict[int, SpanRecord] = {}
        """Work under no agent run -> its synthetic turn."""
        if orphans or not self.runs:
            groups = turns or [orphans]
            for index, group in enumerate(groups):
                members = [*self.runs, *work] if len(groups) == 1 else group
                turn = SpanRecord(
                    span_id=0 if index == 0 else group[0].span_id,
                    parent_id=0,
                    name=_synthetic_name(local_root, work),
                    start_ns=min(record.start_ns for record in members),
                    end_ns=max(record.end_ns for record in members),
                    error=None,
                    attributes={sc.GEN_AI_OPERATION_NAME: sc.OPERATION_INVOKE_AGENT},
                )
                self.synthetic_turns.append(turn)
                self.synthetic_of.update((record.span_id, turn) for record in group)
            self.synthetic = self.synthetic_turns[0]
        self.turns: dict[int, _Turn] = {}
        self.threads: list[_Thread] = []
        self.spawns: dict[int, tuple[_Turn, SpanRecord]] = {}
        """Spawning call span id -> (the child's first turn, the call)."""
        self.tasks: dict[int, tuple[_Turn, SpanRecord]] = {}
        """A tool call that ran an agent whose thread it spawned before -> (the turn it ran)."""
        self._keyed: list[tuple[tuple[int, int, float, int], PlannedEvent]] = []
        self.without_content = 0
        self._assign_threads()

    # --- structure ---

    def _model(self, runs: list[SpanRecord]) -> tuple[str, str]:
        """The model and provider of a thread: its agent spans', else its first inference's."""
        span_ids = {run.span_id for run in runs}
        records = [*runs] + [
            record
            for record in self.work
            if record.operation in _INFERENCE_OPERATIONS
            and (self.owner[record.span_id] or self.synthetic or record).span_id in span_ids
        ]
        model = next(
            (
                m
                for r in records
                if (m := _str(r, sc.GEN_AI_REQUEST_MODEL, "gen_ai.response.model"))
            ),
            "",
        )
        provider = next(
            (p for r in records if (p := _str(r, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system"))), ""
        )
        return model, provider

    def _new_thread(self, run: SpanRecord, name: str, parent: _Thread | None) -> _Thread:
        slug = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name) or "agent"
        if parent is None:
            path = "/root"
        else:
            path = f"{parent.agent_path}/{slug}"
            taken = {thread.agent_path for thread in self.threads}
            suffix = 2
            while path in taken:
                path, suffix = f"{parent.agent_path}/{slug}_{suffix}", suffix + 1
        thread = _Thread(
            thread_id=_span_uuid(self.trace_id, run.span_id),
            name=name,
            agent_path=path,
            depth=0 if parent is None else parent.depth + 1,
            parent=parent,
        )
        self.threads.append(thread)
        return thread

    def _assign_threads(self) -> None:
        """One thread per agent identity under its parent thread, one turn per run."""
        by_key: dict[tuple[str, str], _Thread] = {}
        root_run = self.synthetic or self.runs[0]
        root_identity = (
            None if self.synthetic else self.structure.identity[root_run.span_id] or "agent"
        )
        root_name = root_run.name if self.synthetic else _agent_name(root_run)
        root = self._new_thread(root_run, root_name, None)
        for synthetic_turn in self.synthetic_turns:
            self._add_turn(root, synthetic_turn)
        handoffs = sorted(
            (
                r
                for r in self.work
                if r.operation == conventions.OPERATION_HANDOFF or _is_transfer(r)
            ),
            key=lambda record: (record.start_ns, record.span_id),
        )
        for run in self.runs:
            identity = self.structure.identity[run.span_id] or "agent"
            outer = self.structure.run_of(run)
            outer_turn = None if outer is None else self.turns.get(outer.span_id)
            spawned_by: SpanRecord | None = None
            if outer is not None and outer_turn is not None:
                parent = outer_turn.thread
                spawned_by = self._calling_tool(run, outer)
            elif self.synthetic is None and identity == root_identity:
                self._add_turn(root, run)
                continue
            else:
                parent = root
                handoff = self._handoff_to(run, handoffs)
                if handoff is not None:
                    spawned_by = handoff
                    parent = self.turns[handoff.span_id].thread
            key = (parent.thread_id, identity)
            thread = by_key.get(key)
            if thread is None or thread.runs[-1].end_ns > run.start_ns:
                thread = self._new_thread(run, _agent_name(run), parent)
                by_key[key] = thread
                if spawned_by is not None:
                    self.spawns[spawned_by.span_id] = (self._add_turn(thread, run), spawned_by)
                    continue
            elif spawned_by is not None and spawned_by.operation == sc.OPERATION_EXECUTE_TOOL:
                self.tasks[spawned_by.span_id] = (self._add_turn(thread, run), spawned_by)
                continue
            self._add_turn(thread, run)
        for record in self.work:
            owner = self.owner[record.span_id] or self.synthetic_of[record.span_id]
            self.turns[record.span_id] = self.turns[owner.span_id]

    def _add_turn(self, thread: _Thread, run: SpanRecord) -> _Turn:
        thread.runs.append(run)
        turn = _Turn(thread, f"turn-{_span_uuid(self.trace_id, run.span_id)}")
        self.turns[run.span_id] = turn
        for record in self.work:  # the turn of the work inside it, before nested runs
            if self.owner[record.span_id] is run:
                self.turns[record.span_id] = turn
        return turn

    def _calling_tool(self, run: SpanRecord, outer: SpanRecord) -> SpanRecord | None:
        """The tool call of ``outer``'s agent that ``run`` ran inside (an agent as a tool)."""
        for ancestor in self.structure.ancestors(run):
            if ancestor.span_id == outer.span_id:
                return None
            if ancestor.operation == sc.OPERATION_EXECUTE_TOOL:
                taken = ancestor.span_id in self.spawns or ancestor.span_id in self.tasks
                return None if taken else ancestor
        return None

    def _handoff_to(self, run: SpanRecord, handoffs: list[SpanRecord]) -> SpanRecord | None:
        """The latest handoff to ``run``'s agent before it started, not yet taken."""
        name = _agent_name(run)
        slug = _slug(name)
        found = None
        for handoff in handoffs:
            if handoff.start_ns > run.start_ns or handoff.span_id in self.spawns:
                continue
            if handoff.span_id not in self.turns:
                continue  # its own agent's turn is not planned yet
            target = _str(handoff, conventions.HANDOFF_TO)
            if target == name or (not target and _transfer_target(handoff) == slug):
                found = handoff
        return found

    # --- events ---

    def plan(self) -> RolloutPlan:
        """The rollout's plan."""
        root = self.threads[0]
        last = root.runs[-1]
        trace_uuid = uuid_from_trace_id(self.trace_id)
        start_ns = min(thread.runs[0].start_ns for thread in self.threads)
        end_ns = max(
            [run.end_ns for thread in self.threads for run in thread.runs]
            + [record.end_ns for record in self.work]
        )
        started = RolloutStarted(trace_id=trace_uuid, root_thread_id=root.thread_id)
        self._add(_OPENING, -1, PlannedEvent(start_ns, lambda _: started))
        for thread in self.threads:
            self._plan_thread(thread)
        seen_calls: set[str] = set()
        calls = _ModelCalls()
        for record in sorted(self.work, key=lambda r: (r.start_ns, r.span_id)):
            turn = self.turns[record.span_id]
            if record.operation in _INFERENCE_OPERATIONS:
                self._plan_inference(record, turn, calls)
            elif record.span_id in self.spawns:
                self._plan_spawn(record, turn, seen_calls, calls)
            elif record.span_id in self.tasks:
                self._plan_task(record, turn, seen_calls, calls)
            else:
                self._plan_tool(record, turn, seen_calls, calls)
        ended = RolloutEnded(status=RolloutStatus.FAILED if last.error else RolloutStatus.COMPLETED)
        self._add(_CLOSING, 1, PlannedEvent(end_ns, lambda _: ended))
        completed = RecordingCompleted()
        self._add(_CLOSING, 2, PlannedEvent(end_ns, lambda _: completed))
        self._keyed.sort(key=lambda keyed: keyed[0])
        return RolloutPlan(
            trace_id=trace_uuid,
            root_thread_id=root.thread_id,
            started_at_unix_ms=start_ns // 1_000_000,
            events=tuple(planned for _, planned in self._keyed),
            without_content=self.without_content,
        )

    def _add(self, phase: int, depth: float, planned: PlannedEvent) -> None:
        """Plan ``planned`` (``depth``: its order among the events of its instant and phase)."""
        self._keyed.append(((planned.time_ns, phase, depth, len(self._keyed)), planned))

    def _plan_thread(self, thread: _Thread) -> None:
        thread_id, depth, parent = thread.thread_id, thread.depth, thread.parent
        model, provider = self._model(thread.runs)
        metadata = bodies.ThreadStartedTraceMetadata(
            thread_id=thread_id,
            agent_path=thread.agent_path,
            nickname=thread.name,
            cwd="",
            model=model,
            provider_name=provider,
        ).to_payload(None if parent is None else parent.thread_id, depth)
        first, last = thread.runs[0], thread.runs[-1]
        self._add(
            _OPENING,
            depth,
            PlannedEvent(
                first.start_ns,
                lambda ref: ThreadStarted(
                    thread_id=thread_id, agent_path=thread.agent_path, metadata_payload=ref
                ),
                payload=PlannedPayload(PayloadKind.SESSION_METADATA, metadata),
            ),
        )
        for run in thread.runs:
            turn_id = self.turns[run.span_id].turn_id
            turn_started = CodexTurnStarted(codex_turn_id=turn_id, thread_id=thread_id)
            self._add(
                _OPENING,
                depth + 0.5,
                PlannedEvent(run.start_ns, _const(turn_started), thread_id, turn_id),
            )
            turn_status = ExecutionStatus.FAILED if run.error else ExecutionStatus.COMPLETED
            turn_ended = CodexTurnEnded(codex_turn_id=turn_id, status=turn_status)
            self._add(
                _CLOSING,
                -(depth + 0.5),
                PlannedEvent(run.end_ns, _const(turn_ended), thread_id, turn_id),
            )
        status = RolloutStatus.FAILED if last.error else RolloutStatus.COMPLETED
        thread_ended = ThreadEnded(thread_id=thread_id, status=status)
        self._add(_CLOSING, -depth, PlannedEvent(last.end_ns, lambda _: thread_ended))

    def _plan_inference(self, record: SpanRecord, turn: _Turn, calls: _ModelCalls) -> None:
        thread_id, turn_id, depth = turn.thread.thread_id, turn.turn_id, turn.thread.depth + 1
        call_id = _span_uuid(self.trace_id, record.span_id)
        model = _str(record, sc.GEN_AI_REQUEST_MODEL, "gen_ai.response.model", default="unknown")
        provider = _str(record, sc.GEN_AI_PROVIDER_NAME, "gen_ai.system", default="unknown")
        input_items = _response_items(record, sc.GEN_AI_INPUT_MESSAGES, "gen_ai.prompt")
        if not input_items:
            self.without_content += 1
        request = _inference_request_body(
            model,
            input_items,
            conventions.instructions_text(record.attributes.get(sc.GEN_AI_SYSTEM_INSTRUCTIONS)),
        )

        def started(ref: RawPayloadRef | None) -> InferenceStarted | None:
            if ref is None:
                return None  # no request, no attempt (and no end for it)
            return InferenceStarted(
                inference_call_id=call_id,
                thread_id=thread_id,
                codex_turn_id=turn_id,
                model=model,
                provider_name=provider,
                request_payload=ref,
            )

        start = PlannedEvent(
            record.start_ns,
            started,
            thread_id,
            turn_id,
            PlannedPayload(PayloadKind.INFERENCE_REQUEST, request),
        )
        self._add(_OPENING, depth, start)
        if record.error is not None:
            failed = InferenceFailed(inference_call_id=call_id, error=record.error)
            end = PlannedEvent(record.end_ns, lambda _: failed, thread_id, turn_id, after=start)
            self._add(_CLOSING, -depth, end)
            return
        response_id = _str(record, sc.GEN_AI_RESPONSE_ID, default=f"resp_{call_id}")
        output_items = _response_items(record, sc.GEN_AI_OUTPUT_MESSAGES, "gen_ai.completion")
        calls.add(turn.turn_id, output_items)
        response = bodies.inference_response(
            response_id,
            None,
            _token_usage(
                _int(record, sc.GEN_AI_USAGE_INPUT_TOKENS),
                _int(record, sc.GEN_AI_USAGE_OUTPUT_TOKENS),
            ),
            output_items,
        )

        def completed(ref: RawPayloadRef | None) -> InferenceCompleted | InferenceFailed:
            if ref is None:
                return InferenceFailed(inference_call_id=call_id, error="response lost")
            return InferenceCompleted(
                inference_call_id=call_id, response_id=response_id, response_payload=ref
            )

        end = PlannedEvent(
            record.end_ns,
            completed,
            thread_id,
            turn_id,
            PlannedPayload(PayloadKind.INFERENCE_RESPONSE, response),
            after=start,
        )
        self._add(_CLOSING, -depth, end)

    def _tool_call(
        self, record: SpanRecord, turn: _Turn, seen_calls: set[str], calls: _ModelCalls
    ) -> tuple[str, str | None, str, str]:
        """A tool span's name, model-visible call id, call id and exact arguments: what the
        span says, completed from the model's call of that tool in the same turn."""
        if record.operation == conventions.OPERATION_HANDOFF:
            target = _str(record, conventions.HANDOFF_TO)
            name = f"transfer_to_{_slug(target)}" if target else "transfer"
        else:
            name = _tool_name(record)
        visible = _str(record, sc.GEN_AI_TOOL_CALL_ID) or None
        arguments = record.attributes.get(sc.GEN_AI_TOOL_CALL_ARGUMENTS)
        called = calls.take(turn.turn_id, name, visible)
        if called is not None:
            visible = visible or called[0]
            if not _is_json_object(arguments):
                arguments = called[1]
        if visible in seen_calls:
            visible = None  # a second span with the same call id: keep the first one visible
        if visible is not None:
            seen_calls.add(visible)
        tool_call_id = visible or _span_uuid(self.trace_id, record.span_id)
        text = "" if arguments is None else bodies.arguments_text(arguments)
        return name, visible, tool_call_id, text

    def _tool_started(
        self,
        record: SpanRecord,
        turn: _Turn,
        name: str,
        visible: str | None,
        tool_call_id: str,
        arguments: str,
        kind: Any,
    ) -> None:
        invocation = bodies.tool_invocation(name, None, arguments)
        self._add(
            _OPENING,
            turn.thread.depth + 1,
            PlannedEvent(
                record.start_ns,
                lambda ref: ToolCallStarted(
                    tool_call_id=tool_call_id,
                    model_visible_call_id=visible,
                    requester=ModelRequester(),
                    kind=kind,
                    summary=GenericSummary(label=name),
                    invocation_payload=ref,
                ),
                turn.thread.thread_id,
                turn.turn_id,
                PlannedPayload(PayloadKind.TOOL_INVOCATION, invocation),
            ),
        )

    def _tool_ended(self, record: SpanRecord, turn: _Turn, tool_call_id: str, output: str) -> None:
        if record.error is not None:
            result = bodies.tool_error(record.error)
            status = ExecutionStatus.FAILED
        else:
            result = bodies.tool_output(tool_call_id, output)
            status = ExecutionStatus.COMPLETED
        self._add(
            _CLOSING,
            -(turn.thread.depth + 1),
            PlannedEvent(
                record.end_ns,
                lambda ref: ToolCallEnded(
                    tool_call_id=tool_call_id, status=status, result_payload=ref
                ),
                turn.thread.thread_id,
                turn.turn_id,
                PlannedPayload(PayloadKind.TOOL_RESULT, result),
            ),
        )

    def _plan_tool(
        self, record: SpanRecord, turn: _Turn, seen_calls: set[str], calls: _ModelCalls
    ) -> None:
        name, visible, tool_call_id, arguments = self._tool_call(record, turn, seen_calls, calls)
        self._tool_started(
            record, turn, name, visible, tool_call_id, arguments, bodies.tool_call_kind(name)
        )
        self._tool_ended(record, turn, tool_call_id, _result_text(record))

    def _plan_spawn(
        self, record: SpanRecord, turn: _Turn, seen_calls: set[str], calls: _ModelCalls
    ) -> None:
        """A tool call that ran an agent, or a handoff: Codex's ``spawn_agent`` shape.

        The call spawns the child thread (``tool_call_runtime_ended`` with the spawn's end:
        the reducer's spawn edge). An agent run as a tool also sends its answer back: an
        ``agent_result`` edge from the child's turn to the inter-agent message that
        delivers it into the caller's history.
        """
        child_turn, _ = self.spawns[record.span_id]
        child, parent = child_turn.thread, turn.thread
        name, visible, tool_call_id, arguments = self._tool_call(record, turn, seen_calls, calls)
        self._tool_started(record, turn, name, visible, tool_call_id, arguments, SpawnAgentKind())
        child_run = child.runs[0]
        handoff = record.operation != sc.OPERATION_EXECUTE_TOOL
        spawned_ns = record.end_ns if handoff else child_run.start_ns
        model, _ = self._model(child.runs)
        spawn_end = {
            "call_id": tool_call_id,
            "sender_thread_id": parent.thread_id,
            "new_thread_id": child.thread_id,
            "new_agent_nickname": child.name,
            "new_agent_role": None,
            "prompt": arguments,
            "model": model,
            "reasoning_effort": "medium",
            "status": "pending_init",
            "completed_at_ms": spawned_ns // 1_000_000,
        }
        self._add(
            _OPENING if not handoff else _CLOSING,
            child.depth + 0.75 if not handoff else -(parent.depth + 1.5),
            _runtime_ended(spawned_ns, tool_call_id, parent.thread_id, turn.turn_id, spawn_end),
        )
        output = _result_text(record)
        if handoff:
            self._tool_ended(
                record, turn, tool_call_id, output or json.dumps({"assistant": child.name})
            )
            return
        self._tool_ended(record, turn, tool_call_id, output)
        self._plan_result(record, turn, child_turn, output)

    def _plan_task(
        self, record: SpanRecord, turn: _Turn, seen_calls: set[str], calls: _ModelCalls
    ) -> None:
        """A tool call that ran an agent again, in the thread its first call spawned: Codex's
        ``assign_agent_task`` shape. The task (the call's arguments) is delivered into the
        child's new turn as an inter-agent message (the reducer's edge from the call to it);
        the answer comes back as in a spawn."""
        child_turn, _ = self.tasks[record.span_id]
        child, parent = child_turn.thread, turn.thread
        child_run = next(run for run in child.runs if self.turns[run.span_id] is child_turn)
        name, visible, tool_call_id, arguments = self._tool_call(record, turn, seen_calls, calls)
        kind = AssignAgentTaskKind()
        self._tool_started(record, turn, name, visible, tool_call_id, arguments, kind)
        item_id = f"amsg_task_{_span_uuid(self.trace_id, record.span_id)}"
        task = bodies.agent_message_item(
            parent.agent_path, child.agent_path, arguments, item_id=item_id
        )
        self._add(
            _OPENING,
            child.depth + 0.6,
            _message_accepted(
                child_run.start_ns, item_id, child.thread_id, child_turn.turn_id, task
            ),
        )
        task_end = {
            "call_id": tool_call_id,
            "sender_thread_id": parent.thread_id,
            "receiver_thread_id": child.thread_id,
            "prompt": arguments,
            "receiver_agent_nickname": child.name,
            "receiver_agent_role": None,
            "status": "running",
            "completed_at_ms": child_run.start_ns // 1_000_000,
        }
        self._add(
            _OPENING,
            child.depth + 0.75,
            _runtime_ended(
                child_run.start_ns, tool_call_id, parent.thread_id, turn.turn_id, task_end
            ),
        )
        output = _result_text(record)
        self._tool_ended(record, turn, tool_call_id, output)
        self._plan_result(record, turn, child_turn, output)

    def _plan_result(self, record: SpanRecord, turn: _Turn, child_turn: _Turn, output: str) -> None:
        """An agent run as a tool sends its answer back: an ``agent_result`` edge from its
        turn to the inter-agent message delivering it into the caller's history."""
        child, parent = child_turn.thread, turn.thread
        child_run = next(run for run in child.runs if self.turns[run.span_id] is child_turn)
        if record.error is not None or child_run.error is not None:
            return
        edge = f"edge:agent_result:{child.thread_id}:{child_turn.turn_id}:{parent.thread_id}"
        result = AgentResultObserved(
            edge_id=edge,
            child_thread_id=child.thread_id,
            child_codex_turn_id=child_turn.turn_id,
            parent_thread_id=parent.thread_id,
            message=output,
        )
        self._add(
            _CLOSING,
            -(child.depth + 0.75),
            PlannedEvent(child_run.end_ns, lambda _: result, child.thread_id, child_turn.turn_id),
        )
        item_id = f"amsg_{_span_uuid(self.trace_id, record.span_id)}"
        delivered = bodies.agent_message_item(
            child.agent_path, parent.agent_path, output, item_id=item_id
        )
        self._add(
            _CLOSING,
            -(parent.depth + 0.75),
            _message_accepted(record.end_ns, item_id, parent.thread_id, turn.turn_id, delivered),
        )


class _ModelCalls:
    """The tool calls each turn's model responses asked for, to complete the tool spans
    (their call ids, and arguments exactly as the model wrote them)."""

    def __init__(self) -> None:
        self._calls: dict[str, list[tuple[str, str, str]]] = {}

    def add(self, turn_id: str, output_items: list[dict[str, Any]]) -> None:
        for item in output_items:
            if item.get("type") == "function_call":
                self._calls.setdefault(turn_id, []).append(
                    (str(item.get("call_id")), str(item.get("name")), str(item.get("arguments")))
                )

    def take(self, turn_id: str, name: str, call_id: str | None) -> tuple[str, str] | None:
        """The first call of ``name`` (with ``call_id``, if given) not yet taken."""
        calls = self._calls.get(turn_id, [])
        for index, (found_id, found_name, arguments) in enumerate(calls):
            if found_name == name and call_id in (None, found_id):
                del calls[index]
                return found_id, arguments
        return None


def _const(
    event: RawTraceEventPayload,
) -> Callable[[RawPayloadRef | None], RawTraceEventPayload | None]:
    """An event that needs no payload."""
    return lambda _: event


def _agent_name(run: SpanRecord) -> str:
    return (
        _str(run, sc.GEN_AI_AGENT_NAME)
        or conventions.langchain_agent(run.attributes)
        or _str(run, sc.GEN_AI_AGENT_ID, default="agent")
    )


def _synthetic_name(local_root: SpanRecord | None, work: list[SpanRecord]) -> str:
    """A root thread's name when no agent span says it: the local root span's name (the app's
    span around the work), else the model."""
    if local_root is not None and local_root.operation is None:
        return local_root.name
    for record in work:
        model = _str(record, sc.GEN_AI_REQUEST_MODEL)
        if model:
            return model
    return "agent"


def _slug(name: str) -> str:
    return "".join(ch.lower() if ch.isalnum() else "_" for ch in name)


def _tool_name(record: SpanRecord) -> str:
    """A tool span's tool name: ``gen_ai.tool.name``, else its span name's."""
    return _str(record, sc.GEN_AI_TOOL_NAME, default=record.name.removeprefix("execute_tool "))


def _is_transfer(record: SpanRecord) -> bool:
    return record.operation == sc.OPERATION_EXECUTE_TOOL and _tool_name(record).startswith(
        "transfer_to_"
    )


def _transfer_target(record: SpanRecord) -> str:
    return _tool_name(record).removeprefix("transfer_to_")


def _is_json_object(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    if not isinstance(value, str) or not value.startswith("{"):
        return False
    try:
        return isinstance(json.loads(value), dict)
    except ValueError:
        return False


def _result_text(record: SpanRecord) -> str:
    result = record.attributes.get(sc.GEN_AI_TOOL_CALL_RESULT)
    return "" if result is None else bodies.arguments_text(result)


# --- span attributes ---


def _span_uuid(trace_id: int, span_id: int) -> str:
    """A UUID derived from a span's ids (thread, inference and tool call ids)."""
    digest = hashlib.sha256(f"{trace_id:032x}/{span_id:016x}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _str(record: SpanRecord, *keys: str, default: str = "") -> str:
    """The first non-empty string attribute among ``keys``."""
    for key in keys:
        value = record.attributes.get(key)
        if isinstance(value, str) and value:
            return value
    return default


def _int(record: SpanRecord, key: str) -> int | None:
    value = record.attributes.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _response_items(record: SpanRecord, key: str, legacy: str) -> list[dict[str, Any]]:
    """Responses API items from ``gen_ai.*.messages`` (JSON) or legacy indexed attributes."""
    messages = conventions.genai_messages(record.attributes.get(key))
    if not messages:
        index = 0
        while f"{legacy}.{index}.content" in record.attributes:
            content = record.attributes[f"{legacy}.{index}.content"]
            role = record.attributes.get(f"{legacy}.{index}.role", "user")
            messages.append({"role": role, "parts": [{"type": "text", "content": str(content)}]})
            index += 1
    return items_from_messages(messages)


# --- Codex payload bodies and Responses API items (to share with the recording API) ---


def _inference_request_body(
    model: str, input_items: list[dict[str, Any]], instructions: str | None
) -> dict[str, Any]:
    """An ``inference_request`` payload (a Responses API request)."""
    if instructions is None:
        return {"model": model, "input": input_items}
    return {"model": model, "instructions": instructions, "input": input_items}


def _token_usage(input_tokens: int | None, output_tokens: int | None) -> dict[str, int] | None:
    """Codex's token usage from the GenAI usage attributes (``None`` when neither is known)."""
    if input_tokens is None and output_tokens is None:
        return None
    return {
        "input_tokens": input_tokens or 0,
        "cached_input_tokens": 0,
        "output_tokens": output_tokens or 0,
        "reasoning_output_tokens": 0,
        "total_tokens": (input_tokens or 0) + (output_tokens or 0),
    }


def _runtime_ended(
    time_ns: int, tool_call_id: str, thread_id: str, turn_id: str, body: dict[str, Any]
) -> PlannedEvent:
    """The completed runtime end of a multi-agent tool call (a spawn's or a task's), carrying
    ``body``; no event when its payload could not be written."""
    return PlannedEvent(
        time_ns,
        lambda ref: (
            None
            if ref is None
            else ToolCallRuntimeEnded(
                tool_call_id=tool_call_id, status=ExecutionStatus.COMPLETED, runtime_payload=ref
            )
        ),
        thread_id,
        turn_id,
        PlannedPayload(PayloadKind.TOOL_RUNTIME_EVENT, body),
    )


def _message_accepted(
    time_ns: int, item_id: str, thread_id: str, turn_id: str, body: dict[str, Any]
) -> PlannedEvent:
    """An inter-agent message (``body``) accepted into a thread's history: a task delivered
    to a child, or a child's answer delivered back."""
    return PlannedEvent(
        time_ns,
        lambda ref: HistoryItemAccepted(item_id=item_id, agent_message_payload=ref),
        thread_id,
        turn_id,
        PlannedPayload(PayloadKind.PROTOCOL_EVENT, body),
    )
