"""The deliverer runtime reading ``integrations.control.v1`` on a real broker: an integration paused before the
deliverer started is held from its first request (the topic is read up to its end first), past a malformed record;
another integration of the same type is delivered meanwhile; after the resume is read, the request is attempted."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from faststream import FastStream

from relay_contracts.messages import (
    DeliverBundle,
    IntegrationState,
    IntegrationStateChanged,
    integration_key,
)
from relay_contracts.topics import INTEGRATIONS_CONTROL
from relay_delivery import DelivererSettings, FetchedFile, build_deliverer_app
from relay_delivery.app import CONTROL_READER
from relay_delivery.control import ControlReader
from relay_delivery.testing import OutcomeCollector, deliver_bundle, running_app
from relay_platform.broker import ensure_topics
from relay_platform.objectstore import ObjectStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import EmailIntegration, TenantsConfig
from relay_testing.shared_secrets import link_settings

pytestmark = pytest.mark.integration


class Destination:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(
        self, integration: EmailIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        self.delivered.append(request.delivery_id)


def make_app(bootstrap: str, tmp_path: Path, destination: Destination, tenant: str, topic: str) -> FastStream:
    @asynccontextmanager
    async def open_destination(store: ObjectStore) -> AsyncIterator[Destination]:
        yield destination

    tenants = TenantsConfig.model_validate(
        {
            "tenants": {
                tenant: {
                    "recipe-prefix": "999",
                    "integrations": [
                        {"id": "mail", "type": "email", "to": "a@b.c"},
                        {"id": "other-mail", "type": "email", "to": "d@e.f"},
                    ],
                }
            }
        }
    )
    settings = DelivererSettings(
        kafka=KafkaSettings(bootstrap_servers=bootstrap, transient_backoff_s=0.1),
        object_store=ObjectStoreSettings(url=f"file://{tmp_path}/objects"),
        links=link_settings(),
        consumer_group=f"deliver-test-{uuid.uuid4().hex[:8]}",
    )
    return build_deliverer_app(
        settings,
        integration_type="email",
        integration_class=EmailIntegration,
        open_destination=open_destination,
        tenants=tenants,
        topic=topic,
    )


async def send_change(producer: AIOKafkaProducer, tenant: str, state: IntegrationState, at: datetime) -> None:
    change = IntegrationStateChanged(
        event_id=uuid.uuid4().hex, tenant=tenant, integration_id="mail", state=state, changed_at=at
    )
    await producer.send_and_wait(INTEGRATIONS_CONTROL, change.model_dump_json().encode(), key=change.kafka_key)


async def test_a_pause_read_at_start_holds_requests_until_the_resume_is_read(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    tenant = f"ctl-{uuid.uuid4().hex[:8]}"
    topic = f"test.deliver.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, (topic,), partitions=1)
    destination = Destination()
    t0 = datetime.now(UTC)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        # On the integration's partition, before the pause: the reader must log it, skip it and read on.
        await producer.send_and_wait(INTEGRATIONS_CONTROL, b'{"not": "a change"}', key=integration_key(tenant, "mail"))
        await producer.send_and_wait(INTEGRATIONS_CONTROL, b"\xff", key=integration_key(tenant, "mail"))
        await send_change(producer, tenant, "paused", t0)
        held = deliver_bundle(tenant=tenant, integration_id="mail", integration_type="email", files=(), attempt=2)
        other = deliver_bundle(tenant=tenant, integration_id="other-mail", integration_type="email", files=())
        app = make_app(kafka_bootstrap, tmp_path, destination, tenant, topic)

        async with OutcomeCollector(kafka_bootstrap) as outcomes, running_app(app):
            await outcomes.publish(held, topic)
            await outcomes.publish(other, topic)
            hold = await outcomes.wait_for_retry(held.delivery_id)
            [delivered] = await outcomes.wait_for(other.delivery_id)

            assert (hold.hold, hold.error_class, hold.request) == ("paused", "IntegrationPaused", held)
            assert delivered.status == "succeeded"
            assert held.delivery_id not in outcomes.outcomes
            assert destination.delivered == [other.delivery_id]

            await send_change(producer, tenant, "active", t0 + timedelta(seconds=1))
            control = app.context.get(CONTROL_READER)
            assert isinstance(control, ControlReader)
            async with asyncio.timeout(30):
                while control.states.paused(tenant, "mail"):
                    await asyncio.sleep(0.05)
            # What the retry service publishes when the resume releases the held request.
            await outcomes.publish(held, topic)
            [attempted] = await outcomes.wait_for(held.delivery_id)

        assert (attempted.status, attempted.attempt) == ("succeeded", 2)
        assert destination.delivered == [other.delivery_id, held.delivery_id]
    finally:
        await producer.stop()
