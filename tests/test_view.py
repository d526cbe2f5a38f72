"""``otel-rollout view``: the page's data, the file, and the page in a real browser (Chromium)."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from otel_rollout._bundle._reader import Bundle
from otel_rollout._reduce import reduce_bundle
from otel_rollout._view._facts import read_facts
from otel_rollout._view._page import page_data, render_html
from otel_rollout._view._payloads import POOL_KEY, pack_payloads
from otel_rollout.cli import main
from support.spans import foreign_bundle

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

FIXTURES = Path(__file__).parent / "fixtures"
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",  # CI runs as root
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def fixture_bundle(version: str, scenario: str) -> Path:
    [bundle] = (FIXTURES / f"codex-{version}" / scenario).glob("trace-*")
    return bundle


def copy_bundle(version: str, scenario: str, tmp_path: Path) -> Path:
    source = fixture_bundle(version, scenario)
    target = tmp_path / source.name
    shutil.copytree(source, target)
    (target / "state.json").unlink(missing_ok=True)
    return target


# -- the file -----------------------------------------------------------------------------


def test_view_writes_a_private_page_named_after_the_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = fixture_bundle("0.169.0", "multi_agent_v2_spawn")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "umask", os.umask)  # keep whatever umask the run has
    stale = tmp_path / f"rollout-{reduce_bundle(bundle).trace_id}.html"
    stale.write_text("old")
    stale.chmod(0o644)
    assert main(["view", str(bundle)]) == 0
    assert capsys.readouterr().out.strip() == stale.name
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600
    html = stale.read_text()
    assert html.startswith("<!doctype html>") and "old" != html
    assert "default-src 'none'" in html  # the page may not make any request
    assert "<script src" not in html and "<link" not in html


def test_view_output_option_and_invalid_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = copy_bundle("0.171.0", "plain", tmp_path)
    target = tmp_path / "out" / "page.html"
    target.parent.mkdir()
    assert main(["view", str(bundle), "-o", str(target)]) == 0
    assert target.is_file() and stat.S_IMODE(target.stat().st_mode) == 0o600
    capsys.readouterr()
    log = bundle / "trace.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:2] + lines[3:]))
    assert main(["view", str(bundle), "-o", str(target)]) == 1
    assert ":3: " in capsys.readouterr().err
    assert main(["view", str(tmp_path / "missing")]) == 2


def test_page_data_counts_equal_the_reduced_trace() -> None:
    bundle = fixture_bundle("0.169.0", "multi_agent_v2_spawn")
    trace = reduce_bundle(bundle)
    data = page_data(trace, read_facts(Bundle(bundle), trace))
    counts = data["rollout"]["counts"]
    assert counts["turns"] == len(trace.codex_turns) == 2
    assert counts["inference_calls"] == len(trace.inference_calls) == 4
    assert counts["tool_calls"] == len(trace.tool_calls) == 2
    assert sum(t["counts"]["turns"] for t in data["threads"]) == 2
    [spawn] = [e for e in data["edges"] if e["kind"] == "spawn_agent"]
    assert (spawn["from"], spawn["to"]) == (data["threads"][0]["id"], data["threads"][1]["id"])


def test_script_blocks_cannot_be_closed_by_recorded_text(tmp_path: Path) -> None:
    bundle = copy_bundle("0.169.0", "plain", tmp_path)
    for payload in (bundle / "payloads").iterdir():
        text = payload.read_text()
        payload.write_text(text.replace("Say", "</script><script>alert(1)</script>Say"))
    trace = reduce_bundle(bundle)
    html = render_html(Bundle(bundle), trace).decode()
    assert html.count("</script>") == 3  # the two JSON blocks and the code
    assert "alert(1)" in html  # kept, as data


def test_repeated_request_items_are_stored_once() -> None:
    bundle = fixture_bundle("0.169.0-large", "long_tools")
    trace = reduce_bundle(bundle)
    packed = pack_payloads(Bundle(bundle), trace.raw_payloads)
    request = packed.bodies[
        trace.inference_calls[next(iter(trace.inference_calls))].raw_request_payload_id
    ]
    assert POOL_KEY in request["input"]
    assert len(packed.pool) < 3000
    assert not packed.problems


# -- in Chromium ------------------------------------------------------------------------

BROWSER_CASES = {
    "multi_agent_v2_spawn@0.169.0": ("0.169.0", "multi_agent_v2_spawn"),
    "multi_agent_v2_spawn@0.171.0": ("0.171.0", "multi_agent_v2_spawn"),
    "compact_remote_manual@0.169.0": ("0.169.0", "compact_remote_manual"),
    "compact_remote_manual@0.171.0": ("0.171.0", "compact_remote_manual"),
    "inference_retry@0.169.0": ("0.169.0", "inference_retry"),
    "inference_retry@0.171.0": ("0.171.0", "inference_retry"),
    "code_mode_cell@0.169.0": ("0.169.0", "code_mode_cell"),
    "code_mode_cell@0.171.0": ("0.171.0", "code_mode_cell"),
    "mcp_tool_call@0.171.0": ("0.171.0", "mcp_tool_call"),
    "exporter_failure": ("", "exporter"),
}


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Loaded:
    """A page opened from disk, with what it logged and requested."""

    def __init__(self, browser: Browser, html: Path) -> None:
        self.url = html.resolve().as_uri()
        self.page: Page = browser.new_page(viewport={"width": 1440, "height": 900})
        self.problems: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console",
            lambda m: (
                self.problems.append(f"{m.type}: {m.text}")
                if m.type in ("error", "warning")
                else None
            ),
        )
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.url)
        self.page.wait_for_selector("body[data-ready=true]", timeout=10_000)

    def texts(self, selector: str) -> list[str]:
        return [t.strip() for t in self.page.locator(selector).all_text_contents()]

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _bundle_for(case: str, tmp_path: Path) -> Path:
    version, scenario = BROWSER_CASES[case]
    if scenario == "exporter":
        return foreign_bundle(tmp_path / "traces")
    return fixture_bundle(version, scenario)


@pytest.mark.browser
@pytest.mark.parametrize("case", sorted(BROWSER_CASES))
def test_the_page_shows_the_rollout(case: str, browser: Browser, tmp_path: Path) -> None:
    bundle = _bundle_for(case, tmp_path)
    trace = reduce_bundle(bundle)
    html = tmp_path / "page.html"
    assert main(["view", str(bundle), "-o", str(html)]) == 0
    loaded = Loaded(browser, html)
    page = loaded.page
    try:
        # the counts, as reduce counts them
        counts = {
            key: int(page.get_attribute(f'[data-count="{key}"]', "data-value") or -1)
            for key in ("threads", "turns", "inference_calls", "tool_calls", "code_cells")
        }
        assert counts == {
            "threads": len(trace.threads),
            "turns": len(trace.codex_turns),
            "inference_calls": len(trace.inference_calls),
            "tool_calls": len(trace.tool_calls),
            "code_cells": len(trace.code_cells),
        }
        # every thread by name in the graph, each with its own counts
        names = loaded.texts("#graph .node text.name")
        for thread in trace.threads.values():
            assert any(name.startswith(thread.agent_path) for name in names), (thread, names)
            page.click(f'#graph .node[data-thread="{thread.thread_id}"]')
            mine = [o for o in trace.inference_calls.values() if o.thread_id == thread.thread_id]
            assert page.locator("#timeline .row[data-kind=inference]").count() == len(mine)
            rows = page.locator("#timeline .row[data-kind=turn]").count()
            assert rows == sum(
                1 for t in trace.codex_turns.values() if t.thread_id == thread.thread_id
            )
        page.click(f'#graph .node[data-thread="{trace.root_thread_id}"]')
        # a parent-child edge
        for thread in trace.threads.values():
            parent = getattr(thread.origin, "parent_thread_id", None)
            if parent is not None:
                edge = f'#graph .edge[data-from="{parent}"][data-to="{thread.thread_id}"]'
                assert page.locator(edge).count() >= 1
                assert page.locator(f'{edge}[data-kind="spawn_agent"]').count() == 1
        # a failure reason, where something failed
        failed = [c for c in trace.inference_calls.values() if c.execution.status.value == "failed"]
        if failed:
            page.click(f'#graph .node[data-thread="{failed[0].thread_id}"]')
            reasons = loaded.texts("#timeline .row .reason")
            assert reasons and all(reasons), reasons
            page.click(f'#timeline .row[data-id="{failed[0].inference_call_id}"]')
            assert page.locator("#details [data-role=error]").inner_text().strip()
            loaded.shot(f"{case}-failure")
            page.click(f'#graph .node[data-thread="{trace.root_thread_id}"]')
        # clicking a tool call shows its arguments, and jumps to its inference and back
        tools = [
            t for t in trace.tool_calls.values() if t.requester.__struct_config__.tag == "model"
        ]
        if tools:
            tool = tools[0]
            page.click(f'#graph .node[data-thread="{tool.thread_id}"]')
            page.click(f'#timeline .row[data-id="{tool.tool_call_id}"]')
            arguments = page.locator("#details [data-role=arguments]").inner_text()
            assert arguments.strip() and arguments.strip() != "(none recorded)"
            loaded.shot(f"{case}-tool")
            jump = page.locator("#details [data-jump=inference]")
            if jump.count():
                jump.first.click()
                selected = page.locator("#timeline .row.selected")
                assert selected.get_attribute("data-kind") == "inference"
                page.locator("#details [data-jump=tool]").first.click()
                assert page.locator("#timeline .row.selected").get_attribute("data-id") in {
                    t.tool_call_id for t in trace.tool_calls.values()
                }
            # a raw payload on demand
            page.locator("#details .payload > button").first.click()
            raw = page.locator("#details .payload pre").first.inner_text()
            assert raw.startswith("{") or raw.startswith("(")
        # the conversation
        page.click('.tabs button[data-tab="conversation"]')
        assert page.locator("#conversation .msg").count() > 0
        loaded.shot(case)
        assert not loaded.problems
        assert loaded.requests == [loaded.url]  # nothing but the page itself
    finally:
        page.close()


@pytest.mark.browser
def test_conversation_jumps_and_search(browser: Browser, tmp_path: Path) -> None:
    bundle = fixture_bundle("0.169.0", "tool_call")
    html = tmp_path / "page.html"
    assert main(["view", str(bundle), "-o", str(html)]) == 0
    loaded = Loaded(browser, html)
    page = loaded.page
    try:
        page.click('.tabs button[data-tab="conversation"]')
        call = page.locator("#conversation .msg.kind-function_call").first
        call.locator("[data-jump=tool]").click()
        assert page.locator("#timeline .row.selected").get_attribute("data-kind") == "tool"
        assert "echo hi" in page.locator("#details [data-role=arguments]").inner_text()
        page.locator("#details [data-jump=conversation]").click()
        assert page.locator("#conversation").is_visible()
        page.fill("#search", "tool output seen")
        page.wait_for_selector("#results .hit")
        page.locator("#results .hit").first.click()
        assert "tool output seen" in page.locator("#conversation .msg.flash").inner_text()
        assert not loaded.problems
        assert loaded.requests == [loaded.url]
    finally:
        page.close()


@pytest.mark.browser
@pytest.mark.slow
def test_the_largest_bundle_renders_quickly(browser: Browser, tmp_path: Path) -> None:
    bundle = fixture_bundle("0.169.0-large", "long_tools")
    html = tmp_path / "page.html"
    assert main(["view", str(bundle), "-o", str(html)]) == 0
    on_disk = sum(
        p.stat().st_size for p in bundle.rglob("*") if p.is_file() and p.name != "state.json"
    )
    assert html.stat().st_size < on_disk
    loaded = Loaded(browser, html)
    page = loaded.page
    try:
        rendered: Any = page.evaluate(
            "performance.getEntriesByName('rollout-rendered')[0].startTime"
        )
        assert rendered < 3000
        assert page.locator("#timeline .row").count() == 1 + 101 + 400
        page.click('.tabs button[data-tab="conversation"]')
        assert 0 < page.locator("#conversation .msg").count() <= 2 * 120
        assert not loaded.problems
    finally:
        page.close()
