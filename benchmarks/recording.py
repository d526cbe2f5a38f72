"""What recording costs the app: disabled calls, and one typical turn against the bare OTel SDK.

Prints one JSON object with:

* ``disabled``: a disabled method call beside a plain no-op method call, and the
  disabled context-manager forms beside ``contextlib.nullcontext()`` (ns per call).
* ``turn``: one typical turn (a turn, 2 inference attempts with 4 KB request and 4 KB
  response payloads, 1 tool call) recorded with otel-rollout, beside the same span
  tree through the bare OTel SDK + BatchSpanProcessor whose spans carry the payloads
  as attributes (what OTel-native peers do). Both write to the same kind of sink: the
  SDK's BatchSpanProcessor exports OTLP protobuf appended to a file in the same
  directory as the bundles (queue big enough to drop nothing); otel-rollout writes the
  bundle (Codex's format; schema 3, zstd payload shards, by default: ``schema.py``
  compares it with schema 2's file per payload). Per turn: caller-thread latency (wall
  time of the loop, which includes waiting for the GIL while a background thread
  runs), the caller thread's own CPU time, wall time including the final flush, and
  process CPU (all threads, so background file I/O and span building count).
  Repetitions are interleaved. Ratios to the bare SDK: ``of_medians`` (median of
  ours / median of the SDK's), and the spread over repetitions (each repetition's
  ratio to the SDK run of the same repetition: median, min, max).
  ``bare_sdk_no_export`` (the SDK exporting nowhere) is a reference: ratios to it are
  reported too, but it does not write what the other stacks write.
* ``fs``: what creating one file costs in the bundle directory (the bundle format
  needs one file per payload; on a loaded VM this varies from 20 us to 1 ms).
* ``flush_latency_ms``: time from a recording call to its line being in ``trace.jsonl``.

Run: .venv/bin/python benchmarks/recording.py [--turns N] [--reps N] [--out FILE]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import otel_rollout
from otel_rollout import (
    RolloutBundleSpanExporter,
    RolloutSpanProcessor,
    ThreadStartedTraceMetadata,
    ThreadTraceContext,
    _config,
)
from otel_rollout._live import _runtime

PAYLOAD_BYTES = 4096
POOL = 64


class DropExporter(SpanExporter):
    """Drops spans: the reference stack ``bare_sdk_no_export`` (the SDK's cost without I/O)."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class FileExporter(SpanExporter):
    """Appends each batch as length-prefixed OTLP protobuf to one file (an OTLP file sink)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._fd is None:
            return SpanExportResult.FAILURE
        data = encode_spans(spans).SerializeToString()
        os.write(self._fd, len(data).to_bytes(4, "big") + data)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def callgrind_instructions(command: Sequence[str]) -> int:
    """Instructions of all threads of ``command`` (a Python child), counted by callgrind
    (``valgrind`` on ``PATH``): user-space instructions, which the machine's load does not
    change (``PYTHONHASHSEED=0`` for repeatable dict layouts)."""
    import subprocess

    with tempfile.TemporaryDirectory(prefix="otel-rollout-cg-") as out:
        target = Path(out) / "callgrind.out"
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={target}", *command],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        for line in target.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("no callgrind summary")


def warm_then_run(
    one: Callable[[int], object],
    flush: Callable[[], object],
    close: Callable[[], object],
    turns: int,
) -> None:
    """50 warm-up turns and a flush, then ``turns`` turns, the final flush and ``close``: what
    a benchmark runs under callgrind (:func:`callgrind_instructions`).

    What is alive after the warm-up (the interpreter's and the frameworks' objects) is
    frozen out of the garbage collector (``gc.freeze``): a full collection walks the whole
    heap, a cost of the app's size, not of the stack; one run of a pair would catch one and
    the other not (seen: 60,000 instructions per turn apart). Collections of what the turns
    allocate still run and count."""
    import gc

    for index in range(50):
        one(index)
    flush()
    gc.collect()
    gc.freeze()
    for index in range(50, 50 + turns):
        one(index)
    flush()
    close()


def _messages(seed: int, role: str) -> list[dict[str, Any]]:
    """A Responses-style message list whose JSON is exactly PAYLOAD_BYTES long."""
    base: list[dict[str, Any]] = [
        {"type": "message", "role": role, "content": [{"type": "input_text", "text": ""}]}
    ]
    overhead = len(json.dumps(base))
    text = (f"{seed:04d}-" * PAYLOAD_BYTES)[: PAYLOAD_BYTES - overhead]
    base[0]["content"][0]["text"] = text
    assert len(json.dumps(base)) == PAYLOAD_BYTES
    return base


def make_pool() -> list[dict[str, Any]]:
    """Pre-built payload sets, as dicts (ours) and pre-serialised JSON (the SDK's attributes)."""
    pool = []
    for seed in range(POOL):
        request = _messages(seed, "user")
        response = _messages(seed + POOL, "assistant")
        pool.append(
            {
                "request": {"model": "gpt-bench", "input": request},
                "response": response,
                "request_json": json.dumps(request),
                "response_json": json.dumps(response),
                "args": json.dumps({"query": f"lookup {seed}", "limit": 10}),
                "result": json.dumps({"result": f"value {seed}", "ok": True, "n": 1}),
            }
        )
    return pool


USAGE = {
    "input_tokens": 1000,
    "cached_input_tokens": 0,
    "output_tokens": 200,
    "reasoning_output_tokens": 0,
    "total_tokens": 1200,
}


def rollout_turn(thread: ThreadTraceContext, payloads: dict[str, Any], index: int) -> None:
    """One typical turn through the recording API."""
    with thread.turn() as turn:
        inference = turn.inference("gpt-bench", "bench")
        for attempt_index in range(2):
            with inference.attempt(payloads["request"]) as attempt:
                attempt.record_completed(
                    f"resp-{index}-{attempt_index}", payloads["response"], token_usage=USAGE
                )
        with turn.tool_call("lookup", payloads["args"]) as tool:
            tool.record_completed(payloads["result"])


def sdk_turn(tracer: trace.Tracer, payloads: dict[str, Any], index: int) -> None:
    """The same span tree through the bare SDK, payloads as attributes."""
    with tracer.start_as_current_span("turn"):
        for attempt_index in range(2):
            with tracer.start_as_current_span(
                "chat gpt-bench",
                kind=trace.SpanKind.CLIENT,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.provider.name": "bench",
                    "gen_ai.request.model": "gpt-bench",
                    "gen_ai.input.messages": payloads["request_json"],
                },
            ) as span:
                span.set_attributes(
                    {
                        "gen_ai.output.messages": payloads["response_json"],
                        "gen_ai.response.id": f"resp-{index}-{attempt_index}",
                        "gen_ai.usage.input_tokens": 1000,
                        "gen_ai.usage.output_tokens": 200,
                    }
                )
        with tracer.start_as_current_span(
            "execute_tool lookup",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "lookup",
                "gen_ai.tool.call.arguments": payloads["args"],
            },
        ) as span:
            span.set_attribute("gen_ai.tool.call.result", payloads["result"])


def _big_bsp(exporter: SpanExporter, turns: int) -> BatchSpanProcessor:
    return BatchSpanProcessor(exporter, max_queue_size=max(2048, 6 * turns))


def run_stack(
    name: str, turns: int, warmup: int, pool: list[dict[str, Any]], root: Path
) -> dict[str, float]:
    """Run one stack once; return per-turn microseconds."""
    flush: Callable[[], object]
    if name.startswith("bare_sdk"):
        provider = TracerProvider()
        sink: SpanExporter = (
            DropExporter()
            if name == "bare_sdk_no_export"
            else FileExporter(root / name / "spans.otlp")
        )
        provider.add_span_processor(_big_bsp(sink, turns + warmup))
        tracer = provider.get_tracer("bench")
        agent = tracer.start_span("invoke_agent bench")
        context = trace.set_span_in_context(agent)
        token = otel_rollout_context_attach(context)

        def one(index: int) -> None:
            sdk_turn(tracer, pool[index % POOL], index)

        def flush() -> object:
            return provider.force_flush()

        def close() -> None:
            otel_rollout_context_detach(token)
            agent.end()
            provider.shutdown()

    else:
        exporter = RolloutBundleSpanExporter(max_queue_events=1_000_000, max_queue_bytes=1 << 31)
        provider = TracerProvider()
        if name == "otel_rollout_app_provider":
            provider.add_span_processor(
                _big_bsp(FileExporter(root / name / "spans.otlp"), turns + warmup)
            )
        provider.add_span_processor(RolloutSpanProcessor(exporter))
        otel_rollout.configure(trace_root=root / name, tracer_provider=provider, exporter=exporter)
        thread = ThreadTraceContext.start_root_or_disabled(
            ThreadStartedTraceMetadata(model="gpt-bench", provider_name="bench")
        )
        assert thread.is_enabled()

        def one(index: int) -> None:
            rollout_turn(thread, pool[index % POOL], index)

        def flush() -> object:
            provider.force_flush()
            return exporter.force_flush()

        def close() -> None:
            thread.record_ended()
            provider.shutdown()
            assert exporter.lost_events == 0
            _runtime.reset()

    for index in range(warmup):
        one(index)
    flush()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    caller0 = time.thread_time()
    for index in range(turns):
        one(index)
    caller1 = time.thread_time()
    t1 = time.perf_counter()
    flush()
    t2 = time.perf_counter()
    cpu1 = time.process_time()
    close()
    return {
        "loop_us_per_turn": (t1 - t0) / turns * 1e6,
        "caller_cpu_us_per_turn": (caller1 - caller0) / turns * 1e6,
        "incl_flush_us_per_turn": (t2 - t0) / turns * 1e6,
        "cpu_us_per_turn": (cpu1 - cpu0) / turns * 1e6,
    }


def otel_rollout_context_attach(context: Any) -> object:
    from opentelemetry import context as otel_context

    return otel_context.attach(context)


def otel_rollout_context_detach(token: Any) -> None:
    from opentelemetry import context as otel_context

    otel_context.detach(token)


class _Plain:
    def record_turn_started(self, turn_id: str) -> None:
        return None

    def record_protocol_event(self, event_type: str, payload: Any) -> None:
        return None


def disabled_benchmarks(number: int) -> dict[str, Any]:
    """ns per call: disabled methods vs plain no-op methods, disabled CMs vs nullcontext."""
    os.environ.pop(_config.TRACE_ROOT_ENV, None)
    _runtime.reset()
    thread = ThreadTraceContext.start_root_or_disabled()
    assert not thread.is_enabled()
    plain = _Plain()
    payload = {"type": "x"}
    turn = thread.turn()
    inference = turn.inference("m", "p")

    def best(stmt: Callable[[], object]) -> float:
        return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e9

    def cm_turn() -> None:
        with thread.turn():
            pass

    def cm_attempt() -> None:
        with inference.attempt(payload):
            pass

    def cm_tool() -> None:
        with turn.tool_call("lookup", payload):
            pass

    def cm_null() -> None:
        with contextlib.nullcontext():
            pass

    results = {
        "plain_noop_method_ns": best(lambda: plain.record_turn_started("t")),
        "disabled_method_ns": best(lambda: thread.record_turn_started("t")),
        "plain_noop_method_2args_ns": best(lambda: plain.record_protocol_event("x", payload)),
        "disabled_method_2args_ns": best(lambda: thread.record_protocol_event("x", payload)),
        "nullcontext_ns": best(cm_null),
        "disabled_turn_cm_ns": best(cm_turn),
        "disabled_attempt_cm_ns": best(cm_attempt),
        "disabled_tool_cm_ns": best(cm_tool),
    }
    results["method_ratio"] = results["disabled_method_ns"] / results["plain_noop_method_ns"]
    results["method_2args_ratio"] = (
        results["disabled_method_2args_ns"] / results["plain_noop_method_2args_ns"]
    )
    for name in ("turn", "attempt", "tool"):
        results[f"{name}_cm_ratio"] = results[f"disabled_{name}_cm_ns"] / results["nullcontext_ns"]
    return results


def flush_latency(root: Path, samples: int) -> dict[str, float]:
    """ms from a recording call returning to its event line being in trace.jsonl."""
    exporter = RolloutBundleSpanExporter()
    otel_rollout.configure(trace_root=root / "latency", exporter=exporter)
    thread = ThreadTraceContext.start_root_or_disabled()
    assert thread.bundle_dir is not None
    log = thread.bundle_dir / "trace.jsonl"
    exporter.force_flush()
    latencies = []
    for index in range(samples):
        size = log.stat().st_size
        thread.record_turn_started(f"turn-{index}")
        start = time.perf_counter()
        while log.stat().st_size == size:
            time.sleep(0.0005)
        latencies.append((time.perf_counter() - start) * 1000)
        time.sleep(0.05)  # let the writer go idle again: measure the wake-up path
    thread.record_ended()
    exporter.shutdown()
    _runtime.reset()
    return {
        "median": statistics.median(latencies),
        "max": max(latencies),
        "samples": samples,
    }


def file_create_cost(root: Path, files: int = 200) -> dict[str, float]:
    """us (wall and CPU) to create, write (4 KB) and close one file in the bundle directory."""
    directory = root / "fs-probe"
    directory.mkdir()
    data = b"x" * PAYLOAD_BYTES
    cpu0, t0 = time.process_time(), time.perf_counter()
    for index in range(files):
        fd = os.open(directory / f"{index}.json", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, data)
        os.close(fd)
    return {
        "create_write_close_us": (time.perf_counter() - t0) / files * 1e6,
        "create_write_close_cpu_us": (time.process_time() - cpu0) / files * 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200_000, help="calls per disabled timing")
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--dir", type=Path, default=None, help="where bundles go (default: the system temp dir)"
    )
    args = parser.parse_args(argv)
    pool = make_pool()
    stacks = [
        "bare_sdk",
        "bare_sdk_no_export",
        "otel_rollout_app_provider",
        "otel_rollout_own_provider",
    ]
    runs: dict[str, list[dict[str, float]]] = {stack: [] for stack in stacks}
    with tempfile.TemporaryDirectory(prefix="otel-rollout-bench-", dir=args.dir) as tmp:
        root = Path(tmp)
        for rep in range(args.reps):
            order = stacks[rep % len(stacks) :] + stacks[: rep % len(stacks)]
            for stack in order:
                runs[stack].append(run_stack(stack, args.turns, args.warmup, pool, root / str(rep)))
        latency = flush_latency(root, 20)
        fs = file_create_cost(root)
    turn: dict[str, Any] = {}
    for stack, results in runs.items():
        turn[stack] = {
            key: statistics.median(result[key] for result in results) for key in results[0]
        }
    for stack in stacks[2:]:
        for baseline in stacks[:2]:
            ratios: dict[str, Any] = {}
            for key in runs[baseline][0]:
                pairs = zip(runs[stack], runs[baseline], strict=True)
                per_rep = [ours[key] / bare[key] for ours, bare in pairs]
                ratios[key] = {
                    "of_medians": turn[stack][key] / turn[baseline][key],
                    "median": statistics.median(per_rep),
                    "min": min(per_rep),
                    "max": max(per_rep),
                }
            turn[stack][f"ratio_to_{baseline}"] = ratios
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "turns": args.turns,
        "reps": args.reps,
        "bundle_dir": str(args.dir or tempfile.gettempdir()),
        "workload": "turn + 2 inference attempts (4 KB request + 4 KB response) + 1 tool call",
        "disabled": disabled_benchmarks(args.calls),
        "turn": turn,
        "flush_latency_ms": latency,
        "fs": fs,
        "targets": {"disabled_ratio_max": 2.0, "enabled_caller_latency_ratio_max": 1.5},
    }
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
