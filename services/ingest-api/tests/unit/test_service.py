"""service.py's use cases on in-memory ports: who may call, recipe reads, pick tickets, manual triggers."""

from __future__ import annotations

import json

import pytest
from ingest_fakes import World, order

from relay_contracts.messages import IntegrationsTriggered, OrderEventOccurred, recipe_object_key
from relay_contracts.recipe import RECIPE_LIMITS
from relay_contracts.topics import INTEGRATIONS_TRIGGERED, ORDERS_EVENTS
from relay_ingest_api import service
from relay_ingest_api.domain import (
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    NothingToTriggerError,
    TooLargeError,
    UnauthorizedError,
)
from relay_ingest_api.ratelimit import RateLimitedError, TokenBuckets
from relay_ingest_api.service import Credentials
from relay_platform.errors import TransientError
from relay_platform.tenants import KeyMatch

CLIENT = "198.51.100.7"


def caller(world: World, key: str = "demo-writer") -> KeyMatch:
    match = world.tenants.match_key(key)
    assert match is not None
    return match


def anonymous() -> Credentials:
    return Credentials(key=None, client=CLIENT)


def keyed(key: str) -> Credentials:
    return Credentials(key=key, client=CLIENT)


def store_recipe(world: World, tenant: str, recipe_id: str, **fields: object) -> None:
    world.objects.objects[recipe_object_key(tenant, recipe_id)] = json.dumps({"id": recipe_id, **fields}).encode()


def published_triggers(world: World) -> list[IntegrationsTriggered]:
    assert {record.topic for record in world.publisher.published} <= {INTEGRATIONS_TRIGGERED}
    return [record.message for record in world.publisher.published if isinstance(record.message, IntegrationsTriggered)]


# --- who is calling ----------------------------------------------------------------------------------------------


def test_authorize_needs_a_known_key_with_the_permission() -> None:
    world = World()
    assert service.authorize(world.ports, keyed("demo-writer"), "order-tracking").tenant_id == "demo"
    with pytest.raises(UnauthorizedError, match="required"):
        service.authorize(world.ports, anonymous(), "order-tracking")
    with pytest.raises(UnauthorizedError, match="unknown"):
        service.authorize(world.ports, keyed("guessed"), "order-tracking")
    with pytest.raises(ForbiddenError):
        service.authorize(world.ports, keyed("demo-reader"), "order-tracking")


def test_unknown_keys_are_counted_against_the_client_until_it_must_wait() -> None:
    world = World()
    for _ in range(20):
        with pytest.raises(UnauthorizedError):
            service.authorize(world.ports, keyed("guessed"), "order-tracking")
    with pytest.raises(RateLimitedError) as refused:
        service.authorize(world.ports, keyed("demo-writer"), "order-tracking")  # even a good key now
    assert refused.value.retry_after_s == 5  # one failure's worth at 0.2/s
    service.authorize(world.ports, Credentials(key="demo-writer", client="203.0.113.9"), "order-tracking")


# --- orders and recipes ------------------------------------------------------------------------------------------


async def test_linking_orders_publishes_one_event_per_association() -> None:
    world = World()
    link = {"recipeId": "999-r", "orderNumber": "1001", "itemId": "i1", "itemQuantity": 1, "email": "x@example.com"}
    accepted = await service.link_orders(world.ports, caller(world), [link], max_items=10)
    assert (accepted.accepted, accepted.dropped_fields) == (1, 1)
    (record,) = world.publisher.published
    assert record.topic == ORDERS_EVENTS
    assert isinstance(record.message, OrderEventOccurred)
    assert (record.message.tenant, record.message.type, record.key) == ("demo", "linked", b"demo:1001")


async def test_another_tenants_recipe_is_never_linked() -> None:
    world = World()
    link = {"recipeId": "777-theirs", "orderNumber": "1001", "itemId": "i1", "itemQuantity": 1}
    with pytest.raises(InvalidInputError) as refused:
        await service.link_orders(world.ports, caller(world), [link], max_items=10)
    assert refused.value.code == "foreign_recipe"
    assert world.publisher.published == []


async def test_a_recipe_is_not_stored_when_it_could_not_be_announced() -> None:
    world = World()
    world.publisher.connected = False
    with pytest.raises(TransientError):
        await service.save_recipe(
            world.ports, caller(world), {"name": "Mug"}, limits=RECIPE_LIMITS, public_base_url="http://x"
        )
    assert world.objects.objects == {}


async def test_recipe_reads_follow_the_tenants_read_mode() -> None:
    world = World()
    store_recipe(world, "demo", "999-pub")
    store_recipe(world, "acme", "777-key")
    assert (await service.read_recipe(world.ports, anonymous(), "999-pub")).tenant.recipe_read == "public"
    assert (await service.read_recipe(world.ports, keyed("acme-writer"), "777-key")).body.startswith(b"{")
    with pytest.raises(UnauthorizedError):
        await service.read_recipe(world.ports, anonymous(), "777-key")
    with pytest.raises(NotFoundError):  # another tenant's key sees what an unknown ID looks like
        await service.read_recipe(world.ports, keyed("demo-writer"), "777-key")
    with pytest.raises(ForbiddenError):
        await service.read_recipe(world.ports, keyed("acme-orders-only"), "777-key")
    with pytest.raises(NotFoundError):
        await service.read_recipe(world.ports, anonymous(), "../etc/passwd")


async def test_a_pick_ticket_is_rendered_once_and_charged_to_the_key_or_the_address() -> None:
    world = World()
    store_recipe(world, "demo", "999-pub", name="Mug")
    first = await service.pick_ticket(world.ports, keyed("demo-writer"), "999-pub", public_base_url="http://x/")
    again = await service.pick_ticket(world.ports, anonymous(), "999-pub", public_base_url="http://x/")
    assert first.pdf == again.pdf
    assert world.pick_tickets.rendered == ["http://x/recipe/999-pub.json"]
    assert world.pick_tickets.charged == ["key:demo/writer"]  # the cached one costs nothing
    store_recipe(world, "demo", "999-other")
    await service.pick_ticket(world.ports, anonymous(), "999-other", public_base_url="http://x")
    assert world.pick_tickets.charged[-1] == CLIENT


# --- manual triggers ---------------------------------------------------------------------------------------------


async def test_a_recipe_trigger_follows_every_page_and_adds_the_raw_feed() -> None:
    world = World().with_orders(
        [order("o1", ("999-a", "i1"), ("999-b", "i2"))],
        [order("o2", ("999-a", "i3"), ("777-theirs", "i4"))],
    )
    store_recipe(world, "demo", "999-a")
    accepted = await service.trigger_integrations(
        world.ports, caller(world), {"recipeId": "999-a"}, idempotency_key=None, max_fanout=100
    )
    triggers = published_triggers(world)
    assert accepted.triggered == len(triggers) == 3
    assert [(t.feed, t.integration_ids) for t in triggers] == [
        ("recipe", ("demo-raw", "demo-both")),
        ("order", ("demo-email", "demo-both")),
        ("order", ("demo-email", "demo-both")),
    ]
    assert [t.order.item_id for t in triggers if t.order] == ["i1", "i3"]
    assert [query[3] for query in world.associations.queries] == [None, "o1"]  # both pages asked for


async def test_a_temporary_recipe_goes_only_where_temporary_recipes_are_taken() -> None:
    world = World()
    store_recipe(world, "demo", "999-t", temporaryRecipe=True)
    await service.trigger_integrations(
        world.ports, caller(world), {"recipeId": "999-t"}, idempotency_key=None, max_fanout=100
    )
    (raw,) = published_triggers(world)
    assert raw.integration_ids == ("demo-both",)


async def test_a_recipe_some_integration_takes_raw_must_be_stored() -> None:
    world = World()
    with pytest.raises(NotFoundError, match="no such recipe"):
        await service.trigger_integrations(
            world.ports, caller(world), {"recipeId": "999-missing"}, idempotency_key=None, max_fanout=100
        )


async def test_past_the_fan_out_limit_nothing_is_published() -> None:
    world = World().with_orders([order("o1", ("999-a", "i1"), ("999-a", "i2"))])
    with pytest.raises(TooLargeError) as refused:
        await service.trigger_integrations(
            world.ports, caller(world), {"orderId": "o1"}, idempotency_key=None, max_fanout=1
        )
    assert refused.value.code == "too_many_triggers"
    assert world.publisher.published == []


async def test_no_order_is_not_found_and_orders_without_a_feed_have_nothing_to_trigger() -> None:
    world = World()
    with pytest.raises(NotFoundError) as refused:
        await service.trigger_integrations(
            world.ports, caller(world), {"orderId": "o1"}, idempotency_key=None, max_fanout=100
        )
    assert refused.value.code == "not_found"
    world = World().with_orders([order("o1", ("777-theirs", "i1"))])
    with pytest.raises(NothingToTriggerError):
        await service.trigger_integrations(
            world.ports, caller(world), {"orderId": "o1"}, idempotency_key=None, max_fanout=100
        )


async def test_an_idempotency_key_makes_a_resent_trigger_the_same() -> None:
    world = World().with_orders([order("o1", ("999-a", "i1"))])

    async def trigger_ids(key: str | None) -> list[str]:
        accepted = await service.trigger_integrations(
            world.ports, caller(world), {"orderId": "o1"}, idempotency_key=key, max_fanout=100
        )
        return [t.trigger_id for t in accepted.triggers]

    assert await trigger_ids("k-1") == await trigger_ids("k-1")
    assert await trigger_ids(None) != await trigger_ids(None)


async def test_triggers_are_charged_to_the_tenants_fan_out_bucket() -> None:
    world = World(fan_out=TokenBuckets(0.01, 3, max_keys=None)).with_orders(
        [order("o1", ("999-a", "i1"), ("999-a", "i2"))]
    )
    await service.trigger_integrations(
        world.ports, caller(world), {"orderId": "o1"}, idempotency_key=None, max_fanout=3
    )
    with pytest.raises(RateLimitedError) as refused:
        await service.trigger_integrations(
            world.ports, caller(world), {"orderId": "o1"}, idempotency_key=None, max_fanout=3
        )
    assert refused.value.retry_after_s >= 100  # one token missing at 0.01/s
    assert len(world.publisher.published) == 2
