"""Content as the GenAI conventions' log events, through the OpenTelemetry logs API.

With ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=event_only`` (or
``span_and_event``) each inference's messages go out as a
``gen_ai.client.inference.operation.details`` event (structured attributes, as
``opentelemetry-util-genai`` emits it), correlated with the chat span by its ids.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry._logs import Logger, LoggerProvider, get_logger
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from otel_rollout import semconv as sc
from otel_rollout._otel._live_spans import LIVE_SCOPE_NAME
from otel_rollout._version import package_version


class LogContentEvents:
    """Emits content events of one trace (a :data:`~._mapping.ContentEventSink`)."""

    def __init__(
        self,
        trace_id: int,
        trace_flags: TraceFlags,
        logger_provider: LoggerProvider | None = None,
    ) -> None:
        """Emit through ``logger_provider`` (default: the global one)."""
        self.trace_id = trace_id
        self.trace_flags = trace_flags
        self.logger: Logger = get_logger(
            LIVE_SCOPE_NAME,
            package_version(),
            logger_provider=logger_provider,
            schema_url=sc.GEN_AI_SCHEMA_URL,
        )

    def __call__(self, span_id: int, name: str, attributes: dict[str, Any], time_ns: int) -> None:
        """Emit the event ``name`` in the context of the span ``span_id``."""
        context = trace.set_span_in_context(
            NonRecordingSpan(SpanContext(self.trace_id, span_id, False, self.trace_flags))
        )
        self.logger.emit(event_name=name, attributes=attributes, timestamp=time_ns, context=context)
