"""Benchmark: ``otel-rollout reduce`` beside ``codex debug trace-reduce`` on the same bundles.

Each run is a fresh process, timed with a monotonic clock. Its peak RSS comes from GNU
``/usr/bin/time`` (``%M``), which forks it from a small process; without that tool, from
``wait4``, where a child's peak starts at this launcher's RSS (``launcher_peak_rss_mb``,
kept small by generating bundles in a child process).
Runs alternate between the two tools, ``--repeat`` times each, and the medians are
reported with ratios ours/codex.
Workloads: the two large Codex fixtures, a generated bundle of at least 100,000 events
shaped as ~1,000 turns of ~100 events (tools, children, compactions), and a tenth of
that. Codex's time grows about quadratically with the events of such a rollout: it
takes 12 to 17 minutes on the big one (ours 8 to 17 s), so use --repeat-generated 1. Both
outputs are compared byte for byte. Prints JSON on stdout. Not run by CI.

    .venv/bin/python benchmarks/reduce.py [--repeat 3] [--repeat-generated 1] [--work DIR]
        [--only long_tools,many_turns,generated_100_turns]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TESTS_DIR = REPO / "tests"
"""Home of the test support package (the bundle generator lives in tests/support)."""
LARGE_FIXTURES = REPO / "tests" / "fixtures" / "codex-0.169.0-large"
OURS = REPO / ".venv" / "bin" / "otel-rollout"

GENERATED_SEED = 20261126
_SHAPE = {
    "steps_per_turn": 14,
    "tools_per_step": 3,
    "children": 3,
    "compact_above": 30,
    "final_chance": 0.1,
    "crash": False,
}
GENERATED = {
    "generated_1000_turns": {"turns": 860, **_SHAPE},
    "generated_100_turns": {"turns": 86, **_SHAPE},
}
"""Generated workloads: ~1,000 turns (root and children) of ~100 events, > 100,000 events;
and a tenth of it, which Codex reduces in seconds rather than many minutes."""
MIN_EVENTS = {"generated_1000_turns": 100_000}
"""Grown (more turns) until this many events, whatever the generator's current mix."""


def _codex() -> Path:
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "get-codex")], capture_output=True, text=True, check=True
    )
    return Path(done.stdout.strip())


GNU_TIME = Path("/usr/bin/time")
"""Measures a child forked from its own small process; without it, ``wait4`` is used."""


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    """Run ``argv`` to completion; return (wall seconds, peak RSS in bytes)."""
    with tempfile.NamedTemporaryFile(prefix="bench-rss-") as report:
        if GNU_TIME.exists():
            argv = [str(GNU_TIME), "-f", "%M", "-o", report.name, *argv]
        start = time.perf_counter()
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
        if process.stderr:
            process.stderr.close()
        if process.returncode != 0:
            raise RuntimeError(f"{argv} exited {process.returncode}: {stderr[-400:]}")
        if GNU_TIME.exists():
            return wall, int(Path(report.name).read_text().split()[-1]) * 1024
    return wall, usage.ru_maxrss * 1024  # Linux reports KiB


def _size(bundle: Path) -> tuple[int, int]:
    """(events, bytes of trace.jsonl and payloads)."""
    log = bundle / "trace.jsonl"
    events = sum(1 for line in log.read_bytes().splitlines() if line.strip())
    total = log.stat().st_size + sum(
        path.stat().st_size for path in (bundle / "payloads").iterdir() if path.is_file()
    )
    return events, total


_GENERATE = """
import json, sys
sys.path.insert(0, sys.argv[4])
from support.synthetic import SyntheticOptions, generate_bundle
bundle = generate_bundle(sys.argv[1], int(sys.argv[2]), SyntheticOptions(**json.loads(sys.argv[3])))
print(bundle)
"""


def _generated(work: Path, name: str) -> Path:
    """A generated workload, reused from ``work`` when already there.

    Generated in a child process: this process stays small, because a child's peak RSS
    starts from its parent's (fork, then exec, keeps the high-water mark).
    """
    root = work / name
    existing = sorted(root.glob("trace-*"))
    if existing and (root / "complete").exists():
        return existing[0]
    options = dict(GENERATED[name])
    while True:
        shutil.rmtree(root, ignore_errors=True)
        argv = [sys.executable, "-c", _GENERATE, str(root), str(GENERATED_SEED)]
        done = subprocess.run(
            [*argv, json.dumps(options), str(TESTS_DIR)], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"generating {name} failed: {done.stderr[-400:]}")
        bundle = Path(done.stdout.strip())
        events, _ = _size(bundle)
        if events >= MIN_EVENTS.get(name, 0):
            break
        # The generator's mix changed: grow the rollout until it is big enough.
        options["turns"] = int(options["turns"] * 1.1) + 1
    (root / "complete").write_text(json.dumps(options))
    return bundle


def _digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks (outputs reach 100 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _measure(name: str, bundle: Path, codex: Path, repeat: int, work: Path) -> dict[str, Any]:
    events, size = _size(bundle)
    home = work / "codex-home"
    home.mkdir(exist_ok=True)
    env = {**os.environ, "CODEX_HOME": str(home)}
    ours_out, codex_out = work / f"{name}.ours.json", work / f"{name}.codex.json"
    commands = {
        "ours": [str(OURS), "reduce", str(bundle), "-o", str(ours_out)],
        "codex": [str(codex), "debug", "trace-reduce", str(bundle), "-o", str(codex_out)],
    }
    samples: dict[str, list[tuple[float, int]]] = {"ours": [], "codex": []}
    for _ in range(repeat):
        for tool, argv in commands.items():
            samples[tool].append(_run(argv, env))
    result: dict[str, Any] = {
        "workload": name,
        "events": events,
        "bytes": size,
        "repeat": repeat,
        "identical_output": _digest(ours_out) == _digest(codex_out),
        "rss_from": str(GNU_TIME) if GNU_TIME.exists() else "wait4",
        "launcher_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for tool, runs in samples.items():
        wall = statistics.median(run[0] for run in runs)
        rss = statistics.median(run[1] for run in runs)
        result[tool] = {
            "wall_s": round(wall, 4),
            "wall_s_min": round(min(run[0] for run in runs), 4),
            "events_per_s": round(events / wall),
            "mb_per_s": round(size / wall / 1e6, 2),
            "peak_rss_mb": round(rss / 2**20, 1),
        }
    result["ratio_ours_over_codex"] = {
        "wall": round(result["ours"]["wall_s"] / result["codex"]["wall_s"], 2),
        "peak_rss": round(result["ours"]["peak_rss_mb"] / result["codex"]["peak_rss_mb"], 2),
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool and workload")
    parser.add_argument(
        "--repeat-generated",
        type=int,
        help="runs per tool on generated_1000_turns (default: --repeat; Codex takes 12+ min)",
    )
    parser.add_argument("--work", type=Path, help="keep outputs and the generated bundle here")
    parser.add_argument(
        "--only",
        help="comma-separated workload names (long_tools, many_turns, "
        + ", ".join(GENERATED)
        + ")",
    )
    args = parser.parse_args()
    if not OURS.exists():
        sys.exit(f"{OURS} is missing: install the package first (bash scripts/test)")
    codex = _codex()
    temporary = None
    if args.work is None:
        temporary = tempfile.TemporaryDirectory(prefix="bench-reduce-")
        work = Path(temporary.name)
    else:
        work = args.work
        work.mkdir(parents=True, exist_ok=True)
    try:
        workloads = [
            (fixture.name, next(fixture.glob("trace-*")))
            for fixture in sorted(LARGE_FIXTURES.iterdir())
            if fixture.is_dir()
        ]
        for name in GENERATED:
            if args.only and name not in args.only.split(","):
                continue
            started = time.perf_counter()
            bundle = _generated(work, name)
            print(f"{name} ready in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            workloads.append((name, bundle))
        if args.only:
            workloads = [(name, path) for name, path in workloads if name in args.only.split(",")]
        results = [
            _measure(
                name,
                path,
                codex,
                args.repeat_generated or args.repeat
                if name == "generated_1000_turns"
                else args.repeat,
                work,
            )
            for name, path in workloads
        ]
    finally:
        if temporary is not None:
            temporary.cleanup()
    report = {
        "benchmark": "reduce",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "codex": str(codex),
        "results": results,
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
