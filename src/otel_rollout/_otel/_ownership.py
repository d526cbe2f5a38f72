"""Which OpenTelemetry traces a live rollout owns: one bundle per rollout, whatever is installed.

A trace whose events an integration records itself (the recording API, or a native framework
processor built on it) is *owned*: the spans-only path leaves the trace's foreign spans (other
instrumentations' spans, an OTel bridge's) out of any bundle and counts them
(``otel_rollout.stats().foreign_spans_left_out``). They still reach the app's own exporters.

How an integration marks a trace as owned: call :func:`claim_trace` with the OTel trace id
(an ``int``, ``span.get_span_context().trace_id``) when its rollout starts and
:func:`release_trace` when it ends, or wrap the rollout in :func:`owned_trace`. The recording
API does this for every root rollout it opens (``_live/_runtime.open_recorder``), so an
integration that records through the recording API owns its rollout's trace already; it needs
:func:`claim_trace` only for further trace ids whose spans belong to the same work (an OTel
bridge that started its own trace for it). A released trace stays owned for its late spans
(the most recent :data:`RECENTLY_RELEASED_KEPT` traces).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

RECENTLY_RELEASED_KEPT = 4096
"""Released traces still treated as owned, so spans ending after their rollout stay out."""

_lock = threading.Lock()
_claims: dict[int, int] = {}
"""Owned trace id -> how many open claims hold it."""
_released: OrderedDict[int, None] = OrderedDict()


def claim_trace(trace_id: int) -> None:
    """Mark OTel trace ``trace_id`` as owned by a live rollout (claims nest; 0 is ignored)."""
    if not trace_id:
        return
    with _lock:
        _claims[trace_id] = _claims.get(trace_id, 0) + 1
        _released.pop(trace_id, None)


def release_trace(trace_id: int) -> None:
    """End one claim of ``trace_id``; after the last, it stays owned among the recent ones."""
    with _lock:
        held = _claims.get(trace_id, 0)
        if held > 1:
            _claims[trace_id] = held - 1
            return
        if _claims.pop(trace_id, None) is None:
            return
        _released[trace_id] = None
        while len(_released) > RECENTLY_RELEASED_KEPT:
            _released.popitem(last=False)


@contextmanager
def owned_trace(trace_id: int) -> Iterator[None]:
    """Own ``trace_id`` for a ``with`` block."""
    claim_trace(trace_id)
    try:
        yield
    finally:
        release_trace(trace_id)


def is_trace_owned(trace_id: int) -> bool:
    """Whether a live rollout owns (or recently owned) ``trace_id``: its foreign spans stay out."""
    with _lock:
        return trace_id in _claims or trace_id in _released


def reset() -> None:
    """Forget every claim (for tests)."""
    with _lock:
        _claims.clear()
        _released.clear()
