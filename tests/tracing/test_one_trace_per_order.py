"""One order is one trace (issue 12): every service exports its spans over OTLP/HTTP to a receiver this test runs.

The whole suite runs as ``relay dev`` runs it (``DevStack``: every service its own process, the demo tenant and its
destination servers), on free ports: the demo servers' ports and the tenant file's references to them are moved.
Each service gets ``OTEL_EXPORTER_OTLP_ENDPOINT`` (this module's receiver) and a short ``OTEL_BSP_SCHEDULE_DELAY``.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan

from relay_cli import demo
from relay_cli.dev import DevStack, discover_services
from relay_devservers.kafka import TansuBroker
from relay_devservers.processes import free_port
from relay_testing.waits import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVICES = discover_services(ROOT)
DELIVERERS = {"deliver-email": "email", "deliver-sftp": "sftp", "deliver-s3": "s3", "deliver-azure-blob": "azure-blob"}
DELIVERERS["deliver-zapier"] = "zapier"
# The demo tenant (config/dev.yaml) has a success-notification list on its SFTP integration: the notice is sent
# while the outcome is consumed, so the notifier is in the order's trace too.
ORDER_TRACE_SERVICES = {"ingest-api", "association-store", "bundle-builder", "notifier", *DELIVERERS}
RECIPE_ID = "999-TraceMug" + secrets.token_hex(4)
ASSET_TOKEN = "asset-token-" + secrets.token_hex(8)
AUTH = {"Authorization": "Bearer demo-key"}
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# Environment the stack must not inherit from the shell running the tests.
_UNINHERITED = ("KAFKA_BOOTSTRAP_SERVERS", "RELAY_TENANTS_FILE", "OBJECT_STORE_URL", "ASSOCIATION_STORE_API_TOKEN")

T = TypeVar("T")


# --- the OTLP/HTTP receiver --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    attributes: dict[str, Any]
    links: list[tuple[str, dict[str, Any]]]
    """(trace ID, attributes) of each span link."""
    texts: list[str]
    """Every string value the span carries (attributes, events, links, resource), for the secret scan."""


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind is None:
        return None
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for pair in pairs:
        assert isinstance(pair, KeyValue)
        found[pair.key] = _value(pair.value)
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif value is not None:
        yield value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass
class OtlpReceiver:
    """``POST /v1/traces`` (protobuf ``ExportTraceServiceRequest``) into ``spans``; also serves one asset file."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    _runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> OtlpReceiver:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        app.router.add_get("/assets/artwork.txt", self._asset)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _asset(self, request: web.Request) -> web.Response:
        if request.query.get("token") != ASSET_TOKEN:
            raise web.HTTPForbidden
        return web.Response(text="engrave me", content_type="text/plain")

    async def _traces(self, request: web.Request) -> web.Response:
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(self._received(str(resource.get("service.name")), resource, span))
        return web.Response(
            body=ExportTraceServiceResponse().SerializeToString(), content_type="application/x-protobuf"
        )

    @staticmethod
    def _received(service: str, resource: dict[str, Any], span: ProtoSpan) -> ReceivedSpan:
        attributes = _attributes(span.attributes)
        links = [(link.trace_id.hex(), _attributes(link.attributes)) for link in span.links]
        carried: list[Any] = [resource, attributes, span.name, span.status.message]
        carried += [[event.name, _attributes(event.attributes)] for event in span.events]
        carried += [link_attributes for _, link_attributes in links]
        return ReceivedSpan(
            service=service,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            name=span.name,
            kind=span.kind,
            attributes=attributes,
            links=links,
            texts=list(_strings(carried)),
        )

    def in_trace(self, trace_id: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.trace_id == trace_id]

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.spans if s.name == name]


# --- the stack ---------------------------------------------------------------------------------------------------


@dataclass
class Traced:
    stack: DevStack
    receiver: OtlpReceiver
    api: str
    session: aiohttp.ClientSession

    async def eventually(self, check: Callable[[], Awaitable[T | None]], *, within: float, what: str) -> T:
        """``relay_testing.waits.eventually``, with the stack's last log lines when it fails."""
        try:
            return await eventually(check, within=within, what=what)
        except AssertionError as error:
            raise AssertionError(f"{error}\n--- stack log:\n{self.stack.log_tail()}") from None

    def secrets(self) -> dict[str, str]:
        """Every secret the demo tenant's integrations use, as the stack was given them."""
        env = self.stack.service_env
        found = {
            name: env[name]
            for name in ("DEMO_SFTP_PASSWORD", "DEMO_S3_ACCESS_KEY", "DEMO_S3_SECRET_KEY", "LINKS_SIGNING_KEY")
        }
        found["INGEST_API_ASSOCIATION_STORE_TOKEN"] = env["INGEST_API_ASSOCIATION_STORE_TOKEN"]
        azure = env.get("DEMO_AZURE_CONNECTION_STRING")
        if azure:
            found["DEMO_AZURE_CONNECTION_STRING"] = azure
            for part in azure.split(";"):
                name, _, value = part.partition("=")
                if name in {"AccountKey", "SharedAccessSignature"}:
                    found[f"azure {name}"] = value
                    sig = re.search(r"(?:^|&)sig=([^&]+)", value)
                    if sig:
                        found["azure sig"] = sig.group(1)
        # The hook URL's path is the Zapier hook's secret; the API key is the demo tenant's.
        found["zapier hook path"] = "/hooks/catch/demo"
        found["API key"] = "demo-key"
        found["asset token"] = ASSET_TOKEN
        return found


def _tenants_file(var: Path, ports: Mapping[str, int], asset_port: int) -> Path:
    """``config/dev.yaml`` with the demo servers on ``ports`` and this test's asset server trusted."""
    text = (ROOT / "config" / "dev.yaml").read_text()
    moves = {
        f"port: {demo.DEMO_PORTS['sftp']}": f"port: {ports['sftp']}",
        f"http://127.0.0.1:{demo.DEMO_PORTS['s3']}": f"http://127.0.0.1:{ports['s3']}",
        f"http://127.0.0.1:{demo.DEMO_PORTS['hooks']}": f"http://127.0.0.1:{ports['hooks']}",
        "    recipe-read: public": f'    recipe-read: public\n    allowed-asset-hosts: ["127.0.0.1:{asset_port}"]',
    }
    for old, new in moves.items():
        assert text.count(old) == 1, f"config/dev.yaml no longer has exactly one {old!r}"
        text = text.replace(old, new)
    path = var / "tenants.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
async def traced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Traced]:
    var = tmp_path_factory.mktemp("tracing")
    async with contextlib.AsyncExitStack() as cleanup:
        receiver = await OtlpReceiver().start()
        cleanup.push_async_callback(receiver.stop)
        broker = TansuBroker(var / "tansu")
        cleanup.callback(broker.stop)
        broker.start()
        ports = {name: free_port() for name in demo.DEMO_PORTS}
        tenants = _tenants_file(var, ports, receiver.port)
        cleanup.enter_context(mock.patch.dict(demo.DEMO_PORTS, ports))
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "RELAY_TENANTS_FILE": str(tenants),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "200",
        }
        stack = DevStack(
            root=ROOT,
            var=var,
            api_port=free_port(),
            services=list(SERVICES),
            demo=True,
            log_path=var / "stack.log",
            default_ports=False,
        )
        with mock.patch.dict(os.environ, clear=False):
            for name in _UNINHERITED:
                os.environ.pop(name, None)
            os.environ.update(env)
            cleanup.push_async_callback(stack.stop)
            await stack.start()
        await stack.wait_ready(within_s=90)
        session = await cleanup.enter_async_context(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)))
        yield Traced(stack, receiver, f"http://127.0.0.1:{stack.api_port}", session)


# --- the test ----------------------------------------------------------------------------------------------------


def _recipe(asset_url: str) -> dict[str, Any]:
    return {
        "id": RECIPE_ID,
        "created": "2026-11-20T10:00:00Z",
        "name": "Traced Mug",
        "styleCode": "MUG-11",
        "components": [{"name": "Front", "code": "front", "component": {"code": "engraving", "sku": "ENG-1"}}],
        "attachments": [{"code": "artwork", "name": "Artwork", "url": asset_url}],
    }


def _root_of(spans: list[ReceivedSpan], name: str) -> ReceivedSpan | None:
    return next((s for s in spans if s.name == name and s.service == "ingest-api" and not s.parent_span_id), None)


async def test_an_order_is_one_trace_and_a_retrigger_a_new_trace_linked_to_it(traced: Traced) -> None:
    # An asset behind a token in its query string: its fetch's span must name the host only.
    recipe = _recipe(f"{traced.receiver.endpoint}/assets/artwork.txt?token={ASSET_TOKEN}")
    async with traced.session.post(f"{traced.api}/api/v2/recipes", json=recipe, headers=AUTH) as response:
        assert response.status == 201, await response.text()
    line = {
        "recipeId": RECIPE_ID,
        "orderNumber": "T-1",
        "orderId": "trace-order-1",
        "itemId": "1",
        "itemQuantity": 1,
        "email": "jane.customer@example.com",
    }
    async with traced.session.post(f"{traced.api}/api/v2/recipe/order", json=[line], headers=AUTH) as response:
        assert response.status == 202, await response.text()

    order_route = "POST /api/v2/recipe/order"

    async def order_trace() -> str | None:
        root = _root_of(traced.receiver.spans, order_route)
        return root.trace_id if root is not None else None

    trace_id = await traced.eventually(order_trace, within=30, what="the order request's span")

    async def every_service_in_the_trace() -> bool:
        spans = traced.receiver.in_trace(trace_id)
        seen = {s.service for s in spans}
        delivered = {s.attributes.get("relay.integration.type") for s in spans if s.name.startswith("deliver ")}
        return seen >= ORDER_TRACE_SERVICES and set(DELIVERERS.values()) <= delivered

    await traced.eventually(
        every_service_in_the_trace, within=90, what=f"spans of {sorted(ORDER_TRACE_SERVICES)} in trace {trace_id}"
    )
    spans = traced.receiver.in_trace(trace_id)
    # One trace: the request is its only root; everything else hangs below it.
    assert [s.name for s in spans if not s.parent_span_id] == [order_route]
    for service, integration_type in DELIVERERS.items():
        (attempt,) = [s for s in spans if s.service == service and s.name == f"deliver {integration_type}"]
        assert attempt.kind == ProtoSpan.SPAN_KIND_CLIENT
        assert attempt.attributes["relay.integration.type"] == integration_type
        assert attempt.attributes["relay.integration.id"]
        assert attempt.attributes["relay.delivery.id"]
        assert attempt.attributes["relay.delivery.attempt"] == 1
        assert attempt.attributes["relay.delivery.outcome"] == "succeeded", attempt.attributes
    (build,) = [s for s in spans if s.service == "bundle-builder" and s.name == "bundle build"]
    children = {s.name: s for s in spans if s.parent_span_id == build.span_id}
    assert {"asset fetch", "ticket render"} <= set(children), sorted(children)
    assert children["asset fetch"].attributes["server.address"] == "127.0.0.1"

    # Nothing secret and no e-mail address in anything any service exported (every trace, not only the order's).
    secret_values = traced.secrets()
    for span in traced.receiver.spans:
        for text in span.texts:
            for name, secret in secret_values.items():
                assert secret not in text, f"{name} in span {span.name!r} of {span.service}"
            assert not EMAIL.search(text), f"an e-mail address in span {span.name!r} of {span.service}: {text!r}"

    # The console's re-trigger: a new trace, its root linked to the order's original trace as the association store
    # recorded it (the caller names no trace: no traceparent header).
    body = {"orderNumber": "T-1", "integrationIds": ["demo-zapier"]}
    async with traced.session.post(f"{traced.api}/api/v2/integrations/trigger", json=body, headers=AUTH) as response:
        assert response.status == 202, await response.text()

    async def retrigger_built() -> tuple[ReceivedSpan, list[ReceivedSpan]] | None:
        root = _root_of(traced.receiver.spans, "POST /api/v2/integrations/trigger")
        if root is None:
            return None
        again = traced.receiver.in_trace(root.trace_id)
        if not any(s.name == "deliver zapier" for s in again):
            return None
        return root, again

    root, again = await traced.eventually(retrigger_built, within=60, what="the re-trigger's delivery")
    assert root.trace_id != trace_id
    assert root.links == [(trace_id, {"relay.link": "original-order-trace"})]
    assert {s.service for s in again} >= {"ingest-api", "bundle-builder", "deliver-zapier"}
