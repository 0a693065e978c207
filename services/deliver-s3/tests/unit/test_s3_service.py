"""Object keys, metadata and part sizes: deterministic, PII-free, within S3's limits."""

import pytest

from relay_contracts.messages import OrderLine
from relay_deliver_s3.adapters.s3 import S3Uploader
from relay_deliver_s3.domain import object_key, object_metadata
from relay_deliver_s3.settings import MIB, UploadSettings
from relay_delivery.testing import deliver_bundle
from relay_platform.errors import PermanentError


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", "999-abc-Ticket.pdf"),
        ("recipes", "recipes/999-abc-Ticket.pdf"),
        ("/acme//recipes/", "acme/recipes/999-abc-Ticket.pdf"),
    ],
)
def test_key_is_the_normalised_prefix_and_the_file_name(prefix: str, expected: str) -> None:
    assert object_key(prefix, "999-abc-Ticket.pdf") == expected


@pytest.mark.parametrize("name", ["", ".", "..", "a/b.pdf", "a\\b.pdf", "bad\nname.pdf"])
def test_a_file_name_that_is_not_a_plain_name_is_refused(name: str) -> None:
    with pytest.raises(PermanentError, match="cannot be used as an object name"):
        object_key("recipes", name)


def test_a_prefix_that_leaves_no_room_within_s3_key_length_is_refused() -> None:
    with pytest.raises(PermanentError, match="too long for an object name within 1024"):
        object_key("/".join(["p" * 200] * 5), "x" * 30)
    with pytest.raises(PermanentError, match="segment over 255 UTF-8 bytes"):
        object_key("p" * 1000, "x" * 30)


def test_a_long_non_ascii_file_name_is_shortened_deterministically_within_s3_limits() -> None:
    name = "Ж" * 200 + ".pdf"  # 404 UTF-8 bytes

    key = object_key("acme/orders", name)

    assert key == object_key("acme/orders", name)
    assert key.startswith("acme/orders/ЖЖ")
    assert key.endswith(".pdf")
    assert len(key.rsplit("/", 1)[1].encode()) <= 255
    assert len(key.encode()) <= 1024
    assert key != object_key("acme/orders", "Ж" * 199 + "Й.pdf")


def test_metadata_carries_recipe_order_and_delivery_ids_only() -> None:
    order = OrderLine(order_id="6182665224482", order_number="1022", item_id="7", item_quantity=3)
    request = deliver_bundle(tenant="acme", integration_id="s3", integration_type="s3", files=(), order=order)

    assert object_metadata(request) == {
        "recipe-id": "999-63CHGJokGoxPfSba",
        "delivery-id": request.delivery_id,
        "order-number": "1022",
        "order-id": "6182665224482",
    }


def test_recipe_feed_metadata_has_no_order_fields_and_non_ascii_is_percent_encoded() -> None:
    request = deliver_bundle(tenant="acme", integration_id="s3", integration_type="s3", files=(), recipe_id="999-é")

    assert object_metadata(request) == {"recipe-id": "999-%C3%A9", "delivery-id": request.delivery_id}


def test_part_size_grows_so_a_huge_file_needs_at_most_ten_thousand_parts() -> None:
    uploader = S3Uploader(pool=None, settings=UploadSettings(multipart_part_size_bytes=5 * MIB))  # type: ignore[arg-type]

    assert uploader.part_size(20 * MIB) == 5 * MIB
    assert uploader.part_size(100_000 * MIB) == 10 * MIB
