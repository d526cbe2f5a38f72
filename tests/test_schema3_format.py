"""Schema 3 (Codex 0.171.0) on disk: fixture round trips, shards record for record, and the
reading rules each Codex applies, checked against the binaries where they are available."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard

from otel_rollout._bundle._json import encode_compact, encode_line, encode_pretty
from otel_rollout._bundle._models import SCHEMA_3
from otel_rollout._bundle._payloads import PayloadShards
from otel_rollout._bundle._reader import Bundle, decode_event
from otel_rollout._bundle._schema import all_refs, is_omitted, is_truncated
from otel_rollout._bundle._shards import (
    ShardError,
    compress_shard,
    decompress_shard,
    encode_record,
    iter_records,
)
from otel_rollout._bundle._validate import validate_bundle
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = sorted(FIXTURES.glob("codex-0.171.0*/*/trace-*"))
TOOL_CALL = next(FIXTURES.glob("codex-0.171.0/tool_call/trace-*"))
TRUNCATED = next(FIXTURES.glob("codex-0.171.0-limits/plain_max_payload_1000/trace-*"))
OMITTED = next(FIXTURES.glob("codex-0.171.0-limits/tool_call_max_bytes_20000/trace-*"))
SCHEMA_2_TOOL_CALL = next(FIXTURES.glob("codex-0.169.0/tool_call/trace-*"))
INFERENCE_LINE = 10
"""The first ``inference_started`` of the tool_call fixtures (both versions)."""


def _bundle_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}"


def _records(path: Path) -> list[tuple[str, bytes]]:
    data = decompress_shard(path.read_bytes())
    return [(ident, data[offset : offset + length]) for ident, offset, length in iter_records(data)]


def _shards(bundle_dir: Path) -> list[Path]:
    return sorted((bundle_dir / "payloads").glob("*.zst"))


def test_fixtures_present() -> None:
    assert len(BUNDLES) == 13
    assert all(_shards(bundle) for bundle in BUNDLES)
    assert [len(_shards(bundle)) for bundle in (TRUNCATED, OMITTED)] == [5, 5]


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_manifest_and_event_log_round_trip_byte_for_byte(bundle_dir: Path) -> None:
    bundle = Bundle(bundle_dir)
    assert bundle.schema_version == SCHEMA_3
    assert encode_pretty(bundle.manifest) == bundle.manifest_path.read_bytes()
    original = bundle.event_log_path.read_bytes()
    rewritten = b"".join(encode_line(event) for _, event in bundle.events())
    assert rewritten == original


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_shards_round_trip_record_for_record(bundle_dir: Path) -> None:
    """Every record's body re-encodes to its bytes (whole ones), and re-compressed shards
    decompress to the same records."""
    truncated = {
        ref.raw_payload_id
        for _, event in Bundle(bundle_dir).events()
        for ref in all_refs(event.payload)
        if is_truncated(ref)
    }
    for shard in _shards(bundle_dir):
        records = _records(shard)
        for ident, body in records:
            if ident not in truncated:
                assert encode_compact(msgspec.json.decode(body)) == body, (shard.name, ident)
        frame = compress_shard(encode_record(ident, body) for ident, body in records)
        params = zstandard.get_frame_parameters(frame)
        assert params.has_checksum and params.content_size > 0
        assert _records_of(frame) == records


def _records_of(frame: bytes) -> list[tuple[str, bytes]]:
    data = decompress_shard(frame)
    return [(ident, data[offset : offset + length]) for ident, offset, length in iter_records(data)]


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_every_fixture_validates(bundle_dir: Path) -> None:
    report = validate_bundle(bundle_dir)
    assert report.ok, [str(problem) for problem in report.problems]
    assert report.events == len((bundle_dir / "trace.jsonl").read_bytes().splitlines())
    on_disk = sum(
        path.stat().st_size
        for path in bundle_dir.rglob("*")
        if path.is_file() and path.name != "state.json"
    )
    assert report.bytes == on_disk


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_every_referenced_payload_reads(bundle_dir: Path) -> None:
    bundle = Bundle(bundle_dir)
    assert isinstance(bundle.payloads, PayloadShards)
    for _, event in bundle.events():
        for ref in all_refs(event.payload):
            if is_omitted(ref):
                with pytest.raises(ValueError, match="payload omitted by size limit"):
                    bundle.read_payload_bytes(ref)
            elif is_truncated(ref):
                assert len(bundle.read_payload_bytes(ref)) == ref.capture.retained_bytes  # type: ignore[union-attr]
            else:
                bundle.read_payload(ref)


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_codex_0171_reproduces_each_fixture_state(
    bundle_dir: Path, codex_bin_0171: Path, tmp_path: Path
) -> None:
    """The oracle itself: 0.171.0 reduces each fixture (copied) to the state.json beside it."""
    copy = _copy(bundle_dir, tmp_path)
    done = codex_reduce(codex_bin_0171, copy, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "state.json").read_bytes() == (bundle_dir / "state.json").read_bytes()


@pytest.mark.parametrize("bundle_dir", BUNDLES, ids=_bundle_id)
def test_codex_0171_reads_our_recompressed_shards(
    bundle_dir: Path, codex_bin_0171: Path, tmp_path: Path
) -> None:
    copy = _copy(bundle_dir, tmp_path)
    for shard in _shards(copy):
        shard.write_bytes(compress_shard(encode_record(*record) for record in _records(shard)))
    done = codex_reduce(codex_bin_0171, copy, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "state.json").read_bytes() == (bundle_dir / "state.json").read_bytes()


# --- the rules, mutation by mutation: our reason, and 0.171.0's (or 0.169.0's) message ---


def _copy(bundle_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / bundle_dir.name
    shutil.copytree(bundle_dir, target)
    (target / "state.json").unlink(missing_ok=True)
    return target


def _lines(bundle: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (bundle / "trace.jsonl").read_bytes().splitlines()]


def _write_lines(bundle: Path, lines: list[dict[str, Any]]) -> None:
    (bundle / "trace.jsonl").write_bytes(b"".join(encode_line(line) for line in lines))


def _refs_to(value: Any, payload_id: str) -> Iterator[dict[str, Any]]:
    """Every ref object to ``payload_id`` inside ``value`` (parts included)."""
    if isinstance(value, dict):
        if value.get("raw_payload_id") == payload_id and "kind" in value:
            yield value
        for item in value.values():
            yield from _refs_to(item, payload_id)
    elif isinstance(value, list):
        for item in value:
            yield from _refs_to(item, payload_id)


def _edit_refs(
    payload_id: str, change: Callable[[dict[str, Any]], Any], nth: int | None = None
) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        lines = _lines(bundle)
        refs = list(_refs_to(lines, payload_id))
        for ref in refs if nth is None else [refs[nth]]:
            change(ref)
        _write_lines(bundle, lines)

    return edit


def _edit_line(number: int, change: Callable[[dict[str, Any]], Any]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        lines = _lines(bundle)
        change(lines[number - 1])
        _write_lines(bundle, lines)

    return edit


def _edit_records(
    change: Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]],
) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        shard = bundle / "payloads" / "000001.zst"
        shard.write_bytes(compress_shard(encode_record(*r) for r in change(_records(shard))))

    return edit


def _edit_shard_bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        shard = bundle / "payloads" / "000001.zst"
        shard.write_bytes(change(shard.read_bytes()))

    return edit


def _body_len_past_end(records: list[tuple[str, bytes]]) -> bytes:
    *head, (ident, body) = records
    whole = b"".join(encode_record(*record) for record in head)
    return whole + struct.pack("<HQ", len(ident), len(body) + 100) + ident.encode() + body


def _without(payload_id: str) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    return lambda records: [record for record in records if record[0] != payload_id]


def _replace_body(
    payload_id: str, body: bytes
) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    return lambda records: [(i, body if i == payload_id else b) for i, b in records]


def _rename(
    payload_id: str, new_id: str
) -> Callable[[list[tuple[str, bytes]]], list[tuple[str, bytes]]]:
    return lambda records: [(new_id if i == payload_id else i, b) for i, b in records]


def _set_manifest_schema(version: int) -> Callable[[Path], None]:
    def edit(bundle: Path) -> None:
        manifest = json.loads((bundle / "manifest.json").read_bytes())
        manifest["schema_version"] = version
        (bundle / "manifest.json").write_bytes(encode_pretty(manifest))

    return edit


SCHEMA_3_CASES: dict[str, tuple[Path, Callable[[Path], None], int, str, str]] = {
    # name: (fixture, edit, line of our problem, our reason contains, 0.171.0's message contains)
    "manifest schema 2": (
        TOOL_CALL,
        _set_manifest_schema(2),
        1,
        "schema_version 3 differs from the manifest's 2",
        "unsupported manifest schema 2 (expected 3)",
    ),
    "event schema 2": (
        TOOL_CALL,
        _edit_line(5, lambda line: line.update(schema_version=2)),
        5,
        "schema_version 2 differs from the manifest's 3",
        "unsupported trace event schema 2 at line 5 (expected 3)",
    ),
    "no prepared prompt": (
        TOOL_CALL,
        _edit_line(INFERENCE_LINE, lambda line: line["payload"].pop("prepared_prompt_payload")),
        INFERENCE_LINE,
        "missing field: `prepared_prompt_payload`",
        "missing field `prepared_prompt_payload`",
    ),
    "null prepared prompt": (
        TOOL_CALL,
        _edit_line(
            INFERENCE_LINE, lambda line: line["payload"].update(prepared_prompt_payload=None)
        ),
        INFERENCE_LINE,
        "bad event",
        "invalid type: null, expected struct RawPayloadRef",
    ),
    "negative shard": (
        TOOL_CALL,
        _edit_refs("raw_payload:5", lambda ref: ref.update(shard=-1)),
        INFERENCE_LINE,
        "shard -1 of raw_payload:5 is not a u64",
        "expected u64",
    ),
    "unknown capture status": (
        TRUNCATED,
        _edit_refs("raw_payload:5", lambda ref: ref["capture"].update(status="cut")),
        INFERENCE_LINE,
        "bad event",
        "unknown variant `cut`, expected one of `complete`, `truncated`, `omitted`",
    ),
    "truncated without retained_bytes": (
        TRUNCATED,
        _edit_refs("raw_payload:5", lambda ref: ref["capture"].pop("retained_bytes")),
        INFERENCE_LINE,
        "missing field: `retained_bytes`",
        "missing field `retained_bytes`",
    ),
    "schema 2 ref (path, no shard)": (
        TOOL_CALL,
        _edit_refs(
            "raw_payload:5", lambda ref: (ref.pop("shard"), ref.update(path="payloads/5.json"))
        ),
        INFERENCE_LINE,
        "payload raw_payload:5: payload omitted by size limit",
        "payload omitted by size limit",
    ),
    "shard null, no capture": (
        TOOL_CALL,
        _edit_refs("raw_payload:5", lambda ref: ref.update(shard=None)),
        INFERENCE_LINE,
        "payload omitted by size limit",
        "payload omitted by size limit",
    ),
    "omitted with a shard": (
        OMITTED,
        _edit_refs("raw_payload:5", lambda ref: ref.update(shard=1)),
        INFERENCE_LINE,
        "omitted payload raw_payload:5 has a shard",
        "omitted payload has a shard",
    ),
    "conflicting kinds": (
        TOOL_CALL,
        _edit_refs("raw_payload:6", lambda ref: ref.update(kind={"type": "content_value"}), 1),
        18,
        "conflicting references for payload raw_payload:6",
        "conflicting references for payload raw_payload:6",
    ),
    "conflicting shards": (
        TOOL_CALL,
        _edit_refs("raw_payload:6", lambda ref: ref.update(shard=2), 1),
        18,
        "conflicting references for payload raw_payload:6",
        "conflicting references for payload raw_payload:6",
    ),
    "retained_bytes not the record's length": (
        TRUNCATED,
        _edit_refs("raw_payload:5", lambda ref: ref["capture"].update(retained_bytes=999)),
        INFERENCE_LINE,
        "payload raw_payload:5: invalid retained length",
        "invalid retained length",
    ),
    "retained_bytes not less than original_bytes": (
        TRUNCATED,
        _edit_refs("raw_payload:5", lambda ref: ref["capture"].update(original_bytes=1000)),
        INFERENCE_LINE,
        "payload raw_payload:5: invalid retained length",
        "invalid retained length",
    ),
    "missing shard": (
        TOOL_CALL,
        _edit_refs("raw_payload:5", lambda ref: ref.update(shard=2)),
        INFERENCE_LINE,
        "payload shard 'payloads/000002.zst' is missing",
        "open shard",
    ),
    "half-written shard": (
        TOOL_CALL,
        _edit_shard_bytes(lambda frame: frame[: len(frame) // 2]),
        2,
        "truncated zstd frame (half-written)",
        "missing payload raw_payload:1 in shard 1",
    ),
    "bad checksum": (
        TOOL_CALL,
        _edit_shard_bytes(lambda frame: frame[:-1] + bytes([frame[-1] ^ 0xFF])),
        2,
        "decompress shard 'payloads/000001.zst': corrupt zstd frame",
        "Restored data doesn't match checksum",
    ),
    "bytes after the frame": (
        TOOL_CALL,
        _edit_shard_bytes(lambda frame: frame + b"xx"),
        2,
        "decompress shard 'payloads/000001.zst': not a zstd frame",
        "Unknown frame descriptor",
    ),
    "body_len past the end": (
        TOOL_CALL,
        _edit_shard_bytes(lambda frame: compress_shard([_body_len_past_end(_records_of(frame))])),
        2,
        "partial record in sealed shard 1",
        "partial record in sealed shard 1",
    ),
    "record id not the ref's": (
        TOOL_CALL,
        _edit_records(_rename("raw_payload:5", "raw_payload:500")),
        INFERENCE_LINE,
        "missing payload raw_payload:5 in shard 1",
        "missing payload raw_payload:5 in shard 1",
    ),
    "record missing": (
        TOOL_CALL,
        _edit_records(_without("raw_payload:2")),
        3,
        "missing payload raw_payload:2 in shard 1",
        "missing payload raw_payload:2 in shard 1",
    ),
    "duplicate record": (
        TOOL_CALL,
        _edit_records(lambda records: [*records, records[1]]),
        2,
        "duplicate payload raw_payload:2 in shard 1",
        "duplicate payload raw_payload:2 in shard 1",
    ),
    "record not JSON": (
        TOOL_CALL,
        _edit_records(_replace_body("raw_payload:2", b"{not json")),
        3,
        "payload raw_payload:2 is not JSON",
        "invalid payload raw_payload:2",
    ),
}


@pytest.mark.parametrize("case", SCHEMA_3_CASES)
def test_schema_3_rules_match_codex_0171(
    case: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fixture, edit, line, ours, theirs = SCHEMA_3_CASES[case]
    bundle = _copy(fixture, tmp_path)
    edit(bundle)
    problems = [(problem.line, problem.reason) for problem in validate_bundle(bundle).problems]
    assert any(at == line and ours in reason for at, reason in problems), problems
    codex = request.getfixturevalue("codex_bin_0171")
    done = codex_reduce(codex, bundle, tmp_path / "state.json")
    assert done.returncode != 0 and theirs in done.stderr, done.stderr


ACCEPTED_BY_0171: dict[str, tuple[Path, Callable[[Path], None]]] = {
    "a path beside the shard": (
        TOOL_CALL,
        _edit_refs("raw_payload:5", lambda ref: ref.update(path="payloads/5.json")),
    ),
    "unknown ref and capture keys": (
        TRUNCATED,
        _edit_refs("raw_payload:5", lambda ref: (ref.update(x=1), ref["capture"].update(y=2))),
    ),
    "a complete capture (sizes unchecked)": (
        TOOL_CALL,
        _edit_refs(
            "raw_payload:1",
            lambda ref: ref.update(capture={"status": "complete", "original_bytes": 1}),
        ),
    ),
    "empty parts on one ref only": (
        TOOL_CALL,
        _edit_refs("raw_payload:6", lambda ref: ref.update(parts=[]), 1),
    ),
    "retained_bytes on an omitted capture": (
        OMITTED,
        _edit_refs("raw_payload:5", lambda ref: ref["capture"].update(retained_bytes=5)),
    ),
    "a shard of two frames": (
        TOOL_CALL,
        _edit_shard_bytes(
            lambda frame: (
                compress_shard(encode_record(*r) for r in _records_of(frame)[:10])
                + compress_shard(encode_record(*r) for r in _records_of(frame)[10:])
            )
        ),
    ),
    "a frame without checksum or content size": (
        TOOL_CALL,
        _edit_shard_bytes(
            lambda frame: zstandard.ZstdCompressor(
                write_checksum=False, write_content_size=False
            ).compress(decompress_shard(frame))
        ),
    ),
    "an unreferenced record that is not JSON": (
        TOOL_CALL,
        _edit_records(lambda records: [*records, ("raw_payload:999", b"{bad")]),
    ),
}


@pytest.mark.parametrize("case", ACCEPTED_BY_0171)
def test_what_0171_accepts_validates(
    case: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    fixture, edit = ACCEPTED_BY_0171[case]
    bundle = _copy(fixture, tmp_path)
    edit(bundle)
    report = validate_bundle(bundle)
    assert report.ok, [str(problem) for problem in report.problems]
    codex = request.getfixturevalue("codex_bin_0171")
    done = codex_reduce(codex, bundle, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr


def _insert_wait_target(lines: list[dict[str, Any]]) -> None:
    event = json.loads(json.dumps(lines[INFERENCE_LINE - 1]))
    event["payload"] = {
        "type": "code_cell_wait_target_resolved",
        "tool_call_id": "call_1",
        "runtime_cell_id": "1",
    }
    lines.insert(INFERENCE_LINE, event)
    for seq, line in enumerate(lines, 1):
        line["seq"] = seq


SCHEMA_2_CASES: dict[str, tuple[Callable[[list[dict[str, Any]]], Any], int, str, str]] = {
    "schema 3 event": (
        _insert_wait_target,
        INFERENCE_LINE + 1,
        "unknown event type 'code_cell_wait_target_resolved' (schema 3 only)",
        "unknown variant `code_cell_wait_target_resolved`",
    ),
    "schema 3 payload kind": (
        lambda lines: lines[INFERENCE_LINE - 1]["payload"]["request_payload"].update(
            kind={"type": "model_item"}
        ),
        INFERENCE_LINE,
        "unknown payload kind 'model_item' (schema 3 only)",
        "unknown variant `model_item`",
    ),
    "ref without path": (
        lambda lines: lines[INFERENCE_LINE - 1]["payload"]["request_payload"].pop("path"),
        INFERENCE_LINE,
        "missing field: `path`",
        "missing field `path`",
    ),
}


@pytest.mark.parametrize("case", SCHEMA_2_CASES)
def test_schema_2_rules_match_codex_0169(
    case: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    change, line, ours, theirs = SCHEMA_2_CASES[case]
    bundle = _copy(SCHEMA_2_TOOL_CALL, tmp_path)
    lines = _lines(bundle)
    change(lines)
    _write_lines(bundle, lines)
    problems = [(problem.line, problem.reason) for problem in validate_bundle(bundle).problems]
    assert any(at == line and ours in reason for at, reason in problems), problems
    with pytest.raises(ValueError, match="schema 3 only|missing field"):
        decode_event(encode_compact(lines[line - 1]), 2)
    codex = request.getfixturevalue("codex_bin")
    done = codex_reduce(codex, bundle, tmp_path / "state.json")
    assert done.returncode != 0 and theirs in done.stderr, done.stderr


def test_schema_3_fields_in_a_schema_2_bundle_are_ignored(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    bundle = _copy(SCHEMA_2_TOOL_CALL, tmp_path)
    lines = _lines(bundle)
    inference = lines[INFERENCE_LINE - 1]["payload"]
    inference["request_payload"].update(shard=1, capture={"status": "omitted", "original_bytes": 1})
    inference["prepared_prompt_payload"] = {
        "raw_payload_id": "raw_payload:99",
        "kind": {"type": "prepared_prompt"},
        "shard": 1,
    }
    _write_lines(bundle, lines)
    assert validate_bundle(bundle).ok
    done = codex_reduce(request.getfixturevalue("codex_bin"), bundle, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr


# --- bounded reads ---


def test_a_decompression_bomb_is_refused_within_the_bound(tmp_path: Path) -> None:
    bundle = _copy(TOOL_CALL, tmp_path)
    shard = bundle / "payloads" / "000001.zst"
    records = _records(shard)
    compressor = zstandard.ZstdCompressor(level=1, write_checksum=True, write_content_size=False)
    bomb = compressor.compress(
        b"".join(encode_record(*record) for record in records) + b" " * (8 << 20)
    )
    assert len(bomb) < 1 << 20
    shard.write_bytes(bomb)
    store = PayloadShards(bundle, max_shard_bytes=4 << 20)
    with pytest.raises(ValueError, match="decompresses past the 4194304-byte bound"):
        store.read(_first_ref(bundle))


def _first_ref(bundle: Path) -> Any:
    return next(ref for _, event in Bundle(bundle).events() for ref in all_refs(event.payload))


def test_a_declared_size_over_the_bound_is_refused_before_decompressing() -> None:
    frame = zstandard.ZstdCompressor(write_content_size=True).compress(b"\0" * (2 << 20))
    with pytest.raises(ShardError, match="declares 2097152 bytes, over the 1048576-byte bound"):
        decompress_shard(frame, 1 << 20)


def test_a_huge_body_len_allocates_nothing() -> None:
    data = struct.pack("<HQ", 3, 1 << 62) + b"abc" + b"{}"
    with pytest.raises(ShardError, match="record abc body runs past the end"):
        list(iter_records(data))


def test_errors_from_a_bad_shard_name_file_and_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from otel_rollout.cli import main

    bundle = _copy(TOOL_CALL, tmp_path)
    _edit_records(_without("raw_payload:5"))(bundle)
    assert main(["validate", str(bundle)]) == 1
    err = capsys.readouterr().err
    assert f"{bundle / 'trace.jsonl'}:{INFERENCE_LINE}: missing payload raw_payload:5" in err
    assert "Traceback" not in err
