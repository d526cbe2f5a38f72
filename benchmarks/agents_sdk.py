"""The OpenAI Agents SDK recorded by otel-rollout's native processor, beside its peers.

The workload of ``../shared/reference/perf-peers.md``: one turn = an SDK ``turn_span``
holding 2 ``generation_span``s (a 4 KB request and a 4 KB response each: messages lists
whose JSON is 4,096 bytes, model, model config, usage) and 1 ``function_span`` (~40 B of
arguments, ~50 B of result), all in one ``trace()`` and one ``agent_span`` open for the run.
Stacks, each (stack, repetition) in a fresh interpreter, interleaved in an order rotated
each repetition:

* ``bare_otel`` (stack A(a), the baseline): the OTel SDK, a BatchSpanProcessor whose
  exporter drops spans, the same tree as GenAI spans with the content as JSON attributes;
* ``agents_native``: the Agents SDK with :class:`RolloutTracingProcessor` as its only
  processor, writing a schema 3 bundle (to ``--dir``, tmpfs by default);
* ``agents_default``: the SDK's default ``BatchTraceProcessor`` + ``BackendSpanExporter``
  posting to a local HTTP sink (a child process on loopback, not the network);
* ``bridge_openinference``, ``bridge_otel_v2``: the SDK bridged to OTel (OpenInference
  2.6.0; the contrib ``openai-agents-v2`` 0.1.0 with the SDK's own processors removed), into
  pipeline A(a);
* for information: ``agents_noop``, the SDK with a processor that does nothing (the SDK's
  own span cost), and ``recording_api``, the same turn recorded through otel-rollout's
  recording API directly (``benchmarks/recording.py``), the cost the processor builds on.

Per run: warm-up turns, a flush, the measured turns, a final flush. Reported per turn: CPU
of the whole process (all threads, the writer's and exporters' too) from the first measured
turn to the end of the final flush, wall time including that flush, the caller's CPU, and
peak RSS growth over the measured turns (VmHWM after ``clear_refs``). Ratios are per
repetition (stack / ``bare_otel`` of the same repetition): median, min, max; the machine's
load average (1, 5, 15 min) before and after the run. Targets: the
native processor at most 1.5x ``bare_otel`` and at least 3x cheaper than either bridge.

With ``--instructions`` (needs valgrind) each stack but the SDK's default export also runs
under callgrind: instructions of all threads per turn, final flush included, which the
machine's load does not change (``ratio_to_bare_otel``; for the bridges
``ratio_to_native``).

Run with the agents framework venv's Python (``bash scripts/install-frameworks agents``):
  PYTHONPATH=src ~/.cache/otel-rollout/frameworks/agents/bin/python benchmarks/agents_sdk.py \
      --out benchmarks/results/agents_sdk.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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

STACKS = (
    "bare_otel",
    "agents_native",
    "agents_default",
    "bridge_openinference",
    "bridge_otel_v2",
    "agents_noop",
    "recording_api",
)
BRIDGES = ("bridge_openinference", "bridge_otel_v2")
SPANS_PER_TURN = 4
USAGE = {"input_tokens": 1000, "output_tokens": 200, "total_tokens": 1200}

_SINK = """
import http.server, sys
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def log_message(self, *args): pass
server = http.server.HTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


Turn = Callable[[int], None]


def _sdk_turn(pool: list[dict[str, Any]]) -> Turn:
    """One turn through the Agents SDK's tracing API."""
    from agents.tracing import function_span, generation_span, turn_span

    def one(index: int) -> None:
        payloads = pool[index % POOL]
        with turn_span(turn=index, agent_name="bench"):
            for _ in range(2):
                with generation_span(
                    input=payloads["request"]["input"],
                    model="gpt-bench",
                    model_config={"temperature": 0.2},
                ) as generation:
                    generation.span_data.output = payloads["response"]
                    generation.span_data.usage = USAGE
            with function_span("lookup", input=payloads["args"]) as function:
                function.span_data.output = payloads["result"]

    return one


def _otel_pipeline(turns: int) -> Any:
    """Pipeline A(a): the SDK, a BatchSpanProcessor holding the whole run, a dropping exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    queue = max(2048, (SPANS_PER_TURN + 1) * turns + 16)
    provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=queue))
    return provider


def _setup(stack: str, root: Path, turns: int, sink_url: str) -> tuple[Turn, Any, Any]:
    """(one turn, flush, close) for ``stack``."""
    pool = make_pool()
    if stack == "bare_otel":
        from opentelemetry import context as otel_context
        from opentelemetry import trace

        provider = _otel_pipeline(turns)
        tracer = provider.get_tracer("bench")
        agent = tracer.start_span("invoke_agent bench")
        token = otel_context.attach(trace.set_span_in_context(agent))

        def close_otel() -> None:
            otel_context.detach(token)
            agent.end()
            provider.shutdown()

        return (
            (lambda index: sdk_turn(tracer, pool[index % POOL], index)),
            (provider.force_flush),
            close_otel,
        )
    if stack == "recording_api":
        import otel_rollout
        from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext

        otel_rollout.configure(trace_root=root)
        thread = ThreadTraceContext.start_root_or_disabled(
            ThreadStartedTraceMetadata(model="gpt-bench", provider_name="bench")
        )

        def close_recording() -> None:
            thread.record_ended()
            otel_rollout.force_flush()

        return (
            (lambda index: rollout_turn(thread, pool[index % POOL], index)),
            otel_rollout.force_flush,
            close_recording,
        )
    from agents.tracing import (
        TracingProcessor,
        agent_span,
        get_trace_provider,
        set_trace_processors,
    )
    from agents.tracing import trace as agents_trace

    flush: Callable[[], Any]
    provider = None
    if stack == "agents_noop":

        class Noop(TracingProcessor):  # type: ignore[misc]
            def on_trace_start(self, trace: Any) -> None:
                pass

            def on_trace_end(self, trace: Any) -> None:
                pass

            def on_span_start(self, span: Any) -> None:
                pass

            def on_span_end(self, span: Any) -> None:
                pass

            def shutdown(self) -> None:
                pass

            def force_flush(self) -> None:
                pass

        set_trace_processors([Noop()])
        flush = get_trace_provider().force_flush
    elif stack == "agents_native":
        import otel_rollout
        from otel_rollout.openai_agents import RolloutTracingProcessor

        otel_rollout.configure(trace_root=root)
        processor = RolloutTracingProcessor()
        set_trace_processors([processor])
        flush = processor.force_flush
    elif stack == "agents_default":
        from agents.tracing.processors import BackendSpanExporter, BatchTraceProcessor

        exporter = BackendSpanExporter(api_key="sk-bench", endpoint=sink_url)
        set_trace_processors([BatchTraceProcessor(exporter)])
        flush = get_trace_provider().force_flush
    elif stack == "bridge_openinference":
        from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

        provider = _otel_pipeline(turns)
        OpenAIAgentsInstrumentor().instrument(tracer_provider=provider)
        flush = provider.force_flush
    elif stack == "bridge_otel_v2":
        from opentelemetry.instrumentation.openai_agents import (
            OpenAIAgentsInstrumentor as V2Instrumentor,
        )

        provider = _otel_pipeline(turns)
        set_trace_processors([])
        V2Instrumentor().instrument(tracer_provider=provider)
        flush = provider.force_flush
    else:
        raise ValueError(stack)
    run = agents_trace("bench workflow")
    run.start(mark_as_current=True)
    agent = agent_span(name="bench")
    agent.start(mark_as_current=True)
    one = _sdk_turn(pool)

    def close_agents() -> None:
        agent.finish(reset_current=True)
        run.finish(reset_current=True)
        get_trace_provider().force_flush()
        get_trace_provider().shutdown()
        if provider is not None:
            provider.shutdown()

    return one, flush, close_agents


def _vm(field: str) -> int:
    """A ``/proc/self/status`` field, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def run_once(stack: str, root: Path, turns: int, warmup: int, sink_url: str) -> dict[str, float]:
    """One (stack, repetition), in this (fresh) interpreter."""
    import gc

    one, flush, close = _setup(stack, root, turns + warmup, sink_url)
    for index in range(warmup):
        one(index)
    flush()
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    rss0 = _vm("VmRSS")
    cpu0, t0, caller0 = time.process_time(), time.perf_counter(), time.thread_time()
    for index in range(warmup, warmup + turns):
        one(index)
    caller1, t1 = time.thread_time(), time.perf_counter()
    flush()
    t2, cpu1 = time.perf_counter(), time.process_time()
    peak = _vm("VmHWM")
    close()
    return {
        "cpu_us_per_turn": (cpu1 - cpu0) / turns * 1e6,
        "caller_cpu_us_per_turn": (caller1 - caller0) / turns * 1e6,
        "loop_us_per_turn": (t1 - t0) / turns * 1e6,
        "incl_flush_us_per_turn": (t2 - t0) / turns * 1e6,
        "peak_rss_growth_mib": (peak - rss0) / 1024,
    }


def run_instr(stack: str, root: Path, turns: int) -> None:
    """One stack: 50 warm-up turns, then ``turns`` turns and the final flush (run under
    callgrind by :func:`_instructions`)."""
    warm_then_run(*_setup(stack, root, turns + 50, "http://127.0.0.1:9/unused"), turns)


def _instructions(base: Path, turns: int, stacks: list[str]) -> dict[str, Any]:
    """Instructions of all threads per turn, final flush included: each stack runs twice
    (``turns`` and three times as many), the difference over the extra turns (start-up
    cancels out). The SDK's default export is left out (its sink is another process)."""
    table: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="otel-rollout-agents-cg-", dir=base) as tmp:
        for stack in stacks:
            if stack == "agents_default":
                continue
            counts = [
                callgrind_instructions(
                    [
                        sys.executable,
                        __file__,
                        "--turns",
                        str(n),
                        "--instr-child",
                        stack,
                        str(Path(tmp) / f"{stack}-{n}"),
                    ]
                )  # fmt: skip
                for n in (turns, 3 * turns)
            ]
            table[stack] = {"instructions_per_turn": (counts[1] - counts[0]) / (2 * turns)}
    if "bare_otel" in table:
        bare = table["bare_otel"]["instructions_per_turn"]
        for row in table.values():
            row["ratio_to_bare_otel"] = row["instructions_per_turn"] / bare
    if "agents_native" in table:
        native = table["agents_native"]["instructions_per_turn"]
        for bridge in BRIDGES:
            if bridge in table:
                table[bridge]["ratio_to_native"] = table[bridge]["instructions_per_turn"] / native
    return table


def _child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def _verdict(runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """The targets, met or not (medians of per-repetition ratios), and the caller's share."""
    verdict: dict[str, Any] = {}
    if "agents_native" not in runs or "bare_otel" not in runs:
        return verdict
    native = _ratios(runs["agents_native"], runs["bare_otel"])
    verdict["native_cpu_ratio_to_bare_otel"] = native["cpu_us_per_turn"]["median"]
    verdict["native_at_most_1_5x_bare_otel"] = native["cpu_us_per_turn"]["median"] <= 1.5
    verdict["native_caller_cpu_ratio_to_bare_otel"] = native["caller_cpu_us_per_turn"]["median"]
    for bridge in BRIDGES:
        if bridge in runs:
            over = _ratios(runs[bridge], runs["agents_native"])
            verdict[f"{bridge}_cpu_over_native"] = over["cpu_us_per_turn"]["median"]
            verdict[f"native_3x_cheaper_than_{bridge}"] = over["cpu_us_per_turn"]["median"] >= 3
            verdict[f"{bridge}_caller_cpu_over_native"] = over["caller_cpu_us_per_turn"]["median"]
    return verdict


def _ratios(results: list[dict[str, float]], base: list[dict[str, float]]) -> dict[str, Any]:
    ratios: dict[str, Any] = {}
    for key in ("cpu_us_per_turn", "caller_cpu_us_per_turn", "incl_flush_us_per_turn"):
        per_rep = [ours[key] / other[key] for ours, other in zip(results, base, strict=True)]
        ratios[key] = {
            "median": statistics.median(per_rep),
            "min": min(per_rep),
            "max": max(per_rep),
        }
    return ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/dev/shm"))
    parser.add_argument("--stacks", nargs="*", default=list(STACKS))
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--instructions", action="store_true", help="also count instructions (callgrind)"
    )
    parser.add_argument("--instr-turns", type=int, default=100)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--instr-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.instr_child:
        run_instr(args.instr_child[0], Path(args.instr_child[1]), args.turns)
        return 0
    if args.child:
        stack, root, sink_url = args.child
        print(json.dumps(run_once(stack, Path(root), args.turns, args.warmup, sink_url)))
        return 0
    load_before = os.getloadavg()
    sink = subprocess.Popen(
        [sys.executable, "-c", _SINK], stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL
    )
    try:
        assert sink.stdout is not None
        sink_url = f"http://127.0.0.1:{sink.stdout.readline().strip()}/v1/traces/ingest"
        runs: dict[str, list[dict[str, float]]] = {stack: [] for stack in args.stacks}
        with tempfile.TemporaryDirectory(prefix="otel-rollout-agents-", dir=args.dir) as tmp:
            for rep in range(args.reps):
                order = (
                    args.stacks[rep % len(args.stacks) :] + args.stacks[: rep % len(args.stacks)]
                )
                for stack in order:
                    root = Path(tmp) / f"{stack}-{rep}"
                    common = ["--turns", str(args.turns), "--warmup", str(args.warmup)]
                    runs[stack].append(_child([*common, "--child", stack, str(root), sink_url]))
    finally:
        sink.kill()
        sink.wait()
        if sink.stdout is not None:
            sink.stdout.close()
    import agents

    table: dict[str, Any] = {}
    for stack, results in runs.items():
        table[stack] = {key: statistics.median(r[key] for r in results) for key in results[0]}
        table[stack]["runs"] = results
        if stack != "bare_otel" and "bare_otel" in runs:
            table[stack]["ratio_to_bare_otel"] = _ratios(results, runs["bare_otel"])
    verdict = _verdict(runs)
    report = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "agents_sdk": agents.__version__,
        "turns": args.turns,
        "warmup": args.warmup,
        "reps": args.reps,
        "dir": str(args.dir),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "workload": "perf-peers.md: turn span + 2 generation spans (4 KB request + 4 KB "
        "response) + 1 function span, in one trace and one agent span",
        "targets": {"native_cpu_ratio_to_bare_otel_max": 1.5, "bridge_cpu_over_native_min": 3.0},
        "verdict": verdict,
        "stacks": table,
    }
    if args.instructions:
        report["instructions"] = _instructions(args.dir, args.instr_turns, args.stacks)
    text = json.dumps(report, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
