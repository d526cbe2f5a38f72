"""otel-rollout: rollout tracing for AI-agent applications on OpenTelemetry.

Records what an agent app did (threads, turns, inference attempts, tool calls,
code cells, compactions, child agents and their results) as OpenTelemetry spans
and links, and as a raw trace bundle in the exact format OpenAI Codex writes.

Importing this package has no side effects and stays light: each public name is
imported from its module on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # `X as X` marks an explicit re-export (for mypy and ruff; __all__ is computed).
    from otel_rollout._bundle._models import CodeCellRuntimeStatus as CodeCellRuntimeStatus
    from otel_rollout._bundle._models import ExecutionStatus as ExecutionStatus
    from otel_rollout._bundle._models import PayloadKind as PayloadKind
    from otel_rollout._bundle._models import RawPayloadRef as RawPayloadRef
    from otel_rollout._bundle._models import RawTraceEvent as RawTraceEvent
    from otel_rollout._bundle._models import RolloutStatus as RolloutStatus
    from otel_rollout._bundle._models import TraceBundleManifest as TraceBundleManifest
    from otel_rollout._bundle._reader import Bundle as Bundle
    from otel_rollout._bundle._reader import BundleError as BundleError
    from otel_rollout._bundle._validate import ValidationReport as ValidationReport
    from otel_rollout._bundle._validate import validate_bundle as validate_bundle
    from otel_rollout._bundle._writer import BundleWriter as BundleWriter
    from otel_rollout._live._recording import AgentResultTracePayload as AgentResultTracePayload
    from otel_rollout._live._recording import CodeCellTraceContext as CodeCellTraceContext
    from otel_rollout._live._recording import CompactionTraceAttempt as CompactionTraceAttempt
    from otel_rollout._live._recording import CompactionTraceContext as CompactionTraceContext
    from otel_rollout._live._recording import InferenceTraceAttempt as InferenceTraceAttempt
    from otel_rollout._live._recording import InferenceTraceContext as InferenceTraceContext
    from otel_rollout._live._recording import McpCallTraceContext as McpCallTraceContext
    from otel_rollout._live._recording import (
        ThreadStartedTraceMetadata as ThreadStartedTraceMetadata,
    )
    from otel_rollout._live._recording import ThreadTraceContext as ThreadTraceContext
    from otel_rollout._live._recording import ToolDispatchInvocation as ToolDispatchInvocation
    from otel_rollout._live._recording import ToolDispatchTraceContext as ToolDispatchTraceContext
    from otel_rollout._live._recording import TurnTraceContext as TurnTraceContext
    from otel_rollout._live._recording import agent_message_item as agent_message_item
    from otel_rollout._live._recording import current_thread as current_thread
    from otel_rollout._live._recording import current_turn as current_turn
    from otel_rollout._live._recording import force_flush as force_flush
    from otel_rollout._live._recording import tool_call_kind as tool_call_kind
    from otel_rollout._live._runtime import configure as configure
    from otel_rollout._otel._exporter import RolloutBundleSpanExporter as RolloutBundleSpanExporter
    from otel_rollout._otel._exporter import RolloutSpanProcessor as RolloutSpanProcessor
    from otel_rollout._otel._replay import ExportError as ExportError
    from otel_rollout._otel._replay import ExportResult as ExportResult
    from otel_rollout._otel._replay import export_bundle as export_bundle
    from otel_rollout._reduce import RolloutTrace as RolloutTrace
    from otel_rollout._reduce import reduce_bundle as reduce_bundle
    from otel_rollout._reduce import write_state as write_state

_EXPORTS: dict[str, str] = {
    # foundation: the bundle format
    "Bundle": "otel_rollout._bundle._reader",
    "BundleError": "otel_rollout._bundle._reader",
    "BundleWriter": "otel_rollout._bundle._writer",
    "CodeCellRuntimeStatus": "otel_rollout._bundle._models",
    "ExecutionStatus": "otel_rollout._bundle._models",
    "PayloadKind": "otel_rollout._bundle._models",
    "RawPayloadRef": "otel_rollout._bundle._models",
    "RawTraceEvent": "otel_rollout._bundle._models",
    "RolloutStatus": "otel_rollout._bundle._models",
    "TraceBundleManifest": "otel_rollout._bundle._models",
    "ValidationReport": "otel_rollout._bundle._validate",
    "validate_bundle": "otel_rollout._bundle._validate",
    # replay over OTLP
    "ExportError": "otel_rollout._otel._replay",
    "ExportResult": "otel_rollout._otel._replay",
    "export_bundle": "otel_rollout._otel._replay",
    # recording: the API, OTel spans and the bundle exporter
    "AgentResultTracePayload": "otel_rollout._live._recording",
    "CodeCellTraceContext": "otel_rollout._live._recording",
    "CompactionTraceAttempt": "otel_rollout._live._recording",
    "CompactionTraceContext": "otel_rollout._live._recording",
    "InferenceTraceAttempt": "otel_rollout._live._recording",
    "InferenceTraceContext": "otel_rollout._live._recording",
    "McpCallTraceContext": "otel_rollout._live._recording",
    "ThreadStartedTraceMetadata": "otel_rollout._live._recording",
    "ThreadTraceContext": "otel_rollout._live._recording",
    "ToolDispatchInvocation": "otel_rollout._live._recording",
    "ToolDispatchTraceContext": "otel_rollout._live._recording",
    "TurnTraceContext": "otel_rollout._live._recording",
    "agent_message_item": "otel_rollout._live._recording",
    "current_thread": "otel_rollout._live._recording",
    "current_turn": "otel_rollout._live._recording",
    "force_flush": "otel_rollout._live._recording",
    "tool_call_kind": "otel_rollout._live._recording",
    "configure": "otel_rollout._live._runtime",
    "RolloutBundleSpanExporter": "otel_rollout._otel._exporter",
    "RolloutSpanProcessor": "otel_rollout._otel._exporter",
    # offline replay: the reducer
    "RolloutTrace": "otel_rollout._reduce",
    "reduce_bundle": "otel_rollout._reduce",
    "write_state": "otel_rollout._reduce",
}
"""Public name -> module that defines it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use."""
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'otel_rollout' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
