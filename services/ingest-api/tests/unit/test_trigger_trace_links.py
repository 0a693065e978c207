"""Issue 12: a re-trigger is a new trace whose request span links to each matching order's original trace, as the
association store recorded it (``traceParent`` on its lookup answer); an unusable stored value makes no link and
never fails the request. Spans are recorded in memory (``InMemorySpanExporter``)."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import TENANTS_FILE, World, order
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from relay_contracts.messages import IntegrationsTriggered
from relay_ingest_api import handlers
from relay_ingest_api.domain import MAX_ORDER_TRACE_LINKS
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_ingest_api.tracing import link_order_traces
from relay_testing.shared_secrets import link_settings

WRITER = {"Authorization": "Bearer demo-writer"}
TRACE_A = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACE_B = "0af7651916cd43dd8448eb211c80319c"
CALLER_TRACE = "11111111111111111111111111111111"


def traced(order_id: str, trace_id: str, span_id: str = "00f067aa0ba902b7", **extra: Any) -> dict[str, Any]:
    return order(order_id, ("999-a", f"{order_id}-i1"), **extra) | {"traceParent": f"00-{trace_id}-{span_id}-01"}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


async def _client(world: World, exporter: InMemorySpanExporter) -> TestClient[web.Request, web.Application]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = web.Application(middlewares=[error_middleware(provider)])
    app[SETTINGS] = Settings(tenants_file=TENANTS_FILE, links=link_settings(public_base_url="http://relay.test"))
    app[PORTS] = world.ports
    app.add_routes(handlers.routes)
    return TestClient(TestServer(app))


async def _retrigger(
    world: World, exporter: InMemorySpanExporter, body: dict[str, Any], headers: dict[str, str] | None = None
) -> ReadableSpan:
    async with await _client(world, exporter) as client:
        response = await client.post("/api/v2/integrations/trigger", json=body, headers=WRITER | (headers or {}))
        assert response.status == 202, await response.text()
    (span,) = [s for s in exporter.get_finished_spans() if s.name == "POST /api/v2/integrations/trigger"]
    assert span.parent is None
    return span


def _linked(span: ReadableSpan) -> list[tuple[str, str]]:
    return [(format(link.context.trace_id, "032x"), str((link.attributes or {})["relay.link"])) for link in span.links]


async def test_a_retrigger_links_to_each_orders_original_trace_once(exporter: InMemorySpanExporter) -> None:
    # o1 and o2 were sent in one request (one trace, two consume spans); o3 in another; o4 has no known trace.
    world = World().with_orders(
        [
            traced("o1", TRACE_A),
            traced("o2", TRACE_A, "b7ad6b7169203331"),
            traced("o3", TRACE_B),
            order("o4", ("999-a", "o4-i1")),
        ]
    )
    span = await _retrigger(world, exporter, {"orderNumber": "1001"})
    assert span.context is not None
    assert format(span.context.trace_id, "032x") not in {TRACE_A, TRACE_B}  # a trace of its own
    assert _linked(span) == [(TRACE_A, "original-order-trace"), (TRACE_B, "original-order-trace")]
    assert len(world.publisher.published) == 4  # every order re-run, linked or not


async def test_the_links_follow_every_page_and_stop_at_the_bound(exporter: InMemorySpanExporter) -> None:
    traces = [f"{n + 1:032x}" for n in range(MAX_ORDER_TRACE_LINKS + 8)]
    first, rest = traces[:20], traces[20:]
    world = World().with_orders(
        [traced(f"o{n:03}", t) for n, t in enumerate(first)],
        [traced(f"o{n + 20:03}", t) for n, t in enumerate(rest)],
    )
    span = await _retrigger(world, exporter, {"recipeId": "999-a", "integrationIds": ["demo-email"]})
    assert [trace_id for trace_id, _ in _linked(span)] == traces[:MAX_ORDER_TRACE_LINKS]
    assert len(world.publisher.published) == len(traces)


async def test_a_caller_named_trace_is_linked_beside_the_orders(exporter: InMemorySpanExporter) -> None:
    world = World().with_orders([traced("o1", TRACE_A)])
    headers = {"traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"}
    span = await _retrigger(world, exporter, {"orderId": "o1"}, headers)
    assert _linked(span) == [(CALLER_TRACE, "caller-named-trace"), (TRACE_A, "original-order-trace")]


@pytest.mark.parametrize(
    "stored",
    [
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace ID: names no trace
        f"00-{TRACE_A}-" + "0" * 16 + "-01",  # all-zero span ID
        f"ff-{TRACE_A}-00f067aa0ba902b7-01",  # version ff is forbidden
        "not-a-traceparent",
        f"00-{TRACE_A.upper()}-00f067aa0ba902b7-01",  # upper-case hex is not W3C
        "00-" + "a" * 4000 + "-00f067aa0ba902b7-01",
        "",
    ],
)
async def test_an_unusable_stored_trace_makes_no_link_and_no_error(exporter: InMemorySpanExporter, stored: str) -> None:
    world = World().with_orders([order("o1", ("999-a", "i1")) | {"traceParent": stored}])
    span = await _retrigger(world, exporter, {"orderId": "o1"})
    assert not span.links
    (record,) = world.publisher.published
    assert isinstance(record.message, IntegrationsTriggered)


def test_linking_skips_values_naming_no_trace(exporter: InMemorySpanExporter) -> None:
    # What the contract would refuse, straight to the linker: it must not raise either.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("request"):
        link_order_traces(["", "00-zz", "00-" + "0" * 32 + "-" + "0" * 16 + "-00", f"00-{TRACE_B}-b7ad6b7169203331-01"])
    (span,) = exporter.get_finished_spans()
    assert _linked(span) == [(TRACE_B, "original-order-trace")]


async def test_a_manual_trigger_is_accepted_when_it_is_made(exporter: InMemorySpanExporter) -> None:
    world = World().with_orders([traced("o1", TRACE_A)])
    await _retrigger(world, exporter, {"orderId": "o1"})
    (record,) = world.publisher.published
    assert isinstance(record.message, IntegrationsTriggered)
    assert record.message.accepted_at is not None
    assert record.message.accepted_at == record.message.occurred_at
