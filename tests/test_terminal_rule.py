"""One terminal rule: on every handle with terminal calls, the first one wins.

A later terminal call writes no event and is logged at debug level; a context
manager's exit after a terminal call records nothing and logs nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from otel_rollout import (
    CodeCellRuntimeStatus,
    ExecutionStatus,
    RolloutStatus,
    ThreadStartedTraceMetadata,
    ThreadTraceContext,
    ToolDispatchInvocation,
    validate_bundle,
)
from support.recording import Pipeline, pipeline_fixture, read_events

REQUEST = {"input": [{"type": "message", "role": "user", "content": []}]}


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch)


def _inference_attempt(root: ThreadTraceContext) -> None:
    attempt = root.inference_trace_context("turn-1", "m", "p").start_attempt()
    attempt.record_started(REQUEST)
    attempt.record_completed("resp-1", [])
    attempt.record_failed("late failure")
    attempt.record_cancelled("late cancel")


def _compaction_attempt(root: ThreadTraceContext) -> None:
    attempt = root.compaction_trace_context("turn-1", "cmp-1", "m", "p").start_attempt(REQUEST)
    attempt.record_completed([])
    attempt.record_completed([])
    attempt.record_failed("late failure")


def _compaction(root: ThreadTraceContext) -> None:
    compaction = root.compaction_trace_context("turn-1", "cmp-1", "m", "p")
    compaction.record_installed([], [])
    compaction.record_installed([], [])


def _tool_dispatch(root: ThreadTraceContext) -> None:
    tool = root.start_tool_dispatch_trace(
        lambda: ToolDispatchInvocation(turn_id="turn-1", tool_name="lookup", tool_call_id="t-1")
    )
    tool.record_completed("first")
    tool.record_completed("second")
    tool.record_failed("late failure")


def _code_cell(root: ThreadTraceContext) -> None:
    cell = root.start_code_cell_trace("turn-1", "cell-1", "call-1", "print(1)")
    cell.record_ended(CodeCellRuntimeStatus.COMPLETED, {"Result": {}})
    cell.record_ended(CodeCellRuntimeStatus.FAILED)


def _child_thread(root: ThreadTraceContext) -> None:
    child = root.start_child_thread_trace_or_disabled(
        ThreadStartedTraceMetadata(thread_id="child-1", agent_path="/root/kid")
    )
    child.record_ended(RolloutStatus.COMPLETED)
    child.record_ended(RolloutStatus.FAILED)


def _turn(root: ThreadTraceContext) -> None:
    turn = root.turn("turn-2")
    with turn:
        pass
    with turn:  # a used turn handle: its start and its end are not recorded again
        pass


CASES: dict[str, tuple[Callable[[ThreadTraceContext], None], set[str]]] = {
    "inference attempt": (
        _inference_attempt,
        {"inference_completed", "inference_failed", "inference_cancelled"},
    ),
    "compaction attempt": (
        _compaction_attempt,
        {"compaction_request_completed", "compaction_request_failed"},
    ),
    "compaction": (_compaction, {"compaction_installed"}),
    "tool dispatch": (_tool_dispatch, {"tool_call_ended"}),
    "code cell": (_code_cell, {"code_cell_ended"}),
    "child thread": (_child_thread, {"thread_ended"}),
    "turn": (_turn, {"codex_turn_ended"}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_second_terminal_call_writes_nothing_and_is_logged(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    run, terminal_types = CASES[case]
    root = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata(thread_id="root"))
    root.record_turn_started("turn-1")
    with caplog.at_level(logging.DEBUG, logger="otel_rollout"):
        run(root)
    root.record_turn_ended("turn-1")
    [bundle] = pipeline.bundles()
    events = [event["payload"] for event in read_events(bundle)]
    counts = Counter(e["type"] for e in events if e.get("codex_turn_id") != "turn-1")
    assert sum(counts[kind] for kind in terminal_types) == 1, counts
    assert counts["codex_turn_started"] == (1 if case == "turn" else 0)
    ignored = [
        r for r in caplog.records if r.levelno == logging.DEBUG and "ignored" in r.getMessage()
    ]
    assert ignored, "a second terminal call is logged at debug level"
    assert all("first terminal call wins" in r.getMessage() for r in ignored)
    root.record_ended()
    assert validate_bundle(bundle).ok


def test_the_root_thread_ends_once(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    root = ThreadTraceContext.start_root_or_disabled()
    with caplog.at_level(logging.DEBUG, logger="otel_rollout"):
        root.record_ended(RolloutStatus.COMPLETED)
        root.record_ended(RolloutStatus.FAILED)
    [bundle] = pipeline.bundles()
    events = [event["payload"] for event in read_events(bundle)]
    assert [event["type"] for event in events][-3:] == [
        "thread_ended",
        "rollout_ended",
        "recording_completed",
    ]
    assert [e["status"] for e in events if e["type"] == "thread_ended"] == ["completed"]
    assert "record_ended ignored on thread" in caplog.text


def test_exit_after_a_terminal_call_records_and_logs_nothing(
    pipeline: Pipeline, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="otel_rollout"):
        with ThreadTraceContext.start_root_or_disabled() as root, root.turn("turn-1") as turn:
            with turn.inference("m", "p").attempt(REQUEST) as attempt:
                attempt.record_completed("resp-1")
            with turn.tool_call("lookup") as tool:
                tool.record_failed("no such key")
            compaction = turn.compaction("cmp-1", "m", "p")
            with compaction.attempt(REQUEST) as request, pytest.raises(KeyError):
                request.record_failed("overloaded")
                raise KeyError("after the terminal call")
            root.record_ended(RolloutStatus.COMPLETED)
    [bundle] = pipeline.bundles()
    events = [event["payload"] for event in read_events(bundle)]
    counts = Counter(event["type"] for event in events)
    assert counts["inference_completed"] == 1 and counts["inference_cancelled"] == 0
    assert counts["tool_call_ended"] == 1 and counts["compaction_request_failed"] == 1
    assert counts["thread_ended"] == 1
    [ended] = [event for event in events if event["type"] == "tool_call_ended"]
    assert ended["status"] == ExecutionStatus.FAILED.value
    assert "ignored" not in caplog.text
