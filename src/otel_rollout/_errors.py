"""One policy for failures inside the library (a leaf: imports nothing from the package).

Recording is best-effort: a bug or an unexpected value inside otel-rollout must never
break the app. Outside strict mode an internal error is swallowed, counted per
component, and warned once per component per process; :func:`stats` reads the counts.

In strict mode (``OTEL_ROLLOUT_STRICT=1``, which the project's test suite sets) every
internal error reaches the caller: raised where it happens on the caller's thread, and,
for work on background threads (the bundle writer, span export), re-raised from the
next ``force_flush()`` or ``shutdown()``. The background thread keeps serving later work.

Call :func:`internal_error` or :func:`background_error` only from an ``except`` block.
"""

from __future__ import annotations

import enum
import logging
import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger("otel_rollout")

STRICT_ENV = "OTEL_ROLLOUT_STRICT"
"""``1`` (or ``true``) makes internal errors raise instead of being counted."""


class Component(str, enum.Enum):
    """The parts of the library whose internal errors are counted separately."""

    RECORDING = "recording"
    """A recording API call on the app's thread."""
    ROOT_START = "root_start"
    """Starting a root thread (creating its bundle and live pipeline)."""
    WRITER = "writer"
    """The background writer thread (bundle files)."""
    MAPPER = "mapper"
    """Mapping recorded events onto live spans (writer thread)."""
    EXPORTER = "exporter"
    """The bundle span exporter and processor."""
    SPANS_ONLY = "spans_only"
    """Building bundles from foreign GenAI spans."""
    AGENTS_SDK = "agents_sdk"
    """Recording the OpenAI Agents SDK's traces (its tracing processor)."""


@dataclass(frozen=True)
class BundleStats:
    """One live bundle's event counts (``recorded == written + dropped + lost + pending``)."""

    recorded: int = 0
    """Events the app recorded for this bundle (including those after it stopped)."""
    written: int = 0
    """Events appended to its ``trace.jsonl``."""
    dropped: int = 0
    """Events left out on purpose by the drop policy (``load_policy="drop"``; none by
    default): the bundle ended early, at a valid prefix, and these came after."""
    lost: int = 0
    """Events that will never be written: the bundle stopped (a stuck or failing disk)
    before them, or they were still queued when the process exited."""
    pending: int = 0
    """Events queued for the writer thread, not yet written."""
    payloads_dropped: int = 0
    """Payload bodies the drop policy left out (their events are written, each such
    payload ref marked ``capture: omitted``; the bundle closes
    ``closed_with_partial_payloads``)."""


@dataclass(frozen=True)
class RecordingStats:
    """What the library swallowed so far in this process (see :func:`otel_rollout.stats`)."""

    internal_errors: dict[str, int] = field(default_factory=dict)
    """Internal errors per component name (only components that had one)."""
    bundles: dict[str, BundleStats] = field(default_factory=dict)
    """Event counts per bundle directory written live: the open bundles, and the most
    recent finished ones (see :data:`otel_rollout._bundle._background.FINISHED_KEPT`)."""
    totals: BundleStats = field(default_factory=BundleStats)
    """The same counts summed over every bundle of this process, exactly."""
    foreign_spans_left_out: int = 0
    """Spans of other instrumentations left out of spans-only bundles because a live
    rollout owns their trace (they still reach the app's exporters)."""


_bundle_source: Callable[[], tuple[dict[str, BundleStats], BundleStats]] | None = None
"""Reads the per-bundle counts (set by the background writer's module on import)."""


def set_bundle_source(source: Callable[[], tuple[dict[str, BundleStats], BundleStats]]) -> None:
    """Install the function :func:`stats` reads per-bundle counts from."""
    global _bundle_source
    _bundle_source = source


_lock = threading.Lock()
_counts: dict[Component, int] = {}
_pending: list[BaseException] = []
_spans_left_out = 0
"""Background errors not yet re-raised (strict mode only)."""


def is_strict() -> bool:
    """Whether ``OTEL_ROLLOUT_STRICT`` asks internal errors to raise."""
    return os.environ.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes")


def internal_error(component: Component, what: str) -> None:
    """Handle the exception being handled, on the caller's thread: re-raise it when strict.

    Outside strict mode: count it and warn once per component.
    """
    if is_strict():
        raise  # the exception being handled (called from an ``except`` block)
    _count(component, what)


def background_error(component: Component, what: str) -> None:
    """Handle the exception being handled on a background thread.

    Strict: keep it for the next :func:`raise_pending` (``force_flush`` / ``shutdown``).
    Otherwise: count it and warn once per component. Never raises.
    """
    error = sys.exc_info()[1]
    if error is not None and is_strict():
        with _lock:
            _pending.append(error)
        return
    _count(component, what)


def raise_pending() -> None:
    """Re-raise the first background error kept in strict mode (and forget the rest)."""
    with _lock:
        if not _pending:
            return
        first = _pending[0]
        _pending.clear()
    raise first


def _count(component: Component, what: str) -> None:
    with _lock:
        seen = _counts.get(component, 0)
        _counts[component] = seen + 1
    if seen == 0:
        logger.warning(
            "rollout trace: internal error in %s (%s); recording goes on, later errors of "
            "this component are only counted (otel_rollout.stats())",
            component.value,
            what,
            exc_info=True,
        )
    else:
        logger.debug(
            "rollout trace: internal error in %s (%s)", component.value, what, exc_info=True
        )


def count_spans_left_out(spans: int) -> None:
    """Count foreign spans left out of bundles because a live rollout owns their trace."""
    global _spans_left_out
    with _lock:
        _spans_left_out += spans


def stats() -> RecordingStats:
    """The internal errors swallowed so far per component, and each bundle's event counts."""
    with _lock:
        errors = {c.value: n for c, n in _counts.items()}
        left_out = _spans_left_out
    source = _bundle_source
    if source is None:
        return RecordingStats(internal_errors=errors, foreign_spans_left_out=left_out)
    bundles, totals = source()
    return RecordingStats(
        internal_errors=errors, bundles=bundles, totals=totals, foreign_spans_left_out=left_out
    )


def reset() -> None:
    """Forget counts, warnings and pending errors (for tests)."""
    global _spans_left_out
    with _lock:
        _counts.clear()
        _pending.clear()
        _spans_left_out = 0
