"""The ingest API's trace links: a re-trigger's request span points at the traces of what it re-runs.

Kept apart from ``middleware`` (which also answers the association store's errors) so ``handlers`` can use it
without reaching an adapter.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import trace

from relay_platform.telemetry import span_context_of


def link_order_traces(trace_parents: Sequence[str]) -> None:
    """Link the current span (the re-trigger's request span) to each order's original trace, as the association
    store recorded it (W3C traceparents). A value that does not name a valid trace (malformed, all-zero IDs) is
    skipped: tracing never fails a request."""
    span = trace.get_current_span()
    for trace_parent in trace_parents:
        linked = span_context_of(trace_parent)
        if linked is not None:
            span.add_link(linked, attributes={"relay.link": "original-order-trace"})
