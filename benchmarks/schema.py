"""Schema 2 (payload files, Codex 0.169.0) against schema 3 (zstd shards, Codex 0.171.0).

One typical turn (a turn, 2 inference attempts with 4 KB request and 4 KB response
payloads, 1 tool call; ``recording.py``'s workload) recorded live through the recording
API, the two schemas interleaved in one run. Prints one JSON object with, per schema:

* ``burst``: turns back to back. ``cpu_us_per_event``: process CPU (every thread: the
  caller, the background writer, span building) from the first turn to the end of the
  final flush (``recording_completed`` written, the last shard sealed), divided by the
  events in ``trace.jsonl``; ``bytes_per_turn`` and ``files_per_turn``: the bundle on
  disk (manifest, ``trace.jsonl``, payload files or shards) divided by the turns.
* ``paced``: a pause after each turn longer than the writer's batch (as a model's
  latency gives), so each turn is written (and, in schema 3, sealed) on its own:
  ``bytes_per_turn`` and ``files_per_turn``.
* ``call_paced``: a pause after every recording call (the worst case for schema 3: a
  shard per batch, a batch per call).

Medians over repetitions; ``ratio_3_to_2`` divides schema 3's by schema 2's.

Run: .venv/bin/python benchmarks/schema.py [--turns N] [--reps N] [--dir DIR] [--out FILE]
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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recording import POOL, USAGE, make_pool

import otel_rollout
from otel_rollout import (
    RolloutBundleSpanExporter,
    ThreadStartedTraceMetadata,
    ThreadTraceContext,
)
from otel_rollout._bundle._background import FLUSH_INTERVAL_S
from otel_rollout._live import _runtime

SCHEMAS = (2, 3)
PAUSE_S = FLUSH_INTERVAL_S * 2.5
"""Longer than a writer batch: what follows is written in a batch of its own."""


def _turn(thread: ThreadTraceContext, payloads: dict[str, Any], index: int, pause_s: float) -> None:
    """recording.py's typical turn, with ``pause_s`` after every recording call."""

    def pause() -> None:
        if pause_s:
            time.sleep(pause_s)

    with thread.turn() as turn:
        inference = turn.inference("gpt-bench", "bench")
        for attempt_index in range(2):
            with inference.attempt(payloads["request"]) as attempt:
                pause()
                attempt.record_completed(
                    f"resp-{index}-{attempt_index}", payloads["response"], token_usage=USAGE
                )
            pause()
        with turn.tool_call("lookup", payloads["args"]) as tool:
            pause()
            tool.record_completed(payloads["result"])
        pause()


def _bundle_on_disk(bundle: Path) -> tuple[int, int]:
    """Bytes and files of a bundle (every regular file under it)."""
    files = [path for path in bundle.rglob("*") if path.is_file()]
    return sum(path.stat().st_size for path in files), len(files)


def run(
    schema: int,
    turns: int,
    pool: list[dict[str, Any]],
    root: Path,
    *,
    turn_pause_s: float = 0.0,
    call_pause_s: float = 0.0,
) -> dict[str, float]:
    """Record ``turns`` turns into one bundle of ``schema``; return per-turn/per-event figures."""
    exporter = RolloutBundleSpanExporter(max_queue_events=1_000_000, max_queue_bytes=1 << 31)
    otel_rollout.configure(trace_root=root, exporter=exporter, schema_version=schema)
    cpu0 = time.process_time()
    thread = ThreadTraceContext.start_root_or_disabled(
        ThreadStartedTraceMetadata(model="gpt-bench", provider_name="bench")
    )
    assert thread.is_enabled() and thread.bundle_dir is not None
    bundle = thread.bundle_dir
    for index in range(turns):
        _turn(thread, pool[index % POOL], index, call_pause_s)
        if turn_pause_s:
            time.sleep(turn_pause_s)
    thread.record_ended()
    assert exporter.force_flush()
    cpu1 = time.process_time()
    exporter.shutdown()
    assert exporter.lost_events == 0
    _runtime.reset()
    events = len((bundle / "trace.jsonl").read_bytes().splitlines())
    size, files = _bundle_on_disk(bundle)
    return {
        "cpu_us_per_event": (cpu1 - cpu0) / events * 1e6,
        "events_per_turn": events / turns,
        "bytes_per_turn": size / turns,
        "files_per_turn": files / turns,
    }


def _medians(results: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(result[key] for result in results) for key in results[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=500)
    parser.add_argument("--paced-turns", type=int, default=40)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where bundles go (default: the system temp dir)"
    )
    args = parser.parse_args(argv)
    pool = make_pool()
    modes: dict[str, dict[str, Any]] = {
        "burst": {"turns": args.turns},
        "paced": {"turns": args.paced_turns, "turn_pause_s": PAUSE_S},
        "call_paced": {"turns": max(args.paced_turns // 4, 1), "call_pause_s": PAUSE_S},
    }
    runs: dict[str, dict[int, list[dict[str, float]]]] = {
        mode: {schema: [] for schema in SCHEMAS} for mode in modes
    }
    with tempfile.TemporaryDirectory(prefix="otel-rollout-schema-", dir=args.dir) as tmp:
        root = Path(tmp)
        for rep in range(args.reps):
            for mode, options in modes.items():
                order = SCHEMAS if rep % 2 == 0 else SCHEMAS[::-1]
                for schema in order:
                    where = root / f"{mode}-{rep}-{schema}"
                    runs[mode][schema].append(run(schema, pool=pool, root=where, **options))
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "reps": args.reps,
        "bundle_dir": str(args.dir or tempfile.gettempdir()),
        "workload": "turn + 2 inference attempts (4 KB request + 4 KB response) + 1 tool call",
        "pause_s": PAUSE_S,
    }
    for mode, options in modes.items():
        medians = {f"schema_{schema}": _medians(runs[mode][schema]) for schema in SCHEMAS}
        two, three = medians["schema_2"], medians["schema_3"]
        report[mode] = {
            "turns": options["turns"],
            **medians,
            "ratio_3_to_2": {key: three[key] / two[key] for key in two},
        }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
