"""The Azure Blob destination against real Azurite with account-SAS connection strings: names, bytes, content
type, metadata, block uploads, overwrite on redelivery, and how refusals are classified."""

import hashlib
from collections.abc import AsyncIterator

import pytest
from azure.storage.blob import BlobServiceClient

from relay_contracts.messages import BundleFile, DeliverBundle, OrderLine
from relay_deliver_azure_blob.adapters.blob import open_uploader
from relay_deliver_azure_blob.service import AzureBlobDestination
from relay_deliver_azure_blob.settings import BlobSettings
from relay_delivery import FetchedFile
from relay_delivery.testing import deliver_bundle
from relay_devservers.azurite import AzuriteBlob
from relay_platform.errors import PermanentError, TransientError
from relay_platform.tenants import AzureBlobIntegration

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("azure_secrets", "container")]

ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="1", item_quantity=2)
TICKET = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf"
RECIPE = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba.json"
# Small single-put limit and blocks so the block-list path runs on a 300 KiB file.
UPLOADS = BlobSettings(max_single_put_bytes=64 * 1024, block_size_bytes=128 * 1024, client_retry_total=0)


def fetched(name: str, data: bytes, mime_type: str) -> FetchedFile:
    meta = BundleFile(
        name=name, mime_type=mime_type, size=len(data), sha256=hashlib.sha256(data).hexdigest(), key=f"b/{name}"
    )
    return FetchedFile(meta=meta, data=data)


def request_for(integration_id: str, *files: FetchedFile) -> DeliverBundle:
    return deliver_bundle(
        tenant="acme",
        integration_id=integration_id,
        integration_type="azure-blob",
        files=tuple(f.meta for f in files),
        order=ORDER,
    )


@pytest.fixture
async def destination() -> AsyncIterator[AzureBlobDestination]:
    async with open_uploader(UPLOADS) as uploader:
        yield AzureBlobDestination(uploader)


@pytest.fixture
def blobs(azurite: AzuriteBlob, container: str) -> BlobServiceClient:
    return azurite.client()


async def test_each_file_lands_as_prefix_and_seed_name_with_its_bytes_content_type_and_id_metadata(
    destination: AzureBlobDestination,
    integrations: dict[str, AzureBlobIntegration],
    blobs: BlobServiceClient,
    container: str,
) -> None:
    files = [
        fetched(TICKET, b"%PDF-1.7\n" + bytes(range(256)) * 20, "application/pdf"),
        fetched(RECIPE, b'{"recipeId": "999-63CHGJokGoxPfSba"}', "application/json"),
        fetched("1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_big.png", bytes(range(256)) * 1200, "image/png"),
    ]
    request = request_for("orders-container", *files)

    await destination.deliver(integrations["orders-container"], request, files)

    with blobs:
        for file in files:
            blob = blobs.get_blob_client(container, f"acme/recipes/{file.name}")
            assert blob.download_blob().readall() == file.data
            properties = blob.get_blob_properties()
            assert properties.content_settings.content_type == file.mime_type
            assert properties.metadata == {
                "recipe_id": "999-63CHGJokGoxPfSba",
                "order_number": "1022",
                "order_id": "6182665224482",
                "delivery_id": request.delivery_id,
            }
        committed = blobs.get_blob_client(container, f"acme/recipes/{files[2].name}").get_block_list("committed")
        assert len(committed[0]) == 3  # 300 KiB in 128 KiB blocks


async def test_redelivery_overwrites_the_same_blob_instead_of_adding_copies(
    destination: AzureBlobDestination,
    integrations: dict[str, AzureBlobIntegration],
    blobs: BlobServiceClient,
    container: str,
) -> None:
    name = "1023_ID_77_R_999-redelivered.json"
    first, second = fetched(name, b'{"v": 1}', "application/json"), fetched(name, b'{"v": 2}', "application/json")
    request = request_for("orders-container", first)

    await destination.deliver(integrations["orders-container"], request, [first])
    await destination.deliver(integrations["orders-container"], request.model_copy(update={"attempt": 2}), [second])

    with blobs:
        names = [
            b.name for b in blobs.get_container_client(container).list_blobs(name_starts_with="acme/recipes/1023_")
        ]
        assert names == [f"acme/recipes/{name}"]
        assert blobs.get_blob_client(container, names[0]).download_blob().readall() == b'{"v": 2}'


@pytest.mark.parametrize("integration_id", ["wrong-signature", "expired-sas", "read-only-sas"])
async def test_a_refused_sas_is_a_permanent_error_naming_the_container_but_not_the_connection_string(
    destination: AzureBlobDestination, integrations: dict[str, AzureBlobIntegration], integration_id: str
) -> None:
    integration = integrations[integration_id]
    file = fetched("999-refused.json", b"{}", "application/json")

    with pytest.raises(PermanentError) as refused:
        await destination.deliver(integration, request_for(integration_id, file), [file])

    message = str(refused.value)
    assert "Azure refused the connection-string-secure for container 'deliver-azure-orders'" in message
    connection_string = integration.connection_string_secure.resolve().get_secret_value()
    signature = connection_string.split("sig=", 1)[1].split("&", 1)[0]
    assert signature not in message
    assert "SharedAccessSignature" not in message


async def test_a_missing_container_is_a_permanent_error_naming_it(
    destination: AzureBlobDestination, integrations: dict[str, AzureBlobIntegration]
) -> None:
    file = fetched("999-nowhere.json", b"{}", "application/json")

    with pytest.raises(PermanentError, match=r"container 'deliver-azure-no-such-container' does not exist"):
        await destination.deliver(integrations["missing-container"], request_for("missing-container", file), [file])


async def test_a_malformed_connection_string_is_a_permanent_error_that_does_not_quote_it(
    destination: AzureBlobDestination, integrations: dict[str, AzureBlobIntegration], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVER_AZURE_BLOB_TEST_SAS", "sig=SECRET-ISH-VALUE")
    file = fetched("999-malformed.json", b"{}", "application/json")

    with pytest.raises(PermanentError, match="not a valid Azure Storage connection string") as refused:
        await destination.deliver(integrations["orders-container"], request_for("orders-container", file), [file])

    assert "SECRET-ISH-VALUE" not in str(refused.value)


async def test_an_unreachable_endpoint_is_a_transient_error(
    destination: AzureBlobDestination,
    integrations: dict[str, AzureBlobIntegration],
    azurite: AzuriteBlob,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relay_devservers.processes import free_port

    closed = azurite.sas_connection_string.replace(f":{azurite.port}/", f":{free_port()}/")
    monkeypatch.setenv("DELIVER_AZURE_BLOB_TEST_SAS", closed)
    file = fetched("999-later.json", b"{}", "application/json")

    with pytest.raises(TransientError, match=r"cannot reach Azure Blob for container 'deliver-azure-orders'"):
        await destination.deliver(integrations["orders-container"], request_for("orders-container", file), [file])
