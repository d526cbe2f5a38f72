"""BundleWriter(schema_version=3): shards sealed before the events naming them; 0.171.0's bytes."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest

from otel_rollout._bundle._bodies import prompt_from_request
from otel_rollout._bundle._capture import PayloadCapturer, join_fragments
from otel_rollout._bundle._models import (
    CodeCellWaitTargetResolved,
    CodexTurnEnded,
    CodexTurnStarted,
    CompactionRequestFailed,
    CompactionRequestStarted,
    ExecutionStatus,
    PayloadKind,
    ProtocolEventObserved,
    RawPayloadRef,
    RecordingCompleted,
    RolloutEnded,
    RolloutStarted,
    RolloutStatus,
    ThreadEnded,
    ThreadResumed,
    ThreadStarted,
)
from otel_rollout._bundle._payloads import PayloadShards, PayloadShardWriter
from otel_rollout._bundle._shards import decompress_shard, iter_records
from otel_rollout._bundle._writer import BundleWriter
from support.codex import codex_reduce
from support.rewrite import bundle_dir, read_events, rewrite

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
    assert json.loads(join_fragments(fragments, items)) == {**prompt, "input": [item, reply]}


LIMITS = Path(__file__).parent / "fixtures" / "codex-0.171.0-limits"
LIMITED = {
    "plain_max_payload_1000": {"max_payload_bytes": 1000},
    "tool_call_max_bytes_20000": {"max_bytes": 20000},
}
"""The limits each limits fixture was recorded with."""


@pytest.mark.parametrize(
    ("fixtures", "scenario"),
    [(FIXTURES, name) for name in SCENARIOS] + [(LIMITS, name) for name in LIMITED],
)
def test_fed_as_values_the_writer_cuts_and_shares_as_codex_0171_does(
    fixtures: Path, scenario: str, tmp_path: Path
) -> None:
    """Requests, prompts and payloads as values (cut ones made whole again), the same limits."""
    source = bundle_dir(fixtures / scenario)
    writer = rewrite(source, tmp_path, as_values=True, **LIMITED.get(scenario, {}))

    bundle = writer.bundle_dir
    assert (bundle / "trace.jsonl").read_bytes() == (source / "trace.jsonl").read_bytes()
    assert _records(bundle) == _records(source)
    assert sorted(p.name for p in (bundle / "payloads").iterdir()) == sorted(
        p.name for p in (source / "payloads").iterdir()
    )
    assert writer.partial_payloads is (scenario in LIMITED)


@pytest.mark.codex
@pytest.mark.parametrize("scenario", sorted(LIMITED))
def test_codex_0171_reduces_the_limited_rewrite_to_the_fixtures_state(
    codex_bin_0171: Path, scenario: str, tmp_path: Path
) -> None:
    source = bundle_dir(LIMITS / scenario)
    writer = rewrite(source, tmp_path / "bundles", as_values=True, **LIMITED[scenario])

    done = codex_reduce(codex_bin_0171, writer.bundle_dir, tmp_path / "state.json")

    assert done.returncode == 0, done.stderr
    assert (tmp_path / "state.json").read_bytes() == (source / "state.json").read_bytes()
    state = json.loads((tmp_path / "state.json").read_bytes())
    assert state["recording_status"] == "closed_with_partial_payloads"


@pytest.mark.codex
@pytest.mark.parametrize(
    ("scenario", "limits"),
    [
        ("tool_call", {"max_payload_bytes": 100}),
        ("multi_agent_v2_spawn", {"max_payload_bytes": 200}),
        ("code_mode_yield_wait", {"max_payload_bytes": 150}),
        ("compact_remote_manual", {"max_payload_bytes": 150}),
        ("tool_call", {"max_bytes": 1}),
        ("mcp_tool_call", {"max_bytes": 3000, "max_payload_bytes": 150}),
    ],
)
def test_codex_0171_accepts_any_payload_cut(
    codex_bin_0171: Path, scenario: str, limits: dict[str, int], tmp_path: Path
) -> None:
    """Tight limits cut every kind of payload; 0.171.0 reduces what is left (schema3-writing.md)."""
    source = bundle_dir(FIXTURES / scenario)
    writer = rewrite(source, tmp_path / "bundles", as_values=True, **limits)

    done = codex_reduce(codex_bin_0171, writer.bundle_dir, tmp_path / "state.json")

    assert done.returncode == 0, done.stderr
    state = json.loads((tmp_path / "state.json").read_bytes())
    assert state["recording_status"] == "closed_with_partial_payloads"
    expected = json.loads((source / "state.json").read_bytes())
    for table in ("threads", "codex_turns", "inference_calls", "tool_calls"):
        assert len(state[table]) == len(expected[table])


def test_a_truncated_record_is_sealed_alone_and_a_cut_seals_what_was_open(tmp_path: Path) -> None:
    writer = BundleWriter.create(tmp_path, root_thread_id="t", schema_version=3, max_bytes=1000)
    small = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"a": 1})
    omitted = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"c": "x" * 1000})
    writer.close()
    assert small is not None and omitted is not None
    assert (small.shard, omitted.shard) == (1, None)
    assert not isinstance(omitted.capture, msgspec.UnsetType)
    assert omitted.capture.status == "omitted" and omitted.capture.original_bytes == 1008

    writer = BundleWriter.create(
        tmp_path, root_thread_id="u", schema_version=3, max_payload_bytes=20
    )
    small = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"a": 1})
    cut = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"text": "é" * 40})
    after = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"b": 2})
    writer.close()

    assert small is not None and cut is not None and after is not None
    assert (small.shard, cut.shard, after.shard) == (1, 2, 3)
    assert not isinstance(cut.capture, msgspec.UnsetType)
    assert cut.capture.status == "truncated"
    assert cut.capture.retained_bytes == 19  # not inside a two-byte character
    assert writer.partial_payloads
    assert len(PayloadShards(writer.bundle_dir).read(cut)) == 19


def test_limits_are_positive_and_schema_3_only(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        BundleWriter.create(tmp_path, root_thread_id="t", schema_version=2, max_bytes=10)
    with pytest.raises(ValueError, match="max_payload_bytes"):
        BundleWriter.create(tmp_path, root_thread_id="t", schema_version=3, max_payload_bytes=0)


def test_a_bad_schema_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schema_version"):
        BundleWriter.create(tmp_path, root_thread_id="t", schema_version=4)


def test_a_schema_3_writer_has_no_payload_files(tmp_path: Path) -> None:
    writer = BundleWriter.create(tmp_path, root_thread_id="t", schema_version=3)
    with pytest.raises(TypeError):
        writer.payloads  # noqa: B018
    writer.append(CodeCellWaitTargetResolved(tool_call_id="a", runtime_cell_id="b"))
    writer.close()


@pytest.mark.parametrize(
    "request_body",
    [
        {"model": "m", "input": [{"type": "message", "content": 'héllo "q" \u2028'}, 1.5e-7]},
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": "x" * 5000}]}]},
        {"input": "a plain string", "tools": [{"type": "function", "name": "f"}]},
        {"parallel_tool_calls": None, "tools": None},
        {"input": [{"a": 1}, {"a": 1}], "tools": [{"name": "f"}], "parallel_tool_calls": True},
        ["not", "an", "object"],
    ],
    ids=["items", "long_item", "string_input", "nulls", "tools", "array"],
)
def test_prompts_from_raw_request_items_are_the_prompts_of_the_decoded_request(
    tmp_path: Path, request_body: object
) -> None:
    """The writer thread takes a request's input items as their JSON (``msgspec.Raw``,
    never decoded or encoded again), from its body or, when an integration gave them
    encoded, from the request itself (``prompt_source``): the prepared prompt records are
    byte for byte those of the decoded request."""
    from otel_rollout._bundle._background import _request_for_prompt, prompt_source
    from otel_rollout._bundle._bodies import prompt_from_request

    body = msgspec.json.encode(request_body)
    variants: list[tuple[str, Any]] = [
        ("decoded", msgspec.json.decode(body)),
        ("raw", _request_for_prompt(body)),
    ]
    if isinstance(request_body, dict) and isinstance(request_body.get("input"), list):
        encoded = {  # as the Agents SDK processor gives them: items and tools encoded
            **request_body,
            "input": [msgspec.Raw(msgspec.json.encode(item)) for item in request_body["input"]],
        }
        if request_body.get("tools") is not None:
            encoded["tools"] = msgspec.Raw(msgspec.json.encode(request_body["tools"]))
        source = prompt_source(encoded)
        assert source is not None
        assert msgspec.json.encode(encoded) == body  # the same request
        variants.append(("source", source))
    else:
        assert prompt_source(request_body) is None
    bundles = []
    for name, request in variants:
        writer = BundleWriter.create(tmp_path / name, root_thread_id="t")
        for _ in range(2):  # the second prompt reuses the first one's model items
            assert writer.write_prepared_prompt("t", prompt_from_request(request)) is not None
        writer.close()
        bundles.append(writer.bundle_dir)
    for bundle in bundles[1:]:
        assert _records(bundle) == _records(bundles[0])


QUICK_PROMPTS: list[dict[str, Any]] = [
    {"input": [{"type": "message", "content": [{"type": "input_text", "text": 'é "x"'}]}]},
    {"input": [msgspec.Raw(b'{"a":1}'), {"b": [1, 2]}, {"c": "\u2028"}], "tools": [{"x": 1}]},
    {"input": [{"a": 1}], "base_instructions": {"text": "long instructions " * 8}},
    {"tools": [], "input": [{"a": 1}]},  # input not first: the general way
    {"input": []},
]


@pytest.mark.parametrize("limit", [None, 16], ids=["no-limit", "max-payload-bytes"])
def test_the_usual_prepared_prompt_is_split_as_the_marks_split_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int | None
) -> None:
    """The quick split of a prepared prompt (its JSON with ``input`` empty, cut after
    ``{"input":[``) gives the records and refs the general way (marks) gives, each prompt
    twice (the second from the kept ends)."""

    def capture(directory: Path) -> tuple[list[RawPayloadRef], bytes]:
        directory.mkdir()
        shards = PayloadShardWriter.create(directory)
        capturer = PayloadCapturer(
            shards, seal=lambda: None, used_bytes=lambda: 0, max_payload_bytes=limit
        )
        refs = [
            capturer.prepared_prompt(prompt_from_request(prompt) if i % 2 else prompt, "t")
            for i, prompt in enumerate(QUICK_PROMPTS * 2)
        ]
        return refs, bytes(shards._records[: shards.open_bytes])

    quick = capture(tmp_path / "quick")
    monkeypatch.setattr(PayloadCapturer, "_quick_prompt", lambda *_: None)
    assert quick == capture(tmp_path / "marks")


def test_the_reused_records_buffer_gives_every_shard_its_own_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One buffer holds the open shard's records from shard to shard: each shard read back
    holds exactly its records, whether the buffer was larger (a shorter shard after a longer
    one), grew (a record longer than all before), or a seal failed (its records stay open
    and go into the next seal whole)."""
    from otel_rollout._bundle import _payloads

    (tmp_path / "bundle").mkdir()
    shards = PayloadShardWriter.create(tmp_path / "bundle")
    written: list[list[tuple[str, bytes]]] = []

    def shard_of(*bodies: bytes) -> None:
        records = []
        for body in bodies:
            ref = shards.add(shards.new_id(), PayloadKind.MODEL_ITEM, body)
            records.append((ref.raw_payload_id, body))
        written.append(records)

    shard_of(b'"' + b"a" * 5000 + b'"', b"[1]")
    assert shards.seal() > 0
    shard_of(b"[2]")  # shorter: the rest of the buffer holds the last shard's bytes
    assert shards.seal() > 0
    shard_of(b"[3]", b'"' + b"b" * 50_000 + b'"')  # longer than the buffer: it grows

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(_payloads, "write_whole", full_disk)
        with pytest.raises(OSError):
            shards.seal()
    shard_of(b'"' + b"c" * 200_000 + b'"')  # the buffer grows again after the failure
    written[-2:] = [written[-2] + written[-1]]  # one shard: the failed one's records and these
    assert shards.seal() > 0
    shards.close()
    for number, records in enumerate(written, start=1):
        data = decompress_shard((shards.directory / f"{number:06d}.zst").read_bytes())
        assert [(ident, data[at : at + size]) for ident, at, size in iter_records(data)] == records
