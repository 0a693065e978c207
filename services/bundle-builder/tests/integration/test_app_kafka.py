"""The whole service on the real Tansu broker: trigger in, one DeliverBundle per listed integration out."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdf
import pytest
from faststream import FastStream, TestApp
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.middlewares import AckPolicy

from relay_bundle_builder.main import create_app
from relay_bundle_builder.settings import AssetFetchSettings, Settings
from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationsTriggered,
    OrderLine,
    TriggerReason,
    recipe_object_key,
    stable_id,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES, INTEGRATION_TYPES, INTEGRATIONS_TRIGGERED, deliveries_requested
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings

FailingRecipe = Callable[[str, str], dict[str, Any]]

pytestmark = pytest.mark.integration
TENANTS = Path(__file__).parent.parent / "tenants.yaml"


@dataclass
class Running:
    app: FastStream
    store: LocalDirectoryStore
    producer: KafkaBroker
    requests: list[tuple[str, DeliverBundle]] = field(default_factory=list)
    outcomes: list[DeliveryAttempted] = field(default_factory=list)


async def wait_for(condition: Callable[[], bool], timeout: float = 45.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def running(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    objects = tmp_path_factory.mktemp("objects")
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap, transient_backoff_s=0.1),
        tenants_file=TENANTS,
        object_store=ObjectStoreSettings(url=f"file://{objects}"),
        assets=AssetFetchSettings(timeout_s=1.0, retries=1, retry_wait_s=0.01, max_bytes=256 * 1024),
    )
    app = create_app(settings)
    collector = KafkaBroker(kafka_bootstrap)
    state = Running(app=app, store=LocalDirectoryStore(objects), producer=collector)
    topics = [deliveries_requested(kind) for kind in INTEGRATION_TYPES]

    # One consumer group over every output topic: each group join on Tansu costs seconds.
    @collector.subscriber(
        *topics,
        DELIVERIES_OUTCOMES,
        group_id=f"bb-test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.ACK,
    )
    async def collect(body: dict[str, Any], message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)  # not a batch subscriber
        topic = record.topic
        if topic == DELIVERIES_OUTCOMES:
            state.outcomes.append(DeliveryAttempted.model_validate(body))
        else:
            state.requests.append((topic, DeliverBundle.model_validate(body)))

    async with collector, TestApp(app):
        await collector.start()
        yield state


ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2)
EVERY_INTEGRATION = ("factory-mail", "archive", "zap", "factory-sftp")


def trigger(
    recipe_id: str,
    integration_ids: tuple[str, ...],
    reason: TriggerReason = "order_created",
    order: OrderLine = ORDER,
) -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id=uuid.uuid4().hex,
        tenant="bb",
        recipe_id=recipe_id,
        recipe_key=recipe_object_key("bb", recipe_id),
        feed="order",
        reason=reason,
        order=order,
        integration_ids=integration_ids,
        occurred_at=datetime.now(UTC),
    )


async def requests_for(running: Running, event: IntegrationsTriggered, count: int) -> list[DeliverBundle]:
    """The ``count`` delivery requests of ``event``, by integration ID, once they are all there."""

    def mine() -> list[DeliverBundle]:
        return [m for _, m in running.requests if m.trigger_id == event.trigger_id]

    await wait_for(lambda: len(mine()) >= count)
    return sorted(mine(), key=lambda m: m.integration_id)


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


async def test_order_trigger_requests_one_delivery_per_listed_integration(running: Running, make_recipe: Any) -> None:
    recipe_id = f"999-{uuid.uuid4().hex[:12]}"
    await running.store.put(
        recipe_object_key("bb", recipe_id), json.dumps(make_recipe(recipe_id)).encode(), content_type="application/json"
    )
    event = trigger(recipe_id, ("factory-mail", "zap", "unknown-integration"))
    await running.producer.publish(event, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())

    def mine() -> list[tuple[str, DeliverBundle]]:
        return [(t, m) for t, m in running.requests if m.trigger_id == event.trigger_id]

    await wait_for(lambda: len(mine()) >= 2)
    requests = sorted(mine(), key=lambda pair: pair[1].integration_id)
    assert [(t, m.integration_id, m.integration_type) for t, m in requests] == [
        (deliveries_requested("email"), "factory-mail", "email"),
        (deliveries_requested("zapier"), "zap", "zapier"),
    ]
    for _, message in requests:
        assert message.delivery_id == stable_id(event.trigger_id, message.integration_id)
        assert message.order == event.order
        assert message.files[1].name == f"1022_ID_6182665224482_R_{recipe_id}_Ticket.pdf"
        for meta in message.files:
            assert hashlib.sha256(await running.store.get(meta.key)).hexdigest() == meta.sha256
    assert not [o for o in running.outcomes if o.trigger_id == event.trigger_id]


async def test_missing_asset_publishes_final_failure_per_integration(
    running: Running, make_recipe: Any, asset_server: Any
) -> None:
    recipe_id = f"999-{uuid.uuid4().hex[:12]}"
    recipe = make_recipe(recipe_id, extra_views=[{"code": "side", "production": asset_server.url("/missing.png")}])
    await running.store.put(
        recipe_object_key("bb", recipe_id), json.dumps(recipe).encode(), content_type="application/json"
    )
    event = trigger(recipe_id, ("factory-mail", "archive"))
    await running.producer.publish(event, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())

    def mine() -> list[DeliveryAttempted]:
        return [o for o in running.outcomes if o.trigger_id == event.trigger_id]

    await wait_for(lambda: len(mine()) >= 2)
    outcomes = sorted(mine(), key=lambda o: o.integration_id)
    assert [(o.integration_id, o.integration_type) for o in outcomes] == [("archive", "s3"), ("factory-mail", "email")]
    for outcome in outcomes:
        assert (outcome.status, outcome.final, outcome.attempt) == ("failed", True, 1)
        assert outcome.error_class == "AssetError"
        assert outcome.error_message is not None
        assert "view side production file: not found (HTTP 404)" in outcome.error_message
        assert outcome.delivery_id == stable_id(event.trigger_id, outcome.integration_id)
    assert not [m for _, m in running.requests if m.trigger_id == event.trigger_id]


async def test_cancellation_delivers_the_cancellation_json_and_a_cancelled_ticket_without_fetching_assets(
    running: Running, asset_server: Any, make_failing_recipe: FailingRecipe
) -> None:
    recipe_id = f"999-{uuid.uuid4().hex[:12]}"
    tag = uuid.uuid4().hex
    recipe = make_failing_recipe(recipe_id, tag)
    await running.store.put(
        recipe_object_key("bb", recipe_id), json.dumps(recipe).encode(), content_type="application/json"
    )
    cancelled = ORDER.model_copy(update={"status": "cancelled"})
    event = trigger(recipe_id, EVERY_INTEGRATION, reason="order_cancelled", order=cancelled)
    await running.producer.publish(event, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())

    requests = await requests_for(running, event, len(EVERY_INTEGRATION))

    prefix = f"1022_ID_6182665224482_R_{recipe_id}_"
    assert [(m.integration_id, m.integration_type, m.reason) for m in requests] == [
        ("archive", "s3", "order_cancelled"),
        ("factory-mail", "email", "order_cancelled"),
        ("factory-sftp", "sftp", "order_cancelled"),
        ("zap", "zapier", "order_cancelled"),
    ]
    for message in requests:
        assert message.order == cancelled
        assert [(f.name, f.mime_type) for f in message.files] == [
            (f"{prefix}Cancellation.json", "application/json"),
            (f"{prefix}Ticket.pdf", "application/pdf"),
        ]
        assert message.files == requests[0].files
    notice, ticket = requests[0].files
    assert notice.key == (
        f"bundles/bb/orders/6182665224482/14523/{recipe_id}/events/cancelled/{notice.sha256[:16]}/{notice.name}"
    )
    assert json.loads(await running.store.get(notice.key)) == {
        "event": "order_cancelled",
        "orderId": "6182665224482",
        "orderNumber": "1022",
        "recipeId": recipe_id,
        "itemId": "14523",
        "itemQuantity": 2,
        "occurredAt": event.model_dump(mode="json")["occurredAt"],
    }
    ticket_bytes = await running.store.get(ticket.key)
    assert hashlib.sha256(ticket_bytes).hexdigest() == ticket.sha256
    text = pdf_text(ticket_bytes)
    assert "CANCELLED" in text
    assert recipe_id in text
    assert asset_server.fetched(f"/fail/{tag}") == 0
    assert not [o for o in running.outcomes if o.trigger_id == event.trigger_id]


@pytest.mark.parametrize(("reason", "stem"), [("order_refunded", "Refund"), ("order_returned", "Return")])
async def test_refund_and_return_deliver_an_event_only_bundle(
    running: Running, asset_server: Any, make_failing_recipe: FailingRecipe, reason: TriggerReason, stem: str
) -> None:
    recipe_id = f"999-{uuid.uuid4().hex[:12]}"
    tag = uuid.uuid4().hex
    recipe = make_failing_recipe(recipe_id, tag)
    await running.store.put(
        recipe_object_key("bb", recipe_id), json.dumps(recipe).encode(), content_type="application/json"
    )
    event = trigger(recipe_id, ("factory-mail", "zap"), reason=reason, order=ORDER.model_copy(update={"status": stem}))
    await running.producer.publish(event, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())

    requests = await requests_for(running, event, 2)

    assert [(m.integration_id, m.reason) for m in requests] == [("factory-mail", reason), ("zap", reason)]
    for message in requests:
        [notice] = message.files
        assert notice.name == f"1022_ID_6182665224482_R_{recipe_id}_{stem}.json"
        document = json.loads(await running.store.get(notice.key))
        assert document["event"] == reason
        assert (document["orderNumber"], document["itemId"], document["itemQuantity"]) == ("1022", "14523", 2)
        assert document["occurredAt"] == event.model_dump(mode="json")["occurredAt"]
    assert asset_server.fetched(f"/fail/{tag}") == 0
    assert not [o for o in running.outcomes if o.trigger_id == event.trigger_id]


async def test_update_redelivers_the_bundle_under_the_same_names_with_the_new_quantity(
    running: Running, make_recipe: Any
) -> None:
    recipe_id = f"999-{uuid.uuid4().hex[:12]}"
    await running.store.put(
        recipe_object_key("bb", recipe_id), json.dumps(make_recipe(recipe_id)).encode(), content_type="application/json"
    )
    created = trigger(recipe_id, ("factory-sftp",))
    await running.producer.publish(created, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())
    [first] = await requests_for(running, created, 1)
    assert "Quantity: 2" in pdf_text(await running.store.get(first.files[1].key))

    updated = trigger(
        recipe_id, ("factory-sftp",), reason="order_updated", order=ORDER.model_copy(update={"item_quantity": 5})
    )
    await running.producer.publish(updated, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())
    [second] = await requests_for(running, updated, 1)

    assert second.reason == "order_updated"
    assert second.order is not None
    assert second.order.item_quantity == 5
    assert [f.name for f in second.files] == [f.name for f in first.files]
    old_ticket, new_ticket = first.files[1], second.files[1]
    assert new_ticket.name == f"1022_ID_6182665224482_R_{recipe_id}_Ticket.pdf"
    assert new_ticket.sha256 != old_ticket.sha256
    stored = await running.store.get(new_ticket.key)
    assert hashlib.sha256(stored).hexdigest() == new_ticket.sha256
    text = pdf_text(stored)
    assert "Quantity: 5" in text
    assert "Quantity: 2" not in text
    assert "CANCELLED" not in text
    # The first request's ticket is still there, byte for byte: its delivery, if still retrying, stays valid.
    assert hashlib.sha256(await running.store.get(old_ticket.key)).hexdigest() == old_ticket.sha256


@pytest.mark.parametrize(
    ("case", "asset_url", "reason"),
    [
        ("empty DNS label", "http://assets..example.com/a.png", "host name cannot be encoded"),
        ("64-byte DNS label", f"http://{'a' * 64}.example.com/a.png", "host name cannot be encoded"),
        ("long Content-Type", "/long-content-type.png", None),
    ],
)
async def test_hostile_asset_ends_the_trigger_and_the_next_trigger_on_the_partition_is_built(
    running: Running, make_recipe: Any, asset_server: Any, case: str, asset_url: str, reason: str | None
) -> None:
    recipe_id = f"999-{uuid.uuid4().hex[:12]}"
    url = asset_server.url(asset_url) if asset_url.startswith("/") else asset_url
    hostile = make_recipe(recipe_id, extra_views=[{"code": "side", "production": url}])
    await running.store.put(
        recipe_object_key("bb", recipe_id), json.dumps(hostile).encode(), content_type="application/json"
    )
    ordinary_id = f"999-{uuid.uuid4().hex[:12]}"
    await running.store.put(
        recipe_object_key("bb", ordinary_id),
        json.dumps(make_recipe(ordinary_id)).encode(),
        content_type="application/json",
    )
    bad = trigger(recipe_id, ("factory-mail", "zap"))
    ordinary = trigger(ordinary_id, ("factory-mail", "zap"))
    # Same key, so the same partition: the ordinary trigger waits for nothing but the hostile one's ending.
    await running.producer.publish(bad, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())
    await running.producer.publish(ordinary, INTEGRATIONS_TRIGGERED, key=recipe_id.encode())

    def ended() -> list[DeliverBundle | DeliveryAttempted]:
        requests = [m for _, m in running.requests if m.trigger_id == bad.trigger_id]
        outcomes = [o for o in running.outcomes if o.trigger_id == bad.trigger_id]
        return [*requests, *outcomes]

    await wait_for(lambda: len(ended()) >= 2)
    if reason is None:  # an odd but harmless header: the bundle is delivered with a sane MIME type
        requests = await requests_for(running, bad, 2)
        production = next(f for f in requests[0].files if "side-Production" in f.name)
        assert production.mime_type == "application/octet-stream", case
    else:
        outcomes = [o for o in ended() if isinstance(o, DeliveryAttempted)]
        assert sorted(o.integration_id for o in outcomes) == ["factory-mail", "zap"], case
        for outcome in outcomes:
            assert (outcome.status, outcome.final) == ("failed", True)
            assert reason in (outcome.error_message or ""), outcome
    assert len(await requests_for(running, ordinary, 2)) == 2
