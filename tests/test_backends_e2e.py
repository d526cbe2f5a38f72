"""End-to-end: OTLP into a real collector (rotel) and a real trace store (MLflow), then query it."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Link, SpanContext, Status, StatusCode, TraceFlags

if TYPE_CHECKING:
    from backends import Backends

pytest_plugins = ["backends"]
pytestmark = [pytest.mark.backend]


def span_id_hex(value: str) -> str:
    """An id as MLflow returns it (base64) in lowercase hex."""
    return base64.b64decode(value).hex() if value else ""


def _send_sdk_trace(exporter: SpanExporter) -> tuple[int, dict[str, int]]:
    """Record parent -> child with an event and a link to another trace; return ids."""
    provider = TracerProvider(resource=Resource.create({"service.name": "otel-rollout-e2e"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("e2e")
    target = SpanContext(
        trace_id=0x0123456789ABCDEF0123456789ABCDEF,
        span_id=0x0123456789ABCDEF,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    with tracer.start_as_current_span("parent") as parent:
        with tracer.start_as_current_span(
            "child", links=[Link(target, {"link.kind": "agent_result"})]
        ) as child:
            child.add_event("first.token", {"n": 1})
            child.set_attribute("gen_ai.operation.name", "chat")
            child.set_status(Status(StatusCode.ERROR, "boom"))
    provider.shutdown()
    ids = {"parent": parent.get_span_context().span_id, "child": child.get_span_context().span_id}
    return parent.get_span_context().trace_id, ids


def _assert_sdk_trace(spans: list[dict[str, Any]], ids: dict[str, int]) -> None:
    by_name = {span["name"]: span for span in spans}
    assert set(by_name) == {"parent", "child"}
    parent, child = by_name["parent"], by_name["child"]
    assert span_id_hex(parent["span_id"]) == f"{ids['parent']:016x}"
    assert span_id_hex(child["span_id"]) == f"{ids['child']:016x}"
    assert span_id_hex(child["parent_span_id"]) == f"{ids['parent']:016x}"
    assert [event["name"] for event in child["events"]] == ["first.token"]
    (link,) = child["links"]
    assert span_id_hex(link["trace_id"]) == "0123456789abcdef0123456789abcdef"
    assert span_id_hex(link["span_id"]) == "0123456789abcdef"
    assert {"key": "link.kind", "value": {"string_value": "agent_result"}} in link["attributes"]
    assert child["status"]["code"] == "STATUS_CODE_ERROR"


def test_sdk_span_over_grpc_through_rotel_reaches_mlflow(backends: Backends) -> None:
    exporter = GrpcExporter(endpoint=backends.rotel_grpc, insecure=True, timeout=10)
    trace_id, ids = _send_sdk_trace(exporter)
    _assert_sdk_trace(backends.wait_for_spans(trace_id, 2), ids)


def test_sdk_span_over_http_reaches_mlflow(backends: Backends) -> None:
    exporter = HttpExporter(
        endpoint=f"{backends.mlflow_url}/v1/traces", headers=backends.mlflow_headers, timeout=10
    )
    trace_id, ids = _send_sdk_trace(exporter)
    _assert_sdk_trace(backends.wait_for_spans(trace_id, 2), ids)
