# mypy: disallow-untyped-decorators=False
"""An OpenAI Agents SDK app traced through an OpenTelemetry bridge into the rollout processor.

A triage agent uses a researcher agent as a tool (which calls a function tool), then hands
off to a billing agent (which calls a function tool); a second user turn in the same trace
goes to triage again. Each agent has its own model name on the scripted loopback server.

argv[1]: ``openai-agents-v2`` (opentelemetry-instrumentation-openai-agents-v2) or
``openinference`` (openinference-instrumentation-openai-agents); argv[2]: the model API,
``chat`` (Chat Completions) or ``responses`` (the Responses API). The model server's URL is
``OPENAI_BASE_URL``; bundles go to ``OTEL_ROLLOUT_TRACE_ROOT``.
"""

from __future__ import annotations

import asyncio
import os
import sys

from agents import (  # type: ignore[import-not-found, unused-ignore]
    Agent,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    function_tool,
    set_trace_processors,
    trace,
)
from openai import AsyncOpenAI
from opentelemetry.sdk.trace import TracerProvider

from otel_rollout import RolloutSpanProcessor

BRIDGE = sys.argv[1]
API = sys.argv[2] if len(sys.argv) > 2 else "chat"

provider = TracerProvider()
provider.add_span_processor(RolloutSpanProcessor())
set_trace_processors([])  # no export to the OpenAI platform: the bridge is the only processor
if BRIDGE == "openinference":
    from openinference.instrumentation.openai_agents import (  # type: ignore[import-not-found, unused-ignore]
        OpenAIAgentsInstrumentor,
    )
else:
    from opentelemetry.instrumentation.openai_agents import (  # type: ignore[import-not-found, unused-ignore]
        OpenAIAgentsInstrumentor,
    )
OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)


@function_tool
def lookup(q: str) -> str:
    """Look ``q`` up."""
    return f"found {q}"


@function_tool
def invoice() -> str:
    """The current invoice."""
    return "invoice #7: $10"


async def main() -> None:
    client = AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-scripted")

    def model(name: str) -> OpenAIChatCompletionsModel | OpenAIResponsesModel:
        if API == "responses":
            return OpenAIResponsesModel(model=name, openai_client=client)
        return OpenAIChatCompletionsModel(model=name, openai_client=client)

    researcher = Agent(
        name="researcher",
        instructions="You research.",
        model=model("researcher-model"),
        tools=[lookup],
    )
    billing = Agent(
        name="billing",
        instructions="You handle billing.",
        model=model("billing-model"),
        tools=[invoice],
    )
    triage = Agent(
        name="triage",
        instructions="You triage.",
        model=model("triage-model"),
        tools=[researcher.as_tool("research", "Research a question.")],
        handoffs=[billing],
    )
    with trace("support conversation"):
        first = await Runner.run(triage, "What are the rates?")
        again = [*first.to_input_list(), {"role": "user", "content": "Thanks"}]
        await Runner.run(triage, again)


asyncio.run(main())
provider.shutdown()
