"""Schema 3 payload capture: the size limits, the parts a payload is cut into, and sharing them.

What a payload becomes, as Codex 0.171.0 writes it (``docs/schema3-writing.md``):

- A prepared prompt is an array of string fragments around its input items, each a
  ``model_item`` part written once per thread; under ``max_payload_bytes`` its
  ``base_instructions.text`` is a ``content_value`` part too when longer than the limit.
- Under ``max_payload_bytes`` an inference request is cut the same way (its ``input``
  items become ``model_item`` parts), and inside a model item every string longer than
  the limit (as JSON) becomes a ``content_value`` part, shared across the bundle. A
  content value keeps the first ``max_payload_bytes`` bytes of its JSON (``truncated``);
  any other payload over the limit is truncated the same way, except the fragment arrays.
- Under ``max_bytes`` a payload that would take the bundle (manifest, events written or
  waiting, payload records kept) past the limit is ``omitted``: no record, ``shard: null``.
- A cut payload seals the open shard first, and a truncated record is sealed alone.

Not thread-safe: the bundle writer's lock serializes every call.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any, Final

import msgspec

from otel_rollout._bundle._json import encode_compact
from otel_rollout._bundle._models import (
    CaptureStatus,
    PayloadCapture,
    PayloadKind,
    RawPayloadRef,
)
from otel_rollout._bundle._payloads import PayloadShardWriter

_PREPARED_PROMPT: Final = PayloadKind.PREPARED_PROMPT
"""(A global: an enum member looked up on its class is a slow class attribute lookup.)"""
_UNCUT: Final = frozenset({_PREPARED_PROMPT})
"""Kinds whose record is a fragment array: never truncated."""


_EMPTY_INPUT_HEAD: Final = b'{"input":[]'
"""How a prompt's JSON starts when ``input`` is its first key, empty."""
_PROMPT_ENDS_KEPT: Final = 64
"""How many prompts' first and last fragments are kept (prompts differ by their tools)."""
_MARK_PREFIX = uuid.uuid4().hex
"""Random once per process: a ``uuid4`` per payload cost ~100 us of ``os.urandom`` on a busy VM."""
_mark_numbers = itertools.count()


class _Hole:
    """A value cut out of a payload: an input item or a long string."""

    __slots__ = ("item", "marks", "value")

    def __init__(self, value: Any, *, item: bool) -> None:
        self.value = value
        self.item = item
        self.marks: list[str] = []
        """The marks of one encoding, shared by its holes (the first is the prefix)."""


def _hole_mark(hole: Any) -> Any:
    """The next mark of the encoding ``hole`` belongs to (marks follow the encoding order)."""
    if type(hole) is _Hole:
        marks = hole.marks
        mark = f"{marks[0]}-{len(marks) - 1}"
        marks.append(mark)
        return mark
    raise TypeError(f"{type(hole).__name__} is not JSON")


_hole_encoder = msgspec.json.Encoder(enc_hook=_hole_mark)


def _fragments(value: Any, holes: list[_Hole]) -> list[str] | None:
    """``value``'s compact JSON as fragments around ``holes`` (replaced in place by marks).

    ``value`` holds :class:`_Hole` objects where parts go; ``None`` when it holds none.
    """
    sized = _sized_fragments(value, holes)
    return None if sized is None else sized[0]


def _sized_fragments(value: Any, holes: list[_Hole]) -> tuple[list[str], int] | None:
    """:func:`_fragments` and their size in UTF-8 bytes."""
    if not holes:
        return None
    marks = [f"otel-rollout-part-{_MARK_PREFIX}-{next(_mark_numbers)}"]
    for hole in holes:
        hole.marks = marks
    encoded = _hole_encoder.encode(value)
    text = encoded.decode()
    fragments: list[str] = []
    start = 0
    for mark in marks[1:]:
        quoted = f'"{mark}"'
        at = text.index(quoted, start)
        fragments.append(text[start:at])
        start = at + len(quoted)
    fragments.append(text[start:])
    return fragments, len(encoded) - sum(len(mark) + 2 for mark in marks[1:])


class PayloadCapturer:
    """Turns schema 3 payload values into records and refs under the bundle's size limits."""

    def __init__(
        self,
        shards: PayloadShardWriter,
        *,
        seal: Callable[[], None],
        used_bytes: Callable[[], int],
        max_bytes: int | None = None,
        max_payload_bytes: int | None = None,
    ) -> None:
        """Capture into ``shards``; ``seal`` seals its open shard, ``used_bytes`` counts the rest.

        ``used_bytes`` gives the bundle's bytes outside payload records (manifest and
        events); ``max_bytes``/``max_payload_bytes`` of ``None`` mean no limit.
        """
        self.shards = shards
        self._seal = seal
        self._used_bytes = used_bytes
        self.max_bytes = max_bytes
        self.max_payload_bytes = max_payload_bytes
        self.kept_bytes = 0
        """Bytes of the payload records kept so far."""
        self.partial = False
        """Whether a limit cut any payload (the bundle closes ``closed_with_partial_payloads``)."""
        self._model_items: dict[str | None, dict[bytes, RawPayloadRef]] = {}
        self._content_values: dict[bytes, RawPayloadRef] = {}
        self._prompt_ends: dict[bytes, tuple[str, str]] = {}
        """A prompt's JSON with ``input`` empty -> its first and last fragments."""

    def payload(
        self, kind: PayloadKind, body: bytes, value: Any, thread_id: str | None
    ) -> RawPayloadRef:
        """Capture one payload of ``kind``: ``body`` is its compact JSON, ``value`` the value.

        Under ``max_payload_bytes`` an inference request whose ``value`` is an object
        with an ``input`` list is cut into fragments and ``model_item`` parts.
        """
        limit = self.max_payload_bytes
        if (
            limit is not None
            and kind is PayloadKind.INFERENCE_REQUEST
            and isinstance(value, dict)
            and isinstance(value.get("input"), list)
        ):
            holes = [_Hole(item, item=True) for item in value["input"]]
            fragments = _fragments({**value, "input": holes}, holes)
            if fragments is not None:
                parts = [self._model_item(hole.value, thread_id) for hole in holes]
                fragments_body = encode_compact(fragments)
                return self.record(kind, fragments_body, parts, cut=False, original=len(body))
        return self.record(kind, body, None)

    def prepared_prompt(self, prompt: dict[str, Any], thread_id: str | None) -> RawPayloadRef:
        """Capture a prepared prompt: fragments around its model items (and long instructions)."""
        quick = self._quick_prompt(prompt, thread_id)
        if quick is not None:
            return quick
        holes = [_Hole(item, item=True) for item in prompt.get("input") or []]
        skeleton: dict[str, Any] = {**prompt, "input": list(holes)}
        instructions = prompt.get("base_instructions")
        limit = self.max_payload_bytes
        if (
            limit is not None
            and isinstance(instructions, dict)
            and isinstance(instructions.get("text"), str)
            and len(encode_compact(instructions["text"])) > limit
        ):
            text = _Hole(instructions["text"], item=False)
            holes.append(text)
            skeleton["base_instructions"] = {**instructions, "text": text}
        sized = _sized_fragments(skeleton, holes)
        if sized is None:
            whole = encode_compact(skeleton)
            sized = [whole.decode()], len(whole)
        fragments, original = sized
        bodies: list[bytes] = []
        parts = [
            self._model_item(hole.value, thread_id, bodies)
            if hole.item
            else self._content_value(hole.value, bodies)
            for hole in holes
        ]
        return self.record(
            PayloadKind.PREPARED_PROMPT,
            encode_compact(fragments),
            parts,
            cut=False,
            original=original + sum(map(len, bodies)),  # the whole prompt's JSON size
        )

    def _quick_prompt(self, prompt: dict[str, Any], thread_id: str | None) -> RawPayloadRef | None:
        """:meth:`prepared_prompt` of the usual prompt, ``input`` first and holding items,
        no instructions to cut: its fragments are the prompt's JSON with ``input`` empty
        split after ``{"input":[`` (the items' commas between), found without marks;
        ``None`` for any other prompt."""
        items = prompt.get("input")
        if type(items) is not list or not items:
            return None
        instructions = prompt.get("base_instructions")
        if (
            self.max_payload_bytes is not None
            and isinstance(instructions, dict)
            and isinstance(instructions.get("text"), str)
        ):
            return None  # the long instructions may be a part too
        empty = encode_compact({**prompt, "input": []})
        ends = self._prompt_ends.get(empty)
        if ends is None:
            if not empty.startswith(_EMPTY_INPUT_HEAD):
                return None  # ``input`` is not the first key
            head = len(_EMPTY_INPUT_HEAD) - 1
            ends = empty[:head].decode(), empty[head:].decode()
            if len(self._prompt_ends) >= _PROMPT_ENDS_KEPT:
                self._prompt_ends.clear()
            self._prompt_ends[empty] = ends
        fragments = [ends[0], *[","] * (len(items) - 1), ends[1]]
        bodies: list[bytes] = []
        parts = [self._model_item(item, thread_id, bodies) for item in items]
        return self.record(
            _PREPARED_PROMPT,
            encode_compact(fragments),
            parts,
            cut=False,
            # the whole prompt's JSON size: the fragments' (commas included) and the items'
            original=len(empty) + len(items) - 1 + sum(map(len, bodies)),
        )

    def record(
        self,
        kind: PayloadKind,
        body: bytes,
        parts: list[RawPayloadRef] | None,
        *,
        cut: bool = True,
        original: int | None = None,
    ) -> RawPayloadRef:
        """Keep ``body`` as the next record (truncated or omitted by the limits) and return its ref.

        ``cut=False`` keeps the body whole under ``max_payload_bytes`` (a fragment array);
        ``original`` is the size of the whole payload a fragment array stands for
        (``original_bytes`` when omitted), ``len(body)`` by default.
        """
        shards = self.shards
        listed: list[RawPayloadRef] | msgspec.UnsetType = msgspec.UNSET if not parts else parts
        if self.max_bytes is None and self.max_payload_bytes is None:  # no limits: kept whole
            ref = shards.add(shards.new_id(), kind, body, parts=listed)
            self.kept_bytes += len(body)
            if shards.open_bytes >= shards.seal_bytes:
                self._seal()
            return ref
        payload_id = shards.new_id()
        original = len(body) if original is None else original
        limit = self.max_payload_bytes
        capture: PayloadCapture | msgspec.UnsetType = msgspec.UNSET
        if cut and kind not in _UNCUT and limit is not None and original > limit:
            body = _cut(body, limit)
            capture = PayloadCapture(
                status=CaptureStatus.TRUNCATED, original_bytes=original, retained_bytes=len(body)
            )
        if self.max_bytes is not None and (
            self._used_bytes() + self.kept_bytes + len(body) > self.max_bytes
        ):
            self.partial = True
            self._seal()
            return shards.omitted(payload_id, kind, original, parts=listed)
        if capture is not msgspec.UNSET:
            self.partial = True
            self._seal()
        ref = shards.add(payload_id, kind, body, parts=listed, capture=capture)
        self.kept_bytes += len(body)
        if capture is not msgspec.UNSET or shards.open_bytes >= shards.seal_bytes:
            self._seal()
        return ref

    def _model_item(
        self, item: Any, thread_id: str | None, bodies: list[bytes] | None = None
    ) -> RawPayloadRef:
        """The ``model_item`` ref of ``item``, written once per thread (its compact JSON
        appended to ``bodies`` if given)."""
        body = encode_compact(item)
        if bodies is not None:
            bodies.append(body)
        known = self._model_items.setdefault(thread_id, {})
        ref = known.get(body)
        if ref is None:
            ref = self._cut_item(item, body)
            known[body] = ref
        return ref

    def _cut_item(self, item: Any, body: bytes) -> RawPayloadRef:
        """Write a model item, its strings longer than ``max_payload_bytes`` as content values."""
        limit = self.max_payload_bytes
        if limit is None or len(body) <= limit:
            return self.record(PayloadKind.MODEL_ITEM, body, None, cut=False)
        holes: list[_Hole] = []

        def hollow(value: Any) -> Any:
            if isinstance(value, str):
                if len(encode_compact(value)) > limit:
                    hole = _Hole(value, item=False)
                    holes.append(hole)
                    return hole
                return value
            if isinstance(value, dict):
                return {key: hollow(member) for key, member in value.items()}
            if isinstance(value, list):
                return [hollow(member) for member in value]
            return value

        fragments = _fragments(hollow(item), holes)
        if fragments is None:
            return self.record(PayloadKind.MODEL_ITEM, body, None, cut=False)
        parts = [self._content_value(hole.value) for hole in holes]
        fragments_body = encode_compact(fragments)
        return self.record(
            PayloadKind.MODEL_ITEM, fragments_body, parts, cut=False, original=len(body)
        )

    def _content_value(self, text: str, bodies: list[bytes] | None = None) -> RawPayloadRef:
        """The ``content_value`` ref of a long string, written once per bundle (its JSON
        appended to ``bodies`` if given)."""
        body = encode_compact(text)
        if bodies is not None:
            bodies.append(body)
        ref = self._content_values.get(body)
        if ref is None:
            ref = self.record(PayloadKind.CONTENT_VALUE, body, None)
            self._content_values[body] = ref
        return ref


def _cut(body: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes of ``body``, not splitting a UTF-8 character."""
    end = limit
    while end > 0 and (body[end] & 0xC0) == 0x80:
        end -= 1
    return body[:end]


def join_fragments(fragments: list[str], parts: list[bytes]) -> bytes:
    """A cut payload's JSON again: ``fragment[0] + part[0] + fragment[1] + ... + fragment[n]``."""
    pieces: list[bytes] = []
    for index, fragment in enumerate(fragments):
        pieces.append(fragment.encode())
        if index < len(parts):
            pieces.append(parts[index])
    return b"".join(pieces)
