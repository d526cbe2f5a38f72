"""Malformed bundles: the reducer rejects each defect class Codex 0.169.0 rejects, naming
file, line and reason; payload paths stay inside the bundle; a torn last line is dropped."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import BundleError, reduce_bundle
from otel_rollout._reduce import encode_state
from otel_rollout.cli import main
from support.codex import codex_reduce

PLAIN = next((Path(__file__).parent / "fixtures" / "codex-0.169.0" / "plain").glob("trace-*"))
TOOL_CALL = next(
    (Path(__file__).parent / "fixtures" / "codex-0.169.0" / "tool_call").glob("trace-*")
)

Lines = list[dict[str, Any]]


class Edit:
    """A copy of a fixture bundle whose event lines and files a case may change."""

    def __init__(self, root: Path, source: Path) -> None:
        self.root = root / source.name
        shutil.copytree(source, self.root)
        (self.root / "state.json").unlink()
        self.lines: Lines = [
            json.loads(line) for line in (self.root / "trace.jsonl").read_text().splitlines()
        ]
        self.tail = b""

    def renumber(self) -> None:
        for seq, line in enumerate(self.lines, start=1):
            line["seq"] = seq

    def save(self) -> Path:
        with (self.root / "trace.jsonl").open("wb") as handle:
            for line in self.lines:
                handle.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            handle.write(self.tail)
        return self.root


def _drop(index: int) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        del bundle.lines[index]

    return edit


def _set(index: int, **fields: object) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        bundle.lines[index].update(fields)

    return edit


def _set_payload(index: int, **fields: object) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        bundle.lines[index]["payload"].update(fields)

    return edit


def _append_copy(index: int) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        bundle.lines.append(json.loads(json.dumps(bundle.lines[index])))
        bundle.lines[-1]["seq"] = len(bundle.lines)

    return edit


def _raw_line(index: int, data: str) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        bundle.lines[index] = {"__raw__": data}

    return edit


def _remove_payload(number: int) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        (bundle.root / "payloads" / f"{number}.json").unlink()

    return edit


def _corrupt_payload(number: int) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        (bundle.root / "payloads" / f"{number}.json").write_text("{not json")

    return edit


def _manifest(**fields: object) -> Callable[[Edit], None]:
    def edit(bundle: Edit) -> None:
        path = bundle.root / "manifest.json"
        manifest = json.loads(path.read_text())
        manifest.update(fields)
        path.write_text(json.dumps(manifest, indent=2))

    return edit


def _then_renumber(edit: Callable[[Edit], None]) -> Callable[[Edit], None]:
    def both(bundle: Edit) -> None:
        edit(bundle)
        bundle.renumber()

    return both


# (case id, edit of the plain fixture, our file, our line, our reason, Codex's message)
CASES = [
    (
        "bad-json",
        _raw_line(5, '{"schema_version":2,'),
        "trace.jsonl",
        6,
        "bad JSON",
        "parse trace event line 6",
    ),
    (
        "unknown-event-type",
        _set_payload(5, type="bogus"),
        "trace.jsonl",
        6,
        "unknown event type 'bogus'",
        "unknown variant `bogus`",
    ),
    (
        "missing-field",
        _set_payload(4, codex_turn_id=None),
        "trace.jsonl",
        5,
        "codex_turn_id",
        "parse trace event line 5",
    ),
    (
        "event-schema-1",
        _set(4, schema_version=1),
        "trace.jsonl",
        5,
        "unsupported event schema_version 1",
        "unsupported trace event schema 1 at line 5",
    ),
    (
        "manifest-schema-1",
        _manifest(schema_version=1),
        "manifest.json",
        0,
        "unsupported schema_version 1",
        "trace schema 1 cannot establish accepted history",
    ),
    (
        "seq-gap",
        _drop(4),
        "trace.jsonl",
        5,
        "missing or reordered event: seq 6, expected 5",
        "missing or reordered trace event 5",
    ),
    (
        "seq-reorder",
        _set(5, seq=3),
        "trace.jsonl",
        6,
        "missing or reordered event: seq 3, expected 6",
        "missing or reordered trace event 6",
    ),
    (
        "other-rollout",
        _set(4, rollout_id="another"),
        "trace.jsonl",
        5,
        "event of another rollout",
        "trace event belongs to another rollout",
    ),
    (
        "after-recording-completed",
        _append_copy(15),
        "trace.jsonl",
        19,
        "event after recording_completed",
        "trace event after recording completed",
    ),
    (
        "turn-of-unknown-thread",
        _set_payload(4, thread_id="nope"),
        "trace.jsonl",
        5,
        "trace event referenced unknown thread nope",
        "trace event referenced unknown thread nope",
    ),
    (
        "inference-on-unknown-turn",
        _set_payload(9, codex_turn_id="nope"),
        "trace.jsonl",
        10,
        "inference start",
        "referenced unknown codex turn nope",
    ),
    (
        "end-of-unknown-turn",
        _set_payload(12, codex_turn_id="nope"),
        "trace.jsonl",
        13,
        "codex turn end referenced unknown turn nope",
        "codex turn end referenced unknown turn nope",
    ),
    (
        "duplicate-thread-start",
        _then_renumber(lambda b: b.lines.insert(2, dict(b.lines[1]))),
        "trace.jsonl",
        3,
        "duplicate thread start",
        "duplicate thread start for",
    ),
    (
        "acceptance-without-thread",
        _set(6, thread_id=None),
        "trace.jsonl",
        7,
        "history acceptance has no thread",
        "history acceptance has no thread",
    ),
    (
        "missing-payload",
        _remove_payload(5),
        "trace.jsonl",
        10,
        "payloads/5.json' is missing",
        "open payload raw_payload:5",
    ),
    (
        "payload-not-json",
        _corrupt_payload(5),
        "trace.jsonl",
        10,
        "is not JSON",
        "parse payload raw_payload:5",
    ),
    (
        "other-event",
        _set_payload(2, type="other", kind="k", summary="s", payloads=[], metadata=None),
        "trace.jsonl",
        3,
        "no reducer implementation",
        "raw trace event has no reducer implementation",
    ),
]


def _apply(tmp_path: Path, edit: Callable[[Edit], None]) -> Path:
    bundle = Edit(tmp_path, PLAIN)
    edit(bundle)
    raw = [line for line in bundle.lines]
    with (bundle.root / "trace.jsonl").open("wb") as handle:
        for line in raw:
            if "__raw__" in line:
                handle.write(str(line["__raw__"]).encode() + b"\n")
            else:
                handle.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
    return bundle.root


@pytest.mark.parametrize(
    ("edit", "file", "line", "reason"),
    [
        pytest.param(edit, file, line, reason, id=case)
        for case, edit, file, line, reason, _ in CASES
    ],
)
def test_defect_is_rejected_with_file_line_and_reason(
    tmp_path: Path, edit: Callable[[Edit], None], file: str, line: int, reason: str
) -> None:
    bundle = _apply(tmp_path, edit)
    with pytest.raises(BundleError) as caught:
        reduce_bundle(bundle)
    assert Path(caught.value.path) == bundle / file
    assert caught.value.line == line
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("edit", "message"),
    [pytest.param(edit, message, id=case) for case, edit, _, _, _, message in CASES],
)
def test_codex_rejects_the_same_defect(
    tmp_path: Path, codex_bin: Path, edit: Callable[[Edit], None], message: str
) -> None:
    bundle = _apply(tmp_path, edit)
    done = codex_reduce(codex_bin, bundle, tmp_path / "out.json")
    assert done.returncode != 0
    assert message in done.stderr


def test_cli_reports_defect_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = _apply(tmp_path, _drop(4))
    assert main(["reduce", str(bundle)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"otel-rollout: {bundle / 'trace.jsonl'}:5: missing or reordered event: seq 6, expected 5\n"
    )
    assert not (bundle / "state.json").exists()


def test_cli_missing_bundle_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["reduce", str(tmp_path / "absent")]) == 2


# --- payload confinement: Codex follows these paths out of the bundle; we refuse ---


def _point_request_at(tmp_path: Path, path: str) -> Path:
    bundle = Edit(tmp_path, PLAIN)
    bundle.lines[9]["payload"]["request_payload"]["path"] = path
    return bundle.save()


def test_payload_path_with_dotdot_is_refused(tmp_path: Path) -> None:
    bundle = _point_request_at(tmp_path, "../outside.json")
    (tmp_path / "outside.json").write_bytes((bundle / "payloads" / "5.json").read_bytes())
    with pytest.raises(BundleError) as caught:
        reduce_bundle(bundle)
    assert caught.value.line == 10
    assert "leaves the bundle" in caught.value.reason


def test_absolute_payload_path_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    bundle = _point_request_at(tmp_path, str(outside))
    outside.write_bytes((bundle / "payloads" / "5.json").read_bytes())
    with pytest.raises(BundleError) as caught:
        reduce_bundle(bundle)
    assert caught.value.line == 10
    assert "absolute" in caught.value.reason


def test_payload_symlink_out_of_the_bundle_is_refused(tmp_path: Path) -> None:
    bundle = Edit(tmp_path, PLAIN).save()
    outside = tmp_path / "outside.json"
    request = bundle / "payloads" / "5.json"
    outside.write_bytes(request.read_bytes())
    request.unlink()
    request.symlink_to(outside)
    with pytest.raises(BundleError) as caught:
        reduce_bundle(bundle)
    assert caught.value.line == 10
    assert "leads out of the bundle" in caught.value.reason


# --- a crashed recorder: no rollout_ended, torn last line ---


def _crashed(tmp_path: Path, torn: bytes) -> Path:
    bundle = Edit(tmp_path, TOOL_CALL)
    bundle.lines = bundle.lines[:-6]
    bundle.tail = torn
    return bundle.save()


def test_torn_last_line_is_dropped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torn = _crashed(tmp_path / "torn", b'{"schema_version":2,"seq":21,"wall_ti')
    whole = _crashed(tmp_path / "whole", b"")
    with caplog.at_level(logging.WARNING, logger="otel_rollout"):
        trace = reduce_bundle(torn)
    assert trace.status == "running"
    assert trace.recording_complete is False
    assert encode_state(trace) == encode_state(reduce_bundle(whole))
    assert any("torn last line" in record.getMessage() for record in caplog.records)


def test_cli_warns_about_torn_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torn = _crashed(tmp_path, b'{"schema_version":2,"seq')
    assert main(["reduce", str(torn)]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("otel-rollout: warning: ")
    assert "torn last line" in captured.err


def test_torn_bundle_equals_codex_without_the_torn_line(tmp_path: Path, codex_bin: Path) -> None:
    torn = _crashed(tmp_path / "torn", b'{"schema_version":2,"seq":21,"wall_ti')
    whole = _crashed(tmp_path / "whole", b"")
    done = codex_reduce(codex_bin, whole, tmp_path / "codex.json")
    assert done.returncode == 0, done.stderr
    assert encode_state(reduce_bundle(torn)) == (tmp_path / "codex.json").read_bytes()
    refused = codex_reduce(codex_bin, torn, tmp_path / "refused.json")
    assert refused.returncode != 0


# --- multi-agent payloads: checked like Codex's serde types ---

MULTI_AGENT = next(
    (Path(__file__).parent / "fixtures" / "codex-0.169.0" / "multi_agent_v2_spawn").glob("trace-*")
)

AGENT_CASES = [
    # (case id, payload number, change, our line, our reason, Codex's message)
    (
        "receipt-of-another-item",
        15,
        {"id": "other"},
        29,
        "accepted agent message does not match receipt",
        "does not match receipt",
    ),
    (
        "activity-kind-unknown",
        11,
        {"kind": "bogus"},
        20,
        "invalid `kind`",
        "unknown variant `bogus`",
    ),
    (
        "activity-thread-not-uuid",
        11,
        {"agent_thread_id": "zz"},
        20,
        "invalid `agent_thread_id`",
        "invalid character",
    ),
    (
        "activity-relative-path",
        11,
        {"agent_path": "calc"},
        20,
        "invalid `agent_path`",
        "absolute agent paths must start with `/root`",
    ),
    (
        "activity-kind-mismatch",
        11,
        {"kind": "interacted"},
        20,
        "sub-agent activity Interacted does not match tool call kind SpawnAgent",
        "sub-agent activity Interacted does not match tool call kind SpawnAgent",
    ),
]


def _agent_bundle(tmp_path: Path, number: int, change: dict[str, object]) -> Path:
    bundle = Edit(tmp_path, MULTI_AGENT).save()
    path = bundle / "payloads" / f"{number}.json"
    payload = json.loads(path.read_text())
    payload.update(change)
    path.write_text(json.dumps(payload, indent=2))
    return bundle


@pytest.mark.parametrize(
    ("number", "change", "line", "reason"),
    [pytest.param(n, c, line, r, id=case) for case, n, c, line, r, _ in AGENT_CASES],
)
def test_agent_payload_defect_is_rejected(
    tmp_path: Path, number: int, change: dict[str, object], line: int, reason: str
) -> None:
    bundle = _agent_bundle(tmp_path, number, change)
    with pytest.raises(BundleError) as caught:
        reduce_bundle(bundle)
    assert caught.value.line == line
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("number", "change", "message"),
    [pytest.param(n, c, m, id=case) for case, n, c, _, _, m in AGENT_CASES],
)
def test_codex_rejects_the_same_agent_payload_defect(
    tmp_path: Path, codex_bin: Path, number: int, change: dict[str, object], message: str
) -> None:
    bundle = _agent_bundle(tmp_path, number, change)
    done = codex_reduce(codex_bin, bundle, tmp_path / "out.json")
    assert done.returncode != 0
    assert message in done.stderr
