"""Choosing the bundle schema and the size limits: configure() and the environment."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

import otel_rollout
from otel_rollout import ThreadTraceContext, _config, validate_bundle
from otel_rollout._bundle._models import SCHEMA_VERSION, SCHEMA_VERSIONS
from otel_rollout._live import _runtime
from support.recording import read_events

ENV = (
    _config.TRACE_ROOT_ENV,
    _config.SCHEMA_VERSION_ENV,
    _config.MAX_BYTES_ENV,
    _config.MAX_PAYLOAD_BYTES_ENV,
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    otel_rollout.force_flush()
    _runtime.reset()


def _record(root: Path) -> Path:
    """One rollout with a long request; returns its bundle."""
    thread = ThreadTraceContext.start_root_or_disabled()
    with thread, thread.turn() as turn:
        request = {"input": [{"type": "message", "role": "user", "content": "x" * 5000}]}
        with turn.inference("m", "p").attempt(request) as attempt:
            attempt.record_completed("r")
    assert otel_rollout.force_flush()
    [bundle] = root.glob("trace-*")
    return bundle


def _schema(bundle: Path) -> int:
    return int(json.loads((bundle / "manifest.json").read_text())["schema_version"])


def test_the_config_leaf_knows_the_schemas_the_writer_writes() -> None:
    assert _config.WRITABLE_SCHEMA_VERSIONS == SCHEMA_VERSIONS
    assert SCHEMA_VERSION == 3


def test_schema_3_is_the_default(tmp_path: Path) -> None:
    otel_rollout.configure(trace_root=tmp_path)
    bundle = _record(tmp_path)
    assert _schema(bundle) == 3
    assert list((bundle / "payloads").glob("*.zst"))
    assert validate_bundle(bundle).ok


@pytest.mark.parametrize("how", ["configure", "env"])
def test_schema_2_can_be_chosen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    if how == "env":
        monkeypatch.setenv(_config.SCHEMA_VERSION_ENV, "2")
        otel_rollout.configure(trace_root=tmp_path)
    else:
        otel_rollout.configure(trace_root=tmp_path, schema_version=2)
    bundle = _record(tmp_path)
    assert _schema(bundle) == 2
    assert list((bundle / "payloads").glob("*.json"))
    assert validate_bundle(bundle).ok


@pytest.mark.parametrize(
    "kwargs",
    [
        {"schema_version": 4},
        {"schema_version": "3"},
        {"max_bytes": 0},
        {"max_payload_bytes": -5},
        {"max_bytes": 1.5},
        {"schema_version": 2, "max_bytes": 1000},
        {"schema_version": 2, "max_payload_bytes": 1000},
    ],
)
def test_configure_refuses_bad_values(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        otel_rollout.configure(trace_root=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_a_limit_with_schema_2_from_the_environment_is_refused_by_configure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(_config.SCHEMA_VERSION_ENV, "2")
    with pytest.raises(ValueError, match="schema 3"):
        otel_rollout.configure(trace_root=tmp_path, max_bytes=1000)


@pytest.mark.parametrize("value", ["4", "two", "3.0"])
def test_a_bad_schema_in_the_environment_warns_once_and_gives_the_default(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    value: str,
) -> None:
    monkeypatch.setenv(_config.SCHEMA_VERSION_ENV, value)
    with caplog.at_level(logging.WARNING):
        otel_rollout.configure(trace_root=tmp_path)
    assert caplog.text.count(_config.SCHEMA_VERSION_ENV) == 1
    assert _schema(_record(tmp_path)) == 3


@pytest.mark.parametrize("name", [_config.MAX_BYTES_ENV, _config.MAX_PAYLOAD_BYTES_ENV])
def test_a_bad_limit_in_the_environment_warns_and_means_no_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    monkeypatch.setenv(name, "lots")
    with caplog.at_level(logging.WARNING):
        settings = _config.settings_from_env()
    assert name in caplog.text
    assert settings.max_bytes is None and settings.max_payload_bytes is None


def test_limits_from_the_environment_are_ignored_with_schema_2_and_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(_config.SCHEMA_VERSION_ENV, "2")
    monkeypatch.setenv(_config.MAX_BYTES_ENV, "1000")
    with caplog.at_level(logging.WARNING):
        settings = _config.settings_from_env()
    assert settings.schema_version == 2 and settings.max_bytes is None
    assert "schema 3 only" in caplog.text


@pytest.mark.parametrize("how", ["configure", "env"])
def test_max_payload_bytes_truncates_long_payloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "env":
        monkeypatch.setenv(_config.MAX_PAYLOAD_BYTES_ENV, "1000")
        otel_rollout.configure(trace_root=tmp_path)
    else:
        otel_rollout.configure(trace_root=tmp_path, max_payload_bytes=1000)
    bundle = _record(tmp_path)
    assert validate_bundle(bundle).ok
    text = (bundle / "trace.jsonl").read_text()
    assert '"status":"truncated"' in text and '"content_value"' in text


@pytest.mark.parametrize("how", ["configure", "env"])
def test_max_bytes_omits_payloads_past_the_bundle_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "env":
        monkeypatch.setenv(_config.MAX_BYTES_ENV, "3000")
        otel_rollout.configure(trace_root=tmp_path)
    else:
        otel_rollout.configure(trace_root=tmp_path, max_bytes=3000)
    bundle = _record(tmp_path)
    assert validate_bundle(bundle).ok
    omitted = [
        event
        for event in read_events(bundle)
        if '"status":"omitted"' in json.dumps(event, separators=(",", ":"))
    ]
    assert omitted and omitted[0]["payload"]["type"] == "inference_started"
