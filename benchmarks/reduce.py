"""Benchmark: ``otel-rollout reduce`` beside ``codex debug trace-reduce`` on the same bundles.

Each run is a fresh process, timed with a monotonic clock. Its peak RSS comes from GNU
``/usr/bin/time`` (``%M``), which forks it from a small process; without that tool, from
``wait4``, where a child's peak starts at this launcher's RSS (``launcher_peak_rss_mb``,
kept small by generating bundles in a child process).
Runs alternate between the two tools, ``--repeat`` times each, and the medians are
reported with ratios ours/codex; CPU is user + system time of the process and its children.
Workloads: the two large Codex fixtures, and generated bundles of both schemas shaped as
turns of ~100 events (tools, children, compactions): ~10,000 and ~100,000 events, and
~1,000,000 with ``--with-1m`` (minutes, gigabytes). Codex (0.169.0 for schema 2,
0.171.0 for schema 3) runs only up to ``--codex-max-events`` (default 20,000): its time
grows about quadratically with the events of such a rollout (12 to 17 minutes at
100,000). Both outputs are compared byte for byte where both ran. Each result has
``cpu_us_per_event`` and ``peak_rss_over_state`` (peak RSS / bytes of the state.json
written); ``scaling`` compares CPU per event of the largest generated bundle with the
smallest's, per schema. Prints JSON on stdout. Not run by CI.

    python benchmarks/reduce.py [--repeat 3] [--repeat-generated 1] [--work DIR]
        [--only long_tools,many_turns,generated_10k_s2,...] [--with-1m]
        [--codex-max-events N]

``otel-rollout`` is the console script beside this Python if there is one (run with this
tree's ``src`` first on the path), else ``python -m otel_rollout``.
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
_SCRIPT = Path(sys.executable).parent / "otel-rollout"
OURS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "otel_rollout"]

sys.path.insert(0, str(TESTS_DIR))
from support.codex import find_codex  # noqa: E402

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
    f"generated_{size}_s{schema}": {"turns": turns, "schema_version": schema, **_SHAPE}
    for size, turns in (("10k", 86), ("100k", 860), ("1m", 8600))
    for schema in (2, 3)
}
"""Generated workloads: turns (root and children) of ~100 events, ~10,000, ~100,000 and
~1,000,000 events, in both schemas."""
LARGE_ONLY = ("generated_1m_s2", "generated_1m_s3")
"""Only with --with-1m."""
CODEX_VERSIONS = {2: "0.169.0", 3: "0.171.0"}


def _codex(schema: int) -> Path:
    return find_codex(CODEX_VERSIONS[schema])


GNU_TIME = Path("/usr/bin/time")
"""Measures a child forked from its own small process; without it, ``wait4`` is used."""


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, int, float]:
    """Run ``argv`` to completion; return (wall seconds, peak RSS in bytes, CPU seconds)."""
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
        cpu = usage.ru_utime + usage.ru_stime  # GNU time waited for its child: included
        if GNU_TIME.exists():
            return wall, int(Path(report.name).read_text().split()[-1]) * 1024, cpu
    return wall, usage.ru_maxrss * 1024, cpu  # Linux reports KiB


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
    shutil.rmtree(root, ignore_errors=True)
    argv = [sys.executable, "-c", _GENERATE, str(root), str(GENERATED_SEED)]
    done = subprocess.run(
        [*argv, json.dumps(options), str(TESTS_DIR)], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"generating {name} failed: {done.stderr[-400:]}")
    bundle = Path(done.stdout.strip())
    (root / "complete").write_text(json.dumps(options))
    return bundle


def _digest(path: Path) -> str:
    """SHA-256 of a file, read in chunks (outputs reach 100 MB)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _schema(bundle: Path) -> int:
    schema: int = json.loads((bundle / "manifest.json").read_bytes())["schema_version"]
    return schema


def _measure(
    name: str, bundle: Path, repeat: int, work: Path, codex_max_events: int
) -> dict[str, Any]:
    events, size = _size(bundle)
    schema = _schema(bundle)
    home = work / "codex-home"
    home.mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
        "CODEX_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(
            [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    ours_out, codex_out = work / f"{name}.ours.json", work / f"{name}.codex.json"
    commands = {"ours": [*OURS, "reduce", str(bundle), "-o", str(ours_out)]}
    if events <= codex_max_events:
        codex = _codex(schema)
        commands["codex"] = [
            str(codex), "debug", "trace-reduce", str(bundle), "-o", str(codex_out)
        ]  # fmt: skip
    samples: dict[str, list[tuple[float, int, float]]] = {tool: [] for tool in commands}
    for _ in range(repeat):
        for tool, argv in commands.items():
            samples[tool].append(_run(argv, env))
    state_bytes = ours_out.stat().st_size
    result: dict[str, Any] = {
        "workload": name,
        "schema": schema,
        "events": events,
        "bytes": size,
        "state_json_bytes": state_bytes,
        "repeat": repeat,
        "identical_output": _digest(ours_out) == _digest(codex_out)
        if "codex" in commands
        else None,
        "rss_from": str(GNU_TIME) if GNU_TIME.exists() else "wait4",
        "launcher_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    for tool, runs in samples.items():
        wall = statistics.median(run[0] for run in runs)
        rss = statistics.median(run[1] for run in runs)
        cpu = statistics.median(run[2] for run in runs)
        result[tool] = {
            "wall_s": round(wall, 4),
            "wall_s_min": round(min(run[0] for run in runs), 4),
            "cpu_s": round(cpu, 4),
            "cpu_us_per_event": round(cpu / events * 1e6, 1),
            "events_per_s": round(events / wall),
            "mb_per_s": round(size / wall / 1e6, 2),
            "peak_rss_mb": round(rss / 2**20, 1),
            "peak_rss_over_state": round(rss / state_bytes, 2),
        }
    if "codex" in samples:
        result["ratio_ours_over_codex"] = {
            "wall": round(result["ours"]["wall_s"] / result["codex"]["wall_s"], 2),
            "cpu": round(result["ours"]["cpu_s"] / max(result["codex"]["cpu_s"], 1e-6), 2),
            "peak_rss": round(result["ours"]["peak_rss_mb"] / result["codex"]["peak_rss_mb"], 2),
        }
    return result


def _scaling(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Per schema: CPU per event of the largest generated bundle over the smallest's."""
    scaling: dict[str, Any] = {}
    for schema in (2, 3):
        runs = sorted(
            (
                r
                for r in results
                if r["workload"].startswith("generated_") and r["schema"] == schema
            ),
            key=lambda run: run["events"],
        )
        if len(runs) >= 2:
            small, large = runs[0], runs[-1]
            scaling[f"schema_{schema}"] = {
                "events": [small["events"], large["events"]],
                "cpu_us_per_event": [
                    small["ours"]["cpu_us_per_event"],
                    large["ours"]["cpu_us_per_event"],
                ],
                "ratio": round(
                    large["ours"]["cpu_us_per_event"] / small["ours"]["cpu_us_per_event"], 2
                ),
            }
    return scaling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per tool and workload")
    parser.add_argument(
        "--repeat-generated",
        type=int,
        help="runs per tool on the generated bundles of 100k events and more (default: --repeat)",
    )
    parser.add_argument("--with-1m", action="store_true", help="add the 1M-event bundles")
    parser.add_argument(
        "--codex-max-events",
        type=int,
        default=20_000,
        help="run Codex only on bundles of at most this many events (it is quadratic)",
    )
    parser.add_argument("--work", type=Path, help="keep outputs and the generated bundle here")
    parser.add_argument(
        "--only",
        help="comma-separated workload names (long_tools, many_turns, "
        + ", ".join(GENERATED)
        + ")",
    )
    args = parser.parse_args()
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
            if name in LARGE_ONLY and not args.with_1m:
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
                args.repeat_generated or args.repeat
                if name.startswith(("generated_100k", "generated_1m"))
                else args.repeat,
                work,
                args.codex_max_events,
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
        "codex": {schema: str(_codex(schema)) for schema in CODEX_VERSIONS},
        "load_average_at_end": os.getloadavg(),
        "results": results,
        "scaling": _scaling(results),
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
