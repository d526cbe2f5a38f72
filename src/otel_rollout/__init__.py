"""otel-rollout: rollout tracing for AI-agent applications on OpenTelemetry.

Records what an agent app did (threads, turns, inference attempts, tool calls,
code cells, compactions, child agents and their results) as OpenTelemetry spans
and links, and as a raw trace bundle in the exact format OpenAI Codex writes.

Importing this package has no side effects and stays light: each public name is
imported from its module on first use (``_EXPORTS``), and so are the public
submodules ``events`` and ``semconv``.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from otel_rollout._version import package_version

if TYPE_CHECKING:
    # `X as X` marks an explicit re-export (for mypy and ruff); a test keeps this block,
    # _EXPORTS and __all__ in step.
    from otel_rollout import events as events
    from otel_rollout import semconv as semconv
    from otel_rollout._bundle._bodies import AgentResultTracePayload as AgentResultTracePayload
    from otel_rollout._bundle._bodies import (
        ThreadStartedTraceMetadata as ThreadStartedTraceMetadata,
    )
    from otel_rollout._bundle._bodies import agent_message_item as agent_message_item
    from otel_rollout._bundle._bodies import tool_call_kind as tool_call_kind
    from otel_rollout._bundle._models import CodeCellRuntimeStatus as CodeCellRuntimeStatus
    from otel_rollout._bundle._models import ExecutionStatus as ExecutionStatus
    from otel_rollout._bundle._models import PayloadKind as PayloadKind
    from otel_rollout._bundle._models import RawPayloadRef as RawPayloadRef
    from otel_rollout._bundle._models import RawTraceEvent as RawTraceEvent
    from otel_rollout._bundle._models import RolloutStatus as RolloutStatus
    from otel_rollout._bundle._models import ToolCallKind as ToolCallKind
    from otel_rollout._bundle._models import TraceBundleManifest as TraceBundleManifest
    from otel_rollout._bundle._reader import Bundle as Bundle
    from otel_rollout._bundle._reader import BundleError as BundleError
    from otel_rollout._bundle._reader import EventLine as EventLine
    from otel_rollout._bundle._validate import Problem as Problem
    from otel_rollout._bundle._validate import ValidationReport as ValidationReport
    from otel_rollout._bundle._validate import validate_bundle as validate_bundle
    from otel_rollout._bundle._writer import BundleWriter as BundleWriter
    from otel_rollout._errors import RecordingStats as RecordingStats
    from otel_rollout._errors import stats as stats
    from otel_rollout._live._handles import CodeCellTraceContext as CodeCellTraceContext
    from otel_rollout._live._handles import CompactionTraceAttempt as CompactionTraceAttempt
    from otel_rollout._live._handles import CompactionTraceContext as CompactionTraceContext
    from otel_rollout._live._handles import InferenceTraceAttempt as InferenceTraceAttempt
    from otel_rollout._live._handles import InferenceTraceContext as InferenceTraceContext
    from otel_rollout._live._handles import McpCallTraceContext as McpCallTraceContext
    from otel_rollout._live._handles import ThreadTraceContext as ThreadTraceContext
    from otel_rollout._live._handles import ToolDispatchInvocation as ToolDispatchInvocation
    from otel_rollout._live._handles import ToolDispatchTraceContext as ToolDispatchTraceContext
    from otel_rollout._live._handles import TurnTraceContext as TurnTraceContext
    from otel_rollout._live._runtime import configure as configure
    from otel_rollout._live._runtime import force_flush as force_flush
    from otel_rollout._live._scope import current_thread as current_thread
    from otel_rollout._live._scope import current_turn as current_turn
    from otel_rollout._otel._exporter import RolloutBundleSpanExporter as RolloutBundleSpanExporter
    from otel_rollout._otel._exporter import RolloutSpanProcessor as RolloutSpanProcessor
    from otel_rollout._otel._replay import ExportError as ExportError
    from otel_rollout._otel._replay import ExportResult as ExportResult
    from otel_rollout._otel._replay import export_bundle as export_bundle
    from otel_rollout._otel._sampler import RolloutSampler as RolloutSampler
    from otel_rollout._reduce import write_state as write_state
    from otel_rollout._reduce._model import RolloutTrace as RolloutTrace
    from otel_rollout._reduce._reducer import reduce_bundle as reduce_bundle

__version__: str
"""The installed distribution's version (looked up on first use, by ``__getattr__``)."""

_EXPORTS: dict[str, str] = {
    "AgentResultTracePayload": "otel_rollout._bundle._bodies",
    "ThreadStartedTraceMetadata": "otel_rollout._bundle._bodies",
    "agent_message_item": "otel_rollout._bundle._bodies",
    "tool_call_kind": "otel_rollout._bundle._bodies",
    "CodeCellRuntimeStatus": "otel_rollout._bundle._models",
    "ExecutionStatus": "otel_rollout._bundle._models",
    "PayloadKind": "otel_rollout._bundle._models",
    "RawPayloadRef": "otel_rollout._bundle._models",
    "RawTraceEvent": "otel_rollout._bundle._models",
    "RolloutStatus": "otel_rollout._bundle._models",
    "ToolCallKind": "otel_rollout._bundle._models",
    "TraceBundleManifest": "otel_rollout._bundle._models",
    "Bundle": "otel_rollout._bundle._reader",
    "BundleError": "otel_rollout._bundle._reader",
    "EventLine": "otel_rollout._bundle._reader",
    "BundleWriter": "otel_rollout._bundle._writer",
    "Problem": "otel_rollout._bundle._validate",
    "ValidationReport": "otel_rollout._bundle._validate",
    "validate_bundle": "otel_rollout._bundle._validate",
    "CodeCellTraceContext": "otel_rollout._live._handles",
    "CompactionTraceAttempt": "otel_rollout._live._handles",
    "CompactionTraceContext": "otel_rollout._live._handles",
    "InferenceTraceAttempt": "otel_rollout._live._handles",
    "InferenceTraceContext": "otel_rollout._live._handles",
    "McpCallTraceContext": "otel_rollout._live._handles",
    "ThreadTraceContext": "otel_rollout._live._handles",
    "ToolDispatchInvocation": "otel_rollout._live._handles",
    "ToolDispatchTraceContext": "otel_rollout._live._handles",
    "TurnTraceContext": "otel_rollout._live._handles",
    "current_thread": "otel_rollout._live._scope",
    "current_turn": "otel_rollout._live._scope",
    "configure": "otel_rollout._live._runtime",
    "force_flush": "otel_rollout._live._runtime",
    "RolloutBundleSpanExporter": "otel_rollout._otel._exporter",
    "RolloutSampler": "otel_rollout._otel._sampler",
    "RolloutSpanProcessor": "otel_rollout._otel._exporter",
    "RecordingStats": "otel_rollout._errors",
    "stats": "otel_rollout._errors",
    "ExportError": "otel_rollout._otel._replay",
    "ExportResult": "otel_rollout._otel._replay",
    "export_bundle": "otel_rollout._otel._replay",
    "RolloutTrace": "otel_rollout._reduce._model",
    "reduce_bundle": "otel_rollout._reduce._reducer",
    "write_state": "otel_rollout._reduce",
}
"""Public name -> module that defines it."""

_SUBMODULES = frozenset({"events", "semconv"})
"""Public submodules, importable as attributes of the package."""

_DEPRECATED: dict[str, tuple[str, str]] = {
    "replay_bundle": ("otel_rollout._reduce._reducer", "reduce_bundle"),
}
"""Old public name -> (module, new name); using one warns with a DeprecationWarning."""

__all__ = [
    "AgentResultTracePayload",
    "Bundle",
    "BundleError",
    "BundleWriter",
    "CodeCellRuntimeStatus",
    "CodeCellTraceContext",
    "CompactionTraceAttempt",
    "CompactionTraceContext",
    "EventLine",
    "ExecutionStatus",
    "ExportError",
    "ExportResult",
    "InferenceTraceAttempt",
    "InferenceTraceContext",
    "McpCallTraceContext",
    "PayloadKind",
    "Problem",
    "RawPayloadRef",
    "RawTraceEvent",
    "RecordingStats",
    "RolloutBundleSpanExporter",
    "RolloutSampler",
    "RolloutSpanProcessor",
    "RolloutStatus",
    "RolloutTrace",
    "ThreadStartedTraceMetadata",
    "ThreadTraceContext",
    "ToolCallKind",
    "ToolDispatchInvocation",
    "ToolDispatchTraceContext",
    "TraceBundleManifest",
    "TurnTraceContext",
    "ValidationReport",
    "__version__",
    "agent_message_item",
    "configure",
    "current_thread",
    "current_turn",
    "events",
    "export_bundle",
    "force_flush",
    "reduce_bundle",
    "semconv",
    "stats",
    "tool_call_kind",
    "validate_bundle",
    "write_state",
]


def __getattr__(name: str) -> Any:
    """Import a public name (or submodule) on first use; warn on a deprecated name."""
    if name in _DEPRECATED:
        module_name, new_name = _DEPRECATED[name]
        warnings.warn(
            f"otel_rollout.{name} is deprecated; use otel_rollout.{new_name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(module_name), new_name)
    if name == "__version__":
        return package_version()
    if name in _SUBMODULES:
        return importlib.import_module(f"otel_rollout.{name}")
    home = _EXPORTS.get(name)
    if home is None:
        raise AttributeError(f"module 'otel_rollout' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
