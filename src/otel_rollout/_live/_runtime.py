"""The recording runtime: configuration from code, the shared exporter, tracers, new recorders,
and the flush of everything recorded.

Precedence of settings: an explicit :func:`configure` argument, then the environment
(:mod:`otel_rollout._config`), then the default.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import TraceFlags, TracerProvider

from otel_rollout._bundle._background import flush_all
from otel_rollout._bundle._models import SCHEMA_2, SCHEMA_VERSION
from otel_rollout._bundle._redact import redactor_for
from otel_rollout._bundle._writer import BundleWriter
from otel_rollout._config import (
    CONTENT_MODES,
    LOAD_POLICIES,
    WRITABLE_SCHEMA_VERSIONS,
    Settings,
    settings_from_env,
)
from otel_rollout._live._recorder import ForwardingSpan, RolloutRecorder
from otel_rollout._otel._content_events import LogContentEvents
from otel_rollout._otel._exporter import RolloutBundleSpanExporter, RolloutSpanProcessor
from otel_rollout._otel._live_spans import LIVE_SCOPE_NAME, LiveSpanSink, PendingIdGenerator
from otel_rollout._otel._mapping import trace_id_from_uuid, uuid_from_trace_id
from otel_rollout._version import package_version


@dataclass(frozen=True)
class _Configured:
    settings: Settings
    tracer_provider: TracerProvider | None
    exporter: RolloutBundleSpanExporter | None


_lock = threading.Lock()
_configured: _Configured | None = None
_generation = 0
"""Bumped by every :func:`configure`; recording runtimes built earlier are rebuilt."""


def configure(
    trace_root: str | os.PathLike[str] | None = None,
    tracer_provider: TracerProvider | None = None,
    *,
    capture_content: bool | str | None = None,
    content_max_bytes: int | None = None,
    redact: Callable[[str], str] | None = None,
    exporter: RolloutBundleSpanExporter | None = None,
    set_global_provider: bool = False,
    schema_version: int | None = None,
    max_bytes: int | None = None,
    max_payload_bytes: int | None = None,
    load_policy: str | None = None,
) -> None:
    """Configure rollout recording from code instead of (or on top of) the environment.

    Affects rollouts started afterwards; running rollouts keep their settings.

    Args:
        trace_root: Directory for bundles (created if missing). ``None`` reads
            ``OTEL_ROLLOUT_TRACE_ROOT``; an empty string disables recording.
        tracer_provider: Provider for the live spans. By default the global provider
            when the app installed an SDK one, else a private provider that only
            feeds the bundle (the global provider is left alone).
        capture_content: Where content goes: ``True`` (span attributes), ``False``
            (nowhere) or a value of the GenAI switch (``span_only``, ``event_only``,
            ``span_and_event``, ``no_content``); ``None`` reads
            ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``. Bundles keep their
            payloads whatever it says.
        content_max_bytes: Bound of each content attribute; ``None`` reads
            ``OTEL_ROLLOUT_CONTENT_MAX_BYTES`` (default 16384).
        redact: ``fn(text) -> text`` applied to every string value of payload bodies
            and content before anything is written or exported (after the patterns of
            ``OTEL_ROLLOUT_REDACT_PATTERNS``); never to ids, keys or enum values.
        exporter: The bundle exporter that writes the bundles; by default one
            exporter shared by the process.
        set_global_provider: When the library sets up its own provider (no
            ``tracer_provider`` given and no SDK provider installed globally), also
            install it as the global provider. Off by default.
        schema_version: The bundle schema to write: 3 (Codex 0.171.0: zstd payload
            shards) or 2 (Codex 0.169.0/0.170.0: payload files); ``None`` reads
            ``OTEL_ROLLOUT_SCHEMA_VERSION``, default 3.
        max_bytes: Schema 3: payloads that would take a bundle past this many bytes
            are omitted; ``None`` reads ``OTEL_ROLLOUT_MAX_BYTES`` (default: no limit).
        max_payload_bytes: Schema 3: payloads past this many bytes are truncated;
            ``None`` reads ``OTEL_ROLLOUT_MAX_PAYLOAD_BYTES`` (default: no limit).
        load_policy: What a recording call does when the bundle writer's queue is
            full: ``"wait"`` (backpressure while the writer makes progress: nothing
            is lost) or ``"drop"`` (never wait: schema 3 leaves payload bodies out,
            each counted and marked ``capture: omitted``; past twice the queue bound
            the bundle ends at a valid prefix, later events counted as dropped);
            ``None`` reads ``OTEL_ROLLOUT_LOAD_POLICY``, default ``"wait"``.

    Raises:
        ValueError: ``capture_content`` is not a known value, ``schema_version`` is not
            2 or 3, a limit is not a positive integer, a limit is given with schema
            2 (which cannot say a payload was cut), or ``load_policy`` is not ``"wait"``
            or ``"drop"``.

    Example:
        >>> import otel_rollout
        >>> otel_rollout.configure(trace_root="/tmp/rollouts")  # doctest: +SKIP
    """
    global _configured, _generation
    if schema_version is not None and (
        type(schema_version) is not int or schema_version not in WRITABLE_SCHEMA_VERSIONS
    ):
        raise ValueError(f"schema_version must be 2 or 3, not {schema_version!r}")
    for name, limit in (("max_bytes", max_bytes), ("max_payload_bytes", max_payload_bytes)):
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ValueError(f"{name} must be a positive integer, not {limit!r}")
    if load_policy is not None and load_policy not in LOAD_POLICIES:
        raise ValueError(f"load_policy must be 'wait' or 'drop', not {load_policy!r}")
    env = settings_from_env()
    content = (env.capture_content, env.content_events)
    if isinstance(capture_content, bool):
        content = (capture_content, False)
    elif capture_content is not None:
        mode = CONTENT_MODES.get(capture_content.strip().lower())
        if mode is None:
            raise ValueError(f"capture_content must be one of {list(CONTENT_MODES)}")
        content = mode
    schema = env.schema_version if schema_version is None else schema_version
    limits = (
        env.max_bytes if max_bytes is None else max_bytes,
        env.max_payload_bytes if max_payload_bytes is None else max_payload_bytes,
    )
    if schema == SCHEMA_2 and (max_bytes is not None or max_payload_bytes is not None):
        raise ValueError(
            "max_bytes and max_payload_bytes are limits of schema 3 bundles; "
            "schema 2 has no way to record a cut payload"
        )
    if schema == SCHEMA_2:
        limits = (None, None)  # from the environment: already warned about
    if trace_root is None:
        root = env.trace_root
    else:
        root = Path(trace_root) if os.fspath(trace_root) else None
    settings = Settings(
        trace_root=root,
        capture_content=content[0],
        content_events=content[1],
        content_max_bytes=env.content_max_bytes
        if content_max_bytes is None
        else max(content_max_bytes, 0),
        set_global_provider=set_global_provider,
        schema_version=schema,
        max_bytes=limits[0],
        max_payload_bytes=limits[1],
        redact_patterns=env.redact_patterns,
        redact=redact,
        load_policy=env.load_policy if load_policy is None else load_policy,
    )
    with _lock:
        _configured = _Configured(settings, tracer_provider, exporter)
        _generation += 1


def force_flush(timeout_millis: int = 30_000) -> bool:
    """Write every event recorded so far and end its live spans; ``False`` on timeout.

    Spans are built on the writer thread: call this before shutting down a tracer
    provider you passed to :func:`configure` (interpreter exit does it by itself).
    """
    return flush_all(timeout_millis / 1000)


def configured() -> tuple[int, Settings, TracerProvider | None, RolloutBundleSpanExporter | None]:
    """Return the configuration generation, settings, provider and exporter in force."""
    with _lock:
        current = _configured
        generation = _generation
    if current is None:
        return generation, settings_from_env(), None, None
    return generation, current.settings, current.tracer_provider, current.exporter


def reset() -> None:
    """Forget :func:`configure` calls (back to the environment). For tests."""
    global _configured, _generation
    with _lock:
        _configured = None
        _generation += 1


_runtime_lock = threading.Lock()
_shared_exporter: RolloutBundleSpanExporter | None = None
_private_provider: Any = None
_tracer_cache: dict[int, tuple[Any, trace.Tracer, PendingIdGenerator | None]] = {}


def _shared() -> RolloutBundleSpanExporter:
    global _shared_exporter
    with _runtime_lock:
        if _shared_exporter is None:
            _shared_exporter = RolloutBundleSpanExporter()
        return _shared_exporter


def _resolve_provider(
    provider: Any, exporter: RolloutBundleSpanExporter, set_global: bool = False
) -> Any:
    """The app's provider if given or globally installed (SDK), else a private one."""
    global _private_provider
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

    if provider is not None:
        return provider
    global_provider = trace.get_tracer_provider()
    if isinstance(global_provider, SdkTracerProvider):
        return global_provider
    with _runtime_lock:
        if _private_provider is None:
            private = SdkTracerProvider()
            private.add_span_processor(RolloutSpanProcessor(exporter))
            _private_provider = private
        private = _private_provider
    if set_global and trace.get_tracer_provider() is not private:
        trace.set_tracer_provider(private)
    return private


def _spans_wanted(provider: Any) -> bool:
    """Whether live spans on ``provider`` reach anything: not on the library's private
    provider while its only processors are :class:`RolloutSpanProcessor` (which skips
    live spans: their events are in the bundle already). Decided when a rollout starts."""
    if provider is not _private_provider:
        return True
    active = getattr(provider, "_active_span_processor", None)
    processors = getattr(active, "_span_processors", None)
    if not isinstance(processors, tuple):
        return True
    return not all(type(processor) is RolloutSpanProcessor for processor in processors)


def _tracer_for(provider: Any) -> tuple[trace.Tracer, PendingIdGenerator | None]:
    """A tracer of ``provider`` whose id generator the library owns (SDK tracers)."""
    from opentelemetry.sdk.trace import Tracer as SdkTracer

    with _runtime_lock:
        cached = _tracer_cache.get(id(provider))
        if cached is not None and cached[0] is provider:
            return cached[1], cached[2]
        tracer = provider.get_tracer(LIVE_SCOPE_NAME, package_version())
        ids: PendingIdGenerator | None = None
        if isinstance(tracer, SdkTracer):
            ids = PendingIdGenerator(tracer.id_generator)
            tracer.id_generator = ids
        _tracer_cache.clear()
        _tracer_cache[id(provider)] = (provider, tracer, ids)
        return tracer, ids


def _root_flags(tracer: trace.Tracer, outer: otel_context.Context, trace_id: int) -> TraceFlags:
    """The sampling flags the root thread span will get (asked of the tracer's sampler).

    The spans themselves are built later, on the writer thread; the context managers
    need the flags now, for the spans the app starts inside them.
    """
    sampler = getattr(tracer, "sampler", None)
    if sampler is None:
        return TraceFlags(TraceFlags.DEFAULT)
    result = sampler.should_sample(outer, trace_id, "invoke_agent", trace.SpanKind.INTERNAL)
    return TraceFlags(TraceFlags.SAMPLED if result.decision.is_sampled() else TraceFlags.DEFAULT)


def new_trace_id() -> int:
    """A new root's OTel trace id: 128 random bits (``os.urandom``, so per process after a
    fork too). The bundle's ``trace_id`` is this id written as a UUID
    (:func:`~otel_rollout._otel._mapping.uuid_from_trace_id`, reversed by
    ``trace_id_from_uuid``). Not a UUIDv4: its fixed variant bits would sit in the low 64
    bits that ``TraceIdRatioBased`` compares, and sample nothing at a ratio of 0.5 or less."""
    return int.from_bytes(os.urandom(16), "big") or 1


def open_recorder(root: Path, thread_id: str) -> RolloutRecorder:
    """Create the bundle and the live pipeline of a new root rollout.

    Raises:
        OSError: the bundle could not be created.
    """
    _generation, settings, provider, exporter = configured()
    exporter = exporter or _shared()
    provider = _resolve_provider(provider, exporter, settings.set_global_provider)
    tracer, ids = _tracer_for(provider)
    outer = otel_context.get_current()
    current = trace.get_current_span(outer)
    if isinstance(current, ForwardingSpan) and current.recorder_pid != os.getpid():
        # inside a rollout of the process this one was forked from: a new trace of its own
        outer = trace.set_span_in_context(trace.INVALID_SPAN, outer)
        current = trace.INVALID_SPAN
    parent = current.get_span_context()
    otel_trace_id = parent.trace_id if parent.is_valid else new_trace_id()
    flags = parent.trace_flags if parent.is_valid else _root_flags(tracer, outer, otel_trace_id)
    writer = BundleWriter.create(
        root,
        root_thread_id=thread_id,
        trace_id=uuid_from_trace_id(otel_trace_id),
        schema_version=SCHEMA_VERSION
        if settings.schema_version is None
        else settings.schema_version,
        max_bytes=settings.max_bytes,
        max_payload_bytes=settings.max_payload_bytes,
    )
    bundle = exporter._open_bundle(writer)
    otel_trace_id = trace_id_from_uuid(writer.manifest.trace_id)
    sink = LiveSpanSink(tracer, ids, otel_trace_id, outer)
    return RolloutRecorder(
        bundle,
        exporter._submit,
        sink,
        trace_flags=flags,
        capture_content=settings.capture_content,
        content_max_bytes=settings.content_max_bytes,
        content_events=LogContentEvents(otel_trace_id, flags) if settings.content_events else None,
        redactor=redactor_for(settings.redact_patterns, settings.redact),
        live_spans=settings.content_events or _spans_wanted(provider),
        drop_under_load=settings.load_policy == "drop",
    )
