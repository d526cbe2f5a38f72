"""What is in scope: the handles of the innermost ``with`` blocks, and the current span.

Context variables, so they follow the code across OS threads and asyncio tasks. Only
recording handles are ever set: outside their blocks the getters give the no-op ones.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Final, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_rollout._live import _noop
from otel_rollout._live._handles import ThreadTraceContext, TurnTraceContext
from otel_rollout._live._recorder import ForwardingSpan, RolloutRecorder

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

THREAD: Final[contextvars.ContextVar[ThreadTraceContext | None]] = contextvars.ContextVar(
    "otel_rollout_current_thread", default=None
)
TURN: Final[contextvars.ContextVar[TurnTraceContext | None]] = contextvars.ContextVar(
    "otel_rollout_current_turn", default=None
)


def current_thread() -> ThreadTraceContext:
    """The thread of the innermost ``with thread:`` block (disabled outside one)."""
    return THREAD.get() or _noop.THREAD


def current_turn() -> TurnTraceContext:
    """The turn of the innermost ``with thread.turn():`` block (disabled outside one)."""
    return TURN.get() or _noop.TURN


def restore(var: contextvars.ContextVar[_T], token: contextvars.Token[_T]) -> None:
    """Reset ``var`` to what it was before ``token``'s ``set`` (a foreign token is logged)."""
    try:
        var.reset(token)
    except ValueError:  # token from another context (e.g. exit in another task)
        logger.debug("rollout trace: context variable %s not restored", var.name)


class SpanScope:
    """Makes a recorded span's stand-in (:class:`ForwardingSpan`) current for a ``with`` block."""

    __slots__ = ("_token",)

    def __init__(self) -> None:
        """Nothing attached yet."""
        self._token: contextvars.Token[otel_context.Context] | None = None

    def attach(self, rec: RolloutRecorder, key: str) -> None:
        """Make span ``key`` of ``rec`` the current span."""
        span = ForwardingSpan(rec, key)
        self._token = otel_context.attach(trace.set_span_in_context(span))

    def detach(self) -> None:
        """Restore the span that was current before :meth:`attach` (once)."""
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:  # a foreign context (generator closed elsewhere)
                logger.debug("rollout trace: could not restore the OTel context", exc_info=True)
