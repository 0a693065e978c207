"""The routing table on FastStream's in-memory broker: a trigger reaches the use case and what it returns is
published; a malformed trigger is dead-lettered and the next one handled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

from relay_bundle_builder.domain import ByteBudget
from relay_bundle_builder.handlers import build_router
from relay_bundle_builder.ports import BuildContext, BundlePorts, FetchedAsset
from relay_bundle_builder.spool import AssetSpool
from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationsTriggered,
    MessageDeadLettered,
    OrderLine,
    delivery_key,
    recipe_object_key,
    stable_id,
)
from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    INTEGRATIONS_TRIGGERED,
    deliveries_requested,
)
from relay_platform.broker import make_broker
from relay_platform.errors import TransientError
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import load_tenants

TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")
RECIPE_ID = "999-handlers"
ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2)
WATCHED = (deliveries_requested("email"), deliveries_requested("zapier"), DELIVERIES_OUTCOMES, DELIVERIES_DEAD)


class Fetcher:
    async def fetch(
        self, url: str, *, label: str, allowed_hosts: Sequence[str], budget: ByteBudget | None = None
    ) -> FetchedAsset:
        del url, allowed_hosts
        if budget is not None:
            budget.charge(3, label=label)
        return FetchedAsset(AssetSpool.of(b"png"), "image/png")


class UnreachableStore(LocalDirectoryStore):
    async def get(self, key: str) -> bytes:
        raise TransientError(f"object store unreachable ({key})")


@dataclass
class Published:
    """What the handler published, by topic, with each record's key."""

    records: list[tuple[str, bytes | None, dict[str, Any]]] = field(default_factory=list)

    def on(self, topic: str) -> list[tuple[bytes | None, dict[str, Any]]]:
        return [(key, body) for t, key, body in self.records if t == topic]


def trigger(trigger_id: str, integrations: tuple[str, ...] = ("factory-mail", "zap")) -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id=trigger_id,
        tenant="bb",
        recipe_id=RECIPE_ID,
        recipe_key=recipe_object_key("bb", RECIPE_ID),
        feed="order",
        reason="order_created",
        order=ORDER,
        integration_ids=integrations,
        occurred_at=datetime.now(UTC),
    )


@asynccontextmanager
async def running(store: LocalDirectoryStore, kafka: KafkaSettings) -> AsyncIterator[tuple[KafkaBroker, Published]]:
    broker = make_broker(kafka, service="bundle-builder", tracer_provider=None)
    broker.include_router(build_router(kafka, group_id="bundle-builder"))
    published = Published()

    @broker.subscriber(*WATCHED, group_id="test-watcher")
    async def watch(body: dict[str, Any], message: KafkaMessage) -> None:
        record = message.raw_message
        assert not isinstance(record, tuple)  # not a batch subscriber
        published.records.append((record.topic, record.key, body))

    build = BuildContext(
        store=store, fetcher=Fetcher(), recipe_url=lambda rid: f"https://relay.example.com/recipe/{rid}.json"
    )
    broker.context.set_global("ports", BundlePorts(tenants=TENANTS, build=build))
    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, published


@pytest.fixture
async def store(tmp_path: Path) -> LocalDirectoryStore:
    store = LocalDirectoryStore(tmp_path)
    recipe = {
        "id": RECIPE_ID,
        "created": "2026-11-20T10:00:00Z",
        "name": "Mug",
        "views": [{"code": "front", "previewPng": "https://assets.example.com/front.png"}],
    }
    await store.put(recipe_object_key("bb", RECIPE_ID), json.dumps(recipe).encode(), content_type="application/json")
    return store


async def test_a_trigger_publishes_the_delivery_requests_keyed_by_delivery_id(store: LocalDirectoryStore) -> None:
    async with running(store, KafkaSettings()) as (broker, published):
        await broker.publish(trigger("t-1"), INTEGRATIONS_TRIGGERED)

        mail = published.on(deliveries_requested("email"))
        zap = published.on(deliveries_requested("zapier"))
        assert [DeliverBundle.model_validate(body).integration_id for _, body in mail] == ["factory-mail"]
        assert [DeliverBundle.model_validate(body).integration_id for _, body in zap] == ["zap"]
        for key, body in (*mail, *zap):
            request = DeliverBundle.model_validate(body)
            assert request.delivery_id == stable_id("t-1", request.integration_id)
            assert key == delivery_key(request.delivery_id)
            names = [f.name.rsplit("_", 1)[-1] for f in request.files]
            assert names == ["Recipe.json", "Ticket.pdf", "front-Preview.png"]
        assert published.on(DELIVERIES_OUTCOMES) == []


async def test_a_malformed_trigger_is_dead_lettered_and_the_next_one_handled(store: LocalDirectoryStore) -> None:
    async with running(store, KafkaSettings()) as (broker, published):
        broken = trigger("t-broken").model_dump(mode="json", by_alias=True) | {"integrationIds": "not-a-list"}
        await broker.publish(broken, INTEGRATIONS_TRIGGERED)
        await broker.publish(trigger("t-next"), INTEGRATIONS_TRIGGERED)

        [(_, letter)] = published.on(DELIVERIES_DEAD)
        dead = MessageDeadLettered.model_validate(letter)
        assert dead.source_topic == INTEGRATIONS_TRIGGERED
        assert dead.reason.startswith("invalid message: ")
        assert "integrationIds" in dead.reason
        requests = [DeliverBundle.model_validate(body) for _, body in published.on(deliveries_requested("email"))]
        assert [request.trigger_id for request in requests] == ["t-next"]


async def test_a_transient_failure_on_the_final_read_publishes_a_failed_outcome_per_integration(
    tmp_path: Path,
) -> None:
    # One read in all: the first read is the final one, so the use case reports instead of raising.
    async with running(UnreachableStore(tmp_path), KafkaSettings(transient_max_reads=1)) as (broker, published):
        await broker.publish(trigger("t-final"), INTEGRATIONS_TRIGGERED)

        outcomes = [DeliveryAttempted.model_validate(body) for _, body in published.on(DELIVERIES_OUTCOMES)]
        assert sorted(o.integration_id for o in outcomes) == ["factory-mail", "zap"]
        for outcome in outcomes:
            assert (outcome.status, outcome.final, outcome.error_class) == ("failed", True, "TransientError")
            assert "object store unreachable" in (outcome.error_message or "")
        assert published.on(DELIVERIES_DEAD) == []
