"""The spans' shapes without a stack: the deliverer's destination span, the ingest API's request spans and the
re-trigger's links (to the orders' original traces and to a trace its caller names), recorded in memory
(``InMemorySpanExporter``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import relay_bundle_builder.service
import relay_delivery.service
from relay_bundle_builder.domain import ByteBudget
from relay_bundle_builder.ports import BuildContext, FetchedAsset
from relay_bundle_builder.service import request_deliveries
from relay_bundle_builder.spool import AssetSpool
from relay_contracts.messages import DeliverBundle, IntegrationsTriggered, OrderLine, recipe_object_key
from relay_delivery import Deliverer, FetchedFile
from relay_delivery.testing import deliver_bundle, store_bundle
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.tracing import link_order_traces
from relay_platform.errors import TransientError
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import IntegrationBase, TenantsConfig, ZapierIntegration, load_tenants

HOOK_URL = "https://hooks.zapier.example/hooks/catch/123/s3cr3t-token/"
TENANTS = TenantsConfig.model_validate(
    {
        "tenants": {
            "acme": {"recipe-prefix": "999", "integrations": [{"id": "zap", "type": "zapier", "hook-url": HOOK_URL}]}
        }
    }
)
ORIGINAL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
STORED_TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


class FailingHook:
    async def deliver(self, integration: IntegrationBase, request: DeliverBundle, files: Sequence[FetchedFile]) -> None:
        # An SDK error quoting the URL it called: the span must not repeat it.
        raise TransientError(f"POST {integration.id} {HOOK_URL} answered 503")


class Hook:
    async def deliver(self, integration: IntegrationBase, request: DeliverBundle, files: Sequence[FetchedFile]) -> None:
        """Accepts every bundle (the destination port is a coroutine)."""


@pytest.fixture
def deliverer_tracer(provider: TracerProvider, monkeypatch: pytest.MonkeyPatch) -> None:
    # The module's tracer follows the process's provider; this test's provider stands in for it.
    monkeypatch.setattr(relay_delivery.service, "tracer", provider.get_tracer("test"))


def _deliverer(tmp_path: Path, destination: Hook | FailingHook) -> Deliverer[ZapierIntegration]:
    return Deliverer(
        integration_type="zapier",
        integration_class=ZapierIntegration,
        tenants=TENANTS,
        store=LocalDirectoryStore(tmp_path / "objects"),
        destination=destination,
    )


def _strings(span: ReadableSpan) -> list[str]:
    values = [str(v) for v in (span.attributes or {}).values()]
    return [*values, span.name, span.status.description or "", *(e.name for e in span.events)]


@pytest.mark.usefixtures("deliverer_tracer")
async def test_a_delivery_is_a_client_span_with_ids_type_and_outcome(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    deliverer = _deliverer(tmp_path, Hook())
    files = await store_bundle(deliverer.store, {"a.json": (b"{}", "application/json")})
    request = deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=files, attempt=2)

    await deliverer.attempt(request)

    (span,) = exporter.get_finished_spans()
    assert (span.name, span.kind) == ("deliver zapier", SpanKind.CLIENT)
    assert dict(span.attributes or {}) == {
        "relay.integration.type": "zapier",
        "relay.integration.id": "zap",
        "relay.delivery.id": request.delivery_id,
        "relay.delivery.attempt": 2,
        "relay.delivery.outcome": "succeeded",
        "relay.delivery.final": True,
    }
    assert span.status.status_code is StatusCode.UNSET


@pytest.mark.usefixtures("deliverer_tracer")
async def test_a_failed_delivery_span_names_the_error_class_never_its_text(
    tmp_path: Path, exporter: InMemorySpanExporter
) -> None:
    deliverer = _deliverer(tmp_path, FailingHook())
    request = deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=())

    result = await deliverer.attempt(request)

    assert result.retry is not None
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None
    assert span.attributes["relay.delivery.outcome"] == "retrying"
    assert span.attributes["error.type"] == "TransientError"
    assert span.status.status_code is StatusCode.ERROR
    assert not span.events
    assert not [text for text in _strings(span) if "s3cr3t" in text or "hooks.zapier" in text]


@pytest.fixture
async def api(provider: TracerProvider) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async def accepted(_request: web.Request) -> web.Response:
        return web.json_response({}, status=202)

    async def retriggered(request: web.Request) -> web.Response:
        # What the trigger use case does with the association store's answer: the orders' stored traces.
        link_order_traces(request.headers.getall("x-stored-trace", []))
        return web.json_response({}, status=202)

    app = web.Application(middlewares=[error_middleware(provider)])
    app.router.add_post("/api/v2/integrations/trigger", retriggered)
    app.router.add_post("/api/v2/recipe/order", accepted)
    async with TestClient(TestServer(app)) as client:
        yield client


def _traceparent(trace_id: str = ORIGINAL_TRACE) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}


def _links(span: ReadableSpan) -> list[tuple[str, object]]:
    return [(format(link.context.trace_id, "032x"), (link.attributes or {}).get("relay.link")) for link in span.links]


async def test_a_retrigger_starts_a_new_trace_linked_to_the_orders_stored_trace(
    api: TestClient[web.Request, web.Application], exporter: InMemorySpanExporter
) -> None:
    stored = {"x-stored-trace": f"00-{STORED_TRACE}-b7ad6b7169203331-01"}
    response = await api.post("/api/v2/integrations/trigger", json={}, headers=stored)
    assert response.status == 202

    (span,) = exporter.get_finished_spans()
    assert span.name == "POST /api/v2/integrations/trigger"
    assert span.parent is None
    assert span.context is not None
    assert format(span.context.trace_id, "032x") != STORED_TRACE
    assert _links(span) == [(STORED_TRACE, "original-order-trace")]
    assert (span.attributes or {})["http.response.status_code"] == 202


async def test_a_trace_the_caller_names_is_linked_too_and_told_apart(
    api: TestClient[web.Request, web.Application], exporter: InMemorySpanExporter
) -> None:
    stored = {"x-stored-trace": f"00-{STORED_TRACE}-b7ad6b7169203331-01"}
    response = await api.post("/api/v2/integrations/trigger", json={}, headers=_traceparent() | stored)
    assert response.status == 202

    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.context is not None
    assert format(span.context.trace_id, "032x") != ORIGINAL_TRACE
    assert _links(span) == [(ORIGINAL_TRACE, "caller-named-trace"), (STORED_TRACE, "original-order-trace")]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"traceparent": "00-not-a-trace-01"},
        _traceparent("0" * 32),
        {"traceparent": "00-" + "\u0663" * 32 + "-" + "b" * 16 + "-01"},  # Arabic-Indic digits: isdigit(), not hex
        {"traceparent": "00-" + "a" * 4000 + "-" + "b" * 16 + "-01"},
        {"traceparent": ""},
    ],
)
async def test_a_retrigger_without_a_valid_traceparent_or_stored_trace_has_no_link(
    api: TestClient[web.Request, web.Application], exporter: InMemorySpanExporter, headers: dict[str, str]
) -> None:
    response = await api.post("/api/v2/integrations/trigger", json={}, headers=headers)
    assert response.status == 202

    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert not span.links


async def test_an_order_request_is_a_root_span_whatever_the_caller_sends(
    api: TestClient[web.Request, web.Application], exporter: InMemorySpanExporter
) -> None:
    response = await api.post("/api/v2/recipe/order", json=[], headers=_traceparent())
    assert response.status == 202

    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.context is not None
    assert format(span.context.trace_id, "032x") != ORIGINAL_TRACE
    assert not span.links


# --- the bundle-builder ------------------------------------------------------------------------------------------

BB_TENANTS = Path(__file__).resolve().parents[2] / "services" / "bundle-builder" / "tests" / "tenants.yaml"


class PngFetcher:
    async def fetch(
        self, url: str, *, label: str, allowed_hosts: Sequence[str], budget: ByteBudget | None = None
    ) -> FetchedAsset:
        del url, label, allowed_hosts, budget
        return FetchedAsset(AssetSpool.of(b"\x89PNG not really"), "image/png")


async def test_a_bundle_build_has_a_child_span_per_asset_fetch_and_the_render(
    tmp_path: Path, provider: TracerProvider, exporter: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(relay_bundle_builder.service, "tracer", provider.get_tracer("test"))
    store = LocalDirectoryStore(tmp_path)
    recipe = {
        "id": "999-spans",
        "created": "2026-11-20T10:00:00Z",
        "name": "Mug",
        "views": [
            {"code": f"v{n}", "previewPng": f"https://user:pw@assets.example.com/{n}.png?sig=s3cr3t"} for n in (1, 2)
        ],
    }
    await store.put(recipe_object_key("bb", "999-spans"), json.dumps(recipe).encode(), content_type="application/json")
    trigger = IntegrationsTriggered(
        trigger_id="t-spans",
        tenant="bb",
        recipe_id="999-spans",
        recipe_key=recipe_object_key("bb", "999-spans"),
        feed="order",
        reason="order_created",
        order=OrderLine(order_id="1", order_number="1", item_id="1", item_quantity=1, status="open"),
        integration_ids=("zap",),
        occurred_at=datetime.now(UTC),
    )
    ctx = BuildContext(
        store=store, fetcher=PngFetcher(), recipe_url=lambda rid: f"https://r.example/{rid}", render_in_thread=False
    )

    await request_deliveries(trigger, load_tenants(BB_TENANTS), ctx, final_read=True)

    spans = exporter.get_finished_spans()
    (build,) = [s for s in spans if s.name == "bundle build"]
    assert build.context is not None
    children = [s for s in spans if s.parent is not None and s.parent.span_id == build.context.span_id]
    assert sorted(s.name for s in children) == ["asset fetch", "asset fetch", "ticket render"]
    for fetch in (s for s in children if s.name == "asset fetch"):
        assert (fetch.attributes or {})["server.address"] == "assets.example.com"
    assert not [text for span in spans for text in _strings(span) if "s3cr3t" in text or "user:pw" in text]
    assert (build.attributes or {})["relay.bundle.files"] == 4
