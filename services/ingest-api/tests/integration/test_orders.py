"""Order associations and lifecycle events: HTTP in, durable Kafka messages out, PII dropped."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from relay_contracts.messages import OrderEventOccurred, order_key
from relay_contracts.topics import ORDERS_EVENTS

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer demo-writer"}
PII = ["Jane Doe", "jane@example.com", "4111 1111 1111 1111", "221B Baker Street", "+44 20 7946 0958"]


def _association(order: str, item: str, recipe: str = "999-AbCdEfGh12345678", quantity: int = 2) -> dict[str, Any]:
    return {"recipeId": recipe, "orderNumber": f"N{order}", "orderId": order, "itemId": item, "itemQuantity": quantity}


def _mine(order_ids: set[str]) -> Callable[[list[Any]], list[OrderEventOccurred]]:
    def pick(records: list[Any]) -> list[OrderEventOccurred]:
        events = [OrderEventOccurred.model_validate_json(r.value) for r in records]
        return [e for e in events if e.order_id in order_ids]

    return pick


async def test_association_batch_publishes_one_linked_event_per_item_keyed_by_order(api: Any, tail: Any) -> None:
    order = uuid.uuid4().hex
    batch = [_association(order, "item-1"), _association(order, "item-2", quantity=1)]
    async with tail(ORDERS_EVENTS) as t:
        async with api.session.post(f"{api.url}/api/v2/recipe/order", json=batch, headers=WRITER) as response:
            assert response.status == 202
            assert await response.json() == {"accepted": 2, "droppedFields": 0}
        mine = _mine({order})
        records = await t.wait_for(lambda rs: len(mine(rs)) == 2)
    ours = [r for r in records if json.loads(r.value)["orderId"] == order]
    assert {r.key for r in ours} == {order_key("demo", order)}
    events = mine(records)
    assert {e.type for e in events} == {"linked"}
    assert {e.tenant for e in events} == {"demo"}
    assert sorted((e.items or ())[0].item_id for e in events) == ["item-1", "item-2"]
    assert {e.order_number for e in events} == {f"N{order}"}
    assert all(r.headers and dict(r.headers).get("traceparent") for r in ours)


async def test_order_id_defaults_to_order_number(api: Any, tail: Any) -> None:
    number = uuid.uuid4().hex
    item = {"recipeId": "999-x1", "orderNumber": number, "itemId": "i", "itemQuantity": 0}
    async with tail(ORDERS_EVENTS) as t:
        async with api.session.post(f"{api.url}/api/v2/recipe/order", json=[item], headers=WRITER) as response:
            assert response.status == 202
        mine = _mine({number})
        records = await t.wait_for(lambda rs: len(mine(rs)) == 1)
    (event,) = mine(records)
    assert event.order_number == number


async def test_resent_batch_publishes_identical_event_ids(api: Any, tail: Any) -> None:
    order = uuid.uuid4().hex
    batch = [_association(order, "a"), _association(order, "b")]
    async with tail(ORDERS_EVENTS) as t:
        for _ in range(2):
            async with api.session.post(
                f"{api.url}/api/v2/recipe/order", params={"apikey": "demo-writer"}, json=batch
            ) as response:
                assert response.status == 202
        mine = _mine({order})
        records = await t.wait_for(lambda rs: len(mine(rs)) == 4)
    ids = [e.event_id for e in mine(records)]
    assert len(set(ids)) == 2
    assert all(ids.count(i) == 2 for i in ids)


async def test_lifecycle_batch_becomes_order_events_with_their_occurred_at(api: Any, tail: Any) -> None:
    order = uuid.uuid4().hex
    batch = [
        {
            "type": "created",
            "orderId": order,
            "orderNumber": "1001",
            "occurredAt": "2025-03-01T10:00:00+01:00",
            "items": [{"recipeId": "999-r", "itemId": "i1", "itemQuantity": 3}],
        },
        {
            "eventId": "oms-77",
            "type": "refunded",
            "orderId": order,
            "orderNumber": "1001",
            "occurredAt": "2025-03-02T09:00:00Z",
        },
    ]
    async with tail(ORDERS_EVENTS) as t:
        async with api.session.post(f"{api.url}/api/v2/orders/events", json=batch, headers=WRITER) as response:
            assert response.status == 202
            assert await response.json() == {"accepted": 2, "droppedFields": 0}
        mine = _mine({order})
        records = await t.wait_for(lambda rs: len(mine(rs)) == 2)
    created, refunded = sorted(mine(records), key=lambda e: e.occurred_at)
    assert created.type == "created"
    assert created.occurred_at.isoformat() == "2025-03-01T10:00:00+01:00"
    assert created.items is not None
    assert created.items[0].item_quantity == 3
    assert refunded.type == "refunded"
    assert refunded.items is None
    assert created.event_id != refunded.event_id


async def test_personal_data_is_dropped_before_publishing_and_logging(
    api: Any, tail: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    order = uuid.uuid4().hex
    association = _association(order, "item-1") | {
        "customerName": PII[0],
        "email": PII[1],
        "payment": {"card": PII[2]},
        "shippingAddress": PII[3],
        "phone": PII[4],
    }
    event = {
        "type": "created",
        "orderId": order,
        "orderNumber": "1",
        "occurredAt": "2025-01-01T00:00:00Z",
        "customer": {"name": PII[0], "email": PII[1]},
        "items": [{"recipeId": "999-r", "itemId": "i", "itemQuantity": 1, "buyer": PII[0], "addr": PII[3]}],
    }
    async with tail(ORDERS_EVENTS) as t:
        async with api.session.post(
            f"{api.url}/api/v2/recipe/order", params={"apikey": "demo-writer"}, json=[association]
        ) as response:
            assert response.status == 202
            assert await response.json() == {"accepted": 1, "droppedFields": 5}
        async with api.session.post(f"{api.url}/api/v2/orders/events", json=[event], headers=WRITER) as response:
            assert response.status == 202
            assert await response.json() == {"accepted": 1, "droppedFields": 3}
        # An invalid batch carrying PII must not echo it in the error or the logs either.
        bad = [association | {"itemQuantity": PII[0]}]
        async with api.session.post(f"{api.url}/api/v2/recipe/order", json=bad, headers=WRITER) as response:
            assert response.status == 400
            text = await response.text()
            assert "/0/itemQuantity" in text
            assert all(p not in text for p in PII)
        mine = _mine({order})
        records = await t.wait_for(lambda rs: len(mine(rs)) == 2)
        records = await t.drain()
    raw = b"".join(r.value + b"".join(v for _, v in r.headers) for r in records)
    for value in PII:
        assert value.encode() not in raw
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert logged, "expected at least the access log lines"
    for value in [*PII, "demo-writer"]:
        assert value not in logged
