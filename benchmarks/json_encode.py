"""Which JSON encoder writes Codex's bytes fastest: msgspec, orjson or the standard json module.

Encodes every payload file of the fixture bundles pretty-printed (2-space indent, no
trailing newline, as ``serde_json::to_writer_pretty``) and every ``trace.jsonl`` line
compact, with each encoder, and prints one JSON object: the best time of several
rounds per encoder, its speed relative to ``json``, and how many outputs are byte for
byte the file Codex 0.169.0 wrote.

Codex keeps an inference request's ``tools`` as a raw JSON value, written compact inside
the pretty file. ``identical`` counts outputs of the plain decoded value;
``identical_with_raw_tools`` passes ``tools`` as a verbatim value (``msgspec.Raw``,
``orjson.Fragment``; the json module has no such thing).

Run: .venv/bin/python benchmarks/json_encode.py [--rounds N] [--small-only]
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from otel_rollout._bundle._json import encode_compact, encode_line, encode_pretty
from otel_rollout._bundle._reader import decode_event

orjson: Any
try:  # optional: only measured when installed (imported by name so mypy passes without it)
    orjson = importlib.import_module("orjson")
except ImportError:
    orjson = None

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

Encoder = Callable[[Any], bytes]


def _json_pretty(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode()


def _json_compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def _encoders() -> dict[str, tuple[Encoder, Encoder]]:
    """Name -> (pretty, compact) encoders."""
    found: dict[str, tuple[Encoder, Encoder]] = {
        "msgspec": (encode_pretty, encode_compact),
        "json": (_json_pretty, _json_compact),
    }
    if orjson is not None:
        found["orjson"] = (
            lambda value: orjson.dumps(value, option=orjson.OPT_INDENT_2),
            orjson.dumps,
        )
    return found


def _raw_tools(name: str, value: Any) -> Any:
    """``value`` with ``tools`` as the encoder's verbatim raw value, as Codex holds it."""
    if not (isinstance(value, dict) and "tools" in value):
        return value
    compact = encode_compact(value["tools"])
    if name == "msgspec":
        return {**value, "tools": msgspec.Raw(compact)}
    if name == "orjson" and orjson is not None:
        return {**value, "tools": orjson.Fragment(compact)}
    return value


def _best_time(encode: Encoder, values: list[Any], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for value in values:
            encode(value)
        best = min(best, time.perf_counter() - start)
    return best


def _measure(kind: str, originals: list[bytes], values: list[Any], rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, (pretty, compact) in _encoders().items():
        encode = pretty if kind == "pretty" else compact
        seconds = _best_time(encode, values, rounds)
        identical = sum(encode(v) == o for v, o in zip(values, originals, strict=True))
        raw = [_raw_tools(name, v) for v in values] if kind == "pretty" else values
        identical_raw = sum(encode(v) == o for v, o in zip(raw, originals, strict=True))
        results[name] = {
            "seconds": round(seconds, 6),
            "mb_per_s": round(sum(map(len, originals)) / seconds / 1e6, 1),
            "identical": identical,
            "identical_with_raw_tools": identical_raw,
        }
    baseline = results["json"]["seconds"]
    for result in results.values():
        result["speedup_vs_json"] = round(baseline / result["seconds"], 1)
    return {"items": len(values), "bytes": sum(map(len, originals)), "encoders": results}


def _typed_lines(lines: list[bytes], rounds: int) -> dict[str, Any]:
    """What the writer really does: encode typed event Structs into lines."""
    typed = [decode_event(line) for line in lines]
    seconds = _best_time(encode_line, typed, rounds)
    identical = sum(encode_line(e) == line + b"\n" for e, line in zip(typed, lines, strict=True))
    return {"seconds": round(seconds, 6), "identical": identical, "items": len(typed)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--small-only", action="store_true", help="skip the large fixtures")
    args = parser.parse_args(argv)
    pattern = "codex-0.169.0/*/trace-*" if args.small_only else "codex-0.169.0*/*/trace-*"
    bundles = sorted(FIXTURES.glob(pattern))
    payloads = [path.read_bytes() for b in bundles for path in sorted((b / "payloads").iterdir())]
    lines = [line for b in bundles for line in (b / "trace.jsonl").read_bytes().splitlines()]
    report = {
        "python": platform.python_version(),
        "msgspec": msgspec.__version__,
        "orjson": None if orjson is None else orjson.__version__,
        "bundles": len(bundles),
        "rounds": args.rounds,
        "pretty_payload_files": _measure(
            "pretty", payloads, [msgspec.json.decode(p) for p in payloads], args.rounds
        ),
        "compact_event_lines": _measure(
            "compact", lines, [msgspec.json.decode(line) for line in lines], args.rounds
        ),
        "compact_event_lines_typed_msgspec": _typed_lines(lines, args.rounds),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
