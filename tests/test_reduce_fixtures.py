"""The reducer reproduces Codex's state.json byte for byte on every real fixture bundle: 0.169.0's
for schema 2, 0.171.0's for schema 3."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import BundleError, RolloutTrace, reduce_bundle, write_state
from otel_rollout._bundle._shards import (
    compress_shard,
    decompress_shard,
    encode_record,
    iter_records,
    shard_name,
)
from otel_rollout._reduce import encode_state
from otel_rollout.cli import main
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures"
BUNDLES = sorted(
    path
    for corpus in ("codex-0.169.0", "codex-0.169.0-large")
    for path in (FIXTURES / corpus).glob("*/trace-*")
    if path.is_dir()
)


SCHEMA_3_BUNDLES = sorted(
    path
    for corpus in ("codex-0.171.0", "codex-0.171.0-limits")
    for path in (FIXTURES / corpus).glob("*/trace-*")
    if path.is_dir()
)


def _id(bundle: Path) -> str:
    return f"{bundle.parent.parent.name}/{bundle.parent.name}"


def test_all_fixtures_are_found() -> None:
    assert len(BUNDLES) == 12
    assert len(SCHEMA_3_BUNDLES) == 13


@pytest.mark.parametrize("bundle", BUNDLES + SCHEMA_3_BUNDLES, ids=_id)
def test_state_is_byte_identical_to_codex(bundle: Path) -> None:
    trace = reduce_bundle(bundle)
    assert isinstance(trace, RolloutTrace)
    assert encode_state(trace) == (bundle / "state.json").read_bytes()


def test_schema_3_fields_of_the_fixtures() -> None:
    """What 0.171.0 changed, seen in its own state.json (guards the fixtures' coverage)."""
    by_name = {bundle.parent.name: reduce_bundle(bundle) for bundle in SCHEMA_3_BUNDLES}
    statuses = {name: trace.recording_status for name, trace in by_name.items()}
    assert statuses["plain_max_payload_1000"] == "closed_with_partial_payloads"
    assert statuses["tool_call"] == "complete"
    waits = by_name["code_mode_yield_wait"]
    assert waits.tool_calls["call_wait_2"].resolved_wait_runtime_cell_id == "1"
    assert waits.code_cells["code_cell:call_cell_1"].wait_tool_call_ids == ["call_wait_2"]
    assert all(
        isinstance(call.prepared_prompt_payload_id, str)
        for trace in by_name.values()
        for call in trace.inference_calls.values()
    )


def test_cli_writes_state_and_prints_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = FIXTURES / "codex-0.169.0" / "code_mode_cell"
    source = next(bundle.glob("trace-*"))
    copy = tmp_path / source.name
    shutil.copytree(source, copy)
    expected = (copy / "state.json").read_bytes()
    (copy / "state.json").unlink()

    assert main(["reduce", str(copy)]) == 0
    assert capsys.readouterr().out == f"{copy / 'state.json'}\n"
    assert (copy / "state.json").read_bytes() == expected

    out = tmp_path / "elsewhere.json"
    assert main(["reduce", str(copy), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}\n"
    assert out.read_bytes() == expected


def test_write_state_returns_the_path(tmp_path: Path) -> None:
    bundle = next((FIXTURES / "codex-0.169.0" / "plain").glob("trace-*"))
    path = write_state(reduce_bundle(bundle), tmp_path / "s.json")
    assert path.read_bytes() == (bundle / "state.json").read_bytes()


def test_reduce_imports_neither_opentelemetry_nor_rich(tmp_path: Path) -> None:
    bundle = next((FIXTURES / "codex-0.169.0" / "plain").glob("trace-*"))
    code = (
        "import sys\n"
        "from otel_rollout.cli import main\n"
        f"assert main(['reduce', {str(bundle)!r}, '-o', {str(tmp_path / 'o.json')!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('opentelemetry', 'rich'))\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"


# --- edited fixtures: 0.169.0 behaviours the public source does not have, checked against
# the binary (each edit exercises one rule; see docs/reducer-errors.md and the reducer) ---

SMALL = FIXTURES / "codex-0.169.0"


def _bundle(name: str) -> Path:
    return next((SMALL / name).glob("trace-*"))


def _payload(bundle: Path, number: int) -> Any:
    return json.loads((bundle / "payloads" / f"{number}.json").read_text())


def _write_payload(bundle: Path, number: int, value: Any) -> None:
    (bundle / "payloads" / f"{number}.json").write_text(json.dumps(value, indent=2))


def _edit_lines(bundle: Path, edit: Callable[[list[dict[str, Any]]], object]) -> None:
    log = bundle / "trace.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    edit(lines)
    for seq, line in enumerate(lines, start=1):
        line["seq"] = seq
    log.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))


def _image_in_both_requests(bundle: Path) -> None:
    for number in (5, 10):
        request = _payload(bundle, number)
        request["input"][3]["content"].append({"type": "input_image", "image_url": "x"})
        _write_payload(bundle, number, request)


def _odd_content(bundle: Path) -> None:
    request = _payload(bundle, 5)
    request["input"][3]["content"] = "plain string"
    request["input"][2]["content"] = [
        {"text": "no type", "z": 1, "a": [2, 1.5]},
        {"type": "input_file", "file_id": "f", "a": {"y": 1, "b": 2}},
    ]
    request["input"].append({"type": "message", "role": "user", "content": []})
    request["input"].append(
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": 5}]}
    )
    _write_payload(bundle, 5, request)


def _response_repeats_request_item(bundle: Path) -> None:
    response = _payload(bundle, 6)
    item = _payload(bundle, 5)["input"][3]
    response["output_items"] = [item, item]
    _write_payload(bundle, 6, response)


def _request_repeats_item(bundle: Path) -> None:
    request = _payload(bundle, 10)
    request["input"].append(request["input"][3])
    _write_payload(bundle, 10, request)


def _changed_text_same_id(bundle: Path) -> None:
    request = _payload(bundle, 10)
    request["input"][3]["content"][0]["text"] = "totally different"
    _write_payload(bundle, 10, request)


def _first_sighting_without_id(bundle: Path) -> None:
    request = _payload(bundle, 5)
    del request["input"][3]["id"]
    _write_payload(bundle, 5, request)


def _unaccepted_response(bundle: Path) -> None:
    _edit_lines(bundle, lambda lines: lines.pop(11))


def _failed_partial_response(bundle: Path) -> None:
    def edit(lines: list[dict[str, Any]]) -> None:
        completed = lines[10]["payload"]
        lines[10]["payload"] = {
            "type": "inference_failed",
            "inference_call_id": completed["inference_call_id"],
            "upstream_request_id": None,
            "error": "stream closed",
            "partial_response_payload": completed["response_payload"],
        }

    _edit_lines(bundle, edit)


def _float_arguments(bundle: Path) -> None:
    arguments = '{"z": 1, "b": [1.0, 2.5E20, -0.0, 1e-7, 12345678901234567890], "a": "\\u00e9"}'
    for number in (6, 11):
        value = _payload(bundle, number)
        for item in value.get("output_items", value.get("input", [])):
            if item.get("type") == "function_call":
                item["arguments"] = arguments
        _write_payload(bundle, number, value)


def _output_changes_later(bundle: Path) -> None:
    request = _payload(bundle, 15)
    for item in request["input"]:
        if item.get("type") == "function_call_output" and item["call_id"] == "call_exec_1":
            item["output"] = "different"
    _write_payload(bundle, 15, request)


def _exec_without_process_id(bundle: Path) -> None:
    begin = _payload(bundle, 8)
    del begin["process_id"]
    _write_payload(bundle, 8, begin)


def _stdin_to_unknown_session(bundle: Path) -> None:
    invocation = _payload(bundle, 12)
    arguments = json.loads(invocation["payload"]["arguments"])
    arguments["session_id"] = 999
    invocation["payload"]["arguments"] = json.dumps(arguments)
    _write_payload(bundle, 12, invocation)


def _stdin_unresolved(bundle: Path) -> None:
    _stdin_to_unknown_session(bundle)
    _edit_lines(bundle, lambda lines: lines.pop(20))


def _receipt_body_differs(bundle: Path) -> None:
    receipt = _payload(bundle, 15)
    receipt["content"] = [{"type": "input_text", "text": "zzz"}]
    _write_payload(bundle, 15, receipt)


def _cache_write_missing(bundle: Path) -> None:
    response = _payload(bundle, 6)
    del response["token_usage"]["cache_write_input_tokens"]
    _write_payload(bundle, 6, response)


def _cell_before_its_source(bundle: Path) -> None:
    def edit(lines: list[dict[str, Any]]) -> None:
        lines.insert(20, lines.pop(11))

    _edit_lines(bundle, edit)


EDITS = [
    ("image-fingerprint-matches", "two_turns", _image_in_both_requests),
    ("content-variants", "two_turns", _odd_content),
    ("response-reuses-by-responses-id", "plain", _response_repeats_request_item),
    ("repeated-item-is-new", "two_turns", _request_repeats_item),
    ("same-id-other-text-is-new", "two_turns", _changed_text_same_id),
    ("id-filled-in-later", "two_turns", _first_sighting_without_id),
    ("unaccepted-response-not-in-history", "plain", _unaccepted_response),
    ("failed-partial-not-in-history", "plain", _failed_partial_response),
    ("float-text-in-json-summary", "tool_call", _float_arguments),
    ("output-may-change-per-call-id", "terminal_write_stdin", _output_changes_later),
    ("exec-without-process-id", "terminal_write_stdin", _exec_without_process_id),
    ("stdin-target-resolved", "terminal_write_stdin", _stdin_to_unknown_session),
    ("stdin-own-session", "terminal_write_stdin", _stdin_unresolved),
    ("receipt-body-from-request", "multi_agent_v2_spawn", _receipt_body_differs),
    ("cache-write-defaults-to-zero", "plain", _cache_write_missing),
    ("code-cell-before-its-source", "code_mode_cell", _cell_before_its_source),
]


@pytest.mark.parametrize(("fixture", "edit"), [pytest.param(f, e, id=case) for case, f, e in EDITS])
def test_edited_fixture_matches_codex(
    tmp_path: Path, codex_bin: Path, fixture: str, edit: Callable[[Path], None]
) -> None:
    source = _bundle(fixture)
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    (bundle / "state.json").unlink()
    edit(bundle)
    done = codex_reduce(codex_bin, bundle, tmp_path / "codex.json")
    assert done.returncode == 0, done.stderr
    assert encode_state(reduce_bundle(bundle)) == (tmp_path / "codex.json").read_bytes()


# --- schema 3: edited 0.171.0 fixtures, each checked against the 0.171.0 binary ---

SMALL_3 = FIXTURES / "codex-0.171.0"


class Shards:
    """A copy of a schema 3 fixture whose events and payload records a case may change."""

    def __init__(self, root: Path, scenario: str) -> None:
        source = next((SMALL_3 / scenario).glob("trace-*"))
        self.root = root / source.name
        shutil.copytree(source, self.root)
        (self.root / "state.json").unlink()
        self.lines: list[dict[str, Any]] = [
            json.loads(line) for line in (self.root / "trace.jsonl").read_text().splitlines()
        ]
        self.records: dict[int, dict[str, bytes]] = {}
        for path in sorted((self.root / "payloads").glob("*.zst")):
            data = decompress_shard(path.read_bytes())
            self.records[int(path.stem)] = {
                ident: data[offset : offset + length]
                for ident, offset, length in iter_records(data)
            }

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [line["payload"] for line in self.lines if line["payload"]["type"] == event_type]

    def body(self, payload_id: str) -> bytes:
        return next(r[payload_id] for r in self.records.values() if payload_id in r)

    def set_body(self, payload_id: str, body: bytes, shard: int = 1) -> None:
        for records in self.records.values():
            if payload_id in records:
                records[payload_id] = body
                return
        self.records.setdefault(shard, {})[payload_id] = body

    def cut(self, ref: dict[str, Any], how: str) -> None:
        """Cut a payload as a size limit does: ``omitted`` or ``truncated`` (20 bytes kept)."""
        body = self.body(ref["raw_payload_id"])
        capture: dict[str, Any] = {"status": how, "original_bytes": len(body)}
        if how == "omitted":
            for records in self.records.values():
                records.pop(ref["raw_payload_id"], None)
            ref["shard"] = None
        else:
            self.set_body(ref["raw_payload_id"], body[:20])
            capture["retained_bytes"] = 20
        ref["capture"] = capture

    def split(self, ref: dict[str, Any], key: str, part_id: str, how: str | None) -> None:
        """Split the string after ``key`` out of ``ref``'s body into a ``content_value`` part."""
        text = self.body(ref["raw_payload_id"]).decode()
        start = text.index(key) + len(key)
        end = json.JSONDecoder().raw_decode(text, start)[1]
        self.set_body(ref["raw_payload_id"], json.dumps([text[:start], text[end:]]).encode())
        part: dict[str, Any] = {
            "raw_payload_id": part_id,
            "kind": {"type": "content_value"},
            "shard": 1,
        }
        self.set_body(part_id, text[start:end].encode())
        if how is not None:
            self.cut(part, how)
        ref["parts"] = [part]

    def save(self) -> Path:
        for seq, line in enumerate(self.lines, start=1):
            line["seq"] = seq
        (self.root / "trace.jsonl").write_text(
            "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in self.lines)
        )
        for path in (self.root / "payloads").glob("*.zst"):
            path.unlink()
        for number, records in self.records.items():
            frame = compress_shard(encode_record(i, body) for i, body in records.items())
            (self.root / "payloads" / shard_name(number)).write_bytes(frame)
        return self.root


def _cut(event_type: str, field: str, how: str, index: int = 0) -> Callable[[Shards], None]:
    def edit(bundle: Shards) -> None:
        events = [event for event in bundle.events(event_type) if event.get(field)]
        bundle.cut(events[index][field], how)

    return edit


def _split(event_type: str, field: str, key: str, how: str | None, index: int = 0) -> Any:
    def edit(bundle: Shards) -> None:
        events = [event for event in bundle.events(event_type) if event.get(field)]
        bundle.split(events[index][field], key, "raw_payload:900", how)

    return edit


def _unclosed(bundle: Shards) -> None:
    del bundle.lines[-2:]


def _no_wait_target(bundle: Shards) -> None:
    bundle.lines[:] = [
        line for line in bundle.lines if line["payload"]["type"] != "code_cell_wait_target_resolved"
    ]


def _cut_and_unclosed(bundle: Shards) -> None:
    _cut("protocol_event_observed", "event_payload", "omitted", -1)(bundle)
    del bundle.lines[-1]


def _legacy_delivery(bundle: Shards) -> None:
    """The child's task arrives as the older delivery: an assistant message whose text is a
    serialized InterAgentCommunication (0.169.0 links the spawn edge to it; 0.171.0 does not).
    """
    accepted = next(
        e for e in bundle.events("history_item_accepted") if "agent_message_payload" in e
    )
    bundle.lines[:] = [line for line in bundle.lines if line["payload"] is not accepted]
    ref = bundle.events("inference_started")[2]["request_payload"]["raw_payload_id"]
    request = json.loads(bundle.body(ref))
    index, task = next(
        (i, item) for i, item in enumerate(request["input"]) if item["id"] == accepted["item_id"]
    )
    communication = {
        "author": task["author"],
        "recipient": task["recipient"],
        "other_recipients": [],
        "content": task["content"][-1]["encrypted_content"],
        "trigger_turn": True,
    }
    text = {"type": "output_text", "text": json.dumps(communication), "annotations": []}
    request["input"][index] = {
        "type": "message",
        "id": task["id"],
        "role": "assistant",
        "content": [text],
    }
    bundle.set_body(ref, json.dumps(request).encode())


def _carried_output_changes(bundle: Shards) -> None:
    """The last request carries the first accepted tool output with another text: once a
    request has carried it, it is an ordinary item (no reuse by Responses id), so 0.171.0
    creates a new item where an accepted agent message of the turn would be reused.
    """
    accepted = next(e for e in bundle.events("history_item_accepted") if "tool_output_payload" in e)
    ref = bundle.events("inference_started")[-1]["request_payload"]["raw_payload_id"]
    request = json.loads(bundle.body(ref))
    output = next(item for item in request["input"] if item.get("id") == accepted["item_id"])
    output["output"] = "another text"
    bundle.set_body(ref, json.dumps(request).encode())


EDITS_3 = [
    ("unclosed", "plain", _unclosed),
    ("cut-but-unclosed-is-unclosed", "tool_call", _cut_and_unclosed),
    (
        "cut-protocol-event-is-partial",
        "tool_call",
        _cut("protocol_event_observed", "event_payload", "omitted", -1),
    ),
    ("no-wait-target-no-wait-link", "code_mode_yield_wait", _no_wait_target),
    ("legacy-delivery-is-no-delivery", "multi_agent_v2_spawn", _legacy_delivery),
    ("carried-output-is-reused-once", "terminal_write_stdin", _carried_output_changes),
    ("cut-request", "tool_call", _cut("inference_started", "request_payload", "omitted", 1)),
    ("cut-response", "tool_call", _cut("inference_completed", "response_payload", "omitted")),
    (
        "truncated-response",
        "tool_call",
        _cut("inference_completed", "response_payload", "truncated"),
    ),
    (
        "cut-partial-response",
        "inference_retry",
        _cut("inference_failed", "partial_response_payload", "omitted"),
    ),
    ("cut-metadata", "tool_call", _cut("thread_started", "metadata_payload", "omitted")),
    ("cut-invocation", "tool_call", _cut("tool_call_started", "invocation_payload", "omitted")),
    (
        "cut-runtime-start",
        "tool_call",
        _cut("tool_call_runtime_started", "runtime_payload", "truncated"),
    ),
    ("cut-runtime-end", "tool_call", _cut("tool_call_runtime_ended", "runtime_payload", "omitted")),
    ("cut-result", "tool_call", _cut("tool_call_ended", "result_payload", "omitted")),
    (
        "cut-tool-output",
        "tool_call",
        _cut("history_item_accepted", "tool_output_payload", "omitted"),
    ),
    (
        "cut-stdin-invocation",
        "terminal_write_stdin",
        _cut("tool_call_started", "invocation_payload", "omitted", 1),
    ),
    (
        "cut-stdin-result",
        "terminal_write_stdin",
        _cut("tool_call_ended", "result_payload", "truncated", 1),
    ),
    (
        "cut-checkpoint",
        "compact_remote_manual",
        _cut("compaction_installed", "checkpoint_payload", "omitted"),
    ),
    (
        "cut-compaction-request",
        "compact_remote_manual",
        _cut("compaction_request_started", "request_payload", "omitted"),
    ),
    (
        "cut-agent-message",
        "multi_agent_v2_spawn",
        _cut("history_item_accepted", "agent_message_payload", "omitted"),
    ),
    (
        "cut-agent-runtime-end",
        "multi_agent_v2_spawn",
        _cut("tool_call_runtime_ended", "runtime_payload", "omitted"),
    ),
    (
        "cut-agent-invocation",
        "multi_agent_v2_spawn",
        _cut("tool_call_started", "invocation_payload", "truncated"),
    ),
    (
        "cut-agent-result",
        "multi_agent_v2_spawn",
        _cut("agent_result_observed", "carried_payload", "omitted"),
    ),
    ("cut-cell-response", "code_mode_cell", _cut("code_cell_ended", "response_payload", "omitted")),
    (
        "whole-part-is-inlined",
        "tool_call",
        _split("inference_completed", "response_payload", '"arguments":', None),
    ),
    (
        "cut-text-part-is-a-payload-ref",
        "tool_call",
        _split("inference_completed", "response_payload", '"text":', "truncated", 1),
    ),
    (
        "cut-output-part-is-a-marker",
        "tool_call",
        _split("history_item_accepted", "tool_output_payload", '"output":', "omitted"),
    ),
]


@pytest.mark.parametrize(
    ("fixture", "edit"), [pytest.param(f, e, id=case) for case, f, e in EDITS_3]
)
def test_edited_schema_3_fixture_matches_codex(
    tmp_path: Path, codex_bin_0171: Path, fixture: str, edit: Callable[[Shards], None]
) -> None:
    bundle = Shards(tmp_path, fixture)
    edit(bundle)
    bundle.save()
    done = codex_reduce(codex_bin_0171, bundle.root, tmp_path / "codex.json")
    assert done.returncode == 0, done.stderr
    assert encode_state(reduce_bundle(bundle.root)) == (tmp_path / "codex.json").read_bytes()


REJECTED_3 = [
    (
        "prepared-prompt-not-fragments",
        lambda b: b.set_body(
            b.events("inference_started")[0]["prepared_prompt_payload"]["raw_payload_id"],
            b"garbage",
        ),
    ),
    (
        "fragment-count",
        lambda b: b.set_body(
            b.events("inference_started")[1]["prepared_prompt_payload"]["raw_payload_id"],
            json.dumps(
                json.loads(
                    b.body(
                        b.events("inference_started")[1]["prepared_prompt_payload"][
                            "raw_payload_id"
                        ]
                    )
                )[1:]
            ).encode(),
        ),
    ),
    (
        "part-not-json",
        lambda b: b.set_body(
            b.events("inference_started")[1]["prepared_prompt_payload"]["parts"][-1][
                "raw_payload_id"
            ],
            b"{x",
        ),
    ),
    (
        "unread-payload-not-json",
        lambda b: b.set_body(
            b.events("protocol_event_observed")[-1]["event_payload"]["raw_payload_id"], b"{x"
        ),
    ),
    (
        "unknown-wait-tool",
        lambda b: b.lines.insert(
            -3,
            {
                **b.lines[-3],
                "payload": {
                    "type": "code_cell_wait_target_resolved",
                    "tool_call_id": "nobody",
                    "runtime_cell_id": "1",
                },
            },
        ),
    ),
]


@pytest.mark.parametrize("edit", [pytest.param(e, id=case) for case, e in REJECTED_3])
def test_edited_schema_3_fixture_is_rejected_as_codex_does(
    tmp_path: Path, codex_bin_0171: Path, edit: Callable[[Shards], None]
) -> None:
    bundle = Shards(tmp_path, "tool_call")
    edit(bundle)
    bundle.save()
    done = codex_reduce(codex_bin_0171, bundle.root, tmp_path / "codex.json")
    assert done.returncode != 0
    with pytest.raises(BundleError):
        reduce_bundle(bundle.root)
