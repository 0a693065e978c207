"""OpenTelemetry tracing: one provider per process, OTLP/HTTP export when the endpoint is configured."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# W3C version 00: "00-" + 32 hex trace ID + "-" + 16 hex span ID + "-" + 2 hex flags.
TRACEPARENT_LENGTH = 55
_W3C = TraceContextTextMapPropagator()


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


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span (inside a handler: the message's consume span), for work that
    is stored now and carried on later by a task with no span of its own; ``None`` outside any trace."""
    carrier: dict[str, str] = {}
    _W3C.inject(carrier)
    value = carrier.get("traceparent")
    return value if value is not None and len(value) == TRACEPARENT_LENGTH else None


@contextmanager
def continuing_trace(traceparent: str | None) -> Iterator[None]:
    """Make the span ``traceparent`` names the current parent for the block, so what it publishes (and the
    producer spans FastStream makes for it) join that trace; the block runs in the current context when the value
    is missing or not a valid W3C ``traceparent`` (stored data is never trusted to be well formed)."""
    linked = span_context_of(traceparent) if traceparent else None
    if linked is None:
        yield
        return
    token = otel_context.attach(trace.set_span_in_context(trace.NonRecordingSpan(linked)))
    try:
        yield
    finally:
        otel_context.detach(token)


def span_context_of(traceparent: str) -> SpanContext | None:
    """The (remote) span context a W3C ``traceparent`` names, or ``None`` when it names none: malformed, all-zero
    IDs, a forbidden version (the propagator's checks)."""
    linked = trace.get_current_span(_W3C.extract({"traceparent": traceparent})).get_span_context()
    return linked if linked.is_valid else None
