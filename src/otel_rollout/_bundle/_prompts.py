"""Schema 3 prepared prompts: a prompt cut into string fragments around its input items.

Codex 0.171.0 writes ``inference_started.prepared_prompt_payload`` as a JSON array of
strings; the prompt's compact JSON is those strings with the prompt's input items (each a
``model_item`` part of the ref, shared across a thread's requests) between them:
``fragment[0] + item[0] + fragment[1] + ... + fragment[n]``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Final

from otel_rollout._bundle._json import encode_compact

PROMPT_FIELDS: Final = (
    "input",
    "tools",
    "parallel_tool_calls",
    "base_instructions",
    "output_schema",
    "output_schema_strict",
    "prompt_cache_ttl",
    "cyber_access_program",
)
"""The prepared prompt's fields, in the order Codex 0.171.0 writes them."""


def split_prompt(prompt: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
    """The string fragments of ``prompt``'s compact JSON around its ``input`` items, and the items.

    ``prompt`` is written in its own key order; ``len(fragments) == len(items) + 1``.
    """
    items: Sequence[Any] = prompt.get("input") or []
    mark = f"otel-rollout-item-{uuid.uuid4().hex}"
    holes = [f"{mark}-{index}" for index in range(len(items))]
    text = encode_compact({**prompt, "input": holes}).decode()
    fragments: list[str] = []
    start = 0
    for hole in holes:
        at = text.index(f'"{hole}"', start)
        fragments.append(text[start:at])
        start = at + len(hole) + 2
    fragments.append(text[start:])
    return fragments, list(items)


def join_prompt(fragments: Sequence[str], items: Sequence[bytes]) -> bytes:
    """The prompt's compact JSON from its fragments and its items' compact JSON."""
    pieces: list[bytes] = []
    for index, fragment in enumerate(fragments):
        pieces.append(fragment.encode())
        if index < len(items):
            pieces.append(items[index])
    return b"".join(pieces)
