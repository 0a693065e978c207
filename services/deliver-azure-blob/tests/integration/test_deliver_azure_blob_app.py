"""deliver-azure-blob end to end: DeliverBundle on the real broker -> blobs in real Azurite -> outcome."""

from collections.abc import AsyncIterator

import pytest
from faststream import FastStream

from relay_contracts.messages import OrderLine
from relay_deliver_azure_blob.main import create_app
from relay_deliver_azure_blob.settings import Settings
from relay_delivery.testing import OutcomeCollector, deliver_bundle, running_app, store_bundle
from relay_devservers.azurite import AzuriteBlob
from relay_platform.objectstore import LocalDirectoryStore

pytestmark = pytest.mark.integration

ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="1", item_quantity=2)
FILES = {
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf": (b"%PDF-1.7\n" + b"\1" * 2048, "application/pdf"),
    "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba.json": (b'{"recipeId": "999-63CHGJokGoxPfSba"}', "application/json"),
}


@pytest.fixture(scope="module")
async def app(settings: Settings, azure_secrets: None, container: str) -> AsyncIterator[FastStream]:
    # One app for the module: each start joins the consumer group, which costs seconds on Tansu.
    async with running_app(create_app(settings)) as running:
        yield running


async def test_a_requested_bundle_lands_in_the_container_and_a_succeeded_outcome_is_published(
    app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, azurite: AzuriteBlob, container: str
) -> None:
    files = await store_bundle(store, FILES)
    request = deliver_bundle(
        tenant="acme", integration_id="orders-container", integration_type="azure-blob", files=files, order=ORDER
    )

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.final, outcome.attempt) == ("succeeded", True, 1)
    assert set(outcome.files) == set(FILES)
    with azurite.client() as blobs:
        for name, (data, mime_type) in FILES.items():
            blob = blobs.get_blob_client(container, f"acme/recipes/{name}")
            assert blob.download_blob().readall() == data
            properties = blob.get_blob_properties()
            assert properties.content_settings.content_type == mime_type
            assert properties.metadata["delivery_id"] == request.delivery_id


async def test_a_wrongly_signed_sas_gives_one_attempt_and_a_final_failed_outcome_without_a_retry(
    app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore
) -> None:
    files = await store_bundle(store, FILES)
    request = deliver_bundle(
        tenant="acme", integration_id="wrong-signature", integration_type="azure-blob", files=files
    )

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)
    # A re-read of the request would come before a later one on its partition (same recipe-ID key).
    marker = deliver_bundle(tenant="acme", integration_id="not-configured", integration_type="azure-blob", files=())
    await outcomes.publish(marker.model_copy(update={"recipe_id": request.recipe_id}))
    await outcomes.wait_for(marker.delivery_id)

    assert (outcome.status, outcome.final, outcome.error_class) == ("failed", True, "PermanentError")
    assert "Azure refused the connection-string-secure for container 'deliver-azure-orders'" in (
        outcome.error_message or ""
    )
    assert len(outcomes.outcomes[request.delivery_id]) == 1
    assert request.delivery_id not in outcomes.retries
