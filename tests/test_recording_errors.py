"""The error policy on the recording API: internal errors raise in strict mode; otherwise
they are swallowed, counted per component (``otel_rollout.stats()``) and warned once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

import otel_rollout
from otel_rollout import ThreadTraceContext, ToolDispatchInvocation
from otel_rollout._errors import STRICT_ENV
from otel_rollout._live import _runtime
from otel_rollout._live._recorder import RolloutRecorder
from support.recording import Pipeline, event_types, pipeline_fixture


@pytest.fixture
def pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    yield from pipeline_fixture(tmp_path, monkeypatch)


class Boom(RuntimeError):
    """The internal failure the tests inject."""


def _boom(*args: Any, **kwargs: Any) -> NoReturn:
    raise Boom("injected")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_an_internal_error_in_a_recording_call_reaches_the_test_in_strict_mode(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = ThreadTraceContext.start_root_or_disabled()
    monkeypatch.setattr(RolloutRecorder, "_emit_locked", _boom)
    with pytest.raises(Boom):
        thread.record_turn_started("turn-1")
    with pytest.raises(Boom):
        thread.start_tool_dispatch_trace(
            lambda: ToolDispatchInvocation(turn_id="turn-1", tool_name="lookup")
        )
    with pytest.raises(ValueError):
        thread.record_turn_ended("turn-1", "not a status")  # type: ignore[arg-type]


def test_outside_strict_mode_a_recording_error_is_counted_and_warned_once(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(STRICT_ENV)
    thread = ThreadTraceContext.start_root_or_disabled()
    with monkeypatch.context() as patch, caplog.at_level(logging.WARNING, logger="otel_rollout"):
        patch.setattr(RolloutRecorder, "_emit_locked", _boom)
        assert thread.record_turn_started("turn-1") is None
        tool = thread.start_tool_dispatch_trace(
            lambda: ToolDispatchInvocation(turn_id="turn-1", tool_name="lookup")
        )
        assert not tool.is_enabled()  # the handle that could not start is the no-op one
        thread.record_turn_ended("turn-1", "not a status")  # type: ignore[arg-type]
    assert otel_rollout.stats().internal_errors == {"recording": 3}
    [warning] = _warnings(caplog)
    assert "internal error in recording" in warning
    thread.record_turn_started("turn-2")  # recording goes on
    thread.record_ended()
    [bundle] = pipeline.bundles()
    assert event_types(bundle).count("codex_turn_started") == 1


def test_an_internal_error_in_root_start_reaches_the_test_in_strict_mode(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_runtime, "open_recorder", _boom)
    with pytest.raises(Boom):
        ThreadTraceContext.start_root_or_disabled()


def test_outside_strict_mode_a_root_start_error_gives_the_disabled_thread(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(STRICT_ENV)
    monkeypatch.setattr(_runtime, "open_recorder", _boom)
    with caplog.at_level(logging.WARNING, logger="otel_rollout"):
        first = ThreadTraceContext.start_root_or_disabled()
        second = ThreadTraceContext.start_root_or_disabled()
    assert first is second is ThreadTraceContext.disabled()
    assert otel_rollout.stats().internal_errors == {"root_start": 2}
    [warning] = _warnings(caplog)
    assert "internal error in root_start" in warning
    assert pipeline.bundles() == []
