"""handlers.py on in-memory ports, through aiohttp's test client: each route reads the request, calls its use case
and answers; refusals come back as the JSON error body. Fast: no broker, no association store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import TENANTS_FILE, World, order

from relay_contracts.messages import IntegrationsTriggered, recipe_object_key
from relay_contracts.topics import INTEGRATIONS_TRIGGERED, ORDERS_EVENTS
from relay_ingest_api import handlers
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_testing.shared_secrets import link_settings

WRITER = {"Authorization": "Bearer demo-writer"}
LINK = {"recipeId": "999-r", "orderNumber": "1001", "orderId": "1111", "itemId": "2222", "itemQuantity": 2}


@pytest.fixture
def world() -> World:
    return World().with_orders([order("o1", ("999-a", "i1"))])


@pytest.fixture
async def client(world: World) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    app = web.Application(middlewares=[error_middleware(None)])
    app[SETTINGS] = Settings(tenants_file=TENANTS_FILE, links=link_settings(public_base_url="http://relay.test"))
    app[PORTS] = world.ports
    app.add_routes(handlers.routes)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_links_are_published_and_accepted(client: TestClient[web.Request, web.Application], world: World) -> None:
    response = await client.post("/api/v2/recipe/order", json=[LINK | {"email": "x@example.com"}], headers=WRITER)
    assert response.status == 202
    assert await response.json() == {"accepted": 1, "droppedFields": 1}
    assert [record.topic for record in world.publisher.published] == [ORDERS_EVENTS]


async def test_the_key_is_checked_before_the_body_is_read(client: TestClient[web.Request, web.Application]) -> None:
    response = await client.post("/api/v2/recipe/order", data=b"{not json")
    assert response.status == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="recipe-relay"'
    assert (await response.json())["error"] == "unauthorized"
    response = await client.post("/api/v2/recipe/order", data=b"{not json", headers=WRITER)
    assert (response.status, (await response.json())["error"]) == (400, "malformed_json")


async def test_a_saved_recipe_is_stored_announced_and_located(
    client: TestClient[web.Request, web.Application], world: World
) -> None:
    response = await client.post("/api/v2/recipes", json={"id": "999-mug", "name": "Mug"}, headers=WRITER)
    assert response.status == 201
    assert response.headers["Location"] == "http://relay.test/recipe/999-mug.json"
    assert recipe_object_key("demo", "999-mug") in world.objects.objects
    response = await client.get("/recipe/999-mug.json")
    assert (response.status, response.headers["Cache-Control"]) == (200, "public, max-age=60")
    assert (await response.json())["name"] == "Mug"


async def test_a_pick_ticket_answers_304_for_its_etag(client: TestClient[web.Request, web.Application]) -> None:
    await client.post("/api/v2/recipes", json={"id": "999-pdf"}, headers=WRITER)
    response = await client.get("/recipe/999-pdf.pdf")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'inline; filename="999-pdf.pdf"'
    again = await client.get("/recipe/999-pdf.pdf", headers={"If-None-Match": response.headers["ETag"]})
    assert (again.status, await again.read()) == (304, b"")


async def test_a_trigger_answers_with_what_it_published(
    client: TestClient[web.Request, web.Application], world: World
) -> None:
    response = await client.post("/api/v2/integrations/trigger", json={"orderId": "o1"}, headers=WRITER)
    assert response.status == 202
    body = await response.json()
    (record,) = world.publisher.published
    assert record.topic == INTEGRATIONS_TRIGGERED
    assert isinstance(record.message, IntegrationsTriggered)
    assert body["triggered"] == 1
    assert body["triggers"][0]["triggerId"] == record.message.trigger_id


async def test_a_bad_idempotency_key_is_refused_before_the_body(
    client: TestClient[web.Request, web.Application],
) -> None:
    headers = WRITER | {"Idempotency-Key": "has space"}
    response = await client.post("/api/v2/integrations/trigger", data=b"{not json", headers=headers)
    assert (response.status, (await response.json())["error"]) == (400, "invalid_header")


async def test_the_lookup_relays_the_stores_answer_unchanged(
    client: TestClient[web.Request, web.Application], world: World
) -> None:
    response = await client.get("/api/v2/orders", params={"orderId": "o1", "tenant": "acme"}, headers=WRITER)
    assert response.status == 200
    assert await response.read() == world.associations.pages[0].model_dump_json().encode()
    assert world.associations.queries == [("demo", "orderId", "o1", None)]  # the key's tenant, not the query's


async def test_a_download_link_names_its_file(client: TestClient[web.Request, web.Application], world: World) -> None:
    world.objects.objects["bundles/demo/b.zip"] = b"PK"
    world.links.files["token"] = ("bundles/demo/b.zip", "Tasse é.zip", "application/zip")
    response = await client.get("/files/token")
    assert (response.status, await response.read()) == (200, b"PK")
    assert (
        response.headers["Content-Disposition"]
        == "attachment; filename=\"Tasse _.zip\"; filename*=UTF-8''Tasse%20%C3%A9.zip"
    )
    assert (await client.get("/files/forged")).status == 404


async def test_ready_when_every_port_answers(client: TestClient[web.Request, web.Application], world: World) -> None:
    assert json.loads(await (await client.get("/readyz")).text())["status"] == "ready"
    world.publisher.connected = False
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"] == {"broker": "down", "object-store": "up", "association-store": "up"}
