"""Redaction of payload bodies and content: the one walk over JSON values that rewrites text.

A :class:`Redactor` applies a ``fn(text) -> text`` (``configure(redact=fn)``) or the regular
expressions of ``OTEL_ROLLOUT_REDACT_PATTERNS`` (each match becomes :data:`REDACTED`) to the
string values of a JSON body. It never touches object keys, ids (``id``, ``call_id``,
``*_id``), names, or enum-like fields (``type``, ``role``, ``status``...), nor non-string
values; JSON text held in a string (a function call's ``arguments``, a tool ``output``) is
redacted inside its values and re-encoded, so it stays valid JSON. Off by default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Final

REDACTED: Final = "[REDACTED]"
"""What a matched pattern becomes."""

RedactFn = Callable[[str], str]

_KEPT_KEYS: Final = frozenset(
    {
        "id",
        "type",
        "role",
        "status",
        "name",
        "model",
        "provider_name",
        "tool_name",
        "tool_namespace",
        "agent_path",
        "phase",
        "kind",
        "capture",
        "finish_reason",
        "encrypted_content",
    }
)
"""Keys whose string values are identifiers or enum values, never redacted."""
_JSON_TEXT_KEYS: Final = frozenset({"arguments", "output"})
"""Keys whose string values may be JSON text (redacted inside when they are)."""


class Redactor:
    """Applies ``fn`` to the string values of JSON bodies (see the module docstring)."""

    __slots__ = ("fn",)

    def __init__(self, fn: RedactFn) -> None:
        """Redact with ``fn``."""
        self.fn = fn

    def text(self, text: str) -> str:
        """``text`` redacted."""
        return self.fn(text)

    def body(self, value: Any) -> Any:
        """A copy of the JSON value ``value`` with its text redacted (the value itself when
        nothing changed)."""
        return self._walk(value, None)

    def _walk(self, value: Any, key: str | None) -> Any:
        if isinstance(value, str):
            if key is not None and (key in _KEPT_KEYS or key.endswith("_id")):
                return value
            if key in _JSON_TEXT_KEYS and value[:1] in ("{", "["):
                return self._json_text(value)
            return self.fn(value)
        if isinstance(value, dict):
            changed = False
            out: dict[Any, Any] = {}
            for k, v in value.items():
                new = self._walk(v, k if isinstance(k, str) else None)
                changed = changed or new is not v
                out[k] = new
            return out if changed else value
        if isinstance(value, (list, tuple)):
            items = [self._walk(v, key) for v in value]
            if any(new is not old for new, old in zip(items, value, strict=True)):
                return items
            return value
        return value

    def _json_text(self, text: str) -> str:
        try:
            parsed = json.loads(text)
        except ValueError:
            return self.fn(text)
        redacted = self._walk(parsed, None)
        if redacted is parsed:
            return text
        return json.dumps(redacted, separators=(",", ":"), ensure_ascii=False)


def pattern_redact(patterns: Sequence[str]) -> RedactFn:
    """A ``fn`` replacing every match of any of ``patterns`` with :data:`REDACTED`.

    Raises:
        re.error: a pattern is not a valid regular expression.
    """
    compiled = re.compile("|".join(f"(?:{pattern})" for pattern in patterns))

    def redact(text: str) -> str:
        return compiled.sub(REDACTED, text)

    return redact


def redactor_for(patterns: Sequence[str], fn: RedactFn | None) -> Redactor | None:
    """The redactor of ``patterns`` then ``fn``; ``None`` when there is neither (off)."""
    steps = ([pattern_redact(patterns)] if patterns else []) + ([fn] if fn is not None else [])
    if not steps:
        return None
    if len(steps) == 1:
        return Redactor(steps[0])
    first, second = steps

    def both(text: str) -> str:
        return second(first(text))

    return Redactor(both)
