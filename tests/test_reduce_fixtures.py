"""The reducer reproduces Codex 0.169.0's state.json byte for byte on every real fixture bundle."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import RolloutTrace, reduce_bundle, write_state
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


def _id(bundle: Path) -> str:
    return f"{bundle.parent.parent.name}/{bundle.parent.name}"


def test_all_twelve_fixtures_are_found() -> None:
    assert len(BUNDLES) == 12


@pytest.mark.parametrize("bundle", BUNDLES, ids=_id)
def test_state_is_byte_identical_to_codex(bundle: Path) -> None:
    trace = reduce_bundle(bundle)
    assert isinstance(trace, RolloutTrace)
    assert encode_state(trace) == (bundle / "state.json").read_bytes()


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
