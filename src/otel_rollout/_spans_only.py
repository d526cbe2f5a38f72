"""Bundles from spans alone (placeholder until the spans-only path lands)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan


class SpansOnlyAssembler:
    """Buffers spans that no processor fed live."""

    def __init__(self, trace_root: Path) -> None:
        """Write bundles under ``trace_root``."""
        self.trace_root = trace_root
        self.spans: list[ReadableSpan] = []

    def add(self, spans: Sequence[ReadableSpan]) -> None:
        """Buffer spans."""
        self.spans.extend(spans)

    def close(self) -> None:
        """Write what is buffered."""
