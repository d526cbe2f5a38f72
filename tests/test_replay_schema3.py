"""Replay and the span mapping on schema 3 bundles (Codex 0.171.0): the same spans as from the
schema 2 recording of each scenario, and payloads named by id and shard instead of a path."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from otel_rollout import semconv as sc
from otel_rollout._bundle._reader import Bundle
from otel_rollout._bundle._schema import all_refs, is_omitted, is_truncated
from otel_rollout._otel._replay import bundle_spans

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA_3 = sorted(FIXTURES.glob("codex-0.171.0*/*/trace-*"))
SCENARIOS = sorted(
    path.name
    for path in (FIXTURES / "codex-0.171.0").iterdir()
    if (FIXTURES / "codex-0.169.0" / path.name).is_dir()
)


def _bundle(version: str, scenario: str) -> Path:
    (bundle,) = sorted((FIXTURES / version / scenario).glob("trace-*"))
    return bundle


def _bundle_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.parent.name}"


def _payload_attributes(spans: list[ReadableSpan]) -> list[dict[str, object]]:
    """``rollout.payload.<role>.*`` of every span and span event, one dict per role."""
    found: list[dict[str, object]] = []
    for span in spans:
        for attributes in [
            span.attributes or {},
            *(event.attributes or {} for event in span.events),
        ]:
            roles: dict[str, dict[str, object]] = {}
            for key, value in attributes.items():
                if key.startswith(sc.PAYLOAD_PREFIX):
                    role, _, suffix = key.removeprefix(sc.PAYLOAD_PREFIX).rpartition(".")
                    roles.setdefault(role, {})["." + suffix] = value
            found.extend(roles.values())
    return found


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_scenario_maps_to_the_same_spans_in_both_schemas(scenario: str) -> None:
    """Recorded by 0.169.0 and by 0.171.0 against the same scripted model: the same spans,
    by kind and GenAI operation (names carry ids and agent nicknames of each recording)."""

    def shape(spans: list[ReadableSpan]) -> Counter[tuple[str, str]]:
        return Counter(
            (span.kind.name, str((span.attributes or {}).get("gen_ai.operation.name")))
            for span in spans
        )

    schema_2 = bundle_spans(_bundle("codex-0.169.0", scenario))
    schema_3 = bundle_spans(_bundle("codex-0.171.0", scenario))
    assert shape(schema_3) == shape(schema_2)


@pytest.mark.parametrize("bundle_dir", SCHEMA_3, ids=_bundle_id)
def test_schema_3_payloads_are_named_by_id_and_shard(bundle_dir: Path) -> None:
    bundle = Bundle(bundle_dir)
    refs = {
        ref.raw_payload_id: ref for _, event in bundle.events() for ref in all_refs(event.payload)
    }
    named = _payload_attributes(bundle_spans(bundle_dir, capture_content=False))
    assert named
    for attributes in named:
        assert sc.PAYLOAD_PATH_SUFFIX not in attributes
        ref = refs[str(attributes[sc.PAYLOAD_ID_SUFFIX])]
        if is_omitted(ref):
            assert sc.PAYLOAD_SHARD_SUFFIX not in attributes
            assert sc.PAYLOAD_SIZE_SUFFIX not in attributes
            assert attributes[sc.PAYLOAD_CAPTURE_SUFFIX] == "omitted"
            continue
        body = bundle.read_payload_bytes(ref)
        assert attributes[sc.PAYLOAD_SHARD_SUFFIX] == ref.shard
        assert attributes[sc.PAYLOAD_SIZE_SUFFIX] == len(body)
        assert attributes[sc.PAYLOAD_SHA256_SUFFIX] == hashlib.sha256(body).hexdigest()
        if is_truncated(ref):
            assert attributes[sc.PAYLOAD_CAPTURE_SUFFIX] == "truncated"
            assert attributes[sc.PAYLOAD_ORIGINAL_SIZE_SUFFIX] > len(body)  # type: ignore[operator]
        else:
            assert sc.PAYLOAD_CAPTURE_SUFFIX not in attributes


def test_cut_payloads_are_marked() -> None:
    captures = Counter(
        str(attributes.get(sc.PAYLOAD_CAPTURE_SUFFIX))
        for version in ("plain_max_payload_1000", "tool_call_max_bytes_20000")
        for attributes in _payload_attributes(
            bundle_spans(_bundle("codex-0.171.0-limits", version))
        )
    )
    assert captures["omitted"] >= 2 and captures["None"] > 0


def test_schema_2_payloads_keep_their_path() -> None:
    named = _payload_attributes(bundle_spans(_bundle("codex-0.169.0", "tool_call")))
    assert named and all(
        str(attributes[sc.PAYLOAD_PATH_SUFFIX]).startswith("payloads/")
        and sc.PAYLOAD_ID_SUFFIX not in attributes
        for attributes in named
    )
