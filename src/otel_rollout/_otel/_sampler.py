"""Complete bundles under a sampler that drops: record every span, export what it keeps.

A trace a sampler drops is never recorded, so no span processor (the rollout one included)
sees its spans, and its bundle is missing or full of holes. :class:`RolloutSampler` wraps the
app's sampler: a span that sampler keeps is sampled as before; a span it drops is recorded
but not sampled (``RECORD_ONLY``), so ``RolloutSpanProcessor`` sees it and writes the bundle,
while the exporters behind ``BatchSpanProcessor`` / ``SimpleSpanProcessor`` (which export
sampled spans only) still see only what the wrapped sampler kept.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes


class RolloutSampler(Sampler):
    """Wraps ``sampler``: what it drops is still recorded (not exported), for the bundles.

    ``TracerProvider(sampler=RolloutSampler(ParentBased(TraceIdRatioBased(0.1))))`` exports one
    trace in ten, and writes every trace's bundle.
    """

    def __init__(self, sampler: Sampler) -> None:
        """Wrap ``sampler``, which decides what is exported."""
        self.sampler = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        """The wrapped sampler's decision, with a drop turned into record-only."""
        result = self.sampler.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )
        if result.decision is not Decision.DROP:
            return result
        # a drop's result carries no attributes: the span's own are what it records
        kept = {**(attributes or {}), **(result.attributes or {})}
        return SamplingResult(Decision.RECORD_ONLY, kept, result.trace_state)

    def get_description(self) -> str:
        """``RolloutSampler{<the wrapped sampler's description>}``."""
        return f"RolloutSampler{{{self.sampler.get_description()}}}"
