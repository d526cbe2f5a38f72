"""Zero-code installation: ``opentelemetry-instrument`` adds the rollout span processor.

Registered as the ``opentelemetry_post_instrument`` entry point ``rollout_span_processor``:
after the SDK is configured and every instrumentor ran, :func:`install_processor` adds a
:class:`~otel_rollout.RolloutSpanProcessor` to the global SDK tracer provider when
``OTEL_ROLLOUT_TRACE_ROOT`` is set, so spans-only bundles stream and survive a killed
process as they do with the processor in code. It does nothing when the ``rollout_bundle``
exporter is configured already (``OTEL_TRACES_EXPORTER``: one writer of bundles), or when
``OTEL_ROLLOUT_SPAN_PROCESSOR=false``. With no SDK provider installed (no
``opentelemetry-distro``), it installs one, for the bundles alone.
"""

from __future__ import annotations

import logging
import os

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_rollout._config import TRACE_ROOT_ENV

logger = logging.getLogger(__name__)

SPAN_PROCESSOR_ENV = "OTEL_ROLLOUT_SPAN_PROCESSOR"
"""``false`` keeps ``opentelemetry-instrument`` from adding the processor."""


_installed = False


def install_processor() -> None:
    """Add the rollout span processor to the global SDK tracer provider (see the module);
    once per process."""
    global _installed
    if _installed or not os.environ.get(TRACE_ROOT_ENV):
        return
    if os.environ.get(SPAN_PROCESSOR_ENV, "").strip().lower() in ("false", "0", "no", "off"):
        return
    exporters = os.environ.get("OTEL_TRACES_EXPORTER", "")
    if "rollout_bundle" in (name.strip() for name in exporters.split(",")):
        return
    from otel_rollout._otel._exporter import RolloutSpanProcessor

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        # no SDK configured (no opentelemetry-distro): spans would go nowhere, so the bundles
        # get a provider of their own
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        logger.info("rollout trace: no SDK tracer provider installed; installed one for bundles")
    provider.add_span_processor(RolloutSpanProcessor())
    _installed = True
