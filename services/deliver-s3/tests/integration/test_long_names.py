"""Names longer in UTF-8 bytes than S3 tools take: a 128-character non-ASCII order number's file lands in real
SeaweedFS under a deterministically shortened key (255 bytes a segment at most), with its bytes."""

import hashlib
import re
from collections.abc import AsyncIterator

import pytest

from relay_contracts.messages import BundleFile, OrderLine
from relay_deliver_s3.adapters.s3 import open_uploader
from relay_deliver_s3.service import S3Destination
from relay_deliver_s3.settings import MIB, UploadSettings
from relay_delivery import FetchedFile
from relay_delivery.testing import deliver_bundle
from relay_devservers.seaweedfs import SeaweedS3
from relay_platform.tenants import S3Integration

pytestmark = pytest.mark.integration

ORDER_NUMBER = "Заказ-" + "Ж" * 122  # 128 characters, 256 UTF-8 bytes
NAME = f"{ORDER_NUMBER}_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf"  # 179 characters, 307 UTF-8 bytes
UPLOADS = UploadSettings(
    multipart_threshold_bytes=1 * MIB, multipart_part_size_bytes=5 * MIB, client_max_attempts=1, connect_timeout_s=2
)


@pytest.fixture
async def destination() -> AsyncIterator[S3Destination]:
    async with open_uploader(UPLOADS) as uploader:
        yield S3Destination(uploader)


@pytest.mark.usefixtures("s3_secrets")
async def test_a_file_of_a_128_character_non_ascii_order_number_lands_under_a_bounded_key_each_redelivery(
    destination: S3Destination, integrations: dict[str, S3Integration], s3_bucket: str, seaweedfs: SeaweedS3
) -> None:
    data = b"%PDF-1.7 " + "Жж".encode() * 3000
    meta = BundleFile(
        name=NAME, mime_type="application/pdf", size=len(data), sha256=hashlib.sha256(data).hexdigest(), key="b/k"
    )
    file = FetchedFile(meta=meta, data=data)
    order = OrderLine(order_id="6182665224482", order_number=ORDER_NUMBER, item_id="7", item_quantity=1)
    request = deliver_bundle(
        tenant="acme", integration_id="orders-bucket", integration_type="s3", files=(meta,), order=order
    )

    await destination.deliver(integrations["orders-bucket"], request, [file])
    await destination.deliver(integrations["orders-bucket"], request, [file])  # a redelivery: same key

    listed = seaweedfs.client().list_objects_v2(Bucket=s3_bucket, Prefix="acme/recipes/Заказ-")["Contents"]
    [key] = [entry["Key"] for entry in listed]
    name = key.removeprefix("acme/recipes/")
    assert len(NAME.encode()) > 255
    assert len(name.encode()) <= 255
    assert re.fullmatch(r"Заказ-Ж+~[0-9a-f]{8}\.pdf", name)
    body: bytes = seaweedfs.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert body == data
