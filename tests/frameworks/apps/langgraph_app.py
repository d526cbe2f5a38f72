# mypy: disallow-untyped-decorators=False
"""A LangGraph app (LangChain ``create_agent``) traced by an OTel instrumentation into bundles.

A planner agent calls an ``ask_helper`` tool that runs a helper agent (an agent as a tool);
the helper calls a ``lookup`` tool. Each agent has its own model name on the scripted
loopback server (``OPENAI_BASE_URL``); bundles go to ``OTEL_ROLLOUT_TRACE_ROOT``.

argv[1]: ``openinference`` (openinference-instrumentation-langchain) or ``openllmetry``
(opentelemetry-instrumentation-langchain).
"""

from __future__ import annotations

import os
import sys

from langchain.agents import create_agent  # type: ignore[import-not-found, unused-ignore]
from langchain_core.tools import tool  # type: ignore[import-not-found, unused-ignore]
from langchain_openai import ChatOpenAI  # type: ignore[import-not-found, unused-ignore]
from opentelemetry.sdk.trace import TracerProvider

from otel_rollout import RolloutSpanProcessor

provider = TracerProvider()
provider.add_span_processor(RolloutSpanProcessor())
if sys.argv[1] == "openinference":
    from openinference.instrumentation.langchain import (  # type: ignore[import-not-found, unused-ignore]
        LangChainInstrumentor,
    )

    LangChainInstrumentor().instrument(tracer_provider=provider)
else:
    from opentelemetry.instrumentation.langchain import (  # type: ignore[import-not-found, unused-ignore]
        LangchainInstrumentor,
    )

    LangchainInstrumentor().instrument(tracer_provider=provider)


def chat_model(name: str) -> ChatOpenAI:
    return ChatOpenAI(model=name, base_url=os.environ["OPENAI_BASE_URL"], api_key="sk-scripted")


@tool
def lookup() -> str:
    """Look it up."""
    return "found"


helper = create_agent(
    chat_model("helper-model"), tools=[lookup], system_prompt="You help.", name="helper"
)


@tool
def ask_helper(question: str) -> str:
    """Ask the helper agent."""
    answer = helper.invoke({"messages": [{"role": "user", "content": question}]})
    return str(answer["messages"][-1].content)


planner = create_agent(
    chat_model("planner-model"), tools=[ask_helper], system_prompt="You plan.", name="planner"
)
planner.invoke({"messages": [{"role": "user", "content": "plan it"}]})
provider.shutdown()
