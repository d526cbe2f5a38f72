"""Benchmark: command start-up, as ratios measured in one run (paired, interleaved runs).

Budgets (issue 14): ``otel-rollout reduce`` of a small bundle at most 4x Codex's
``debug trace-reduce`` of it; ``otel-rollout --help`` at most 4x and ``otel-rollout
validate`` of a small bundle at most 5x ``python -c pass``. Each round runs every
command once, in one order; the medians (and ratios of medians) are reported, with
each command's CPU (user + system, its children included), after one warm-up round
that compiles and caches the byte code (``PYTHONDONTWRITEBYTECODE`` is dropped for the
commands, as an installed package has its ``.pyc``). The small bundle is the
``plain`` fixture of each schema, reduced by the Codex version of its schema. Not run
by CI.

    python benchmarks/startup.py [--rounds 21]  > benchmarks/results/startup.json

``otel-rollout`` is the console script beside this Python if there is one, else
``python -m otel_rollout`` with this tree's ``src`` first on the path.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from support.codex import find_codex  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures"
BUDGETS = {"reduce_2": 4.0, "reduce_3": 4.0, "help": 4.0, "validate_2": 5.0, "validate_3": 5.0}
"""Command -> most it may take, as a multiple of its baseline."""


def _codex(version: str) -> str:
    return str(find_codex(version))


def _ours() -> list[str]:
    script = Path(sys.executable).parent / "otel-rollout"
    return [str(script)] if script.exists() else [sys.executable, "-m", "otel_rollout"]


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run to completion."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if process.stderr:
        process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{argv} failed: {stderr[-400:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    bundles = {
        schema: next((FIXTURES / version / "plain").glob("trace-*"))
        for schema, version in ((2, "codex-0.169.0"), (3, "codex-0.171.0"))
    }
    codex = {2: _codex("0.169.0"), 3: _codex("0.171.0")}
    ours = _ours()
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as work:
        home = Path(work) / "codex-home"
        home.mkdir()
        env = {
            **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
            "CODEX_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(
                [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
            ),
        }
        commands: dict[str, list[str]] = {
            "python_pass": [sys.executable, "-c", "pass"],
            # the floor: the third-party modules every command needs, imported alone
            "import_click_msgspec": [sys.executable, "-c", "import click, msgspec"],
            "help": [*ours, "--help"],
        }
        for schema, bundle in bundles.items():
            out = str(Path(work) / f"s{schema}")
            commands[f"codex_reduce_{schema}"] = [
                codex[schema], "debug", "trace-reduce", str(bundle), "-o", f"{out}.codex.json"
            ]  # fmt: skip
            commands[f"reduce_{schema}"] = [*ours, "reduce", str(bundle), "-o", f"{out}.json"]
            commands[f"validate_{schema}"] = [*ours, "validate", str(bundle)]
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for argv in commands.values():  # warm-up: byte code compiled and cached, as installed
            _run(argv, env)
        for _ in range(args.rounds):
            for name, argv in commands.items():
                samples[name].append(_run(argv, env))
    medians = {
        name: {
            "wall_s": round(statistics.median(run[0] for run in runs), 4),
            "cpu_s": round(statistics.median(run[1] for run in runs), 4),
        }
        for name, runs in samples.items()
    }
    baseline = {
        "help": "python_pass",
        "validate_2": "python_pass",
        "validate_3": "python_pass",
        "reduce_2": "codex_reduce_2",
        "reduce_3": "codex_reduce_3",
    }
    ratios: dict[str, Any] = {
        "floor_import_click_msgspec": {
            "over": "python_pass",
            "wall_ratio": round(
                medians["import_click_msgspec"]["wall_s"] / medians["python_pass"]["wall_s"], 2
            ),
        }
    }
    for name, base in baseline.items():
        ratio = medians[name]["wall_s"] / medians[base]["wall_s"]
        ratios[name] = {
            "over": base,
            "wall_ratio": round(ratio, 2),
            "budget": BUDGETS[name],
            "met": ratio <= BUDGETS[name],
        }
    report = {
        "benchmark": "startup",
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
        "rounds": args.rounds,
        "ours": ours,
        "medians": medians,
        "ratios": ratios,
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
