"""Recording under sustained load: total cost against the bare OTel SDK, writer throughput,
recorded-to-disk latency at set rates, and memory growth.

Prints (and with ``--out`` writes) one JSON object:

* ``cost``: one typical turn (a turn, 2 inference attempts with 4 KB request and 4 KB
  response, 1 tool call: 8 events, 6 payloads) recorded back to back, per bundle directory
  (tmpfs and disk). CPU time of the whole process (all threads) from the first turn to the
  end of the final flush, per turn, and wall time including that flush. Stacks, each
  (stack, repetition) in a fresh interpreter, interleaved in an order rotated each
  repetition: ``bare_sdk`` (stack A of perf-peers.md: SDK + BatchSpanProcessor whose
  exporter discards, the same span tree with the payloads as attributes), ``otel_rollout``
  (schema 3, bundle only: the library's private provider), ``otel_rollout_schema2``
  (information), ``otel_rollout_app_bsp`` (schema 3, live spans through the app's SDK
  provider with a BatchSpanProcessor that discards). ``ratio_to_bare_sdk``: per repetition
  (ours / bare of the same repetition), median, min, max. Targets: at most 1.5x on tmpfs,
  2x on disk.
* ``throughput``: events/s the writer sustains for the stacks above (events / wall time
  from the first turn to the end of the final flush; the producer outruns the writer, so
  the writer bounds it).
* ``writer``: the writer thread's own capacity: the queued items of ``--turns`` turns are
  captured, then written in one thread (sealed every ``SEAL_ITEMS`` items, as under load):
  its CPU per event and the events/s that makes (no producer sharing the GIL; median of
  ``--reps`` fresh interpreters).
* ``loadavg_1m`` beside the writer's and each latency figure: the machine's load then.
* ``latency``: one producer thread paced at 1k, 10k and 20k events/s (whole turns) for
  ``--latency-s`` seconds: per event, time from recorded (the event's timestamp) to its line
  written to ``trace.jsonl`` (end of the writer's batch), p50/p99/max in ms, and the rate
  reached.
* ``rss``: peak RSS growth (MiB) over ``--rss-turns`` back-to-back turns after a warm-up,
  in a fresh interpreter (target: at most 32 MiB over 2,000 turns).
* ``instructions`` (``--instructions``, needs valgrind): instructions of all threads per
  typical turn, the final flush included, counted by callgrind, which the machine's load
  does not change: each stack runs twice (``--instr-turns`` and three times as many turns,
  tmpfs), and the difference is divided by the extra turns (start-up cancels out).
* ``load``: the load average before and after the run (the machine is shared).

Run: .venv/bin/python benchmarks/load.py [--turns 1000] [--reps 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recording import (
    POOL,
    DropExporter,
    callgrind_instructions,
    make_pool,
    rollout_turn,
    sdk_turn,
    warm_then_run,
)

EVENTS_PER_TURN = 8
STACKS = ("bare_sdk", "otel_rollout", "otel_rollout_schema2", "otel_rollout_app_bsp")
RATES = (1_000, 10_000, 20_000)


def _setup(stack: str, root: Path, turns: int) -> tuple[Any, Any, Any]:
    """(one turn, flush, close) for ``stack``."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import otel_rollout
    from otel_rollout import (
        RolloutBundleSpanExporter,
        RolloutSpanProcessor,
        ThreadStartedTraceMetadata,
        ThreadTraceContext,
    )

    pool = make_pool()
    if stack == "bare_sdk":
        provider = TracerProvider()
        provider.add_span_processor(
            BatchSpanProcessor(DropExporter(), max_queue_size=max(2048, 6 * turns))
        )
        tracer = provider.get_tracer("bench")
        agent = tracer.start_span("invoke_agent bench")
        token = otel_context.attach(trace.set_span_in_context(agent))

        def one(index: int) -> None:
            sdk_turn(tracer, pool[index % POOL], index)

        def flush() -> None:
            provider.force_flush()

        def close() -> None:
            otel_context.detach(token)
            agent.end()
            provider.shutdown()

        return one, flush, close
    exporter = RolloutBundleSpanExporter()
    app: Any = None
    if stack == "otel_rollout_app_bsp":
        app = TracerProvider()
        app.add_span_processor(
            BatchSpanProcessor(DropExporter(), max_queue_size=max(2048, 6 * turns))
        )
        app.add_span_processor(RolloutSpanProcessor(exporter))
    otel_rollout.configure(
        trace_root=root,
        tracer_provider=app,
        exporter=exporter,
        schema_version=2 if stack == "otel_rollout_schema2" else 3,
    )
    thread = ThreadTraceContext.start_root_or_disabled(
        ThreadStartedTraceMetadata(model="gpt-bench", provider_name="bench")
    )

    def one_turn(index: int) -> None:
        rollout_turn(thread, pool[index % POOL], index)

    def flush_all() -> None:
        if app is not None:
            assert otel_rollout.force_flush()
            app.force_flush()
        assert exporter.force_flush(600_000)

    def close_all() -> None:
        thread.record_ended()
        assert exporter.force_flush(600_000)
        totals = otel_rollout.stats().totals
        assert totals.lost == 0 and totals.recorded == totals.written, totals
        if app is not None:
            app.shutdown()

    return one_turn, flush_all, close_all


def run_cost(stack: str, root: Path, turns: int, warmup: int) -> dict[str, float]:
    """One (stack, repetition), in this (fresh) interpreter."""
    one, flush, close = _setup(stack, root, turns + warmup)
    for index in range(warmup):
        one(index)
    flush()
    cpu0, t0, caller0 = time.process_time(), time.perf_counter(), time.thread_time()
    for index in range(warmup, warmup + turns):
        one(index)
    caller1, t1 = time.thread_time(), time.perf_counter()
    flush()
    t2, cpu1 = time.perf_counter(), time.process_time()
    close()
    return {
        "cpu_us_per_turn": (cpu1 - cpu0) / turns * 1e6,
        "caller_cpu_us_per_turn": (caller1 - caller0) / turns * 1e6,
        "loop_us_per_turn": (t1 - t0) / turns * 1e6,
        "incl_flush_us_per_turn": (t2 - t0) / turns * 1e6,
        "events_per_s": turns * EVENTS_PER_TURN / (t2 - t0),
    }


def run_writer(root: Path, turns: int) -> dict[str, float]:
    """The writer thread alone: capture the items ``turns`` turns queue, then write them
    (and seal every ``SEAL_ITEMS``) in this thread; its CPU per event."""
    from otel_rollout._bundle import _background

    captured: list[tuple[Any, Any]] = []
    write, end_batch = _background.BundleSink.write, _background.BundleSink.end_batch
    capturing = False

    def capture_write(self: Any, item: Any) -> None:
        if capturing:
            captured.append((self, item))
        else:
            write(self, item)

    def capture_end_batch(self: Any) -> Any:
        return [] if capturing else end_batch(self)

    _background.BundleSink.write = capture_write  # type: ignore[method-assign]
    _background.BundleSink.end_batch = capture_end_batch  # type: ignore[method-assign]
    one, flush, close = _setup("otel_rollout", root, turns)
    for index in range(100):
        one(index)
    flush()
    capturing = True
    for index in range(100, 100 + turns):
        one(index)
    flush()
    capturing = False
    seal_items = getattr(_background, "SEAL_ITEMS", 256)
    events = sum(1 for _, item in captured if type(item) is _background.PendingEvent)
    cpu0 = time.thread_time()
    for count, (sink, item) in enumerate(captured, 1):
        write(sink, item)
        if count % seal_items == 0:
            end_batch(sink)
    end_batch(sink)
    cpu1 = time.thread_time()
    close()
    per_event = (cpu1 - cpu0) / events
    return {
        "cpu_us_per_event": per_event * 1e6,
        "events_per_s": 1 / per_event,
        "loadavg_1m": os.getloadavg()[0],
    }


def run_latency(root: Path, rate: int, seconds: float) -> dict[str, float]:
    """Pace whole turns at ``rate`` events/s; per event, recorded -> line written (ms)."""
    from otel_rollout._bundle import _background

    latencies: list[int] = []
    original = _background.BundleSink.end_batch

    def timed_end_batch(self: Any) -> Any:
        done = original(self)
        now = time.time_ns()
        latencies.extend(
            now - item.time_ns for item in done if type(item) is _background.PendingEvent
        )
        return done

    _background.BundleSink.end_batch = timed_end_batch  # type: ignore[method-assign]
    one, flush, close = _setup("otel_rollout", root, 0)
    for index in range(50):
        one(index)
    flush()
    latencies.clear()
    turns = int(rate * seconds / EVENTS_PER_TURN)
    interval = EVENTS_PER_TURN / rate
    t0 = time.perf_counter()
    for index in range(turns):
        ahead = t0 + index * interval - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
        one(50 + index)
    elapsed = time.perf_counter() - t0
    flush()
    close()
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] / 1e6

    return {
        "target_events_per_s": rate,
        "reached_events_per_s": turns * EVENTS_PER_TURN / elapsed,
        "events": len(ordered),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "max_ms": ordered[-1] / 1e6,
        "loadavg_1m": os.getloadavg()[0],
    }


def run_rss(root: Path, turns: int) -> dict[str, float]:
    """Peak RSS growth over ``turns`` back-to-back turns (after 100 warm-up turns)."""
    one, flush, close = _setup("otel_rollout", root, turns)
    for index in range(100):
        one(index)
    flush()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for index in range(100, 100 + turns):
        one(index)
    flush()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    close()
    return {"turns": turns, "peak_rss_growth_mib": (after - before) / 1024}


def run_instr(stack: str, root: Path, turns: int) -> dict[str, float]:
    """One stack: 50 warm-up turns, then ``turns`` turns and the final flush (run under
    callgrind by :func:`_instructions`)."""
    warm_then_run(*_setup(stack, root, turns + 50), turns)
    return {"turns": turns}


def _callgrind(stack: str, root: Path, turns: int) -> int:
    """Instructions of all threads of one :func:`run_instr` process."""
    return callgrind_instructions(
        [sys.executable, __file__, "--child", "instr", str(root), stack, str(turns)]
    )


def _instructions(base: Path, turns: int) -> dict[str, Any]:
    """Instructions per typical turn of each stack (see the module docstring)."""
    table: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="otel-rollout-load-", dir=base) as tmp:
        for stack in STACKS:
            low = _callgrind(stack, Path(tmp) / f"{stack}-low", turns)
            high = _callgrind(stack, Path(tmp) / f"{stack}-high", 3 * turns)
            table[stack] = {"instructions_per_turn": (high - low) / (2 * turns)}
    bare = table["bare_sdk"]["instructions_per_turn"]
    for stack, row in table.items():
        if stack != "bare_sdk":
            row["ratio_to_bare_sdk"] = row["instructions_per_turn"] / bare
    return table


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--latency-s", type=float, default=3.0)
    parser.add_argument("--rss-turns", type=int, default=2000)
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--disk", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--skip", nargs="*", default=[], help="cost, writer, latency, rss")
    parser.add_argument("--instructions", action="store_true", help="callgrind counts")
    parser.add_argument("--instr-turns", type=int, default=100)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        kind, root = args.child[0], Path(args.child[1])
        if kind == "cost":
            out = run_cost(args.child[2], root, args.turns, args.warmup)
        elif kind == "instr":
            out = run_instr(args.child[2], root, int(args.child[3]))
        elif kind == "writer":
            out = run_writer(root, args.turns)
        elif kind == "latency":
            out = run_latency(root, int(args.child[2]), args.latency_s)
        else:
            out = run_rss(root, args.rss_turns)
        print(json.dumps(out))
        return 0
    common = ["--turns", str(args.turns), "--warmup", str(args.warmup)]
    common += ["--latency-s", str(args.latency_s), "--rss-turns", str(args.rss_turns)]
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "turns": args.turns,
        "reps": args.reps,
        "workload": "turn + 2 inference attempts (4 KB request + 4 KB response) + 1 tool call",
        "events_per_turn": EVENTS_PER_TURN,
        "load": {"loadavg_at_start": os.getloadavg()},
        "targets": {
            "cpu_ratio_max_tmpfs": 1.5,
            "cpu_ratio_max_disk": 2.0,
            "events_per_s_min": 20_000,
            "latency_bound_ms": 100,
            "rss_growth_mib_max": 32,
        },
    }
    places = {"tmpfs": args.tmpfs, "disk": args.disk}
    if "cost" not in args.skip:
        cost: dict[str, Any] = {}
        for place, base in places.items():
            runs: dict[str, list[dict[str, float]]] = {stack: [] for stack in STACKS}
            with tempfile.TemporaryDirectory(prefix="otel-rollout-load-", dir=base) as tmp:
                for rep in range(args.reps):
                    order = STACKS[rep % len(STACKS) :] + STACKS[: rep % len(STACKS)]
                    for stack in order:
                        root = Path(tmp) / f"{stack}-{rep}"
                        runs[stack].append(_child(["cost", str(root), stack, *common]))
            table: dict[str, Any] = {}
            for stack, results in runs.items():
                table[stack] = {k: statistics.median(r[k] for r in results) for k in results[0]}
                if stack != "bare_sdk":
                    ratios = {}
                    for key in ("cpu_us_per_turn", "incl_flush_us_per_turn"):
                        per_rep = [
                            ours[key] / bare[key]
                            for ours, bare in zip(results, runs["bare_sdk"], strict=True)
                        ]
                        ratios[key] = {
                            "median": statistics.median(per_rep),
                            "min": min(per_rep),
                            "max": max(per_rep),
                        }
                    table[stack]["ratio_to_bare_sdk"] = ratios
            cost[place] = {"dir": str(base), "stacks": table}
        report["cost"] = cost
    if "writer" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="otel-rollout-load-", dir=args.tmpfs) as tmp:
            writer_runs = [
                _child(["writer", str(Path(tmp) / f"writer-{rep}"), *common])
                for rep in range(args.reps)
            ]
        report["writer"] = {
            key: statistics.median(run[key] for run in writer_runs) for key in writer_runs[0]
        }
    if "latency" not in args.skip:
        latency: dict[str, Any] = {}
        for place, base in places.items():
            with tempfile.TemporaryDirectory(prefix="otel-rollout-load-", dir=base) as tmp:
                latency[place] = [
                    _child(["latency", str(Path(tmp) / str(rate)), str(rate), *common])
                    for rate in RATES
                ]
        report["latency"] = latency
    if "rss" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="otel-rollout-load-", dir=args.tmpfs) as tmp:
            report["rss"] = _child(["rss", str(Path(tmp) / "rss"), *common])
    if args.instructions:
        report["instructions"] = _instructions(args.tmpfs, args.instr_turns)
    report["load"]["loadavg_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
