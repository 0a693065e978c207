"""``POST /api/v2/integrations/shopify/{tenant}/webhooks`` on in-memory ports, with Shopify's documented payload
shapes full of personal data (tests/fixtures/shopify): the signature over the raw body decides the tenant (401 alike
for a wrong, missing or other tenant's signature and for an unknown tenant); only order ID and number, line item IDs,
quantities, the recipe ID and the event time are published; nothing personal reaches a message, a log line or an
answer; a resend is the same event; stale deliveries and bad fields get a 400 naming the header or field."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import TENANTS_FILE, World, order

from relay_contracts.messages import OrderEventOccurred, stable_id
from relay_contracts.topics import ORDERS_EVENTS
from relay_ingest_api import handlers
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_testing.shared_secrets import link_settings

Client = TestClient[web.Request, web.Application]

FIXTURES = Path(__file__).parents[1] / "fixtures" / "shopify"
SECRET = "shpss_demo-test-secret-0123456789"
ACME_SECRET = "shpss_acme-test-secret-9876543210"
URL = "/api/v2/integrations/shopify/demo/webhooks"
ORDER_ID = "820982911946154508"
MUG, CAP = "866550311766439020", "141249953214522974"
# Every personal value the fixtures hold (names, e-mails, phones, addresses, IP, notes, card holder, agent).
PII = (
    "Piidoe",
    "Piichild",
    "Janey",
    "customer-pii.example",
    "555 0100",
    "5550100",
    "Piistreet",
    "Piiville",
    "Piitown",
    "Piigift",
    "203.0.113.77",
    "PII-Agent",
    "secretorderkey999",
    "4242",
    "gift wrap",
    "changed her mind",
)


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INGEST_TEST_SHOPIFY_SECRET", SECRET)
    monkeypatch.setenv("INGEST_TEST_ACME_SHOPIFY_SECRET", ACME_SECRET)


@pytest.fixture
def world() -> World:
    return World()


async def _client(world: World) -> TestClient[web.Request, web.Application]:
    app = web.Application(middlewares=[error_middleware(None)])
    app[SETTINGS] = Settings(tenants_file=TENANTS_FILE, links=link_settings(public_base_url="http://relay.test"))
    app[PORTS] = world.ports
    app.add_routes(handlers.routes)
    return TestClient(TestServer(app))


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    async with await _client(world) as test_client:
        yield test_client


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def signed(
    body: bytes,
    topic: str,
    *,
    secret: str = SECRET,
    webhook_id: str = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    triggered_at: datetime | None = None,
) -> dict[str, str]:
    digest = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": digest,
        "X-Shopify-Shop-Domain": "pii-shop.myshopify.com",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": (triggered_at or datetime.now(UTC)).isoformat(),
        "X-Shopify-API-Version": "2025-10",
    }


def events(world: World) -> list[OrderEventOccurred]:
    assert {record.topic for record in world.publisher.published} <= {ORDERS_EVENTS}
    found = [record.message for record in world.publisher.published]
    assert all(isinstance(event, OrderEventOccurred) for event in found)
    return [event for event in found if isinstance(event, OrderEventOccurred)]


def items(event: OrderEventOccurred) -> list[tuple[str, str, int]]:
    return sorted((i.recipe_id, i.item_id, i.item_quantity) for i in event.items or ())


def assert_no_pii(*texts: str) -> None:
    for text in texts:
        leaked = [marker for marker in PII if marker.lower() in text.lower()]
        assert not leaked, f"personal data {leaked} in {text[:300]!r}"


async def test_an_order_created_becomes_one_created_event_with_only_its_recipe_items(
    client: Client, world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = fixture("orders_create.json")

    response = await client.post(URL, data=body, headers=signed(body, "orders/create"))

    text = await response.text()
    assert response.status == 202, text
    assert json.loads(text) == {"accepted": 1, "ignoredItems": 1, "ignored": None}
    [event] = events(world)
    assert (event.tenant, event.type, event.order_id, event.order_number) == ("demo", "created", ORDER_ID, "1001")
    # The plain T-shirt has no recipe (not ours to track); "777-NotOurs" is another tenant's (left out, counted).
    assert items(event) == [("999-ShopCap2", CAP, 1), ("999-ShopMug1", MUG, 2)]
    assert event.occurred_at == datetime(2026, 11, 30, 15, 15, 2, tzinfo=UTC)  # updated_at, in UTC
    assert event.event_id == stable_id("shopify", "demo", "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043")
    assert world.publisher.published[0].key == event.kafka_key
    assert_no_pii(event.model_dump_json(), text, caplog.text)


@pytest.mark.parametrize(
    ("fixture_name", "topic"),
    [
        ("orders_create.json", "orders/create"),
        ("orders_updated_partial_refund.json", "orders/updated"),
        ("orders_cancelled.json", "orders/cancelled"),
        ("refunds_create_full.json", "refunds/create"),
    ],
)
async def test_no_personal_data_reaches_a_message_an_answer_or_a_log_line(
    world: World, caplog: pytest.LogCaptureFixture, fixture_name: str, topic: str
) -> None:
    caplog.set_level(logging.DEBUG)
    world = world.with_orders([order(ORDER_ID, ("999-ShopMug1", MUG), ("999-ShopCap2", CAP))])
    body = fixture(fixture_name)
    assert any(marker in body.decode() for marker in PII)  # the fixture does carry personal data

    async with await _client(world) as client:
        response = await client.post(URL, data=body, headers=signed(body, topic))
        text = await response.text()

    assert response.status == 202, text
    assert len(events(world)) == 1
    assert_no_pii(*(record.message.model_dump_json() for record in world.publisher.published), text, caplog.text)


async def test_a_partial_refund_in_orders_updated_lowers_the_quantity(client: Client, world: World) -> None:
    body = fixture("orders_updated_partial_refund.json")

    response = await client.post(URL, data=body, headers=signed(body, "orders/updated"))

    assert response.status == 202, await response.text()
    [event] = events(world)
    assert event.type == "updated"
    assert items(event) == [("999-ShopCap2", CAP, 1), ("999-ShopMug1", MUG, 1)]
    assert event.occurred_at == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)


async def test_without_current_quantity_the_refunds_of_the_order_are_subtracted(client: Client, world: World) -> None:
    document = json.loads(fixture("orders_updated_partial_refund.json"))
    for line in document["line_items"]:
        del line["current_quantity"]
    body = json.dumps(document).encode()

    assert (await client.post(URL, data=body, headers=signed(body, "orders/updated"))).status == 202

    [event] = events(world)
    assert items(event) == [("999-ShopCap2", CAP, 1), ("999-ShopMug1", MUG, 1)]


async def test_an_order_shopify_calls_refunded_becomes_refunded(client: Client, world: World) -> None:
    document = json.loads(fixture("orders_updated_partial_refund.json"))
    document["financial_status"] = "refunded"
    body = json.dumps(document).encode()

    assert (await client.post(URL, data=body, headers=signed(body, "orders/updated"))).status == 202

    [event] = events(world)
    assert (event.type, event.items) == ("refunded", None)


async def test_a_cancellation_is_dated_by_cancelled_at(client: Client, world: World) -> None:
    body = fixture("orders_cancelled.json")

    assert (await client.post(URL, data=body, headers=signed(body, "orders/cancelled"))).status == 202

    [event] = events(world)
    assert (event.type, event.items) == ("cancelled", None)
    assert event.occurred_at == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)


async def test_a_refund_of_every_recipe_item_is_refunded_and_a_partial_one_updates_quantities(world: World) -> None:
    # The store's view: two mugs and one cap still ordered.
    stored = order(ORDER_ID, ("999-ShopMug1", MUG), ("999-ShopCap2", CAP))
    stored["items"][0]["itemQuantity"] = 2
    known = world.with_orders([stored])
    full, partial = fixture("refunds_create_full.json"), fixture("refunds_create_partial.json")

    async with await _client(known) as client:
        first = await client.post(URL, data=partial, headers=signed(partial, "refunds/create", webhook_id="r-1"))
        second = await client.post(URL, data=full, headers=signed(full, "refunds/create", webhook_id="r-2"))

    assert (first.status, second.status) == (202, 202)
    updated, refunded = events(known)
    assert updated.type == "updated"
    assert items(updated) == [("999-ShopCap2", CAP, 1), ("999-ShopMug1", MUG, 1)]
    assert (updated.order_number, updated.occurred_at) == ("1001", datetime(2026, 12, 3, 15, 0, tzinfo=UTC))
    assert (refunded.type, refunded.items) == ("refunded", None)
    assert known.associations.queries[0][:3] == ("demo", "orderId", ORDER_ID)


async def test_a_refund_of_an_order_never_recorded_publishes_nothing(client: Client, world: World) -> None:
    body = fixture("refunds_create_full.json")

    response = await client.post(URL, data=body, headers=signed(body, "refunds/create"))

    assert response.status == 202
    assert await response.json() == {"accepted": 0, "ignoredItems": 0, "ignored": "order_unknown"}
    assert world.publisher.published == []


async def test_a_resent_delivery_is_the_same_event(client: Client, world: World) -> None:
    body = fixture("orders_create.json")
    for _ in range(2):
        assert (await client.post(URL, data=body, headers=signed(body, "orders/create"))).status == 202
    first, again = events(world)
    assert first == again  # same event ID: the association store applies it once


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Shopify-Hmac-Sha256": ""},
        {"X-Shopify-Hmac-Sha256": "bm90IHRoZSBzaWduYXR1cmU="},
        {"X-Shopify-Hmac-Sha256": "ünïcødé"},
        "acme-secret",
        "no-header",
    ],
)
async def test_a_missing_wrong_or_other_tenants_signature_is_401(
    client: Client, world: World, headers: dict[str, str] | str
) -> None:
    body = fixture("orders_create.json")
    sent = signed(body, "orders/create", secret=ACME_SECRET if headers == "acme-secret" else SECRET)
    if headers == "no-header":
        del sent["X-Shopify-Hmac-Sha256"]
    elif isinstance(headers, dict):
        sent.update(headers)

    response = await client.post(URL, data=body, headers=sent)

    assert response.status == 401
    assert (await response.json())["error"] == "unauthorized"
    assert world.publisher.published == []


async def test_an_unknown_tenant_or_one_without_shopify_answers_like_a_bad_signature(client: Client) -> None:
    body = fixture("orders_create.json")
    for tenant in ("nobody", "throttled", "..%2Fdemo"):
        response = await client.post(
            f"/api/v2/integrations/shopify/{tenant}/webhooks", data=body, headers=signed(body, "orders/create")
        )
        assert response.status == 401, tenant
        assert (await response.json())["message"] == "the webhook signature does not verify"


async def test_the_other_tenants_webhook_reads_its_own_recipe_property_and_prefix(world: World) -> None:
    document = json.loads(fixture("orders_create.json"))
    document["line_items"][3]["properties"] = [{"name": "recipe", "value": "777-AcmeCap"}]
    body = json.dumps(document).encode()

    headers = signed(body, "orders/create", secret=ACME_SECRET)
    headers["X-Shopify-Shop-Domain"] = "ACME-shop.myshopify.com"  # acme's configured shop, in another case
    async with await _client(world) as client:
        response = await client.post("/api/v2/integrations/shopify/acme/webhooks", data=body, headers=headers)
        assert response.status == 202, await response.text()

    [event] = events(world)
    assert (event.tenant, items(event)) == ("acme", [("777-AcmeCap", "703073504", 1)])


async def test_a_tenant_bound_to_its_shop_refuses_another_shops_signed_delivery(world: World) -> None:
    body = fixture("orders_create.json")
    headers = signed(body, "orders/create", secret=ACME_SECRET)  # names pii-shop.myshopify.com
    async with await _client(world) as client:
        response = await client.post("/api/v2/integrations/shopify/acme/webhooks", data=body, headers=headers)
        missing = await client.post(
            "/api/v2/integrations/shopify/acme/webhooks",
            data=body,
            headers={k: v for k, v in headers.items() if k != "X-Shopify-Shop-Domain"},
        )
    assert (response.status, missing.status) == (401, 401)
    assert world.publisher.published == []


async def test_signature_failures_are_throttled_per_client(client: Client) -> None:
    body = fixture("orders_create.json")
    bad = signed(body, "orders/create", secret="guess")
    statuses = [(await client.post(URL, data=body, headers=bad)).status for _ in range(25)]
    assert statuses[0] == 401
    assert statuses[-1] == 429


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        ({"X-Shopify-Topic": ""}, "/X-Shopify-Topic"),
        ({"X-Shopify-Webhook-Id": ""}, "/X-Shopify-Webhook-Id"),
        ({"X-Shopify-Webhook-Id": "x" * 129}, "/X-Shopify-Webhook-Id"),
        ({"X-Shopify-Triggered-At": "yesterday"}, "/X-Shopify-Triggered-At"),
        ({"X-Shopify-Triggered-At": (datetime.now(UTC) - timedelta(hours=73)).isoformat()}, "/X-Shopify-Triggered-At"),
        ({"X-Shopify-Triggered-At": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}, "/X-Shopify-Triggered-At"),
    ],
)
async def test_a_bad_or_stale_header_is_a_400_naming_it(
    client: Client, world: World, change: dict[str, str], pointer: str
) -> None:
    body = fixture("orders_create.json")
    headers = signed(body, "orders/create") | change

    response = await client.post(URL, data=body, headers=headers)

    assert response.status == 400
    answer = await response.json()
    assert [problem["pointer"] for problem in answer["problems"]] == [pointer]
    assert world.publisher.published == []


async def test_a_topic_this_api_does_not_handle_is_acknowledged_and_ignored(client: Client, world: World) -> None:
    body = b'{"id": 1, "title": "Custom Mug"}'
    response = await client.post(URL, data=body, headers=signed(body, "products/create"))
    assert response.status == 202
    assert (await response.json())["ignored"] == "topic"
    assert world.publisher.published == []


async def test_an_order_without_recipe_items_publishes_nothing(client: Client, world: World) -> None:
    document = json.loads(fixture("orders_create.json"))
    document["line_items"] = [document["line_items"][2]]
    body = json.dumps(document).encode()
    response = await client.post(URL, data=body, headers=signed(body, "orders/create"))
    assert response.status == 202
    assert (await response.json())["ignored"] == "no_recipe_items"
    assert world.publisher.published == []


def _with(path: list[Any], value: Any) -> bytes:
    document = json.loads(fixture("orders_create.json"))
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (_with(["line_items"], {"not": "a list"}), "/line_items"),
        (_with(["line_items", 0, "current_quantity"], -1), "/line_items/0/current_quantity"),
        (_with(["line_items", 0, "current_quantity"], 10**12), "/line_items/0/current_quantity"),
        (_with(["line_items", 0, "current_quantity"], "2"), "/line_items/0/current_quantity"),
        (_with(["line_items", 0, "id"], None), "/line_items/0/id"),
        (_with(["line_items", 0, "id"], "\u0000"), "/line_items/0/id"),
        (_with(["id"], True), "/id"),
        (_with(["id"], "9" * 129), "/id"),
        (_with(["updated_at"], "2026-11-30T10:15:02"), "/updated_at"),
        (_with(["updated_at"], "30/11/2026"), "/updated_at"),
        (_with(["order_number"], [1001]), "/order_number"),
        (b"[]", "/"),
    ],
)
async def test_a_malformed_payload_is_a_400_naming_the_field_without_its_value(
    client: Client, world: World, body: bytes, pointer: str
) -> None:
    response = await client.post(URL, data=body, headers=signed(body, "orders/create"))

    assert response.status == 400
    answer = await response.json()
    assert [problem["pointer"] for problem in answer["problems"]] == [pointer]
    assert_no_pii(json.dumps(answer))
    assert world.publisher.published == []


async def test_a_body_that_is_not_json_is_a_400_that_does_not_echo_it(client: Client) -> None:
    body = b"customer=Jane Piidoe&email=jane.piidoe@customer-pii.example"
    response = await client.post(URL, data=body, headers=signed(body, "orders/create"))
    assert response.status == 400
    assert_no_pii(await response.text())


async def test_the_order_name_stands_in_for_a_missing_order_number(client: Client, world: World) -> None:
    document = json.loads(fixture("orders_create.json"))
    del document["order_number"]
    document["name"] = "#SHOP-1001"
    body = json.dumps(document).encode()
    assert (await client.post(URL, data=body, headers=signed(body, "orders/create"))).status == 202
    [event] = events(world)
    assert event.order_number == "SHOP-1001"


@pytest.mark.parametrize(
    ("value", "recipe_id"),
    [
        ("999-ShopMug1", "999-ShopMug1"),
        ("  999-ShopMug1  ", "999-ShopMug1"),
        ("https://relay.example/recipe/999-ShopMug1.json?download=1", "999-ShopMug1"),
        ("https://relay.example/recipe/999-Shop%20Mug", "999-Shop Mug"),
        ("https://relay.example/", None),
        ("", None),
        ("999-" + "x" * 200, None),
        ("999-\u0007bell", None),
    ],
)
async def test_the_recipe_property_holds_an_id_or_a_recipe_link(
    client: Client, world: World, value: str, recipe_id: str | None
) -> None:
    document = json.loads(fixture("orders_create.json"))
    document["line_items"] = [document["line_items"][0]]
    document["line_items"][0]["properties"] = {"_recipeId": value}  # some apps send an object
    body = json.dumps(document).encode()

    response = await client.post(URL, data=body, headers=signed(body, "orders/create"))

    assert response.status == 202
    found = [(i.recipe_id) for e in events(world) for i in e.items or ()]
    assert found == ([recipe_id] if recipe_id else [])


async def test_an_unset_webhook_secret_is_a_503_so_shopify_retries(
    client: Client, world: World, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("INGEST_TEST_SHOPIFY_SECRET")
    body = fixture("orders_create.json")
    response = await client.post(URL, data=body, headers=signed(body, "orders/create"))
    assert response.status == 503
    assert "Retry-After" in response.headers
    assert SECRET not in caplog.text
    assert world.publisher.published == []
