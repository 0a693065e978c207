"""The whole service on a real Tansu broker, over SQLite and PostgreSQL: events in, rows + triggers out, the
internal query API, and dead-lettering of malformed input. The app starts once per module and database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from association_store_factories import (
    TENANTS_FILE,
    at,
    delivery_attempted,
    eventually,
    order_event,
    recipe_saved,
    unique,
)
from faststream import TestApp
from pydantic import BaseModel, SecretStr, ValidationError

from relay_association_store.main import create_app
from relay_association_store.settings import Settings
from relay_contracts.internal_api import TRACEPARENT_PATTERN
from relay_contracts.messages import (
    DeliveryAttempted,
    IntegrationStateChanged,
    IntegrationsTriggered,
    MessageDeadLettered,
    OrderEventOccurred,
    order_key,
    stable_id,
)
from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    INTEGRATIONS_CONTROL,
    INTEGRATIONS_TRIGGERED,
    ORDERS_EVENTS,
    RECIPES_SAVED,
)
from relay_devservers.processes import free_port
from relay_platform.settings import KafkaSettings
from relay_testing.shared_secrets import ASSOCIATION_STORE_TOKEN

pytestmark = pytest.mark.integration


@dataclass
class TopicReader:
    """Reads whole topics from the beginning without a consumer group (no join delay); tests filter by IDs."""

    bootstrap: str
    topics: tuple[str, ...]
    records: dict[str, list[tuple[bytes | None, bytes]]] = field(default_factory=dict)
    _consumer: AIOKafkaConsumer | None = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await self._consumer.start()
        await self._consumer.topics()  # fetch metadata so partitions are known
        self._consumer.assign(
            [TopicPartition(t, p) for t in self.topics for p in self._consumer.partitions_for_topic(t) or ()]
        )
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        assert self._consumer is not None
        async for record in self._consumer:
            self.records.setdefault(record.topic, []).append((record.key, record.value))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    def triggers(self, *, order_id: str | None = None, recipe_id: str | None = None) -> list[IntegrationsTriggered]:
        found = []
        for key, value in self.records.get(INTEGRATIONS_TRIGGERED, []):
            try:
                trigger = IntegrationsTriggered.model_validate_json(value)
            except ValidationError:
                continue  # the malformed triggers a test sends on purpose
            if order_id is not None and (trigger.order is None or trigger.order.order_id != order_id):
                continue
            if recipe_id is not None and trigger.recipe_id != recipe_id:
                continue
            assert key == trigger.recipe_id.encode()
            found.append(trigger)
        return found

    def raw_triggers(self) -> list[bytes]:
        return [value for _, value in self.records.get(INTEGRATIONS_TRIGGERED, [])]

    def dead(self, key: bytes) -> list[MessageDeadLettered]:
        return [
            MessageDeadLettered.model_validate_json(value)
            for record_key, value in self.records.get(DELIVERIES_DEAD, [])
            if record_key == key
        ]


@dataclass
class Service:
    http: aiohttp.ClientSession
    reader: TopicReader
    producer: AIOKafkaProducer
    url: str = ""

    async def send(self, topic: str, message: BaseModel | bytes | dict[str, Any], *, key: bytes) -> None:
        if isinstance(message, BaseModel):
            value = message.model_dump_json().encode()
        elif isinstance(message, dict):
            value = json.dumps(message).encode()
        else:
            value = message
        await self.producer.send_and_wait(topic, value, key=key)

    async def send_order(self, *events: OrderEventOccurred) -> None:
        for event in events:
            await self.send(ORDERS_EVENTS, event, key=event.kafka_key)

    async def orders(self, **query: str) -> list[dict[str, Any]]:
        async with self.http.get("/internal/v1/orders", params=query) as response:
            assert response.status == 200, await response.text()
            body: dict[str, list[dict[str, Any]]] = await response.json()
            return body["orders"]

    async def wait_order(self, tenant: str, order_id: str, check: Any = bool, *, what: str) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        async def ready() -> bool:
            found[:] = await self.orders(tenant=tenant, orderId=order_id)
            return bool(found) and bool(check(found[0]))

        await eventually(ready, what=what)
        return found[0]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
async def svc(
    request: pytest.FixtureRequest, kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Service]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('app')}/association-store.db"
    else:
        url = request.getfixturevalue("postgres_url")
    port = free_port()
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
        database_url=url,
        http_port=port,
        api_token=SecretStr(ASSOCIATION_STORE_TOKEN),
        tenants_file=Path(TENANTS_FILE),
        # A fresh group per database: Tansu 0.6 can leave a rejoin of a just-emptied group hanging.
        consumer_group=f"association-store-{request.param}-{uuid.uuid4().hex[:8]}",
    )
    reader = TopicReader(kafka_bootstrap, (INTEGRATIONS_TRIGGERED, DELIVERIES_DEAD))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await reader.start()
    await producer.start()
    app = TestApp(create_app(settings))
    try:
        # Two members join one group on Tansu (~5 s per join round); a hang must fail fast, not at the timeout.
        try:
            async with asyncio.timeout(90):
                await app.__aenter__()
        except BaseException:
            with contextlib.suppress(Exception):
                await app.__aexit__(None, None, None)  # stop whatever did start
            raise
        try:
            async with aiohttp.ClientSession(
                f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {ASSOCIATION_STORE_TOKEN}"}
            ) as http:
                yield Service(http=http, reader=reader, producer=producer, url=f"http://127.0.0.1:{port}")
        finally:
            await app.__aexit__(None, None, None)
    finally:
        await producer.stop()
        await reader.stop()


def _ids(triggers: Iterable[IntegrationsTriggered]) -> list[tuple[str, str, tuple[str, ...]]]:
    return sorted((t.reason, t.recipe_id, t.integration_ids) for t in triggers)


async def test_order_events_store_rows_and_trigger_matching_integrations(svc: Service) -> None:
    order_id = unique("O")
    items = [("ACME-1", "i1", 2), ("ACME-2", "i2", 1)]
    created = order_event("created", order_id, minutes=2, order_number="1022")
    await svc.send_order(order_event("linked", order_id, items, minutes=1, order_number="1022"), created)
    await eventually(lambda: len(svc.reader.triggers(order_id=order_id)) == 4, what="four order triggers")
    assert _ids(svc.reader.triggers(order_id=order_id)) == [
        ("order_created", "ACME-1", ("orders-sftp", "orders-zapier")),
        ("order_created", "ACME-2", ("orders-sftp", "orders-zapier")),
        ("order_linked", "ACME-1", ("orders-sftp",)),
        ("order_linked", "ACME-2", ("orders-sftp",)),
    ]
    # The store reads its own triggers back: one pending delivery per (trigger, integration), before any outcome.
    order = await svc.wait_order("acme", order_id, lambda o: len(o["deliveries"]) == 6, what="six pending deliveries")
    # The order's original trace: null here unless a tracer provider is installed in this process (then it is the
    # first event's consume span, a root of its own); either way a traceparent or nothing.
    assert order["traceParent"] is None or re.fullmatch(TRACEPARENT_PATTERN, order["traceParent"])
    # The newest event applied (the console's "Updated"), in UTC with milliseconds.
    assert order["updatedAt"] == created.occurred_at.astimezone(UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )
    assert {key: value for key, value in order.items() if key not in ("deliveries", "traceParent", "updatedAt")} == {
        "orderId": order_id,
        "orderNumber": "1022",
        "status": "open",
        "items": [
            {"recipeId": "ACME-1", "itemId": "i1", "itemQuantity": 2},
            {"recipeId": "ACME-2", "itemId": "i2", "itemQuantity": 1},
        ],
    }
    assert sorted((d["recipeId"], d["integration"], d["trigger"]) for d in order["deliveries"]) == [
        ("ACME-1", "orders-sftp", "order_created"),
        ("ACME-1", "orders-sftp", "order_linked"),
        ("ACME-1", "orders-zapier", "order_created"),
        ("ACME-2", "orders-sftp", "order_created"),
        ("ACME-2", "orders-sftp", "order_linked"),
        ("ACME-2", "orders-zapier", "order_created"),
    ]
    assert {(d["status"], d["attempts"], d["lastError"]) for d in order["deliveries"]} == {("pending", 0, None)}


async def test_redelivered_and_resent_events_create_no_duplicates_and_reuse_the_trigger_id(svc: Service) -> None:
    order_id = unique("O")
    linked = order_event("linked", order_id, [("ACME-1", "i1", 1)], minutes=1)
    resent = order_event("linked", order_id, [("ACME-1", "i1", 1)], minutes=1)  # new event ID, same content
    marker = order_event("cancelled", order_id, minutes=9)  # same key: processed after the others
    await svc.send_order(linked, linked, resent, marker)
    await eventually(lambda: len(svc.reader.triggers(order_id=order_id)) >= 2, what="link + cancel triggers")
    triggers = svc.reader.triggers(order_id=order_id)
    assert _ids(triggers) == [
        ("order_cancelled", "ACME-1", ("orders-sftp",)),
        ("order_linked", "ACME-1", ("orders-sftp",)),
    ]
    order = await svc.wait_order("acme", order_id, lambda o: o["status"] == "cancelled", what="cancelled")
    assert order["items"] == [{"recipeId": "ACME-1", "itemId": "i1", "itemQuantity": 1}]


async def test_stale_occurred_at_does_not_overwrite_newer_state(svc: Service) -> None:
    order_id = unique("O")
    await svc.send_order(
        order_event("created", order_id, [("ACME-1", "i1", 3)], minutes=10),
        order_event("cancelled", order_id, minutes=20),
        order_event("updated", order_id, [("ACME-1", "i1", 99)], minutes=5),
        order_event("created", order_id, minutes=15),
        order_event("returned", order_id, minutes=30),  # marker, newest
    )
    order = await svc.wait_order("acme", order_id, lambda o: o["status"] == "returned", what="returned")
    assert order["items"] == [{"recipeId": "ACME-1", "itemId": "i1", "itemQuantity": 3}]
    await eventually(lambda: len(svc.reader.triggers(order_id=order_id)) == 3, what="three triggers")
    assert [t.reason for t in svc.reader.triggers(order_id=order_id)] == [
        "order_created",
        "order_cancelled",
        "order_returned",
    ]


async def test_saved_recipes_fire_the_raw_feed_with_the_temporary_filter(svc: Service) -> None:
    permanent, temporary, globex = unique("ACME"), unique("ACME"), unique("GLX")
    for event in (
        recipe_saved(permanent),
        recipe_saved(temporary, temporary=True),
        recipe_saved(globex, tenant="globex", temporary=True),
    ):
        await svc.send(RECIPES_SAVED, event, key=event.recipe_id.encode())
    await eventually(
        lambda: all(svc.reader.triggers(recipe_id=r) for r in (permanent, temporary, globex)), what="raw triggers"
    )
    assert svc.reader.triggers(recipe_id=permanent)[0].integration_ids == ("raw-email", "raw-s3")
    assert svc.reader.triggers(recipe_id=temporary)[0].integration_ids == ("raw-s3",)
    assert svc.reader.triggers(recipe_id=globex)[0].integration_ids == ("everything-email",)
    assert svc.reader.triggers(recipe_id=permanent)[0].recipe_key == f"recipes/acme/{permanent}.json"


async def test_personal_data_in_an_oms_event_is_dropped(svc: Service) -> None:
    order_id = unique("O")
    event = order_event("linked", order_id, [("ACME-3", "i1", 1)]).model_dump(mode="json")
    event["customerEmail"] = "jane.doe@example.com"
    event["items"][0]["shippingAddress"] = "1 Privet Drive"
    await svc.send(ORDERS_EVENTS, event, key=order_key("acme", order_id))
    await eventually(lambda: svc.reader.triggers(order_id=order_id), what="trigger")
    assert not [raw for raw in svc.reader.raw_triggers() if b"jane.doe" in raw or b"Privet" in raw]


async def test_delivery_outcomes_are_recorded_and_shown_by_the_internal_api(svc: Service) -> None:
    order_id, delivery = unique("O"), unique("d")
    await svc.send_order(order_event("linked", order_id, [("ACME-1", "i1", 1)]))
    for outcome in (
        delivery_attempted(
            delivery,
            recipe_id="ACME-1",
            order_id=order_id,
            attempt=1,
            status="retrying",
            final=False,
            error=("TimeoutError", "connect timed out"),
        ),
        delivery_attempted(
            delivery,
            recipe_id="ACME-1",
            order_id=order_id,
            attempt=2,
            status="succeeded",
            final=True,
            files=("1001_ID_x_R_ACME-1_Ticket.pdf",),
        ),
        delivery_attempted(
            delivery, recipe_id="ACME-1", order_id=order_id, attempt=1, status="retrying", final=False
        ),  # late and older: must not regress the final outcome
    ):
        await svc.send(DELIVERIES_OUTCOMES, outcome, key=delivery.encode())
    marker = unique("d")
    await svc.send(
        DELIVERIES_OUTCOMES,
        delivery_attempted(
            marker,
            recipe_id="ACME-1",
            order_id=order_id,
            attempt=1,
            status="succeeded",
            final=True,
            integration_id="orders-zapier",
        ),
        key=delivery.encode(),
    )
    # Three rows: the test's two outcomes, and the linked event's own delivery (pending: no outcome sent for it).
    order = await svc.wait_order("acme", order_id, lambda o: len(o["deliveries"]) == 3, what="three deliveries")
    assert sorted(d["status"] for d in order["deliveries"]) == ["pending", "succeeded", "succeeded"]
    [sftp] = [d for d in order["deliveries"] if d["integration"] == "orders-sftp" and d["status"] != "pending"]
    # The attempt timeline: each outcome once (the late, repeated attempt 1 adds nothing), in the order they ended.
    timeline = sftp.pop("attemptLog")
    assert [(a["attempt"], a["status"], a.get("errorClass"), a.get("error")) for a in timeline] == [
        (1, "retrying", "TimeoutError", "connect timed out"),
        (2, "succeeded", None, None),
    ]
    assert timeline[0]["at"] < timeline[1]["at"] == sftp.pop("updatedAt")
    assert sftp.pop("deliveryId") == delivery
    assert sftp == {
        "integration": "orders-sftp",
        "type": "sftp",
        "recipeId": "ACME-1",
        "trigger": "order_linked",
        "status": "succeeded",
        "attempts": 2,
        "lastError": "TimeoutError: connect timed out",
        "files": ["1001_ID_x_R_ACME-1_Ticket.pdf"],
        "held": False,  # final: never held, whatever the integration's state
        "heldCause": None,
    }


async def test_internal_api_is_strictly_scoped_to_the_tenant(svc: Service) -> None:
    order_id, number, recipe = unique("O"), unique("N"), unique("ACME")
    await svc.send_order(
        order_event("linked", order_id, [(recipe, "i1", 1)], order_number=number),
        order_event("linked", order_id, [("GLX-8", "g1", 4)], order_number=number, tenant="globex"),
    )
    acme = await svc.wait_order("acme", order_id, what="acme order")
    globex = await svc.wait_order("globex", order_id, what="globex order")
    assert [i["recipeId"] for i in acme["items"]] == [recipe]
    assert [i["recipeId"] for i in globex["items"]] == ["GLX-8"]
    assert [o["orderId"] for o in await svc.orders(tenant="acme", orderNumber=number)] == [order_id]
    assert [o["orderId"] for o in await svc.orders(tenant="acme", recipeId=recipe)] == [order_id]
    assert await svc.orders(tenant="globex", recipeId=recipe) == []
    assert await svc.orders(tenant="other", orderId=order_id) == []


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"orderId": "x"},
        {"tenant": "acme"},
        {"tenant": "acme", "orderId": "x", "recipeId": "y"},
        {"tenant": "acme", "orderId": ""},
    ],
)
async def test_bad_query_is_a_400_with_a_json_reason(svc: Service, query: dict[str, str]) -> None:
    async with svc.http.get("/internal/v1/orders", params=query) as response:
        assert response.status == 400
        body = await response.json()
        assert set(body) == {"error", "message"}


async def test_health_and_readiness(svc: Service) -> None:
    for path in ("/healthz", "/readyz"):
        async with svc.http.get(path) as response:
            assert response.status == 200


async def test_the_internal_api_answers_only_the_configured_token_and_probes_stay_open(svc: Service) -> None:
    async with aiohttp.ClientSession(svc.url) as anonymous:
        for headers in ({}, {"Authorization": "Bearer " + "x" * 43}, {"Authorization": ASSOCIATION_STORE_TOKEN}):
            for path in ("/internal/v1/orders", "/internal/v1/audit"):
                async with anonymous.get(path, params={"tenant": "acme", "orderId": "O1"}, headers=headers) as response:
                    assert response.status == 401
                    assert (await response.json())["error"] == "unauthorized"
        for path in ("/healthz", "/readyz"):
            async with anonymous.get(path) as response:
                assert response.status == 200
    assert await svc.orders(tenant="acme", orderId="no-such-order") == []


async def test_malformed_messages_on_each_topic_are_dead_lettered_and_the_next_is_processed(svc: Service) -> None:
    order_id, recipe_id, delivery = unique("O"), unique("ACME"), unique("d")
    keys = {
        ORDERS_EVENTS: order_key("acme", order_id),
        RECIPES_SAVED: recipe_id.encode(),
        INTEGRATIONS_TRIGGERED: unique("ACME").encode(),
        DELIVERIES_OUTCOMES: delivery.encode(),
    }
    for topic, key in keys.items():
        await svc.send(topic, b"{not json", key=key)
        await svc.send(topic, {"eventId": "x", "tenant": "acme"}, key=key)
    unknown_tenant = order_event("linked", order_id, [("ZZZ-1", "i1", 1)], tenant="nobody")
    await svc.send(ORDERS_EVENTS, unknown_tenant, key=keys[ORDERS_EVENTS])
    await svc.send_order(order_event("linked", order_id, [("ACME-1", "i1", 1)]))
    await svc.send(RECIPES_SAVED, recipe_saved(recipe_id), key=keys[RECIPES_SAVED])
    await svc.send(
        DELIVERIES_OUTCOMES,
        delivery_attempted(delivery, recipe_id="ACME-1", order_id=order_id, attempt=1, status="succeeded", final=True),
        key=keys[DELIVERIES_OUTCOMES],
    )
    await svc.wait_order(
        "acme",
        order_id,
        lambda o: any(d["status"] == "succeeded" for d in o["deliveries"]),
        what="next outcome processed",
    )
    await eventually(lambda: svc.reader.triggers(order_id=order_id), what="next order event processed")
    await eventually(lambda: svc.reader.triggers(recipe_id=recipe_id), what="next recipe processed")
    await eventually(lambda: len(svc.reader.dead(keys[ORDERS_EVENTS])) == 3, what="three dead order events")
    for topic, key in keys.items():

        def two_dead(key: bytes = key) -> bool:
            return len(svc.reader.dead(key)) >= 2

        await eventually(two_dead, what=f"dead letters from {topic}")
        dead = svc.reader.dead(key)
        assert {d.source_topic for d in dead} == {topic}
        assert {d.service for d in dead} == {"association-store"}
        assert any(d.reason.startswith("invalid message") for d in dead)
    reasons = [d.reason for d in svc.reader.dead(keys[ORDERS_EVENTS])]
    assert "unknown tenant 'nobody'" in reasons


async def audit(svc: Service, tenant: str, **query: str) -> dict[str, Any]:
    async with svc.http.get("/internal/v1/audit", params={"tenant": tenant, **query}) as response:
        assert response.status == 200, await response.text()
        body: dict[str, Any] = await response.json()
        return body


async def test_a_trigger_yields_pending_deliveries_until_their_outcomes_arrive(svc: Service) -> None:
    order_id = unique("O")
    await svc.send_order(order_event("linked", order_id, [("ACME-1", "i1", 1)], order_number="A-1"))
    await eventually(lambda: svc.reader.triggers(order_id=order_id), what="the order trigger")
    [trigger] = svc.reader.triggers(order_id=order_id)
    delivery_id = stable_id(trigger.trigger_id, "orders-sftp")  # the ID the bundle-builder will request
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        found[:] = [d for d in (await audit(svc, "acme", olderThanS="0"))["deliveries"] if d["orderId"] == order_id]
        return bool(found)

    await eventually(listed, what="the pending delivery in the audit")
    [entry] = found
    assert (entry["deliveryId"], entry["status"], entry["attempts"], entry["orderNumber"]) == (
        delivery_id,
        "pending",
        0,
        "A-1",
    )
    assert entry["reason"].startswith("no outcome yet since ")
    assert delivery_id not in {d["deliveryId"] for d in (await audit(svc, "globex", olderThanS="0"))["deliveries"]}
    assert all(d["orderId"] != order_id for d in (await audit(svc, "acme"))["deliveries"]), "not 15 minutes old"
    order = await svc.wait_order("acme", order_id, lambda o: bool(o["deliveries"]), what="pending in the lookup")
    assert [(d["integration"], d["status"]) for d in order["deliveries"]] == [("orders-sftp", "pending")]

    await svc.send(
        DELIVERIES_OUTCOMES,
        delivery_attempted(
            delivery_id,
            recipe_id="ACME-1",
            order_id=order_id,
            attempt=1,
            status="succeeded",
            final=True,
            trigger_id=trigger.trigger_id,
        ),
        key=delivery_id.encode(),
    )
    order = await svc.wait_order(
        "acme", order_id, lambda o: o["deliveries"][0]["status"] == "succeeded", what="the outcome replacing pending"
    )
    assert len(order["deliveries"]) == 1
    remaining = (await audit(svc, "acme", olderThanS="0"))["deliveries"]
    assert all(d["orderId"] != order_id for d in remaining)


async def test_a_manual_recipe_trigger_is_audited_without_an_order(svc: Service) -> None:
    recipe_id = unique("ACME")
    manual = IntegrationsTriggered(
        trigger_id=str(uuid.uuid4()),
        tenant="acme",
        recipe_id=recipe_id,
        recipe_key=f"recipes/acme/{recipe_id}.json",
        feed="recipe",
        reason="manual",
        integration_ids=("raw-s3", "not-configured"),
        occurred_at=at(0),
    )
    await svc.send(INTEGRATIONS_TRIGGERED, manual, key=recipe_id.encode())
    found: list[dict[str, Any]] = []

    async def listed() -> bool:
        found[:] = [d for d in (await audit(svc, "acme", olderThanS="0"))["deliveries"] if d["recipeId"] == recipe_id]
        return bool(found)

    await eventually(listed, what="the manual trigger's pending delivery")
    [entry] = found
    assert (entry["integration"], entry["type"], entry["trigger"], entry["orderId"]) == ("raw-s3", "s3", "manual", None)
    assert entry["deliveryId"] == stable_id(manual.trigger_id, "raw-s3")


async def test_an_oms_topic_speaks_for_its_own_tenant_only(svc: Service) -> None:
    """acme's OMS publishes to acme's topic: the tenant is the topic's. A payload claiming globex, or linking a
    globex recipe, is dead-lettered (PII-free) and globex's orders never change."""
    own, spoofed, foreign_recipe = unique("O"), unique("O"), unique("O")
    base = {"type": "linked", "orderNumber": "1022", "occurredAt": "2026-11-01T12:00:00Z"}

    def event(order_id: str, recipe_id: str, **extra: object) -> dict[str, Any]:
        items = [{"recipeId": recipe_id, "itemId": "i1", "itemQuantity": 1}]
        return {**base, "eventId": unique("e"), "orderId": order_id, "items": items, **extra}

    # No tenant in the payload: the topic says acme. Customer fields are dropped on decode and never stored.
    await svc.send("oms.acme.orders.v1", event(own, "ACME-1", customerEmail="jane@example.com"), key=own.encode())
    await svc.send("oms.acme.orders.v1", event(spoofed, "GLX-1", tenant="globex"), key=spoofed.encode())
    await svc.send("oms.acme.orders.v1", event(foreign_recipe, "GLX-1"), key=foreign_recipe.encode())
    order = await svc.wait_order("acme", own, what="the OMS's own order")
    assert order["items"] == [{"recipeId": "ACME-1", "itemId": "i1", "itemQuantity": 1}]
    assert "jane" not in json.dumps(order)
    await eventually(lambda: len(svc.reader.dead(spoofed.encode())) == 1, what="the spoofed event dead-lettered")
    await eventually(lambda: len(svc.reader.dead(foreign_recipe.encode())) == 1, what="the foreign recipe refused")
    spoof = svc.reader.dead(spoofed.encode())[0]
    assert spoof.source_topic == "oms.acme.orders.v1"
    assert "not 'acme'" in spoof.reason
    assert "items/0/recipeId" in svc.reader.dead(foreign_recipe.encode())[0].reason
    for order_id in (spoofed, foreign_recipe):
        assert await svc.orders(tenant="globex", orderId=order_id) == []
        assert await svc.orders(tenant="acme", orderId=order_id) == []
        assert svc.reader.triggers(order_id=order_id) == []


async def test_the_order_lookup_pages_by_order_id(svc: Service) -> None:
    recipe_id = unique("ACME")
    order_ids = sorted(unique("P") for _ in range(3))
    await svc.send_order(*(order_event("linked", o, [(recipe_id, "i1", 1)]) for o in order_ids))
    await eventually(lambda: len(svc.reader.triggers(recipe_id=recipe_id)) == 3, what="three linked orders")
    async with svc.http.get("/internal/v1/orders", params={"tenant": "acme", "recipeId": recipe_id}) as response:
        first = await response.json()
    assert [o["orderId"] for o in first["orders"]] == order_ids
    assert first["next"] is None
    params = {"tenant": "acme", "recipeId": recipe_id, "after": order_ids[0]}
    async with svc.http.get("/internal/v1/orders", params=params) as response:
        assert [o["orderId"] for o in (await response.json())["orders"]] == order_ids[1:]


# --- the console's reads: recent orders, delivery lists, per-integration counts ---------------------------------


async def _get(svc: Service, path: str, **query: str) -> tuple[int, dict[str, Any]]:
    async with svc.http.get(path, params=query) as response:
        return response.status, await response.json()


async def test_recent_orders_come_newest_first_a_page_at_a_time_and_only_the_tenants(svc: Service) -> None:
    # Far in the future, so hardly any other order is newer than these three (the database may outlive a run).
    future = 60 * 24 * 365 * 20
    ids = [unique("R") for _ in range(3)]
    globex_order = unique("R")
    await svc.send_order(
        *(order_event("linked", order_id, [("ACME-1", "i1", 1)], minutes=future + i) for i, order_id in enumerate(ids)),
        order_event("linked", globex_order, [("GLX-8", "g1", 1)], minutes=future + 10, tenant="globex"),
    )
    for order_id in ids:
        await svc.wait_order("acme", order_id, what=f"order {order_id}")
    await svc.wait_order("globex", globex_order, what="the other tenant's order")

    listed: list[dict[str, Any]] = []
    status, page = await _get(svc, "/internal/v1/orders/recent", tenant="acme", limit="2")
    assert status == 200, page
    assert len(page["orders"]) == 2
    listed += page["orders"]
    while page["next"] and not set(ids) <= {o["orderId"] for o in listed}:
        status, page = await _get(svc, "/internal/v1/orders/recent", tenant="acme", limit="100", after=page["next"])
        assert status == 200, page
        listed += page["orders"]
    order_ids = [o["orderId"] for o in listed]
    # Every page continues where the previous stopped: newest event first, then order ID descending, no repeats.
    assert len(order_ids) == len(set(order_ids))
    keys = [(o["updatedAt"], o["orderId"]) for o in listed]
    assert keys == sorted(keys, reverse=True)
    assert order_ids.index(ids[2]) < order_ids.index(ids[1]) < order_ids.index(ids[0])
    assert globex_order not in order_ids
    status, globex = await _get(svc, "/internal/v1/orders/recent", tenant="globex", limit="100")
    assert globex_order in [o["orderId"] for o in globex["orders"]]
    assert not set(ids) & {o["orderId"] for o in globex["orders"]}
    status, nobody = await _get(svc, "/internal/v1/orders/recent", tenant="no-such-tenant")
    assert (status, nobody["orders"], nobody["next"]) == (200, [], None)


@pytest.mark.parametrize(
    "query",
    [
        {"limit": "0"},
        {"limit": "101"},
        {"limit": "\uff11\uff10"},  # fullwidth digits
        {"limit": "+5"},
        {"after": "not-a-cursor"},
        {"after": "x" * 513},
        {"after": "W10"},  # base64url of "[]": the right encoding, the wrong shape
        {"after": "WyIyMDI2LTEyLTAxVDEwOjAwOjAwIiwiYSJd"},  # a naive instant
        {"after": "\u202e\u200b"},
    ],
)
async def test_recent_orders_refuse_a_bad_limit_or_cursor_naming_it(svc: Service, query: dict[str, str]) -> None:
    status, body = await _get(svc, "/internal/v1/orders/recent", tenant="acme", **query)
    assert status == 400
    assert f"'{next(iter(query))}'" in body["message"]


async def test_delivery_lists_filter_by_status_integration_and_window_newest_first(svc: Service) -> None:
    integration, now = unique("hook"), datetime.now(UTC)

    def outcome(status: str, final: bool, seconds_ago: int, tenant: str = "acme") -> DeliveryAttempted:
        made = delivery_attempted(
            unique("d"),
            recipe_id="ACME-1" if tenant == "acme" else "GLX-8",
            order_id=unique("O"),
            attempt=3 if final else 1,
            status=status,
            final=final,
            tenant=tenant,
            integration_id=integration,
            error=("ConnectionRefusedError", "hook refused") if status != "succeeded" else None,
        )
        return made.model_copy(update={"occurred_at": now - timedelta(seconds=seconds_ago)})

    older_failure, retrying, success = (
        outcome("failed", True, 300),
        outcome("retrying", False, 200),
        outcome("succeeded", True, 150),
    )
    newer_failure, other_tenant = outcome("failed", True, 100), outcome("failed", True, 50, tenant="globex")
    for sent in (older_failure, retrying, success, newer_failure, other_tenant):
        await svc.send(DELIVERIES_OUTCOMES, sent, key=sent.delivery_id.encode())

    async def failed(**query: str) -> list[str]:
        status, body = await _get(
            svc, "/internal/v1/deliveries", tenant="acme", status="failed", integration=integration, **query
        )
        assert status == 200, body
        return [d["deliveryId"] for d in body["deliveries"]]

    async def ids_of(tenant: str, status: str) -> list[str]:
        code, body = await _get(svc, "/internal/v1/deliveries", tenant=tenant, status=status, integration=integration)
        assert code == 200, body
        return [d["deliveryId"] for d in body["deliveries"]]

    async def all_five_recorded() -> bool:
        # Keyed by delivery ID, the five outcomes sit on different partitions: each is read in its own time.
        return [len(await ids_of("acme", s)) for s in ("failed", "retrying", "succeeded")] == [2, 1, 1] and (
            len(await ids_of("globex", "failed")) == 1
        )

    await eventually(all_five_recorded, what="the five outcomes recorded")
    assert await failed() == [newer_failure.delivery_id, older_failure.delivery_id]
    status, page = await _get(
        svc, "/internal/v1/deliveries", tenant="acme", status="failed", integration=integration, limit="1"
    )
    assert [d["deliveryId"] for d in page["deliveries"]] == [newer_failure.delivery_id]
    listed = page["deliveries"][0]
    assert (listed["final"], listed["attempts"], listed["lastError"]) == (
        True,
        3,
        "ConnectionRefusedError: hook refused",
    )
    assert await failed(after=page["next"]) == [older_failure.delivery_id]
    since = (now - timedelta(seconds=250)).isoformat()
    assert await failed(since=since) == [newer_failure.delivery_id]
    assert await failed(until=since) == [older_failure.delivery_id]
    status, retries = await _get(
        svc, "/internal/v1/deliveries", tenant="acme", status="retrying", integration=integration
    )
    assert [d["deliveryId"] for d in retries["deliveries"]] == [retrying.delivery_id]
    status, globex = await _get(
        svc, "/internal/v1/deliveries", tenant="globex", status="failed", integration=integration
    )
    assert [d["deliveryId"] for d in globex["deliveries"]] == [other_tenant.delivery_id]

    status, stats = await _get(svc, "/internal/v1/integrations/stats", tenant="acme", sinceS="3600")
    assert status == 200, stats
    [counts] = [c for c in stats["integrations"] if c["integration"] == integration]
    assert (counts["succeeded"], counts["failed"], counts["retrying"], counts["pending"]) == (1, 2, 1, 0)
    assert counts["lastFailureAt"] > counts["lastSuccessAt"]
    status, recent = await _get(svc, "/internal/v1/integrations/stats", tenant="acme", sinceS="120")
    [counts] = [c for c in recent["integrations"] if c["integration"] == integration]
    assert (counts["succeeded"], counts["failed"], counts["retrying"]) == (0, 1, 0)


@pytest.mark.parametrize(
    ("path", "query", "named"),
    [
        ("/internal/v1/deliveries", {}, "status"),
        ("/internal/v1/deliveries", {"status": "dead"}, "status"),
        ("/internal/v1/deliveries", {"status": "failed", "since": "2026-12-01T10:00:00"}, "since"),
        ("/internal/v1/deliveries", {"status": "failed", "until": "2026-13-45T10:00:00Z"}, "until"),
        ("/internal/v1/deliveries", {"status": "failed", "since": "9" * 80}, "since"),
        (
            "/internal/v1/deliveries",
            {"status": "failed", "since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"},
            "since",
        ),
        ("/internal/v1/deliveries", {"status": "failed", "integration": "x" * 129}, "integration"),
        ("/internal/v1/integrations/stats", {"sinceS": "0"}, "sinceS"),
        ("/internal/v1/integrations/stats", {"sinceS": "٣"}, "sinceS"),
        ("/internal/v1/integrations/stats", {"sinceS": str(91 * 24 * 3600)}, "sinceS"),
    ],
)
async def test_delivery_lists_and_counts_refuse_bad_parameters_naming_them(
    svc: Service, path: str, query: dict[str, str], named: str
) -> None:
    status, body = await _get(svc, path, tenant="acme", **query)
    assert status == 400
    assert f"'{named}'" in body["message"]


async def test_the_console_reads_need_the_token_and_a_tenant(svc: Service) -> None:
    async with aiohttp.ClientSession(svc.url) as anonymous:
        for path in ("/internal/v1/orders/recent", "/internal/v1/deliveries", "/internal/v1/integrations/stats"):
            async with anonymous.get(path, params={"tenant": "acme", "status": "failed"}) as response:
                assert response.status == 401
            status, body = await _get(svc, path, status="failed")
            assert status == 400
            assert "'tenant'" in body["message"]


async def test_a_replayed_failure_leaves_the_replay_selection_and_the_count(svc: Service) -> None:
    # The failure, as the retry service ends it, on an integration of the test's own (the list filters by it).
    integration = unique("hook")
    failure = delivery_attempted(
        unique("d"),
        recipe_id="ACME-1",
        order_id=unique("O"),
        attempt=3,
        status="failed",
        final=True,
        integration_id=integration,
        error=("ConnectionRefusedError", "refused"),
    )
    assert failure.order is not None
    line = failure.order.model_copy(update={"item_id": "i1"})
    failure = failure.model_copy(update={"occurred_at": datetime.now(UTC), "order": line})
    await svc.send(DELIVERIES_OUTCOMES, failure, key=failure.delivery_id.encode())
    query = {"tenant": "acme", "status": "failed", "integration": integration, "replayed": "false", "withTotal": "true"}

    async def selection() -> dict[str, Any]:
        status, body = await _get(svc, "/internal/v1/deliveries", **query)
        assert status == 200, body
        return body

    async def listed() -> bool:
        return bool((await selection())["total"] == 1)

    await eventually(listed, what="the failure in the replay's selection")
    [row] = (await selection())["deliveries"]
    assert (row["deliveryId"], row["replayedBy"], row["itemId"]) == (failure.delivery_id, None, "i1")

    replay = IntegrationsTriggered(
        trigger_id=stable_id("replay", failure.delivery_id),
        tenant="acme",
        recipe_id="ACME-1",
        recipe_key="acme/recipes/ACME-1.json",
        feed="order",
        reason="manual",
        order=failure.order,
        integration_ids=("orders-sftp",),
        occurred_at=datetime.now(UTC),
        replay_of=failure.delivery_id,
    )
    await svc.send(INTEGRATIONS_TRIGGERED, replay, key=b"ACME-1")

    async def left_the_selection() -> bool:
        return bool((await selection())["total"] == 0)

    await eventually(left_the_selection, what="the replayed failure out of the selection")
    status, every = await _get(svc, "/internal/v1/deliveries", tenant="acme", status="failed", integration=integration)
    [row] = every["deliveries"]
    assert row["replayedBy"] == replay.trigger_id
    assert every["total"] is None  # only counted when asked
    status, body = await _get(svc, "/internal/v1/deliveries", tenant="acme", status="failed", replayed="maybe")
    assert status == 400
    assert "'replayed'" in body["message"]


async def test_pauses_and_resumes_show_in_the_stats_newest_change_first_and_per_tenant(svc: Service) -> None:
    integration = unique("hook")

    def change(tenant: str, state: str, minutes: float, reason: str | None = None) -> IntegrationStateChanged:
        return IntegrationStateChanged.model_validate(
            {
                "eventId": unique("e"),
                "tenant": tenant,
                "integrationId": integration,
                "state": state,
                "reason": reason,
                "changedBy": "admin",
                "changedAt": at(minutes),
            }
        )

    async def states(tenant: str) -> dict[str, dict[str, Any]]:
        status, stats = await _get(svc, "/internal/v1/integrations/stats", tenant=tenant)
        assert status == 200, stats
        return {entry["integration"]: entry for entry in stats["states"]}

    paused, stale, globex = (
        change("acme", "paused", 2, "hook down"),
        change("acme", "active", 1),
        change("globex", "paused", 3),
    )
    for sent in (paused, stale, globex):
        await svc.send(INTEGRATIONS_CONTROL, sent, key=sent.kafka_key)

    async def both_recorded() -> bool:
        return integration in await states("acme") and integration in await states("globex")

    await eventually(both_recorded, what="the acme and globex states")
    # The stale resume (older changedAt, read after the pause) is ignored; globex's row is its own.
    assert (await states("acme"))[integration] == {
        "integration": integration,
        "state": "paused",
        "changedAt": paused.changed_at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "reason": "hook down",
        "cause": "operator",
        "changedBy": "admin",
    }
    # The destination-health rules' pause keeps its cause and who (a service, never a key).
    unhealthy = change("acme", "paused", 3.5, "5 consecutive failed attempts").model_copy(
        update={"cause": "unhealthy", "changed_by": "destination-health"}
    )
    await svc.send(INTEGRATIONS_CONTROL, unhealthy, key=unhealthy.kafka_key)

    async def acme_unhealthy() -> bool:
        return bool((await states("acme"))[integration]["cause"] == "unhealthy")

    await eventually(acme_unhealthy, what="the unhealthy pause")
    shown = (await states("acme"))[integration]
    assert (shown["state"], shown["changedBy"], shown["reason"]) == (
        "paused",
        "destination-health",
        "5 consecutive failed attempts",
    )
    resumed = change("acme", "active", 4)
    await svc.send(INTEGRATIONS_CONTROL, resumed, key=resumed.kafka_key)

    async def acme_resumed() -> bool:
        return bool((await states("acme"))[integration]["state"] == "active")

    await eventually(acme_resumed, what="the resume")
    assert (await states("acme"))[integration]["reason"] is None
    assert (await states("acme"))[integration]["cause"] == "operator"
    assert (await states("globex"))[integration]["state"] == "paused"
