"""Benchmark: ``otel-rollout view`` on the largest fixture: page size and time to first render.

For each workload: the bundle's bytes on disk (manifest, event log, payloads; not a
``state.json``), the page's bytes, the time to write the page (a fresh process), and in
headless Chromium (Debian's ``/usr/bin/chromium`` through Playwright) the time from
navigation start to the page's ``rollout-rendered`` mark (data parsed, graph and the root
thread's timeline drawn), and to the ``load`` event. Medians of ``--repeat`` fresh pages.
Writes benchmarks/results/view.json and prints it. Not run by CI.

    .venv/bin/python benchmarks/view.py [--repeat 5] [--only long_tools,many_turns]
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
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LARGE_FIXTURES = REPO / "tests" / "fixtures" / "codex-0.169.0-large"
RESULTS = REPO / "benchmarks" / "results" / "view.json"
CHROMIUM = Path(os.environ.get("OTEL_ROLLOUT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def bundle_bytes(bundle: Path) -> int:
    """Bytes of a bundle on disk, without a ``state.json`` left beside it."""
    return sum(
        p.stat().st_size for p in bundle.rglob("*") if p.is_file() and p.name != "state.json"
    )


def write_page(bundle: Path, output: Path) -> float:
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "otel_rollout", "view", str(bundle), "-o", str(output)],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    return time.monotonic() - started


def render_times(page_path: Path, repeat: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    rendered: list[float] = []
    loaded: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for _ in range(repeat):
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                page.goto(page_path.resolve().as_uri())
                page.wait_for_selector("body[data-ready=true]", timeout=30_000)
                mark = page.evaluate(
                    "performance.getEntriesByName('rollout-rendered')[0].startTime"
                )
                load = page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
                rendered.append(float(mark))
                loaded.append(float(load))
                page.close()
        finally:
            browser.close()
    return {
        "first_render_ms": round(statistics.median(rendered), 1),
        "first_render_ms_max": round(max(rendered), 1),
        "load_event_ms": round(statistics.median(loaded), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", default="long_tools,many_turns")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as work:
        for name in args.only.split(","):
            [bundle] = (LARGE_FIXTURES / name).glob("trace-*")
            page = Path(work) / f"{name}.html"
            write_s = write_page(bundle, page)
            on_disk = bundle_bytes(bundle)
            html = page.stat().st_size
            results.append(
                {
                    "workload": name,
                    "bundle_bytes": on_disk,
                    "html_bytes": html,
                    "html_over_bundle": round(html / on_disk, 3),
                    "write_s": round(write_s, 3),
                    "repeat": args.repeat,
                    **render_times(page, args.repeat),
                }
            )
    chromium = subprocess.run([str(CHROMIUM), "--version"], capture_output=True, text=True)
    report = {
        "benchmark": "view",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "chromium": chromium.stdout.strip(),
        "results": results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
