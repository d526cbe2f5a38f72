"""``otel-rollout show``: the tree built from reduced traces, its bounds, its rendering, the CLI."""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_rollout._bundle._reader import Bundle
from otel_rollout._reduce import reduce_bundle
from otel_rollout._show import USAGE_FIELDS, build_tree
from otel_rollout._view._facts import read_facts
from otel_rollout.cli import main
from support.spans import foreign_bundle

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = sorted(p.parent for p in FIXTURES.glob("codex-0.169.0*/*/trace-*/state.json"))
BY_SCENARIO = {p.parent.name: p for p in BUNDLES}


def load_state(scenario: str) -> dict[str, Any]:
    state: dict[str, Any] = msgspec.json.decode((BY_SCENARIO[scenario] / "state.json").read_bytes())
    return state


def facts_of(bundle: Path) -> dict[str, dict[str, str]]:
    """What ``show`` reads from the bundle beside the reduced state."""
    return read_facts(Bundle(bundle), reduce_bundle(bundle)).for_show()


def walk(
    node: dict[str, Any], parent: dict[str, Any] | None = None
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    yield node, parent
    for child in node["children"]:
        yield from walk(child, node)


def nodes(tree: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [node for node, _ in walk(tree) if node["kind"] == kind]


def parent_of(tree: dict[str, Any], kind: str, node_id: str) -> dict[str, Any]:
    for node, parent in walk(tree):
        if node["kind"] == kind and node["id"] == node_id:
            assert parent is not None
            return parent
    raise AssertionError(f"no {kind} {node_id}")


def start_key(node: dict[str, Any]) -> int:
    started = node["started_at_unix_ms"]
    return started if isinstance(started, int) else 1 << 62


def test_fixtures_found() -> None:
    assert len(BUNDLES) == 12


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.parent.name)
def test_every_object_appears_once_in_start_order(bundle: Path) -> None:
    state = msgspec.json.decode((bundle / "state.json").read_bytes())
    tree = build_tree(state, max_items=0)
    tables = {
        "thread": "threads",
        "turn": "codex_turns",
        "inference": "inference_calls",
        "tool": "tool_calls",
        "code_cell": "code_cells",
        "compaction_request": "compaction_requests",
        "edge": "interaction_edges",
    }
    for kind, table in tables.items():
        ids = [node["id"] for node in nodes(tree, kind)]
        assert sorted(ids) == sorted(state[table]), kind
    assert {n["id"] for n in nodes(tree, "compaction")} >= set(state["compactions"])
    assert not nodes(tree, "hidden")
    for node, _ in walk(tree):
        assert not [key for key in node if key.startswith("_")]
        starts = [start_key(child) for child in node["children"]]
        assert starts == sorted(starts)
    assert tree["counts"]["tool_calls"] == len(state["tool_calls"])
    # the tree is plain JSON
    assert json.loads(msgspec.json.encode(tree)) == tree


@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.parent.name)
def test_tokens_add_up(bundle: Path) -> None:
    state = msgspec.json.decode((bundle / "state.json").read_bytes())
    tree = build_tree(state, max_items=0)
    calls = [c for c in state["inference_calls"].values() if c["usage"] is not None]
    for field in USAGE_FIELDS:
        total = sum(c["usage"][field] for c in calls)
        assert tree["usage"][field] == total
        assert sum(t["usage"][field] for t in nodes(tree, "thread") if t["usage"]) == total
        assert sum(t["usage"][field] for t in nodes(tree, "turn") if t["usage"]) == total


def test_tool_calls_sit_under_the_turn_that_started_them() -> None:
    state = load_state("tool_call")
    tree = build_tree(state)
    (thread,) = tree["children"]
    assert thread["agent_path"] == "/root"
    assert thread["model"] == "gpt-test"
    (turn,) = thread["children"]
    assert [c["kind"] for c in turn["children"]] == ["inference", "tool", "inference"]
    first, tool, last = turn["children"]
    assert first["tool_call_ids"] == [tool["id"]]
    assert first["usage"]["input_tokens"] > 0
    assert tool["name"] == "exec_command"
    assert tool["detail"] == "$ /bin/bash -lc echo hi"
    assert tool["exit_code"] == 0
    execution = state["tool_calls"][tool["id"]]["execution"]
    assert tool["duration_ms"] == execution["ended_at_unix_ms"] - execution["started_at_unix_ms"]
    assert last["output_preview"]
    assert turn["input_preview"] and not turn["input_preview"].startswith("<")


def test_spawn_and_agent_result_edges_point_at_the_other_thread() -> None:
    state = load_state("multi_agent_v2_spawn")
    tree = build_tree(state)
    root, child = tree["children"]
    assert root["id"] == state["root_thread_id"]
    assert (child["agent_path"], child["nickname"], child["origin"]) == (
        "/root/calc",
        "Mendel",
        "spawned",
    )
    assert (child["parent_thread_id"], child["parent_agent_path"]) == (root["id"], "/root")
    spawn, result = sorted(nodes(tree, "edge"), key=lambda e: e["edge_kind"] != "spawn_agent")
    assert spawn["edge_kind"] == "spawn_agent"
    assert parent_of(tree, "edge", spawn["id"])["id"] == "call_spawn_1"
    assert (spawn["target_thread_id"], spawn["target_agent_path"]) == (child["id"], "/root/calc")
    assert (spawn["target_turn_id"], spawn["target_turn_index"]) == (child["children"][0]["id"], 1)
    assert spawn["message_preview"] == "NEW_TASK from /root"
    assert result["edge_kind"] == "agent_result"
    assert parent_of(tree, "edge", result["id"])["id"] == child["children"][0]["id"]
    assert (result["target_thread_id"], result["target_agent_path"]) == (root["id"], "/root")
    assert result["message_preview"] == "CHILD-RESULT: the child computed 6*7=42."
    assert child["children"][0]["input_preview"] == "NEW_TASK from /root"


def test_code_cell_tools_nest_under_the_cell_under_its_exec_call() -> None:
    tree = build_tree(load_state("code_mode_cell"))
    (cell,) = nodes(tree, "code_cell")
    owner = parent_of(tree, "code_cell", cell["id"])
    assert (owner["kind"], owner["name"], owner["id"]) == ("tool", "exec", "call_cell_1")
    (nested,) = cell["children"]
    assert (nested["name"], nested["requester"], nested["exit_code"]) == (
        "exec_command",
        "code_cell",
        0,
    )
    assert cell["runtime_status"] == "completed"
    assert cell["source_preview"].startswith("const r = await tools.exec_command")


def test_code_cell_owner_found_by_call_id_without_started_code_cell_id() -> None:
    state = load_state("code_mode_cell")
    for tool in state["tool_calls"].values():
        tool.pop("started_code_cell_id", None)
    tree = build_tree(state)
    (cell,) = nodes(tree, "code_cell")
    assert parent_of(tree, "code_cell", cell["id"])["id"] == "call_cell_1"


def test_compaction_under_its_turn_with_its_request() -> None:
    tree = build_tree(load_state("compact_remote_manual"))
    turns = tree["children"][0]["children"]
    assert [t["index"] for t in turns] == [1, 2, 3]
    (compaction,) = turns[1]["children"]
    assert compaction["kind"] == "compaction"
    assert (
        compaction["installed"],
        compaction["input_items"],
        compaction["replacement_items"],
    ) == (
        True,
        4,
        4,
    )
    assert [c["kind"] for c in compaction["children"]] == ["compaction_request"]
    assert turns[1]["input_preview"] is None  # replacement history is not a prompt
    assert turns[2]["input_preview"] == "Third: after compaction, say done."


def test_failed_compaction_request_without_compaction_is_shown() -> None:
    state = load_state("compact_remote_manual")
    state["compactions"] = {}
    (request,) = state["compaction_requests"].values()
    request["execution"]["status"] = "failed"
    (compaction,) = nodes(build_tree(state), "compaction")
    assert (compaction["installed"], compaction["status"]) == (False, "failed")
    assert compaction["children"][0]["status"] == "failed"


def test_failed_and_cancelled_calls_keep_their_status() -> None:
    retry = build_tree(load_state("inference_retry"))
    calls = nodes(retry, "inference")
    assert [c["status"] for c in calls] == ["failed", "failed", "failed", "completed"]
    assert [c["usage"] is None for c in calls] == [True, True, True, False]
    interrupt = build_tree(load_state("turn_interrupt"))
    assert [t["status"] for t in nodes(interrupt, "turn")] == ["cancelled", "completed"]


def test_terminal_and_mcp_details() -> None:
    stdin = build_tree(load_state("terminal_write_stdin"))
    details = [t["detail"] for t in nodes(stdin, "tool")]
    assert details[0].startswith("$ /bin/bash -lc read line")
    assert details[1] == "stdin 'abc\\n'"
    (mcp,) = nodes(build_tree(load_state("mcp_tool_call")), "tool")
    assert (mcp["name"], mcp["label"], mcp["mcp_call_id"]) == (
        "mcp echo.echo",
        "mcp__echo.echo",
        "acfeaa13-46ee-46d8-94f6-300ae18dc334",
    )


def test_max_items_folds_the_middle_and_counts_it() -> None:
    state = load_state("long_tools")
    tree = build_tree(state, max_items=10)
    (turn,) = tree["children"][0]["children"]
    shown = [c for c in turn["children"] if c["kind"] != "hidden"]
    (hidden,) = [c for c in turn["children"] if c["kind"] == "hidden"]
    assert len(shown) == 10
    assert turn["children"][5] is hidden  # head, fold, tail
    assert len(shown) + hidden["count"] == 501
    assert (
        hidden["counts"] == {"inference": 99 - 0, "tool": 392}
        or sum(hidden["counts"].values()) == hidden["count"]
    )
    assert sum(hidden["counts"].values()) == 491
    assert hidden["reason"] == "max_items"
    assert hidden["statuses"] == {"completed": 491}
    kept_in = sum(c["usage"]["input_tokens"] for c in shown if c.get("usage"))
    assert kept_in + hidden["usage"]["input_tokens"] == tree["usage"]["input_tokens"]


def test_max_items_keeps_failures_from_the_middle() -> None:
    state = load_state("long_tools")
    middle = sorted(state["tool_calls"].values(), key=lambda t: t["execution"]["started_seq"])[200]
    middle["execution"]["status"] = "failed"
    tree = build_tree(state, max_items=10)
    (turn,) = tree["children"][0]["children"]
    assert middle["tool_call_id"] in [c["id"] for c in turn["children"]]
    assert sum(1 for c in turn["children"] if c["kind"] != "hidden") == 10
    assert [c["kind"] for c in turn["children"]].count("hidden") == 2


def test_max_items_keeps_turns_with_trouble_inside() -> None:
    state = load_state("many_turns")
    turn_id = sorted(
        state["codex_turns"], key=lambda u: state["codex_turns"][u]["execution"]["started_seq"]
    )[50]
    call = next(c for c in state["inference_calls"].values() if c["codex_turn_id"] == turn_id)
    call["execution"]["status"] = "failed"
    tree = build_tree(state, max_items=6)
    turns = tree["children"][0]["children"]
    assert turn_id in [t["id"] for t in turns]
    assert sum(t["count"] for t in turns if t["kind"] == "hidden") == 100 - 6


def test_depth_folds_what_is_below() -> None:
    tree = build_tree(load_state("many_turns"), max_items=0, depth=2)
    turns = tree["children"][0]["children"]
    assert len(turns) == 100
    assert all(t["kind"] == "turn" for t in turns)
    folded = [t["children"] for t in turns]
    assert all(len(c) == 1 and c[0]["reason"] == "depth" for c in folded)
    assert sum(c[0]["counts"].get("inference", 0) for c in folded) == 140
    assert sum(c[0]["counts"].get("tool", 0) for c in folded) == 50
    threads_only = build_tree(load_state("many_turns"), depth=1)
    (hidden,) = threads_only["children"][0]["children"]
    assert hidden["count"] == 100
    assert hidden["counts"] == {"turn": 100, "inference": 140, "tool": 50}


def test_thread_filter() -> None:
    state = load_state("multi_agent_v2_spawn")
    child = build_tree(state, threads=["/root/calc"])
    assert [t["agent_path"] for t in child["children"]] == ["/root/calc"]
    by_prefix = build_tree(state, threads=[state["root_thread_id"][:13]])
    assert [t["agent_path"] for t in by_prefix["children"]] == ["/root"]
    assert build_tree(state, threads=["/nobody"])["children"] == []


def test_sparse_or_foreign_state_does_not_break() -> None:
    assert build_tree({})["children"] == []
    state = load_state("tool_call")
    tool = next(iter(state["tool_calls"].values()))
    tool["started_by_codex_turn_id"] = None
    stray = copy.deepcopy(tool)
    stray.update(tool_call_id="stray", thread_id="no-such-thread", execution=None, kind={})
    state["tool_calls"]["stray"] = stray
    tree = build_tree(state)
    thread = tree["children"][0]
    assert tool["tool_call_id"] in [c["id"] for c in thread["children"]]
    assert tree["children"][-1]["id"] == "stray"
    assert tree["children"][-1]["duration_ms"] is None


def test_rendered_tree_fits_the_width() -> None:
    from rich.console import Console

    from otel_rollout.cli._show import render

    for scenario in ("multi_agent_v2_spawn", "inference_retry", "long_tools"):
        console = Console(width=100, record=True, file=io.StringIO())
        console.print(render(build_tree(load_state(scenario), max_items=10)))
        text = console.export_text()
        assert all(len(line) <= 100 for line in text.splitlines())
        if scenario == "multi_agent_v2_spawn":
            assert "→ spawn_agent /root/calc (Mendel) turn 1" in text
            assert "thread /root/calc (Mendel)" in text
            assert "spawned by /root for calc" in text
        if scenario == "inference_retry":
            assert text.count("✗ failed") == 3
        if scenario == "long_tools":
            assert "… 491 more hidden (99 inferences, 392 tools; none failed)" in text


def test_format_helpers() -> None:
    from otel_rollout.cli._show import format_count, format_duration, format_time, format_usage

    assert format_time(1795673154264) == "2026-11-26 06:05:54 UTC"
    assert format_time(None) == "?"

    assert [format_duration(ms) for ms in (0, 999, 1250, 61_000, 3_723_000)] == [
        "0 ms",
        "999 ms",
        "1.25 s",
        "1m 01s",
        "1h 02m",
    ]
    usage = dict.fromkeys(USAGE_FIELDS, 0) | {"input_tokens": 1200, "cached_input_tokens": 300}
    assert format_usage(usage | {"output_tokens": 40}) == "1.2k in (300 cached) / 40 out tok"
    assert [format_count(n) for n in (0, 999, 1000, 12_345, 505_000, 1_234_567)] == [
        "0",
        "999",
        "1.0k",
        "12.3k",
        "505k",
        "1.23M",
    ]


# -- the command, end to end through the reducer ----------------------------------------


def copy_bundle(scenario: str, tmp_path: Path) -> Path:
    """A copy of a fixture bundle without Codex's state.json (so the CLI must reduce it)."""
    target = tmp_path / BY_SCENARIO[scenario].name
    shutil.copytree(BY_SCENARIO[scenario], target)
    (target / "state.json").unlink()
    return target


@pytest.mark.parametrize(
    "scenario", [s for s in BY_SCENARIO if s not in ("long_tools", "many_turns")]
)
def test_cli_reduces_the_bundle_itself(
    scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle(scenario, tmp_path)
    assert main(["show", "--json", "--max-items", "0", str(bundle)]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    expected = build_tree(load_state(scenario), max_items=0, facts=facts_of(bundle))
    assert json.loads(captured.out) == expected
    assert main(["show", "--width", "100", str(bundle)]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"rollout {load_state(scenario)['rollout_id']}  ✓")


def test_cli_on_a_large_bundle(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = BY_SCENARIO["many_turns"]
    assert main(["show", "--json", "--depth", "2", str(bundle)]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree == build_tree(load_state("many_turns"), depth=2, facts=facts_of(bundle))
    turns = tree["children"][0]["children"]
    assert len(turns) == 21  # 10 + a fold + 10
    assert sum(t["count"] for t in turns if t["kind"] == "hidden") == 80


def test_cli_invalid_bundle_exits_1_with_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle("plain", tmp_path)
    log = bundle / "trace.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:4] + lines[5:]))  # a seq gap at line 5
    assert main(["show", str(bundle)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(rf"otel-rollout: {re.escape(str(log))}:5: [^\n]+\n", captured.err)
    assert "Traceback" not in captured.err


def test_cli_torn_last_line_is_dropped_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle("plain", tmp_path)
    with (bundle / "trace.jsonl").open("ab") as log:
        log.write(b'{"schema_version":2,"seq":')
    assert main(["show", "--json", str(bundle)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("otel-rollout: warning: ")
    assert "torn last line" in captured.err
    assert json.loads(captured.out) == build_tree(load_state("plain"), facts=facts_of(bundle))


# -- the command: output forms ----------------------------------------------------------


def test_cli_json_is_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = BY_SCENARIO["multi_agent_v2_spawn"]
    assert main(["show", "--json", str(bundle)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == build_tree(load_state("multi_agent_v2_spawn"), facts=facts_of(bundle))
    assert out["format"] == "otel-rollout.show/3"


def test_cli_terminal_tree(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = BY_SCENARIO["long_tools"]
    args = ["show", "--width", "100", "--max-items", "4", str(bundle)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.startswith("rollout 01a2168a-361e-7790-8402-2140313ef002  ✓  13.61 s")
    assert "… 497 more hidden (99 inferences, 398 tools; none failed)" in text
    assert all(len(line) <= 100 for line in text.splitlines())
    assert main(["show", "--width", "100", "--depth", "2", str(bundle)]) == 0
    text = capsys.readouterr().out
    assert "turn 1  ✓  13.54 s  [101 inferences, 400 tools below]  505k in" in text
    assert len(text.splitlines()) == 4


def test_cli_unknown_thread_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", "--thread", "/nobody", str(BY_SCENARIO["plain"])]) == 2
    assert capsys.readouterr().err == (
        "otel-rollout: Invalid value for --thread: no thread matches /nobody\n"
    )


def test_cli_missing_path_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_rich_is_imported_only_when_show_runs() -> None:
    code = (
        "import sys, otel_rollout.cli._show, otel_rollout._show; "
        "from otel_rollout.cli import main; main(['--help']); "
        "assert 'rich' not in sys.modules, 'rich imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "show" in done.stdout


def test_threads_sharing_an_agent_path_get_distinct_names() -> None:
    state = load_state("multi_agent_v2_spawn")  # Codex's multi-agent v1 labels children /root too
    child_id = next(t for t in state["threads"] if t != state["root_thread_id"])
    state["threads"][child_id]["agent_path"] = "/root"
    tree = build_tree(state)
    names = [t["name"] for t in tree["children"]]
    assert names == [f"/root#{state['root_thread_id'][-8:]}", f"/root#{child_id[-8:]}"]
    spawn = next(e for e in nodes(tree, "edge") if e["edge_kind"] == "spawn_agent")
    assert spawn["target_name"] == names[1]


def test_cli_piped_output_is_not_cut(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["show", str(BY_SCENARIO["multi_agent_v2_spawn"])]) == 0
    text = capsys.readouterr().out
    assert "“Spawn a helper agent to compute 6*7, wait for it, then report.”" in text
    assert "…" not in text
    assert "\x1b[" not in text  # no colour codes into a pipe


def test_running_rollout_from_a_crashed_process() -> None:
    state = load_state("tool_call")
    state["status"] = "running"
    state["ended_at_unix_ms"] = None
    (thread,) = state["threads"].values()
    (turn,) = state["codex_turns"].values()
    last = max(state["inference_calls"].values(), key=lambda c: c["execution"]["started_seq"])
    for execution in (thread["execution"], turn["execution"], last["execution"]):
        execution.update(ended_at_unix_ms=None, ended_seq=None, status="running")
    last["usage"] = None
    tree = build_tree(state)
    assert (tree["status"], tree["duration_ms"]) == ("running", None)
    running = [n for n, _ in walk(tree) if n["status"] == "running"]
    assert [n["kind"] for n in running] == ["rollout", "thread", "turn", "inference"]
    assert all(n["duration_ms"] is None for n in running)
    from rich.console import Console

    from otel_rollout.cli._show import render

    console = Console(width=100, record=True, file=io.StringIO())
    console.print(render(tree))
    assert console.export_text().count("… running") == 4


def test_a_cell_is_never_nested_inside_itself() -> None:
    state = load_state("code_mode_cell")
    nested = next(t for t in state["tool_calls"].values() if t["requester"]["type"] == "code_cell")
    (cell_id,) = state["code_cells"]
    for tool in state["tool_calls"].values():
        tool.pop("started_code_cell_id", None)
    nested["started_code_cell_id"] = cell_id  # a malformed trace: the cell's own tool "started" it
    tree = build_tree(state, max_items=0)
    assert parent_of(tree, "code_cell", cell_id)["kind"] == "turn"
    assert parent_of(tree, "tool", nested["tool_call_id"])["id"] == cell_id


_TABLES = (
    *("threads", "codex_turns", "inference_calls", "tool_calls", "code_cells", "compactions"),
    *("compaction_requests", "interaction_edges", "conversation_items"),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_state_never_breaks_the_tree(data: st.DataObject) -> None:
    """Missing or null fields (a foreign or partial state) still give a tree, never an exception."""
    from rich.console import Console

    from otel_rollout.cli._show import render

    scenario = data.draw(
        st.sampled_from(["multi_agent_v2_spawn", "code_mode_cell", "compact_remote_manual"])
    )
    state = load_state(scenario)
    for _ in range(data.draw(st.integers(1, 8))):
        table = state[data.draw(st.sampled_from(_TABLES))]
        if not table:
            continue
        row = table[data.draw(st.sampled_from(sorted(table)))]
        if not row:
            continue
        key = data.draw(st.sampled_from(sorted(row)))
        if data.draw(st.booleans()):
            row[key] = None
        else:
            del row[key]
    tree = build_tree(state, max_items=data.draw(st.integers(0, 3)))
    Console(width=100, file=io.StringIO()).print(render(tree))
    assert json.loads(msgspec.json.encode(tree)) == tree


def test_prompt_starting_with_a_tag_is_still_the_prompt() -> None:
    state = load_state("plain")
    prompt = next(
        i
        for i in state["conversation_items"].values()
        if i["role"] == "user" and i["body"]["parts"][0]["text"].startswith("Say hello")
    )
    prompt["body"]["parts"][0]["text"] = "<div> is never closed in index.html: fix it"
    (turn,) = nodes(build_tree(state), "turn")
    assert turn["input_preview"] == "<div> is never closed in index.html: fix it"


# -- schema 3 (Codex 0.171.0): recording_status -----------------------------------------

SCHEMA_3 = {
    p.parent.parent.name: p.parent for p in FIXTURES.glob("codex-0.171.0*/*/trace-*/state.json")
}


@pytest.mark.parametrize(
    ("scenario", "status"),
    [("tool_call", "complete"), ("plain_max_payload_1000", "closed_with_partial_payloads")],
)
def test_json_has_the_recording_status_of_a_schema_3_bundle(
    capsys: pytest.CaptureFixture[str], scenario: str, status: str
) -> None:
    assert main(["show", "--json", str(SCHEMA_3[scenario])]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["recording_status"], out["recording_complete"]) == (status, True)
    assert out["counts"]["threads"] == 1


def test_recording_status_is_derived_for_schema_2_and_unclosed_bundles() -> None:
    state = load_state("plain")
    assert build_tree(state)["recording_status"] == "complete"
    state["recording_complete"] = False
    assert build_tree(state)["recording_status"] == "unclosed"
    del state["recording_complete"]
    state["recording_status"] = "unclosed"
    tree = build_tree(state)
    assert (tree["recording_status"], tree["recording_complete"]) == ("unclosed", False)
    del state["recording_status"]
    assert build_tree(state)["recording_status"] is None


# -- failure reasons, outcomes, tool previews ---------------------------------------------

SCHEMA_BUNDLES = {
    "0.169.0": BY_SCENARIO,
    "0.171.0": {
        p.parent.parent.name: p.parent
        for p in FIXTURES.glob("codex-0.171.0/*/trace-*/manifest.json")
    },
}


@pytest.mark.parametrize("version", sorted(SCHEMA_BUNDLES))
def test_failed_attempts_carry_their_reason_and_mark_the_rollout_retried(
    version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = SCHEMA_BUNDLES[version]["inference_retry"]
    assert main(["show", "--json", str(bundle)]) == 0
    tree = json.loads(capsys.readouterr().out)
    calls = nodes(tree, "inference")
    assert [c["error"] for c in calls[:2]] == [
        "We’re currently experiencing high demand, which may cause temporary errors.",
        "stream disconnected before completion: fake server: injected mid-stream failure",
    ]
    assert calls[2]["error"].startswith("stream disconnected before completion")
    assert calls[3]["error"] is None
    [thread] = nodes(tree, "thread")
    [turn] = nodes(tree, "turn")
    for node in (tree, thread, turn):
        assert (node["outcome"], node["failed_turns"], node["retried_failures"]) == (
            "retried",
            0,
            3,
        )
    assert turn["error"] is None  # the turn completed
    assert main(["show", "--width", "200", str(bundle)]) == 0
    text = capsys.readouterr().out
    first = text.splitlines()[0]
    assert "✓" in first and "↻ 3 failed attempts retried" in first
    assert "✗ failed" in text and "“We’re currently experiencing high demand" in text


def test_a_cancelled_turn_shows_why(capsys: pytest.CaptureFixture[str]) -> None:
    bundle = SCHEMA_BUNDLES["0.171.0"]["turn_interrupt"]
    assert main(["show", "--json", str(bundle)]) == 0
    tree = json.loads(capsys.readouterr().out)
    turn = nodes(tree, "turn")[0]
    assert turn["status"] == "cancelled"
    assert turn["error"] == "response stream dropped before provider terminal event"
    assert tree["outcome"] == "ok"  # cancelled by the user: not a failure


def test_a_rollout_whose_only_inference_failed_is_marked_failed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = foreign_bundle(tmp_path)  # the exporter path: spans of another instrumentation
    assert main(["show", "--json", str(bundle)]) == 0
    tree = json.loads(capsys.readouterr().out)
    assert tree["status"] == "completed"  # state.json stays Codex's
    assert (tree["outcome"], tree["failed_turns"]) == ("failed", 1)
    root, child = nodes(tree, "thread")
    assert (root["outcome"], child["outcome"]) == ("ok", "failed")
    [failed] = [c for c in nodes(tree, "inference") if c["status"] == "failed"]
    assert failed["error"] == "rate limited"
    assert nodes(child, "turn")[0]["error"] == "rate limited"
    [tool] = nodes(tree, "tool")
    assert (tool["arguments_preview"], tool["result_preview"]) == ('{"a":2,"b":3}', "5")
    assert main(["show", "--width", "200", str(bundle)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "✗ 1 turn failed" in lines[0]
    assert "✗ 1 turn failed" in next(line for line in lines if "thread /root/checker" in line)
    assert any("✗ failed" in line and "“rate limited”" in line for line in lines)
    # the checker agent runs inside the add call: an agent as a tool, Codex's spawn_agent shape
    assert any(
        "tool spawn_agent" in line and ' add  ({"a":2,"b":3})  → 5' in line for line in lines
    )


def test_a_failed_tool_shows_its_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = foreign_bundle(tmp_path, schema_version=2)  # a payload file to rewrite
    log = bundle / "trace.jsonl"
    text = log.read_text()
    assert text.count('"type":"tool_call_ended"') == 1
    ended = '"type":"tool_call_ended","tool_call_id":"call_add","status":'
    log.write_text(text.replace(ended + '"completed"', ended + '"failed"'))
    [ended_event] = [
        e
        for e in map(json.loads, text.splitlines())
        if ended in json.dumps(e, separators=(",", ":"))
    ]
    result_ref = ended_event["payload"]["result_payload"]["path"]
    (bundle / result_ref).write_text('{"type":"error","error":"division by zero"}')
    assert main(["show", "--json", str(bundle)]) == 0
    [tool] = nodes(json.loads(capsys.readouterr().out), "tool")
    assert (tool["status"], tool["error"]) == ("failed", "division by zero")


@pytest.mark.parametrize("version", sorted(SCHEMA_BUNDLES))
def test_tools_show_their_arguments_and_results(
    version: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = SCHEMA_BUNDLES[version]["mcp_tool_call"]
    assert main(["show", "--json", str(bundle)]) == 0
    [tool] = nodes(json.loads(capsys.readouterr().out), "tool")
    assert json.loads(tool["arguments_preview"]) == {"text": "hello mcp"}
    assert tool["result_preview"].endswith("echo: hello mcp")
