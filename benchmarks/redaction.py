"""What redaction costs: one typical turn recorded with redaction off and on.

A turn as in ``recording.py`` (2 inference attempts with ~4 KB request and response
payloads of Responses items, 1 tool call with JSON arguments), recorded into a schema 3
bundle with no live spans exported, with: redaction off (the default), two
``OTEL_ROLLOUT_REDACT_PATTERNS`` expressions, and a ``configure(redact=fn)`` function.
Reports the caller thread's latency per turn (median of repetitions, interleaved) and
each setting's ratio to "off"; plus the cost of the body walk alone (``Redactor.body``
on one 4 KB request, in microseconds).

Run: .venv/bin/python benchmarks/redaction.py [--turns N] [--reps N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import otel_rollout
from otel_rollout import ThreadTraceContext
from otel_rollout._bundle._redact import Redactor, pattern_redact
from otel_rollout._live import _runtime

PATTERNS = [r"sk-[A-Za-z0-9]{16,}", r"\b\d{4}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b"]


def _request(n: int) -> dict[str, Any]:
    text = "lorem ipsum dolor sit amet " * 6
    items: list[dict[str, Any]] = []
    for i in range(n):
        items.append(
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        )
        items.append(
            {
                "type": "function_call",
                "call_id": f"call_{i}",
                "name": "lookup",
                "arguments": json.dumps({"query": text, "page": i}),
            }
        )
    return {"model": "gpt-5", "input": items}


REQUEST = _request(10)
RESPONSE = [
    {
        "type": "message",
        "role": "assistant",
        "content": [{"type": "output_text", "text": "answer " * 500}],
    }
]


def _turns(root: Path, turns: int) -> float:
    """Seconds per turn on the caller thread."""
    thread = ThreadTraceContext.start_root_or_disabled()
    start = time.perf_counter()
    with thread:
        for _ in range(turns):
            with thread.turn() as turn:
                for attempt_no in range(2):
                    with turn.inference("gpt-5", "openai").attempt(REQUEST) as attempt:
                        attempt.record_completed(f"resp_{attempt_no}", RESPONSE)
                with turn.tool_call("lookup", {"query": "x" * 200}) as tool:
                    tool.record_completed("result " * 100)
    elapsed = time.perf_counter() - start
    assert otel_rollout.force_flush()
    return elapsed / turns


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    os.environ.pop("OTEL_ROLLOUT_REDACT_PATTERNS", None)
    settings: dict[str, Callable[[Path], None]] = {
        "off": lambda root: otel_rollout.configure(trace_root=root),
        "patterns": lambda root: otel_rollout.configure(trace_root=root),
        "function": lambda root: otel_rollout.configure(
            trace_root=root, redact=lambda text: text.replace("secret", "[REDACTED]")
        ),
    }
    samples: dict[str, list[float]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory() as work:
        for rep in range(args.reps):
            for name, configure in settings.items():
                if name == "patterns":
                    os.environ["OTEL_ROLLOUT_REDACT_PATTERNS"] = json.dumps(PATTERNS)
                configure(Path(work) / f"{name}-{rep}")
                samples[name].append(_turns(Path(work), args.turns))
                os.environ.pop("OTEL_ROLLOUT_REDACT_PATTERNS", None)
                _runtime.reset()
    medians = {name: statistics.median(values) for name, values in samples.items()}
    redactor = Redactor(pattern_redact(PATTERNS))
    loops = 2000
    start = time.perf_counter()
    for _ in range(loops):
        redactor.body(REQUEST)
    walk_us = (time.perf_counter() - start) / loops * 1e6
    result = {
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "turns": args.turns,
        "reps": args.reps,
        "request_bytes": len(json.dumps(REQUEST)),
        "turn_us_median": {name: round(value * 1e6, 1) for name, value in medians.items()},
        "ratio_to_off": {name: round(value / medians["off"], 3) for name, value in medians.items()},
        "walk_one_request_us": round(walk_us, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
