"""The deliverer runtime on a real broker: outcomes published before commit, attempts run concurrently, and a
stop (SIGTERM) lets the in-flight attempt finish, publish and commit."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream import FastStream

from relay_contracts.messages import DeliverBundle
from relay_delivery import DelivererSettings, FetchedFile, build_deliverer_app
from relay_delivery.testing import OutcomeCollector, deliver_bundle, running_app, store_bundle
from relay_platform.broker import ensure_topics
from relay_platform.objectstore import LocalDirectoryStore, ObjectStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import EmailIntegration, TenantsConfig
from relay_testing.shared_secrets import link_settings

pytestmark = pytest.mark.integration

TENANTS = TenantsConfig.model_validate(
    {"tenants": {"acme": {"recipe-prefix": "999", "integrations": [{"id": "mail", "type": "email", "to": "a@b.c"}]}}}
)


class GatedDestination:
    """Blocks every attempt until ``gate`` opens; records how many were in flight at once."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.max_in_flight = 0
        self.entered = asyncio.Condition()
        self.delivered: list[str] = []

    async def deliver(
        self, integration: EmailIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        async with self.entered:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.entered.notify_all()
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        self.delivered.append(request.delivery_id)

    async def wait_in_flight(self, count: int) -> None:
        async with asyncio.timeout(60), self.entered:
            await self.entered.wait_for(lambda: self.in_flight >= count)


def make_app(
    bootstrap: str, tmp_path: Path, destination: GatedDestination, topic: str, group: str, concurrency: int
) -> FastStream:
    @asynccontextmanager
    async def open_destination(store: ObjectStore) -> AsyncIterator[GatedDestination]:
        yield destination

    settings = DelivererSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, transient_backoff_s=0.1),
        object_store=ObjectStoreSettings(url=f"file://{tmp_path}/objects"),
        links=link_settings(),
        concurrency=concurrency,
        shutdown_grace_s=20,
        consumer_group=group,
    )
    return build_deliverer_app(
        settings,
        integration_type="email",
        integration_class=EmailIntegration,
        open_destination=open_destination,
        tenants=TENANTS,
        topic=topic,
    )


@pytest.fixture(scope="module")
async def outcomes(kafka_bootstrap: str) -> AsyncIterator[OutcomeCollector]:
    async with OutcomeCollector(kafka_bootstrap) as collector:
        yield collector


async def committed(bootstrap: str, group: str, topic: str, partition: int) -> int | None:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        offset: int | None = await consumer.committed(TopicPartition(topic, partition))
        return offset
    finally:
        await consumer.stop()


async def test_attempts_on_different_partitions_run_concurrently_and_each_publishes_one_outcome(
    kafka_bootstrap: str, outcomes: OutcomeCollector, tmp_path: Path
) -> None:
    topic, group = f"test.deliver.{uuid.uuid4().hex[:8]}", f"deliver-test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=2)
    destination = GatedDestination()
    store = LocalDirectoryStore(tmp_path / "objects")
    files = await store_bundle(store, {"999-a.json": (b"{}", "application/json")})
    requests = [
        deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=files) for _ in range(2)
    ]

    async with (
        OutcomeCollector(kafka_bootstrap) as outcomes,
        running_app(make_app(kafka_bootstrap, tmp_path, destination, topic, group, concurrency=2)),
    ):
        await outcomes.publish(requests[0], topic, partition=0)
        await outcomes.publish(requests[1], topic, partition=1)
        await destination.wait_in_flight(2)
        destination.gate.set()
        for request in requests:
            [outcome] = await outcomes.wait_for(request.delivery_id)
            assert (outcome.status, outcome.final, outcome.files) == ("succeeded", True, ("999-a.json",))

    assert destination.max_in_flight == 2
    assert await committed(kafka_bootstrap, group, topic, 0) == 1
    assert await committed(kafka_bootstrap, group, topic, 1) == 1


async def test_stop_lets_the_in_flight_attempt_finish_publish_and_commit(
    kafka_bootstrap: str, outcomes: OutcomeCollector, tmp_path: Path
) -> None:
    topic, group = f"test.deliver.{uuid.uuid4().hex[:8]}", f"deliver-test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=1)
    destination = GatedDestination()
    request = deliver_bundle(tenant="acme", integration_id="mail", integration_type="email", files=())
    app = make_app(kafka_bootstrap, tmp_path, destination, topic, group, concurrency=1)

    await app.start()
    await outcomes.publish(request, topic)
    await destination.wait_in_flight(1)
    stopping = asyncio.create_task(app.stop())
    await asyncio.sleep(0)  # let the stop begin while the attempt is still in flight
    assert not stopping.done()
    destination.gate.set()
    await asyncio.wait_for(stopping, 30)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert outcome.status == "succeeded"
    assert destination.delivered == [request.delivery_id]
    assert await committed(kafka_bootstrap, group, topic, 0) == 1
