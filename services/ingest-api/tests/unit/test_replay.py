"""``POST /api/v2/deliveries/replay`` on in-memory ports: the selection asked of the store (the key's tenant, final
failures not replayed yet, the window), the triggers published (one per failure, to its own integration, an ID
derived from the failure's), the dry run, the fan-out budget, and every bad field refused naming it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import TENANTS_FILE, World

from relay_contracts.internal_api import DeliveriesPage
from relay_contracts.messages import IntegrationsTriggered, stable_id
from relay_ingest_api import handlers
from relay_ingest_api.adapters.association_store import RefusedQueryError
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_testing.shared_secrets import link_settings

Client = TestClient[web.Request, web.Application]

REPLAY = "/api/v2/deliveries/replay"
DEMO = {"Authorization": "Bearer demo-writer"}  # integrations:trigger
ACME_ORDERS_ONLY = {"Authorization": "Bearer acme-orders-only"}  # no integrations:trigger
SINCE = "2026-12-01T00:00:00Z"


def failure(delivery_id: str, integration: str = "demo-email", **fields: Any) -> dict[str, Any]:
    return {
        "deliveryId": delivery_id,
        "orderId": "o1",
        "orderNumber": "1001",
        "recipeId": "999-a",
        "integration": integration,
        "type": "email",
        "trigger": "order_linked",
        "status": "failed",
        "final": True,
        "attempts": 3,
        "lastError": "550 mailbox unavailable",
        "updatedAt": "2026-12-01T10:00:00.000Z",
        "itemId": "i1",
        **fields,
    }


@pytest.fixture
def world() -> World:
    world = World()
    world.associations.failed = DeliveriesPage.model_validate(
        {
            "deliveries": [
                failure("d1"),
                failure("d2", orderId=None, orderNumber=None, itemId=None, trigger="recipe_saved"),
                failure("d3", integration="demo-off"),  # disabled since: skipped
            ],
            "next": "cursor-2",
            "total": 7,
        }
    )
    return world


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    app = web.Application(middlewares=[error_middleware(None)])
    app[SETTINGS] = Settings(tenants_file=TENANTS_FILE, links=link_settings(public_base_url="http://relay.test"))
    app[PORTS] = world.ports
    app.add_routes(handlers.routes)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def published(world: World) -> list[IntegrationsTriggered]:
    messages = [record.message for record in world.publisher.published]
    assert all(isinstance(message, IntegrationsTriggered) for message in messages)
    return [message for message in messages if isinstance(message, IntegrationsTriggered)]


async def test_a_dry_run_counts_the_tenants_unreplayed_failures_and_sends_nothing(client: Client, world: World) -> None:
    response = await client.post(REPLAY, json={"since": SINCE, "dryRun": True}, headers=DEMO)

    assert response.status == 200, await response.text()
    assert await response.json() == {
        "dryRun": True,
        "matched": 7,
        "replayed": 0,
        "skipped": 0,
        "deliveries": [],
        "next": None,
    }
    assert world.publisher.published == []
    [asked] = world.associations.delivery_calls
    assert (asked["tenant"], asked["status"], asked["replayed"]) == ("demo", "failed", False)
    assert asked["since"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert asked["until"] is not None  # "until now", fixed when asked, so the batches share one window


async def test_a_batch_re_triggers_each_failure_once_to_its_own_integration(client: Client, world: World) -> None:
    body = {"since": SINCE, "until": "2026-12-02T00:00:00+01:00", "integrationId": "demo-email", "limit": 3}
    response = await client.post(REPLAY, json=body, headers=DEMO)

    assert response.status == 202, await response.text()
    answer = await response.json()
    assert (answer["matched"], answer["replayed"], answer["skipped"], answer["next"]) == (7, 2, 1, "cursor-2")
    triggers = published(world)
    assert [t.replay_of for t in triggers] == ["d1", "d2"]
    assert [t.trigger_id for t in triggers] == [stable_id("replay", "d1"), stable_id("replay", "d2")]
    assert {(t.tenant, t.reason, t.integration_ids) for t in triggers} == {("demo", "manual", ("demo-email",))}
    order_line, recipe_feed = triggers
    assert order_line.order is not None
    assert (order_line.feed, order_line.order.order_id, order_line.order.item_id) == ("order", "o1", "i1")
    assert (recipe_feed.feed, recipe_feed.order) == ("recipe", None)
    assert [d["replayTriggerId"] for d in answer["deliveries"]] == [t.trigger_id for t in triggers]
    [asked] = world.associations.delivery_calls
    assert (asked["integration"], asked["limit"]) == ("demo-email", 3)
    assert asked["until"] == datetime(2026, 12, 1, 23, tzinfo=UTC)


async def test_the_same_batch_replayed_again_publishes_the_same_trigger_ids(client: Client, world: World) -> None:
    for _ in range(2):
        response = await client.post(REPLAY, json={"since": SINCE}, headers=DEMO)
        assert response.status == 202
    first, second = published(world)[:2], published(world)[2:]
    # A replay racing its own marking re-sends the very same triggers: same delivery IDs, same idempotency keys.
    assert [t.trigger_id for t in first] == [t.trigger_id for t in second]


async def test_a_spent_fan_out_budget_is_a_429_and_nothing_is_sent(client: Client, world: World) -> None:
    world.fan_out.check("demo", 5000)  # the tenant's whole budget, spent by earlier triggers

    response = await client.post(REPLAY, json={"since": SINCE}, headers=DEMO)

    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert world.publisher.published == []


async def test_a_cursor_the_store_refuses_is_a_400_naming_after(client: Client, world: World) -> None:
    world.associations.error = RefusedQueryError("'after' is not a cursor this list gave out")
    response = await client.post(REPLAY, json={"since": SINCE, "after": "forged"}, headers=DEMO)
    assert response.status == 400
    assert [p["pointer"] for p in (await response.json())["problems"]] == ["/after"]


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({}, "/since"),
        ({"since": "2026-12-01T00:00:00"}, "/since"),  # naive: refused, not guessed
        ({"since": "2026-13-45T00:00:00Z"}, "/since"),
        ({"since": 1764547200}, "/since"),
        ({"since": SINCE, "until": "2026-11-30T00:00:00Z"}, "/since"),
        ({"since": SINCE, "integrationId": "acme-email"}, "/integrationId"),  # another tenant's
        ({"since": SINCE, "integrationId": "no-such"}, "/integrationId"),
        ({"since": SINCE, "integrationId": "\u202edemo-email"}, "/integrationId"),
        ({"since": SINCE, "status": "succeeded"}, "/status"),
        ({"since": SINCE, "limit": 0}, "/limit"),
        ({"since": SINCE, "limit": 101}, "/limit"),
        ({"since": SINCE, "limit": "5"}, "/limit"),
        ({"since": SINCE, "dryRun": "yes"}, "/dryRun"),
        ({"since": SINCE, "after": "x" * 513}, "/after"),
        ({"since": SINCE, "tenant": "acme"}, "/tenant"),  # the tenant is the key's, never the body's
    ],
)
async def test_a_bad_field_is_a_400_naming_it(client: Client, world: World, body: dict[str, Any], pointer: str) -> None:
    response = await client.post(REPLAY, json=body, headers=DEMO)
    assert response.status == 400, await response.text()
    assert pointer in [p["pointer"] for p in (await response.json())["problems"]]
    assert world.publisher.published == []


async def test_a_replay_needs_a_key_allowed_to_trigger(client: Client, world: World) -> None:
    assert (await client.post(REPLAY, json={"since": SINCE})).status == 401
    assert (await client.post(REPLAY, json={"since": SINCE}, headers=ACME_ORDERS_ONLY)).status == 403
    response = await client.post(REPLAY, data=b"[1,", headers=DEMO | {"Content-Type": "application/json"})
    assert response.status == 400
    assert world.publisher.published == []
