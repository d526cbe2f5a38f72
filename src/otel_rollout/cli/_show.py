"""``otel-rollout show BUNDLE``: what the agent did, as a terminal tree or as JSON."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from otel_rollout._show import DEFAULT_MAX_ITEMS
from otel_rollout.cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE, error
from otel_rollout.cli._targets import bundles_argument

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text
    from rich.tree import Tree

_STATUS_STYLE: dict[str, tuple[str, str]] = {
    "completed": ("✓", "green"),
    "failed": ("✗", "bold red"),
    "cancelled": ("⊘", "yellow"),
    "aborted": ("■", "magenta"),
    "running": ("…", "cyan"),
}

_UNCUT = 1000
"""Width used when stdout is a pipe or a file: lines are not cut (previews are short already)."""

_REPLY_CHARS = 48
"""Longest reply preview on an inference line (the JSON keeps the longer preview)."""

_QUIET = frozenset({"completed", "none"})
"""Statuses a hidden run does not mention."""

_KIND_STYLE: dict[str, str] = {
    "rollout": "bold",
    "thread": "bold blue",
    "turn": "bold",
    "inference": "magenta",
    "tool": "cyan",
    "code_cell": "cyan",
    "compaction": "yellow",
    "compaction_request": "yellow",
    "edge": "bold green",
}


@click.command("show")
@bundles_argument()
@click.option("--json", "as_json", is_flag=True, help="Print the tree as JSON instead.")
@click.option(
    "--max-items",
    type=click.IntRange(min=0),
    metavar="N",
    default=DEFAULT_MAX_ITEMS,
    show_default=True,
    help="Show at most this many children under any node (0: all); the rest are counted.",
)
@click.option(
    "--depth",
    type=click.IntRange(min=0),
    metavar="N",
    default=0,
    help="Show this many levels (1 threads, 2 turns, 3 calls...; 0: all); count the rest.",
)
@click.option(
    "--thread",
    "threads",
    multiple=True,
    metavar="PATH|ID",
    help="Show only this thread (agent path such as /root/calc, or thread id prefix); repeatable.",
)
@click.option(
    "--width",
    type=click.IntRange(min=40),
    metavar="N",
    default=None,
    help="Render at this width (default: the terminal's).",
)
def command(
    bundle: tuple[Path, ...],
    as_json: bool,
    max_items: int,
    depth: int,
    threads: tuple[str, ...],
    width: int | None,
) -> int:
    """Reduce BUNDLE and show what the agent did as a tree.

    Threads, their turns, inference calls (model, status, duration, tokens),
    tool calls (nested under the code cells that made them), compactions, and
    the edges between threads (spawn, task, message, agent result, close) under
    the tool call or turn that caused them. On a terminal, lines are cut at its
    width; piped, they are not. The JSON shape is in docs/show.md.

    A directory that is not a bundle is searched for bundles (symbolic links are not
    followed): one found is shown; several are listed, one line each.
    """
    from otel_rollout.cli._targets import find_bundles, list_bundles

    targets = find_bundles(bundle)
    if len(targets.bundles) != 1:
        return max(targets.exit_code, list_bundles(targets.bundles))
    return _show(targets.bundles[0], as_json, max_items, depth, threads, width)


def _show(
    bundle: Path,
    as_json: bool,
    max_items: int,
    depth: int,
    threads: tuple[str, ...],
    width: int | None,
) -> int:
    import msgspec

    from otel_rollout._bundle._json import encode_pretty
    from otel_rollout._bundle._reader import Bundle, BundleError
    from otel_rollout._reduce import reduce_bundle
    from otel_rollout._show import build_tree
    from otel_rollout._view._facts import read_facts

    try:
        trace = reduce_bundle(bundle, warn=lambda message: error(f"warning: {message}"))
    except BundleError as failure:
        error(str(failure))
        return EXIT_USAGE if failure.unreadable else EXIT_INVALID
    facts = read_facts(Bundle(bundle), trace)
    state = msgspec.to_builtins(trace)
    del trace  # keep one copy of a big trace, not two
    tree = build_tree(
        state, max_items=max_items, depth=depth, threads=threads, facts=facts.for_show()
    )
    if threads and not tree["children"]:
        raise click.BadParameter(f"no thread matches {', '.join(threads)}", param_hint="--thread")
    if as_json:
        click.echo(encode_pretty(tree).decode())
        return EXIT_OK
    _console(width).print(render(tree))
    return EXIT_OK


def render(tree: Mapping[str, Any]) -> Tree:
    """Turn a ``build_tree`` result into a rich ``Tree``, one line per node."""
    from rich.tree import Tree

    top = Tree(_label(tree), guide_style="dim")
    _grow(top, tree)
    return top


def _grow(branch: Tree, node: Mapping[str, Any]) -> None:
    for child in node["children"]:
        if child["kind"] == "hidden" and child["reason"] == "depth":
            continue  # told on the parent's line
        _grow(branch.add(_label(child)), child)


def _label(node: Mapping[str, Any]) -> Text:
    """One line per node (two for the rollout): title, status, numbers, then previews.

    Lines never wrap: what does not fit the width is cut with an ellipsis.
    """
    from rich.text import Text

    text = Text(no_wrap=True, overflow="ellipsis")
    if node["kind"] == "hidden":
        text.append(_hidden(node), style="dim italic")
        return text
    text.append(_title(node), style=_KIND_STYLE.get(node["kind"], ""))
    for part, style in _facts(node):
        text.append("  ")
        text.append(part, style=style)
    if node["kind"] == "rollout":
        text.append("\n")
        started = format_time(node.get("started_at_unix_ms"))
        summary = f"{_counts(node['counts'])} · started {started} · trace {node.get('trace_id')}"
        text.append(summary, style="dim")
    return text


def _title(node: Mapping[str, Any]) -> str:
    kind = node["kind"]
    if kind == "rollout":
        return f"rollout {node['id']}"
    if kind == "thread":
        nickname = f" ({node['nickname']})" if node.get("nickname") else ""
        return f"thread {node.get('name') or node['id']}{nickname}"
    if kind == "turn":
        return f"turn {node.get('index') or node['id']}"
    if kind == "inference":
        return f"inference {node.get('model') or ''}".rstrip()
    if kind == "tool":
        return f"tool {node.get('name')}"
    if kind == "code_cell":
        return f"code cell {node.get('runtime_cell_id') or node['id']}"
    if kind == "compaction":
        return "compaction" if node.get("installed") else "compaction (not installed)"
    if kind == "compaction_request":
        return f"compaction request {node.get('model') or ''}".rstrip()
    if kind == "edge":
        target = node.get("target_name") or node.get("target_thread_id") or "?"
        nickname = f" ({node['target_nickname']})" if node.get("target_nickname") else ""
        turn = f" turn {node['target_turn_index']}" if node.get("target_turn_index") else ""
        return f"→ {node.get('edge_kind')} {target}{nickname}{turn}"
    return str(kind)


def _facts(node: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (text, style) pieces after a node's title: status and numbers, then previews."""
    kind = node["kind"]
    facts: list[tuple[str, str]] = []
    previews: list[tuple[str, str]] = []
    status = node.get("status")
    if status is not None:
        glyph, style = _STATUS_STYLE.get(status, ("?", ""))
        facts.append((glyph if status == "completed" else f"{glyph} {status}", style))
    if node.get("duration_ms") is not None and (kind != "edge" or node["duration_ms"] > 0):
        facts.append((format_duration(node["duration_ms"]), ""))
    if node.get("outcome") == "failed" and status != "failed":
        if kind == "turn":
            facts.append(("✗ ended on a failed inference", "bold red"))
        else:
            facts.append((f"✗ {_plural(node['failed_turns'], 'turn')} failed", "bold red"))
    elif node.get("outcome") == "retried":
        retried = _plural(node["retried_failures"], "failed attempt")
        facts.append((f"↻ {retried} retried", "yellow"))
    if node.get("error"):
        facts.append((f"“{node['error']}”", "red"))
    if kind == "thread" and node.get("origin") == "spawned":
        task = f" for {node['task_name']}" if node.get("task_name") else ""
        by = node.get("parent_agent_path") or node.get("parent_thread_id")
        facts.append((f"spawned by {by}{task}", "green"))
    usage = [(format_usage(node["usage"]), "yellow")] if node.get("usage") is not None else []
    if kind == "inference":
        facts.extend(usage)
        usage = []
    folded = [c for c in node["children"] if c["kind"] == "hidden" and c["reason"] == "depth"]
    if folded:
        facts.append((f"[{_kinds(folded[0]['counts'])} below]", "dim"))
    if kind == "thread":
        if node.get("model"):
            facts.append((node["model"], "magenta"))
        if not folded:
            facts.append((_plural(node["counts"]["turns"], "turn"), "dim"))
    elif kind == "turn":
        if not folded:
            counts = node["counts"]
            calls = _plural(counts["inference_calls"], "inference")
            facts.append((f"{calls}, {_plural(counts['tool_calls'], 'tool')}", "dim"))
        if node.get("input_preview"):
            previews.append((f"“{node['input_preview']}”", "italic"))
    elif kind == "inference":
        if node.get("tool_call_ids"):
            facts.append((f"→ {_plural(len(node['tool_call_ids']), 'tool call')}", "cyan"))
        if node.get("output_preview"):  # shortened so that the response id still fits
            previews.append((f"“{_shorten(node['output_preview'], _REPLY_CHARS)}”", "italic"))
        if node.get("response_id"):
            previews.append((str(node["response_id"]), "dim"))
    elif kind == "tool":
        if node.get("exit_code") is not None:
            code = node["exit_code"]
            facts.append((f"exit {code}", "green" if code == 0 else "bold red"))
        if node.get("label") and node["label"] != node.get("name"):
            facts.append((str(node["label"]), "dim"))
        cell = any(c["kind"] == "code_cell" for c in node["children"])
        if node.get("detail") and not cell:
            previews.append((str(node["detail"]), ""))  # a cell's source is shown on its line
        elif node.get("arguments_preview") and not cell:
            previews.append((f"({node['arguments_preview']})", ""))
        if node.get("result_preview") and not node.get("error"):
            previews.append((f"→ {node['result_preview']}", "dim"))
    elif kind == "code_cell":
        if node.get("runtime_status") not in (None, node.get("status")):
            facts.append((f"runtime {node['runtime_status']}", "dim"))
        if node.get("source_preview"):
            previews.append((str(node["source_preview"]), ""))
    elif kind == "compaction" and node.get("input_items") is not None:
        facts.append((f"{node['input_items']} → {node['replacement_items']} items", "dim"))
    elif kind == "edge" and node.get("message_preview"):
        previews.append((f"“{node['message_preview']}”", "italic"))
    return facts + usage + previews


def _hidden(node: Mapping[str, Any]) -> str:
    trouble = ", ".join(
        f"{n} {status}" for status, n in node["statuses"].items() if status not in _QUIET
    )
    usage = f"; {format_usage(node['usage'])}" if node.get("usage") else ""
    return (
        f"… {node['count']} more hidden ({_kinds(node['counts'])}; "
        f"{trouble or 'none failed'}){usage}"
    )


def _kinds(counts: Mapping[str, int]) -> str:
    return ", ".join(_plural(n, kind.replace("_", " ")) for kind, n in counts.items())


def _counts(counts: Mapping[str, int]) -> str:
    names = {
        "threads": "thread",
        "turns": "turn",
        "inference_calls": "inference",
        "tool_calls": "tool",
        "compactions": "compaction",
        "interaction_edges": "edge",
    }
    return ", ".join(
        _plural(counts[key], name)
        for key, name in names.items()
        if counts.get(key) or key in ("threads", "turns")
    )


def _shorten(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1].rstrip() + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def format_time(unix_ms: Any) -> str:
    """``2026-11-26 07:15:52 UTC`` (``?`` when unknown)."""
    import datetime

    if not isinstance(unix_ms, int):
        return "?"
    try:
        moment = datetime.datetime.fromtimestamp(unix_ms / 1000, tz=datetime.timezone.utc)
    except (ValueError, OverflowError, OSError):  # a year outside 1..9999
        return f"{unix_ms} ms since the epoch"
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def format_duration(ms: int) -> str:
    """``850 ms``, ``1.25 s``, ``2m 03s``, ``1h 02m``."""
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    seconds = ms // 1000
    if seconds < 3600:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"


def format_usage(usage: Mapping[str, int]) -> str:
    """Token counts, short: ``12.3k in (4.0k cached) / 950 out (120 reasoning) tok``."""
    cached = usage.get("cached_input_tokens", 0)
    reasoning = usage.get("reasoning_output_tokens", 0)
    text = f"{format_count(usage.get('input_tokens', 0))} in"
    if cached:
        text += f" ({format_count(cached)} cached)"
    text += f" / {format_count(usage.get('output_tokens', 0))} out"
    if reasoning:
        text += f" ({format_count(reasoning)} reasoning)"
    return text + " tok"


def format_count(n: int) -> str:
    """``950``, ``12.3k``, ``505k``, ``1.23M`` (exact counts are in ``--json``)."""
    if n < 1000:
        return str(n)
    if n < 100_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.2f}M"


def _console(width: int | None) -> Console:
    """A console for stdout: the terminal's width, or uncut lines when stdout is not a terminal."""
    import sys

    from rich.console import Console

    if width is None and not sys.stdout.isatty():
        width = _UNCUT
    return Console(width=width, soft_wrap=False, highlight=False)
