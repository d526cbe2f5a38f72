"""validate_bundle finds each defect at the right line; the tests build the broken bundles."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec
import pytest

from otel_rollout import events
from otel_rollout._bundle._json import encode_compact, encode_pretty
from otel_rollout._bundle._models import SCHEMA_2, ExecutionStatus, PayloadKind, RolloutStatus
from otel_rollout._bundle._validate import ValidationReport, validate_bundle
from otel_rollout._bundle._writer import BundleWriter

ROOT = "01a21675-4848-7d72-9a92-31870d0365f8"
TURN = "01a21675-4890-7000-8000-000000000001"
FIXTURES = Path(__file__).parent / "fixtures"

# Line numbers of the bundle built by `bundle` below.
META_LINE, PROTOCOL_LINE, RESULT_LINE, LAST_LINE = 2, 4, 6, 9


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A small valid bundle: 9 events, 1 thread, 1 turn, 3 payloads."""
    with BundleWriter.create(
        tmp_path, root_thread_id=ROOT, trace_id="trace-1", schema_version=SCHEMA_2
    ) as writer:
        meta = writer.write_payload(PayloadKind.SESSION_METADATA, {"thread_id": ROOT})
        protocol = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"type": "turn_started"})
        result = writer.write_payload(PayloadKind.TOOL_RESULT, {"type": "error", "error": "no"})
        assert meta and protocol and result
        context: dict[str, Any] = {"thread_id": ROOT, "codex_turn_id": TURN}
        writer.append(events.RolloutStarted(trace_id="trace-1", root_thread_id=ROOT))
        writer.append(
            events.ThreadStarted(thread_id=ROOT, agent_path="/root", metadata_payload=meta)
        )
        writer.append(events.CodexTurnStarted(codex_turn_id=TURN, thread_id=ROOT), **context)
        writer.append(
            events.ProtocolEventObserved(event_type="turn_started", event_payload=protocol)
        )
        writer.append(
            events.ToolCallStarted(
                tool_call_id="call_1",
                model_visible_call_id="call_1",
                requester=events.ModelRequester(),
                kind=events.ExecCommandKind(),
                summary=events.GenericSummary(label="exec_command"),
            ),
            **context,
        )
        writer.append(
            events.ToolCallEnded(
                tool_call_id="call_1", status=ExecutionStatus.FAILED, result_payload=result
            ),
            **context,
        )
        writer.append(
            events.CodexTurnEnded(codex_turn_id=TURN, status=ExecutionStatus.COMPLETED), **context
        )
        writer.append(events.ThreadEnded(thread_id=ROOT, status=RolloutStatus.COMPLETED))
        writer.append(events.RecordingCompleted())
    return writer.bundle_dir


def _log(bundle: Path) -> Path:
    return bundle / "trace.jsonl"


def _read_lines(bundle: Path) -> list[bytes]:
    return _log(bundle).read_bytes().splitlines()


def _write_lines(bundle: Path, lines: list[bytes]) -> None:
    _log(bundle).write_bytes(b"".join(line + b"\n" for line in lines))


def _edit_line(bundle: Path, number: int, change: Any) -> None:
    """Decode line ``number`` (1-based) as a dict, let ``change`` mutate it, write it back."""
    lines = _read_lines(bundle)
    value = msgspec.json.decode(lines[number - 1])
    change(value)
    lines[number - 1] = encode_compact(value)
    _write_lines(bundle, lines)


def _problems(report: ValidationReport) -> list[tuple[str, int, str]]:
    return [(Path(p.path).name, p.line, p.reason) for p in report.problems]


def _only_problem(bundle: Path) -> tuple[str, int, str]:
    report = validate_bundle(bundle)
    problems = _problems(report)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_bundle_summary(bundle: Path) -> None:
    report = validate_bundle(bundle)
    assert report.ok and not report.warnings
    size = sum(path.stat().st_size for path in bundle.rglob("*") if path.is_file())
    assert report.summary() == f"ok: 9 events, 1 thread, 1 turn, 3 payloads, {size} bytes"


@pytest.mark.parametrize("bundle_dir", sorted(FIXTURES.glob("codex-0.169.0/*/trace-*")))
def test_every_codex_fixture_is_valid(bundle_dir: Path) -> None:
    report = validate_bundle(bundle_dir)
    assert report.ok, report.problems
    assert report.events == len(_read_lines(bundle_dir))


def test_bad_json(bundle: Path) -> None:
    lines = _read_lines(bundle)
    lines[2] = lines[2][:-5]
    _write_lines(bundle, lines)
    name, line, reason = _only_problem(bundle)
    assert (name, line) == ("trace.jsonl", 3) and reason.startswith("bad JSON")


def test_unknown_event_type(bundle: Path) -> None:
    _edit_line(bundle, 3, lambda v: v["payload"].update(type="turn_teleported"))
    assert _only_problem(bundle) == ("trace.jsonl", 3, "unknown event type 'turn_teleported'")


def test_missing_field(bundle: Path) -> None:
    _edit_line(bundle, 3, lambda v: v["payload"].pop("codex_turn_id"))
    name, line, reason = _only_problem(bundle)
    assert (name, line) == ("trace.jsonl", 3)
    assert reason.startswith("missing field: `codex_turn_id`")


def test_missing_envelope_field_keeps_seq_in_step(bundle: Path) -> None:
    _edit_line(bundle, 5, lambda v: v.pop("rollout_id"))
    name, line, reason = _only_problem(bundle)
    assert (line, reason.startswith("missing field: `rollout_id`")) == (5, True)


def test_manifest_schema_version_is_reported_at_line_0(bundle: Path) -> None:
    manifest = msgspec.json.decode((bundle / "manifest.json").read_bytes())
    manifest["schema_version"] = 1
    (bundle / "manifest.json").write_bytes(encode_pretty(manifest))
    assert _only_problem(bundle) == (
        "manifest.json",
        0,
        "schema_version 1 is not supported (expected 2 or 3)",
    )


def test_event_schema_version(bundle: Path) -> None:
    _edit_line(bundle, 4, lambda v: v.update(schema_version=1))
    assert _only_problem(bundle) == (
        "trace.jsonl",
        4,
        "schema_version 1 is not supported (expected 2)",
    )


def test_seq_gap_is_reported_once_then_resynchronized(bundle: Path) -> None:
    lines = _read_lines(bundle)
    del lines[2]  # seq 3 missing: line 3 now holds seq 4
    _write_lines(bundle, lines)
    assert _only_problem(bundle) == ("trace.jsonl", 3, "seq gap: expected 3, found 4")


def test_seq_disorder_is_reported_once_then_resynchronized(bundle: Path) -> None:
    lines = _read_lines(bundle)
    lines.insert(4, lines[1])  # seq 2 again after seq 4; lines after it go on from 5
    _write_lines(bundle, lines)
    report = validate_bundle(bundle)
    assert _problems(report) == [
        ("trace.jsonl", 5, "seq disorder: expected 5, found 2"),
        ("trace.jsonl", 6, "seq gap: expected 3, found 5"),
    ]


def test_seq_restart_is_reported_once(bundle: Path) -> None:
    _edit_line(bundle, 1, lambda v: v.update(seq=0))
    lines = _read_lines(bundle)
    for number in range(2, len(lines) + 1):
        _edit_line(bundle, number, lambda v: v.update(seq=v["seq"] - 1))
    assert _only_problem(bundle) == ("trace.jsonl", 1, "seq disorder: expected 1, found 0")


def test_rollout_id_differs_from_manifest(bundle: Path) -> None:
    _edit_line(bundle, 6, lambda v: v.update(rollout_id="someone-else"))
    assert _only_problem(bundle) == (
        "trace.jsonl",
        6,
        f"rollout_id 'someone-else' differs from the manifest's '{ROOT}'",
    )


def test_event_after_recording_completed(bundle: Path) -> None:
    lines = _read_lines(bundle)
    extra = msgspec.json.decode(lines[-2])
    extra["seq"] = LAST_LINE + 1
    _write_lines(bundle, [*lines, encode_compact(extra)])
    assert _only_problem(bundle) == (
        "trace.jsonl",
        LAST_LINE + 1,
        f"event after recording_completed (line {LAST_LINE})",
    )


def test_payload_missing(bundle: Path) -> None:
    (bundle / "payloads" / "2.json").unlink()
    assert _only_problem(bundle) == (
        "trace.jsonl",
        PROTOCOL_LINE,
        "payload file 'payloads/2.json' is missing",
    )


def test_payload_not_json(bundle: Path) -> None:
    (bundle / "payloads" / "3.json").write_bytes(b'{\n  "type": "error",\n')
    name, line, reason = _only_problem(bundle)
    assert (name, line) == ("trace.jsonl", RESULT_LINE)
    assert reason.startswith("payload file 'payloads/3.json' is not JSON")


def _set_metadata_path(bundle: Path, path: str) -> None:
    _edit_line(bundle, META_LINE, lambda v: v["payload"]["metadata_payload"].update(path=path))


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../manifest.json", "payload path '../manifest.json' leaves the bundle (..)"),
        ("payloads/../../x.json", "payload path 'payloads/../../x.json' leaves the bundle (..)"),
        ("/etc/hostname", "payload path '/etc/hostname' is absolute"),
        ("", "payload path '' is not a file path"),
    ],
)
def test_payload_path_escaping_the_bundle(bundle: Path, path: str, reason: str) -> None:
    _set_metadata_path(bundle, path)
    assert _only_problem(bundle) == ("trace.jsonl", META_LINE, reason)


def test_payload_symlink_leading_out(bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_bytes(b"{}")
    (bundle / "payloads" / "evil.json").symlink_to(outside)
    _set_metadata_path(bundle, "payloads/evil.json")
    assert _only_problem(bundle) == (
        "trace.jsonl",
        META_LINE,
        "payload path 'payloads/evil.json' leads out of the bundle",
    )


def test_payload_symlink_inside_is_fine(bundle: Path) -> None:
    (bundle / "payloads" / "alias.json").symlink_to("1.json")
    _set_metadata_path(bundle, "payloads/alias.json")
    assert validate_bundle(bundle).ok


def test_payloads_dir_symlinked_out(bundle: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere"
    (bundle / "payloads").rename(moved)
    (bundle / "payloads").symlink_to(moved)
    report = validate_bundle(bundle)
    assert {(line, reason.split("'")[2]) for _, line, reason in _problems(report)} == {
        (META_LINE, " leads out of the bundle"),
        (PROTOCOL_LINE, " leads out of the bundle"),
        (RESULT_LINE, " leads out of the bundle"),
    }


def test_torn_last_line_is_a_warning_not_an_error(bundle: Path) -> None:
    with _log(bundle).open("ab") as log:
        log.write(b'{"schema_version":2,"seq":10,"wall_ti')
    report = validate_bundle(bundle)
    assert report.ok and report.events == 9
    assert [(w.line, w.reason) for w in report.warnings] == [
        (10, "torn last line (37 bytes after the last newline) ignored")
    ]


def test_at_most_100_problems(bundle: Path) -> None:
    lines = _read_lines(bundle)
    _write_lines(bundle, lines[:3] + [b"not json"] * 150 + lines[3:])
    report = validate_bundle(bundle)
    assert len(report.problems) == 100 and report.truncated
    assert report.problems[0].line == 4 and report.problems[-1].line == 103
    assert validate_bundle(bundle, max_problems=3).problems[-1].line == 6


def test_events_after_recording_completed_are_reported_once(bundle: Path) -> None:
    _write_lines(bundle, [*_read_lines(bundle), b"not json", b"nor this"])
    assert [(line, reason[:8]) for _, line, reason in _problems(validate_bundle(bundle))] == [
        (10, "bad JSON"),
        (10, "event af"),
        (11, "bad JSON"),
    ]


def test_several_defects_are_all_reported(bundle: Path) -> None:
    (bundle / "payloads" / "2.json").unlink()
    _edit_line(bundle, 6, lambda v: v.update(rollout_id="x", schema_version=3))
    report = validate_bundle(bundle)
    assert [(line, reason.split(" ")[0]) for _, line, reason in _problems(report)] == [
        (PROTOCOL_LINE, "payload"),
        (6, "schema_version"),
        (6, "rollout_id"),
    ]


def test_bad_manifest_still_checks_the_events(bundle: Path) -> None:
    (bundle / "manifest.json").write_bytes(b'{"schema_version": 2,')
    lines = _read_lines(bundle)
    lines[6] = b"{"
    _write_lines(bundle, lines)
    report = validate_bundle(bundle)
    assert [(name, line) for name, line, _ in _problems(report)] == [
        ("manifest.json", 0),
        ("trace.jsonl", 7),
    ]
    assert report.problems[0].reason.startswith("bad JSON")


def test_manifest_missing_field(bundle: Path) -> None:
    (bundle / "manifest.json").write_bytes(b'{"schema_version": 2, "trace_id": "t"}')
    name, line, reason = _only_problem(bundle)
    assert (name, line) == ("manifest.json", 0) and reason.startswith("missing field: `rollout_id`")


def test_missing_files_and_directories(bundle: Path, tmp_path: Path) -> None:
    _log(bundle).unlink()
    assert _only_problem(bundle)[:2] == ("trace.jsonl", 0)
    (bundle / "manifest.json").unlink()
    report = validate_bundle(bundle)
    assert [(name, line) for name, line, _ in _problems(report)] == [
        ("manifest.json", 0),
        ("trace.jsonl", 0),
    ]
    assert not report.unreadable
    missing = validate_bundle(tmp_path / "nope")
    assert missing.unreadable and _problems(missing) == [("nope", 0, "no such directory")]


def test_problem_renders_as_path_line_reason(bundle: Path) -> None:
    _edit_line(bundle, 4, lambda v: v.update(schema_version=1))
    (problem,) = validate_bundle(bundle).problems
    assert str(problem) == (
        f"{os.fspath(_log(bundle))}:4: schema_version 1 is not supported (expected 2)"
    )
