"""Benchmark: a torn last line of 8, 32 and 200 MiB (and a sparse 1 GiB one) costs linear time.

Each workload is the plain Codex 0.169.0 fixture with a torn last line appended: the start
of an event line followed by filler bytes and no newline (written out, not sparse, except
the 1 GiB case). Times ``validate``, ``reduce`` and ``show`` as fresh processes (the
medians of ``--repeat`` runs) and the ratio of each time to the 8 MiB one's, against the
size ratio (issue 13 measured 0.5 s, 11 s and 6 min: quadratic). Writes
benchmarks/results/torn_line.json and prints it. Not run by CI.

    .venv/bin/python benchmarks/torn_line.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PLAIN = next((REPO / "tests" / "fixtures" / "codex-0.169.0" / "plain").glob("trace-*"))
RESULTS = REPO / "benchmarks" / "results" / "torn_line.json"
MIB = 1 << 20
SIZES_MIB = (8, 32, 200)
COMMANDS = {
    "validate": ["validate", "{bundle}"],
    "reduce": ["reduce", "{bundle}", "-o", "{out}"],
    "show": ["show", "{bundle}"],
}


def make_bundle(root: Path, size: int, sparse: bool) -> Path:
    bundle = root / f"torn-{size}"
    shutil.copytree(PLAIN, bundle)
    with (bundle / "trace.jsonl").open("ab") as handle:
        head = b'{"schema_version":2,"seq":19,"payload":{"type":"warning","text":"'
        handle.write(head)
        if sparse:
            handle.truncate(handle.tell() + size - len(head))
        else:
            block = b"x" * MIB
            left = size - len(head)
            while left > 0:
                left -= handle.write(block[: min(MIB, left)])
    return bundle


def run(command: str, bundle: Path, out: Path) -> float:
    args = [part.format(bundle=bundle, out=out) for part in COMMANDS[command]]
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "otel_rollout", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="torn-line-") as temp:
        root = Path(temp)
        workloads = [(size * MIB, False) for size in SIZES_MIB] + [(1 << 30, True)]
        for size, sparse in workloads:
            bundle = make_bundle(root, size, sparse)
            row: dict[str, Any] = {"torn_bytes": size, "sparse": sparse}
            for command in COMMANDS:
                times = [run(command, bundle, root / "state.json") for _ in range(options.repeat)]
                row[f"{command}_s"] = round(statistics.median(times), 3)
            results.append(row)
            shutil.rmtree(bundle)
    base = results[0]
    for row in results:
        row["size_ratio"] = round(row["torn_bytes"] / base["torn_bytes"], 1)
        for command in COMMANDS:
            row[f"{command}_ratio"] = round(row[f"{command}_s"] / base[f"{command}_s"], 2)
    report = {
        "benchmark": "torn_line",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "repeat": options.repeat,
        "results": results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
