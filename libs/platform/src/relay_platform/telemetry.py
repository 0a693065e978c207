"""OpenTelemetry tracing: one provider per process, OTLP/HTTP export when the endpoint is configured."""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor


def setup_tracing(service: str) -> TracerProvider:
    """Install (once) and return the process's tracer provider for ``service`` (its folder name: ``ingest-api``,
    ``deliver-sftp``, ...), which becomes ``service.name`` unless ``OTEL_SERVICE_NAME`` names another.

    Spans are exported over OTLP/HTTP only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or the traces-only
    ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set; the exporter and the batch processor read the other standard
    ``OTEL_*`` variables themselves (headers, timeout, ``OTEL_BSP_SCHEDULE_DELAY``...). Without an endpoint the
    provider still creates trace IDs so logs and Kafka headers carry them.
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    # Resource.create also reads OTEL_RESOURCE_ATTRIBUTES; the explicit service.name wins over it, as the spec
    # has OTEL_SERVICE_NAME do.
    name = os.environ.get("OTEL_SERVICE_NAME") or service
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return provider
