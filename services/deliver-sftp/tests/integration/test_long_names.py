"""Names longer in UTF-8 bytes than a file system takes: an order number of 128 non-ASCII characters and a long
file name land on the real OpenSSH server under deterministically shortened names, with the right bytes."""

import hashlib
import uuid

import pytest
from faststream import FastStream

from relay_contracts.messages import BundleFile, OrderLine
from relay_deliver_sftp.domain import FINAL_NAME_MAX
from relay_delivery.testing import OutcomeCollector, deliver_bundle
from relay_devservers.sftp import SftpAccount
from relay_platform.naming import SEGMENT_MAX_BYTES, fit_file_name, fit_utf8
from relay_platform.objectstore import LocalDirectoryStore

pytestmark = pytest.mark.integration

ORDER_NUMBER = "Заказ-" + "Ж" * 122  # 128 characters, 256 UTF-8 bytes
LONG_NAME = f"{'Ж' * 120}_Ticket.pdf"  # 251 bytes: no room left for the temporary name's suffix
SHORT_NAME = "999-63CHGJokGoxPfSba.json"


async def test_an_order_number_of_128_non_ascii_characters_lands_in_a_bounded_folder_with_bounded_names(
    sftp_app: FastStream, outcomes: OutcomeCollector, store: LocalDirectoryStore, openssh_sftp: SftpAccount
) -> None:
    contents = {LONG_NAME: b"%PDF-1.7 " + "Жж".encode() * 5000, SHORT_NAME: b'{"recipeId": "999-63CHGJokGoxPfSba"}'}
    folder = f"bundles/{uuid.uuid4().hex}"
    refs = []
    for number, (name, data) in enumerate(contents.items()):
        await store.put(f"{folder}/{number}.bin", data, content_type="application/octet-stream")
        refs.append(
            BundleFile(
                name=name,
                mime_type="application/octet-stream",
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                key=f"{folder}/{number}.bin",
            )
        )
    order = OrderLine(order_id="6182665224482", order_number=ORDER_NUMBER, item_id="7", item_quantity=1)
    request = deliver_bundle(
        tenant="acme", integration_id="openssh-password", integration_type="sftp", files=tuple(refs), order=order
    )

    await outcomes.publish(request)
    [outcome] = await outcomes.wait_for(request.delivery_id)

    assert (outcome.status, outcome.final) == ("succeeded", True), outcome.error_message
    directory = openssh_sftp.root / "outbox" / fit_utf8(ORDER_NUMBER, SEGMENT_MAX_BYTES)
    landed = {path.name: path.read_bytes() for path in directory.iterdir()}
    assert landed == {fit_file_name(LONG_NAME, FINAL_NAME_MAX): contents[LONG_NAME], SHORT_NAME: contents[SHORT_NAME]}
    assert all(len(name.encode()) <= FINAL_NAME_MAX for name in landed)
    assert len(directory.name.encode()) <= SEGMENT_MAX_BYTES
    assert directory.name.startswith("Заказ-ЖЖЖ")
