"""The reducer reuses a request's input items byte-identical to a recent request's
(``_reduce/_request_input``): results and verdicts are those of reading every request whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import BundleError, reduce_bundle
from otel_rollout._reduce import _payload, _request_input, _state, encode_state
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures"
SMALL = sorted(
    path
    for corpus in ("codex-0.169.0", "codex-0.171.0", "codex-0.171.0-limits")
    for path in (FIXTURES / corpus).glob("*/trace-*")
    if path.is_dir()
)
SECOND_REQUEST = "10.json"
"""two_turns: the second request, whose first four items the first request (5.json) holds."""


def _ours(bundle: Path) -> bytes | str:
    try:
        return encode_state(reduce_bundle(bundle, warn=lambda _: None))
    except BundleError as error:
        return str(error)


def _whole(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> bytes | str:
    """As :func:`_ours`, every request read whole (no item reused)."""
    with monkeypatch.context() as patch:
        patch.setattr(_state, "split_request", lambda *_: None)
        return _ours(bundle)


def _two_turns(tmp_path: Path) -> Path:
    (source,) = (FIXTURES / "codex-0.169.0" / "two_turns").glob("trace-*")
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    (bundle / "state.json").unlink()
    return bundle


def _counting_hits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    hits: list[int] = []
    split = _request_input.split_request

    def counted(*args: Any) -> _request_input.RequestInput | None:
        request = split(*args)
        if request is not None:
            hits.append(sum(type(value) is _request_input.Known for value in request.values))
        return request

    monkeypatch.setattr(_state, "split_request", counted)
    return hits


@pytest.mark.parametrize("bundle", SMALL, ids=lambda path: path.parent.name)
def test_reusing_items_changes_no_byte(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fixture (tool calls' ``json`` parts name their own request) reduces the same."""
    assert _ours(bundle) == _whole(bundle, monkeypatch)


def test_the_memo_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hits = _counting_hits(monkeypatch)
    reduce_bundle(_two_turns(tmp_path))
    assert hits == [0, 4]


def test_an_item_with_the_same_id_and_other_content_is_not_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codex_bin: Path
) -> None:
    """A stale reuse (by Responses id, or by position) would keep the first turn's text."""
    bundle = _two_turns(tmp_path)
    path = bundle / "payloads" / SECOND_REQUEST
    text = path.read_bytes()
    assert text.count(b"This is the first turn") == 1
    path.write_bytes(text.replace(b"This is the first turn", b"This is not the first turn"))
    hits = _counting_hits(monkeypatch)
    ours = _ours(bundle)
    assert hits == [0, 3]
    assert isinstance(ours, bytes)
    assert b"This is not the first turn" in ours
    out = tmp_path / "codex-state.json"
    assert codex_reduce(codex_bin, bundle, out).returncode == 0
    assert ours == out.read_bytes()


def test_a_reused_item_created_again_names_its_own_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, codex_bin: Path
) -> None:
    """An item of the first request with a part that names its payload (an image: left in
    the payload), carried twice by the second: the copy is a new item, whose part names the
    second request."""
    bundle = _two_turns(tmp_path)
    for name in ("5.json", SECOND_REQUEST):
        path = bundle / "payloads" / name
        value = json.loads(path.read_text())
        value["input"][0]["content"].append({"type": "input_image", "image_url": "x"})
        if name == SECOND_REQUEST:
            value["input"].insert(1, value["input"][0])
        path.write_text(json.dumps(value))
    hits = _counting_hits(monkeypatch)
    ours = _ours(bundle)
    assert hits == [0, 5]
    assert isinstance(ours, bytes)
    assert ours.count(b'"raw_payload_id": "raw_payload:10"') == 2  # the request and the copy
    assert ours == _whole(bundle, monkeypatch)
    out = tmp_path / "codex-state.json"
    assert codex_reduce(codex_bin, bundle, out).returncode == 0
    assert ours == out.read_bytes()


HOSTILE = {
    "a byte that is not UTF-8 in another field": lambda text: text.replace(
        b'"model":"', b'"model":"\xff', 1
    ),
    "an earlier input key holding a non-UTF-8 string": lambda text: (
        b'{"input":["\xff"],' + text[1:]
    ),
    "an earlier input key nesting too deep": lambda text: (
        b'{"input":' + b"[" * 200 + b"]" * 200 + b"," + text[1:]
    ),
    "input not an array": lambda text: text.replace(b'"input":[', b'"input":[[', 1).replace(
        b"]", b"]]", 1
    ),
    "an item that is not an object": lambda text: text.replace(b'"input":[', b'"input":[5,', 1),
    "no input": lambda text: text.replace(b'"input":', b'"inputs":', 1),
}


@pytest.mark.parametrize("edit", HOSTILE.values(), ids=HOSTILE)
def test_a_hostile_request_gets_the_verdict_of_the_whole_read(
    edit: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = _two_turns(tmp_path)
    path = bundle / "payloads" / SECOND_REQUEST
    compact = json.dumps(json.loads(path.read_text()), separators=(",", ":")).encode()
    edited = edit(compact)
    assert edited != compact
    path.write_bytes(edited)
    assert _ours(bundle) == _whole(bundle, monkeypatch)


def _part_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Ids of the prompt parts read from the store (not from the last prompt's texts)."""
    reads: list[str] = []
    part_text = _payload._part_text

    def counted(store: Any, part: Any) -> bytes:
        reads.append(part.raw_payload_id)
        return part_text(store, part)

    monkeypatch.setattr(_payload, "_part_text", counted)
    return reads


def test_a_prompt_reads_only_the_parts_the_last_one_lacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _part_reads(monkeypatch)
    reduce_bundle(next((FIXTURES / "codex-0.171.0" / "two_turns").glob("trace-*")))
    assert reads[:3] == ["raw_payload:6", "raw_payload:7", "raw_payload:8"]
    assert "raw_payload:15" in reads[3:]
    assert not {"raw_payload:6", "raw_payload:7", "raw_payload:8"} & set(reads[3:])


def test_a_shared_part_named_in_another_shard_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second prompt names its first part (which the first prompt held) in a shard
    that does not exist: the error of the whole read, not the text held."""
    (source,) = (FIXTURES / "codex-0.171.0" / "two_turns").glob("trace-*")
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    log = bundle / "trace.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    prompt = b'"raw_payload_id":"raw_payload:17","kind":{"type":"prepared_prompt"},"shard":1,'
    first_part = b'"parts":[{"raw_payload_id":"raw_payload:6","kind":{"type":"model_item"},"shard":'
    (index,) = [number for number, line in enumerate(lines) if prompt in line]
    lines[index] = lines[index].replace(prompt + first_part + b"1", prompt + first_part + b"99")
    log.write_bytes(b"".join(lines))
    ours = _ours(bundle)
    assert isinstance(ours, str)
    assert "000099" in ours  # the shard named
    with monkeypatch.context() as patch:
        patch.setattr(
            _payload.PartTexts, "text", lambda _, store, part: _payload._part_text(store, part)
        )
        assert ours == _ours(bundle)
