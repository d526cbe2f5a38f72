"""Settings from the environment, and :func:`configure` to set them from code.

Precedence: an explicit :func:`configure` argument, then the environment, then the
default. Nothing is read at import time; bad values are logged and fall back.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from otel_rollout._mapping import DEFAULT_CONTENT_MAX_BYTES

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from otel_rollout._exporter import RolloutBundleSpanExporter

logger = logging.getLogger(__name__)

TRACE_ROOT_ENV = "OTEL_ROLLOUT_TRACE_ROOT"
"""Directory holding bundles; unset or empty disables recording."""
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


@dataclass(frozen=True)
class _Configured:
    settings: Settings
    tracer_provider: TracerProvider | None
    exporter: RolloutBundleSpanExporter | None


_lock = threading.Lock()
_configured: _Configured | None = None
_generation = 0
"""Bumped by every :func:`configure`; recording runtimes built earlier are rebuilt."""


def configure(
    trace_root: str | os.PathLike[str] | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    capture_content: bool | None = None,
    content_max_bytes: int | None = None,
    exporter: RolloutBundleSpanExporter | None = None,
    set_global_provider: bool = False,
) -> None:
    """Configure rollout recording from code instead of (or on top of) the environment.

    Affects rollouts started afterwards; running rollouts keep their settings.

    Args:
        trace_root: Directory for bundles (created if missing). ``None`` reads
            ``OTEL_ROLLOUT_TRACE_ROOT``; an empty string disables recording.
        tracer_provider: Provider for the live spans. By default the global provider
            when the app installed an SDK one, else a private provider that only
            feeds the bundle (the global provider is left alone).
        capture_content: Put payload content on spans; ``None`` reads
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``.
        content_max_bytes: Bound for captured content; ``None`` reads
            ``OTEL_ROLLOUT_CONTENT_MAX_BYTES``.
        exporter: The bundle exporter that writes the bundles; by default one
            exporter shared by the process.
        set_global_provider: When the library sets up its own provider (no
            ``tracer_provider`` given and no SDK provider installed globally), also
            install it as the global provider. Off by default.

    Example:
        >>> import otel_rollout
        >>> otel_rollout.configure(trace_root="/tmp/rollouts")  # doctest: +SKIP
    """
    global _configured, _generation
    env = settings_from_env()
    if trace_root is None:
        root = env.trace_root
    else:
        root = Path(trace_root) if os.fspath(trace_root) else None
    settings = Settings(
        trace_root=root,
        capture_content=env.capture_content if capture_content is None else capture_content,
        content_max_bytes=env.content_max_bytes
        if content_max_bytes is None
        else max(content_max_bytes, 0),
        set_global_provider=set_global_provider,
    )
    with _lock:
        _configured = _Configured(settings, tracer_provider, exporter)
        _generation += 1


def configured() -> tuple[int, Settings, TracerProvider | None, RolloutBundleSpanExporter | None]:
    """Return the configuration generation, settings, provider and exporter in force."""
    with _lock:
        current = _configured
        generation = _generation
    if current is None:
        return generation, settings_from_env(), None, None
    return generation, current.settings, current.tracer_provider, current.exporter


def reset() -> None:
    """Forget :func:`configure` calls (back to the environment). For tests."""
    global _configured, _generation
    with _lock:
        _configured = None
        _generation += 1
