"""Reducer rules found by editing fixtures one way and running the real Codex on them
(issue 13, item 7): each edited bundle reduces as Codex reduces it, verdict and state."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from otel_rollout import BundleError, reduce_bundle
from otel_rollout._reduce import encode_state
from support.codex import codex_reduce
from support.synthetic import SyntheticOptions, generate_bundle

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169.0"
_FUNCTION = {"type": "function", "arguments": '{"session_id": 44678, "chars": "abc\\n"}'}

NAMESPACED_INVOCATIONS: dict[str, dict[str, Any]] = {
    "a namespace": {
        "tool_name": "write_stdin",
        "tool_namespace": "functions",
        "payload": _FUNCTION,
    },
    "an empty namespace": {"tool_name": "write_stdin", "tool_namespace": "", "payload": _FUNCTION},
    "another tool": {"tool_name": "other", "tool_namespace": "x", "payload": _FUNCTION},
    "a custom payload": {
        "tool_name": "write_stdin",
        "tool_namespace": "x",
        "payload": {"type": "custom", "input": "x"},
    },
    "no arguments": {
        "tool_name": "write_stdin",
        "tool_namespace": "x",
        "payload": {"type": "function"},
    },
    "a namespace that is a number": {
        "tool_name": "write_stdin",
        "tool_namespace": 5,
        "payload": _FUNCTION,
    },
    "no payload": {"tool_name": "write_stdin", "tool_namespace": "x"},
}


def _ours(bundle: Path) -> bytes | None:
    try:
        return encode_state(reduce_bundle(bundle, warn=lambda _: None))
    except BundleError:
        return None


def _copy(scenario: str, tmp_path: Path) -> Path:
    (source,) = (FIXTURES / scenario).glob("trace-*")
    bundle = tmp_path / source.name
    shutil.copytree(source, bundle)
    (bundle / "state.json").unlink()
    return bundle


def _codex(codex_bin: Path, bundle: Path) -> bytes | None:
    out = bundle.parent / "codex-state.json"
    done = codex_reduce(codex_bin, bundle, out)
    return out.read_bytes() if done.returncode == 0 else None


@pytest.mark.parametrize("invocation", NAMESPACED_INVOCATIONS.values(), ids=NAMESPACED_INVOCATIONS)
def test_a_namespaced_write_stdin_invocation_is_no_terminal_dispatch(
    invocation: dict[str, Any], tmp_path: Path, codex_bin: Path
) -> None:
    """A non-null ``tool_namespace``: no terminal operation and no write_stdin checks (the
    tool is not write_stdin's dispatch), once the envelope has the right shape."""
    bundle = _copy("terminal_write_stdin", tmp_path)
    (bundle / "payloads" / "12.json").write_text(json.dumps(invocation))
    theirs = _codex(codex_bin, bundle)
    if isinstance(invocation.get("tool_namespace"), str) and "payload" in invocation:
        assert theirs is not None  # the cases this test is about
    assert _ours(bundle) == theirs


def _spawn_bundle(tmp_path: Path) -> Path:
    """A schema 2 synthetic bundle with a spawn end payload (``"reasoning_effort": "medium"``)."""
    options = SyntheticOptions(crash=False, schema_version=2)
    bundle = generate_bundle(tmp_path / "spawn", 1, options)  # seed 1: a collab (v1) spawn
    assert any(_SPAWN_EFFORT in path.read_text() for path in (bundle / "payloads").iterdir())
    return bundle


_SPAWN_EFFORT = '"reasoning_effort": "medium"'


@pytest.mark.parametrize("effort", ["", " ", "anything"])
@pytest.mark.parametrize("payload", ["spawn end", "sub-agent activity"])
def test_an_empty_reasoning_effort_is_refused(
    payload: str, effort: str, tmp_path: Path, codex_bin: Path
) -> None:
    """Codex refuses ``"reasoning_effort": ""`` (``must not be empty``), in a spawn end
    payload and in a sub-agent activity one; any other string is taken."""
    if payload == "spawn end":
        bundle = _spawn_bundle(tmp_path)
        for path in (bundle / "payloads").iterdir():
            text = path.read_text()
            path.write_text(
                text.replace(_SPAWN_EFFORT, f'"reasoning_effort": {json.dumps(effort)}')
            )
    else:
        bundle = _copy("multi_agent_v2_spawn", tmp_path)
        path = bundle / "payloads" / "11.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "reasoning_effort": effort}))
    theirs = _codex(codex_bin, bundle)
    assert (theirs is None) == (effort == "")
    assert _ours(bundle) == theirs
    if effort == "":
        with pytest.raises(BundleError, match="reasoning_effort must not be empty"):
            reduce_bundle(bundle, warn=lambda _: None)


@pytest.mark.parametrize("session_id", [44678, 999], ids=["known process", "unknown process"])
@pytest.mark.parametrize("at_seq", [21, 22, 23], ids=["before the end", "after", "after both"])
def test_a_late_stdin_target_moves_the_operation_into_the_exec_session(
    session_id: int, at_seq: int, tmp_path: Path, codex_bin: Path
) -> None:
    """``stdin_target_resolved`` after the write_stdin call ended (which gave an operation
    without a known process a session of its own): Codex moves the operation into the exec's
    session and drops the session it leaves empty."""
    bundle = _copy("terminal_write_stdin", tmp_path)
    invocation = bundle / "payloads" / "12.json"
    value = json.loads(invocation.read_text())
    arguments = {**json.loads(value["payload"]["arguments"]), "session_id": session_id}
    value["payload"]["arguments"] = json.dumps(arguments)
    invocation.write_text(json.dumps(value))
    log = bundle / "trace.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    target = lines.pop(20)
    assert target["payload"]["type"] == "stdin_target_resolved"
    lines.insert(at_seq - 1, target)
    for seq, line in enumerate(lines, start=1):
        line["seq"] = seq
    log.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    theirs = _codex(codex_bin, bundle)
    assert theirs is not None
    assert _ours(bundle) == theirs
    assert len(json.loads(theirs)["terminal_sessions"]) == 1


CELL_TOOL_KINDS: list[dict[str, Any]] = [
    {"type": "other", "name": "exec"},
    {"type": "other", "name": "Exec"},
    {"type": "other", "name": "wait"},
    {"type": "exec_command"},
    {"type": "spawn_agent"},
]


@pytest.mark.parametrize("cell_first", [False, True], ids=["tool first", "cell first"])
@pytest.mark.parametrize("kind", CELL_TOOL_KINDS, ids=[json.dumps(k) for k in CELL_TOOL_KINDS])
def test_only_the_exec_tool_call_starts_its_code_cell(
    kind: dict[str, Any], cell_first: bool, tmp_path: Path, codex_bin: Path
) -> None:
    """The tool call with a code cell's model-visible call id gets ``started_code_cell_id``
    only when its kind is code mode's ``exec``, whichever event comes first."""
    bundle = _copy("code_mode_cell", tmp_path)
    log = bundle / "trace.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[13]["payload"]["tool_call_id"] == "call_cell_1"
    lines[13]["payload"]["kind"] = kind
    if cell_first:
        lines[13], lines[14] = lines[14], lines[13]
        for seq, line in enumerate(lines, start=1):
            line["seq"] = seq
    log.write_text("".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines))
    theirs = _codex(codex_bin, bundle)
    assert theirs is not None
    assert _ours(bundle) == theirs
    started = json.loads(theirs)["tool_calls"]["call_cell_1"].get("started_code_cell_id")
    assert (started is not None) == (kind == CELL_TOOL_KINDS[0])
