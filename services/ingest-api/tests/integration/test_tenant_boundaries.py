"""Tenant boundaries on the running ingest API (real broker): another tenant's recipes, key guessing, fan-out."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay_contracts.messages import IntegrationsTriggered
from relay_contracts.topics import INTEGRATIONS_TRIGGERED, ORDERS_EVENTS
from relay_ingest_api.schemas import TriggersAccepted

pytestmark = pytest.mark.integration

TRIGGER = "/api/v2/integrations/trigger"
# Raw test keys of services/ingest-api/tests/tenants.yaml.
DEMO_WRITER = "demo-writer"
DEMO_ADMIN = "demo-admin"
ACME_WRITER = "acme-writer"
ACME_ORDERS_ONLY = "acme-orders-only"
AssociationStub = Any


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


Server = Callable[..., AbstractAsyncContextManager[tuple[str, aiohttp.ClientSession]]]


async def post(api: Any, path: str, body: object, key: str, **headers: str) -> tuple[int, dict[str, Any]]:
    async with api.session.post(f"{api.url}{path}", json=body, headers={**bearer(key), **headers}) as response:
        return response.status, await response.json()


def pointers(body: dict[str, Any]) -> list[str]:
    return [problem["pointer"] for problem in body.get("problems", [])]


def order(order_id: str, *recipes: str) -> dict[str, Any]:
    return {
        "orderId": order_id,
        "orderNumber": f"n-{order_id}",
        "status": "open",
        "items": [{"recipeId": r, "itemId": f"line-{n}", "itemQuantity": 1} for n, r in enumerate(recipes)],
        "deliveries": [],
    }


async def test_linking_another_tenants_recipe_is_refused_and_nothing_is_published(api: Any, tail: Any) -> None:
    # acme's recipes start "777-": demo may not link one to its orders, nor cancel with one, nor trigger one.
    association = {"recipeId": "777-AcmePrivate01", "orderNumber": "1", "itemId": "i", "itemQuantity": 1}
    lifecycle = {
        "type": "created",
        "orderId": "o-1",
        "orderNumber": "1",
        "occurredAt": "2026-12-01T10:00:00Z",
        "items": [
            {"recipeId": "999-Mine", "itemId": "i1", "itemQuantity": 1},
            {"recipeId": "777-AcmePrivate01", "itemId": "i2", "itemQuantity": 1},
        ],
    }
    async with tail(ORDERS_EVENTS) as orders_tail, tail(INTEGRATIONS_TRIGGERED) as triggers_tail:
        status, body = await post(
            api, "/api/v2/recipe/order", [association, {**association, "recipeId": "999-ok"}], DEMO_WRITER
        )
        assert (status, body["error"], pointers(body)) == (400, "foreign_recipe", ["/0/recipeId"])
        assert "'999-'" in body["problems"][0]["message"]
        status, body = await post(api, "/api/v2/orders/events", [lifecycle], DEMO_WRITER)
        assert (status, pointers(body)) == (400, ["/0/items/1/recipeId"])
        status, body = await post(api, TRIGGER, {"recipeId": "777-AcmePrivate01"}, DEMO_WRITER)
        assert (status, pointers(body)) == (400, ["/recipeId"])
        # A recipe ID without any tenant's prefix is nobody's.
        status, body = await post(
            api, "/api/v2/recipe/order", [{**association, "recipeId": "63CHGJokGoxPfSba"}], DEMO_WRITER
        )
        assert (status, pointers(body)) == (400, ["/0/recipeId"])
        # (The tails may hold other tests' messages: Tansu's end offsets lag.)
        assert [r for r in await orders_tail.drain() if b"777-AcmePrivate01" in r.value] == []
        assert [r for r in await triggers_tail.drain() if b"777-AcmePrivate01" in r.value] == []


async def test_recipes_are_stored_under_their_tenant_and_never_read_from_elsewhere(api: Any) -> None:
    status, body = await post(api, "/api/v2/recipes", {"name": "ring"}, ACME_WRITER)
    assert status == 201, body
    recipe_id = body["id"]
    stored = api.objects_dir / "recipes" / "acme" / f"{recipe_id}.json"
    assert stored.is_file()
    assert not (api.objects_dir / "recipe" / f"{recipe_id}.json").exists()
    # acme keeps recipes private: demo's key does not see it; acme's does.
    async with api.session.get(f"{api.url}/recipe/{recipe_id}.json", headers=bearer(DEMO_WRITER)) as response:
        assert response.status == 404
    async with api.session.get(f"{api.url}/recipe/{recipe_id}.json", headers=bearer(ACME_WRITER)) as response:
        assert response.status == 200
    # A copy planted where another tenant's recipe would be (or at the old global key) is never served.
    planted = f"999-Planted{uuid.uuid4().hex[:8]}"
    for key in (Path("recipe") / f"{planted}.json", Path("recipes") / "acme" / f"{planted}.json"):
        (api.objects_dir / key).parent.mkdir(parents=True, exist_ok=True)
        (api.objects_dir / key).write_text('{"id": "x"}')
    async with api.session.get(f"{api.url}/recipe/{planted}.json") as response:
        assert response.status == 404


async def test_manual_triggers_need_their_own_permission(api: Any, association_stub: AssociationStub) -> None:
    association_stub.answer("acme", "orderNumber", "perm-1", [order("perm-o1", "777-a")])
    status, body = await post(api, TRIGGER, {"orderNumber": "perm-1"}, ACME_ORDERS_ONLY)
    assert (status, body["error"]) == (403, "forbidden")
    assert "integrations:trigger" in body["message"]
    status, _ = await post(api, TRIGGER, {"orderNumber": "perm-1"}, ACME_WRITER)
    assert status == 202


async def test_an_item_of_another_tenants_recipe_in_the_store_is_not_triggered(
    api: Any, association_stub: AssociationStub
) -> None:
    association_stub.answer("demo", "orderId", "mixed-1", [order("mixed-1", "999-mine", "777-theirs")])
    status, body = await post(api, TRIGGER, {"orderId": "mixed-1"}, DEMO_WRITER)
    assert status == 202, body
    assert [t["recipeId"] for t in body["triggers"]] == ["999-mine"]


async def test_a_trigger_follows_every_page_of_matching_orders(
    api: Any, tail: Any, association_stub: AssociationStub
) -> None:
    orders = [order(f"paged-{n:03d}", "999-Popular") for n in range(7)]
    association_stub.answer("demo", "recipeId", "999-Popular", orders)
    association_stub.page_size = 3
    try:
        async with tail(INTEGRATIONS_TRIGGERED) as t:
            status, body = await post(
                api, TRIGGER, {"recipeId": "999-Popular", "integrationIds": ["demo-email"]}, DEMO_WRITER
            )
            assert status == 202, body
            accepted = TriggersAccepted.model_validate(body)
            records = await t.wait_for(lambda rs: len(rs) >= 7)
    finally:
        association_stub.page_size = 100
    assert sorted(s.order_id or "" for s in accepted.triggers) == [o["orderId"] for o in orders]
    published = [IntegrationsTriggered.model_validate_json(r.value) for r in records]
    assert sorted(p.order.order_id for p in published if p.order) == [o["orderId"] for o in orders]
    lookups = [q.get("after") for q in association_stub.lookups if q.get("recipeId") == "999-Popular"][-3:]
    assert lookups == [None, "paged-002", "paged-005"]


async def test_an_idempotency_key_makes_a_resent_trigger_send_the_same_deliveries(
    api: Any, association_stub: AssociationStub
) -> None:
    association_stub.answer("demo", "orderId", "idem-1", [order("idem-1", "999-a", "999-b")])
    key = f"retry-{uuid.uuid4()}"
    first = await post(api, TRIGGER, {"orderId": "idem-1"}, DEMO_WRITER, **{"Idempotency-Key": key})
    again = await post(api, TRIGGER, {"orderId": "idem-1"}, DEMO_WRITER, **{"Idempotency-Key": key})
    fresh = await post(api, TRIGGER, {"orderId": "idem-1"}, DEMO_WRITER)
    ids = [[t["triggerId"] for t in body["triggers"]] for _, body in (first, again, fresh)]
    assert ids[0] == ids[1]
    assert not set(ids[0]) & set(ids[2])
    status, body = await post(api, TRIGGER, {"orderId": "idem-1"}, DEMO_WRITER, **{"Idempotency-Key": "x" * 129})
    assert (status, pointers(body)) == (400, ["/Idempotency-Key"])


async def test_fan_out_is_bounded_and_rate_limited(
    kafka_bootstrap: str, association_stub: AssociationStub, ingest_server: Server, tmp_path: Path, tail: Any
) -> None:
    association_stub.answer("demo", "recipeId", "999-Fan", [order(f"fan-{n}", "999-Fan") for n in range(4)])
    association_stub.answer("demo", "orderId", "fan-single", [order("fan-single", "999-Fan", "999-Fan")])
    settings = {"max_trigger_fanout": 3, "trigger_fanout_per_s": 0.01}
    async with (
        ingest_server(kafka_bootstrap, tmp_path, association_stub.url, ready=True, **settings) as (url, session),
        tail(INTEGRATIONS_TRIGGERED) as t,
    ):
        body_of = {"recipeId": "999-Fan", "integrationIds": ["demo-email"]}
        async with session.post(f"{url}{TRIGGER}", json=body_of, headers=bearer(DEMO_WRITER)) as response:
            body = await response.json()
            # Four order lines match; past the limit nothing is sent, and the answer says so (never a silent cut).
            assert (response.status, body["error"]) == (413, "too_many_triggers")
            assert "more than 3" in body["message"]
        assert [r for r in await t.drain() if b"999-Fan" in r.value] == []
        single = {"orderId": "fan-single"}
        async with session.post(f"{url}{TRIGGER}", json=single, headers=bearer(DEMO_WRITER)) as response:
            assert response.status == 202  # 2 of the tenant's 3 tokens
        async with session.post(f"{url}{TRIGGER}", json=single, headers=bearer(DEMO_WRITER)) as response:
            body = await response.json()
            assert (response.status, body["error"]) == (429, "rate_limited")
            assert int(response.headers["Retry-After"]) >= 100  # one token missing at 0.01/s
        # acme's budget is its own.
        association_stub.answer("acme", "orderId", "fan-acme", [order("fan-acme", "777-a")])
        async with session.post(
            f"{url}{TRIGGER}", json={"orderId": "fan-acme"}, headers=bearer(ACME_WRITER)
        ) as response:
            assert response.status == 202


async def test_guessing_keys_is_throttled_per_client(
    kafka_bootstrap: str, association_stub: AssociationStub, ingest_server: Server, tmp_path: Path
) -> None:
    settings = {"failed_key_burst": 3, "failed_key_per_s": 0.01}
    async with ingest_server(kafka_bootstrap, tmp_path, association_stub.url, ready=True, **settings) as (url, session):
        statuses = []
        for n in range(5):
            async with session.get(f"{url}/api/v2/orders?orderId=x", headers=bearer(f"guess-{n}")) as response:
                statuses.append(response.status)
        assert statuses == [401, 401, 401, 429, 429]
        # Even the right key waits now: the client is throttled, not the key.
        async with session.get(f"{url}/api/v2/orders?orderId=x", headers=bearer(DEMO_ADMIN)) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            assert (await response.json())["error"] == "rate_limited"
