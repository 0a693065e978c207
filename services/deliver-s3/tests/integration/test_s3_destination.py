"""The S3 destination against real SeaweedFS with enforced credentials: keys, bytes, type, metadata, multipart,
overwrite on redelivery, and how refusals are classified."""

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from relay_contracts.messages import BundleFile, DeliverBundle, OrderLine
from relay_deliver_s3.adapters.s3 import open_uploader
from relay_deliver_s3.service import S3Destination
from relay_deliver_s3.settings import MIB, UploadSettings
from relay_delivery import FetchedFile
from relay_delivery.testing import deliver_bundle
from relay_devservers.processes import free_port
from relay_devservers.seaweedfs import SeaweedS3
from relay_platform.errors import PermanentError, TransientError
from relay_platform.tenants import S3Integration, SecretRef

pytestmark = pytest.mark.integration

ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="1", item_quantity=2)
TICKET = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf"
RECIPE = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba.json"
PRODUCTION = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_production.png"
UPLOADS = UploadSettings(
    multipart_threshold_bytes=1 * MIB, multipart_part_size_bytes=5 * MIB, client_max_attempts=1, connect_timeout_s=2
)


def fetched(name: str, data: bytes, mime_type: str) -> FetchedFile:
    meta = BundleFile(
        name=name, mime_type=mime_type, size=len(data), sha256=hashlib.sha256(data).hexdigest(), key=f"b/{name}"
    )
    return FetchedFile(meta=meta, data=data)


def request_for(integration_id: str, *files: FetchedFile) -> DeliverBundle:
    return deliver_bundle(
        tenant="acme",
        integration_id=integration_id,
        integration_type="s3",
        files=tuple(f.meta for f in files),
        order=ORDER,
    )


@pytest.fixture
async def destination() -> AsyncIterator[S3Destination]:
    async with open_uploader(UPLOADS) as uploader:
        yield S3Destination(uploader)


def head(seaweedfs: SeaweedS3, bucket: str, key: str) -> dict[str, Any]:
    response: dict[str, Any] = seaweedfs.client().head_object(Bucket=bucket, Key=key)
    return response


def body(seaweedfs: SeaweedS3, bucket: str, key: str) -> bytes:
    data: bytes = seaweedfs.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return data


@pytest.mark.usefixtures("s3_secrets")
async def test_each_file_lands_under_prefix_and_seed_name_with_its_bytes_type_and_id_metadata(
    destination: S3Destination, integrations: dict[str, S3Integration], s3_bucket: str, seaweedfs: SeaweedS3
) -> None:
    files = [
        fetched(TICKET, b"%PDF-1.7\n" + bytes(range(256)) * 20, "application/pdf"),
        fetched(RECIPE, b'{"recipeId": "999-63CHGJokGoxPfSba"}', "application/json"),
    ]
    request = request_for("orders-bucket", *files)

    await destination.deliver(integrations["orders-bucket"], request, files)

    for file in files:
        key = f"acme/recipes/{file.name}"
        assert body(seaweedfs, s3_bucket, key) == file.data
        meta = head(seaweedfs, s3_bucket, key)
        assert meta["ContentType"] == file.mime_type
        assert meta["Metadata"] == {
            "recipe-id": "999-63CHGJokGoxPfSba",
            "order-number": "1022",
            "order-id": "6182665224482",
            "delivery-id": request.delivery_id,
        }


@pytest.mark.usefixtures("s3_secrets")
async def test_a_file_above_the_threshold_goes_up_as_a_multipart_upload_byte_for_byte(
    destination: S3Destination, integrations: dict[str, S3Integration], s3_bucket: str, seaweedfs: SeaweedS3
) -> None:
    data = hashlib.sha256(b"seed").digest() * (11 * MIB // 32 + 1)  # 11 MiB + 32 bytes: parts of 5, 5 and 1 MiB
    file = fetched(PRODUCTION, data, "image/png")

    await destination.deliver(integrations["orders-bucket"], request_for("orders-bucket", file), [file])

    key = f"acme/recipes/{PRODUCTION}"
    meta = head(seaweedfs, s3_bucket, key)
    assert meta["ETag"].strip('"').endswith("-3")  # a multipart ETag: md5-of-part-md5s, dash, part count
    assert meta["ContentType"] == "image/png"
    assert meta["Metadata"]["order-number"] == "1022"
    assert hashlib.sha256(body(seaweedfs, s3_bucket, key)).digest() == hashlib.sha256(data).digest()


@pytest.mark.usefixtures("s3_secrets")
async def test_redelivery_overwrites_the_same_objects_instead_of_adding_copies(
    destination: S3Destination, integrations: dict[str, S3Integration], s3_bucket: str, seaweedfs: SeaweedS3
) -> None:
    name = "1023_ID_77_R_999-redelivered.json"
    first, second = fetched(name, b'{"v": 1}', "application/json"), fetched(name, b'{"v": 2}', "application/json")
    request = request_for("orders-bucket", first)

    await destination.deliver(integrations["orders-bucket"], request, [first])
    await destination.deliver(integrations["orders-bucket"], request.model_copy(update={"attempt": 2}), [second])

    listing = seaweedfs.client().list_objects_v2(Bucket=s3_bucket, Prefix="acme/recipes/1023_")
    assert [o["Key"] for o in listing["Contents"]] == [f"acme/recipes/{name}"]
    assert body(seaweedfs, s3_bucket, f"acme/recipes/{name}") == b'{"v": 2}'


@pytest.mark.usefixtures("s3_secrets", "s3_bucket")
@pytest.mark.parametrize(
    ("access_key", "secret_key", "code"),
    [
        ("DELIVER_S3_TEST_WRONG_ACCESS_KEY", "DELIVER_S3_TEST_WRONG_SECRET_KEY", "InvalidAccessKeyId"),
        ("DELIVER_S3_TEST_ACCESS_KEY", "DELIVER_S3_TEST_WRONG_SECRET_KEY", "SignatureDoesNotMatch"),
    ],
)
async def test_wrong_credentials_are_a_permanent_error_naming_the_bucket_but_not_the_keys(
    destination: S3Destination,
    integrations: dict[str, S3Integration],
    seaweedfs: SeaweedS3,
    access_key: str,
    secret_key: str,
    code: str,
) -> None:
    integration = integrations["wrong-keys"].model_copy(
        update={
            "access_key_secret": SecretRef(access_key),
            "secret_key_secret": SecretRef(secret_key),
        }
    )
    file = fetched("999-refused.json", b"{}", "application/json")

    with pytest.raises(PermanentError) as refused:
        await destination.deliver(integration, request_for("wrong-keys", file), [file])

    message = str(refused.value)
    assert "'deliver-s3-orders'" in message
    assert code in message
    assert seaweedfs.secret_key not in message
    assert seaweedfs.access_key not in message
    assert "wrong-secret" not in message


@pytest.mark.usefixtures("s3_secrets")
async def test_a_missing_bucket_is_a_permanent_error_naming_it(
    destination: S3Destination, integrations: dict[str, S3Integration]
) -> None:
    file = fetched("999-nowhere.json", b"{}", "application/json")

    with pytest.raises(PermanentError, match=r"bucket 'deliver-s3-no-such-bucket' does not exist \(NoSuchBucket\)"):
        await destination.deliver(integrations["missing-bucket"], request_for("missing-bucket", file), [file])


@pytest.mark.usefixtures("s3_secrets")
async def test_an_unreachable_endpoint_is_a_transient_error(
    destination: S3Destination, integrations: dict[str, S3Integration]
) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    integration = integrations["orders-bucket"].model_copy(update={"endpoint_url": closed})
    file = fetched("999-later.json", b"{}", "application/json")

    with pytest.raises(TransientError, match=r"cannot reach S3 for bucket 'deliver-s3-orders'"):
        await destination.deliver(integration, request_for("orders-bucket", file), [file])


async def test_an_unset_secret_reference_is_a_permanent_error_naming_the_variable(
    destination: S3Destination, integrations: dict[str, S3Integration], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DELIVER_S3_TEST_ACCESS_KEY", raising=False)
    file = fetched("999-unset.json", b"{}", "application/json")

    with pytest.raises(PermanentError, match=r"\$\{DELIVER_S3_TEST_ACCESS_KEY\} is not set"):
        await destination.deliver(integrations["orders-bucket"], request_for("orders-bucket", file), [file])
