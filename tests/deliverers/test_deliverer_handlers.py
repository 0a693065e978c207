"""Every deliverer on FastStream's in-memory broker: its one consumer (the shared deliverer runtime) reads its
``handlers.TOPIC`` in group ``deliver-<type>``, answers every request with one outcome, and dead-letters a malformed
request before handling the next one. One test for the five: they share the runtime, and only the service differs."""

from collections.abc import AsyncIterator
from importlib import import_module
from pathlib import Path
from types import ModuleType

import pytest

from relay_contracts.messages import DeliverBundle
from relay_contracts.topics import IntegrationType, deliveries_requested
from relay_delivery.testing import InMemoryDeliverer, deliver_bundle, in_memory
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_testing.shared_secrets import link_settings

TYPES: tuple[IntegrationType, ...] = ("email", "sftp", "s3", "azure-blob", "zapier")


def _module(integration_type: IntegrationType, role: str) -> ModuleType:
    return import_module(f"relay_deliver_{integration_type.replace('-', '_')}.{role}")


@pytest.fixture(params=TYPES)
def integration_type(request: pytest.FixtureRequest) -> IntegrationType:
    chosen: IntegrationType = request.param
    return chosen


@pytest.fixture
async def deliverer(tmp_path: Path, integration_type: IntegrationType) -> AsyncIterator[InMemoryDeliverer]:
    tenants_file = tmp_path / "tenants.yaml"
    tenants_file.write_text("tenants:\n  acme:\n    recipe-prefix: '999'\n")
    settings = _module(integration_type, "settings").Settings(
        kafka=KafkaSettings(transient_backoff_s=0),
        object_store=ObjectStoreSettings(url=f"file://{tmp_path}/objects"),
        links=link_settings(),
        tenants_file=tenants_file,
    )
    async with in_memory(_module(integration_type, "main").create_app(settings)) as running:
        yield running


def _unconfigured_request(integration_type: IntegrationType) -> DeliverBundle:
    """A request for an integration the tenant does not have: handled without any destination server."""
    return deliver_bundle(tenant="acme", integration_id="not-configured", integration_type=integration_type, files=())


def test_the_consumer_reads_its_own_requests_in_its_own_group(integration_type: IntegrationType) -> None:
    assert deliveries_requested(integration_type) == _module(integration_type, "handlers").TOPIC
    settings = _module(integration_type, "settings").Settings
    assert settings.model_fields["consumer_group"].default == f"deliver-{integration_type}"


async def test_a_request_for_an_unknown_integration_gets_one_final_failed_outcome(
    deliverer: InMemoryDeliverer, integration_type: IntegrationType
) -> None:
    topic = _module(integration_type, "handlers").TOPIC
    request = _unconfigured_request(integration_type)

    await deliverer.publish(request, topic)
    [outcome] = await deliverer.wait_for_outcomes(1)

    assert (outcome.delivery_id, outcome.status, outcome.final) == (request.delivery_id, "failed", True)
    assert outcome.error_class == "IntegrationUnavailableError"
    assert deliverer.retries == []


async def test_a_malformed_request_is_dead_lettered_and_the_next_one_is_handled(
    deliverer: InMemoryDeliverer, integration_type: IntegrationType
) -> None:
    topic = _module(integration_type, "handlers").TOPIC
    request = _unconfigured_request(integration_type)

    await deliverer.publish({"deliveryId": "x"}, topic)
    await deliverer.publish(request, topic)
    [outcome] = await deliverer.wait_for_outcomes(1)

    [letter] = deliverer.dead
    assert (letter.source_topic, letter.reason.startswith("invalid message")) == (topic, True)
    assert outcome.delivery_id == request.delivery_id
