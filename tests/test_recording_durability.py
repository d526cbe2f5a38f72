"""Durability and concurrency: kill -9, exit, fork, full queues, many threads and tasks."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

import otel_rollout
from otel_rollout import (
    ThreadStartedTraceMetadata,
    ThreadTraceContext,
    current_turn,
    reduce_bundle,
    validate_bundle,
    write_state,
)
from otel_rollout import semconv as sc
from otel_rollout._bundle._background import BundleSink, PendingEvent
from otel_rollout._bundle._shards import decompress_shard, iter_records
from otel_rollout._otel._exporter import RolloutBundleSpanExporter
from otel_rollout._reduce._model import RecordingStatus
from support.codex import codex_reduce
from support.recording import Pipeline, attrs, event_types, pipeline_fixture, read_events

POLL_TIMEOUT_S = 20.0


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch)


@pytest.fixture(params=[2, 3], ids=["schema2", "schema3"])
def both_schemas(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch, schema_version=request.param)


def user(text: str) -> dict[str, object]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


RECORDER_SCRIPT = textwrap.dedent(
    """
    import sys
    import otel_rollout
    from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext

    otel_rollout.configure(trace_root=sys.argv[1], schema_version=int(sys.argv[3]))
    turns = int(sys.argv[2])
    thread = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata(thread_id="root"))
    print(thread.bundle_dir, flush=True)
    i = 0
    while turns < 0 or i < turns:
        i += 1
        with thread.turn(f"turn-{i}") as turn:
            request = {"input": [{"type": "message", "role": "user",
                                  "content": [{"type": "input_text", "text": "q" * (i % 3000)}]}]}
            with turn.inference("m", "p").attempt(request) as attempt:
                attempt.record_completed(f"resp-{i}", [{"type": "message", "role": "assistant",
                    "content": [{"type": "output_text", "text": "a" * (i % 5000)}]}])
            with turn.tool_call("lookup", {"i": i}, tool_call_id=f"call-{i}") as tool:
                tool.record_completed("ok")
        print(i, flush=True)
    """
)


def _spawn_recorder(root: Path, turns: int, schema_version: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", RECORDER_SCRIPT, str(root), str(turns), str(schema_version)],
        stdout=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + POLL_TIMEOUT_S
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _turn_ended_on_disk(bundle: Path) -> bool:
    log = bundle / "trace.jsonl"
    return log.exists() and b'"codex_turn_ended"' in log.read_bytes()


def _strip_torn_tail(bundle: Path) -> int:
    log = bundle / "trace.jsonl"
    data = log.read_bytes()
    keep = data.rfind(b"\n") + 1
    log.write_bytes(data[:keep])
    return len(data) - keep


SCHEMAS = pytest.mark.parametrize("schema_version", [2, 3], ids=["schema2", "schema3"])


@pytest.mark.slow
@SCHEMAS
def test_sigkill_at_random_points_leaves_a_valid_bundle(
    tmp_path: Path, codex_for: Callable[[int], Path], schema_version: int
) -> None:
    """Schema 3 too: every shard on disk is one whole zstd frame, every event's shard is
    there, and Codex 0.171.0 reduces the bundle (``unclosed``) to our bytes."""
    codex = codex_for(schema_version)
    rng = random.Random(1234)
    for run in range(5):
        root = tmp_path / f"run-{run}"
        process = _spawn_recorder(root, -1, schema_version)
        assert process.stdout is not None
        bundle = Path(process.stdout.readline().strip())
        if run == 0:
            # Events reach the disk while the process lives (no exit, no flush call).
            process.stdout.readline()
            _wait_for(functools.partial(_turn_ended_on_disk, bundle), "turn 1 on disk")
        else:
            time.sleep(rng.uniform(0.0, 0.4))
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        report = validate_bundle(bundle)
        assert report.ok, (run, report.problems)
        assert len(report.warnings) <= 1
        assert all("torn last line" in str(warning) for warning in report.warnings)
        # every payload file or shard is whole or absent, referenced or not (only a
        # temporary may be cut)
        for payload in (bundle / "payloads").glob("*.json"):
            msgspec.json.decode(payload.read_bytes())
        for shard in (bundle / "payloads").glob("*.zst"):
            assert list(iter_records(decompress_shard(shard.read_bytes(), 1 << 30)))
        _strip_torn_tail(bundle)
        assert validate_bundle(bundle).ok
        types = event_types(bundle)
        # killed right after creation, nothing may have reached the disk yet
        assert not types or types[0] == "rollout_started"
        if run == 0:
            assert "codex_turn_ended" in types
        if not types:
            continue  # nothing to reduce
        theirs = tmp_path / f"state-{run}.json"
        done = codex_reduce(codex, bundle, theirs)
        assert done.returncode == 0, (run, done.stderr)
        trace = reduce_bundle(bundle)
        assert write_state(trace, tmp_path / "ours.json").read_bytes() == theirs.read_bytes()
        if schema_version == 3:
            assert trace.recording_status is RecordingStatus.UNCLOSED


@SCHEMAS
def test_interpreter_exit_flushes_everything(tmp_path: Path, schema_version: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", RECORDER_SCRIPT, str(tmp_path), "150", str(schema_version)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    bundle = Path(done.stdout.splitlines()[0])
    types = event_types(bundle)
    assert types.count("codex_turn_ended") == 150
    assert types.count("tool_call_ended") == 150
    assert validate_bundle(bundle).ok


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    import otel_rollout
    from otel_rollout import ThreadStartedTraceMetadata, ThreadTraceContext
    from otel_rollout._live._runtime import _shared

    otel_rollout.configure(trace_root=sys.argv[1])
    root = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata(thread_id="parent"))
    root.record_turn_started("before-fork")
    pid = os.fork()
    if pid == 0:
        root.record_turn_started("in-forked-child")  # must not reach the parent's bundle
        meta = ThreadStartedTraceMetadata(thread_id="forked")
        own = ThreadTraceContext.start_root_or_disabled(meta)
        own.record_turn_started("own-turn")
        own.record_ended()
        ok = _shared().force_flush()
        os._exit(0 if ok and own.is_enabled() else 3)
    _, status = os.waitpid(pid, 0)
    root.record_turn_ended("before-fork")
    root.record_ended()
    print(os.waitstatus_to_exitcode(status))
    """
)


def test_a_forked_child_does_not_write_into_its_parents_bundle(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert done.stdout.strip() == "0", done.stderr
    [parent] = tmp_path.glob("trace-*-parent")
    [forked] = tmp_path.glob("trace-*-forked")
    assert validate_bundle(parent).ok and validate_bundle(forked).ok
    assert "in-forked-child" not in (parent / "trace.jsonl").read_text()
    assert event_types(parent)[-1] == "recording_completed"
    assert "own-turn" in (forked / "trace.jsonl").read_text()


@SCHEMAS
def test_a_full_queue_waits_then_counts_the_loss_and_keeps_a_valid_prefix(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    schema_version: int,
) -> None:
    gate = threading.Event()
    original = BundleSink.write

    def slow_write(self: BundleSink, item: PendingEvent) -> None:
        gate.wait(POLL_TIMEOUT_S)
        original(self, item)

    monkeypatch.setattr(BundleSink, "write", slow_write)
    exporter = RolloutBundleSpanExporter(max_queue_events=4, max_queue_wait_s=0.01)
    otel_rollout.configure(trace_root=tmp_path, exporter=exporter, schema_version=schema_version)
    thread = ThreadTraceContext.start_root_or_disabled()
    with caplog.at_level(logging.WARNING):
        for i in range(40):
            thread.record_turn_started(f"turn-{i}")
    gate.set()
    thread.record_ended()
    exporter.shutdown()
    assert exporter.lost_events >= 1
    assert "stayed full" in caplog.text
    [bundle] = tmp_path.glob("trace-*")
    assert validate_bundle(bundle).ok
    seqs = [event["seq"] for event in read_events(bundle)]
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) < 42
    assert "recording_completed" not in event_types(bundle)


def test_eight_threads_and_fifty_tasks_record_at_once(
    both_schemas: Pipeline, codex_for: Callable[[int], Path], tmp_path: Path
) -> None:
    pipeline = both_schemas
    turns_per_thread = 10
    root = ThreadTraceContext.start_root_or_disabled(ThreadStartedTraceMetadata(thread_id="root"))
    children = [
        root.start_child_thread_trace_or_disabled(
            ThreadStartedTraceMetadata(thread_id=f"child-{n}", agent_path=f"/root/worker{n}")
        )
        for n in range(8)
    ]
    barrier = threading.Barrier(9)

    def work(n: int) -> None:
        child = children[n]
        barrier.wait()
        for j in range(turns_per_thread):
            with child.turn(f"t-{n}-{j}") as turn:
                assert current_turn() is turn
                with turn.inference("m", "p").attempt({"input": [user(f"{n}/{j}")]}) as attempt:
                    attempt.record_completed(f"r-{n}-{j}")
                with turn.tool_call("lookup", {"j": j}, tool_call_id=f"call-{n}-{j}"):
                    pass
        child.record_ended()

    async def task(k: int) -> None:
        async with root.turn(f"a-{k}") as turn:
            await asyncio.sleep(0)
            assert current_turn() is turn
            async with turn.inference("m", "p").attempt({"input": [user(f"a{k}")]}) as attempt:
                await asyncio.sleep(0)
                attempt.record_completed(f"ra-{k}")
            async with turn.tool_call("lookup", {"k": k}, tool_call_id=f"call-a-{k}"):
                await asyncio.sleep(0)
                assert current_turn() is turn

    async def tasks() -> None:
        await asyncio.gather(*(task(k) for k in range(50)))

    workers = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for worker in workers:
        worker.start()
    barrier.wait()
    asyncio.run(tasks())
    for worker in workers:
        worker.join()
    root.record_ended()

    [bundle] = pipeline.bundles()
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    assert (report.threads, report.turns) == (9, 8 * turns_per_thread + 50)
    done = codex_reduce(codex_for(pipeline.schema_version), bundle, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    state = json.loads((tmp_path / "state.json").read_text())
    assert len(state["tool_calls"]) == 8 * turns_per_thread + 50

    spans = pipeline.spans()
    by_id = {span.context.span_id: span for span in spans}
    tools = [span for span in spans if span.name == "execute_tool lookup"]
    assert len(tools) == 8 * turns_per_thread + 50
    for tool in tools:
        assert tool.parent is not None
        turn_span = by_id[tool.parent.span_id]
        assert turn_span.name == "turn"
        call_id = str(attrs(tool)[sc.GEN_AI_TOOL_CALL_ID])  # call-<n>-<j> or call-a-<k>
        turn_id = str(attrs(turn_span)[sc.ROLLOUT_TURN_ID])  # t-<n>-<j> or a-<k>
        assert call_id.removeprefix("call-").removeprefix("a-") == turn_id.split("-", 1)[1] or (
            call_id == f"call-{turn_id}"
        )


def test_a_disk_failure_stops_that_bundle_with_one_warning_and_never_raises(
    both_schemas: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Schema 2: the third payload file fails; schema 3: the second shard (each attempt is
    flushed, so each has its own shard). Either way one attempt is left, whole."""
    from otel_rollout._bundle._models import RawPayloadRef
    from otel_rollout._bundle._payloads import PayloadFileWriter, PayloadShardWriter

    pipeline = both_schemas
    calls = 0
    original = PayloadFileWriter.write
    original_seal = PayloadShardWriter.seal

    def failing(self: PayloadFileWriter, ref: RawPayloadRef, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OSError(28, "No space left on device")
        original(self, ref, data)

    def failing_seal(self: PayloadShardWriter) -> int:
        nonlocal calls
        if self.open_bytes:
            calls += 1
            if calls == 2:
                raise OSError(28, "No space left on device")
        return original_seal(self)

    monkeypatch.setattr(PayloadFileWriter, "write", failing)
    monkeypatch.setattr(PayloadShardWriter, "seal", failing_seal)
    thread = ThreadTraceContext.start_root_or_disabled()
    with caplog.at_level(logging.WARNING):
        with thread, thread.turn() as turn:
            for _ in range(5):
                with turn.inference("m", "p").attempt({"input": []}) as attempt:
                    attempt.record_completed("r")
                assert pipeline.exporter.force_flush()
        [bundle] = pipeline.bundles()
    assert caplog.text.count("No space left on device") == 1
    assert pipeline.exporter.lost_events > 0
    report = validate_bundle(bundle)
    assert report.ok, report.problems
    assert event_types(bundle).count("inference_started") == 1  # the valid prefix
    assert _descriptors_into(bundle) == []  # the stopped bundle's files are closed


def _descriptors_into(directory: Path) -> list[str]:
    """The paths under ``directory`` this process holds open (Linux's /proc)."""
    inside = str(directory.resolve()) + os.sep
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed since
            continue
        if target.startswith(inside) or target == inside[:-1]:
            held.append(target)
    return held
