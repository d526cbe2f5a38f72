"""Property tests (hypothesis, bounded): decoding events, manifests and payloads, and reducing
mutated bundles, fail only with the project's own error types, never anything else."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_rollout import BundleError, reduce_bundle
from otel_rollout._bundle._bounded import nested_too_deep
from otel_rollout._bundle._payloads import PayloadFiles
from otel_rollout._bundle._reader import decode_event, decode_manifest

FIXTURES = Path(__file__).parent / "fixtures" / "codex-0.169.0"
SOURCES = [next((FIXTURES / name).glob("trace-*")) for name in ("plain", "tool_call")]
LINES = [line for source in SOURCES for line in (source / "trace.jsonl").read_bytes().splitlines()]
BOUNDED = settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


def _mutate(value: Any, data: st.DataObject) -> Any:
    """``value`` with one node (chosen by ``data``) replaced by a generated JSON value."""
    if isinstance(value, dict) and value and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(value)))
        return {**value, key: _mutate(value[key], data)}
    if isinstance(value, list) and value and data.draw(st.booleans()):
        index = data.draw(st.integers(0, len(value) - 1))
        return [*value[:index], _mutate(value[index], data), *value[index + 1 :]]
    return data.draw(json_values)


@BOUNDED
@given(st.binary(max_size=300))
def test_decoding_arbitrary_bytes_raises_only_value_error(data: bytes) -> None:
    for decode in (decode_event, decode_manifest):
        try:
            decode(data)
        except ValueError:
            pass
    store = PayloadFiles(tempfile.gettempdir())
    try:
        store.decode("payloads/1.json", data)
    except ValueError:
        pass


@BOUNDED
@given(st.data())
def test_decoding_mutated_events_raises_only_value_error(data: st.DataObject) -> None:
    line = data.draw(st.sampled_from(LINES))
    mutated = json.dumps(_mutate(json.loads(line), data)).encode()
    for schema in (None, 2, 3):
        try:
            decode_event(mutated, schema)
        except ValueError:
            pass


@BOUNDED
@given(st.data())
def test_reducing_mutated_bundles_raises_only_bundle_error(data: st.DataObject) -> None:
    source = data.draw(st.sampled_from(SOURCES))
    with tempfile.TemporaryDirectory(prefix="mutated-") as temp:
        bundle = Path(temp) / source.name
        shutil.copytree(source, bundle)
        log = bundle / "trace.jsonl"
        lines = log.read_bytes().splitlines()
        if data.draw(st.booleans()):  # an event
            index = data.draw(st.integers(0, len(lines) - 1))
            lines[index] = json.dumps(_mutate(json.loads(lines[index]), data)).encode()
            log.write_bytes(b"\n".join(lines) + b"\n")
        else:  # a payload
            payloads = sorted((bundle / "payloads").iterdir())
            path = data.draw(st.sampled_from(payloads))
            path.write_text(json.dumps(_mutate(json.loads(path.read_bytes()), data)))
        try:
            reduce_bundle(bundle, warn=lambda _: None)
        except BundleError:
            pass


_tricky_text = st.text(alphabet='[]{}"\\/bfnrtux0 é', max_size=12)
"""Strings full of what the depth check must see through: brackets, quotes and escapes."""
_nested_values = st.recursive(
    st.none() | st.integers() | _tricky_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_tricky_text, inner, max_size=3),
    max_leaves=12,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


@settings(max_examples=400, deadline=None, derandomize=True)
@given(_nested_values, st.booleans(), st.integers(min_value=1, max_value=6))
def test_nesting_depth_is_measured_outside_strings(value: Any, ascii: bool, limit: int) -> None:
    data = json.dumps(value, ensure_ascii=ascii).encode()
    assert nested_too_deep(data, limit) == (_depth(value) >= limit), data
