"""Replay throughput beside the SDK's own OTLP exporter, on the same spans into the same receiver.

For each large Codex fixture (``tests/fixtures/codex-0.169.0-large``) and its schema 3 conversion,
with content capture off (the target) and on (reported), into two receivers (rotel in front of
MLflow, as the backend tests start them, and a minimal loopback sink that acks and discards,
``tests/support/otlp_sink.py``), over OTLP gRPC and OTLP/HTTP, three senders run interleaved,
``--rounds`` times each, in a rotating order:

- ``sdk_exporter``: the baseline. The SDK's OTLP exporter sending the spans already built:
  the time of ``exporter.export(batch)`` for each request replay would send, acks included.
- ``replay_in_process``: our replay end to end, bundle -> acknowledged by the receiver, as the
  command does it (the reduce check, the span build, the export), in this process.
- ``replay_command``: ``otel-rollout replay BUNDLE`` as a fresh process (wall time).

Reports medians as spans/s and the ratio ours/baseline (>= 1.0: replay is at least as fast as
the exporter alone), CPU seconds of all threads (children's for the command) and the same ratio
in CPU (baseline CPU / ours, less sensitive to the machine's load), the load average,
and, for the in-process replay, how its time splits (check + build vs export). Then checks in
MLflow that every span of every bundle arrived through rotel. Prints one JSON object (and writes
it with ``--out``).

Run: python benchmarks/replay.py [--rounds 3] [--out benchmarks/results/replay.json]
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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from otel_rollout._bundle._convert import convert_bundle
from otel_rollout._bundle._reader import Bundle
from otel_rollout._otel._replay import (
    export_spans,
    make_exporter,
    plan_requests,
    resolve_target,
)
from otel_rollout.cli._replay import checked_spans

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.backends import Backends, BackendUnavailable, start_backends  # noqa: E402
from support.otlp_sink import start_sink  # noqa: E402

LARGE = ROOT / "tests" / "fixtures" / "codex-0.169.0-large"
_SCRIPT = Path(sys.executable).parent / "otel-rollout"
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "otel_rollout"]
PROTOCOLS = (("grpc", 0), ("http/protobuf", 1))
VARIANTS = ("sdk_exporter", "replay_in_process", "replay_command")

Sample = dict[str, float]


def sdk_export(spans: Sequence[ReadableSpan], endpoint: str, protocol: str) -> Sample:
    """The baseline: the SDK's exporter sending the built spans, request by request."""
    target = resolve_target(endpoint, protocol)
    batches = plan_requests(spans, target.max_request_bytes)
    exporter = make_exporter(target)
    try:
        cpu, started = time.process_time(), time.perf_counter()
        for batch in batches:
            if exporter.export(batch).name != "SUCCESS":
                raise RuntimeError(f"the SDK exporter failed to send to {endpoint}")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        exporter.shutdown()
    return {"wall_s": wall, "cpu_s": cpu}


def replay_in_process(bundle: Path, endpoint: str, protocol: str, capture: bool) -> Sample:
    """Ours, end to end in this process: what ``otel-rollout replay`` does after start-up."""
    cpu, started = time.process_time(), time.perf_counter()
    target = resolve_target(endpoint, protocol)
    spans = checked_spans(bundle, capture)
    built = time.perf_counter()
    sent = export_spans(spans, target)
    wall = time.perf_counter() - started
    if sent.spans != len(spans):
        raise RuntimeError(f"replay sent {sent.spans} of {len(spans)} spans")
    return {
        "wall_s": wall,
        "cpu_s": time.process_time() - cpu,
        "check_and_build_s": built - started,
        "export_s": wall - (built - started),
    }


def replay_command(bundle: Path, endpoint: str, protocol: str, capture: bool) -> Sample:
    """Ours as a command: a fresh ``otel-rollout replay`` process, wall and children's CPU."""
    argv = [
        *COMMAND,
        "replay",
        str(bundle),
        "--endpoint",
        endpoint,
        "--protocol",
        protocol,
        "--no-progress",
        "--capture-content" if capture else "--no-capture-content",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu}


def bundles_to_run(work: Path) -> list[tuple[str, Path]]:
    """The large fixtures (schema 2) and their schema 3 conversions."""
    found: list[tuple[str, Path]] = []
    for bundle in sorted(LARGE.glob("*/trace-*")):
        name = bundle.parent.name
        found.append((f"{name}_s2", bundle))
        found.append((f"{name}_s3", convert_bundle(bundle, work / "schema3" / name, 3)))
    return found


def summarize(samples: dict[str, list[Sample]], spans: int) -> dict[str, Any]:
    """Medians per sender, spans/s, and ours over the baseline."""
    row: dict[str, Any] = {}
    for variant, runs in samples.items():
        wall = statistics.median(run["wall_s"] for run in runs)
        entry: dict[str, Any] = {
            "median_wall_s": round(wall, 4),
            "best_wall_s": round(min(run["wall_s"] for run in runs), 4),
            "median_cpu_s": round(statistics.median(run["cpu_s"] for run in runs), 4),
            "spans_per_s": round(spans / wall),
        }
        for part in ("check_and_build_s", "export_s"):
            if part in runs[0]:
                entry[f"median_{part}"] = round(statistics.median(run[part] for run in runs), 4)
        row[variant] = entry
    baseline = row["sdk_exporter"]["spans_per_s"]
    row["ratio_in_process"] = round(row["replay_in_process"]["spans_per_s"] / baseline, 3)
    row["ratio_command"] = round(row["replay_command"]["spans_per_s"] / baseline, 3)
    cpu = row["sdk_exporter"]["median_cpu_s"]  # less sensitive to the machine's load
    row["cpu_ratio_in_process"] = round(cpu / row["replay_in_process"]["median_cpu_s"], 3)
    row["cpu_ratio_command"] = round(cpu / row["replay_command"]["median_cpu_s"], 3)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    loads = [os.getloadavg()]
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as work_dir:
            work = Path(work_dir)
            bundles = bundles_to_run(work)
            with start_backends(work, experiment="bench-replay") as backends, start_sink() as sink:
                receivers = {
                    "rotel": (backends.rotel_grpc, backends.rotel_http),
                    "sink": (sink.grpc, sink.http),
                }
                rows, expected = run_rounds(bundles, receivers, args.rounds, loads)
                arrived = {
                    trace: received(backends, trace, count) for trace, count in expected.items()
                }
    except BackendUnavailable as error:
        print(f"benchmark needs rotel (bash scripts/install-backends): {error}", file=sys.stderr)
        return 1
    off = [row for row in rows if not row["capture_content"]]
    on = [row for row in rows if row["capture_content"]]
    report = {
        "benchmark": "replay",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "load_average_1_5_15": {
            "start": [round(x, 2) for x in loads[0]],
            "per_round": [[round(x, 2) for x in load] for load in loads[1:]],
        },
        "rounds": args.rounds,
        "receivers": {
            "rotel": "rotel 0.0.1a15 (OTLP in) -> MLflow (OTLP/HTTP), as tests/support/backends.py",
            "sink": "tests/support/otlp_sink.py: acks and discards, in its own process",
        },
        "baseline": "sdk_exporter: OTLPSpanExporter.export(batch) per request, spans prebuilt",
        "target": "capture off: ratio_in_process and ratio_command >= 1.0",
        "ratio_capture_off": {
            variant: [min(row[key] for row in off), max(row[key] for row in off)]
            for variant, key in (
                ("in_process", "ratio_in_process"),
                ("command", "ratio_command"),
                ("in_process_cpu", "cpu_ratio_in_process"),
                ("command_cpu", "cpu_ratio_command"),
            )
        },
        "ratio_capture_on": {
            variant: [min(row[key] for row in on), max(row[key] for row in on)]
            for variant, key in (("in_process", "ratio_in_process"), ("command", "ratio_command"))
        },
        "rows": rows,
        "received_by_mlflow_through_rotel": arrived,
        "lost": sum(expected[trace] - arrived[trace] for trace in expected),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0 if report["lost"] == 0 else 1


def run_rounds(
    bundles: list[tuple[str, Path]],
    receivers: dict[str, tuple[str, str]],
    rounds: int,
    loads: list[tuple[float, float, float]],
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Every sender on every case, ``rounds`` times, interleaved; rows of medians."""
    built = {
        (name, capture): checked_spans(bundle, capture)
        for name, bundle in bundles
        for capture in (False, True)
    }
    cases = [
        (name, bundle, capture, receiver, protocol, endpoints[index])
        for name, bundle in bundles
        for capture in (False, True)
        for receiver, endpoints in receivers.items()
        for protocol, index in PROTOCOLS
    ]
    samples: dict[tuple[Any, ...], dict[str, list[Sample]]] = {}
    for round_number in range(rounds):
        for case_number, (name, bundle, capture, receiver, protocol, endpoint) in enumerate(cases):
            shift = (round_number + case_number) % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                if variant == "sdk_exporter":
                    sample = sdk_export(built[(name, capture)], endpoint, protocol)
                elif variant == "replay_in_process":
                    sample = replay_in_process(bundle, endpoint, protocol, capture)
                else:
                    sample = replay_command(bundle, endpoint, protocol, capture)
                key = (name, capture, receiver, protocol)
                samples.setdefault(key, {}).setdefault(variant, []).append(sample)
        loads.append(os.getloadavg())
        print(f"round {round_number + 1} of {rounds} done", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    expected: dict[str, int] = {}
    for (name, capture, receiver, protocol), by_variant in samples.items():
        bundle = dict(bundles)[name]
        spans = len(built[(name, capture)])
        trace = Bundle(bundle).manifest.trace_id.replace("-", "")
        expected[trace] = max(expected.get(trace, 0), spans)
        rows.append(
            {
                "bundle": name,
                "events": sum(1 for _ in Bundle(bundle).lines()),
                "spans": spans,
                "capture_content": capture,
                "receiver": receiver,
                "protocol": protocol,
                **summarize(by_variant, spans),
            }
        )
    return rows, expected


def received(backends: Backends, trace_hex: str, expected: int) -> int:
    """Spans MLflow holds for the trace, polled until complete or 120 s."""
    return len(backends.wait_for_spans(trace_hex, expected, timeout=120))


if __name__ == "__main__":
    sys.exit(main())
