"""``opentelemetry-instrument`` support: an instrumentor that installs the tracing processor.

Imports without the Agents SDK: ``opentelemetry-instrument`` loads every registered
instrumentor, and with the SDK absent this one does nothing.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,  # an untyped module (`# type: ignore` at its top)
)

logger = logging.getLogger(__name__)

_INSTRUMENTS = ("openai-agents >= 0.24",)


class OpenAIAgentsInstrumentor(BaseInstrumentor):
    """Adds :class:`~otel_rollout.openai_agents.RolloutTracingProcessor` to the Agents SDK.

    ``opentelemetry-instrument`` runs it through the ``opentelemetry_instrumentor`` entry
    point ``openai_agents_rollout``; bundles go under ``OTEL_ROLLOUT_TRACE_ROOT``. From code:
    ``OpenAIAgentsInstrumentor().instrument(trace_root=...)``. The SDK's own processors stay.
    """

    _processor: Any = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """The Agents SDK, which this instruments."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        if importlib.util.find_spec("agents") is None:  # opentelemetry-instrument skips checks
            logger.debug("otel-rollout: the OpenAI Agents SDK is not installed; nothing to do")
            return
        from agents import add_trace_processor

        from otel_rollout._agents_sdk._processor import RolloutTracingProcessor

        processor = RolloutTracingProcessor(kwargs.get("trace_root"))
        add_trace_processor(processor)
        type(self)._processor = processor

    def _uninstrument(self, **kwargs: Any) -> None:
        processor = type(self)._processor
        if processor is not None:
            processor.enabled = False  # the SDK has no way to remove one processor
            type(self)._processor = None


def keep_installed() -> None:
    """After every instrumentor ran (``opentelemetry_post_instrument``): add the processor back
    if an exclusive one replaced the SDK's processors after it (OpenInference's, by default)."""
    processor = OpenAIAgentsInstrumentor._processor
    if processor is None:
        return
    from agents import add_trace_processor
    from agents.tracing import get_trace_provider

    multi = getattr(get_trace_provider(), "_multi_processor", None)
    registered = getattr(multi, "_processors", None)  # the SDK has no public getter
    if registered is None or any(each is processor for each in registered):
        return
    add_trace_processor(processor)
