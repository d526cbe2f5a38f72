"""Settings read from the environment (a leaf: imports nothing from the package).

:func:`otel_rollout.configure` (in :mod:`otel_rollout._live._runtime`) lays explicit
values over these. Nothing is read at import time; bad values are logged and fall back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

TRACE_ROOT_ENV = "OTEL_ROLLOUT_TRACE_ROOT"
"""Directory holding bundles; unset or empty disables recording."""
DEFAULT_CONTENT_MAX_BYTES = 2048
"""Default bound for content put on spans (Tempo's default attribute limit)."""
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""``true`` puts payload content (truncated) on spans."""
CONTENT_MAX_BYTES_ENV = "OTEL_ROLLOUT_CONTENT_MAX_BYTES"
"""Truncation bound for captured content (default 2048, Tempo's attribute limit)."""


@dataclass(frozen=True)
class Settings:
    """Resolved recording settings."""

    trace_root: Path | None
    """Where bundles go; ``None`` means recording is disabled."""
    capture_content: bool = False
    content_max_bytes: int = DEFAULT_CONTENT_MAX_BYTES
    set_global_provider: bool = False
    """Install the library's own provider (when it makes one) as the global provider."""


def trace_root_from_env() -> Path | None:
    """Return ``OTEL_ROLLOUT_TRACE_ROOT`` as a path, or ``None`` when unset or empty."""
    value = os.environ.get(TRACE_ROOT_ENV, "")
    return Path(value) if value else None


def capture_content_from_env() -> bool:
    """Return whether ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` is ``true``."""
    return os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() == "true"


def content_max_bytes_from_env() -> int:
    """Return ``OTEL_ROLLOUT_CONTENT_MAX_BYTES``, or the default when unset or invalid."""
    value = os.environ.get(CONTENT_MAX_BYTES_ENV, "").strip()
    if not value:
        return DEFAULT_CONTENT_MAX_BYTES
    try:
        parsed = int(value)
    except ValueError:
        parsed = -1
    if parsed < 0:
        logger.warning(
            "rollout trace: ignoring %s=%r (not a non-negative integer), using %d",
            CONTENT_MAX_BYTES_ENV,
            value,
            DEFAULT_CONTENT_MAX_BYTES,
        )
        return DEFAULT_CONTENT_MAX_BYTES
    return parsed


def settings_from_env() -> Settings:
    """Read every setting from the environment."""
    return Settings(
        trace_root=trace_root_from_env(),
        capture_content=capture_content_from_env(),
        content_max_bytes=content_max_bytes_from_env(),
    )
