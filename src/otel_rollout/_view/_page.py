"""A rollout as one self-contained HTML page: the data the page draws, and the file itself.

The page is ``assets/view.html`` with the stylesheet, the script and two JSON blocks
inline: the rollout (threads, edges, every timed object, the conversation) parsed at
load, and the raw payloads (:mod:`._payloads`) parsed the first time one is asked for.
No request leaves the page: no server, no CDN, a Content-Security-Policy that forbids
them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Final

import msgspec

from otel_rollout._bundle._files import write_whole
from otel_rollout._bundle._reader import Bundle
from otel_rollout._reduce import reduce_bundle
from otel_rollout._reduce._model import RolloutTrace
from otel_rollout._show import tool_name
from otel_rollout._version import package_version
from otel_rollout._view._facts import Facts, part_text, read_facts
from otel_rollout._view._payloads import pack_payloads

PAGE_FORMAT: Final = "otel-rollout.view/1"
"""Value of the page data's ``format`` key."""

TEXT_CHARS: Final = 20_000
"""Longest text kept inline for one conversation item or tool text (the payload has all)."""

_MARKERS: Final = ("/*STYLE*/", "{{TITLE}}", "{{DATA}}", "{{PAYLOADS}}", "/*SCRIPT*/")


def default_output(trace_id: str) -> Path:
    """``rollout-<trace_id>.html`` in the current directory."""
    return Path(f"rollout-{trace_id}.html")


def write_view(
    bundle_path: str | os.PathLike[str],
    output: str | os.PathLike[str] | None = None,
    *,
    warn: Any = None,
) -> Path:
    """Reduce the bundle and write its page to ``output`` (mode 0600, replaced whole).

    Raises:
        BundleError: The bundle is malformed.
        OSError: The page cannot be written.
    """
    trace = reduce_bundle(bundle_path, warn=warn)
    bundle = Bundle(bundle_path)
    html = render_html(bundle, trace)
    target = Path(output) if output is not None else default_output(trace.trace_id)
    write_whole(str(target), html)
    return target


def render_html(bundle: Bundle, trace: RolloutTrace) -> bytes:
    """The page of ``trace`` (reduced from ``bundle``) as HTML bytes."""
    facts = read_facts(bundle, trace)
    data = page_data(trace, facts)
    payloads = pack_payloads(bundle, trace.raw_payloads).to_builtins()
    template = _asset("view.html")
    fills = {
        "/*STYLE*/": _asset("view.css"),
        "{{TITLE}}": _escape_html(f"rollout {trace.rollout_id}"),
        "{{DATA}}": _script_json(data),
        "{{PAYLOADS}}": _script_json(payloads),
        "/*SCRIPT*/": _asset("view.js"),
    }
    pieces: list[str] = []
    rest = template
    for marker in _MARKERS:  # in template order: a filled value is never searched again
        before, found, rest = rest.partition(marker)
        if not found:
            raise ValueError(f"view.html lacks {marker}")
        pieces.extend((before, fills[marker]))
    pieces.append(rest)
    return "".join(pieces).encode("utf-8")


def _asset(name: str) -> str:
    """A file of ``assets/`` (package data: the page's HTML, CSS and JavaScript)."""
    return (
        resources.files("otel_rollout._view").joinpath("assets").joinpath(name).read_text("utf-8")
    )


def _script_json(value: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: every ``<`` escaped."""
    return msgspec.json.encode(value).decode().replace("<", "\\u003c")


def _escape_html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def page_data(trace: RolloutTrace, facts: Facts) -> dict[str, Any]:
    """What the page draws, as builtins: the rollout, threads, edges, objects, conversation."""
    return _PageBuilder(trace, facts).build()


class _PageBuilder:
    def __init__(self, trace: RolloutTrace, facts: Facts) -> None:
        self.trace = trace
        self.facts = facts
        self.objects: dict[str, dict[str, Any]] = {}
        self.tool_by_call_id: dict[str, str] = {}
        self.inference_of_tool: dict[str, str] = {}
        for call_id, call in trace.inference_calls.items():
            for tool_id in call.tool_call_ids_started_by_response:
                self.inference_of_tool.setdefault(tool_id, call_id)
        for tool_id, tool in sorted(trace.tool_calls.items()):
            if tool.model_visible_call_id is not None:
                self.tool_by_call_id.setdefault(tool.model_visible_call_id, tool_id)

    def build(self) -> dict[str, Any]:
        trace = self.trace
        for turn_id, turn in trace.codex_turns.items():
            self._object(
                turn_id,
                "turn",
                turn.thread_id,
                turn_id,
                turn.execution,
                "turn",
                raw=[],
            )
        for call_id, call in trace.inference_calls.items():
            self._object(
                call_id,
                "inference",
                call.thread_id,
                call.codex_turn_id,
                call.execution,
                call.model,
                raw=[
                    call.raw_request_payload_id,
                    *([call.raw_response_payload_id] if call.raw_response_payload_id else []),
                ],
                provider=call.provider_name,
                response_id=call.response_id,
                usage=msgspec.to_builtins(call.usage) if call.usage else None,
                tools=list(call.tool_call_ids_started_by_response),
                request_items=len(call.request_item_ids),
                response_items=list(call.response_item_ids),
            )
        for tool_id, tool in trace.tool_calls.items():
            kind = msgspec.to_builtins(tool.kind)
            requester = msgspec.to_builtins(tool.requester)
            self._object(
                tool_id,
                "tool",
                tool.thread_id,
                tool.started_by_codex_turn_id,
                tool.execution,
                tool_name(kind),
                raw=[
                    p
                    for p in (
                        tool.raw_invocation_payload_id,
                        tool.raw_result_payload_id,
                        *tool.raw_runtime_payload_ids,
                    )
                    if p
                ],
                call_id=tool.model_visible_call_id,
                inference=self.inference_of_tool.get(tool_id),
                cell=requester.get("code_cell_id"),
                arguments=_cut(self.facts.arguments.get(tool_id)),
                result=_cut(self.facts.results.get(tool_id)),
                items=[*tool.model_visible_call_item_ids, *tool.model_visible_output_item_ids],
                exit_code=self._exit_code(tool.terminal_operation_id),
            )
        for cell_id, cell in trace.code_cells.items():
            self._object(
                cell_id,
                "code_cell",
                cell.thread_id,
                cell.codex_turn_id,
                cell.execution,
                f"code cell {cell.runtime_cell_id or ''}".rstrip(),
                raw=_present(cell.raw_initial_response_payload_id, cell.raw_result_payload_id),
                source=_cut(cell.source_js),
                tools=list(cell.nested_tool_call_ids),
                runtime_status=cell.runtime_status.value,
                call_id=cell.model_visible_call_id,
            )
        for request_id, request in trace.compaction_requests.items():
            compaction = trace.compactions.get(request.compaction_id)
            self._object(
                request_id,
                "compaction",
                request.thread_id,
                request.codex_turn_id,
                request.execution,
                f"compaction {request.model}",
                raw=_present(request.raw_request_payload_id, request.raw_response_payload_id),
                installed=compaction is not None,
                input_items=len(compaction.input_item_ids) if compaction else None,
                replacement_items=len(compaction.replacement_item_ids) if compaction else None,
            )
        threads = [self._thread(thread_id) for thread_id in trace.threads]
        root = trace.root_thread_id
        threads.sort(key=lambda t: (t["id"] != root, t["start"], t["id"]))
        failed_turns = sum(t["failed_turns"] for t in threads)
        retried = sum(t["retried"] for t in threads)
        return {
            "format": PAGE_FORMAT,
            "generator": f"otel-rollout {package_version()}",
            "rollout": {
                "id": trace.rollout_id,
                "trace_id": trace.trace_id,
                "schema": trace.schema_version,
                "status": trace.status.value,
                "start": trace.started_at_unix_ms,
                "end": trace.ended_at_unix_ms,
                "root": root,
                "outcome": "failed" if failed_turns else "retried" if retried else "ok",
                "failed_turns": failed_turns,
                "retried": retried,
                "counts": {
                    "threads": len(trace.threads),
                    "turns": len(trace.codex_turns),
                    "inference_calls": len(trace.inference_calls),
                    "tool_calls": len(trace.tool_calls),
                    "code_cells": len(trace.code_cells),
                    "compactions": len(trace.compactions),
                    "interaction_edges": len(trace.interaction_edges),
                },
            },
            "threads": threads,
            "edges": self._edges(threads),
            "objects": self.objects,
            "items": {
                item_id: self._item(item_id)
                for thread in trace.threads.values()
                for item_id in thread.conversation_item_ids
                if item_id in trace.conversation_items
            },
        }

    def _object(
        self,
        object_id: str,
        kind: str,
        thread_id: str,
        turn_id: str | None,
        execution: Any,
        label: str,
        *,
        raw: list[str],
        **extra: Any,
    ) -> None:
        self.objects[object_id] = {
            "id": object_id,
            "kind": kind,
            "thread": thread_id,
            "turn": turn_id,
            "start": execution.started_at_unix_ms,
            "seq": execution.started_seq,
            "end": execution.ended_at_unix_ms,
            "status": execution.status.value,
            "label": label,
            "error": _cut(self.facts.errors.get(object_id)),
            "raw": raw,
            **extra,
        }

    def _thread(self, thread_id: str) -> dict[str, Any]:
        trace = self.trace
        thread = trace.threads[thread_id]
        origin = msgspec.to_builtins(thread.origin)
        mine = [o for o in self.objects.values() if o["thread"] == thread_id]
        turns = sorted((o for o in mine if o["kind"] == "turn"), key=_order)
        failed_turns = 0
        retried = 0
        for turn in turns:
            calls = sorted(
                (o for o in mine if o["kind"] == "inference" and o["turn"] == turn["id"]),
                key=_order,
            )
            failed = [call["status"] == "failed" for call in calls]
            turn_failed = turn["status"] == "failed" or bool(failed and failed[-1])
            turn["outcome"] = "failed" if turn_failed else "retried" if any(failed) else "ok"
            failed_turns += turn_failed
            retried += sum(failed[:-1])

        def count(kind: str) -> int:
            return sum(1 for o in mine if o["kind"] == kind)

        return {
            "id": thread_id,
            "path": thread.agent_path,
            "nickname": thread.nickname,
            "model": thread.default_model,
            "status": thread.execution.status.value,
            "start": thread.execution.started_at_unix_ms,
            "end": thread.execution.ended_at_unix_ms,
            "origin": origin.get("type"),
            "parent": origin.get("parent_thread_id"),
            "task": origin.get("task_name"),
            "role": origin.get("agent_role") or None,
            "outcome": "failed" if failed_turns else "retried" if retried else "ok",
            "failed_turns": failed_turns,
            "retried": retried,
            "counts": {
                "turns": len(turns),
                "inference_calls": count("inference"),
                "tool_calls": count("tool"),
                "code_cells": count("code_cell"),
                "compactions": sum(
                    1 for c in trace.compactions.values() if c.thread_id == thread_id
                ),
            },
            "timeline": [o["id"] for o in sorted(mine, key=_order)],
            "items": [i for i in thread.conversation_item_ids if i in trace.conversation_items],
        }

    def _edges(self, threads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The interaction edges, plus a spawn edge for a child whose spawn was not recorded."""
        edges = [self._edge(edge_id) for edge_id in self.trace.interaction_edges]
        spawned = {(e["from"], e["to"]) for e in edges if e["kind"] == "spawn_agent"}
        for thread in threads:
            parent = thread["parent"]
            if parent is not None and (parent, thread["id"]) not in spawned:
                edges.append(
                    {
                        "id": f"origin:{thread['id']}",
                        "kind": "spawn_agent",
                        "from": parent,
                        "to": thread["id"],
                        "source": None,
                        "target": None,
                        "start": thread["start"],
                        "end": None,
                        "text": thread["task"],
                        "items": [],
                        "raw": [],
                        "implied": True,
                    }
                )
        return edges

    def _edge(self, edge_id: str) -> dict[str, Any]:
        edge = self.trace.interaction_edges[edge_id]
        source_thread, source_object = self._anchor(msgspec.to_builtins(edge.source))
        target_thread, target_object = self._anchor(msgspec.to_builtins(edge.target))
        text = " ".join(self._item_text(i) for i in edge.carried_item_ids).strip()
        return {
            "id": edge_id,
            "kind": edge.kind,
            "from": source_thread,
            "to": target_thread,
            "source": source_object,
            "target": target_object,
            "start": edge.started_at_unix_ms,
            "end": edge.ended_at_unix_ms,
            "text": _cut(text) or None,
            "items": list(edge.carried_item_ids),
            "raw": list(edge.carried_raw_payload_ids),
        }

    def _anchor(self, anchor: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """(thread id, object or item id) of an edge end."""
        kind = anchor.get("type")
        if kind == "thread":
            return anchor.get("thread_id"), None
        if kind == "conversation_item":
            item = self.trace.conversation_items.get(anchor.get("item_id") or "")
            return (item.thread_id if item else None), anchor.get("item_id")
        if kind == "tool_call":
            tool = self.trace.tool_calls.get(anchor.get("tool_call_id") or "")
            return (tool.thread_id if tool else None), anchor.get("tool_call_id")
        return None, None

    def _item(self, item_id: str) -> dict[str, Any]:
        item = self.trace.conversation_items[item_id]
        producers = [msgspec.to_builtins(p) for p in item.produced_by]
        by: list[str] = []
        for producer in producers:
            for key in ("inference_call_id", "tool_call_id", "code_cell_id", "edge_id"):
                if isinstance(producer.get(key), str):
                    by.append(producer[key])
        agent = msgspec.to_builtins(item.agent_message) if item.agent_message else None
        parts = [msgspec.to_builtins(part) for part in item.body.parts]
        return {
            "id": item_id,
            "turn": item.codex_turn_id,
            "role": item.role,
            "kind": item.kind,
            "channel": item.channel,
            "text": _cut(self._item_text(item_id)),
            "call_id": item.call_id,
            "tool": self.tool_by_call_id.get(item.call_id) if item.call_id else None,
            "by": by,
            "agent": agent,
            "raw": [p["raw_payload_id"] for p in parts if "raw_payload_id" in p],
        }

    def _item_text(self, item_id: str) -> str:
        item = self.trace.conversation_items.get(item_id)
        if item is None:
            return ""
        texts = (part_text(msgspec.to_builtins(part)) for part in item.body.parts)
        return "\n".join(t for t in texts if t)

    def _exit_code(self, operation_id: str | None) -> int | None:
        operation = self.trace.terminal_operations.get(operation_id or "")
        if operation is None or operation.result is None:
            return None
        return operation.result.exit_code


def _present(*payload_ids: str | None) -> list[str]:
    return [p for p in payload_ids if p]


def _order(obj: Mapping[str, Any]) -> tuple[int, int]:
    return obj["start"], obj["seq"]


def _cut(text: str | None) -> str | None:
    if not text:
        return None
    return text if len(text) <= TEXT_CHARS else text[:TEXT_CHARS] + "\n… (cut; see the raw payload)"
