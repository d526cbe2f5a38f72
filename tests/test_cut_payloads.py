"""Payloads a size limit cut (schema 3 ``capture: omitted``), and ``null`` bodies, which no
limit cut, each reduced as the real Codex of its schema reduces it: verdict, reason and state.

The rules (found by running 0.171.0 on these variants): a cut request gives its call no items
and keeps the thread's snapshot, but the call owns it, so its response makes the snapshot
that response alone and the next full request creates again what it does not hold; a thread
other than the root whose metadata was cut has the origin ``unknown``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import BundleError, reduce_bundle
from otel_rollout._bundle._shards import (
    compress_shard,
    decompress_shard,
    encode_record,
    iter_records,
)
from otel_rollout._reduce import encode_state
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA_FIXTURES = {2: FIXTURES / "codex-0.169.0", 3: FIXTURES / "codex-0.171.0"}

REQUEST = "request_payload"
PROMPT = "prepared_prompt_payload"

OMITTED: dict[str, tuple[str, set[int], tuple[str, ...]]] = {
    "first of two turns": ("two_turns", {0}, (REQUEST,)),
    "first of two turns, prompt too": ("two_turns", {0}, (REQUEST, PROMPT)),
    "last": ("two_turns", {1}, (REQUEST,)),
    "prompt only": ("two_turns", {0}, (PROMPT,)),
    "a failed attempt without response": ("inference_retry", {1}, (REQUEST,)),
    "an attempt with a partial response": ("inference_retry", {2}, (REQUEST,)),
    "two attempts in a row": ("inference_retry", {1, 2}, (REQUEST,)),
    "every attempt": ("inference_retry", {0, 1, 2, 3}, (REQUEST, PROMPT)),
    "middle, after tool calls": ("code_mode_yield_wait", {1}, (REQUEST,)),
    "first two of three": ("code_mode_yield_wait", {0, 1}, (REQUEST,)),
    "middle, terminal": ("terminal_write_stdin", {1}, (REQUEST,)),
    "a spawning agent's": ("multi_agent_v2_spawn", {1}, (REQUEST,)),
    "two threads in a row": ("multi_agent_v2_spawn", {1, 2}, (REQUEST, PROMPT)),
    "before a compaction": ("compact_remote_manual", {0}, (REQUEST,)),
    "after a compaction": ("compact_remote_manual", {1}, (REQUEST,)),
    "first tool call": ("tool_call", {0}, (REQUEST,)),
}
"""Variant: (0.171.0 fixture, which inference starts (in log order), which refs are omitted)."""


def _copy(schema: int, scenario: str, tmp_path: Path) -> Path:
    (source,) = (SCHEMA_FIXTURES[schema] / scenario).glob("trace-*")
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    (bundle / "state.json").unlink()
    return bundle


def _first_ref(bundle: Path, field: str) -> dict[str, Any]:
    """The payload ref in ``field`` of the first event that has one."""
    log = (bundle / "trace.jsonl").read_text()
    return next(
        json.loads(line)["payload"][field] for line in log.splitlines() if f'"{field}"' in line
    )


def _edit_log(bundle: Path, edit: Callable[[int, dict[str, Any]], None]) -> None:
    """Call ``edit(n, payload)`` on the ``n``-th ``inference_started`` event and write back."""
    log = bundle / "trace.jsonl"
    lines = [json.loads(line) for line in log.read_bytes().splitlines()]
    starts = [line["payload"] for line in lines if line["payload"]["type"] == "inference_started"]
    for number, payload in enumerate(starts):
        edit(number, payload)
    log.write_bytes(
        b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
    )


def _verdicts(codex_bin: Path, bundle: Path) -> tuple[bytes | str, bytes | str]:
    """(ours, Codex's): the state's bytes, or the reason the bundle was refused."""
    try:
        ours: bytes | str = encode_state(reduce_bundle(bundle, warn=lambda _: None))
    except BundleError as error:
        ours = error.reason
    out = bundle.parent / "codex-state.json"
    done = codex_reduce(codex_bin, bundle, out)
    theirs: bytes | str = out.read_bytes() if done.returncode == 0 else done.stderr
    return ours, theirs


@pytest.mark.parametrize("variant", OMITTED.values(), ids=OMITTED)
def test_an_omitted_request_reduces_as_codex_0171(
    variant: tuple[str, set[int], tuple[str, ...]], tmp_path: Path, codex_bin_0171: Path
) -> None:
    scenario, which, fields = variant
    bundle = _copy(3, scenario, tmp_path)

    def omit(number: int, payload: dict[str, Any]) -> None:
        if number in which:
            for field in fields:
                _omit(payload[field])

    _edit_log(bundle, omit)
    ours, theirs = _verdicts(codex_bin_0171, bundle)
    assert isinstance(theirs, bytes), theirs  # 0.171.0 accepts every such bundle
    assert ours == theirs


@pytest.mark.parametrize("field", ["request_payload", "response_payload"])
def test_a_null_body_is_refused_as_codex_0169_refuses_it(
    field: str, tmp_path: Path, codex_bin: Path
) -> None:
    """Schema 2 has no cut payloads: a ``null`` request or response is no cut one."""
    bundle = _copy(2, "two_turns", tmp_path)
    ref = _first_ref(bundle, field)
    (bundle / ref["path"]).write_text("null")
    ours, theirs = _verdicts(codex_bin, bundle)
    assert isinstance(ours, str) and isinstance(theirs, str)
    assert f"Error: {ours}\n" in theirs


@pytest.mark.parametrize("field", ["request_payload", "response_payload"])
def test_a_null_record_is_refused_as_codex_0171_refuses_it(
    field: str, tmp_path: Path, codex_bin_0171: Path
) -> None:
    """Schema 3: a ``null`` record that no limit cut is no cut payload either."""
    bundle = _copy(3, "two_turns", tmp_path)
    ref = _first_ref(bundle, field)
    shard = bundle / "payloads" / f"{ref['shard']:06d}.zst"
    whole = decompress_shard(shard.read_bytes())
    records = [
        encode_record(ident, b"null" if ident == ref["raw_payload_id"] else whole[at : at + size])
        for ident, at, size in iter_records(whole)
    ]
    shard.write_bytes(compress_shard(records))
    ours, theirs = _verdicts(codex_bin_0171, bundle)
    assert isinstance(ours, str) and isinstance(theirs, str)
    assert f"Error: {ours}\n" in theirs


def _child_cut(starts: list[dict[str, Any]]) -> None:
    _omit(starts[1]["metadata_payload"])


def _child_cut_at_root_path(starts: list[dict[str, Any]]) -> None:
    _omit(starts[1]["metadata_payload"])
    starts[1]["agent_path"] = "/root"


def _root_cut_at_child_path(starts: list[dict[str, Any]]) -> None:
    _omit(starts[0]["metadata_payload"])
    starts[0]["agent_path"] = "/root/x"


def _both_cut(starts: list[dict[str, Any]]) -> None:
    _omit(starts[0]["metadata_payload"])
    _omit(starts[1]["metadata_payload"])


def _child_absent(starts: list[dict[str, Any]]) -> None:
    starts[1]["metadata_payload"] = None


METADATA: dict[str, Callable[[list[dict[str, Any]]], None]] = {
    "a child's cut": _child_cut,
    "a child's cut, at the root's path": _child_cut_at_root_path,
    "the root's cut, at a child's path": _root_cut_at_child_path,
    "both cut": _both_cut,
    "a child's absent": _child_absent,
}
"""Edits of the ``thread_started`` events of ``multi_agent_v2_spawn`` (root, then child)."""


def _omit(ref: dict[str, Any]) -> None:
    ref["shard"] = None
    ref["capture"] = {"status": "omitted", "original_bytes": 50_000}


@pytest.mark.parametrize("edit", METADATA.values(), ids=METADATA)
def test_a_cut_thread_metadata_reduces_as_codex_0171(
    edit: Callable[[list[dict[str, Any]]], None], tmp_path: Path, codex_bin_0171: Path
) -> None:
    bundle = _copy(3, "multi_agent_v2_spawn", tmp_path)
    log = bundle / "trace.jsonl"
    lines = [json.loads(line) for line in log.read_bytes().splitlines()]
    edit([line["payload"] for line in lines if line["payload"]["type"] == "thread_started"])
    log.write_bytes(
        b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
    )
    ours, theirs = _verdicts(codex_bin_0171, bundle)
    assert isinstance(theirs, bytes), theirs
    assert ours == theirs


def _event_refs(bundle: Path) -> list[tuple[int, str]]:
    """(line index, field) of every payload ref an event names at its top level."""
    found = []
    for index, line in enumerate((bundle / "trace.jsonl").read_bytes().splitlines()):
        payload = json.loads(line)["payload"]
        for key, value in payload.items():
            if isinstance(value, dict) and "raw_payload_id" in value:
                found.append((index, key))
    return found


def _null_body(bundle: Path, index: int, field: str) -> None:
    """Make the body of the payload the ``index``-th event names in ``field`` JSON ``null``."""
    ref = json.loads((bundle / "trace.jsonl").read_bytes().splitlines()[index])["payload"][field]
    if "path" in ref:
        (bundle / ref["path"]).write_text("null")
        return
    shard = bundle / "payloads" / f"{ref['shard']:06d}.zst"
    whole = decompress_shard(shard.read_bytes())
    target = ref["raw_payload_id"]
    records = [
        encode_record(ident, b"null" if ident == target else whole[at : at + size])
        for ident, at, size in iter_records(whole)
    ]
    shard.write_bytes(compress_shard(records))


def _omit_in_log(bundle: Path, index: int, field: str) -> None:
    log = bundle / "trace.jsonl"
    lines = [json.loads(line) for line in log.read_bytes().splitlines()]
    _omit(lines[index]["payload"][field])
    log.write_bytes(
        b"".join(json.dumps(line, separators=(",", ":")).encode() + b"\n" for line in lines)
    )


SWEEPS: dict[str, tuple[int, Callable[[Path, int, str], None]]] = {
    "schema 2, each payload null": (2, _null_body),
    "schema 3, each payload null": (3, _null_body),
    "schema 3, each payload omitted": (3, _omit_in_log),
}


@pytest.mark.parametrize("sweep", SWEEPS.values(), ids=SWEEPS)
def test_each_payload_cut_or_null_reduces_as_codex(
    sweep: tuple[int, Callable[[Path, int, str], None]],
    tmp_path: Path,
    codex_for: Callable[[int], Path],
) -> None:
    """Every payload ref of every fixture, one at a time: a ``null`` body is refused where
    Codex refuses it (a cut payload reads as absent, a ``null`` one does not), an omitted one
    reduces to Codex's state."""
    schema, edit = sweep
    codex = codex_for(schema)
    bundles = []
    for scenario in sorted(path.name for path in SCHEMA_FIXTURES[schema].iterdir()):
        if not (SCHEMA_FIXTURES[schema] / scenario).is_dir():
            continue
        (source,) = (SCHEMA_FIXTURES[schema] / scenario).glob("trace-*")
        for index, field in _event_refs(source):
            bundle = _copy(schema, scenario, tmp_path / f"{scenario}-{index}-{field}")
            edit(bundle, index, field)
            bundles.append((f"{scenario} line {index + 1} {field}", bundle))
    assert len(bundles) > 100
    with ThreadPoolExecutor(max_workers=2) as pool:
        verdicts = list(pool.map(lambda bundle: _verdicts(codex, bundle), [b for _, b in bundles]))
    differences = [
        f"{name}: ours {ours[:200]!r}, Codex {theirs[-300:]!r}"
        for (name, _), (ours, theirs) in zip(bundles, verdicts, strict=True)
        if (isinstance(ours, bytes) or isinstance(theirs, bytes)) and ours != theirs
    ]
    assert differences == []
