"""``otel-rollout convert``: schema 2 <-> 3, judged by the Codex version that reads each schema."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from otel_rollout._bundle._bodies import session_metadata_to
from otel_rollout._bundle._convert import ConvertError, convert_bundle
from otel_rollout._bundle._models import (
    HistoryItemAccepted,
    InferenceStarted,
    PayloadKind,
    RawPayloadRef,
    ThreadStarted,
)
from otel_rollout._bundle._reader import Bundle
from otel_rollout._bundle._validate import validate_bundle
from otel_rollout._reduce import encode_state, reduce_bundle
from otel_rollout.cli import main
from support.codex import codex_reduce

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA_2_BUNDLES = sorted(
    bundle
    for fixtures in ("codex-0.169.0", "codex-0.169.0-large")
    for bundle in (FIXTURES / fixtures).glob("*/trace-*")
)
SCHEMA_3_BUNDLES = sorted((FIXTURES / "codex-0.171.0").glob("*/trace-*"))
"""The 0.171.0 fixtures recorded without size limits: every one representable in schema 2."""
LIMITED_BUNDLES = sorted((FIXTURES / "codex-0.171.0-limits").glob("*/trace-*"))
COUNTED = ("threads", "codex_turns", "inference_calls", "tool_calls", "conversation_items")


def _name(bundle: Path) -> str:
    return f"{bundle.parents[1].name}/{bundle.parent.name}"


def _counts(state_file: Path) -> dict[str, int]:
    state = json.loads(state_file.read_bytes())
    return {table: len(state[table]) for table in COUNTED}


@pytest.mark.codex
@pytest.mark.parametrize("source", SCHEMA_2_BUNDLES, ids=_name)
def test_2_to_3_is_accepted_by_codex_0171_reduced_to_its_bytes_with_the_same_counts(
    codex_bin: Path, codex_bin_0171: Path, source: Path, tmp_path: Path
) -> None:
    converted = convert_bundle(source, tmp_path / "out", 3)

    done = codex_reduce(codex_bin_0171, converted, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    before = codex_reduce(codex_bin, source, tmp_path / "source.json")
    assert before.returncode == 0, before.stderr
    assert _counts(tmp_path / "state.json") == _counts(tmp_path / "source.json")
    state = json.loads((tmp_path / "state.json").read_bytes())
    assert state["schema_version"] == 3 and state["recording_status"] == "complete"
    assert encode_state(reduce_bundle(converted)) == (tmp_path / "state.json").read_bytes()


@pytest.mark.codex
@pytest.mark.parametrize("source", SCHEMA_3_BUNDLES, ids=_name)
def test_3_to_2_is_accepted_by_codex_0169_and_reduced_to_its_bytes(
    codex_bin: Path, source: Path, tmp_path: Path
) -> None:
    converted = convert_bundle(source, tmp_path / "out", 2)

    report = validate_bundle(converted)
    assert report.ok, [str(problem) for problem in report.problems]
    done = codex_reduce(codex_bin, converted, tmp_path / "state.json")
    assert done.returncode == 0, done.stderr
    assert encode_state(reduce_bundle(converted)) == (tmp_path / "state.json").read_bytes()
    assert _counts(tmp_path / "state.json") == _counts(source / "state.json")


def test_2_to_3_adds_prompts_tool_outputs_and_renames_the_sandbox(tmp_path: Path) -> None:
    source = next(b for b in SCHEMA_2_BUNDLES if b.parent.name == "tool_call")
    converted = Bundle(convert_bundle(source, tmp_path, 3))

    assert converted.manifest.schema_version == 3
    events = [event for _, event in converted.events()]
    inferences = [e.payload for e in events if isinstance(e.payload, InferenceStarted)]
    assert inferences
    for inference in inferences:
        prompt_ref = inference.prepared_prompt_payload
        assert isinstance(prompt_ref, RawPayloadRef) and isinstance(prompt_ref.parts, list)
        assert prompt_ref.kind.type is PayloadKind.PREPARED_PROMPT
        request = converted.read_payload(inference.request_payload)
        assert len(prompt_ref.parts) == len(request["input"])
        fragments = converted.read_payload(prompt_ref)
        assert fragments[-1].endswith(
            '"output_schema":null,"output_schema_strict":true,'
            '"prompt_cache_ttl":null,"cyber_access_program":null}'
        )
    outputs = [
        e.payload
        for e in events
        if isinstance(e.payload, HistoryItemAccepted) and e.payload.tool_output_payload
    ]
    assert len(outputs) == 1
    ref = outputs[0].tool_output_payload
    assert ref is not None and ref.kind.type is PayloadKind.PROTOCOL_EVENT
    assert converted.read_payload(ref)["type"] == "function_call_output"
    started = [e.payload for e in events if isinstance(e.payload, ThreadStarted)]
    assert started and started[0].metadata_payload is not None
    metadata = converted.read_payload(started[0].metadata_payload)
    assert metadata["permissions_profile"] == "danger-full-access"
    assert "sandbox_policy" not in metadata


def test_3_to_2_drops_wait_targets_and_renumbers(tmp_path: Path) -> None:
    source = next(b for b in SCHEMA_3_BUNDLES if b.parent.name == "code_mode_yield_wait")
    converted = convert_bundle(source, tmp_path, 2)

    lines = [json.loads(line) for line in (converted / "trace.jsonl").read_bytes().splitlines()]
    source_lines = (source / "trace.jsonl").read_bytes().splitlines()
    assert len(lines) == len(source_lines) - 1
    assert [line["seq"] for line in lines] == list(range(1, len(lines) + 1))
    assert {line["schema_version"] for line in lines} == {2}
    types = {line["payload"]["type"] for line in lines}
    assert "code_cell_wait_target_resolved" not in types
    for line in lines:
        assert "prepared_prompt_payload" not in line["payload"]
        assert "tool_output_payload" not in line["payload"]
    assert sorted(p.suffix for p in (converted / "payloads").iterdir()) == [".json"] * len(
        list((converted / "payloads").iterdir())
    )


@pytest.mark.parametrize("source", LIMITED_BUNDLES, ids=_name)
def test_a_cut_payload_cannot_go_back_to_schema_2(source: Path, tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match=r"(truncated|omitted) by a size limit"):
        convert_bundle(source, tmp_path, 2)
    assert not (tmp_path / "out").exists() and not list(tmp_path.iterdir())


def test_converting_to_the_same_schema_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConvertError, match="already schema 3"):
        convert_bundle(SCHEMA_3_BUNDLES[0], tmp_path, 3)


def test_session_metadata_round_trips() -> None:
    two = {"model": "m", "sandbox_policy": "DangerFullAccess", "x": 1}
    three = session_metadata_to(two, 3)
    assert list(three) == ["model", "permissions_profile", "x"]
    assert three["permissions_profile"] == "danger-full-access"
    assert session_metadata_to(three, 2) == two
    assert session_metadata_to({"sandbox_policy": "WorkspaceWrite"}, 3) == {
        "permissions_profile": "workspace-write"
    }


def test_cli_convert_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = SCHEMA_2_BUNDLES[0]
    assert main(["convert", str(source), "--to", "3", "-o", str(tmp_path / "three")]) == 0
    three = Path(capsys.readouterr().out.strip())
    assert json.loads((three / "manifest.json").read_bytes())["schema_version"] == 3
    assert main(["convert", str(three), "--to", "2", "-o", str(tmp_path / "two")]) == 0
    two = Path(capsys.readouterr().out.strip())
    assert json.loads((two / "manifest.json").read_bytes())["schema_version"] == 2
    assert (two / "trace.jsonl").read_bytes().count(b"\n") == (
        (source / "trace.jsonl").read_bytes().count(b"\n")
    )


def test_cli_convert_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(LIMITED_BUNDLES[0]), "--to", "2", "-o", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("otel-rollout: cannot convert to schema 2: payload raw_payload:")
    assert main(["convert", str(SCHEMA_3_BUNDLES[0]), "--to", "4", "-o", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("otel-rollout: ")
    assert main(["convert", str(tmp_path / "missing"), "--to", "3", "-o", str(tmp_path)]) == 2
    broken = tmp_path / "broken"
    shutil.copytree(SCHEMA_2_BUNDLES[0], broken)
    (broken / "manifest.json").write_bytes(b"{")
    assert main(["convert", str(broken), "--to", "3", "-o", str(tmp_path / "b")]) == 1
    assert "manifest.json:0: bad JSON" in capsys.readouterr().err
    blocked = tmp_path / "blocked"
    blocked.write_bytes(b"")
    assert main(["convert", str(SCHEMA_2_BUNDLES[0]), "--to", "3", "-o", str(blocked)]) == 2
    assert capsys.readouterr().err.startswith("otel-rollout: ")


def test_convert_is_listed_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "convert" in capsys.readouterr().out
