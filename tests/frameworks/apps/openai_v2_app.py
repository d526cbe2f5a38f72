"""The OpenAI client instrumented by ``opentelemetry-instrumentation-openai-v2``, into bundles.

argv[1]:

* ``agents``: a support agent (the app's own ``invoke_agent`` span) whose model calls sit
  under an ordinary app span, runs a ``lookup`` tool and asks a helper agent through an
  ``ask_helper`` tool (an agent as a tool); the spans-only path writes the bundle.
* ``zero-code``: the same, with no OpenTelemetry set up in code: run under
  ``opentelemetry-instrument``, which instruments openai and adds the rollout span processor
  (otel-rollout's ``opentelemetry_post_instrument`` entry point).
* ``recording``: a recording-API rollout on the same provider as openai-v2, its chat call
  inside the rollout: the rollout's own bundle, and no second one from openai-v2's span.
* ``loop``: an agent loop with no span around it (each chat call and tool span a trace of
  its own), then a second user message; with ``CONVERSATION_ID`` set, the app puts it in
  the baggage and copies it onto every span as ``gen_ai.conversation.id`` (what
  ``opentelemetry-processor-baggage``'s ``BaggageSpanProcessor`` does).

The model server is ``OPENAI_BASE_URL``; bundles go to ``OTEL_ROLLOUT_TRACE_ROOT``. Prints
``otel_rollout.stats().foreign_spans_left_out`` last.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

import openai
from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider

import otel_rollout
from otel_rollout import RolloutBundleSpanExporter, RolloutSpanProcessor, ThreadTraceContext

MODE = sys.argv[1]
exporter = RolloutBundleSpanExporter()
provider = TracerProvider()
CONVERSATION = "gen_ai.conversation.id"


class ConversationIdFromBaggage(SpanProcessor):
    """Copies the baggage's conversation id onto each span as it starts."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        value = baggage.get_baggage(CONVERSATION, parent_context)
        if isinstance(value, str):
            span.set_attribute(CONVERSATION, value)


provider.add_span_processor(ConversationIdFromBaggage())
if MODE == "zero-code":  # opentelemetry-instrument instruments openai and adds the processor
    tracer = trace.get_tracer("support.app")
else:
    provider.add_span_processor(RolloutSpanProcessor(exporter))
    OpenAIInstrumentor().instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    tracer = provider.get_tracer("support.app")
client = openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-scripted")
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
        },
    }
    for name in ("lookup", "ask_helper")
]


def agent_loop(model: str, system: str, user: str, run_tool: Any) -> str:
    """Call the model until it answers, running the tools it asks for."""
    messages: list[Any] = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    while True:
        with tracer.start_as_current_span("step"):  # an ordinary app span in between
            reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
        message = reply.choices[0].message
        if not message.tool_calls:
            return message.content or ""
        messages.append(message.model_dump(exclude_none=True))
        answer_tool_calls(message.tool_calls, messages, run_tool)


def answer_tool_calls(
    tool_calls: list[Any], messages: list[Any], run: Callable[[str, dict[str, Any]], str]
) -> None:
    """Run each tool call in an ``execute_tool`` span; its result appended to ``messages``."""
    for tool_call in tool_calls:
        assert tool_call.type == "function"
        name, arguments = tool_call.function.name, tool_call.function.arguments
        with tracer.start_as_current_span(
            f"execute_tool {name}",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": name,
                "gen_ai.tool.call.id": tool_call.id,
                "gen_ai.tool.call.arguments": arguments,
            },
        ) as span:
            result = run(name, json.loads(arguments))
            span.set_attribute("gen_ai.tool.call.result", result)
        messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": result})


def invoke_agent(name: str, model: str, system: str, user: str) -> str:
    attributes = {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": name,
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": model,
    }
    with tracer.start_as_current_span(f"invoke_agent {name}", attributes=attributes):
        return agent_loop(model, system, user, run_tool)


def run_tool(name: str, arguments: dict[str, Any]) -> str:
    if name == "ask_helper":
        return invoke_agent("helper", "helper-model", "You help.", str(arguments["q"]))
    return f"found {arguments['q']}"


def loop_without_a_span(model: str, users: list[str]) -> None:
    """The agent loop with no span around it; each user message after the last answer."""
    messages: list[Any] = [{"role": "system", "content": "You support."}]
    for user in users:
        messages.append({"role": "user", "content": user})
        while True:
            reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
            message = reply.choices[0].message
            messages.append(message.model_dump(exclude_none=True))
            if not message.tool_calls:
                break
            answer_tool_calls(message.tool_calls, messages, lambda _, args: f"found {args['q']}")


if MODE == "loop":
    conversation = os.environ.get("CONVERSATION_ID")
    if conversation:
        context.attach(baggage.set_baggage(CONVERSATION, conversation))
    loop_without_a_span("loop-model", ["Where is my order?", "Thanks"])
elif MODE in ("agents", "zero-code"):
    with tracer.start_as_current_span("POST /support"):
        invoke_agent("support", "support-model", "You support.", "Where is my order?")
else:
    otel_rollout.configure(tracer_provider=provider, exporter=exporter)
    with ThreadTraceContext.start_root_or_disabled() as thread, thread.turn():
        client.chat.completions.create(
            model="support-model", messages=[{"role": "user", "content": "hi"}]
        )
provider.shutdown()
print(otel_rollout.stats().foreign_spans_left_out)
