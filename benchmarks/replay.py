"""Replay throughput: bundle -> spans -> OTLP into a local rotel collector, without loss.

Starts MLflow and a rotel collector in front of it (``scripts/install-backends`` installs both),
then replays the large Codex fixture bundles to rotel over OTLP gRPC and over OTLP HTTP, several
rounds each. Reports, per bundle and protocol, the best time of the mapping (bundle -> spans),
of the export (spans -> rotel, acknowledged) and of both, as spans per second; then checks in
MLflow that every span of every bundle arrived (rotel forwards to it; replays of a bundle share
ids, so each bundle is one trace with exactly its spans). Prints one JSON object.

Run: .venv/bin/python benchmarks/replay.py [--rounds N] [--capture-content]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from otel_rollout._bundle._reader import Bundle
from otel_rollout._otel._replay import bundle_spans, export_spans, resolve_target

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.backends import Backends, BackendUnavailable, start_backends  # noqa: E402

LARGE = ROOT / "tests" / "fixtures" / "codex-0.169.0-large"


def bench_bundle(
    backends: Backends, bundle: Path, rounds: int, capture_content: bool
) -> dict[str, Any]:
    """Best-of-``rounds`` timings for one bundle over both protocols."""
    map_times: list[float] = []
    spans = bundle_spans(bundle, capture_content=capture_content)
    for _ in range(rounds):
        started = time.perf_counter()
        spans = bundle_spans(bundle, capture_content=capture_content)
        map_times.append(time.perf_counter() - started)
    result: dict[str, Any] = {
        "bundle": str(bundle.relative_to(ROOT)),
        "events": sum(1 for _ in Bundle(bundle).lines()),
        "spans": len(spans),
        "map_best_s": round(min(map_times), 4),
        "map_spans_per_s": round(len(spans) / min(map_times)),
    }
    for protocol, endpoint in (
        ("grpc", backends.rotel_grpc),
        ("http/protobuf", backends.rotel_http),
    ):
        target = resolve_target(endpoint, protocol)
        export_times: list[float] = []
        requests = 0
        for _ in range(rounds):
            started = time.perf_counter()
            sent = export_spans(spans, target)
            export_times.append(time.perf_counter() - started)
            requests = sent.requests
            assert sent.spans == len(spans)
        best = min(export_times)
        result[protocol] = {
            "requests_per_replay": requests,
            "export_best_s": round(best, 4),
            "export_spans_per_s": round(len(spans) / best),
            "end_to_end_spans_per_s": round(len(spans) / (best + min(map_times))),
        }
    return result


def received(backends: Backends, bundle: Path, expected: int) -> int:
    """Spans MLflow holds for the bundle's trace, polled until complete or 120 s."""
    trace_hex = Bundle(bundle).manifest.trace_id.replace("-", "")
    return len(backends.wait_for_spans(trace_hex, expected, timeout=120))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--capture-content",
        action="store_true",
        help="put payload content on spans (bigger requests)",
    )
    args = parser.parse_args()
    bundles = sorted(LARGE.glob("*/trace-*"))
    try:
        with tempfile.TemporaryDirectory(prefix="bench-replay-") as work:
            with start_backends(Path(work), experiment="bench-replay") as backends:
                results = [
                    bench_bundle(backends, bundle, args.rounds, args.capture_content)
                    for bundle in bundles
                ]
                for bundle, result in zip(bundles, results, strict=True):
                    result["received_by_mlflow"] = received(backends, bundle, result["spans"])
                    result["lost"] = result["spans"] - result["received_by_mlflow"]
    except BackendUnavailable as error:
        print(
            f"benchmark needs the backends (bash scripts/install-backends): {error}",
            file=sys.stderr,
        )
        return 1
    report = {
        "benchmark": "replay",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "rounds": args.rounds,
        "capture_content": args.capture_content,
        "collector": "rotel 0.0.1a15 (OTLP in) -> MLflow 3.17.2 (OTLP/HTTP)",
        "bundles": results,
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0 if all(result["lost"] == 0 for result in results) else 1


def _cpus() -> int | None:
    import os

    return os.cpu_count()


if __name__ == "__main__":
    sys.exit(main())
