"""deliver-s3 on FastStream's in-memory broker: its one consumer (the shared deliverer runtime) reads
``handlers.TOPIC`` in group ``deliver-s3``, answers every request with one outcome, and dead-letters a malformed
request before handling the next one."""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from relay_contracts.topics import deliveries_requested
from relay_deliver_s3 import handlers
from relay_deliver_s3.main import create_app
from relay_deliver_s3.settings import Settings
from relay_delivery.testing import InMemoryDeliverer, deliver_bundle, in_memory
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_testing.shared_secrets import link_settings


@pytest.fixture
async def deliverer(tmp_path: Path) -> AsyncIterator[InMemoryDeliverer]:
    tenants_file = tmp_path / "tenants.yaml"
    tenants_file.write_text("tenants:\n  acme:\n    recipe-prefix: '999'\n")
    settings = Settings(
        kafka=KafkaSettings(transient_backoff_s=0),
        object_store=ObjectStoreSettings(url=f"file://{tmp_path}/objects"),
        links=link_settings(),
        tenants_file=tenants_file,
    )
    async with in_memory(create_app(settings)) as running:
        yield running


def test_the_consumer_reads_the_s3_requests_in_its_own_group() -> None:
    assert deliveries_requested("s3") == handlers.TOPIC
    assert Settings.model_fields["consumer_group"].default == "deliver-s3"


async def test_a_request_for_an_unknown_integration_gets_one_final_failed_outcome(
    deliverer: InMemoryDeliverer,
) -> None:
    request = deliver_bundle(tenant="acme", integration_id="not-configured", integration_type="s3", files=())

    await deliverer.publish(request, handlers.TOPIC)
    [outcome] = await deliverer.wait_for_outcomes(1)

    assert (outcome.delivery_id, outcome.status, outcome.final) == (request.delivery_id, "failed", True)
    assert outcome.error_class == "IntegrationUnavailableError"
    assert deliverer.retries == []


async def test_a_malformed_request_is_dead_lettered_and_the_next_one_is_handled(deliverer: InMemoryDeliverer) -> None:
    request = deliver_bundle(tenant="acme", integration_id="not-configured", integration_type="s3", files=())

    await deliverer.publish({"deliveryId": "x"}, handlers.TOPIC)
    await deliverer.publish(request, handlers.TOPIC)
    [outcome] = await deliverer.wait_for_outcomes(1)

    [letter] = deliverer.dead
    assert (letter.source_topic, letter.reason.startswith("invalid message")) == (handlers.TOPIC, True)
    assert outcome.delivery_id == request.delivery_id
