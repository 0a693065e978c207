"""Blob names and metadata: deterministic, PII-free, within Azure's limits."""

import pytest

from relay_contracts.messages import OrderLine
from relay_deliver_azure_blob.domain import blob_metadata, blob_name
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
def test_blob_name_is_the_normalised_prefix_and_the_file_name(prefix: str, expected: str) -> None:
    assert blob_name(prefix, "999-abc-Ticket.pdf") == expected


@pytest.mark.parametrize("name", ["", ".", "..", "a/b.pdf", "a\\b.pdf", "bad\tname.pdf"])
def test_a_file_name_that_is_not_a_plain_name_is_refused(name: str) -> None:
    with pytest.raises(PermanentError, match="cannot be used as a blob name"):
        blob_name("recipes", name)


def test_a_prefix_that_leaves_no_room_within_azure_limits_is_refused() -> None:
    with pytest.raises(PermanentError, match="too long for a blob name within 1024"):
        blob_name("/".join(["p" * 200] * 5), "x" * 30)
    with pytest.raises(PermanentError, match="more than 253 segments"):
        blob_name("/".join(["p"] * 254), "x.pdf")


def test_a_long_non_ascii_file_name_is_shortened_deterministically_within_azure_limits() -> None:
    name = "\U0001d518" * 120 + ".pdf"  # 484 UTF-8 bytes

    blob = blob_name("in", name)

    assert blob == blob_name("in", name)
    assert blob.endswith(".pdf")
    assert len(blob.rsplit("/", 1)[1].encode()) <= 255
    assert blob != blob_name("in", "\U0001d518" * 119 + "\U0001d519.pdf")


def test_metadata_uses_identifier_names_and_carries_recipe_order_and_delivery_ids_only() -> None:
    order = OrderLine(order_id="6182665224482", order_number="1022", item_id="7", item_quantity=3)
    request = deliver_bundle(tenant="acme", integration_id="blob", integration_type="azure-blob", files=(), order=order)

    assert blob_metadata(request) == {
        "recipe_id": "999-63CHGJokGoxPfSba",
        "delivery_id": request.delivery_id,
        "order_number": "1022",
        "order_id": "6182665224482",
    }


def test_recipe_feed_metadata_has_no_order_fields_and_non_ascii_is_percent_encoded() -> None:
    request = deliver_bundle(
        tenant="acme", integration_id="blob", integration_type="azure-blob", files=(), recipe_id="999-é"
    )

    assert blob_metadata(request) == {"recipe_id": "999-%C3%A9", "delivery_id": request.delivery_id}
