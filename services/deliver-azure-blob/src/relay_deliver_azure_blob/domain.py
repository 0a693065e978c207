"""deliver-azure-blob's rules without I/O: where each bundle file lands and what it is tagged with.

Layout: ``<prefix>/<file name>`` in the integration's container, flat. The seed file names already lead with the
order number on the order feed (``1022_ID_6182665224482_R_999-..._Ticket.pdf``) and with the recipe ID on the
recipe feed. The name depends only on the integration and the file name and uploads overwrite, so a redelivery
replaces the same blobs.
"""

from __future__ import annotations

from urllib.parse import quote

from relay_contracts.messages import DeliverBundle
from relay_delivery.naming import prefixed_object_name
from relay_platform.errors import PermanentError

# Blob names are at most 1024 characters.
MAX_BLOB_NAME = 1024


def blob_name(prefix: str, file_name: str) -> str:
    """``<prefix>/<file name>`` (just the name without a prefix), within Azure's blob-name length."""
    name = prefixed_object_name(prefix, file_name, what="a blob name")
    if len(name) > MAX_BLOB_NAME:
        raise PermanentError(f"blob name for {file_name!r} is longer than {MAX_BLOB_NAME} characters")
    return name


def _header_safe(value: str) -> str:
    # Metadata travels as HTTP headers: ASCII only; anything else is percent-encoded.
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def blob_metadata(request: DeliverBundle) -> dict[str, str]:
    """IDs that tie a blob to its recipe, order and delivery; no PII.

    Azure metadata names must be C# identifiers, hence ``recipe_id`` where S3 has ``recipe-id``.
    """
    metadata = {"recipe_id": request.recipe_id, "delivery_id": request.delivery_id}
    if request.order is not None:
        metadata["order_number"] = request.order.order_number
        metadata["order_id"] = request.order.order_id
    return {name: _header_safe(value) for name, value in metadata.items()}
