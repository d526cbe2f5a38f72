"""What bundles from other instrumentations' spans cost: the processor and the exporter.

The workload is an instrumented agent's spans as a GenAI instrumentation reports them: per turn,
an ``invoke_agent`` span holding 2 ``chat`` spans (4 KB input and output messages as
``gen_ai.*.messages`` attributes) and 1 ``execute_tool`` span. Stacks, interleaved per repetition:

* ``bare_sdk``: the OTel SDK, a ``BatchSpanProcessor`` exporting OTLP protobuf to a file (the
  baseline: what the app pays without otel-rollout);
* ``processor``: the same plus ``RolloutSpanProcessor`` (bundles checkpointed while the trace
  runs, every 50 ms when it changed, and written when it ends);
* ``exporter``: the same plus the ``rollout_bundle`` exporter behind a second
  ``BatchSpanProcessor`` (finished spans only, the bundle written when the trace ends).

Two shapes: ``trace_per_turn`` (each turn its own trace: a web app serving requests) and
``long_trace`` (all turns in one trace: one long session, where each checkpoint rewrites the
whole bundle so far). Per turn: process CPU (all threads: the checkpoint thread, the batch
processors' threads, the writes at the end) from the first span to the provider's shutdown, and
the caller thread's wall time. Ratios to ``bare_sdk``: median of the repetitions' ratios (each to
the same repetition's baseline), min and max.

Run: .venv/bin/python benchmarks/spans_only.py [--turns N] [--reps N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Tracer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from recording import FileExporter

from otel_rollout import RolloutBundleSpanExporter, RolloutSpanProcessor

STACKS = ("bare_sdk", "processor", "exporter")
SHAPES = ("trace_per_turn", "long_trace")


def _messages(role: str, seed: int) -> str:
    text = (f"{role} {seed} " * 800)[:4096]
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def one_turn(tracer: Tracer, index: int) -> None:
    """One agent run: 2 model calls with 4 KB messages each way, 1 tool call."""
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "bench"}
    with tracer.start_as_current_span("invoke_agent bench", attributes=agent):
        for call in range(2):
            with tracer.start_as_current_span(
                "chat m",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "m",
                    "gen_ai.input.messages": _messages("user", index * 2 + call),
                    "gen_ai.output.messages": _messages("assistant", index * 2 + call),
                    "gen_ai.usage.input_tokens": 1000,
                    "gen_ai.usage.output_tokens": 1000,
                },
            ):
                pass
        with tracer.start_as_current_span(
            "execute_tool t",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "t",
                "gen_ai.tool.call.id": f"call_{index}",
                "gen_ai.tool.call.arguments": '{"i":1}',
                "gen_ai.tool.call.result": "ok",
            },
        ):
            pass


def run(stack: str, shape: str, turns: int, root: Path) -> dict[str, float]:
    """One stack, one shape, once: per-turn microseconds."""
    provider = TracerProvider()
    provider.add_span_processor(
        BatchSpanProcessor(FileExporter(root / "spans.otlp"), max_queue_size=max(2048, 8 * turns))
    )
    if stack == "processor":
        provider.add_span_processor(RolloutSpanProcessor(RolloutBundleSpanExporter(root)))
    elif stack == "exporter":
        provider.add_span_processor(
            BatchSpanProcessor(RolloutBundleSpanExporter(root), max_queue_size=max(2048, 8 * turns))
        )
    tracer = provider.get_tracer("bench.instrumentation")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if shape == "long_trace":
        with tracer.start_as_current_span("session"):
            for index in range(turns):
                one_turn(tracer, index)
    else:
        for index in range(turns):
            one_turn(tracer, index)
    wall1 = time.perf_counter()
    provider.shutdown()
    cpu1 = time.process_time()
    bundles = len(list(root.glob("trace-*")))
    if stack != "bare_sdk":
        assert bundles == (1 if shape == "long_trace" else turns), bundles
    return {
        "cpu_us_per_turn": (cpu1 - cpu0) / turns * 1e6,
        "caller_wall_us_per_turn": (wall1 - wall0) / turns * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    results: dict[str, Any] = {
        "workload": "per turn: invoke_agent + 2 chat spans (4 KB messages each way) + 1 tool",
        "turns": args.turns,
        "reps": args.reps,
        "python": platform.python_version(),
    }
    for shape in SHAPES:
        runs: dict[str, list[dict[str, float]]] = {stack: [] for stack in STACKS}
        for _ in range(args.reps):
            for stack in STACKS:  # interleaved: each repetition runs every stack
                with tempfile.TemporaryDirectory() as scratch:
                    runs[stack].append(run(stack, shape, args.turns, Path(scratch)))
        summary: dict[str, Any] = {}
        for stack in STACKS:
            cpu = [r["cpu_us_per_turn"] for r in runs[stack]]
            ratios = [
                r["cpu_us_per_turn"] / base["cpu_us_per_turn"]
                for r, base in zip(runs[stack], runs["bare_sdk"], strict=True)
            ]
            summary[stack] = {
                "cpu_us_per_turn_median": statistics.median(cpu),
                "caller_wall_us_per_turn_median": statistics.median(
                    r["caller_wall_us_per_turn"] for r in runs[stack]
                ),
                "cpu_ratio_to_bare_sdk": {
                    "median": statistics.median(ratios),
                    "min": min(ratios),
                    "max": max(ratios),
                },
            }
        results[shape] = summary
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
