"""Record the OpenAI Agents SDK's runs as rollout bundles, natively.

``RolloutTracingProcessor`` is an ``agents.tracing.TracingProcessor``: it records agents
(one thread each), their runs (turns), model responses (the real Responses items, request
and response), function tools, handoffs (a child thread spawned at the ``transfer_to_*``
call) and agents used as tools (a child spawned by the tool call, its answer sent back).

Example:
    >>> from agents import add_trace_processor  # doctest: +SKIP
    >>> add_trace_processor(RolloutTracingProcessor("rollout-traces"))  # doctest: +SKIP

Needs the SDK: ``pip install 'otel-rollout[openai-agents]'``.
"""

from __future__ import annotations

try:
    import agents.tracing  # noqa: F401  (fails here, with a clear message, without the SDK)
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "otel_rollout.openai_agents needs the OpenAI Agents SDK: "
        "pip install 'otel-rollout[openai-agents]'"
    ) from error

from otel_rollout._agents_sdk._instrumentor import OpenAIAgentsInstrumentor
from otel_rollout._agents_sdk._processor import RolloutTracingProcessor

__all__ = ["OpenAIAgentsInstrumentor", "RolloutTracingProcessor"]
