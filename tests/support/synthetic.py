"""Deterministic generator of synthetic, valid Codex rollout bundles (tests and benchmarks).

:func:`generate_bundle` simulates a Codex session from a seed and writes it with
:class:`~otel_rollout._writer.BundleWriter`: a root thread and child agents
(spawn_agent, followup_task, send_message, wait_agent, close_agent and their
agent_result deliveries), turns of inference round trips with retries, failures and
cancellations (with and without partial responses), parallel tool calls,
exec_command/write_stdin terminals, MCP calls, apply_patch, code-mode cells with
nested tools and yielded cells resumed by ``wait``, remote and local compactions,
history acceptance, protocol events, thread resumption, and crashed rollouts (cut
short, optionally with a torn last line). Payload bodies have the shapes Codex
0.169.0 writes. Threads run as interleaved actors, so events of different threads
mix as they do in a real multi-agent run. The same seed and options always give the
same bytes.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from otel_rollout._bundle._models import (
    RAW_EVENT_LOG_FILE_NAME,
    AgentResultObserved,
    ApplyPatchKind,
    AssignAgentTaskKind,
    CloseAgentKind,
    CodeCellEnded,
    CodeCellInitialResponse,
    CodeCellRequester,
    CodeCellRuntimeStatus,
    CodeCellStarted,
    CodeCellWaitTargetResolved,
    CodexTurnEnded,
    CodexTurnStarted,
    CompactionInstalled,
    CompactionRequestCompleted,
    CompactionRequestFailed,
    CompactionRequestStarted,
    ExecCommandKind,
    ExecutionStatus,
    GenericSummary,
    HistoryItemAccepted,
    InferenceCancelled,
    InferenceCompleted,
    InferenceFailed,
    InferenceStarted,
    McpKind,
    McpToolCallCorrelationAssigned,
    ModelRequester,
    OtherKind,
    PayloadKind,
    ProtocolEventObserved,
    RawPayloadRef,
    RawToolCallRequester,
    RawTraceEventPayload,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    SendMessageKind,
    SpawnAgentKind,
    StdinTargetResolved,
    ThreadEnded,
    ThreadResumed,
    ThreadStarted,
    ToolCallEnded,
    ToolCallKind,
    ToolCallRuntimeEnded,
    ToolCallRuntimeStarted,
    ToolCallStarted,
    WaitAgentKind,
    WriteStdinKind,
)
from otel_rollout._bundle._payloads import DEFAULT_SEAL_BYTES
from otel_rollout._bundle._writer import BundleWriter

__all__ = ["SyntheticOptions", "generate_bundle"]

Json = dict[str, Any]
Wait = Callable[[], bool]
"""A condition an actor waits for before it runs again."""
Actor = Generator["Wait | None", None, None]
"""A simulated thread: yields after each step, or a condition to wait for."""

_EPOCH_MS = 1_795_000_000_000
_OUTPUT_TYPES = frozenset({"function_call_output", "custom_tool_call_output"})
_MODELS = ("gpt-test", "gpt-5.5-codex", "o4-mini")
_PROVIDERS = ("fake", "OpenAI", "azure")
_WORDS = (
    "alpha beta gamma delta epsilon zeta theta kappa lambda sigma omega tests build fix "
    "parser reducer writer bundle thread turn tool patch cache index query schema naïve "
    "résumé 数据 ключ café ünïcode"
).split()
_BASE_TEXT = (
    "You are a coding agent running in a synthetic harness. Be precise, safe and helpful.\n"
    + "\n".join(f"- rule {n}: keep changes focused and tested." for n in range(24))
)


@dataclass(frozen=True)
class SyntheticOptions:
    """Shape of a generated rollout; ``None`` fields are drawn from the seed.

    Attributes:
        turns: Turns of the root thread (user prompts).
        steps_per_turn: Most model round trips in one turn (a turn ends earlier when
            the model answers without tools).
        tools_per_step: Most parallel tool calls in one model response.
        children: Most child agents the root spawns.
        compact_above: Compact a thread's history once it holds more items than this.
        final_chance: Chance that the model answers without tools at a step after the
            first (so turns average about ``1 / final_chance`` steps).
        incremental_chance: Chance that a thread sends incremental requests (only the
            items after the last response, with its ``previous_response_id``).
        crash: Cut the bundle short, as a crashed process leaves it (no rollout_ended).
        torn_tail: With ``crash``, leave half of the next line after the last newline.
        every_feature: Make every feature appear (used by the oracle test).
        schema_version: 2 (Codex 0.169.0's format) or 3 (0.171.0's: zstd shards, a prepared
            prompt per inference, accepted tool outputs with their payload, wait targets).
    """

    turns: int | None = None
    steps_per_turn: int | None = None
    tools_per_step: int | None = None
    children: int | None = None
    compact_above: int | None = None
    final_chance: float = 0.3
    incremental_chance: float = 0.3
    crash: bool | None = None
    torn_tail: bool | None = None
    every_feature: bool = False
    schema_version: int = 2


def generate_bundle(root: str | Path, seed: int, options: SyntheticOptions | None = None) -> Path:
    """Write one synthetic rollout bundle under ``root`` and return its directory.

    The result is a function of ``seed`` and ``options`` only: ids, clock and bodies
    come from a seeded generator.
    """
    return _Generator(Path(root), seed, options or SyntheticOptions()).run()


# --- simulated state ---


@dataclass
class _Thread:
    """One simulated agent thread and what its model sees."""

    thread_id: str
    agent_path: str
    parent: _Thread | None
    task_name: str | None = None
    nickname: str | None = None
    model: str = "gpt-test"
    history: list[Json] = field(default_factory=list)
    base: Json = field(default_factory=dict)
    has_context: bool = False
    inbox: list[tuple[Json, bool]] = field(default_factory=list)
    busy: bool = False
    closed: bool = False
    ended: bool = False
    turns_run: int = 0
    sessions: dict[int, tuple[str, Json]] = field(default_factory=dict)
    yielded_cells: list[str] = field(default_factory=list)
    agent_role: str | None = None
    kids: list[_Thread] = field(default_factory=list)
    depth: int = 0
    incremental: bool = False
    last_response: tuple[str, int] | None = None
    """(response id, history items its request and output covered), for incremental requests."""
    next_cell: int = 1
    next_runtime_tool: int = 1


@dataclass
class _Turn:
    """The turn a step runs in."""

    thread: _Thread
    turn_id: str
    status: ExecutionStatus = ExecutionStatus.COMPLETED
    last_message: str | None = None
    ended: bool = False


@dataclass
class _Call:
    """A model-requested tool call planned for one response."""

    tool: str
    item: Json
    call_id: str
    arguments: Json = field(default_factory=dict)
    target: _Thread | None = None
    session: int | None = None
    cell: str | None = None
    started: bool = False
    ended: bool = False


class _Generator:
    """Runs the simulation and writes the bundle."""

    def __init__(self, root: Path, seed: int, options: SyntheticOptions) -> None:
        self.rng = random.Random(seed)
        rng = self.rng
        every = options.every_feature
        self.every = every
        drawn = (
            (4, 5, 4, 2, 1000)
            if every
            else (
                rng.randint(1, 5),
                rng.randint(1, 6),
                rng.randint(1, 4),
                rng.choice((0, 0, 1, 2, 3)),
                rng.choice((12, 24, 40, 1000)),
            )
        )
        self.turns = _pick(options.turns, drawn[0])
        self.steps = _pick(options.steps_per_turn, drawn[1])
        self.tools_per_step = _pick(options.tools_per_step, drawn[2])
        self.max_children = _pick(options.children, drawn[3])
        self.compact_above = _pick(options.compact_above, drawn[4])
        self.final_chance = options.final_chance
        self.incremental_chance = options.incremental_chance
        self.crash = options.crash if options.crash is not None else rng.random() < 0.12
        self.torn = options.torn_tail if options.torn_tail is not None else rng.random() < 0.5
        self.now = _EPOCH_MS + rng.randrange(10**9)
        self.provider = rng.choice(_PROVIDERS)
        self.cwd = f"/home/user/work/{self._word()}"
        self.root_thread = self._new_thread("/root", None)
        # Schema 3 draws a shard size (so bundles have several shards); schema 2 bundles
        # stay what they were for the same seed.
        seal_bytes = (
            rng.choice((512, 4096, 1 << 20)) if options.schema_version == 3 else DEFAULT_SEAL_BYTES
        )
        self.writer = BundleWriter.create(
            root,
            root_thread_id=self.root_thread.thread_id,
            trace_id=self._uuid(),
            started_at_unix_ms=self.now,
            schema_version=options.schema_version,
            seal_bytes=seal_bytes,
        )
        self.schema_3 = options.schema_version == 3
        self.actors: list[list[Any]] = []
        self.children: list[_Thread] = []
        self.shutting_down = False
        self.counter = 0
        self.compaction_requests = 0
        self._pending_partial: tuple[_Turn, list[Json]] | None = None
        self.last_agent_text: str | None = None
        self.prepared: RawPayloadRef | None = None

    # --- ids, clock, text ---

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _next(self) -> int:
        self.counter += 1
        return self.counter

    def _word(self) -> str:
        return self.rng.choice(_WORDS)

    def _text(self, low: int = 3, high: int = 14) -> str:
        return " ".join(self._word() for _ in range(self.rng.randint(low, high)))

    def _tick(self) -> int:
        self.now += self.rng.choice((0, 0, 1, 1, 2, 3, 5, 8, 13, 21, 60, 250))
        return self.now

    # --- writing ---

    def _emit(
        self, payload: RawTraceEventPayload, thread: _Thread | None = None, turn: str | None = None
    ) -> None:
        event = self.writer.append(
            payload,
            thread_id=thread.thread_id if thread else None,
            codex_turn_id=turn,
            wall_time_unix_ms=self._tick(),
        )
        if event is None:
            raise RuntimeError(f"synthetic bundle write failed: {self.writer.failure}")

    def _ref(self, kind: PayloadKind, body: Any) -> RawPayloadRef:
        ref = self.writer.write_payload(kind, body)
        if ref is None:
            raise RuntimeError(f"synthetic payload write failed: {self.writer.failure}")
        return ref

    def _protocol(self, event_type: str, body: Json) -> None:
        ref = self._ref(PayloadKind.PROTOCOL_EVENT, {"type": event_type, **body})
        self._emit(ProtocolEventObserved(event_type=event_type, event_payload=ref))

    def _accept(self, turn: _Turn, item: Json) -> None:
        """Emit ``history_item_accepted`` for an item entering the thread's history."""
        agent_ref = None
        output_ref = None
        if item["type"] == "agent_message":
            body = {**item, "internal_chat_message_metadata_passthrough": {"turn_id": turn.turn_id}}
            agent_ref = self._ref(PayloadKind.PROTOCOL_EVENT, body)
        elif self.schema_3 and item["type"] in _OUTPUT_TYPES and self.rng.random() < 0.95:
            body = {**item, "internal_chat_message_metadata_passthrough": {"turn_id": turn.turn_id}}
            output_ref = self._ref(PayloadKind.PROTOCOL_EVENT, body)
        self._emit(
            HistoryItemAccepted(
                item_id=item["id"], agent_message_payload=agent_ref, tool_output_payload=output_ref
            ),
            turn.thread,
            turn.turn_id,
        )

    # --- the run ---

    def run(self) -> Path:
        """Simulate the rollout, write it, then cut it short if it crashed."""
        root = self.root_thread
        self._emit(
            RolloutStarted(trace_id=self.writer.manifest.trace_id, root_thread_id=root.thread_id)
        )
        self._start_thread(root)
        self._spawn_actor(self._root_actor())
        self._schedule()
        self.writer.close()
        if self.crash:
            self._cut()
        return self.writer.bundle_dir

    def _spawn_actor(self, actor: Actor) -> None:
        self.actors.append([actor, None])

    def _schedule(self) -> None:
        """Run the actors, interleaving their steps at random, until all are done."""
        while self.actors:
            runnable = [entry for entry in self.actors if entry[1] is None or entry[1]()]
            if not runnable:
                raise RuntimeError("synthetic rollout deadlocked")
            entry = self.rng.choice(runnable)
            try:
                entry[1] = next(entry[0])
            except StopIteration:
                self.actors.remove(entry)

    def _cut(self) -> None:
        """Keep a prefix of the events, as a crash leaves them, maybe with a torn tail."""
        log = self.writer.bundle_dir / RAW_EVENT_LOG_FILE_NAME
        lines = log.read_bytes().splitlines(keepends=True)
        keep = self.rng.randint(max(2, len(lines) // 3), max(2, len(lines) - 3))
        data = b"".join(lines[:keep])
        if self.torn and keep < len(lines):
            torn = lines[keep]
            data += torn[: self.rng.randint(1, len(torn) - 2)]
        log.write_bytes(data)

    # --- threads ---

    def _new_thread(self, agent_path: str, parent: _Thread | None) -> _Thread:
        thread = _Thread(
            thread_id=self._uuid(), agent_path=agent_path, parent=parent, model=_MODELS[0]
        )
        if parent is not None:
            thread.task_name = agent_path.rsplit("/", 1)[1]
            thread.nickname = self.rng.choice(("Mendel", "Curie", "Noether", None))
            thread.model = self.rng.choice(_MODELS)
            thread.agent_role = self.rng.choice((None, None, "worker", "explorer"))
        thread.incremental = self.rng.random() < self.incremental_chance
        thread.base = self._message("developer", _BASE_TEXT, item_id=f"msg_{self._uuid()}")
        return thread

    def _start_thread(self, thread: _Thread) -> None:
        source: Any = "exec"
        if thread.parent is not None:
            source = {
                "subagent": {
                    "thread_spawn": {
                        "parent_thread_id": thread.parent.thread_id,
                        "depth": thread.depth,
                        "agent_path": thread.agent_path,
                        "agent_nickname": thread.nickname,
                        "agent_role": thread.agent_role,
                    }
                }
            }
        metadata = {
            "thread_id": thread.thread_id,
            "agent_path": thread.agent_path,
            "task_name": thread.task_name,
            "nickname": thread.nickname,
            "agent_role": thread.agent_role,
            "session_source": source,
            "cwd": self.cwd,
            "rollout_path": f"{self.cwd}/.codex/sessions/rollout-{thread.thread_id}.jsonl",
            "model": thread.model,
            "provider_name": self.provider,
            "approval_policy": "never",
        }
        if self.schema_3:
            metadata["permissions_profile"] = "danger-full-access"
        else:
            metadata["sandbox_policy"] = "DangerFullAccess"
        ref: RawPayloadRef | None = self._ref(PayloadKind.SESSION_METADATA, metadata)
        if thread.parent is not None and self.rng.random() < 0.03:
            ref = None
        self._emit(
            ThreadStarted(
                thread_id=thread.thread_id, agent_path=thread.agent_path, metadata_payload=ref
            )
        )
        self._protocol(
            "session_configured",
            {
                "session_id": thread.thread_id,
                "thread_id": thread.thread_id,
                "model": thread.model,
                "model_provider_id": self.provider,
                "approval_policy": "never",
                "cwd": self.cwd,
            },
        )

    def _end_thread(self, thread: _Thread, status: RolloutStatus) -> None:
        """Emit ``thread_ended``; the thread's processes and cells end with it."""
        thread.ended = True
        thread.sessions.clear()
        thread.yielded_cells.clear()
        self._emit(ThreadEnded(thread_id=thread.thread_id, status=status))

    def _root_actor(self) -> Actor:
        root = self.root_thread
        for index in range(self.turns):
            if index and self.rng.random() < (0.5 if self.every else 0.08):
                yield from self._compaction_turn(root)
            yield from self._run_turn(root, [self._prompt()], index)
        if self.every or self.rng.random() < 0.1:
            # The root thread ends, is resumed, and runs one more turn.
            self._end_thread(root, RolloutStatus.COMPLETED)
            yield None
            root.ended = False
            self._emit(ThreadResumed(thread_id=root.thread_id))
            yield from self._run_turn(root, [self._prompt()], self.turns)
        if self.children and self.rng.random() < 0.7:
            yield lambda: not any(child.busy for child in self.children)
        self.shutting_down = True
        yield lambda: not any(child.busy for child in self.children)
        self._protocol("shutdown_complete", {})
        status = self.rng.choice(
            (RolloutStatus.COMPLETED,) * 6 + (RolloutStatus.FAILED, RolloutStatus.ABORTED)
        )
        self._emit(ThreadEnded(thread_id=root.thread_id, status=status))
        open_children = [child for child in self.children if not child.ended]
        early = [child for child in open_children if self.rng.random() < 0.5]
        for child in early:
            self._emit(ThreadEnded(thread_id=child.thread_id, status=RolloutStatus.COMPLETED))
        self._emit(RolloutEnded(status=status))
        for child in open_children:
            if child not in early:
                self._emit(ThreadEnded(thread_id=child.thread_id, status=RolloutStatus.COMPLETED))
        self._emit(RecordingCompleted())

    def _child_actor(self, child: _Thread) -> Actor:
        while True:
            yield lambda: self.shutting_down or any(trigger for _, trigger in child.inbox)
            if self.shutting_down:
                return
            child.busy = True
            if child.ended:
                child.ended = False
                child.closed = False
                self._emit(ThreadResumed(thread_id=child.thread_id))
            items = [item for item, _ in child.inbox]
            child.inbox.clear()
            yield from self._run_turn(child, items, child.turns_run)
            child.busy = False

    # --- turns ---

    def _run_turn(self, thread: _Thread, new_items: list[Json], index: int) -> Actor:
        turn = self._start_turn(thread)
        thread.turns_run += 1
        if not thread.has_context:
            thread.has_context = True
            for item in self._context_items(thread):
                self._accept(turn, item)
                thread.history.append(item)
        for item in new_items:
            self._accept(turn, item)
            thread.history.append(item)
        if self.rng.random() < 0.06:
            quirk = self._quirky_item()
            if self.rng.random() < 0.7:
                self._accept(turn, quirk)
            thread.history.append(quirk)
        if self.rng.random() < 0.03:
            # Codex accepts items that no traced request ever carries (local summaries).
            self._accept(turn, {"type": "message", "id": f"msg_ghost_{self._next()}"})
        yield None
        for step in range(self.steps):
            if len(thread.history) > self.compact_above or (
                self.every and index == 1 and step == 0 and thread.parent is None
            ):
                yield from self._compaction(turn, mid_turn=True)
            self._pick_up_inbox(turn)
            last = step == self.steps - 1
            outcome = yield from self._step(turn, index, step, last)
            if outcome != "tools":
                break
        self._end_turn(turn)
        yield None

    def _start_turn(self, thread: _Thread) -> _Turn:
        """Open a turn: ``codex_turn_started`` and its ``task_started`` protocol event."""
        turn = _Turn(thread, self._uuid())
        self._emit(
            CodexTurnStarted(codex_turn_id=turn.turn_id, thread_id=thread.thread_id),
            thread,
            turn.turn_id,
        )
        self._protocol("task_started", {"turn_id": turn.turn_id, "model_context_window": 272000})
        return turn

    def _end_turn(self, turn: _Turn) -> None:
        thread = turn.thread
        if not turn.ended:
            self._emit(
                CodexTurnEnded(codex_turn_id=turn.turn_id, status=turn.status), thread, turn.turn_id
            )
        if turn.status == ExecutionStatus.COMPLETED:
            self._protocol(
                "task_complete",
                {"turn_id": turn.turn_id, "last_agent_message": turn.last_message},
            )
        else:
            thread.yielded_cells.clear()
            self._protocol("turn_aborted", {"turn_id": turn.turn_id, "reason": "interrupted"})
        thread.sessions.clear()
        parent = thread.parent
        if parent is None:
            return
        text = turn.last_message or "The task failed."
        message = (
            f"Message Type: FINAL_ANSWER\nTask name: {parent.agent_path}\n"
            f"Sender: {thread.agent_path}\nPayload:\n{text}"
        )
        status = {"completed": text} if turn.last_message else {"errored": text}
        carried = None
        if self.every or self.rng.random() < 0.9:
            carried = self._ref(
                PayloadKind.AGENT_RESULT,
                {"child_agent_path": thread.agent_path, "message": message, "status": status},
            )
        self._emit(
            AgentResultObserved(
                edge_id=f"edge:agent_result:{thread.thread_id}:{turn.turn_id}:{parent.thread_id}",
                child_thread_id=thread.thread_id,
                child_codex_turn_id=turn.turn_id,
                parent_thread_id=parent.thread_id,
                message=message,
                carried_payload=carried,
            ),
            thread,
            turn.turn_id,
        )
        if self.rng.random() < 0.9:
            delivered = self._agent_message(thread.agent_path, parent.agent_path, [message], None)
            parent.inbox.append((delivered, False))

    def _pick_up_inbox(self, turn: _Turn) -> None:
        """Deliver inter-agent messages that arrived during the turn."""
        thread = turn.thread
        if not thread.inbox or (not self.every and self.rng.random() < 0.2):
            return
        for item, _ in thread.inbox:
            self._accept(turn, item)
            thread.history.append(item)
        thread.inbox.clear()

    def _context_items(self, thread: _Thread) -> list[Json]:
        items = [
            self._message(
                "developer",
                [
                    f"<permissions instructions>{self._text()}</permissions instructions>",
                    self._text(),
                ],
                item_id=f"msg_{self._uuid()}",
            ),
            self._message(
                "user",
                f"<environment_context>\n  <cwd>{self.cwd}</cwd>\n  <shell>bash</shell>\n"
                "</environment_context>",
                item_id=f"msg_{self._uuid()}",
            ),
        ]
        if thread.parent is not None:
            items.insert(
                1,
                self._message(
                    "developer", "You are an agent in a team.", item_id=f"msg_{self._uuid()}"
                ),
            )
        return items

    # --- items ---

    def _message(
        self, role: str, text: str | list[str], *, item_id: str, phase: str | None = None
    ) -> Json:
        texts = [text] if isinstance(text, str) else text
        part_type = "output_text" if role == "assistant" else "input_text"
        content: list[Json] = []
        for chunk in texts:
            part: Json = {"type": part_type, "text": chunk}
            if role == "assistant":
                part["annotations"] = []
            content.append(part)
        item: Json = {"type": "message"}
        if role == "assistant":
            item["status"] = "completed"
        item.update(id=item_id, role=role, content=content)
        if phase is not None:
            item["phase"] = phase
        return item

    def _agent_message(
        self, author: str, recipient: str, texts: list[str], encrypted: str | None
    ) -> Json:
        content: list[Json] = [{"type": "input_text", "text": text} for text in texts]
        if encrypted is not None:
            content.append({"type": "encrypted_content", "encrypted_content": encrypted})
        return {
            "type": "agent_message",
            "id": f"amsg_{self._uuid()}",
            "author": author,
            "recipient": recipient,
            "content": content,
        }

    def _prompt(self) -> Json:
        """A user prompt: text, sometimes in several parts or with an image."""
        texts = [self._text() for _ in range(self.rng.choice((1, 1, 1, 2)))]
        item = self._message("user", texts, item_id=f"msg_{self._uuid()}")
        if self.rng.random() < 0.08:
            image = {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}
            item["content"].append(image)
        return item

    def _quirky_item(self) -> Json:
        """A history item in a rarer shape that Codex still normalizes."""
        item_id = f"msg_{self._uuid()}"
        text = self._text()
        shapes: list[Json] = [
            {"type": "message", "id": item_id, "role": "user", "content": text},
            {"type": "message", "id": item_id, "role": "developer", "content": []},
            {
                "type": "message",
                "id": item_id,
                "role": "system",
                "content": [{"type": "text", "text": text}],
            },
            {"type": "message", "id": item_id, "role": "user", "content": [{"type": "input_text"}]},
            {"type": "message", "id": item_id, "role": "user", "content": [{"text": text}]},
            {
                "type": "message",
                "id": item_id,
                "role": "user",
                "content": [
                    {"type": "input_text", "text": text},
                    {"type": "input_file", "file_id": "file-1", "filename": "notes.txt"},
                ],
            },
            {
                "type": "message",
                "id": item_id,
                "role": "assistant",
                "phase": "commentary",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            },
            {
                "type": "function_call_output",
                "id": f"fco_{self._uuid()}",
                "call_id": f"call_orphan_{self._next()}",
                "output": {"ok": True, "items": [1, 2.5, "x"]},
            },
            {
                "type": "function_call_output",
                "id": f"fco_{self._uuid()}",
                "call_id": f"call_orphan_{self._next()}",
            },
            {
                "type": "reasoning",
                "id": f"rs_{self._next()}",
                "summary": [],
                "content": [{"type": "text", "text": text}],
                "encrypted_content": None,
            },
        ]
        return self.rng.choice(shapes)

    def _reasoning(self) -> Json:
        """A reasoning item: summary and encrypted identity, sometimes readable content."""
        rng = self.rng
        shape = rng.random()
        item: Json = {
            "type": "reasoning",
            "id": f"rs_{self._next()}",
            "summary": [] if shape < 0.1 else [{"type": "summary_text", "text": self._text()}],
            "encrypted_content": None if 0.1 <= shape < 0.2 else f"ENC-{self._uuid()}",
        }
        if rng.random() < 0.4 or shape < 0.1:
            item["content"] = [{"type": "reasoning_text", "text": self._text()}]
        return item

    # --- one model round trip ---

    def _request(self, thread: _Thread, turn: _Turn) -> RawPayloadRef:
        """The request of an attempt: the whole history or, on an incremental thread, only
        what follows the last traced response, with its ``previous_response_id``."""
        body: Json = {
            "model": thread.model,
            "stream": True,
            "input": [thread.base, *[_request_view(item) for item in thread.history]],
            "tools": [{"type": "function", "name": "exec_command", "strict": False}],
            "tool_choice": "auto",
            "parallel_tool_calls": True,
            "reasoning": {"summary": "auto"},
            "store": False,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": thread.thread_id,
            "client_metadata": {"thread_id": thread.thread_id, "turn_id": turn.turn_id},
        }
        prompt_input = body["input"]
        if thread.incremental and thread.last_response is not None:
            response_id, covered = thread.last_response
            body["previous_response_id"] = response_id
            body["input"] = [_request_view(item) for item in thread.history[covered:]]
        request = self._ref(PayloadKind.INFERENCE_REQUEST, body)
        if self.schema_3:
            self.prepared = self.writer.write_prepared_prompt(
                thread.thread_id,
                {
                    "input": prompt_input,
                    "tools": body["tools"],
                    "parallel_tool_calls": True,
                    "base_instructions": {"text": "You are a coding agent."},
                    "output_schema": None,
                    "output_schema_strict": True,
                    "prompt_cache_ttl": None,
                    "cyber_access_program": None,
                },
            )
        return request

    def _start_inference(self, turn: _Turn, request: RawPayloadRef) -> str:
        call_id = self._uuid()
        self._emit(
            InferenceStarted(
                inference_call_id=call_id,
                thread_id=turn.thread.thread_id,
                codex_turn_id=turn.turn_id,
                model=turn.thread.model,
                provider_name=self.provider,
                request_payload=request,
                prepared_prompt_payload=self.prepared or msgspec.UNSET,
            ),
            turn.thread,
            turn.turn_id,
        )
        return call_id

    def _partial(self, turn: _Turn, upstream: str | None, keep: float) -> RawPayloadRef:
        """A partial response; with probability ``keep`` its items join the history.

        Codex keeps output items that were done before the stream broke: they are
        accepted and the retry's request carries them.
        """
        items = [self._message("assistant", self._text(), item_id=f"msg_{self._next()}")]
        if self.rng.random() < 0.3:
            items.insert(0, self._reasoning())
        body = {
            "response_id": None,
            "upstream_request_id": upstream,
            "token_usage": None,
            "output_items": items,
        }
        ref = self._ref(PayloadKind.INFERENCE_RESPONSE, body)
        # Codex appends a partial response to the thread's snapshot: the next request
        # must be a full snapshot for an incremental one to line up.
        turn.thread.last_response = None
        if self.rng.random() < keep:
            self._pending_partial = (turn, items)
        return ref

    def _keep_partial(self) -> bool:
        """Accept the items of the partial response just reported; whether there were any."""
        pending, self._pending_partial = self._pending_partial, None
        if pending is None:
            return False
        turn, items = pending
        for item in items:
            self._accept(turn, item)
        turn.thread.history.extend(items)
        return True

    def _step(
        self, turn: _Turn, index: int, step: int, last: bool
    ) -> Generator[Wait | None, None, str]:
        """One model round trip: attempts until one completes, then its tool calls."""
        thread = turn.thread
        rng = self.rng
        request = self._request(thread, turn)
        every = self.every and thread.parent is None
        retries = 2 if every and index == 0 and step == 0 else rng.choice((0,) * 10 + (1, 1, 2))
        for attempt in range(retries):
            call_id = self._start_inference(turn, request)
            yield None
            upstream = rng.choice((None, f"req_{self._next()}"))
            partial = (
                self._partial(turn, upstream, keep=0.8)
                if (attempt == 1 or rng.random() < 0.3)
                else None
            )
            self._emit(
                InferenceFailed(
                    inference_call_id=call_id,
                    upstream_request_id=upstream,
                    error=rng.choice(
                        (
                            "stream disconnected before completion: stream closed before "
                            "response.completed",
                            "We’re currently experiencing high demand, which may cause temporary "
                            "errors.",
                            "unexpected status 500 Internal Server Error",
                        )
                    ),
                    partial_response_payload=partial,
                ),
                thread,
                turn.turn_id,
            )
            if self._keep_partial():
                request = self._request(thread, turn)
        call_id = self._start_inference(turn, request)
        yield None
        ending = 1.0 if every else rng.random()
        if (every and (index, step) == (2, 0)) or ending < 0.03:
            yield from self._interrupted(turn, call_id, late=every or rng.random() < 0.4)
            return "stop"
        if (every and (index, step) == (3, 2)) or ending < 0.05:
            upstream = f"req_{self._next()}"
            self._emit(
                InferenceFailed(
                    inference_call_id=call_id,
                    upstream_request_id=upstream,
                    error="unexpected status 400 Bad Request: context_length_exceeded",
                    partial_response_payload=self._partial(turn, upstream, keep=0.5)
                    if rng.random() < 0.5
                    else None,
                ),
                thread,
                turn.turn_id,
            )
            self._keep_partial()
            turn.status = ExecutionStatus.FAILED
            self._protocol(
                "error", {"message": "context_length_exceeded", "codex_error_info": None}
            )
            return "stop"
        if every:
            final = last or (index, step) not in self._FORCED
        else:
            final = last or (step > 0 and rng.random() < self.final_chance)
        calls = [] if final else self._plan_calls(turn, index, step)
        output: list[Json] = []
        shell_outputs: list[Json] = []
        if rng.random() < 0.4 or (every and step == 0):
            output.append(self._reasoning())
        if not calls:
            text = self._text(4, 30)
            phase = rng.choice((None, "final_answer"))
            message = self._message("assistant", text, item_id=f"msg_{self._next()}", phase=phase)
            if rng.random() < 0.05:
                message["content"].append({"type": "refusal", "refusal": "I can't share that."})
            output.append(message)
            turn.last_message = text
        else:
            if rng.random() < 0.3:
                output.append(
                    self._message(
                        "assistant", self._text(), item_id=f"msg_{self._next()}", phase="commentary"
                    )
                )
            if rng.random() < 0.1 or (every and step == 0):
                output.append(
                    {
                        "type": "web_search_call",
                        "id": f"ws_{self._next()}",
                        "status": "completed",
                        "action": {"type": "search", "query": self._text(2, 4)},
                    }
                )
            if rng.random() < 0.05:
                output.append(
                    {
                        "type": "image_generation_call",
                        "id": f"ig_{self._next()}",
                        "status": "completed",
                        "revised_prompt": self._text(),
                        "result": "iVBORw0KGgo=",
                    }
                )
            output.extend(call.item for call in calls)
            if rng.random() < 0.04:
                shell_call = f"call_lsh_{self._next()}"
                output.append(
                    {
                        "type": "local_shell_call",
                        "id": f"lsh_{self._next()}",
                        "call_id": shell_call,
                        "status": "completed",
                        "action": {"type": "exec", "command": ["ls", "-la"], "timeout_ms": 1000},
                    }
                )
                shell_outputs.append(
                    {
                        "type": "function_call_output",
                        "id": f"fco_{self._uuid()}",
                        "call_id": shell_call,
                        "output": self._text(1, 6),
                    }
                )
        usage = {
            "input_tokens": 100 * len(thread.history) + rng.randrange(100),
            "cached_input_tokens": rng.randrange(50),
            "cache_write_input_tokens": rng.choice((0, 0, rng.randrange(30))),
            "output_tokens": rng.randrange(1, 400),
            "reasoning_output_tokens": rng.randrange(100),
        }
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        response_id = f"resp_{self._uuid()}"
        upstream = rng.choice((f"req_{self._next()}",) * 4 + (None,))
        body = {
            "response_id": response_id,
            "upstream_request_id": upstream,
            "token_usage": _usage_variant(rng.random(), usage),
            "output_items": output,
        }
        tools = [self._tool(turn, call) for call in calls]
        # Tools may be dispatched while the response still streams (before inference_completed).
        early = rng.choice((0, 0, 0, 1, 2, 3)) if tools else 0
        waiting: list[list[Any]] = [[tool, None] for tool in tools]
        yield from self._advance_tools(waiting, limit=early)
        response = self._ref(PayloadKind.INFERENCE_RESPONSE, body)
        self._emit(
            InferenceCompleted(
                inference_call_id=call_id,
                response_id=response_id,
                upstream_request_id=upstream,
                response_payload=response,
            ),
            thread,
            turn.turn_id,
        )
        for item in output:
            # Call items are accepted by their tool, at dispatch.
            if item["type"] not in ("function_call", "custom_tool_call"):
                self._accept(turn, item)
        thread.history.extend(output)
        thread.last_response = (response_id, len(thread.history))
        yield None
        if calls and not every and rng.random() < 0.04:
            # The user interrupts while tools run: unfinished calls end cancelled.
            yield from self._advance_tools(waiting, limit=rng.randint(0, 3 * len(calls)))
            if waiting:
                self._abort_tools(turn, calls)
                return "stop"
        yield from self._advance_tools(waiting, limit=None)
        for item in shell_outputs:
            self._accept(turn, item)
            thread.history.append(item)
        return "tools" if calls else "final"

    def _abort_tools(self, turn: _Turn, calls: list[_Call]) -> None:
        """End every started, unfinished call of an interrupted turn, as Codex does."""
        turn.status = self.rng.choice((ExecutionStatus.CANCELLED, ExecutionStatus.ABORTED))
        for call in calls:
            if not call.started or call.ended:
                continue
            call.ended = True
            self._emit(
                ToolCallEnded(tool_call_id=call.call_id, status=turn.status, result_payload=None),
                turn.thread,
                turn.turn_id,
            )
            custom = call.item["type"] == "custom_tool_call"
            prefix = "ctco" if custom else "fco"
            kind = "custom_tool_call_output" if custom else "function_call_output"
            item = {"type": kind, "id": f"{prefix}_{self._uuid()}", "call_id": call.call_id}
            item["output"] = "aborted"
            self._accept(turn, item)
            turn.thread.history.append(item)

    def _advance_tools(self, waiting: list[list[Any]], limit: int | None) -> Actor:
        """Run parallel tool calls one event group at a time, in random order."""
        steps = 0
        while waiting and (limit is None or steps < limit):
            ready = [entry for entry in waiting if entry[1] is None or entry[1]()]
            if not ready:
                yield _any_of([entry[1] for entry in waiting])
                continue
            entry = self.rng.choice(ready)
            try:
                entry[1] = next(entry[0])
            except StopIteration:
                waiting.remove(entry)
            steps += 1
            yield None

    def _interrupted(self, turn: _Turn, call_id: str, *, late: bool) -> Actor:
        """The user interrupts the turn while the model streams."""
        upstream = f"req_{self._next()}"
        cancelled = InferenceCancelled(
            inference_call_id=call_id,
            upstream_request_id=upstream,
            reason="response stream dropped before provider terminal event",
            partial_response_payload=(
                self._partial(turn, upstream, keep=0.5) if self.rng.random() < 0.5 else None
            ),
        )
        turn.status = self.rng.choice((ExecutionStatus.CANCELLED,) * 3 + (ExecutionStatus.ABORTED,))
        if late:
            # The turn ends first; the attempt's own terminal event arrives afterwards.
            turn.ended = True
            self._emit(
                CodexTurnEnded(codex_turn_id=turn.turn_id, status=turn.status),
                turn.thread,
                turn.turn_id,
            )
            self._emit(cancelled, turn.thread, turn.turn_id)
            self._pending_partial = None
        else:
            self._emit(cancelled, turn.thread, turn.turn_id)
            self._keep_partial()
        yield None

    # --- planning tool calls ---

    _FORCED: dict[tuple[int, int], tuple[str, ...]] = {
        (0, 0): ("exec_tty", "mcp", "patch", "plan", "fail"),
        (0, 1): ("write_stdin", "cell_yield"),
        (0, 2): ("wait_cell", "cell"),
        (1, 0): ("spawn", "spawn"),
        (1, 1): ("wait_agent",),
        (1, 2): ("followup", "send"),
        (1, 3): ("wait_agent",),
        (3, 0): ("wait_agent",),
        (3, 1): ("close",),
    }

    def _plan_calls(self, turn: _Turn, index: int, step: int) -> list[_Call]:
        thread = turn.thread
        if self.every and thread.parent is None:
            names: tuple[str, ...] = self._FORCED.get((index, step), ("exec", "cell"))
        else:
            weights = {
                "exec": 6,
                "exec_tty": 2,
                "mcp": 2,
                "patch": 1,
                "plan": 1,
                "lookup": 1,
                "fail": 1,
                "cell": 2,
                "write_stdin": 5 if thread.sessions else 0,
                "wait_cell": 5 if thread.yielded_cells else 0.1,
            }
            if self.max_children and (thread.parent is None or thread.depth == 1):
                # The root delegates; a child sometimes delegates one level further.
                room = len(self.children) < self.max_children
                weights["spawn"] = (3 if thread.parent is None else 1) if room else 0
                weights["wait_agent"] = 2 if thread.kids else 0
                weights["followup"] = 1 if thread.kids else 0
                weights["send"] = 1 if thread.kids else 0
                weights["close"] = 1 if thread.kids else 0
            kinds = [name for name, weight in weights.items() if weight]
            count = self.rng.randint(1, self.tools_per_step)
            names = tuple(self.rng.choices(kinds, [weights[name] for name in kinds], k=count))
        calls: list[_Call] = []
        claimed: set[str] = set()
        for name in names:
            call = self._make_call(turn, name, claimed)
            if call is not None:
                calls.append(call)
        return calls

    def _function_call(self, name: str, args: Json, namespace: str | None = None) -> _Call:
        call_id = f"call_{self._uuid()[:13]}"
        item: Json = {
            "type": "function_call",
            "status": "completed",
            "id": f"fc_{self._next()}",
            "name": name,
        }
        if namespace is not None:
            item["namespace"] = namespace
        item["arguments"] = json.dumps(args, ensure_ascii=False)
        item["call_id"] = call_id
        return _Call(tool=name, item=item, call_id=call_id, arguments=args)

    def _custom_call(self, name: str, text: str) -> _Call:
        call_id = f"call_{self._uuid()[:13]}"
        item = {
            "type": "custom_tool_call",
            "id": f"ctc_{self._next()}",
            "status": "completed",
            "call_id": call_id,
            "name": name,
            "input": text,
        }
        return _Call(tool=name, item=item, call_id=call_id)

    def _make_call(self, turn: _Turn, name: str, claimed: set[str]) -> _Call | None:
        """Build one planned call, claiming what it works on (a session, cell or child)."""
        thread = turn.thread
        rng = self.rng
        call: _Call
        if name in ("exec", "exec_tty"):
            tty = name == "exec_tty"
            args: Json = {"cmd": f"echo {self._word()}; ls {self._word()}"}
            if tty:
                args.update(tty=True, yield_time_ms=500)
            call = self._function_call("exec_command", args)
            call.tool = "exec_tty" if tty else "exec"
        elif name == "write_stdin":
            free = [pid for pid in thread.sessions if f"pid:{pid}" not in claimed]
            if not free:
                return None
            pid = rng.choice(free)
            claimed.add(f"pid:{pid}")
            stdin: Json = {
                "session_id": pid if rng.random() < 0.8 else str(pid),
                "chars": rng.choice((f"{self._word()}\n", "", "\u0003")),
            }
            if rng.random() < 0.7:
                stdin["yield_time_ms"] = rng.choice((250, 2000))
            call = self._function_call("write_stdin", stdin)
            call.session = pid
        elif name == "mcp":
            server, tool = rng.choice((("echo", "echo"), ("fs", "read_file"), ("search", "query")))
            call = self._function_call(tool, {"text": self._text(1, 4)}, namespace=f"mcp__{server}")
            call.tool = "mcp"
            call.arguments = {"server": server, "tool": tool, "args": call.arguments}
        elif name == "patch":
            path = f"src/{self._word()}.py"
            patch = (
                f"*** Begin Patch\n*** Add File: {path}\n+print({self._word()!r})\n*** End Patch\n"
            )
            call = self._custom_call("apply_patch", patch)
            call.tool = "patch"
            call.arguments = {"path": path}
        elif name == "plan":
            call = self._function_call(
                "update_plan",
                {
                    "plan": [
                        {"step": self._text(2, 12), "status": "in_progress"}
                        for _ in range(rng.choice((1, 2, 4)))
                    ]
                },
            )
            call.tool = "plan"
        elif name == "lookup":
            call = self._function_call("lookup", {})
            call.item["arguments"] = self._odd_json()
            call.tool = "lookup"
        elif name == "fail":
            call = self._function_call("view_image", {"path": f"/tmp/{self._word()}.png"})
            call.tool = "fail"
            if rng.random() < 0.3:
                call.item["arguments"] = f"path=/tmp/{self._word()}.png"
        elif name in ("cell", "cell_yield"):
            js = (
                f'const r = await tools.exec_command({{cmd: "echo {self._word()}"}});\n'
                'text("nested result: " + JSON.stringify(r));\n'
            )
            call = self._custom_call("exec", js)
            call.tool = name
        elif name == "wait_cell":
            cells = [cell for cell in thread.yielded_cells if f"cell:{cell}" not in claimed]
            if not cells and rng.random() < 0.02:
                call = self._function_call("wait", {"cell_id": "999", "yield_time_ms": 1000})
                call.tool = "fail"  # the runtime knows no such cell: an error result
                return call
            if not cells:
                return None
            cell = cells[0]
            claimed.add(f"cell:{cell}")
            thread.yielded_cells.remove(cell)
            call = self._function_call("wait", {"cell_id": cell, "yield_time_ms": 1000})
            call.tool = "wait_cell"
            call.cell = cell
        elif name == "spawn":
            if len(self.children) >= max(self.max_children, 2 if self.every else 0):
                return None
            task = f"{self._word()}_{len(self.children) + 1}".lower()
            task = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in task)
            message = f"TASK: {self._text()}"
            call = self._function_call(
                "spawn_agent",
                {"message": message, "task_name": task, "fork_turns": "none"},
                namespace="collaboration",
            )
            call.tool = "spawn"
        elif name == "wait_agent":
            if not thread.kids or "wait_agent" in claimed:
                return None
            claimed.add("wait_agent")
            call = self._function_call(
                "wait_agent", {"timeout_ms": 10000}, namespace="collaboration"
            )
        elif name in ("followup", "send", "close"):
            claim = "send" if name == "send" else "child"
            targets = [
                child
                for child in thread.kids
                if f"{claim}:{child.thread_id}" not in claimed
                and (name != "close" or not (child.busy or child.closed or child.inbox))
                and (name == "followup" or not child.closed)
            ]
            if not targets:
                return None
            child = targets[0] if self.every else rng.choice(targets)
            claimed.add(f"{claim}:{child.thread_id}")
            if name == "close":
                call = self._function_call(
                    "close_agent", {"target": child.agent_path}, namespace="collaboration"
                )
                child.closed = True
            else:
                tool_name = "followup_task" if name == "followup" else "send_message"
                text = f"{name.upper()}: {self._text()}"
                if self.last_agent_text is not None and not self.every and rng.random() < 0.2:
                    text = self.last_agent_text  # the same words again: edges must not mix up
                self.last_agent_text = text
                args = {"target": child.agent_path, "message": text}
                call = self._function_call(tool_name, args, namespace="collaboration")
            call.tool = name
            call.target = child
        else:
            raise ValueError(f"unknown synthetic tool {name}")
        return call

    # --- running tool calls ---

    def _tool(self, turn: _Turn, call: _Call) -> Actor:
        runner: Callable[[_Turn, _Call], Actor] = getattr(self, f"_run_{call.tool}")
        return runner(turn, call)

    def _dispatch(
        self,
        turn: _Turn,
        call: _Call,
        kind: ToolCallKind,
        *,
        tool_name: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """Accept the call item and emit ``tool_call_started`` with its invocation."""
        call.started = True
        self._accept(turn, call.item)
        item = call.item
        name = tool_name or item["name"]
        with_invocation = call.tool != "plan" or self.rng.random() < 0.7
        if item["type"] == "custom_tool_call":
            preview = item["input"]
            invocation: Json = {"type": "custom", "input": item["input"]}
        else:
            preview = item["arguments"]
            invocation = {"type": "function", "arguments": item["arguments"]}
        namespace = namespace if namespace is not None else item.get("namespace")
        ref = (
            self._ref(
                PayloadKind.TOOL_INVOCATION,
                {"tool_name": name, "tool_namespace": namespace, "payload": invocation},
            )
            if with_invocation
            else None
        )
        label = f"{namespace}.{name}" if namespace else name
        self._emit(
            ToolCallStarted(
                tool_call_id=call.call_id,
                model_visible_call_id=call.call_id,
                code_mode_runtime_tool_id=None,
                requester=ModelRequester(),
                kind=kind,
                summary=GenericSummary(label=label, input_preview=preview, output_preview=None),
                invocation_payload=ref,
            ),
            turn.thread,
            turn.turn_id,
        )

    def _finish(
        self,
        turn: _Turn,
        call: _Call,
        output: str | list[str],
        *,
        status: ExecutionStatus = ExecutionStatus.COMPLETED,
        error: bool = False,
    ) -> None:
        """Emit ``tool_call_ended`` and add the model-visible output to the history."""
        call.ended = True
        custom = call.item["type"] == "custom_tool_call"
        value: Any = output
        if isinstance(output, list):
            value = [{"type": "input_text", "text": text} for text in output]
        response_item = {
            "type": "custom_tool_call_output" if custom else "function_call_output",
            "call_id": call.call_id,
            "output": value,
        }
        if error:
            text = output if isinstance(output, str) else "\n".join(output)
            body: Json = {"type": "error", "error": text}
        else:
            body = {"type": "direct_response", "response_item": response_item}
        with_result = call.tool not in ("plan", "fail") or self.rng.random() < 0.8
        ref = self._ref(PayloadKind.TOOL_RESULT, body) if with_result else None
        self._emit(
            ToolCallEnded(tool_call_id=call.call_id, status=status, result_payload=ref),
            turn.thread,
            turn.turn_id,
        )
        prefix = "ctco" if custom else "fco"
        item = {"type": response_item["type"], "id": f"{prefix}_{self._uuid()}", **response_item}
        self._accept(turn, item)
        turn.thread.history.append(item)

    def _runtime_start(
        self, turn: _Turn, tool_call_id: str, kind: ToolCallKind, body: Json
    ) -> None:
        ref = self._ref(PayloadKind.TOOL_RUNTIME_EVENT, body)
        self._emit(
            ToolCallRuntimeStarted(tool_call_id=tool_call_id, kind=kind, runtime_payload=ref),
            turn.thread,
            turn.turn_id,
        )

    def _runtime_end(
        self,
        turn: _Turn,
        tool_call_id: str,
        body: Json,
        status: ExecutionStatus = ExecutionStatus.COMPLETED,
    ) -> None:
        ref = self._ref(PayloadKind.TOOL_RUNTIME_EVENT, body)
        self._emit(
            ToolCallRuntimeEnded(tool_call_id=tool_call_id, status=status, runtime_payload=ref),
            turn.thread,
            turn.turn_id,
        )

    def _exec_begin(self, turn: _Turn, tool_call_id: str, cmd: str, pid: int) -> Json:
        return {
            "call_id": tool_call_id,
            "process_id": str(pid),
            "turn_id": turn.turn_id,
            "started_at_ms": self.now,
            "command": ["/bin/bash", "-lc", cmd],
            "cwd": self.cwd,
            "parsed_cmd": [{"type": "unknown", "cmd": cmd}],
            "source": "unified_exec_startup",
        }

    def _exec_end(self, begin: Json, output: str, exit_code: int) -> Json:
        end = {key: value for key, value in begin.items() if key != "started_at_ms"}
        nanos = self.rng.randrange(10**9)
        end.update(
            completed_at_ms=self.now,
            aggregated_output=output,
            exit_code=exit_code,
            duration={"secs": nanos % 3, "nanos": nanos},
            status="completed" if exit_code == 0 else "failed",
        )
        return end

    def _run_exec(self, turn: _Turn, call: _Call) -> Actor:
        yield from self._exec_like(turn, call, tty=False)

    def _run_exec_tty(self, turn: _Turn, call: _Call) -> Actor:
        yield from self._exec_like(turn, call, tty=True)

    def _exec_like(self, turn: _Turn, call: _Call, *, tty: bool) -> Actor:
        rng = self.rng
        self._dispatch(turn, call, ExecCommandKind())
        yield None
        if not tty and rng.random() < 0.08:
            self._finish(
                turn,
                call,
                "exec_command failed: sandbox denied the command",
                status=ExecutionStatus.FAILED,
            )
            return
        pid = rng.randrange(1000, 99999)
        begin = self._exec_begin(turn, call.call_id, call.arguments["cmd"], pid)
        self._runtime_start(turn, call.call_id, ExecCommandKind(), begin)
        yield None
        if tty and pid not in turn.thread.sessions:
            turn.thread.sessions[pid] = (call.call_id, begin)
            self._finish(
                turn, call, f"Chunk ID: {pid:x}\nProcess running with session ID {pid}\nOutput:\n"
            )
            return
        exit_code = rng.choice((0, 0, 0, 1, 2, 127))
        output = f"{self._text(1, 6)}\n"
        status = ExecutionStatus.COMPLETED if exit_code == 0 else ExecutionStatus.FAILED
        self._runtime_end(turn, call.call_id, self._exec_end(begin, output, exit_code), status)
        yield None
        self._finish(turn, call, f"Process exited with code {exit_code}\nOutput:\n{output}")

    def _run_write_stdin(self, turn: _Turn, call: _Call) -> Actor:
        thread = turn.thread
        assert call.session is not None
        exec_id, begin = thread.sessions[call.session]
        self._dispatch(turn, call, WriteStdinKind())
        self._emit(
            StdinTargetResolved(tool_call_id=call.call_id, exec_tool_call_id=exec_id),
            thread,
            turn.turn_id,
        )
        yield None
        exits = self.rng.random() < 0.6
        output = f"got:{call.arguments['chars']}"
        if exits:
            del thread.sessions[call.session]
            self._finish(turn, call, f"Process exited with code 0\nOutput:\n{output}")
            self._runtime_end(turn, exec_id, self._exec_end(begin, output, 0))
        else:
            self._finish(
                turn, call, f"Process running with session ID {call.session}\nOutput:\n{output}"
            )

    def _run_mcp(self, turn: _Turn, call: _Call) -> Actor:
        server, tool = call.arguments["server"], call.arguments["tool"]
        self._dispatch(turn, call, OtherKind(name=tool))
        yield None
        yield from self._mcp_runtime(turn, call.call_id, server, tool, call.arguments["args"])
        self._finish(
            turn, call, ["Wall time: 0.0034 seconds\nOutput:", f"{tool}: {self._text(1, 5)}"]
        )

    def _mcp_runtime(
        self, turn: _Turn, tool_call_id: str, server: str, tool: str, args: Json
    ) -> Actor:
        kind = McpKind(server=server, tool=tool)
        invocation = {"server": server, "tool": tool, "arguments": args}
        self._runtime_start(
            turn,
            tool_call_id,
            kind,
            {"call_id": tool_call_id, "turn_id": turn.turn_id, "invocation": invocation},
        )
        self._emit(
            McpToolCallCorrelationAssigned(tool_call_id=tool_call_id, mcp_call_id=self._uuid())
        )
        yield None
        if self.rng.random() < 0.15:
            result: Json = {"Err": f"tool call failed: {self._word()}"}
            status = ExecutionStatus.FAILED
        else:
            result = {
                "Ok": {"content": [{"type": "text", "text": self._text(1, 5)}], "isError": False}
            }
            status = ExecutionStatus.COMPLETED
        self._runtime_end(turn, tool_call_id, {"result": result}, status)

    def _run_patch(self, turn: _Turn, call: _Call) -> Actor:
        self._dispatch(turn, call, ApplyPatchKind())
        yield None
        changes = {call.arguments["path"]: {"type": "add", "content": f"print({self._word()!r})\n"}}
        begin = {
            "call_id": call.call_id,
            "turn_id": turn.turn_id,
            "auto_approved": True,
            "changes": changes,
        }
        self._runtime_start(turn, call.call_id, ApplyPatchKind(), begin)
        yield None
        ok = self.rng.random() < 0.85
        end = {
            "call_id": call.call_id,
            "turn_id": turn.turn_id,
            "stdout": "Success. Updated the following files:\n" if ok else "",
            "stderr": "" if ok else "patch did not apply",
            "success": ok,
            "changes": changes,
            "status": "completed" if ok else "failed",
        }
        self._runtime_end(
            turn, call.call_id, end, ExecutionStatus.COMPLETED if ok else ExecutionStatus.FAILED
        )
        self._finish(turn, call, "Success." if ok else "apply_patch verification failed")

    def _run_plan(self, turn: _Turn, call: _Call) -> Actor:
        self._dispatch(turn, call, OtherKind(name="update_plan"))
        yield None
        self._finish(turn, call, "Plan updated")

    def _run_lookup(self, turn: _Turn, call: _Call) -> Actor:
        self._dispatch(turn, call, OtherKind(name="lookup"))
        yield None
        self._finish(turn, call, self._odd_json() if self.rng.random() < 0.5 else "no match")

    def _odd_json(self) -> str:
        """JSON text whose re-serialization is easy to get wrong: number spellings,
        escapes, key order, nesting, scalars and surrounding whitespace."""
        rng = self.rng
        numbers = (
            "0", "-0", "1.0", "-1.50", "1E5", "1e+5", "2.5E-3", "1e-7", "0.1", "100",
            "123456789012345678901234567890", "-9223372036854775809", "18446744073709551616",
            "1.7976931348623157e308", "5e-324", "3.141592653589793238462643383279",
        )  # fmt: skip
        strings = (
            r'"plain"', r'"caf\u00e9"', r'"\ud83d\ude00 emoji"', r'"tab\tnew\nline"',
            r'"quote \" and \\ slash \/"', r'"\u0000\u001f control"', '"数据 ключ"',
            '""', '"</script>"',
        )  # fmt: skip

        def value(depth: int) -> str:
            kind = rng.random()
            if depth > 2 or kind < 0.35:
                return rng.choice(numbers)
            if kind < 0.6:
                return rng.choice(strings)
            if kind < 0.7:
                return rng.choice(("true", "false", "null", "[]", "{}"))
            if kind < 0.85:
                items = ", ".join(value(depth + 1) for _ in range(rng.randint(1, 3)))
                return f"[{items}]"
            keys = rng.sample(("zeta", "alpha", "Beta", "_x", "é", "10", "2", "a b"), 3)
            fields = ", ".join(f'"{key}": {value(depth + 1)}' for key in keys)
            return "{" + fields + "}"

        text = value(0) if rng.random() < 0.15 else value(1)
        if not text.startswith("{") and rng.random() < 0.85:
            text = '{"query": ' + text + ', "limit": ' + rng.choice(numbers) + "}"
        return rng.choice(("", " ", "\n")) + text + rng.choice(("", "  ", "\n"))

    def _run_fail(self, turn: _Turn, call: _Call) -> Actor:
        self._dispatch(turn, call, OtherKind(name=call.item["name"]))
        yield None
        self._finish(
            turn,
            call,
            _failure_text(call.item["name"], call.arguments),
            status=ExecutionStatus.FAILED,
            error=True,
        )

    # --- code-mode cells ---

    def _run_cell(self, turn: _Turn, call: _Call) -> Actor:
        yield from self._cell(turn, call, yielded=self.rng.random() < 0.25)

    def _run_cell_yield(self, turn: _Turn, call: _Call) -> Actor:
        yield from self._cell(turn, call, yielded=True)

    def _cell_response(
        self, kind: str, cell: str, text: str, error: str | None = None
    ) -> RawPayloadRef:
        body: Json = {"cell_id": cell, "content_items": [{"type": "input_text", "text": text}]}
        if kind == "Result":
            body["error_text"] = error
        return self._ref(PayloadKind.TOOL_RESULT, {"response": {kind: body}})

    def _nested_tools(self, turn: _Turn, cell: str) -> Actor:
        """Tool calls made by a running cell's JavaScript."""
        thread = turn.thread
        for _ in range(self.rng.choice((0, 1, 1, 2))):
            tool_call_id = f"exec-{self._uuid()}"
            runtime_tool_id = f"tool-{thread.next_runtime_tool}"
            thread.next_runtime_tool += 1
            mcp = self.rng.random() < 0.3
            if mcp:
                kind: ToolCallKind = OtherKind(name="echo")
                invocation: Json = {"tool_name": "echo", "tool_namespace": "mcp__echo"}
                args: Json = {"text": self._word()}
            else:
                kind = ExecCommandKind()
                invocation = {"tool_name": "exec_command", "tool_namespace": None}
                args = {"cmd": f"echo {self._word()}"}
            arguments = json.dumps(args, separators=(",", ":"), ensure_ascii=False)
            invocation["payload"] = {"type": "function", "arguments": arguments}
            ref = self._ref(PayloadKind.TOOL_INVOCATION, invocation)
            requester: RawToolCallRequester = CodeCellRequester(runtime_cell_id=cell)
            self._emit(
                ToolCallStarted(
                    tool_call_id=tool_call_id,
                    model_visible_call_id=None,
                    code_mode_runtime_tool_id=runtime_tool_id,
                    requester=requester,
                    kind=kind,
                    summary=GenericSummary(
                        label=invocation["tool_name"], input_preview=arguments, output_preview=None
                    ),
                    invocation_payload=ref,
                ),
                thread,
                turn.turn_id,
            )
            yield None
            if mcp:
                yield from self._mcp_runtime(turn, tool_call_id, "echo", "echo", args)
                value: Any = {"content": [{"type": "text", "text": args["text"]}]}
            else:
                pid = self.rng.randrange(1000, 99999)
                begin = self._exec_begin(turn, tool_call_id, args["cmd"], pid)
                self._runtime_start(turn, tool_call_id, ExecCommandKind(), begin)
                output = f"{self._word()}\n"
                self._runtime_end(turn, tool_call_id, self._exec_end(begin, output, 0))
                value = {
                    "chunk_id": f"{pid:x}",
                    "exit_code": 0,
                    "original_token_count": 1,
                    "output": output,
                }
            result = self._ref(
                PayloadKind.TOOL_RESULT, {"type": "code_mode_response", "value": value}
            )
            self._emit(
                ToolCallEnded(
                    tool_call_id=tool_call_id,
                    status=ExecutionStatus.COMPLETED,
                    result_payload=result,
                ),
                thread,
                turn.turn_id,
            )
            yield None

    def _cell(self, turn: _Turn, call: _Call, *, yielded: bool) -> Actor:
        thread = turn.thread
        rng = self.rng
        self._dispatch(turn, call, OtherKind(name="exec"))
        cell = str(thread.next_cell)
        thread.next_cell += 1
        self._emit(
            CodeCellStarted(
                runtime_cell_id=cell,
                model_visible_call_id=call.call_id,
                source_js=call.item["input"],
            ),
            thread,
            turn.turn_id,
        )
        yield None
        yield from self._nested_tools(turn, cell)
        if yielded:
            ref = (
                self._cell_response("Yielded", cell, "still running")
                if rng.random() < 0.8
                else None
            )
            self._emit(
                CodeCellInitialResponse(
                    runtime_cell_id=cell, status=CodeCellRuntimeStatus.YIELDED, response_payload=ref
                ),
                thread,
                turn.turn_id,
            )
            thread.yielded_cells.append(cell)
            self._finish(
                turn,
                call,
                [f"Script running with cell ID {cell}\nWall time 0.5 seconds\nOutput:\n"],
            )
            return
        failed = rng.random() < 0.15
        status = CodeCellRuntimeStatus.FAILED if failed else CodeCellRuntimeStatus.COMPLETED
        text = "nested result: " + self._text(1, 4)
        error = "TypeError: x is undefined" if failed else None
        if rng.random() < 0.8:
            self._emit(
                CodeCellInitialResponse(
                    runtime_cell_id=cell,
                    status=status,
                    response_payload=self._cell_response("Result", cell, text, error),
                ),
                thread,
                turn.turn_id,
            )
        self._emit(
            CodeCellEnded(
                runtime_cell_id=cell,
                status=status,
                response_payload=self._cell_response("Result", cell, text, error),
            ),
            thread,
            turn.turn_id,
        )
        headline = "Script failed" if failed else "Script completed"
        self._finish(turn, call, [f"{headline}\nWall time 0.1 seconds\nOutput:\n", text])

    def _run_wait_cell(self, turn: _Turn, call: _Call) -> Actor:
        thread = turn.thread
        assert call.cell is not None
        self._dispatch(turn, call, OtherKind(name="wait"))
        if self.schema_3 and self.rng.random() < 0.9:
            self._emit(
                CodeCellWaitTargetResolved(tool_call_id=call.call_id, runtime_cell_id=call.cell),
                thread,
                turn.turn_id,
            )
        yield None
        yield from self._nested_tools(turn, call.cell)
        status = self.rng.choice(
            (CodeCellRuntimeStatus.COMPLETED,) * 3 + (CodeCellRuntimeStatus.TERMINATED,)
        )
        text = f"cell {call.cell} {status.value}"
        self._emit(
            CodeCellEnded(
                runtime_cell_id=call.cell,
                status=status,
                response_payload=self._cell_response("Result", call.cell, text),
            ),
            thread,
            turn.turn_id,
        )
        self._finish(turn, call, f"Script {status.value}\nOutput:\n{text}")

    # --- multi-agent tools (root thread) ---

    def _activity(self, call: _Call, child: _Thread, kind: str) -> Json:
        return {
            "model": child.model,
            "reasoning_effort": None,
            "event_id": call.call_id,
            "occurred_at_ms": self.now,
            "agent_thread_id": child.thread_id,
            "agent_path": child.agent_path,
            "kind": kind,
        }

    def _run_spawn(self, turn: _Turn, call: _Call) -> Actor:
        parent = turn.thread
        self._dispatch(turn, call, SpawnAgentKind())
        yield None
        if not self.every and self.rng.random() < 0.05:
            # No child: the spawn fails (v1 events report a null new_thread_id).
            spawn = {
                "call_id": call.call_id,
                "sender_thread_id": parent.thread_id,
                "prompt": call.arguments["message"],
                "model": parent.model,
                "reasoning_effort": "medium",
            }
            self._runtime_start(turn, call.call_id, SpawnAgentKind(), spawn)
            end = {**spawn, "new_thread_id": None, "new_agent_nickname": None}
            end.update(status="not_found", completed_at_ms=self.now)
            self._runtime_end(turn, call.call_id, end, ExecutionStatus.FAILED)
            self._finish(
                turn, call, "agent limit reached", status=ExecutionStatus.FAILED, error=True
            )
            return
        child = self._new_thread(f"{parent.agent_path}/{call.arguments['task_name']}", parent)
        self.children.append(child)
        parent.kids.append(child)
        child.depth = parent.depth + 1
        self._start_thread(child)
        header = _header("NEW_TASK", child.agent_path, parent.agent_path)
        task = self._agent_message(
            parent.agent_path, child.agent_path, [header], call.arguments["message"]
        )
        child.inbox.append((task, True))
        self._spawn_actor(self._child_actor(child))
        yield None
        if self.rng.random() < 0.3:
            # Collab (v1) begin/end events instead of a sub-agent activity.
            spawn = {
                "call_id": call.call_id,
                "sender_thread_id": parent.thread_id,
                "prompt": call.arguments["message"],
                "model": child.model,
                "reasoning_effort": "medium",
            }
            self._runtime_start(
                turn, call.call_id, SpawnAgentKind(), {**spawn, "started_at_ms": self.now}
            )
            end = {
                **spawn,
                "new_thread_id": child.thread_id,
                "new_agent_nickname": child.nickname or "Agent",
                "status": "pending_init",
                "completed_at_ms": self.now,
            }
            self._runtime_end(turn, call.call_id, end)
        else:
            self._runtime_end(turn, call.call_id, self._activity(call, child, "started"))
        self._finish(turn, call, json.dumps({"task_name": child.agent_path}, separators=(",", ":")))

    def _run_wait_agent(self, turn: _Turn, call: _Call) -> Actor:
        thread = turn.thread
        self._dispatch(turn, call, WaitAgentKind())
        self._runtime_start(
            turn,
            call.call_id,
            WaitAgentKind(),
            {
                "started_at_ms": self.now,
                "sender_thread_id": thread.thread_id,
                "receiver_thread_ids": [],
                "call_id": call.call_id,
            },
        )
        yield lambda: bool(thread.inbox) or not any(child.busy for child in thread.kids)
        timed_out = not thread.inbox
        self._runtime_end(
            turn,
            call.call_id,
            {
                "sender_thread_id": thread.thread_id,
                "call_id": call.call_id,
                "completed_at_ms": self.now,
                "statuses": {},
            },
        )
        self._finish(
            turn,
            call,
            json.dumps(
                {"message": "Wait completed.", "timed_out": timed_out}, separators=(",", ":")
            ),
        )

    def _run_followup(self, turn: _Turn, call: _Call) -> Actor:
        yield from self._message_child(
            turn, call, AssignAgentTaskKind(), "FOLLOWUP_TASK", trigger=True
        )

    def _run_send(self, turn: _Turn, call: _Call) -> Actor:
        yield from self._message_child(turn, call, SendMessageKind(), "MESSAGE", trigger=False)

    def _message_child(
        self, turn: _Turn, call: _Call, kind: ToolCallKind, message_type: str, *, trigger: bool
    ) -> Actor:
        parent = turn.thread
        child = call.target
        assert child is not None
        self._dispatch(turn, call, kind)
        yield None
        header = _header(message_type, child.agent_path, parent.agent_path)
        delivered = self._agent_message(
            parent.agent_path, child.agent_path, [header], call.arguments["message"]
        )
        if not trigger and not self.every and self.rng.random() < 0.3:
            # The older delivery: a message whose text is an InterAgentCommunication.
            communication = {
                "author": parent.agent_path,
                "recipient": child.agent_path,
                "other_recipients": [],
                "content": call.arguments["message"],
                "trigger_turn": False,
            }
            delivered = self._message(
                "assistant", json.dumps(communication), item_id=f"msg_{self._uuid()}"
            )
        child.inbox.append((delivered, trigger))
        self._runtime_end(turn, call.call_id, self._activity(call, child, "interacted"))
        self._finish(turn, call, json.dumps({"submission_id": self._uuid()}, separators=(",", ":")))

    def _run_close(self, turn: _Turn, call: _Call) -> Actor:
        parent = turn.thread
        child = call.target
        assert child is not None
        self._dispatch(turn, call, CloseAgentKind())
        yield None
        if self.rng.random() < 0.5:
            self._runtime_end(turn, call.call_id, self._activity(call, child, "interrupted"))
        else:
            self._runtime_start(
                turn,
                call.call_id,
                CloseAgentKind(),
                {
                    "call_id": call.call_id,
                    "sender_thread_id": parent.thread_id,
                    "receiver_thread_id": child.thread_id,
                    "started_at_ms": self.now,
                },
            )
            self._runtime_end(
                turn,
                call.call_id,
                {
                    "call_id": call.call_id,
                    "sender_thread_id": parent.thread_id,
                    "receiver_thread_id": child.thread_id,
                    "receiver_agent_nickname": child.nickname,
                    "status": "shutdown",
                    "completed_at_ms": self.now,
                },
            )
        if not child.ended:
            self._end_thread(child, RolloutStatus.ABORTED)
        self._finish(turn, call, json.dumps({"status": "shutdown"}, separators=(",", ":")))

    # --- compaction ---

    def _compaction_turn(self, thread: _Thread) -> Actor:
        """A turn that only compacts: remote (traced) or local (invisible but for acceptance)."""
        turn = self._start_turn(thread)
        yield None
        if self.rng.random() < 0.7:
            yield from self._compaction(turn, mid_turn=False)
            if self.rng.random() < 0.2:
                yield from self._compaction(turn, mid_turn=False)
        else:
            summary = self._message(
                "user", f"Summary: {self._text()}", item_id=f"msg_sum_{self._next()}"
            )
            self._accept(turn, summary)
            users = [item for item in thread.history if item.get("role") == "user"][-2:]
            thread.history = [*users, summary]
            thread.last_response = None
        self._emit(
            CodexTurnEnded(codex_turn_id=turn.turn_id, status=ExecutionStatus.COMPLETED),
            thread,
            turn.turn_id,
        )
        self._protocol("task_complete", {"turn_id": turn.turn_id, "last_agent_message": None})
        yield None

    def _compaction(self, turn: _Turn, *, mid_turn: bool) -> Actor:
        thread = turn.thread
        rng = self.rng
        compaction_id = self._uuid()
        attempts = 2 if rng.random() < 0.3 or (self.every and mid_turn) else 1
        for attempt in range(attempts):
            self.compaction_requests += 1
            number = self.compaction_requests
            request_id = f"compaction_request:{number}"
            request = {
                "model": thread.model,
                "instructions": _BASE_TEXT,
                "input": [*thread.history, {"type": "compaction_trigger"}],
                "parallel_tool_calls": True,
            }
            self._emit(
                CompactionRequestStarted(
                    compaction_id=compaction_id,
                    compaction_request_id=request_id,
                    thread_id=thread.thread_id,
                    codex_turn_id=turn.turn_id,
                    model=thread.model,
                    provider_name=self.provider,
                    request_payload=self._ref(PayloadKind.COMPACTION_REQUEST, request),
                ),
                thread,
                turn.turn_id,
            )
            yield None
            if attempt < attempts - 1 or (not self.every and rng.random() < 0.08):
                self._emit(
                    CompactionRequestFailed(
                        compaction_id=compaction_id,
                        compaction_request_id=request_id,
                        error="unexpected status 502 Bad Gateway",
                    ),
                    thread,
                    turn.turn_id,
                )
                continue
            marker = {
                "type": "compaction",
                "id": f"cmp_{number}",
                "encrypted_content": f"ENC-COMPACTION-{number}",
            }
            self._emit(
                CompactionRequestCompleted(
                    compaction_id=compaction_id,
                    compaction_request_id=request_id,
                    response_payload=self._ref(
                        PayloadKind.COMPACTION_RESPONSE, {"output_items": [marker]}
                    ),
                ),
                thread,
                turn.turn_id,
            )
            context = [
                {**item, "id": f"msg_{self._uuid()}"}
                for item in thread.history[:2]
                if item["type"] == "message" and item["role"] != "assistant"
            ]
            users = [
                item
                for item in thread.history
                if item["type"] == "message" and item["role"] == "user"
            ]
            replacement = [*context, *users[-rng.randint(1, 3) :], marker]
            checkpoint = {"input_history": thread.history, "replacement_history": replacement}
            self._emit(
                CompactionInstalled(
                    compaction_id=compaction_id,
                    checkpoint_payload=self._ref(PayloadKind.COMPACTION_CHECKPOINT, checkpoint),
                ),
                thread,
                turn.turn_id,
            )
            thread.history = replacement
            thread.last_response = None
            yield None
            return


def _pick(value: int | None, drawn: int) -> int:
    """An option's value, or the one drawn from the seed."""
    return drawn if value is None else value


def _failure_text(tool: str, arguments: Json) -> str:
    """The error a failing tool reports."""
    if "cell_id" in arguments:
        return f"exec cell {arguments['cell_id']} not found"
    return f"{tool}: unable to locate image at `{arguments.get('path')}`"


def _header(message_type: str, task: str, sender: str) -> str:
    """The text Codex puts before an inter-agent message's payload."""
    return f"Message Type: {message_type}\nTask name: {task}\nSender: {sender}\nPayload:\n"


def _any_of(conditions: list[Wait]) -> Wait:
    """A condition true when any of ``conditions`` is."""
    return lambda: any(condition() for condition in conditions)


def _usage_variant(draw: float, usage: Json) -> Json | None:
    """Token usage as providers report it: usually whole, sometimes absent or partial."""
    if draw < 0.04:
        return None
    if draw < 0.07:
        return {**usage, "cached_input_tokens": None}
    if draw < 0.09:
        return {key: value for key, value in usage.items() if key != "cache_write_input_tokens"}
    return usage


def _request_view(item: Json) -> Json:
    """How a history item looks in a later request: reasoning with an encrypted identity
    is re-sent without its readable ``content``."""
    if item["type"] == "reasoning" and "content" in item and item.get("encrypted_content"):
        return {key: value for key, value in item.items() if key != "content"}
    return item
