"""``POST /api/v2/integrations/trigger``: manual re-runs published to integrations.triggered.v1 on the real broker."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord

from relay_contracts.messages import IntegrationsTriggered, OrderLine
from relay_contracts.topics import INTEGRATIONS_TRIGGERED
from relay_ingest_api.schemas import RecipeCreated, TriggersAccepted

pytestmark = pytest.mark.integration

URL = "/api/v2/integrations/trigger"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _trigger(api: Any, body: object, key: str = "demo-writer") -> tuple[int, dict[str, Any]]:
    async with api.session.post(f"{api.url}{URL}", json=body, headers=_auth(key)) as response:
        return response.status, await response.json()


async def _save(api: Any, recipe: dict[str, Any], key: str = "demo-writer") -> str:
    async with api.session.post(f"{api.url}/api/v2/recipes", json=recipe, headers=_auth(key)) as response:
        assert response.status == 201, await response.text()
        return RecipeCreated.model_validate(await response.json()).id


def _order(order_id: str, number: str, items: list[tuple[str, str, int]], status: str = "open") -> dict[str, Any]:
    return {
        "orderId": order_id,
        "orderNumber": number,
        "status": status,
        "items": [{"recipeId": r, "itemId": i, "itemQuantity": q} for r, i, q in items],
        "deliveries": [],
    }


async def _published(tail: Any, accepted: TriggersAccepted) -> dict[str, tuple[bytes, IntegrationsTriggered]]:
    """The published triggers of this answer, by trigger ID, with their Kafka keys."""
    wanted = {t.trigger_id for t in accepted.triggers}

    def mine(records: list[ConsumerRecord]) -> dict[str, tuple[bytes, IntegrationsTriggered]]:
        found = {}
        for record in records:
            trigger = IntegrationsTriggered.model_validate_json(record.value)
            if trigger.trigger_id in wanted:
                found[trigger.trigger_id] = (record.key, trigger)
        return found

    records = await tail.wait_for(lambda rs: set(mine(rs)) == wanted)
    return mine(records)


async def test_order_number_trigger_publishes_one_manual_order_trigger_per_item(
    api: Any, tail: Any, association_stub: Any
) -> None:
    association_stub.answer(
        "demo",
        "orderNumber",
        "1022",
        [_order("6182665224482", "1022", [("999-RecipeA", "line-1", 2), ("999-RecipeB", "line-2", 1)])],
    )
    async with tail(INTEGRATIONS_TRIGGERED) as t:
        status, body = await _trigger(api, {"orderNumber": "1022"})
        assert status == 202, body
        accepted = TriggersAccepted.model_validate(body)
        published = await _published(t, accepted)

    assert association_stub.lookups[-1] == {"tenant": "demo", "orderNumber": "1022"}
    assert accepted.triggered == 2
    assert [(s.recipe_id, s.order_id, s.order_number, s.item_id) for s in accepted.triggers] == [
        ("999-RecipeA", "6182665224482", "1022", "line-1"),
        ("999-RecipeB", "6182665224482", "1022", "line-2"),
    ]
    for summary in accepted.triggers:
        key, trigger = published[summary.trigger_id]
        assert key == summary.recipe_id.encode()
        assert trigger.tenant == "demo"
        assert (trigger.reason, trigger.feed) == ("manual", "order")
        assert trigger.recipe_key == f"recipes/demo/{summary.recipe_id}.json"
        # Enabled integrations taking the order feed: not the disabled one, not the raw-feed-only one.
        assert trigger.integration_ids == ("demo-email", "demo-both")
    _, first = published[accepted.triggers[0].trigger_id]
    assert first.order == OrderLine(
        order_id="6182665224482", order_number="1022", item_id="line-1", item_quantity=2, status="open"
    )


async def test_every_manual_trigger_gets_a_new_trigger_id(api: Any, association_stub: Any) -> None:
    association_stub.answer("demo", "orderId", "ord-again", [_order("ord-again", "2001", [("999-R", "i1", 1)])])
    ids = set()
    for _ in range(2):
        status, body = await _trigger(api, {"orderId": "ord-again"})
        assert status == 202, body
        ids |= {t.trigger_id for t in TriggersAccepted.model_validate(body).triggers}
    assert len(ids) == 2


async def test_recipe_trigger_reruns_its_orders_items_and_the_raw_recipe_feed(
    api: Any, tail: Any, association_stub: Any
) -> None:
    recipe_id = await _save(api, {"name": "Raw feed recipe"})
    association_stub.answer(
        "demo",
        "recipeId",
        recipe_id,
        [
            _order("o-1", "3001", [(recipe_id, "a", 1), ("999-Other", "b", 4)]),
            _order("o-2", "3002", [(recipe_id, "c", 3)], status="cancelled"),
        ],
    )
    async with tail(INTEGRATIONS_TRIGGERED) as t:
        status, body = await _trigger(api, {"recipeId": recipe_id})
        assert status == 202, body
        accepted = TriggersAccepted.model_validate(body)
        published = await _published(t, accepted)

    assert accepted.triggered == 3
    raw = [published[s.trigger_id][1] for s in accepted.triggers if s.feed == "recipe"]
    orders = [published[s.trigger_id][1] for s in accepted.triggers if s.feed == "order"]
    assert len(raw) == 1
    assert raw[0].order is None
    assert raw[0].integration_ids == ("demo-raw", "demo-both")
    assert raw[0].recipe_id == recipe_id
    assert sorted((o.order.order_id, o.order.item_id, o.order.status) for o in orders if o.order) == [
        ("o-1", "a", "open"),
        ("o-2", "c", "cancelled"),
    ]
    assert {o.recipe_id for o in orders} == {recipe_id}
    assert all(key == recipe_id.encode() for key, _ in published.values())


async def test_temporary_recipe_skips_raw_feed_integrations_that_exclude_temporaries(
    api: Any, association_stub: Any
) -> None:
    recipe_id = await _save(api, {"name": "Scratch", "temporaryRecipe": True})
    association_stub.answer("demo", "recipeId", recipe_id, [])
    status, body = await _trigger(api, {"recipeId": recipe_id})
    assert status == 202, body
    (only,) = TriggersAccepted.model_validate(body).triggers
    assert (only.feed, only.integration_ids, only.order_id) == ("recipe", ["demo-both"], None)


async def test_named_integrations_limit_what_fires(api: Any, tail: Any, association_stub: Any) -> None:
    recipe_id = await _save(api, {"name": "Named"})
    association_stub.answer("demo", "recipeId", recipe_id, [_order("o-named", "4001", [(recipe_id, "x", 1)])])
    status, body = await _trigger(api, {"recipeId": recipe_id, "integrationIds": ["demo-raw"]})
    assert status == 202, body
    (only,) = TriggersAccepted.model_validate(body).triggers
    assert (only.feed, only.integration_ids) == ("recipe", ["demo-raw"])

    status, body = await _trigger(api, {"recipeId": recipe_id, "integrationIds": ["demo-email"]})
    assert status == 202, body
    (only,) = TriggersAccepted.model_validate(body).triggers
    assert (only.feed, only.order_id, only.integration_ids) == ("order", "o-named", ["demo-email"])


async def test_unknown_or_disabled_integration_is_400_naming_its_index(api: Any) -> None:
    status, body = await _trigger(
        api, {"orderNumber": "1022", "integrationIds": ["demo-email", "nope", "demo-off", "demo-raw"]}
    )
    assert status == 400
    assert body["error"] == "invalid_integrations"
    assert [p["pointer"] for p in body["problems"]] == ["/integrationIds/1", "/integrationIds/2", "/integrationIds/3"]


async def test_another_tenants_integration_is_400_and_lookups_use_the_keys_tenant(
    api: Any, association_stub: Any
) -> None:
    status, body = await _trigger(api, {"orderNumber": "1022", "integrationIds": ["demo-email"]}, key="acme-writer")
    assert status == 400
    assert [p["pointer"] for p in body["problems"]] == ["/integrationIds/0"]

    association_stub.answer("acme", "orderNumber", "5001", [_order("acme-5001", "5001", [("777-AcmeR", "l1", 1)])])
    status, body = await _trigger(api, {"orderNumber": "5001", "tenant": "demo"}, key="acme-writer")
    assert status == 400  # no "tenant" field: the tenant is the key's
    assert [p["pointer"] for p in body["problems"]] == ["/tenant"]
    status, body = await _trigger(api, {"orderNumber": "5001"}, key="acme-writer")
    assert status == 202, body
    assert association_stub.lookups[-1] == {"tenant": "acme", "orderNumber": "5001"}
    (only,) = TriggersAccepted.model_validate(body).triggers
    assert (only.order_id, only.integration_ids) == ("acme-5001", ["acme-email"])


async def test_another_tenants_recipe_is_400_naming_it(api: Any, association_stub: Any) -> None:
    recipe_id = await _save(api, {"name": "Acme only"}, key="acme-writer")
    association_stub.answer("demo", "recipeId", recipe_id, [])
    status, body = await _trigger(api, {"recipeId": recipe_id})
    assert (status, body["error"]) == (400, "foreign_recipe")
    assert [p["pointer"] for p in body["problems"]] == ["/recipeId"]


async def test_recipe_missing_from_the_object_store_is_404(api: Any, association_stub: Any) -> None:
    association_stub.answer(
        "demo", "recipeId", "999-NeverSaved", [_order("o-ns", "6001", [("999-NeverSaved", "i", 1)])]
    )
    status, body = await _trigger(api, {"recipeId": "999-NeverSaved"})
    assert (status, body["error"]) == (404, "not_found")


async def test_nothing_found_is_404_json(api: Any, association_stub: Any) -> None:
    association_stub.answer("demo", "orderNumber", "no-such-order", [])
    status, body = await _trigger(api, {"orderNumber": "no-such-order"})
    assert (status, body["error"]) == (404, "not_found")


async def test_trigger_needs_the_integrations_trigger_permission(api: Any) -> None:
    status, body = await _trigger(api, {"orderNumber": "1022"}, key="demo-reader")
    assert (status, body["error"]) == (403, "forbidden")
    async with api.session.post(f"{api.url}{URL}", json={"orderNumber": "1022"}) as response:
        assert response.status == 401


@pytest.mark.parametrize(
    ("body", "pointers"),
    [
        ({}, [""]),
        ({"orderNumber": "1", "orderId": "2"}, ["/orderNumber"]),
        ({"recipeId": "999-a", "orderId": "2", "orderNumber": "1"}, ["/orderId", "/orderNumber"]),
        ({"orderNumber": ""}, ["/orderNumber"]),
        ({"orderNumber": "1", "integrationIds": []}, ["/integrationIds"]),
        (["orderNumber"], [""]),
    ],
)
async def test_body_needs_exactly_one_criterion(api: Any, body: object, pointers: list[str]) -> None:
    status, answer = await _trigger(api, body)
    assert status == 400
    assert [p["pointer"] for p in answer["problems"]] == pointers
