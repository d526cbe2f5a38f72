"""What a bundle says, in the terms a test of an app checks: threads, turns, calls and edges.

Read from the reduced state (``reduce_bundle``, the state Codex writes), so a test checks the
shapes Codex sees, not only that Codex accepts the bundle.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from otel_rollout import reduce_bundle, validate_bundle, write_state
from otel_rollout._bundle._models import RawPayloadRef
from otel_rollout._bundle._reader import Bundle
from otel_rollout._reduce._payload import read_value
from support.codex import codex_reduce

RAW_REF = msgspec.json.Decoder(RawPayloadRef)
ANY_JSON = msgspec.json.Decoder()


@dataclass
class ThreadShape:
    """One thread: who it is, where it came from, what it did."""

    agent_path: str
    nickname: str | None
    origin: str
    """``root`` or ``spawned``."""
    model: str | None
    turns: int = 0
    inferences: int = 0
    tools: list[tuple[str, str | None, str]] = field(default_factory=list)
    """(label, model-visible call id, kind) of each tool call, in order."""
    user_texts: list[str] = field(default_factory=list)
    """The user messages of its requests, in order, each once."""
    replies: list[str] = field(default_factory=list)
    """The assistant texts its model calls answered, in order."""
    instructions: list[str] = field(default_factory=list)
    """The system texts of its requests (system messages, the request's ``instructions``),
    each once."""
    arguments: dict[str, str] = field(default_factory=dict)
    """Model-visible call id -> the tool call's arguments as its invocation payload holds them."""


@dataclass
class RolloutShape:
    """Threads by agent path, and the interaction edges as (kind, from path, to path, call id)."""

    threads: dict[str, ThreadShape]
    edges: list[tuple[str, str, str, str | None]]
    state: dict[str, Any]


def _texts(item: dict[str, Any]) -> list[str]:
    return [part["text"] for part in item["body"]["parts"] if part.get("type") == "text"]


def rollout_shape(bundle: Path) -> RolloutShape:
    """The shape of ``bundle``'s reduced state."""
    with tempfile.TemporaryDirectory() as scratch:
        state = json.loads(write_state(reduce_bundle(bundle), Path(scratch) / "s.json").read_text())
    threads = state["threads"]
    items = state["conversation_items"]
    shapes = {
        thread["agent_path"]: ThreadShape(
            agent_path=thread["agent_path"],
            nickname=thread.get("nickname"),
            origin=thread["origin"]["type"],
            model=thread.get("default_model"),
        )
        for thread in threads.values()
    }

    def path(thread_id: str) -> str:
        return str(threads[thread_id]["agent_path"])

    reader = Bundle(bundle)

    def payload(payload_id: str | None) -> Any:
        ref = state["raw_payloads"].get(payload_id or "")
        if ref is None:
            return None
        return read_value(reader.payloads, RAW_REF.decode(json.dumps(ref)), ANY_JSON)

    for turn in state["codex_turns"].values():
        shapes[path(turn["thread_id"])].turns += 1
    for call in sorted(
        state["inference_calls"].values(), key=lambda c: c["execution"]["started_seq"]
    ):
        shape = shapes[path(call["thread_id"])]
        shape.inferences += 1
        request = payload(call["raw_request_payload_id"])
        if isinstance(request, dict) and isinstance(request.get("instructions"), str):
            if request["instructions"] not in shape.instructions:
                shape.instructions.append(request["instructions"])
        for item_id in call["request_item_ids"]:
            item = items[item_id]
            if item["kind"] == "message" and item["role"] == "user":
                for text in _texts(item):
                    if text not in shape.user_texts:
                        shape.user_texts.append(text)
            if item["kind"] == "message" and item["role"] in ("system", "developer"):
                for text in _texts(item):
                    if text not in shape.instructions:
                        shape.instructions.append(text)
        for item_id in call["response_item_ids"]:
            item = items[item_id]
            if item["kind"] == "message" and item["role"] == "assistant":
                shape.replies.extend(_texts(item))
    for tool in sorted(state["tool_calls"].values(), key=lambda c: c["execution"]["started_seq"]):
        kind = tool["kind"]["type"]
        shape = shapes[path(tool["thread_id"])]
        shape.tools.append((tool["summary"].get("label"), tool["model_visible_call_id"], kind))
        body = payload(tool["raw_invocation_payload_id"])
        if body is not None and tool["model_visible_call_id"]:
            shape.arguments[tool["model_visible_call_id"]] = body["payload"]["arguments"]
    edges = []
    for edge in state["interaction_edges"].values():
        source, target = edge["source"], edge["target"]
        call_id = source.get("tool_call_id")
        if source["type"] == "tool_call":
            source_path = path(state["tool_calls"][call_id]["thread_id"])
        elif source["type"] == "thread":
            source_path = path(source["thread_id"])
        else:
            source_path = path(items[source["item_id"]]["thread_id"])
        if target["type"] == "thread":
            target_path = path(target["thread_id"])
        else:
            target_path = path(items[target["item_id"]]["thread_id"])
        edges.append((edge["kind"], source_path, target_path, call_id))
    return RolloutShape(shapes, sorted(edges), state)


def assert_codex_accepts(bundle: Path, codex: Path, scratch: Path) -> None:
    """The bundle validates, and Codex reduces it to the bytes ``reduce_bundle`` gives."""
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    theirs = scratch / f"{bundle.name}.codex.json"
    done = codex_reduce(codex, bundle, theirs)
    assert done.returncode == 0, done.stderr
    ours = write_state(reduce_bundle(bundle), scratch / f"{bundle.name}.ours.json")
    assert ours.read_bytes() == theirs.read_bytes()
