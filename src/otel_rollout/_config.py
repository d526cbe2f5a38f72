"""Settings read from the environment (a leaf: imports nothing from the package).

:func:`otel_rollout.configure` (in :mod:`otel_rollout._live._runtime`) lays explicit
values over these. Nothing is read at import time; bad values are logged and fall back.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar


def _warn(message: str, *args: object) -> None:
    """Warn on this module's logger (``logging`` is imported only when a warning is due:
    the command line starts without it)."""
    import logging

    logging.getLogger(__name__).warning(message, *args)


TRACE_ROOT_ENV = "OTEL_ROLLOUT_TRACE_ROOT"
"""Directory holding bundles; unset or empty disables recording."""
DEFAULT_CONTENT_MAX_BYTES = 16384
"""Default bound of one content attribute (16 KiB: several pages of conversation, the
newest kept; a batch of such spans stays far below OTLP's 4 MiB gRPC limit). Tempo
truncates attributes past 2048 bytes by default: lower this there, or raise Tempo's."""
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
"""Where content goes, as for the GenAI instrumentations (case-insensitive): ``true`` or
``span_only`` (span attributes), ``event_only`` (log events), ``span_and_event`` (both),
``no_content`` or unset (neither). Bundles keep their payloads whatever it says."""
CONTENT_MODES: dict[str, tuple[bool, bool]] = {
    "true": (True, False),
    "span_only": (True, False),
    "event_only": (False, True),
    "span_and_event": (True, True),
    "no_content": (False, False),
    "false": (False, False),
}
"""Each value of the content switch: (content on spans, content as log events)."""
CONTENT_MAX_BYTES_ENV = "OTEL_ROLLOUT_CONTENT_MAX_BYTES"
"""Bound of each content attribute (default 16384), still valid JSON when cut."""
REDACT_PATTERNS_ENV = "OTEL_ROLLOUT_REDACT_PATTERNS"
"""Regular expressions whose matches become ``[REDACTED]`` in payloads and content: a JSON
array of expressions (``["sk-[A-Za-z0-9]+", "\\d{16}"]``), or else the whole value as one."""
REDACT_ALL_PATTERN = r"(?s).+"
"""Used in place of patterns that do not compile: redaction fails closed."""
SCHEMA_VERSION_ENV = "OTEL_ROLLOUT_SCHEMA_VERSION"
"""The bundle schema recording writes: 3 (Codex 0.171.0, the default) or 2 (0.169.0/0.170.0)."""
WRITABLE_SCHEMA_VERSIONS = (2, 3)
"""The schemas a bundle can be written in (``_bundle._models.SCHEMA_VERSIONS``; a leaf
cannot import it, ``tests/test_config.py`` checks they agree)."""
MAX_BYTES_ENV = "OTEL_ROLLOUT_MAX_BYTES"
"""Schema 3: payloads that would take a bundle past this many bytes are omitted."""
MAX_PAYLOAD_BYTES_ENV = "OTEL_ROLLOUT_MAX_PAYLOAD_BYTES"
"""Schema 3: payloads (and long strings of model items) past this many bytes are truncated."""

WRITER_STALL_TIMEOUT_ENV = "OTEL_ROLLOUT_WRITER_STALL_TIMEOUT_S"
"""Seconds the bundle writer may make no progress, while a recording call waits for room
in its full queue, before that bundle stops (default 10)."""


def writer_stall_timeout_from_env() -> float | None:
    """The positive number of seconds in :data:`WRITER_STALL_TIMEOUT_ENV`, or ``None``
    (unset, or invalid: warned about)."""
    return _from_env(
        WRITER_STALL_TIMEOUT_ENV,
        float,
        lambda seconds: 0 < seconds < float("inf"),
        "not a positive number of seconds",
    )


LOAD_POLICY_ENV = "OTEL_ROLLOUT_LOAD_POLICY"
"""What recording does when the bundle writer's queue is full: ``wait`` (the default:
backpressure, nothing lost) or ``drop`` (never wait: payload bodies are left out, then the
bundle ends early)."""
LOAD_POLICIES = ("wait", "drop")


def load_policy_from_env() -> str | None:
    """:data:`LOAD_POLICY_ENV` (``wait`` or ``drop``), or ``None`` (unset, or invalid:
    warned about)."""
    value = os.environ.get(LOAD_POLICY_ENV, "").strip().lower()
    if not value:
        return None
    if value in LOAD_POLICIES:
        return value
    _warn("rollout trace: ignoring %s=%r (not wait or drop)", LOAD_POLICY_ENV, value)
    return None


EXIT_GRACE_ENV = "OTEL_ROLLOUT_EXIT_GRACE_S"
"""Seconds the exit waits for child threads still recording after their root ended (default 2)."""


def exit_grace_from_env() -> float | None:
    """The non-negative seconds in :data:`EXIT_GRACE_ENV`, or ``None`` (unset or invalid)."""
    return _from_env(
        EXIT_GRACE_ENV, float, lambda seconds: 0 <= seconds < float("inf"), "not seconds"
    )


_N = TypeVar("_N", int, float)


def _from_env(
    name: str,
    parse: Callable[[str], _N],
    valid: Callable[[_N], bool],
    expected: str,
    then: str = "",
) -> _N | None:
    """The number in environment variable ``name``; ``None`` when unset or empty, and when
    ``parse`` fails or ``valid`` refuses it (warned: ``expected`` says why, ``then`` what
    happens instead)."""
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        parsed: _N | None = parse(value)
    except ValueError:
        parsed = None
    if parsed is None or not valid(parsed):
        _warn("rollout trace: ignoring %s=%r (%s)%s", name, value, expected, then)
        return None
    return parsed


@dataclass(frozen=True)
class Settings:
    """Resolved recording settings."""

    trace_root: Path | None
    """Where bundles go; ``None`` means recording is disabled."""
    capture_content: bool = False
    """Content on span attributes."""
    content_events: bool = False
    """Content as the conventions' log events (through the OTel logs API)."""
    content_max_bytes: int = DEFAULT_CONTENT_MAX_BYTES
    set_global_provider: bool = False
    """Install the library's own provider (when it makes one) as the global provider."""
    schema_version: int | None = None
    """The bundle schema to write; ``None``: the writer's default (3)."""
    max_bytes: int | None = None
    """Schema 3 size limit of a whole bundle; ``None``: no limit."""
    max_payload_bytes: int | None = None
    """Schema 3 size limit of one payload; ``None``: no limit."""
    redact_patterns: tuple[str, ...] = ()
    """Regular expressions redacted from payloads and content (the environment's)."""
    redact: Callable[[str], str] | None = None
    """A redaction function (``configure(redact=fn)``), applied after the patterns."""
    load_policy: str = "wait"
    """``wait`` (backpressure) or ``drop``, when the writer queue is full
    (:data:`LOAD_POLICY_ENV`)."""


def trace_root_from_env() -> Path | None:
    """Return ``OTEL_ROLLOUT_TRACE_ROOT`` as a path, or ``None`` when unset or empty."""
    value = os.environ.get(TRACE_ROOT_ENV, "")
    return Path(value) if value else None


def content_mode_from_env() -> tuple[bool, bool]:
    """Return (content on spans, content as log events) from
    ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (an unknown value is warned
    about and captures nothing)."""
    value = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower()
    if not value:
        return False, False
    mode = CONTENT_MODES.get(value)
    if mode is None:
        _warn(
            "rollout trace: ignoring %s=%r (not one of %s), capturing no content",
            CAPTURE_CONTENT_ENV,
            value,
            ", ".join(CONTENT_MODES),
        )
        return False, False
    return mode


def capture_content_from_env() -> bool:
    """Return whether the content switch puts content on spans (``true``, ``span_only``,
    ``span_and_event``)."""
    return content_mode_from_env()[0]


def redact_patterns_from_env() -> tuple[str, ...]:
    """Return the expressions of ``OTEL_ROLLOUT_REDACT_PATTERNS`` (none when unset); a
    value that does not parse or compile is warned about and redacts every string."""
    value = os.environ.get(REDACT_PATTERNS_ENV, "").strip()
    if not value:
        return ()
    import json
    import re

    patterns = [value]
    if value.startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(p, str) for p in parsed):
            patterns = [p for p in parsed if p]
        elif parsed is not None:
            patterns = []
    try:
        for pattern in patterns or [""]:
            if not patterns:
                raise re.error("not a JSON array of strings")
            re.compile(pattern)
    except re.error as error:
        _warn(
            "rollout trace: %s is not valid (%s); redacting every string instead",
            REDACT_PATTERNS_ENV,
            error,
        )
        return (REDACT_ALL_PATTERN,)
    return tuple(patterns)


def content_max_bytes_from_env() -> int:
    """Return ``OTEL_ROLLOUT_CONTENT_MAX_BYTES``, or the default when unset or invalid."""
    parsed = _from_env(
        CONTENT_MAX_BYTES_ENV,
        int,
        lambda n: n >= 0,
        "not a non-negative integer",
        f", using {DEFAULT_CONTENT_MAX_BYTES}",
    )
    return DEFAULT_CONTENT_MAX_BYTES if parsed is None else parsed


MAX_READ_BYTES_ENV = "OTEL_ROLLOUT_MAX_READ_BYTES"
"""The most bytes a reader takes from one file or one ``trace.jsonl`` line (default 256 MiB)."""
DEFAULT_MAX_READ_BYTES = 256 << 20


def max_read_bytes_from_env() -> int:
    """Return ``OTEL_ROLLOUT_MAX_READ_BYTES`` (a positive integer), or the default 256 MiB
    when unset or invalid (an invalid value is warned about)."""
    parsed = _from_env(
        MAX_READ_BYTES_ENV,
        int,
        lambda n: n > 0,
        "not a positive integer",
        f", using {DEFAULT_MAX_READ_BYTES}",
    )
    return DEFAULT_MAX_READ_BYTES if parsed is None else parsed


def schema_version_from_env() -> int | None:
    """Return ``OTEL_ROLLOUT_SCHEMA_VERSION`` (2 or 3), or ``None`` (the default) when unset
    or invalid (an invalid value is warned about)."""
    value = os.environ.get(SCHEMA_VERSION_ENV, "").strip()
    if not value:
        return None
    if value in ("2", "3"):
        return int(value)
    _warn(
        "rollout trace: ignoring %s=%r (not 2 or 3), writing the default schema",
        SCHEMA_VERSION_ENV,
        value,
    )
    return None


def size_limit_from_env(name: str) -> int | None:
    """Return the positive integer in environment variable ``name``, or ``None`` (no limit)
    when unset or invalid (an invalid value is warned about)."""
    return _from_env(name, int, lambda n: n > 0, "not a positive integer", ", no limit")


def settings_from_env() -> Settings:
    """Read every setting from the environment.

    The size limits apply to schema 3 only: with ``OTEL_ROLLOUT_SCHEMA_VERSION=2`` they
    are ignored, with a warning.
    """
    schema_version = schema_version_from_env()
    max_bytes = size_limit_from_env(MAX_BYTES_ENV)
    max_payload_bytes = size_limit_from_env(MAX_PAYLOAD_BYTES_ENV)
    if schema_version == 2 and (max_bytes is not None or max_payload_bytes is not None):
        _warn(
            "rollout trace: ignoring %s/%s (size limits exist in schema 3 only, and %s=2)",
            MAX_BYTES_ENV,
            MAX_PAYLOAD_BYTES_ENV,
            SCHEMA_VERSION_ENV,
        )
        max_bytes = max_payload_bytes = None
    on_spans, as_events = content_mode_from_env()
    return Settings(
        trace_root=trace_root_from_env(),
        capture_content=on_spans,
        content_events=as_events,
        redact_patterns=redact_patterns_from_env(),
        content_max_bytes=content_max_bytes_from_env(),
        schema_version=schema_version,
        max_bytes=max_bytes,
        max_payload_bytes=max_payload_bytes,
        load_policy=load_policy_from_env() or "wait",
    )
