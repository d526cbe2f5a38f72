"""A scripted two-agent rollout, recorded with otel-rollout. No network, no model.

The root agent ("planner") spawns a child ("researcher") through a tool call; the
task reaches the child as an inter-agent message, the child answers and its result
is delivered back into the root's history (as Codex does, so the reduced trace has a
``spawn_agent`` and an ``agent_result`` edge). Along the way: one failed and one
completed inference attempt, tool calls, and a compaction.

Run::

    OTEL_ROLLOUT_TRACE_ROOT=/tmp/rollouts python examples/two_agents.py

It prints the bundle directory (validate it with ``otel-rollout validate DIR``).
With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set (e.g. ``http://localhost:4318``), the same
spans also go to that OTLP endpoint (Jaeger, Tempo, a collector...): OTLP/HTTP, or
gRPC with ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import otel_rollout
from otel_rollout import (
    AgentResultTracePayload,
    ThreadStartedTraceMetadata,
    ThreadTraceContext,
    agent_message_item,
)

MODEL = "gpt-demo"
PROVIDER = "scripted"


def user(text: str) -> dict[str, Any]:
    """A Responses API user message."""
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def assistant(text: str, item_id: str) -> dict[str, Any]:
    """A Responses API assistant message."""
    return {
        "type": "message",
        "id": item_id,
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call(name: str, call_id: str, arguments: str, item_id: str) -> dict[str, Any]:
    """A Responses API function call item."""
    return {
        "type": "function_call",
        "id": item_id,
        "name": name,
        "call_id": call_id,
        "arguments": arguments,
    }


def output(call_id: str, text: str) -> dict[str, Any]:
    """A Responses API function call output item (its id as Codex gives one)."""
    return {
        "type": "function_call_output",
        "id": f"fco_{call_id}",
        "call_id": call_id,
        "output": text,
    }


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    """Codex's token usage shape."""
    return {
        "input_tokens": input_tokens,
        "cached_input_tokens": 0,
        "output_tokens": output_tokens,
        "reasoning_output_tokens": 0,
        "total_tokens": input_tokens + output_tokens,
    }


def request(items: list[dict[str, Any]]) -> dict[str, Any]:
    """A Responses API request body."""
    return {"model": MODEL, "input": items, "stream": True}


def run_child(parent: ThreadTraceContext, spawn_turn_id: str, task: str) -> AgentResultTracePayload:
    """The researcher: one turn with one tool call; returns its result for the parent."""
    meta = ThreadStartedTraceMetadata(
        agent_path="/root/researcher", nickname="researcher", model=MODEL, provider_name=PROVIDER
    )
    child = parent.start_child_thread_trace_or_disabled(meta)
    answer = "The answer is 42."
    with child, child.turn() as turn:
        # The task arrives as an inter-agent message from the parent (the spawn edge ends here).
        delivered = agent_message_item(
            parent.agent_path, child.agent_path, task, item_id="amsg_task"
        )
        child.record_history_item_accepted(turn.turn_id, delivered["id"], agent_message=delivered)
        inference = turn.inference(MODEL, PROVIDER)
        history = [delivered]
        lookup = function_call("lookup", "call_lookup_1", '{"q":"answer"}', "fc_child_1")
        with inference.attempt(request(history)) as attempt:
            attempt.record_completed("resp_child_1", [lookup], token_usage=usage(40, 8))
        with turn.tool_call("lookup", '{"q":"answer"}', tool_call_id="call_lookup_1") as tool:
            tool.record_completed("42")
        # the tool's output enters the child's history (schema 3 keeps it with the event)
        looked_up = output("call_lookup_1", "42")
        child.record_history_item_accepted(turn.turn_id, looked_up["id"], tool_output=looked_up)
        history += [lookup, looked_up]
        with inference.attempt(request(history)) as attempt:
            final = assistant(answer, "msg_child_1")
            attempt.record_completed("resp_child_2", [final], token_usage=usage(60, 9))
        result = AgentResultTracePayload(child.agent_path, answer)
        child.record_agent_result_interaction(turn.turn_id, parent.thread_id, result)
    return result


def run_rollout() -> Path | None:
    """Record the whole rollout; return its bundle directory (``None`` when disabled)."""
    meta = ThreadStartedTraceMetadata(
        nickname="planner", model=MODEL, provider_name=PROVIDER, agent_path="/root"
    )
    with ThreadTraceContext.start_root_or_disabled(meta) as root, root.turn() as turn:
        inference = turn.inference(MODEL, PROVIDER)
        history = [user("What is the answer? Ask a researcher.")]
        # Attempt 1 fails (the provider returned 500); attempt 2 asks for a child agent.
        with inference.attempt(request(history)) as attempt:
            attempt.record_failed("HTTP 500 from provider", upstream_request_id="req_1")
        spawn = function_call(
            "spawn_agent",
            "call_spawn_1",
            '{"message":"find the answer","task_name":"researcher"}',
            "fc_1",
        )
        with inference.attempt(request(history)) as attempt:
            attempt.record_completed(
                "resp_1", [spawn], token_usage=usage(30, 12), upstream_request_id="req_2"
            )
        with turn.tool_call(
            "spawn_agent",
            '{"message":"find the answer","task_name":"researcher"}',
            tool_call_id="call_spawn_1",
        ) as tool:
            result = run_child(root, turn.turn_id, "find the answer")
            tool.record_completed('{"task_name":"/root/researcher"}')
        spawned = output("call_spawn_1", '{"task_name":"/root/researcher"}')
        root.record_history_item_accepted(turn.turn_id, spawned["id"], tool_output=spawned)
        history += [spawn, spawned]
        # The child's result is delivered into the root's history (the agent_result edge
        # ends at this item) and sent to the model with the next request.
        delivered = agent_message_item(
            result.child_agent_path, root.agent_path, result.message, item_id="amsg_result"
        )
        root.record_history_item_accepted(turn.turn_id, delivered["id"], agent_message=delivered)
        history.append(delivered)
        # The history is long: compact it before the final answer.
        compaction = turn.compaction("compaction_1", MODEL, PROVIDER)
        summary = {"type": "compaction", "id": "cmp_1", "encrypted_content": "SUMMARY-1"}
        with compaction.attempt({"model": MODEL, "input": history}) as compact:
            compact.record_completed([summary])
        compaction.record_installed(history, [history[0], summary])
        history = [history[0], summary]
        with inference.attempt(request(history)) as attempt:
            attempt.record_completed(
                "resp_2", [assistant(result.message, "msg_1")], token_usage=usage(25, 6)
            )
    return root.bundle_dir


def main() -> int:
    """Set up OTLP export if asked, record the rollout, print where the bundle is."""
    provider = None
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
            "OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"
        )
        exporter = GrpcExporter() if protocol == "grpc" else HttpExporter()
        provider = TracerProvider(
            resource=Resource.create({"service.name": "otel-rollout-two-agents"})
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace_root = os.environ.get("OTEL_ROLLOUT_TRACE_ROOT") or "rollout-traces"
    otel_rollout.configure(trace_root=trace_root, tracer_provider=provider)
    bundle = run_rollout()
    if provider is not None:
        otel_rollout.force_flush()  # the live spans are built on the writer thread
        provider.shutdown()
    if bundle is None:
        print("recording was disabled", file=sys.stderr)
        return 1
    print(bundle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
