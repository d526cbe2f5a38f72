"""An OpenAI Agents SDK app recorded by otel-rollout's native tracing processor.

A triage agent uses a researcher agent as a tool (which calls a function tool), then hands
off to a billing agent; a second user turn in the same trace goes to triage again. The
model is the tests' scripted OpenAI server (``tests/support/scripted_openai.py``; the agents
share one model, so each agent's script is keyed by its instructions), on loopback in this
process. Prints one JSON line: what the app
did (the requests the model received, the final outputs).

Modes (argv[1]): ``processor`` adds the processor in code; ``instrument`` relies on
``opentelemetry-instrument``; ``bridge`` also installs the OTel contrib bridge on an SDK
TracerProvider; ``slow`` sleeps in the billing agent's tool until killed; ``errors`` runs
another app: a tool that raises, then a model call the API fails; ``twice`` another: triage
calls the researcher as a tool twice; ``chat`` the first app with the Chat Completions model
(the SDK's generation spans instead of its response spans); ``parts`` records generation spans
made with the SDK's tracing API, whose outputs hold content parts, a refusal and an item
already in the Responses form (what other Chat Completions models put there).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    trace,
)
from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the support package
from support.scripted_openai import Reply, call, calls, fail, say, scripted_server

Script = Mapping[str, Sequence[Reply]]

MODE = sys.argv[1] if len(sys.argv) > 1 else "processor"

SCRIPT: Script = {
    "You research.": [
        calls(  # two calls of one tool in one response: run concurrently
            ("lookup", '{"q": "rates",  "exact":true}', "call_r1"),
            ("lookup", '{"q":"fees","exact":false}', "call_r2"),
        ),
        say("Rates are 5%."),
    ],
    "You handle billing.": [call("invoice", "{}", "call_b1"), say("Your bill is $10.")],
    "You triage.": [
        call("research", '{"input":"find rates"}', "call_t1"),
        call("transfer_to_billing", "{}", "call_t2"),
        say("Anything else?"),
    ],
}


@function_tool
async def lookup(q: str, exact: bool) -> str:
    """Look ``q`` up (the first call answers last)."""
    await asyncio.sleep(0.2 if q == "rates" else 0)
    return f"found {q}"


@function_tool
def explode() -> str:
    """A tool that fails."""
    raise ValueError("boom")


ERROR_SCRIPT: Script = {
    "You check.": [call("explode", "{}", "call_x"), say("It failed.")],
    "You fail.": [fail(500)],
}


async def run_errors(url: str) -> dict[str, Any]:
    """A tool that raises, then a model call the API fails, in one trace."""
    client = AsyncOpenAI(base_url=url, api_key="sk-scripted", max_retries=0)
    model = OpenAIResponsesModel("scripted-model", client)
    checker = Agent(name="checker", instructions="You check.", model=model, tools=[explode])
    failer = Agent(name="failer", instructions="You fail.", model=model)
    with trace("errors"):
        first = await Runner.run(checker, "Check it.")
        try:
            await Runner.run(failer, "Fail.")
        except Exception as error:  # the API's 500, raised by the SDK
            return {"outputs": [first.final_output], "error": type(error).__name__}
    return {"outputs": [first.final_output], "error": None}


TWICE_SCRIPT: Script = {
    "You research.": [say("5%."), say("$1.")],
    "You triage.": [
        call("research", '{"input":"rates"}', "call_a1"),
        call("research", '{"input": "fees"}', "call_a2"),
        say("5% and $1."),
    ],
}


async def run_twice(url: str) -> dict[str, Any]:
    """Triage asks the researcher (an agent as a tool) twice in one run."""
    client = AsyncOpenAI(base_url=url, api_key="sk-scripted")
    model = OpenAIResponsesModel("scripted-model", client)
    researcher = Agent(name="researcher", instructions="You research.", model=model)
    triage = Agent(
        name="triage",
        instructions="You triage.",
        model=model,
        tools=[researcher.as_tool("research", "Research a question.")],
    )
    with trace("two questions"):
        done = await Runner.run(triage, "Rates and fees?")
    return {"outputs": [done.final_output]}


@function_tool
def invoice() -> str:
    """The current invoice."""
    if MODE == "slow":
        print(json.dumps({"ready": True}), flush=True)
        time.sleep(60)
    return "invoice #7: $10"


async def run(url: str) -> dict[str, Any]:
    client = AsyncOpenAI(base_url=url, api_key="sk-scripted")
    model: OpenAIResponsesModel | OpenAIChatCompletionsModel = (
        OpenAIChatCompletionsModel("scripted-model", client)
        if MODE == "chat"
        else OpenAIResponsesModel("scripted-model", client)
    )
    researcher = Agent(name="researcher", instructions="You research.", model=model, tools=[lookup])
    billing = Agent(
        name="billing", instructions="You handle billing.", model=model, tools=[invoice]
    )
    triage = Agent(
        name="triage",
        instructions="You triage.",
        model=model,
        tools=[researcher.as_tool("research", "Research a question.")],
        handoffs=[billing],
    )
    with trace("support conversation"):
        first = await Runner.run(triage, "What are the rates?")
        again = [*first.to_input_list(), {"role": "user", "content": "Thanks"}]
        second = await Runner.run(triage, again)
    return {"outputs": [first.final_output, second.final_output], "last": first.last_agent.name}


PARTS_OUTPUTS: list[list[dict[str, Any]]] = [
    [
        {
            "role": "assistant",
            "content": [{"type": "text", "text": "Two"}, {"type": "text", "text": " parts"}],
        }
    ],
    [{"role": "assistant", "content": None, "refusal": "I cannot."}],
    [
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "As is"}],
        }
    ],
]


async def run_parts(url: str) -> dict[str, Any]:
    """Generation spans with the given outputs, in one agent span (no model server)."""
    from agents.tracing import agent_span, generation_span

    with trace("parts"), agent_span(name="writer"):
        for output in PARTS_OUTPUTS:
            with generation_span(input=[{"role": "user", "content": "Hi"}], model="m") as span:
                span.span_data.output = output
                span.span_data.usage = {"input_tokens": 3, "output_tokens": 2}
    return {"outputs": PARTS_OUTPUTS}


def main() -> None:
    provider = None
    if MODE in ("processor", "slow", "errors", "twice", "chat", "parts"):
        from agents import add_trace_processor

        from otel_rollout.openai_agents import RolloutTracingProcessor

        add_trace_processor(RolloutTracingProcessor(os.environ["APP_TRACE_ROOT"]))
    elif MODE == "bridge":
        from agents import add_trace_processor
        from opentelemetry import trace as otel_trace
        from opentelemetry.instrumentation.openai_agents import OpenAIAgentsInstrumentor
        from opentelemetry.sdk.trace import TracerProvider

        import otel_rollout
        from otel_rollout.openai_agents import RolloutTracingProcessor

        provider = TracerProvider()
        provider.add_span_processor(otel_rollout.RolloutSpanProcessor())
        otel_trace.set_tracer_provider(provider)
        add_trace_processor(RolloutTracingProcessor())  # first: the bridge's span is not current
        OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
    script = {"errors": ERROR_SCRIPT, "twice": TWICE_SCRIPT}.get(MODE, SCRIPT)
    runs = {"errors": run_errors, "twice": run_twice, "parts": run_parts}
    with scripted_server(script) as server:
        done = asyncio.run(runs.get(MODE, run)(server.base_url))
    done["requests"] = server.received
    done["responses"] = server.answered
    done["unscripted"] = server.unscripted
    if provider is not None:
        provider.shutdown()
        import otel_rollout

        done["foreign_spans_left_out"] = otel_rollout.stats().foreign_spans_left_out
    print(json.dumps(done))


if __name__ == "__main__":
    main()
