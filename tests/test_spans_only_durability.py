"""Spans-only bundles survive a killed process: checkpoints while the trace runs.

The app is killed while a tool runs, once a checkpoint shows that tool started (how soon a
checkpoint follows a span's end is a property of the checkpoint interval, 50 ms, not checked
here by a clock): the bundle left behind is valid, Codex reduces it, and it holds what ended
and the start of what had not, without claiming the rollout ended.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.frameworks import framework_env
from support.rollout_shape import assert_codex_accepts, rollout_shape

APP = textwrap.dedent(
    """
    import json, sys, time
    from opentelemetry.sdk.trace import TracerProvider
    from otel_rollout import RolloutSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(RolloutSpanProcessor())
    tracer = provider.get_tracer("an.instrumentation")
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "worker"}
    user = [{"role": "user", "parts": [{"type": "text", "content": "work"}]}]
    call = [{"role": "assistant", "parts": [
        {"type": "tool_call", "id": "call_1", "name": "step", "arguments": "{}"},
        {"type": "tool_call", "id": "call_2", "name": "step", "arguments": "{}"}]}]
    chat = {
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "m",
        "gen_ai.input.messages": json.dumps(user), "gen_ai.output.messages": json.dumps(call),
    }
    def tool(call_id):
        return {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "step",
                "gen_ai.tool.call.id": call_id, "gen_ai.tool.call.arguments": "{}"}
    with tracer.start_as_current_span("job"):
        with tracer.start_as_current_span("invoke_agent worker", attributes=agent):
            with tracer.start_as_current_span("chat m", attributes=chat):
                pass
            with tracer.start_as_current_span("execute_tool step", attributes=tool("call_1")):
                pass
            with tracer.start_as_current_span("execute_tool step", attributes=tool("call_2")):
                print("ready", flush=True)
                time.sleep(60)
    """
)


def _wait_for_checkpoint(traces: Path, needle: bytes) -> None:
    """Wait (polling, 30 s at most) until a checkpoint's event log holds ``needle`` and that
    checkpoint is done (its scratch directory removed: it is renamed into place first)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for log in traces.glob("trace-*/trace.jsonl"):
            try:
                if needle in log.read_bytes() and not any(traces.glob(".staging/*")):
                    return
            except OSError:
                pass  # swapped out while read
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint holds {needle!r}")


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_app_leaves_a_valid_bundle_of_what_had_ended(
    how: signal.Signals, tmp_path: Path, codex_for: Callable[[int], Path]
) -> None:
    traces = tmp_path / "traces"
    with subprocess.Popen(
        [sys.executable, "-c", APP],
        env=framework_env(OTEL_ROLLOUT_TRACE_ROOT=str(traces)),
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
            _wait_for_checkpoint(traces, b'"call_2"')  # the running tool's start is on disk
            process.send_signal(how)
            process.wait(timeout=30)
        finally:
            process.kill()
    [bundle] = traces.glob("trace-*")
    assert_codex_accepts(bundle, codex_for(3), tmp_path)
    shape = rollout_shape(bundle)
    [worker] = shape.threads.values()
    assert (worker.nickname, worker.turns, worker.inferences) == ("worker", 1, 1)
    assert worker.tools == [("step", "call_1", "other"), ("step", "call_2", "other")]
    statuses = {
        tool["model_visible_call_id"]: tool["execution"]["status"]
        for tool in shape.state["tool_calls"].values()
    }
    assert statuses["call_1"] == "completed" and statuses["call_2"] != "completed"
    assert shape.state["status"] != "completed"  # the rollout did not end: no claim it did
    assert not (traces / ".staging").exists() or not any((traces / ".staging").iterdir())
