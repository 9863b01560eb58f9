"""`configure`: the TracerProvider an agent exports its steps with, to a workbench or any exporter."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter


def configure(
    *,
    endpoint: str | None = None,
    exporter: SpanExporter | None = None,
    service_name: str = "agent",
    resource_attributes: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
    batch: bool = True,
    set_global: bool = True,
) -> TracerProvider:
    """A TracerProvider exporting to the workbench: OTLP/HTTP to `endpoint` (a `workbench serve` base URL
    such as http://127.0.0.1:4318), or any SpanExporter (e.g. `DuckDBSpanExporter` in-process).

    Batching keeps exports off the agent's thread; call `provider.shutdown()` before exit to flush.
    """
    if (endpoint is None) == (exporter is None):
        raise ValueError("configure() takes exactly one of endpoint= or exporter=")
    if endpoint is not None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError(
                "configure(endpoint=...) needs opentelemetry-exporter-otlp-proto-http installed"
            ) from exc
        url = endpoint if endpoint.rstrip("/").endswith("/v1/traces") else endpoint.rstrip("/") + "/v1/traces"
        exporter = OTLPSpanExporter(endpoint=url, headers=dict(headers or {}))
    assert exporter is not None
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name, **dict(resource_attributes or {})})
    )
    processor = (
        BatchSpanProcessor(exporter, schedule_delay_millis=500) if batch else SimpleSpanProcessor(exporter)
    )
    provider.add_span_processor(processor)
    if set_global:
        trace.set_tracer_provider(provider)
    return provider
