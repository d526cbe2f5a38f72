"""The recording API writes a raw bundle that validates and that Codex's reducer accepts."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import otel_rollout
from otel_rollout import (
    AgentResultTracePayload,
    CodeCellRuntimeStatus,
    ExecutionStatus,
    RolloutStatus,
    ThreadStartedTraceMetadata,
    ThreadTraceContext,
    ToolDispatchInvocation,
    _config,
    current_thread,
    current_turn,
    reduce_bundle,
    validate_bundle,
    write_state,
)
from otel_rollout._bundle._bodies import new_id
from support.codex import codex_reduce
from support.recording import Pipeline, event_types, load_example, pipeline_fixture, read_events


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch)


@pytest.fixture(params=[2, 3], ids=["schema2", "schema3"])
def both_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    """A pipeline writing schema 2 (Codex 0.169.0's) or schema 3 (0.171.0's, the default)."""
    yield from pipeline_fixture(tmp_path, monkeypatch, schema_version=request.param)


REQUEST = {
    "input": [
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    ]
}


def test_example_rollout_validates_and_codex_reduces_it(
    both_schemas: Pipeline, codex_for: Callable[[int], Path], tmp_path: Path
) -> None:
    pipeline = both_schemas
    bundle = load_example().run_rollout()
    assert bundle is not None
    assert pipeline.bundles() == [bundle]
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    assert (report.threads, report.turns) == (2, 2)
    types = event_types(bundle)
    assert types[:2] == ["rollout_started", "thread_started"]
    assert types[-3:] == ["thread_ended", "rollout_ended", "recording_completed"]
    for expected in (
        "inference_failed",
        "inference_completed",
        "tool_call_started",
        "tool_call_ended",
        "tool_call_runtime_ended",
        "compaction_request_started",
        "compaction_request_completed",
        "compaction_installed",
        "agent_result_observed",
    ):
        assert expected in types
    assert json.loads((bundle / "manifest.json").read_text())["schema_version"] == (
        pipeline.schema_version
    )
    done = codex_reduce(codex_for(pipeline.schema_version), bundle, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["status"] == "completed"
    if pipeline.schema_version == 2:
        assert state["recording_complete"] is True
    else:
        assert state["recording_status"] == "complete"
    assert len(state["threads"]) == 2
    child = next(t for t in state["threads"].values() if t["agent_path"] == "/root/researcher")
    assert child["origin"]["type"] == "spawned"
    assert len(state["inference_calls"]) == 5
    statuses = sorted(call["execution"]["status"] for call in state["inference_calls"].values())
    assert statuses == ["completed"] * 4 + ["failed"]
    assert len(state["compactions"]) == 1
    assert len(state["tool_calls"]) == 2


def test_example_edges_reduce_as_codex_and_as_replay_bundle(
    both_schemas: Pipeline, codex_for: Callable[[int], Path], tmp_path: Path
) -> None:
    """The child's result is delivered into the root's history, so both reducers draw the
    agent_result edge (child's answer -> root's delivered item) beside the spawn edge; the
    Codex of the bundle's schema reduces it to our bytes."""
    bundle = load_example().run_rollout()
    assert bundle is not None
    both_schemas.bundles()
    done = codex_reduce(codex_for(both_schemas.schema_version), bundle, tmp_path / "codex.json")
    assert done.returncode == 0, done.stderr
    theirs = (tmp_path / "codex.json").read_bytes()
    ours = write_state(reduce_bundle(bundle), tmp_path / "ours.json").read_bytes()
    assert ours == theirs
    state = json.loads(theirs)
    threads = {t["agent_path"]: t["thread_id"] for t in state["threads"].values()}
    items = state["conversation_items"]
    edges = {edge["kind"]: edge for edge in state["interaction_edges"].values()}
    assert sorted(edges) == ["agent_result", "spawn_agent"]
    result = edges["agent_result"]
    source = items[result["source"]["item_id"]]
    target = items[result["target"]["item_id"]]
    assert (source["thread_id"], source["role"]) == (threads["/root/researcher"], "assistant")
    assert target["thread_id"] == threads["/root"]
    assert target["agent_message"] == {"author": "/root/researcher", "recipient": "/root"}
    assert result["carried_item_ids"] == [result["target"]["item_id"]]
    spawn = edges["spawn_agent"]
    assert spawn["source"] == {"type": "tool_call", "tool_call_id": "call_spawn_1"}
    task = items[spawn["target"]["item_id"]]
    assert task["thread_id"] == threads["/root/researcher"]
    assert task["agent_message"] == {"author": "/root", "recipient": "/root/researcher"}


def test_every_context_reaches_the_bundle_and_codex_accepts_it(
    both_schemas: Pipeline, codex_for: Callable[[int], Path], tmp_path: Path
) -> None:
    pipeline = both_schemas
    meta = ThreadStartedTraceMetadata(thread_id="thread-root", model="m", provider_name="p")
    root = ThreadTraceContext.start_root_or_disabled(meta)
    assert root.is_enabled()
    root.record_protocol_event("session_configured", {"type": "session_configured"})
    root.record_turn_started("turn-1")
    root.record_history_item_accepted("turn-1", "item-1")
    inference = root.inference_trace_context("turn-1", "m", "p")
    attempt = inference.start_attempt()
    attempt.record_started(REQUEST)
    attempt.record_cancelled(
        "user interrupted", output_items=[{"type": "message", "role": "assistant", "content": []}]
    )
    attempt.record_completed("ignored")  # the first terminal record wins
    cell = root.start_code_cell_trace("turn-1", "1", "call_exec", "print(1)")
    nested = root.start_tool_dispatch_trace(
        lambda: ToolDispatchInvocation(
            turn_id="turn-1",
            tool_name="exec_command",
            arguments={"cmd": "ls"},
            tool_call_id="tool-nested",
            runtime_cell_id="1",
            runtime_tool_call_id="tool-1",
        )
    )
    root.record_tool_call_runtime_started(
        "turn-1",
        "tool-nested",
        "exec_command",
        {"call_id": "tool-nested", "command": ["ls"], "cwd": "/", "process_id": None},
    )
    root.record_tool_call_runtime_ended(
        "turn-1",
        "tool-nested",
        ExecutionStatus.COMPLETED,
        {
            "call_id": "tool-nested",
            "command": ["ls"],
            "cwd": "/",
            "stdout": "",
            "stderr": "",
            "exit_code": 0,
        },
    )
    nested.record_failed(RuntimeError("exit 2"))
    cell.record_initial_response(CodeCellRuntimeStatus.YIELDED, {"Yielded": {}})
    cell.record_ended(CodeCellRuntimeStatus.COMPLETED, {"Result": {"error_text": None}})
    mcp = root.start_tool_dispatch_trace(
        lambda: ToolDispatchInvocation(
            turn_id="turn-1", tool_name="lookup", tool_call_id="tool-mcp"
        )
    )
    mcp_call = root.start_mcp_call_trace("tool-mcp")
    assert mcp_call.add_request_meta({"a": 1})["codex_bridge_mcp_call_id"] == mcp_call.mcp_call_id
    mcp.record_completed({"ok": True})
    compaction = root.compaction_trace_context("turn-1", "cmp-1", "m", "p")
    compaction.start_attempt({"input": []}).record_failed("overloaded")
    compaction.start_attempt({"input": []}).record_completed([])
    compaction.record_installed([], [])
    child = root.start_child_thread_trace_or_disabled(
        ThreadStartedTraceMetadata(thread_id="thread-child", agent_path="/root/kid")
    )
    child.record_turn_started("turn-c")
    child.record_agent_result_interaction(
        "turn-c", "thread-root", AgentResultTracePayload("/root/kid", "done")
    )
    child.record_turn_ended("turn-c", ExecutionStatus.COMPLETED)
    child.record_ended(RolloutStatus.COMPLETED)
    root.record_turn_ended("turn-1", ExecutionStatus.COMPLETED)
    root.record_ended(RolloutStatus.COMPLETED)
    root.record_turn_started("late")  # after the rollout ended: ignored

    [bundle] = pipeline.bundles()
    assert bundle.name == f"trace-{root.trace_id}-thread-root"
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    types = event_types(bundle)
    assert types.count("inference_cancelled") == 1
    assert "inference_completed" not in types
    assert types[-1] == "recording_completed"
    assert "late" not in (bundle / "trace.jsonl").read_text()
    seqs = [event["seq"] for event in read_events(bundle)]
    assert seqs == list(range(1, len(seqs) + 1))
    done = codex_reduce(codex_for(pipeline.schema_version), bundle, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["tool_calls"]["tool-mcp"]["mcp_call_id"] == mcp_call.mcp_call_id
    assert len(state["compaction_requests"]) == 2
    assert state["threads"]["thread-child"]["origin"]["type"] == "spawned"


def test_disabled_without_a_trace_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_config.TRACE_ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    thread = ThreadTraceContext.start_root_or_disabled()
    assert thread is ThreadTraceContext.disabled()
    assert not thread.is_enabled()
    monkeypatch.setenv(_config.TRACE_ROOT_ENV, "")
    assert not ThreadTraceContext.start_root_or_disabled().is_enabled()
    monkeypatch.setenv(_config.TRACE_ROOT_ENV, str(tmp_path / "on"))
    otel_rollout.configure(trace_root="")
    assert not ThreadTraceContext.start_root_or_disabled().is_enabled()
    assert list(tmp_path.iterdir()) == []


def test_disabled_handles_do_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_config.TRACE_ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    thread = ThreadTraceContext.start_root_or_disabled()

    def factory() -> ToolDispatchInvocation:
        raise AssertionError("the factory must not run when disabled")

    tool = thread.start_tool_dispatch_trace(factory)
    assert not tool.is_enabled() and tool.tool_call_id is None
    attempt = thread.inference_trace_context("t", "m", "p").start_attempt()
    attempt.record_started(object())  # not even serialized
    attempt.record_completed("r")
    with thread, thread.turn() as turn, turn.inference("m", "p").attempt(object()) as a:
        assert not turn.is_enabled() and not a.is_enabled()
        with turn.tool_call("x") as t, turn.compaction("c", "m", "p").attempt({}) as c:
            t.record_completed(object())
            c.record_completed([object()])
    assert thread.start_child_thread_trace_or_disabled(ThreadStartedTraceMetadata()) is thread
    assert thread.start_mcp_call_trace("x").add_request_meta(None) is None
    assert current_thread() is thread
    assert list(tmp_path.iterdir()) == []


def test_disabled_method_calls_allocate_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_config.TRACE_ROOT_ENV, raising=False)
    thread = ThreadTraceContext.start_root_or_disabled()
    payload = {"type": "x"}

    def calls() -> None:
        for _ in range(2000):
            thread.record_protocol_event("x", payload)
            thread.record_turn_started("t")
            thread.inference_trace_context("t", "m", "p").start_attempt().record_completed("r")
            thread.turn().__enter__()
            thread.start_tool_dispatch_trace(dict)  # type: ignore[arg-type]

    calls()  # warm up
    before = sys.getallocatedblocks()
    calls()
    assert sys.getallocatedblocks() - before < 50


def test_env_root_is_created(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "a" / "b"
    monkeypatch.setenv(_config.TRACE_ROOT_ENV, str(root))
    thread = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata(thread_id="t1"))
    assert thread.is_enabled()
    thread.record_ended()
    assert thread.bundle_dir is not None and thread.bundle_dir.parent == root
    otel_rollout.configure()  # env again, nothing else
    assert ThreadTraceContext.start_root_or_disabled().is_enabled()


def test_unwritable_root_gives_disabled_and_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    otel_rollout.configure(trace_root=blocker)
    with caplog.at_level(logging.WARNING):
        thread = ThreadTraceContext.start_root_or_disabled()
    assert not thread.is_enabled()
    assert "failed to initialize rollout trace bundle" in caplog.text


def test_payload_that_is_not_json_is_skipped_with_a_warning(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    thread = ThreadTraceContext.start_root_or_disabled()
    with caplog.at_level(logging.WARNING):
        thread.record_protocol_event("odd", object())
    thread.record_ended()
    [bundle] = pipeline.bundles()
    assert "protocol_event_observed" not in event_types(bundle)
    assert "not JSON" in caplog.text
    assert validate_bundle(bundle).ok


def test_context_managers_record_failure_and_reraise(pipeline: Pipeline) -> None:
    thread = ThreadTraceContext.start_root_or_disabled()
    with pytest.raises(ValueError, match="bad tool"), thread:
        with thread.turn("turn-1") as turn:
            assert current_turn() is turn and current_thread() is thread
            with turn.inference("m", "p").attempt(REQUEST):
                pass  # no terminal record: cancelled
            with turn.tool_call("t", tool_call_id="call-1"):
                raise ValueError("bad tool")
    [bundle] = pipeline.bundles()
    events = {e["payload"]["type"]: e["payload"] for e in read_events(bundle)}
    assert events["inference_cancelled"]["reason"] == "attempt ended without a response"
    assert events["tool_call_ended"]["status"] == "failed"
    assert events["codex_turn_ended"]["status"] == "failed"
    assert events["thread_ended"]["status"] == "failed"
    assert events["rollout_ended"]["status"] == "failed"
    assert current_thread() is ThreadTraceContext.disabled()


async def test_async_context_managers_and_cancellation(pipeline: Pipeline) -> None:
    thread = ThreadTraceContext.start_root_or_disabled()
    started = asyncio.Event()

    async def turn_task() -> None:
        async with thread.turn("turn-a") as turn:
            async with turn.inference("m", "p").attempt(REQUEST):
                started.set()
                await asyncio.sleep(10)

    task = asyncio.create_task(turn_task())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with thread:
        pass
    [bundle] = pipeline.bundles()
    events = {e["payload"]["type"]: e["payload"] for e in read_events(bundle)}
    assert events["inference_cancelled"]["reason"] == "cancelled"
    assert events["codex_turn_ended"]["status"] == "cancelled"
    assert events["rollout_ended"]["status"] == "completed"


GLOBAL_PROVIDER_SCRIPT = """
import sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
import otel_rollout
from otel_rollout import ThreadTraceContext

otel_rollout.configure(trace_root=sys.argv[1])
with ThreadTraceContext.start_root_or_disabled() as thread, thread.turn():
    pass
assert thread.is_enabled()
assert not isinstance(trace.get_tracer_provider(), TracerProvider), "global provider touched"
otel_rollout.configure(trace_root=sys.argv[1], set_global_provider=True)
with ThreadTraceContext.start_root_or_disabled() as thread:
    pass
assert isinstance(trace.get_tracer_provider(), TracerProvider), "global provider not set"
print("ok")
"""


def test_without_an_app_provider_the_global_provider_is_left_alone(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", GLOBAL_PROVIDER_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
    bundles = sorted(tmp_path.glob("trace-*"))
    assert len(bundles) == 2 and all(validate_bundle(bundle).ok for bundle in bundles)


def test_new_ids_are_the_text_of_uuid4s_of_the_same_random_bits() -> None:
    state = random.getstate()
    try:
        for seed in range(200):
            random.seed(seed)
            made = new_id()
            random.seed(seed)
            assert made == str(uuid.UUID(int=random.getrandbits(128), version=4))
            assert uuid.UUID(made).version == 4
    finally:
        random.setstate(state)
