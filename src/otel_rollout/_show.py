"""The tree ``otel-rollout show`` prints: what the agent did, built from a reduced trace.

``build_tree`` takes the reduced state (``state.json``, or
``msgspec.to_builtins(reduce_bundle(path))``) as plain builtins and returns a tree
of plain dicts, ready for ``--json`` or for the terminal renderer. It is pure: no
I/O, no rich. Every node is a dict with these keys:

- ``kind``: ``"rollout"``, ``"thread"``, ``"turn"``, ``"inference"``, ``"tool"``,
  ``"code_cell"``, ``"compaction"``, ``"compaction_request"``, ``"edge"`` or
  ``"hidden"`` (a run of siblings, with all below them, left out by ``max_items``
  or ``depth``).
- ``id``: the object's id in the reduced trace (``null`` for ``hidden``).
- ``status``: the execution status (``completed``, ``failed``, ``cancelled``,
  ``aborted``, ``running``); ``null`` where the object has none (edges).
- ``started_at_unix_ms``, ``ended_at_unix_ms``, ``duration_ms`` (``null`` while
  running).
- ``children``: child nodes in start order (wall time, then seq).

plus the fields of its kind, listed in ``docs/show.md``. Token counts are a
``usage`` dict (``input_tokens``, ``cached_input_tokens``,
``cache_write_input_tokens``, ``output_tokens``, ``reasoning_output_tokens``)
summed over the inference calls below the node, or ``null`` when none reported
usage.

Placement: threads under the rollout (root first); turns under their thread;
inference calls, model-requested tool calls and compactions under their turn;
code cells under the tool call that started them; tool calls a code cell made
under that cell; interaction edges under the tool call, turn or thread that is
their source, pointing at the target thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

Node = dict[str, Any]
"""One node of the tree (plain builtins, JSON-ready)."""

SHOW_FORMAT: Final = "otel-rollout.show/3"
"""Value of the root node's ``format`` key; bumped when the JSON shape changes."""

DEFAULT_MAX_ITEMS: Final = 20
"""Default cap on the children shown under one node."""

PREVIEW_CHARS: Final = 160
"""Longest text preview kept in a node (prompts, replies, commands)."""

USAGE_FIELDS: Final = (
    "input_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
)

_KIND_ORDER: Final = {
    kind: i
    for i, kind in enumerate(
        (
            "thread",
            "turn",
            "inference",
            "tool",
            "code_cell",
            "compaction",
            "compaction_request",
            "edge",
            "hidden",
        )
    )
}
_TROUBLE: Final = frozenset({"failed", "cancelled", "aborted", "running"})
_NO_SEQ: Final = 1 << 62


def build_tree(
    state: Mapping[str, Any],
    *,
    max_items: int | None = DEFAULT_MAX_ITEMS,
    depth: int | None = None,
    threads: Sequence[str] = (),
    facts: Mapping[str, Mapping[str, str]] | None = None,
) -> Node:
    """Build the ``show`` tree of a reduced rollout trace.

    Args:
        state: The reduced trace as builtins (the content of ``state.json``).
        max_items: Show at most this many children under any one node; the rest
            are folded into ``hidden`` nodes that count them. Items that failed,
            were cancelled or still run, edges, and their ancestors, are kept
            first, then the first and the last items. ``None`` or ``0`` shows all.
        depth: Show this many levels below the rollout (1: threads, 2: turns,
            3: calls, ...); deeper nodes are folded into one ``hidden`` node per
            parent. ``None`` or ``0`` shows all levels.
        threads: Keep only these threads (agent path, thread id or id prefix);
            empty keeps all.
        facts: What the reduced trace leaves out, by object id: ``errors`` (why an
            inference call, compaction request, tool call, code cell or turn failed),
            ``arguments`` and ``results`` of tool calls (``_view._facts.read_facts``).

    Returns:
        The root node (``kind == "rollout"``).
    """
    root = _Builder(state, facts or {}).build(threads)
    return _bound(root, max_items or 0, depth + 1 if depth else 0)


class _Builder:
    """Indexes one reduced trace and assembles its nodes."""

    def __init__(self, state: Mapping[str, Any], facts: Mapping[str, Mapping[str, str]]) -> None:
        self.state = state
        self.errors: Mapping[str, str] = facts.get("errors") or {}
        self.arguments: Mapping[str, str] = facts.get("arguments") or {}
        self.results: Mapping[str, str] = facts.get("results") or {}
        self.threads: Mapping[str, Any] = _table(state, "threads")
        self.turns: Mapping[str, Any] = _table(state, "codex_turns")
        self.items: Mapping[str, Any] = _table(state, "conversation_items")
        self.inferences: Mapping[str, Any] = _table(state, "inference_calls")
        self.tools: Mapping[str, Any] = _table(state, "tool_calls")
        self.cells: Mapping[str, Any] = _table(state, "code_cells")
        self.operations: Mapping[str, Any] = _table(state, "terminal_operations")
        self.compactions: Mapping[str, Any] = _table(state, "compactions")
        self.requests: Mapping[str, Any] = _table(state, "compaction_requests")
        self.edges: Mapping[str, Any] = _table(state, "interaction_edges")
        self.calls_by_turn = _group(self.inferences, "codex_turn_id")
        self.calls_by_thread = _group(self.inferences, "thread_id")
        self.tools_by_turn = _group(self.tools, "started_by_codex_turn_id")
        self.tools_by_thread = _group(self.tools, "thread_id")
        self.turns_by_thread = _group(self.turns, "thread_id")
        self.requests_by_turn = _group(self.requests, "codex_turn_id")
        self.items_by_turn: dict[Any, list[Mapping[str, Any]]] = {}
        for thread in self.threads.values():
            for item_id in thread.get("conversation_item_ids") or ():
                item = self.items.get(item_id)
                if item is not None and item.get("thread_id") == thread.get("thread_id"):
                    self.items_by_turn.setdefault(item.get("codex_turn_id"), []).append(item)
        paths: dict[Any, int] = {}
        for thread in self.threads.values():
            paths[thread.get("agent_path")] = paths.get(thread.get("agent_path"), 0) + 1
        self.names = {
            thread_id: _thread_name(thread_id, thread.get("agent_path"), paths)
            for thread_id, thread in self.threads.items()
        }
        self.cell_owner: dict[Any, str] = {}
        for tool_id in sorted(self.tools, reverse=True):  # the first id wins, as in Codex's maps
            tool = self.tools[tool_id]
            if (tool.get("requester") or {}).get("type") != "code_cell":
                call_id = tool.get("model_visible_call_id")
                if call_id is not None:
                    self.cell_owner[("call", call_id)] = tool_id
            if tool.get("started_code_cell_id") is not None:
                self.cell_owner[tool["started_code_cell_id"]] = tool_id

    # -- assembly ---------------------------------------------------------------

    def build(self, only: Sequence[str]) -> Node:
        thread_nodes = {tid: self._thread(tid, thread) for tid, thread in self.threads.items()}
        turn_nodes = {uid: self._turn(uid, turn) for uid, turn in self.turns.items()}
        self._number_turns(turn_nodes)
        cell_nodes: dict[Any, Node] = {
            cid: self._cell(cid, cell) for cid, cell in self.cells.items()
        }
        tool_nodes = {tid: self._tool(tid, tool) for tid, tool in self.tools.items()}
        orphans: list[Node] = []

        def under_turn(thread_id: Any, turn_id: Any, node: Node) -> None:
            parent = turn_nodes.get(turn_id) if turn_id is not None else None
            if parent is None:
                parent = thread_nodes.get(thread_id)
            (parent["children"] if parent is not None else orphans).append(node)

        for call_id, call in self.inferences.items():
            under_turn(
                call.get("thread_id"), call.get("codex_turn_id"), self._inference(call_id, call)
            )
        for tool_id, tool in self.tools.items():
            cell = cell_nodes.get(_requesting_cell(tool))
            if cell is not None:
                cell["children"].append(tool_nodes[tool_id])
            else:
                under_turn(
                    tool.get("thread_id"), tool.get("started_by_codex_turn_id"), tool_nodes[tool_id]
                )
        for cell_id, cell in self.cells.items():
            owner = self._cell_owner(cell_id, cell)
            if owner in tool_nodes and _requesting_cell(self.tools[owner]) is None:
                tool_nodes[owner]["children"].append(cell_nodes[cell_id])
            else:
                under_turn(cell.get("thread_id"), cell.get("codex_turn_id"), cell_nodes[cell_id])
        for compaction in self._compaction_nodes():
            under_turn(compaction.pop("_thread_id"), compaction.pop("_turn_id"), compaction)
        for edge_id, edge in self.edges.items():
            node = self._edge(edge_id, edge)
            target_turn = turn_nodes.get(node["target_turn_id"])
            node["target_turn_index"] = target_turn["index"] if target_turn is not None else None
            source = edge.get("source") or {}
            kind = source.get("type")
            if kind == "tool_call" and source.get("tool_call_id") in tool_nodes:
                tool_nodes[source["tool_call_id"]]["children"].append(node)
            elif kind == "conversation_item" and source.get("item_id") in self.items:
                item = self.items[source["item_id"]]
                under_turn(item.get("thread_id"), item.get("codex_turn_id"), node)
            elif kind == "thread" and source.get("thread_id") in thread_nodes:
                thread_nodes[source["thread_id"]]["children"].append(node)
            else:
                orphans.append(node)
        for turn_id, node in turn_nodes.items():
            parent = thread_nodes.get(self.turns[turn_id].get("thread_id"))
            (parent["children"] if parent is not None else orphans).append(node)

        for node in [*thread_nodes.values(), *orphans]:
            _finish(node)
        root_id = self.state.get("root_thread_id")
        children = sorted(
            thread_nodes.values(), key=lambda n: (n["id"] != root_id, *_key(n), n["id"])
        )
        if only:
            children = [n for n in children if _matches(n, only)]
        else:
            children.extend(sorted(orphans, key=_key))
        return self._rollout(children)

    def _rollout(self, children: list[Node]) -> Node:
        state = self.state
        started = state.get("started_at_unix_ms")
        ended = state.get("ended_at_unix_ms")
        return {
            "kind": "rollout",
            "format": SHOW_FORMAT,
            "id": state.get("rollout_id"),
            "status": state.get("status"),
            "started_at_unix_ms": started,
            "ended_at_unix_ms": ended,
            "duration_ms": _duration(started, ended),
            "trace_id": state.get("trace_id"),
            "root_thread_id": state.get("root_thread_id"),
            "recording_complete": _recording_complete(state),
            "recording_status": _recording_status(state),
            "counts": {
                "threads": len(self.threads),
                "turns": len(self.turns),
                "inference_calls": len(self.inferences),
                "tool_calls": len(self.tools),
                "code_cells": len(self.cells),
                "compactions": len(self.compactions),
                "interaction_edges": len(self.edges),
            },
            "usage": _sum_usage(call.get("usage") for call in self.inferences.values()),
            **self._outcome(self.turns.values()),
            "children": children,
        }

    # -- one node per object ------------------------------------------------------

    def _thread(self, thread_id: str, thread: Mapping[str, Any]) -> Node:
        origin = thread.get("origin") or {}
        parent_id = origin.get("parent_thread_id")
        parent = self.threads.get(parent_id) if parent_id is not None else None
        node = _timed("thread", thread_id, thread.get("execution"))
        node.update(
            name=self.names[thread_id],
            agent_path=thread.get("agent_path"),
            nickname=thread.get("nickname"),
            model=thread.get("default_model"),
            origin=origin.get("type"),
            parent_thread_id=parent_id,
            parent_agent_path=parent.get("agent_path") if parent is not None else None,
            task_name=origin.get("task_name"),
            agent_role=origin.get("agent_role") or None,
            spawn_edge_id=origin.get("spawn_edge_id"),
            usage=_sum_usage(call.get("usage") for call in self.calls_by_thread.get(thread_id, ())),
            **self._outcome(self.turns_by_thread.get(thread_id, ())),
            counts={
                "turns": len(self.turns_by_thread.get(thread_id, ())),
                "inference_calls": len(self.calls_by_thread.get(thread_id, ())),
                "tool_calls": len(self.tools_by_thread.get(thread_id, ())),
            },
        )
        return _with_children(node)

    def _turn(self, turn_id: str, turn: Mapping[str, Any]) -> Node:
        calls = self.calls_by_turn.get(turn_id, ())
        node = _timed("turn", turn_id, turn.get("execution"))
        node.update(
            index=None,
            thread_id=turn.get("thread_id"),
            input_preview=self._turn_input(turn_id, turn),
            error=self._error(turn_id),
            usage=_sum_usage(c.get("usage") for c in calls),
            **self._outcome((turn,)),
            counts={
                "inference_calls": len(calls),
                "tool_calls": len(self.tools_by_turn.get(turn_id, ())),
            },
        )
        return _with_children(node)

    def _number_turns(self, turn_nodes: Mapping[str, Node]) -> None:
        """Number each thread's turns 1, 2, ... in start order."""
        next_index: dict[Any, int] = {}
        for node in sorted(turn_nodes.values(), key=_key):
            index = next_index.get(node["thread_id"], 1)
            node["index"] = index
            next_index[node["thread_id"]] = index + 1

    def _inference(self, call_id: str, call: Mapping[str, Any]) -> Node:
        node = _timed("inference", call_id, call.get("execution"))
        node.update(
            model=call.get("model"),
            provider_name=call.get("provider_name"),
            response_id=call.get("response_id"),
            upstream_request_id=call.get("upstream_request_id"),
            usage=_usage(call.get("usage")),
            request_items=len(call.get("request_item_ids") or ()),
            response_items=len(call.get("response_item_ids") or ()),
            tool_call_ids=list(call.get("tool_call_ids_started_by_response") or ()),
            output_preview=self._reply(call.get("response_item_ids") or ()),
            error=self._error(call_id),
        )
        return _with_children(node)

    def _tool(self, tool_id: str, tool: Mapping[str, Any]) -> Node:
        kind = tool.get("kind") or {}
        summary = tool.get("summary") or {}
        requester = tool.get("requester") or {}
        node = _timed("tool", tool_id, tool.get("execution"))
        node.update(
            name=tool_name(kind),
            tool_kind=kind.get("type"),
            requester=requester.get("type"),
            label=summary.get("label"),
            detail=None,
            exit_code=None,
            terminal_id=None,
            mcp_call_id=tool.get("mcp_call_id"),
            model_visible_call_id=tool.get("model_visible_call_id"),
            arguments_preview=_optional_preview(self.arguments.get(tool_id)),
            result_preview=_optional_preview(self.results.get(tool_id)),
            error=self._error(tool_id),
        )
        operation = self.operations.get(tool.get("terminal_operation_id") or "")
        if operation is not None:
            request = operation.get("request") or {}
            result = operation.get("result") or {}
            if request.get("type") == "write_stdin":
                node["detail"] = "stdin " + _preview(repr(request.get("stdin", "")))
            else:
                command = request.get("display_command") or " ".join(request.get("command") or ())
                node["detail"] = "$ " + _preview(command)
            node["exit_code"] = result.get("exit_code")
            node["terminal_id"] = operation.get("terminal_id")
        elif summary.get("type") == "agent":
            node["detail"] = _preview(
                f"{summary.get('target_agent_path')}: {summary.get('message_preview') or ''}"
            )
        elif summary.get("type") == "wait_agent":
            target = summary.get("target_agent_path") or "any agent"
            timeout = summary.get("timeout_ms")
            node["detail"] = target if timeout is None else f"{target}, timeout {timeout} ms"
        elif summary.get("input_preview"):
            node["detail"] = _preview(summary["input_preview"])
        return _with_children(node)

    def _cell(self, cell_id: str, cell: Mapping[str, Any]) -> Node:
        node = _timed("code_cell", cell_id, cell.get("execution"))
        node.update(
            runtime_cell_id=cell.get("runtime_cell_id"),
            runtime_status=cell.get("runtime_status"),
            model_visible_call_id=cell.get("model_visible_call_id"),
            source_preview=_preview(cell.get("source_js") or ""),
            error=self._error(cell_id),
        )
        return _with_children(node)

    def _cell_owner(self, cell_id: str, cell: Mapping[str, Any]) -> str | None:
        """The tool call that started a code cell (Codex 0.169.0 names it; else match call ids)."""
        owner = self.cell_owner.get(cell_id)
        if owner is None:
            owner = self.cell_owner.get(("call", cell.get("model_visible_call_id")))
        return owner

    def _compaction_nodes(self) -> list[Node]:
        """One node per compaction, with its requests; requests of none get their own node."""
        by_compaction: dict[Any, list[Node]] = {}
        request_owner: dict[Any, Mapping[str, Any]] = {}
        for request_id, request in self.requests.items():
            node = _timed("compaction_request", request_id, request.get("execution"))
            node.update(
                model=request.get("model"),
                provider_name=request.get("provider_name"),
                error=self._error(request_id),
            )
            by_compaction.setdefault(request.get("compaction_id"), []).append(_with_children(node))
            request_owner.setdefault(request.get("compaction_id"), request)
        nodes: list[Node] = []
        for compaction_id, compaction in self.compactions.items():
            requests = sorted(by_compaction.pop(compaction_id, []), key=_key)
            installed = compaction.get("installed_at_unix_ms")
            started = requests[0]["started_at_unix_ms"] if requests else installed
            nodes.append(
                {
                    "kind": "compaction",
                    "id": compaction_id,
                    "status": "completed",
                    "started_at_unix_ms": started,
                    "ended_at_unix_ms": installed,
                    "duration_ms": _duration(started, installed),
                    "installed": True,
                    "error": None,
                    "input_items": len(compaction.get("input_item_ids") or ()),
                    "replacement_items": len(compaction.get("replacement_item_ids") or ()),
                    "_seq": requests[0]["_seq"] if requests else _NO_SEQ,
                    "_thread_id": compaction.get("thread_id"),
                    "_turn_id": compaction.get("codex_turn_id"),
                    "children": requests,
                }
            )
        for compaction_id, requests in by_compaction.items():
            requests.sort(key=_key)
            first = request_owner[compaction_id]
            last = requests[-1]
            nodes.append(
                {
                    "kind": "compaction",
                    "id": compaction_id,
                    "status": last["status"],
                    "started_at_unix_ms": requests[0]["started_at_unix_ms"],
                    "ended_at_unix_ms": last["ended_at_unix_ms"],
                    "duration_ms": _duration(
                        requests[0]["started_at_unix_ms"], last["ended_at_unix_ms"]
                    ),
                    "installed": False,
                    "error": last.get("error") if last["status"] == "failed" else None,
                    "input_items": None,
                    "replacement_items": None,
                    "_seq": requests[0]["_seq"],
                    "_thread_id": first.get("thread_id"),
                    "_turn_id": first.get("codex_turn_id"),
                    "children": requests,
                }
            )
        return nodes

    def _edge(self, edge_id: str, edge: Mapping[str, Any]) -> Node:
        started = edge.get("started_at_unix_ms")
        ended = edge.get("ended_at_unix_ms")
        target_thread, target_turn = self._anchor(edge.get("target") or {})
        thread = self.threads.get(target_thread) if target_thread is not None else None
        return {
            "kind": "edge",
            "id": edge_id,
            "status": None,
            "started_at_unix_ms": started,
            "ended_at_unix_ms": ended,
            "duration_ms": _duration(started, ended),
            "edge_kind": edge.get("kind"),
            "target_thread_id": target_thread,
            "target_name": self.names.get(target_thread, target_thread),
            "target_agent_path": thread.get("agent_path") if thread is not None else None,
            "target_nickname": thread.get("nickname") if thread is not None else None,
            "target_turn_id": target_turn,
            "target_turn_index": None,
            "carried_items": len(edge.get("carried_item_ids") or ()),
            "message_preview": self._texts(edge.get("carried_item_ids") or ()),
            "_seq": _NO_SEQ,
            "children": [],
        }

    # -- lookups --------------------------------------------------------------

    def _error(self, object_id: str) -> str | None:
        """Why an object failed (from the bundle's events and payloads), previewed."""
        return _optional_preview(self.errors.get(object_id))

    def _outcome(self, turns: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """``outcome``, ``failed_turns`` and ``retried_failures`` over ``turns``.

        A turn failed when its status is ``failed`` or its last inference attempt
        failed (nothing retried it). A failed inference or compaction attempt that a
        later attempt of the same turn (or compaction) followed is a retried failure.
        ``outcome`` is ``failed`` when a turn failed, else ``retried`` when an attempt
        was retried, else ``ok``.
        """
        failed_turns = 0
        retried = 0
        for turn in turns:
            turn_id = turn.get("codex_turn_id")
            calls = sorted(self.calls_by_turn.get(turn_id, ()), key=_started_seq)
            failed = [_status(call) == "failed" for call in calls]
            if _status(turn) == "failed" or (failed and failed[-1]):
                failed_turns += 1
            retried += sum(failed[:-1])
            by_compaction = _group(
                {str(i): r for i, r in enumerate(self.requests_by_turn.get(turn_id, ()))},
                "compaction_id",
            )
            for requests in by_compaction.values():
                requests.sort(key=_started_seq)
                retried += sum(_status(r) == "failed" for r in requests[:-1])
        outcome = "failed" if failed_turns else "retried" if retried else "ok"
        return {"outcome": outcome, "failed_turns": failed_turns, "retried_failures": retried}

    def _anchor(self, anchor: Mapping[str, Any]) -> tuple[Any, Any]:
        """The (thread id, turn id) a trace anchor points into."""
        kind = anchor.get("type")
        if kind == "thread":
            return anchor.get("thread_id"), None
        if kind == "conversation_item":
            item = self.items.get(anchor.get("item_id") or "") or {}
            return item.get("thread_id"), item.get("codex_turn_id")
        if kind == "tool_call":
            tool = self.tools.get(anchor.get("tool_call_id") or "") or {}
            return tool.get("thread_id"), tool.get("started_by_codex_turn_id")
        return None, None

    def _turn_input(self, turn_id: str, turn: Mapping[str, Any]) -> str | None:
        """The turn's prompt: its last user message (not a context block), else another agent's."""
        thread = self.threads.get(turn.get("thread_id") or "") or {}
        prompt: str | None = None
        for item in self.items_by_turn.get(turn_id, ()):
            if item.get("kind") != "message" or item.get("produced_by"):
                continue
            text = _text(item)
            if not text:
                continue
            if item.get("role") == "user" and not _is_context(text):
                prompt = text
            elif prompt is None and (item.get("agent_message") or {}).get(
                "recipient"
            ) == thread.get("agent_path"):
                prompt = _agent_text(text)
        return _preview(prompt) if prompt else None

    def _reply(self, item_ids: Iterable[str]) -> str | None:
        """Text of the assistant messages among ``item_ids``."""
        texts = [
            _text(item)
            for item in (self.items.get(i) or {} for i in item_ids)
            if item.get("role") == "assistant" and item.get("kind") == "message"
        ]
        joined = " ".join(t for t in texts if t)
        return _preview(joined) if joined else None

    def _texts(self, item_ids: Iterable[str]) -> str | None:
        """Text carried by an edge's items, without Codex's inter-agent message header."""
        joined = " ".join(_agent_text(_text(self.items.get(i) or {})) for i in item_ids).strip()
        return _preview(joined) if joined else None


# -- bounding ----------------------------------------------------------------------


def _bound(node: Node, max_items: int, depth: int) -> Node:
    """Fold children deeper than ``depth`` or beyond ``max_items`` (0: no limit), depth first."""
    children = node["children"]
    if depth == 1 and children:
        node["children"] = [_hidden(children, "depth")]
        return node
    children = [_bound(child, max_items, depth - 1 if depth else 0) for child in children]
    node["children"] = _fold(children, max_items) if max_items else children
    return node


def _fold(children: list[Node], max_items: int) -> list[Node]:
    """Keep ``max_items`` children (trouble first, then the head and the tail); fold the rest."""
    if len(children) <= max_items:
        return children
    keep = {i for i, child in enumerate(children) if _notable(child)}
    keep = set(sorted(keep)[: max_items // 2])
    room = max_items - len(keep)
    head = (room + 1) // 2
    keep.update(range(head))
    keep.update(range(len(children) - (room - head), len(children)))
    out: list[Node] = []
    run: list[Node] = []
    for index, child in enumerate(children):
        if index in keep:
            if run:
                out.append(_hidden(run, "max_items"))
                run = []
            out.append(child)
        else:
            run.append(child)
    if run:
        out.append(_hidden(run, "max_items"))
    return out


def _notable(node: Node) -> bool:
    """Whether a node (or anything under it) failed, was cancelled, still runs or is an edge."""
    if node["kind"] == "edge" or node.get("status") in _TROUBLE:
        return True
    if node.get("exit_code") not in (None, 0):
        return True
    if node["kind"] == "hidden":
        return bool(node["notable"])
    return any(_notable(child) for child in node["children"])


def _hidden(run: list[Node], reason: str) -> Node:
    """One node standing for the nodes of ``run`` and everything under them."""
    counts: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for node in _walk(run):
        if node["kind"] == "hidden":
            for kind, n in node["counts"].items():
                counts[kind] = counts.get(kind, 0) + n
            for status, n in node["statuses"].items():
                statuses[status] = statuses.get(status, 0) + n
            continue
        counts[node["kind"]] = counts.get(node["kind"], 0) + 1
        status = node.get("status") or "none"
        statuses[status] = statuses.get(status, 0) + 1
    started = run[0]["started_at_unix_ms"]
    ended = run[-1]["ended_at_unix_ms"]
    counts = {kind: counts[kind] for kind in sorted(counts, key=lambda k: _KIND_ORDER.get(k, 99))}
    return {
        "kind": "hidden",
        "id": None,
        "status": None,
        "started_at_unix_ms": started,
        "ended_at_unix_ms": ended,
        "duration_ms": _duration(started, ended),
        "reason": reason,
        "count": len(run),
        "counts": counts,
        "statuses": statuses,
        "notable": any(_notable(node) for node in run),
        "usage": _sum_usage(node.get("usage") for node in run),
        "children": [],
    }


def _walk(nodes: list[Node]) -> Iterable[Node]:
    """``nodes`` and their descendants (hidden nodes stand for theirs)."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node["children"]))


# -- helpers -------------------------------------------------------------------------


def _table(state: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    table = state.get(name)
    return table if isinstance(table, Mapping) else {}


def _timed(kind: str, object_id: str, execution: Mapping[str, Any] | None) -> Node:
    execution = execution or {}
    started = execution.get("started_at_unix_ms")
    ended = execution.get("ended_at_unix_ms")
    seq = execution.get("started_seq")
    return {
        "kind": kind,
        "id": object_id,
        "status": execution.get("status"),
        "started_at_unix_ms": started,
        "ended_at_unix_ms": ended,
        "duration_ms": _duration(started, ended),
        "_seq": seq if isinstance(seq, int) else _NO_SEQ,
    }


def _with_children(node: Node) -> Node:
    node["children"] = []
    return node


def _key(node: Node) -> tuple[int, int]:
    """Start order: wall time, then seq (edges and compactions may lack a seq)."""
    started = node.get("started_at_unix_ms")
    return (started if isinstance(started, int) else _NO_SEQ, node.get("_seq", _NO_SEQ))


def _finish(node: Node) -> None:
    """Sort children into start order and drop the private sort keys, depth first."""
    node.pop("_seq", None)
    node["children"].sort(key=_key)
    for child in node["children"]:
        _finish(child)


def _duration(started: Any, ended: Any) -> int | None:
    if isinstance(started, int) and isinstance(ended, int):
        return max(0, ended - started)
    return None


def _group(table: Mapping[str, Any], field: str) -> dict[Any, list[Mapping[str, Any]]]:
    """Rows of ``table`` by the value of ``field``."""
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for row in table.values():
        groups.setdefault(row.get(field), []).append(row)
    return groups


def _usage(usage: Any) -> dict[str, int] | None:
    if not isinstance(usage, Mapping):
        return None
    return {field: int(usage.get(field) or 0) for field in USAGE_FIELDS}


def _sum_usage(usages: Iterable[Any]) -> dict[str, int] | None:
    total: dict[str, int] | None = None
    for usage in usages:
        one = _usage(usage)
        if one is None:
            continue
        if total is None:
            total = dict.fromkeys(USAGE_FIELDS, 0)
        for field in USAGE_FIELDS:
            total[field] += one[field]
    return total


def _thread_name(thread_id: str, path: Any, paths: Mapping[Any, int]) -> str:
    """The agent path, made unique with the id's tail where two threads share it."""
    if not isinstance(path, str) or not path:
        return thread_id
    return path if paths.get(path, 0) < 2 else f"{path}#{thread_id[-8:]}"


def _requesting_cell(tool: Mapping[str, Any]) -> Any:
    """The code cell id that requested a tool call, or ``None`` when the model did."""
    requester = tool.get("requester") or {}
    return requester.get("code_cell_id") if requester.get("type") == "code_cell" else None


def tool_name(kind: Mapping[str, Any]) -> str:
    """A reduced tool kind as people read it: its type, ``mcp SERVER.TOOL`` or the tool's name."""
    kind_type = str(kind.get("type") or "tool")
    if kind_type == "mcp":
        return f"mcp {kind.get('server')}.{kind.get('tool')}"
    if kind_type == "other":
        return str(kind.get("name") or "other")
    return kind_type


def _text(item: Mapping[str, Any]) -> str:
    parts = (item.get("body") or {}).get("parts") or ()
    return " ".join(
        str(part.get("text") or "")
        for part in parts
        if isinstance(part, Mapping) and part.get("type") in ("text", "summary")
    ).strip()


def _is_context(text: str) -> bool:
    """Whether a user message is a context block Codex injects (``<environment_context>...``)."""
    stripped = text.strip()
    return stripped.startswith("<") and stripped.endswith(">")


def _agent_text(text: str) -> str:
    """The payload of a Codex inter-agent message, or its type and sender when encoded.

    Codex writes ``Message Type: X\nTask name: ...\nSender: /root\nPayload:\n<text>``.
    """
    header, marker, payload = text.partition("Payload:")
    if not marker or not header.startswith("Message Type:"):
        return text
    if payload.strip():
        return payload.strip()
    fields = dict(line.split(": ", 1) for line in header.splitlines() if ": " in line)
    sender = fields.get("Sender")
    return fields.get("Message Type", "") + (f" from {sender}" if sender else "")


def _status(row: Mapping[str, Any]) -> Any:
    return (row.get("execution") or {}).get("status")


def _started_seq(row: Mapping[str, Any]) -> int:
    seq = (row.get("execution") or {}).get("started_seq")
    return seq if isinstance(seq, int) else _NO_SEQ


def _optional_preview(text: str | None) -> str | None:
    return _preview(text) if text else None


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[: PREVIEW_CHARS - 1] + "…"


def _matches(node: Node, only: Sequence[str]) -> bool:
    """Whether a thread node is named by one of ``only`` (path, name, id or id prefix)."""
    return any(
        want in (node.get("agent_path"), node.get("name"))
        or (want and str(node["id"]).startswith(want))
        for want in only
    )


def _recording_status(state: Mapping[str, Any]) -> str | None:
    """``recording_status`` of a schema 3 state; for schema 2, from ``recording_complete``."""
    status = state.get("recording_status")
    if isinstance(status, str):
        return status
    complete = state.get("recording_complete")
    if isinstance(complete, bool):
        return "complete" if complete else "unclosed"
    return None


def _recording_complete(state: Mapping[str, Any]) -> bool | None:
    """Whether ``recording_completed`` was recorded (schema 3: the status is not unclosed)."""
    complete = state.get("recording_complete")
    if isinstance(complete, bool):
        return complete
    status = state.get("recording_status")
    return status != "unclosed" if isinstance(status, str) else None
