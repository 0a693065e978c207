"""Trace context kept with stored work: read from the current span, and made current again later."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from relay_platform.telemetry import TRACEPARENT_LENGTH, continuing_trace, current_traceparent

TRACER = TracerProvider().get_tracer("test")
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_outside_any_span_there_is_no_traceparent() -> None:
    assert current_traceparent() is None


def test_inside_a_span_its_traceparent_is_read_and_later_continued() -> None:
    with TRACER.start_as_current_span("consume") as span:
        kept = current_traceparent()
    assert kept is not None
    assert len(kept) == TRACEPARENT_LENGTH
    assert kept.split("-")[1] == format(span.get_span_context().trace_id, "032x")

    with continuing_trace(kept), TRACER.start_as_current_span("publish") as later:
        pass

    assert later.get_span_context().trace_id == span.get_span_context().trace_id
    assert isinstance(later, ReadableSpan)
    assert later.parent is not None
    assert later.parent.span_id == span.get_span_context().span_id
    assert current_traceparent() is None  # the block's context is gone again


@pytest.mark.parametrize(
    "stored",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace ID: invalid
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span ID: invalid
        "00-" + "٤" * 32 + "-00f067aa0ba902b7-01",  # Arabic-Indic digits look like hex to isdigit()
        VALID + "x" * 4000,
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
    ],
)
def test_a_stored_value_that_is_no_valid_traceparent_changes_nothing(stored: str | None) -> None:
    with TRACER.start_as_current_span("scheduler round") as current:
        with continuing_trace(stored), TRACER.start_as_current_span("publish") as span:
            pass
        assert trace.get_current_span() is current
    assert span.get_span_context().trace_id == current.get_span_context().trace_id
