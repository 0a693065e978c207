"""The console's read routes through the real ``AssociationStoreClient``, against an in-process stand-in for the
association store's internal API: what is sent on the wire (the key's tenant, the token, instants in UTC), what is
relayed byte for byte, and how the store's refusals, outages and off-contract answers come back (400 / 503 / 502)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import TENANTS_FILE, World
from pydantic import SecretStr

from relay_contracts.internal_api import DELIVERIES_PATH, INTEGRATION_STATS_PATH, RECENT_ORDERS_PATH
from relay_devservers.processes import free_port
from relay_ingest_api import handlers
from relay_ingest_api.adapters.association_store import AssociationStoreClient
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_testing.shared_secrets import link_settings

Client = TestClient[web.Request, web.Application]

TOKEN = "store-token-for-tests"
DEMO = {"Authorization": "Bearer demo-writer"}
ACME = {"Authorization": "Bearer acme-orders-only"}
ROUTES = ["/api/v2/orders/recent", "/api/v2/deliveries/failed", "/api/v2/integrations"]

# Spaced and ordered as no serializer of ours would write it: relayed, the bytes come back exactly.
RECENT_BODY = (
    b'{ "orders" : [ {"orderId": "o2", "orderNumber": "1002", "status": "open", "items": [], "deliveries": [],'
    b' "updatedAt": "2026-12-01T10:00:00.000Z", "extra": 1} ], "next": "c-2" }'
)
FAILED_BODY = json.dumps(
    {
        "deliveries": [
            {
                "deliveryId": "d1",
                "orderId": None,
                "recipeId": "999-a",
                "integration": "demo-raw",
                "type": "zapier",
                "trigger": "recipe_saved",
                "status": "failed",
                "final": True,
                "attempts": 3,
                "lastError": "HTTP 410",
                "updatedAt": "2026-12-01T10:00:00.000Z",
            }
        ],
        "next": None,
    },
    indent=1,
).encode()


@dataclass
class StoreStub:
    """Records each query; answers ``answers[path]`` (status, body) or, by default, a contract-shaped answer."""

    seen: list[tuple[str, dict[str, str], str | None]] = field(default_factory=list)
    answers: dict[str, tuple[int, bytes]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.path, dict(request.query), request.headers.get("Authorization")))
        if request.path in self.answers:
            status, body = self.answers[request.path]
            return web.Response(status=status, body=body, content_type="application/json")
        if request.path == RECENT_ORDERS_PATH:
            return web.Response(body=RECENT_BODY, content_type="application/json")
        if request.path == DELIVERIES_PATH:
            return web.Response(body=FAILED_BODY, content_type="application/json")
        window = int(request.query["sinceS"])
        counts = [{"integration": "demo-raw", "failed": 3, "lastFailureAt": "2026-12-01T10:00:00.000Z"}]
        return web.json_response({"windowS": window, "integrations": counts})


@pytest.fixture
def stub() -> StoreStub:
    return StoreStub()


@asynccontextmanager
async def _client(store_url: str) -> AsyncIterator[Client]:
    async with aiohttp.ClientSession() as session:
        associations = AssociationStoreClient(session, store_url, retry_after_s=4, token=SecretStr(TOKEN))
        app = web.Application(middlewares=[error_middleware(None)])
        app[SETTINGS] = Settings(tenants_file=TENANTS_FILE, links=link_settings(public_base_url="http://relay.test"))
        app[PORTS] = replace(World(), associations=associations).ports  # type: ignore[arg-type]
        app.add_routes(handlers.routes)
        async with TestClient(TestServer(app)) as test_client:
            yield test_client


@pytest.fixture
async def client(stub: StoreStub) -> AsyncIterator[Client]:
    store = web.Application()
    for path in (RECENT_ORDERS_PATH, DELIVERIES_PATH, INTEGRATION_STATS_PATH):
        store.router.add_get(path, stub.handle)
    async with TestServer(store) as store_server, _client(str(store_server.make_url(""))) as test_client:
        yield test_client


async def test_recent_orders_are_relayed_byte_for_byte(client: Client, stub: StoreStub) -> None:
    response = await client.get("/api/v2/orders/recent", params={"limit": "10", "after": "c-1"}, headers=DEMO)
    assert response.status == 200
    assert await response.read() == RECENT_BODY
    assert stub.seen == [(RECENT_ORDERS_PATH, {"tenant": "demo", "limit": "10", "after": "c-1"}, f"Bearer {TOKEN}")]


async def test_failed_deliveries_ask_the_store_for_final_failures_in_utc(client: Client, stub: StoreStub) -> None:
    params = {"integrationId": "acme-email", "since": "2026-12-01T12:00:00+02:00", "until": "2026-12-01T11:30:00Z"}
    response = await client.get("/api/v2/deliveries/failed", params=params, headers=ACME)
    assert response.status == 200
    assert await response.read() == FAILED_BODY
    [(path, query, _)] = stub.seen
    assert path == DELIVERIES_PATH
    assert query == {
        "tenant": "acme",
        "status": "failed",
        "integration": "acme-email",
        "since": "2026-12-01T10:00:00.000000Z",
        "until": "2026-12-01T11:30:00.000000Z",
        "limit": "25",
    }


async def test_integrations_ask_for_the_window_in_seconds(client: Client, stub: StoreStub) -> None:
    response = await client.get("/api/v2/integrations", params={"hours": "48"}, headers=DEMO)
    assert response.status == 200
    raw = next(i for i in (await response.json())["integrations"] if i["id"] == "demo-raw")
    assert raw["counts"] == {"succeeded": 0, "failed": 3, "retrying": 0, "pending": 0}
    assert (raw["windowHours"], raw["lastFailureAt"]) == (48, "2026-12-01T10:00:00.000Z")
    assert stub.seen == [(INTEGRATION_STATS_PATH, {"tenant": "demo", "sinceS": str(48 * 3600)}, f"Bearer {TOKEN}")]


@pytest.mark.parametrize("path", ["/api/v2/orders/recent", "/api/v2/deliveries/failed"])
async def test_a_cursor_the_store_refuses_is_a_400_naming_after(client: Client, stub: StoreStub, path: str) -> None:
    refusal = json.dumps({"error": "bad_request", "message": "after: not a cursor"}).encode()
    stub.answers = {RECENT_ORDERS_PATH: (400, refusal), DELIVERIES_PATH: (400, refusal)}
    response = await client.get(path, params={"after": "not-theirs"}, headers=DEMO)
    assert response.status == 400
    body = await response.json()
    assert body["error"] == "invalid_query"
    assert [p["pointer"] for p in body["problems"]] == ["/after"]
    assert "not-theirs" not in json.dumps(body)


@pytest.mark.parametrize(
    "answer",
    [
        b"not json",
        b"{}",
        b'{"orders": "none", "deliveries": "none", "windowS": 0, "integrations": {}}',
        b'{"orders": [{"orderId": 1}], "deliveries": [{"deliveryId": "d"}], "integrations": [{"failed": -1}]}',
        b"[]",
    ],
)
@pytest.mark.parametrize("path", ROUTES)
async def test_an_answer_off_the_contract_is_502(client: Client, stub: StoreStub, path: str, answer: bytes) -> None:
    stub.answers = dict.fromkeys((RECENT_ORDERS_PATH, DELIVERIES_PATH, INTEGRATION_STATS_PATH), (200, answer))
    response = await client.get(path, headers=DEMO)
    assert response.status == 502
    assert (await response.json())["error"] == "upstream_error"


@pytest.mark.parametrize("path", ROUTES)
async def test_a_store_refusing_our_token_is_502(client: Client, stub: StoreStub, path: str) -> None:
    refusal = (401, b'{"error": "unauthorized", "message": "token"}')
    stub.answers = dict.fromkeys((RECENT_ORDERS_PATH, DELIVERIES_PATH, INTEGRATION_STATS_PATH), refusal)
    response = await client.get(path, headers=DEMO)
    assert response.status == 502


@pytest.mark.parametrize("path", ROUTES)
async def test_a_store_in_trouble_is_503_with_retry_after(client: Client, stub: StoreStub, path: str) -> None:
    trouble = (503, b'{"error": "unavailable", "message": "database"}')
    stub.answers = dict.fromkeys((RECENT_ORDERS_PATH, DELIVERIES_PATH, INTEGRATION_STATS_PATH), trouble)
    response = await client.get(path, headers=DEMO)
    assert response.status == 503
    assert response.headers["Retry-After"] == "4"


@pytest.mark.parametrize("path", ROUTES)
async def test_an_unreachable_store_is_503_with_retry_after(path: str) -> None:
    async with _client(f"http://127.0.0.1:{free_port()}") as client:
        response = await client.get(path, headers=DEMO)
        assert response.status == 503
        assert response.headers["Retry-After"] == "4"
        assert (await response.json())["error"] == "unavailable"


async def test_held_deliveries_are_relayed_with_their_cause_byte_for_byte(client: Client, stub: StoreStub) -> None:
    held = {
        "deliveryId": "d-held",
        "integration": "demo-raw",
        "type": "zapier",
        "recipeId": "999-a",
        "trigger": "order_linked",
        "status": "pending",
        "attempts": 0,
        "held": True,
        "heldCause": "unhealthy",
    }
    settled = {**held, "deliveryId": "d-done", "status": "succeeded", "attempts": 1, "held": False, "heldCause": None}
    order = {"orderId": "o3", "orderNumber": "1003", "items": [], "deliveries": [held, settled]}
    body = json.dumps({"orders": [order], "next": None}, indent=1).encode()
    stub.answers = {RECENT_ORDERS_PATH: (200, body)}
    response = await client.get("/api/v2/orders/recent", headers=DEMO)
    assert response.status == 200
    assert await response.read() == body
    shown = (await response.json())["orders"][0]["deliveries"]
    assert [(d["held"], d["heldCause"]) for d in shown] == [(True, "unhealthy"), (False, None)]
