"""handlers.py on FastStream's in-memory broker over a real SQLite store: each topic reaches its use case, the
triggers it fires are published, and an invalid message is dead-lettered without stopping its consumer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from association_store_factories import TENANTS_FILE, delivery_attempted, order_event, recipe_saved, unique
from faststream.kafka import TestKafkaBroker

from relay_association_store import handlers, service
from relay_association_store.adapters.repository import SqlStore
from relay_association_store.domain import OrderView
from relay_association_store.main import SERVICE
from relay_association_store.ports import ServicePorts
from relay_association_store.settings import Settings
from relay_contracts.messages import IntegrationsTriggered, MessageDeadLettered, OmsOrderEvent, stable_id
from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    INTEGRATIONS_TRIGGERED,
    ORDERS_EVENTS,
    RECIPES_SAVED,
)
from relay_platform.broker import make_broker
from relay_platform.errors import TransientError
from relay_platform.settings import KafkaSettings
from relay_platform.telemetry import current_traceparent
from relay_platform.tenants import TenantsConfig

OMS_TOPIC = "oms.acme.orders.v1"


@dataclass
class Harness:
    """The service's router on an in-memory broker, with what it published to the topics tests look at.

    Kafka hands a published trigger to its consumer later; the in-memory broker would run that consumer inline,
    inside the publishing handler's still-open transaction, where SQLite makes it wait for its own write lock. So
    triggers are held in ``triggers`` until ``deliver_triggers()``, as the broker would hold them.
    """

    send: Callable[..., Awaitable[Any]]
    store: SqlStore
    triggers: list[tuple[IntegrationsTriggered, bytes | None]] = field(default_factory=list)
    dead: list[MessageDeadLettered] = field(default_factory=list)
    _delivered: int = 0

    async def hold(self, message: Any, topic: str = "", **options: Any) -> Any:
        """``broker.publish`` as the handlers see it: triggers are held, anything else (a dead letter) goes out."""
        if topic == INTEGRATIONS_TRIGGERED:
            self.triggers.append((message, options.get("key")))
            return None
        return await self.send(message, topic, **options)

    async def publish(self, message: Any, topic: str, *, key: bytes | None = None) -> None:
        await self.send(message, topic, key=key)

    async def deliver_triggers(self) -> None:
        for trigger, key in self.triggers[self._delivered :]:
            await self.send(trigger, INTEGRATIONS_TRIGGERED, key=key)
        self._delivered = len(self.triggers)

    async def order(self, tenant: str, order_id: str) -> OrderView | None:
        page = await service.find_orders(self.store, tenant, "orderId", order_id)
        return page.orders[0] if page.orders else None


@pytest.fixture
async def harness(tmp_path: Path, tenants: TenantsConfig, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    settings = Settings(kafka=KafkaSettings(transient_backoff_s=0), tenants_file=TENANTS_FILE)
    oms_topics = tenants.oms_topics()
    assert OMS_TOPIC in oms_topics
    broker = make_broker(
        settings.kafka, service=SERVICE, tracer_provider=None, topic_models=dict.fromkeys(oms_topics, OmsOrderEvent)
    )
    broker.include_router(handlers.build_router(settings, oms_topics))
    store = SqlStore.open(f"sqlite+aiosqlite:///{tmp_path}/association-store.db")
    await store.migrate()
    harness = Harness(send=broker.publish, store=store)

    @broker.subscriber(DELIVERIES_DEAD)
    async def dead_letters(letter: MessageDeadLettered) -> None:
        harness.dead.append(letter)

    async def hold_triggers(message: Any, topic: str = "", **options: Any) -> Any:
        return await harness.hold(message, topic, **options)

    try:
        async with TestKafkaBroker(broker):
            broker.context.set_global("ports", ServicePorts(store=store, tenants=tenants))
            # The handlers publish through the broker in the context; the test sends with ``harness.send``.
            monkeypatch.setattr(broker, "publish", hold_triggers)
            yield harness
    finally:
        await store.close()


async def test_an_order_event_on_orders_events_is_applied_and_fires_its_triggers(harness: Harness) -> None:
    order_id = unique("O")
    event = order_event("linked", order_id, [("ACME-1", "i1", 2)])
    await harness.publish(event, ORDERS_EVENTS, key=event.kafka_key)
    order = await harness.order("acme", order_id)
    assert order is not None
    assert (order.order.status, sorted(order.order.items)) == ("open", ["i1"])
    [(trigger, key)] = harness.triggers
    assert (trigger.tenant, trigger.reason, trigger.recipe_id, trigger.integration_ids) == (
        "acme",
        "order_linked",
        "ACME-1",
        ("orders-sftp",),
    )
    assert trigger.trigger_id == stable_id(event.event_id, "ACME-1", "i1")
    assert key == b"ACME-1"
    # Read back from integrations.triggered.v1: one pending delivery per integration, before any outcome.
    await harness.deliver_triggers()
    order = await harness.order("acme", order_id)
    assert order is not None
    assert [(d.integration_id, d.status) for d in order.deliveries] == [("orders-sftp", "pending")]


async def test_an_order_event_on_an_oms_topic_belongs_to_the_topics_tenant(harness: Harness) -> None:
    order_id = unique("O")
    payload = {
        "eventId": unique("ev"),
        "type": "created",
        "orderId": order_id,
        "orderNumber": "1001",
        "items": [{"recipeId": "ACME-2", "itemId": "i1", "itemQuantity": 1}],
        "occurredAt": "2026-11-01T12:00:00Z",
    }
    await harness.publish(payload, OMS_TOPIC, key=order_id.encode())
    assert await harness.order("acme", order_id) is not None
    assert [(t.tenant, t.reason, t.integration_ids) for t, _ in harness.triggers] == [
        ("acme", "order_created", ("orders-sftp", "orders-zapier"))
    ]


async def test_a_saved_recipe_is_stored_and_fires_the_raw_feed(harness: Harness) -> None:
    event = recipe_saved(unique("ACME"))
    await harness.publish(event, RECIPES_SAVED, key=event.recipe_id.encode())
    async with harness.store.transaction() as tx:
        assert await tx.load_recipe("acme", event.recipe_id) is not None
    [(trigger, key)] = harness.triggers
    assert (trigger.feed, trigger.reason) == ("recipe", "recipe_saved")
    assert trigger.integration_ids == ("raw-email", "raw-s3")
    assert key == event.recipe_id.encode()


async def test_a_delivery_outcome_is_recorded(harness: Harness) -> None:
    delivery_id = unique("d")
    outcome = delivery_attempted(
        delivery_id, recipe_id="ACME-1", order_id=None, attempt=1, status="succeeded", final=True
    )
    await harness.publish(outcome, DELIVERIES_OUTCOMES, key=delivery_id.encode())
    async with harness.store.transaction() as tx:
        record = await tx.load_delivery(delivery_id)
    assert record is not None
    assert (record.status, record.final, record.attempts) == ("succeeded", True, 1)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (ORDERS_EVENTS, {"eventId": "e1", "type": "linked"}, "invalid message"),
        (OMS_TOPIC, {"tenant": "globex", "eventId": "e1", "type": "cancelled", "orderId": "O1",
                     "orderNumber": "1", "occurredAt": "2026-11-01T12:00:00Z"}, "tenant of topic"),
        (RECIPES_SAVED, {"eventId": "e1", "tenant": "acme"}, "invalid message"),
        (INTEGRATIONS_TRIGGERED, {"triggerId": "t1"}, "invalid message"),
        (DELIVERIES_OUTCOMES, b"not json", "invalid message"),
    ],
)  # fmt: skip
async def test_an_invalid_message_is_dead_lettered_and_the_next_one_is_handled(
    harness: Harness, topic: str, payload: dict[str, object] | bytes, reason: str
) -> None:
    await harness.publish(payload, topic, key=b"bad")
    [letter] = harness.dead
    assert (letter.source_topic, letter.service) == (topic, SERVICE)
    assert reason in letter.reason
    event = recipe_saved(unique("ACME"))
    await harness.publish(event, RECIPES_SAVED, key=event.recipe_id.encode())
    assert [trigger.recipe_id for trigger, _ in harness.triggers] == [event.recipe_id]
    assert len(harness.dead) == 1


async def test_a_trigger_the_broker_refuses_commits_nothing_and_the_event_is_read_again(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = unique("O")
    event = order_event("linked", order_id, [("ACME-1", "i1", 1)])
    refusals = [KafkaConnectionError()]
    hold = harness.hold

    async def refuse_once(message: Any, topic: str = "", **options: Any) -> Any:
        if topic == INTEGRATIONS_TRIGGERED and refusals:
            raise refusals.pop()
        return await hold(message, topic, **options)

    monkeypatch.setattr(harness, "hold", refuse_once)
    with pytest.raises(TransientError):
        await harness.publish(event, ORDERS_EVENTS, key=event.kafka_key)
    assert await harness.order("acme", order_id) is None
    await harness.publish(event, ORDERS_EVENTS, key=event.kafka_key)  # the same record, read again
    assert await harness.order("acme", order_id) is not None
    assert [trigger.trigger_id for trigger, _ in harness.triggers] == [stable_id(event.event_id, "ACME-1", "i1")]


# --- issue 12: the order's original trace and when the event was accepted ----------------------------------------

ORIGINAL_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_a_new_order_keeps_the_trace_of_the_record_it_came_in(harness: Harness) -> None:
    order_id = unique("O")
    event = order_event("created", order_id, [("ACME-1", "i1", 1)], minutes=1)
    headers = {"traceparent": f"00-{ORIGINAL_TRACE}-00f067aa0ba902b7-01"}
    await harness.send(event, ORDERS_EVENTS, key=event.kafka_key, headers=headers)
    # A later event in another trace is not the order's original one.
    later = order_event("cancelled", order_id, minutes=2)
    other = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    await harness.send(later, ORDERS_EVENTS, key=later.kafka_key, headers=other)
    view = await harness.order("acme", order_id)
    assert view is not None
    assert view.order.status == "cancelled"
    assert view.order.trace_parent is not None
    # The consume span's trace is the record's (its span ID is the consumer's own when tracing records spans).
    assert view.order.trace_parent.split("-")[1] == ORIGINAL_TRACE


def test_outside_any_span_there_is_no_trace_to_keep() -> None:
    # Whatever tracer provider the process has: no current span is no trace (the order then keeps none).
    assert current_traceparent() is None


async def test_triggers_carry_the_broker_time_of_the_record_they_came_from(harness: Harness) -> None:
    event = order_event("linked", unique("O"), [("ACME-1", "i1", 1)])
    await harness.send(event, ORDERS_EVENTS, key=event.kafka_key, timestamp_ms=1_764_581_400_123)
    saved = recipe_saved(unique("ACME"))
    await harness.send(saved, RECIPES_SAVED, key=saved.recipe_id.encode(), timestamp_ms=1_764_581_401_000)
    assert [trigger.accepted_at for trigger, _ in harness.triggers] == [
        datetime(2025, 12, 1, 9, 30, 0, 123000, tzinfo=UTC),
        datetime(2025, 12, 1, 9, 30, 1, tzinfo=UTC),
    ]


async def test_a_record_without_a_timestamp_gives_no_acceptance_time(harness: Harness) -> None:
    event = order_event("linked", unique("O"), [("ACME-1", "i1", 1)])
    await harness.send(event, ORDERS_EVENTS, key=event.kafka_key, timestamp_ms=-1)  # Kafka's "no timestamp"
    [(trigger, _)] = harness.triggers
    assert trigger.accepted_at is None
