"""Spans shaped like another GenAI instrumentation's, and the bundle the exporter writes of them."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Status, StatusCode, Tracer

from otel_rollout import RolloutBundleSpanExporter, RolloutSpanProcessor


def messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def foreign_agent_run(tracer: Tracer) -> None:
    """Spans shaped like another GenAI instrumentation's: agent, chats, a tool, a sub-agent."""
    with tracer.start_as_current_span("http request"):
        with tracer.start_as_current_span(
            "invoke_agent planner",
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": "planner",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-x",
            },
        ):
            with tracer.start_as_current_span(
                "chat gpt-x",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-x",
                    "gen_ai.provider.name": "openai",
                    "gen_ai.response.id": "resp_1",
                    "gen_ai.usage.input_tokens": 11,
                    "gen_ai.usage.output_tokens": 7,
                    "gen_ai.input.messages": messages("user", "add 2 and 3"),
                    "gen_ai.output.messages": json.dumps(
                        [
                            {
                                "role": "assistant",
                                "parts": [
                                    {
                                        "type": "tool_call",
                                        "id": "call_add",
                                        "name": "add",
                                        "arguments": {"a": 2, "b": 3},
                                    }
                                ],
                            }
                        ]
                    ),
                },
            ):
                pass
            with tracer.start_as_current_span(
                "execute_tool add",
                attributes={
                    "gen_ai.operation.name": "execute_tool",
                    "gen_ai.tool.name": "add",
                    "gen_ai.tool.call.id": "call_add",
                    "gen_ai.tool.call.arguments": '{"a":2,"b":3}',
                    "gen_ai.tool.call.result": "5",
                },
            ):
                with tracer.start_as_current_span(
                    "invoke_agent checker",
                    attributes={
                        "gen_ai.operation.name": "invoke_agent",
                        "gen_ai.agent.name": "checker",
                    },
                ):
                    with tracer.start_as_current_span(
                        "chat gpt-x",
                        attributes={
                            "gen_ai.operation.name": "chat",
                            "gen_ai.request.model": "gpt-x",
                        },
                    ) as failing:
                        failing.set_status(Status(StatusCode.ERROR, "rate limited"))
            with tracer.start_as_current_span(
                "chat gpt-x",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-x",
                    "gen_ai.output.messages": messages("assistant", "5"),
                },
            ):
                pass


def foreign_bundle(directory: Path, schema_version: int | None = None) -> Path:
    """Export :func:`foreign_agent_run` through the bundle exporter; return the bundle.

    Two threads (``/root`` and the spawned ``/root/checker``), a tool call with its
    arguments and result, and the child's only inference call failing (``rate limited``).
    The bundle has the exporter's default schema unless ``schema_version`` is given.
    """
    exporter = RolloutBundleSpanExporter(directory, schema_version=schema_version)
    provider = TracerProvider()
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    foreign_agent_run(provider.get_tracer("some.genai.instrumentation"))
    provider.shutdown()
    [bundle] = directory.glob("trace-*")
    return bundle
