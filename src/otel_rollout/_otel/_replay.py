"""Replay a trace bundle over OTLP: the bundle's spans, sent with the standard OTLP exporters.

The spans come from the same mapping as live recording (``_mapping``), so ids are the live ids and
timestamps are the recorded ones: sending a bundle twice, or a bundle that was already exported
live, gives one trace. Requests are cut to stay under the receiver's message limits, and an
endpoint that refuses or does not answer makes the replay fail fast with :class:`ExportError`.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Final, Literal

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

from otel_rollout._bundle._models import RawPayloadRef, RawTraceEvent
from otel_rollout._bundle._payloads import PayloadStore
from otel_rollout._bundle._reader import Bundle, BundleError
from otel_rollout._bundle._schema import schema_problem
from otel_rollout._otel._mapping import (
    Attributes,
    LinkSpec,
    SpanMapper,
    SpanStart,
    derived_span_context,
    trace_id_from_uuid,
)
from otel_rollout._version import package_version

Protocol = Literal["grpc", "http/protobuf"]
PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")

GRPC_MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 256 * 1024
"""Receivers' default gRPC limit is 4 MiB per message; keep a margin for framing."""
HTTP_MAX_REQUEST_BYTES = 8 * 1024 * 1024
"""Collectors accept 20 MiB per OTLP/HTTP request by default; stay well under it."""
MAX_SPANS_PER_REQUEST = 512
REQUEST_TIMEOUT_SECONDS = 10.0
"""Per request, retries included; replay stops at the first failed request (well under 30 s)."""

_DEFAULT_ENDPOINTS: dict[Protocol, str] = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318",
}
_EXPORTER_LOGGER = "opentelemetry.exporter"


class ExportError(Exception):
    """The spans could not be sent: bad settings, a span too big, or the endpoint failed."""


@dataclass(frozen=True)
class OtlpTarget:
    """Where and how to send: resolved from arguments, then ``OTEL_EXPORTER_OTLP_*``."""

    protocol: Protocol
    url: str
    """``scheme://host:port`` for gRPC; the full ``.../v1/traces`` URL for http/protobuf."""
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout: float = REQUEST_TIMEOUT_SECONDS

    @property
    def max_request_bytes(self) -> int:
        return GRPC_MAX_REQUEST_BYTES if self.protocol == "grpc" else HTTP_MAX_REQUEST_BYTES


@dataclass(frozen=True)
class ExportResult:
    """What a replay sent."""

    trace_ids: tuple[int, ...]
    spans: int
    requests: int
    seconds: float
    url: str


def parse_headers(text: str) -> dict[str, str]:
    """Parse ``k1=v1,k2=v2`` as in ``OTEL_EXPORTER_OTLP_HEADERS`` (values percent-decoded)."""
    headers: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ExportError(f"invalid OTLP header {item.strip()!r}: expected key=value")
        headers[urllib.parse.unquote(key.strip()).lower()] = urllib.parse.unquote(value.strip())
    return headers


_HOST_PORT: Final = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):[0-9]{1,5}")
"""A gRPC endpoint without a scheme, as OTel's gRPC exporter takes it (``host:port``)."""


def resolve_target(
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Iterable[str] | Mapping[str, str] = (),
    environ: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> OtlpTarget:
    """Resolve the target as the OTel SDK does, with explicit arguments winning.

    ``endpoint`` is a base URL as in ``OTEL_EXPORTER_OTLP_ENDPOINT``: for http/protobuf,
    ``/v1/traces`` is appended. ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as given.
    The protocol defaults to http/protobuf. ``headers`` are ``key=value`` strings or a mapping,
    added to (and overriding) ``OTEL_EXPORTER_OTLP_HEADERS`` and ``..._TRACES_HEADERS``.
    ``timeout`` bounds each request, retries included (default
    :data:`REQUEST_TIMEOUT_SECONDS`).
    """
    env = os.environ if environ is None else environ
    chosen = (
        protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if chosen not in PROTOCOLS:
        raise ExportError(f"unsupported OTLP protocol {chosen!r} (use grpc or http/protobuf)")
    proto: Protocol = "grpc" if chosen == "grpc" else "http/protobuf"

    signal_url = None if endpoint else env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    base = endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or _DEFAULT_ENDPOINTS[proto]
    url = (signal_url or base).strip()
    parsed = urllib.parse.urlparse(url)
    bare = proto == "grpc" and _HOST_PORT.fullmatch(url) is not None
    if not bare and (parsed.scheme not in ("http", "https") or not parsed.netloc):
        expected = "http(s)://host:port or host:port" if proto == "grpc" else "http(s)://host:port"
        raise ExportError(f"invalid OTLP endpoint {url!r}: expected {expected}")
    if proto == "http/protobuf" and not signal_url:
        url = url.rstrip("/") + "/v1/traces"

    merged: dict[str, str] = {}
    for name in ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"):
        merged.update(parse_headers(env.get(name, "")))
    if isinstance(headers, Mapping):
        merged.update({key.lower(): value for key, value in headers.items()})
    else:
        for item in headers:
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise ExportError(f"invalid header {item!r}: expected key=value")
            merged[key.strip().lower()] = value.strip()
    seconds = REQUEST_TIMEOUT_SECONDS if timeout is None else timeout
    return OtlpTarget(protocol=proto, url=url, headers=merged, timeout=seconds)


def make_exporter(target: OtlpTarget) -> SpanExporter:
    """The standard OTLP span exporter for ``target``."""
    if target.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        scheme = urllib.parse.urlparse(target.url).scheme
        return GrpcSpanExporter(
            endpoint=target.url,
            # host:port (no scheme): TLS unless OTEL_EXPORTER_OTLP_INSECURE=true, as OTel decides
            insecure=scheme == "http" if scheme in ("http", "https") else None,
            headers=dict(target.headers),
            timeout=target.timeout,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(
        endpoint=target.url,
        headers=dict(target.headers),
        timeout=target.timeout,
        max_request_size=0,  # replay already cuts requests to size
    )


def span_size(span: ReadableSpan) -> int:
    """Serialized size of a request holding only ``span`` (exact, but slow)."""
    size: int = encode_spans([span]).ByteSize()
    return size


_FIELD = 10
"""Upper bound of a protobuf field's tag and length prefix."""


def estimate_size(span: ReadableSpan) -> int:
    """An upper bound of ``span``'s share of an OTLP request, without encoding it.

    Counts every field's payload plus :data:`_FIELD` bytes of framing for it, which
    is more than protobuf ever spends; strings count their UTF-8 bytes.
    """
    size = 6 * _FIELD + 16 + 8 + 8 + 8 + 8 + 4 + _text(span.name)
    size += _attributes_size(span.attributes)
    for event in span.events:
        size += 3 * _FIELD + 8 + _text(event.name) + _attributes_size(event.attributes)
    for link in span.links:
        size += 5 * _FIELD + 16 + 8 + 4 + _attributes_size(link.attributes)
    if span.status.description:
        size += 2 * _FIELD + _text(span.status.description)
    return size


def _text(value: str) -> int:
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))


def _attributes_size(attributes: Mapping[str, object] | None) -> int:
    if not attributes:
        return 0
    return sum(3 * _FIELD + _text(key) + _value_size(value) for key, value in attributes.items())


def _value_size(value: object) -> int:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, (list, tuple)):
        return sum(2 * _FIELD + _value_size(item) for item in value)
    return 10  # bool, int (varint <= 10 bytes), float (8 bytes)


def plan_requests(
    spans: Sequence[ReadableSpan], max_bytes: int, max_spans: int = MAX_SPANS_PER_REQUEST
) -> list[list[ReadableSpan]]:
    """Cut ``spans`` (in order) into requests of at most ``max_bytes`` and ``max_spans``.

    Raises :class:`ExportError` before anything is sent if one span alone is too big.
    """
    batches: list[list[ReadableSpan]] = []
    current: list[ReadableSpan] = []
    current_bytes = 0
    for span in spans:
        size = estimate_size(span)
        if size > max_bytes:
            size = span_size(span)  # the estimate is an upper bound: check the exact size
        if size > max_bytes:
            context = span.get_span_context()
            span_id = f"{context.span_id:016x}" if context else "?"
            raise ExportError(
                f"span {span.name!r} ({span_id}) alone is {size} bytes, over the "
                f"{max_bytes}-byte request limit of this protocol; try --protocol http/protobuf"
            )
        if current and (current_bytes + size > max_bytes or len(current) >= max_spans):
            batches.append(current)
            current, current_bytes = [], 0
        current.append(span)
        current_bytes += size
    if current:
        batches.append(current)
    return batches


class _Capture(logging.Handler):
    """Keeps the exporters' log records so failures become one clear message."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.messages.append(record.getMessage())


@contextmanager
def _captured_exporter_logs() -> Iterator[_Capture]:
    logger = logging.getLogger(_EXPORTER_LOGGER)
    handler = _Capture()
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


def export_spans(
    spans: Sequence[ReadableSpan],
    target: OtlpTarget,
    on_progress: Callable[[int], None] | None = None,
    exporter: SpanExporter | None = None,
) -> ExportResult:
    """Send ``spans`` to ``target`` in as many requests as the size limits need.

    ``on_progress`` is called with the number of spans after each request. Stops at the first
    failed request with :class:`ExportError`.
    """
    started = time.monotonic()
    batches = plan_requests(spans, target.max_request_bytes)
    own = exporter is None
    sender = make_exporter(target) if exporter is None else exporter
    sent = 0
    try:
        with _captured_exporter_logs() as logs:
            for number, batch in enumerate(batches, start=1):
                result = sender.export(batch)
                if result is not SpanExportResult.SUCCESS:
                    reason = _reason(logs.messages) or _diagnose(target.url, target.timeout)
                    raise ExportError(
                        f"cannot export to {target.url} ({target.protocol}): request {number} of "
                        f"{len(batches)} failed after {sent} spans were sent: {reason}"
                    )
                sent += len(batch)
                if on_progress is not None:
                    on_progress(len(batch))
    finally:
        if own:
            with _captured_exporter_logs():
                sender.shutdown()
    trace_ids = tuple(dict.fromkeys(_trace_id(span) for span in spans))
    return ExportResult(
        trace_ids=trace_ids,
        spans=sent,
        requests=len(batches),
        seconds=time.monotonic() - started,
        url=target.url,
    )


def _reason(messages: Sequence[str]) -> str:
    """The most telling exporter message: the last one that names a cause, else ``""``."""
    generic = "due to timeout, max retries or shutdown"
    specific = [message for message in messages if generic not in message]
    return specific[-1] if specific else ""


def _diagnose(url: str, timeout: float) -> str:
    """A reason for a failed export when the exporter logged none (it de-duplicates its logs)."""
    parsed = urllib.parse.urlparse(url if "://" in url else f"//{url}")
    host = parsed.hostname or "localhost"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=3):
            return (
                f"{host}:{port} accepts connections, but the export failed or got no answer "
                f"within {timeout:g} s"
            )
    except ConnectionRefusedError:
        return f"connection refused by {host}:{port}"
    except TimeoutError:
        return f"no answer from {host}:{port}"
    except OSError as failure:
        return f"cannot connect to {host}:{port}: {failure.strerror or failure}"


def _trace_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    return context.trace_id if context is not None else 0


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)


class SpanCollector:
    """A :class:`~otel_rollout._otel._mapping.SpanSink` that turns the mapping's output into
    finished :class:`ReadableSpan` objects with the recorded times and the derived ids."""

    def __init__(self, trace_id: int, resource: Resource, scope: InstrumentationScope) -> None:
        self.trace_id = trace_id
        self.resource = resource
        self.scope = scope
        self.spans: list[ReadableSpan] = []
        self._open: dict[str, _OpenSpan] = {}

    def _context(self, key: str) -> SpanContext:
        return derived_span_context(self.trace_id, key, _SAMPLED)

    def _link(self, link: LinkSpec) -> Link:
        return Link(self._context(link.target), dict(link.attributes))

    def start_span(self, start: SpanStart) -> None:
        self._open[start.key] = _OpenSpan(
            start=start,
            attributes=dict(start.attributes),
            events=[],
            links=[self._link(link) for link in start.links],
        )

    def add_event(self, key: str, name: str, attributes: Attributes, time_ns: int) -> None:
        self._open[key].events.append(Event(name, dict(attributes), time_ns))

    def set_attributes(self, key: str, attributes: Attributes) -> None:
        self._open[key].attributes.update(attributes)

    def add_link(self, key: str, link: LinkSpec) -> None:
        self._open[key].links.append(self._link(link))

    def end_span(
        self, key: str, status: StatusCode, description: str | None, end_time_ns: int
    ) -> None:
        span = self._open.pop(key)
        start = span.start
        self.spans.append(
            ReadableSpan(
                name=start.name,
                context=SpanContext(self.trace_id, start.span_id, False, _SAMPLED),
                parent=None if start.parent is None else self._context(start.parent),
                resource=self.resource,
                attributes=span.attributes,
                events=span.events,
                links=span.links,
                kind=start.kind,
                status=Status(status, description if status is StatusCode.ERROR else None),
                start_time=start.start_time_ns,
                end_time=max(end_time_ns, start.start_time_ns),
                instrumentation_scope=self.scope,
            )
        )


@dataclass
class _OpenSpan:
    start: SpanStart
    attributes: Attributes
    events: list[Event]
    links: list[Link]


def replay_resource() -> Resource:
    """The resource of replayed spans: ``OTEL_RESOURCE_ATTRIBUTES`` / ``OTEL_SERVICE_NAME``,
    with ``service.name`` ``otel-rollout`` when neither names a service."""
    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: "otel-rollout"}))
    return resource


class _SharedReads(PayloadStore):
    """A bundle's payload store that keeps the bodies read for the current event.

    One event's payloads are read once, whoever reads first: the reduce check before the
    span build (one pass over the bundle), or the mapping reading a body for its size and
    hash and again for the fields it decodes. :meth:`forget` drops them (after each event),
    so memory stays one event's payloads.
    """

    def __init__(self, store: PayloadStore) -> None:
        self.store = store
        self._recent: dict[int, tuple[RawPayloadRef | str, bytes]] = {}

    def read(self, ref: RawPayloadRef | str) -> bytes:
        kept = self._recent.get(id(ref))
        if kept is not None and kept[0] is ref:
            return kept[1]
        data = self.store.read(ref)
        self._recent[id(ref)] = (ref, data)
        return data

    def describe(self, ref: RawPayloadRef | str) -> str:
        return self.store.describe(ref)

    def forget(self) -> None:
        self._recent.clear()


_MAX_UNIX_MS: Final = ((1 << 64) - 1) // 1_000_000
"""The latest wall time OTLP's unsigned nanoseconds hold (in the year 2554)."""
_UNSENDABLE: Final = "cannot be sent as OTLP time (unsigned nanoseconds: 1970 to 2554)"


class BundleSpans:
    """A bundle's spans, built one event at a time as a reader of the bundle hands them over.

    :func:`bundle_spans` reads the events itself; the ``replay`` command hands over the events
    its reduce check reads, so the bundle is read (and each payload read) once. What replay
    alone refuses (a line its schema refuses, a time OTLP cannot carry, a trace id that is
    not a UUID) is raised by :meth:`spans`, at its line, after that reader had its say.
    """

    def __init__(
        self,
        bundle: Bundle,
        *,
        capture_content: bool | None = None,
        content_max_bytes: int | None = None,
        resource: Resource | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        """Prepare the mapping of ``bundle``; see :func:`bundle_spans` for the arguments."""
        from otel_rollout._bundle._redact import redactor_for
        from otel_rollout._config import (
            content_max_bytes_from_env,
            content_mode_from_env,
            redact_patterns_from_env,
        )
        from otel_rollout._otel._content_events import LogContentEvents
        from otel_rollout._otel._live_spans import LIVE_SCOPE_NAME

        self.bundle = bundle
        manifest = bundle.manifest
        self._reads = _SharedReads(bundle.payloads)
        bundle.payloads = self._reads
        self._refused: BundleError | None = None
        self._last_ns = 0
        self._schema = bundle.schema_version
        try:
            trace_id = trace_id_from_uuid(manifest.trace_id)
        except ValueError:
            trace_id = 0
            self._refused = BundleError(bundle.manifest_path, 0, "trace_id is not a UUID")
        if self._refused is None and not 0 <= manifest.started_at_unix_ms <= _MAX_UNIX_MS:
            reason = f"started_at_unix_ms {manifest.started_at_unix_ms} {_UNSENDABLE}"
            self._refused = BundleError(bundle.manifest_path, 0, reason)
        self.collector = SpanCollector(
            trace_id,
            resource or replay_resource(),
            InstrumentationScope(LIVE_SCOPE_NAME, package_version()),
        )
        on_spans, as_events = content_mode_from_env()
        self._mapper = SpanMapper(
            self.collector,
            trace_id=manifest.trace_id if trace_id else str(uuid.UUID(int=0)),
            rollout_id=manifest.rollout_id,
            read_payload=self._read_payload,
            capture_content=on_spans if capture_content is None else capture_content,
            content_max_bytes=(
                content_max_bytes_from_env() if content_max_bytes is None else content_max_bytes
            ),
            content_events=(
                LogContentEvents(trace_id, TraceFlags(TraceFlags.SAMPLED)) if as_events else None
            ),
            redactor=redactor_for(redact_patterns_from_env(), redact),
        )

    def _read_payload(self, ref: RawPayloadRef) -> bytes | None:
        """Payload bytes through the bundle's store; ``None`` when missing or refused."""
        try:
            return self._reads.read(ref)
        except ValueError:
            return None

    def add(self, number: int, event: RawTraceEvent) -> None:
        """Map the event of ``trace.jsonl`` line ``number`` (events in file order)."""
        if self._refused is None:
            problem = None if self._schema is None else schema_problem(event.payload, self._schema)
            if problem is not None:
                self._refused = BundleError(self.bundle.event_log_path, number, problem)
            elif not 0 <= event.wall_time_unix_ms <= _MAX_UNIX_MS:
                reason = f"wall_time_unix_ms {event.wall_time_unix_ms} {_UNSENDABLE}"
                self._refused = BundleError(self.bundle.event_log_path, number, reason)
            else:
                self._mapper.map_raw_event(event)
                self._last_ns = event.wall_time_unix_ms * 1_000_000
        self._reads.forget()

    @property
    def refused(self) -> bool:
        """Whether replay refuses the bundle (:meth:`spans` raises why); later events are
        not mapped."""
        return self._refused is not None

    def spans(self) -> list[ReadableSpan]:
        """End what is still open (at the last event's time) and return every span.

        Raises:
            BundleError: What replay refuses, at the first line refused.
        """
        if self._refused is not None:
            raise self._refused
        self._mapper.finish(self._last_ns)
        return self.collector.spans


def bundle_spans(
    bundle_dir: str | os.PathLike[str],
    *,
    capture_content: bool | None = None,
    content_max_bytes: int | None = None,
    resource: Resource | None = None,
    redact: Callable[[str], str] | None = None,
) -> list[ReadableSpan]:
    """The spans live recording would have exported for this bundle, via the shared mapping.

    ``capture_content`` and ``content_max_bytes`` default to the same environment settings as
    live recording; content is redacted by ``OTEL_ROLLOUT_REDACT_PATTERNS`` then ``redact``,
    and goes out as log events too when the content switch says so. Raises
    :class:`~otel_rollout.BundleError` for an unreadable bundle.
    """
    bundle = Bundle(bundle_dir)
    builder = BundleSpans(
        bundle,
        capture_content=capture_content,
        content_max_bytes=content_max_bytes,
        resource=resource,
        redact=redact,
    )
    events = () if builder.refused else bundle.events()  # the manifest's refusal comes first
    for number, event in events:
        builder.add(number, event)
        if builder.refused:
            break
    return builder.spans()


def export_bundle(
    bundle_dir: str | os.PathLike[str],
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Iterable[str] | Mapping[str, str] = (),
    *,
    capture_content: bool | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportResult:
    """Replay a bundle (ours or Codex's) to an OTLP endpoint.

    See :func:`resolve_target` for ``endpoint``, ``protocol`` and ``headers``. Raises
    :class:`ExportError` when the spans cannot be sent, :class:`~otel_rollout.BundleError` when
    the bundle cannot be read.
    """
    target = resolve_target(endpoint, protocol, headers)
    spans = bundle_spans(bundle_dir, capture_content=capture_content)
    return export_spans(spans, target, on_progress)
