"""An asyncio agent turn recorded with otel-rollout: parallel tool calls as asyncio tasks.

One turn asks the (scripted) model, which calls two tools; both run concurrently as
asyncio tasks, each inside its own ``async with`` tool context (the handles follow
contextvars, so each task records into its own tool call); then the model answers.
No network, no model.

Run::

    OTEL_ROLLOUT_TRACE_ROOT=/tmp/rollouts python examples/asyncio_tools.py

It prints the bundle directory (``otel-rollout show DIR`` draws the turn).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import otel_rollout
from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext

MODEL = "gpt-demo"
PROVIDER = "scripted"
USAGE = {
    "input_tokens": 20,
    "cached_input_tokens": 0,
    "output_tokens": 8,
    "reasoning_output_tokens": 0,
    "total_tokens": 28,
}


def user(text: str) -> dict[str, Any]:
    """A Responses API user message."""
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def call(call_id: str, city: str) -> dict[str, Any]:
    """A function call item of the model's answer."""
    arguments = json.dumps({"city": city})
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": "weather",
        "arguments": arguments,
    }


async def weather(city: str) -> str:
    """The tool: pretend to ask a slow service."""
    await asyncio.sleep(0.01)
    return f"{city}: sunny, 21 C"


async def run_tool(turn: Any, item: dict[str, Any]) -> dict[str, Any]:
    """Run one tool call as its own task, recorded in its own tool context."""
    async with turn.tool_call("weather", item["arguments"], tool_call_id=item["call_id"]) as tool:
        result = await weather(json.loads(item["arguments"])["city"])
        tool.record_completed(result)
    return {
        "type": "function_call_output",
        "id": f"fco_{item['call_id']}",
        "call_id": item["call_id"],
        "output": result,
    }


async def run_rollout() -> Path | None:
    """Record one turn with two concurrent tool calls; the bundle directory, or ``None``."""
    meta = ThreadStartedTraceMetadata(nickname="forecaster", model=MODEL, provider_name=PROVIDER)
    async with ThreadTraceContext.start_root_or_disabled(meta) as root:
        async with root.turn() as turn:
            history = [user("Weather in Paris and Oslo?")]
            calls = [call("call_1", "Paris"), call("call_2", "Oslo")]
            async with turn.inference(MODEL, PROVIDER).attempt({"input": history}) as attempt:
                attempt.record_completed("resp_1", calls, token_usage=USAGE)
            outputs = await asyncio.gather(*(run_tool(turn, item) for item in calls))
            for output in outputs:
                root.record_history_item_accepted(turn.turn_id, output["id"], tool_output=output)
            history += [*calls, *outputs]
            answer = {
                "type": "message",
                "id": "msg_1",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": "Both sunny, 21 C.", "annotations": []}
                ],
            }
            async with turn.inference(MODEL, PROVIDER).attempt({"input": history}) as attempt:
                attempt.record_completed("resp_2", [answer], token_usage=USAGE)
    return root.bundle_dir


def main() -> int:
    """Record the rollout and print where the bundle is."""
    otel_rollout.configure(trace_root=os.environ.get("OTEL_ROLLOUT_TRACE_ROOT") or "rollout-traces")
    bundle = asyncio.run(run_rollout())
    otel_rollout.force_flush()
    if bundle is None:
        print("recording was disabled", file=sys.stderr)
        return 1
    print(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
