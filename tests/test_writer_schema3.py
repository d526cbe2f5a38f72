"""BundleWriter(schema_version=3): shards sealed before the events naming them; 0.171.0's bytes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import msgspec
import pytest

from otel_rollout._bundle._models import (
    CodeCellWaitTargetResolved,
    CodexTurnEnded,
    CodexTurnStarted,
    CompactionRequestFailed,
    CompactionRequestStarted,
    ExecutionStatus,
    InferenceStarted,
    PayloadKind,
    ProtocolEventObserved,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    ThreadEnded,
    ThreadResumed,
    ThreadStarted,
)
from otel_rollout._bundle._payloads import PayloadShards
from otel_rollout._bundle._prompts import join_prompt, split_prompt
from otel_rollout._bundle._shards import decompress_shard, iter_records
from otel_rollout._bundle._writer import BundleWriter
from support.codex import codex_reduce
from support.oracle_0171 import codex_bin_0171
from support.rewrite import bundle_dir, read_events, rewrite

__all__ = ["codex_bin_0171"]

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.171.0"
SCENARIOS = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())


def _records(bundle: Path) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    for shard in sorted((bundle / "payloads").glob("*.zst")):
        data = decompress_shard(shard.read_bytes())
        for ident, offset, length in iter_records(data):
            records[ident] = data[offset : offset + length]
    return records


def _shards_named(bundle: Path) -> set[int]:
    named: set[int] = set()
    for line in (bundle / "trace.jsonl").read_bytes().splitlines():
        stack = [json.loads(line)["payload"]]
        while stack:
            value = stack.pop()
            if isinstance(value, dict):
                if isinstance(value.get("shard"), int):
                    named.add(value["shard"])
                stack.extend(value.values())
            elif isinstance(value, list):
                stack.extend(value)
    return named


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_rewriting_a_fixture_gives_codex_0171s_bytes(scenario: str, tmp_path: Path) -> None:
    source = bundle_dir(FIXTURES / scenario)
    writer = rewrite(source, tmp_path)

    bundle = writer.bundle_dir
    assert (bundle / "manifest.json").read_bytes() == (source / "manifest.json").read_bytes()
    assert (bundle / "trace.jsonl").read_bytes() == (source / "trace.jsonl").read_bytes()
    assert sorted(p.name for p in (bundle / "payloads").iterdir()) == ["000001.zst"]
    assert _records(bundle) == _records(source)


@pytest.mark.codex
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_codex_0171_reduces_a_rewritten_fixture_to_its_own_state(
    codex_bin_0171: Path, scenario: str, tmp_path: Path
) -> None:
    source = bundle_dir(FIXTURES / scenario)
    writer = rewrite(source, tmp_path / "bundles")

    done = codex_reduce(codex_bin_0171, writer.bundle_dir, tmp_path / "state.json")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "state.json").read_bytes() == (source / "state.json").read_bytes()


@pytest.mark.codex
def test_codex_0171_accepts_the_variants_no_fixture_has(
    codex_bin_0171: Path, tmp_path: Path
) -> None:
    """thread_resumed, compaction_request_failed: with the fixtures, all 29 reducible variants."""
    writer = BundleWriter.create(tmp_path / "bundles", root_thread_id="t", schema_version=3)
    writer.append(RolloutStarted(trace_id=writer.manifest.trace_id, root_thread_id="t"))
    writer.append(ThreadStarted(thread_id="t", agent_path="/root"))
    writer.append(ThreadEnded(thread_id="t", status=RolloutStatus.COMPLETED))
    writer.append(ThreadResumed(thread_id="t"))
    writer.append(CodexTurnStarted(codex_turn_id="turn", thread_id="t"), thread_id="t")
    request = writer.write_payload(PayloadKind.COMPACTION_REQUEST, {"input": []})
    assert request is not None
    writer.append(
        CompactionRequestStarted(
            compaction_id="c1",
            compaction_request_id="r1",
            thread_id="t",
            codex_turn_id="turn",
            model="m",
            provider_name="p",
            request_payload=request,
        ),
        thread_id="t",
        codex_turn_id="turn",
    )
    writer.append(
        CompactionRequestFailed(compaction_id="c1", compaction_request_id="r1", error="boom")
    )
    writer.append(CodexTurnEnded(codex_turn_id="turn", status=ExecutionStatus.FAILED))
    writer.append(ThreadEnded(thread_id="t", status=RolloutStatus.COMPLETED))
    writer.append(RolloutEnded(status=RolloutStatus.COMPLETED))
    writer.append(RecordingCompleted())
    writer.close()

    done = codex_reduce(codex_bin_0171, writer.bundle_dir, tmp_path / "state.json")

    assert done.returncode == 0, done.stderr
    state = json.loads((tmp_path / "state.json").read_bytes())
    assert state["schema_version"] == 3
    assert state["recording_status"] == "complete"


def test_an_event_waits_until_the_shard_it_names_is_sealed(tmp_path: Path) -> None:
    writer = BundleWriter.create(tmp_path, root_thread_id="t", schema_version=3, seal_bytes=200)
    log = writer.bundle_dir / "trace.jsonl"
    writer.append(RolloutStarted(trace_id=writer.manifest.trace_id, root_thread_id="t"))
    assert writer.events_written == 1  # names no shard: written at once
    ref = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"type": "small"})
    assert ref is not None and ref.shard == 1
    waiting = writer.append(ProtocolEventObserved(event_type="small", event_payload=ref))
    behind = writer.append(ThreadResumed(thread_id="t"))
    assert waiting is not None and waiting.seq == 2 and behind is not None and behind.seq == 3
    assert writer.events_written == 1 and len(log.read_bytes().splitlines()) == 1
    assert not list((writer.bundle_dir / "payloads").iterdir())

    big = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"text": "x" * 300})  # past 200: sealed

    assert big is not None and big.shard == 1
    assert writer.events_written == 3
    assert _shards_named(writer.bundle_dir) <= {1}
    shard = writer.bundle_dir / "payloads" / "000001.zst"
    assert stat.S_IMODE(shard.stat().st_mode) == 0o600
    later = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"type": "next"})
    assert later is not None and later.shard == 2
    writer.append(ProtocolEventObserved(event_type="next", event_payload=later))
    assert writer.events_written == 3
    assert writer.flush()
    assert writer.events_written == 4
    writer.close()
    assert [e.seq for e in read_events(writer.bundle_dir)] == [1, 2, 3, 4]
    assert sorted(p.name for p in (writer.bundle_dir / "payloads").iterdir()) == [
        "000001.zst",
        "000002.zst",
    ]
    store = PayloadShards(writer.bundle_dir)
    assert json.loads(store.read(later)) == {"type": "next"}


def test_close_seals_and_appends_what_waits(tmp_path: Path) -> None:
    writer = BundleWriter.create(tmp_path, root_thread_id="t", schema_version=3)
    ref = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"a": 1})
    assert ref is not None
    writer.append(ProtocolEventObserved(event_type="a", event_payload=ref))
    writer.append(RecordingCompleted())
    writer.close()
    lines = (writer.bundle_dir / "trace.jsonl").read_bytes().splitlines()
    assert [json.loads(line)["schema_version"] for line in lines] == [3, 3]
    assert json.loads((writer.bundle_dir / "manifest.json").read_bytes())["schema_version"] == 3


def test_prepared_prompts_share_model_items_within_a_thread(tmp_path: Path) -> None:
    writer = BundleWriter.create(tmp_path, root_thread_id="t", schema_version=3)
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    reply = {"type": "message", "role": "assistant", "content": []}
    prompt = {"input": [item], "tools": [], "parallel_tool_calls": False}
    first = writer.write_prepared_prompt("t", prompt)
    second = writer.write_prepared_prompt("t", {**prompt, "input": [item, reply]})
    other = writer.write_prepared_prompt("u", prompt)
    writer.close()

    assert first is not None and second is not None and other is not None
    assert isinstance(first.parts, list) and isinstance(second.parts, list)
    assert isinstance(other.parts, list)
    assert second.parts[0] == first.parts[0]
    assert other.parts[0] != first.parts[0]
    assert [part.kind.type for part in second.parts] == [PayloadKind.MODEL_ITEM] * 2
    store = PayloadShards(writer.bundle_dir)
    fragments = json.loads(store.read(second))
    items = [store.read(part) for part in second.parts]
    assert json.loads(join_prompt(fragments, items)) == {**prompt, "input": [item, reply]}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_split_prompt_cuts_as_codex_0171_does(scenario: str) -> None:
    source = bundle_dir(FIXTURES / scenario)
    store = PayloadShards(source)
    for event in read_events(source):
        payload = event.payload
        if not isinstance(payload, InferenceStarted):
            continue
        ref = payload.prepared_prompt_payload
        assert not isinstance(ref, msgspec.UnsetType) and isinstance(ref.parts, list)
        fragments = json.loads(store.read(ref))
        items = [store.read(part) for part in ref.parts]
        prompt = msgspec.json.decode(join_prompt(fragments, items))
        assert split_prompt(prompt) == (fragments, [json.loads(item) for item in items])


def test_a_bad_schema_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema_version"):
        BundleWriter.create(tmp_path, root_thread_id="t", schema_version=4)


def test_a_schema_3_writer_has_no_payload_files(tmp_path: Path) -> None:
    writer = BundleWriter.create(tmp_path, root_thread_id="t", schema_version=3)
    with pytest.raises(TypeError):
        writer.payloads  # noqa: B018
    writer.append(CodeCellWaitTargetResolved(tool_call_id="a", runtime_cell_id="b"))
    writer.close()
