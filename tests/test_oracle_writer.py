"""Oracle test: bundles written by our writer are accepted by the real Codex 0.169.0 reducer."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from otel_rollout._bundle._models import (
    EVENT_TYPES,
    SCHEMA_2,
    SCHEMA_3_ONLY_EVENT_TYPES,
    Other,
    PayloadKind,
    RolloutStarted,
    ThreadStarted,
)
from otel_rollout._bundle._validate import validate_bundle
from otel_rollout._bundle._writer import BundleWriter
from support.codex import codex_reduce
from support.synthetic import SyntheticOptions, generate_bundle

pytestmark = pytest.mark.codex

ACCEPTED_TYPES = set(EVENT_TYPES) - {"other"} - SCHEMA_3_ONLY_EVENT_TYPES
"""Every raw event variant Codex 0.169.0's reducer accepts (``other`` it rejects)."""

WRITTEN_KINDS = set(PayloadKind) - {
    PayloadKind.TERMINAL_RUNTIME_EVENT,
    PayloadKind.PREPARED_PROMPT,  # the three kinds of schema 3
    PayloadKind.MODEL_ITEM,
    PayloadKind.CONTENT_VALUE,
}
"""Payload kinds Codex 0.169.0 writes (``terminal_runtime_event`` is declared, never written)."""


def _event_types(bundle: Path) -> set[str]:
    lines = (bundle / "trace.jsonl").read_bytes().splitlines()
    return {json.loads(line)["payload"]["type"] for line in lines}


def _payload_kinds(bundle: Path) -> set[PayloadKind]:
    kinds: set[PayloadKind] = set()
    for line in (bundle / "trace.jsonl").read_bytes().splitlines():
        for value in json.loads(line)["payload"].values():
            if isinstance(value, dict) and "raw_payload_id" in value:
                kinds.add(PayloadKind(value["kind"]["type"]))
    return kinds


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bundle_with_every_event_variant_is_accepted_by_codex(
    codex_bin: Path, tmp_path: Path, seed: int
) -> None:
    bundle = generate_bundle(
        tmp_path / "bundles", seed, SyntheticOptions(every_feature=True, crash=False)
    )
    assert _event_types(bundle) == ACCEPTED_TYPES
    assert _payload_kinds(bundle) == WRITTEN_KINDS
    report = validate_bundle(bundle)
    assert report.ok, [str(problem) for problem in report.problems]

    out = tmp_path / "state.json"
    done = codex_reduce(codex_bin, bundle, out)

    assert done.returncode == 0, done.stderr
    state = json.loads(out.read_bytes())
    assert state["schema_version"] == 2
    assert state["recording_complete"] is True
    assert state["rollout_id"] == json.loads((bundle / "manifest.json").read_bytes())["rollout_id"]
    edge_kinds = {edge["kind"] for edge in state["interaction_edges"].values()}
    assert edge_kinds == {
        "spawn_agent",
        "agent_result",
        "assign_agent_task",
        "send_message",
        "close_agent",
    }
    assert state["code_cells"] and state["compactions"] and state["terminal_operations"]


def test_other_event_is_rejected_by_codex(codex_bin: Path, tmp_path: Path) -> None:
    writer = BundleWriter.create(
        tmp_path / "bundles", root_thread_id="thread-root", schema_version=SCHEMA_2
    )
    writer.append(RolloutStarted(trace_id=writer.manifest.trace_id, root_thread_id="thread-root"))
    writer.append(ThreadStarted(thread_id="thread-root", agent_path="/root"))
    ref = writer.write_payload(PayloadKind.PROTOCOL_EVENT, {"type": "shutdown_complete"})
    assert ref is not None
    writer.append(
        Other(kind="note", summary="free-form", payloads=[ref], metadata=msgspec.Raw(b"{}"))
    )
    writer.close()

    done = codex_reduce(codex_bin, writer.bundle_dir, tmp_path / "state.json")

    assert done.returncode != 0
    assert "raw trace event has no reducer implementation" in done.stderr
