"""deliver-s3's rules without I/O: which bucket and credentials, where each bundle file lands, what it is tagged with.

Layout: ``<prefix>/<file name>``, flat. The seed file names already lead with the order number on the order feed
(``1022_ID_6182665224482_R_999-..._Ticket.pdf``) and with the recipe ID on the recipe feed, so a listing sorted
by name groups an order's files together without folders. The key depends only on the integration and the file
name, so a redelivery (any attempt of any delivery of the same bundle) overwrites the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from pydantic import SecretStr

from relay_contracts.messages import DeliverBundle
from relay_delivery.naming import prefixed_object_name
from relay_platform.errors import PermanentError
from relay_platform.tenants import S3Integration

# S3 keys are at most 1024 bytes of UTF-8.
MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class S3Target:
    """One integration's bucket and the credentials to write to it (resolved from the environment)."""

    bucket: str
    region: str
    endpoint_url: str | None
    access_key_id: SecretStr
    secret_access_key: SecretStr

    @classmethod
    def of(cls, integration: S3Integration) -> S3Target:
        """Resolve the integration's secret references; a missing variable is a ``PermanentError``."""
        return cls(
            bucket=integration.bucket,
            region=integration.region,
            endpoint_url=integration.endpoint_url,
            access_key_id=integration.access_key_secret.resolve(),
            secret_access_key=integration.secret_key_secret.resolve(),
        )


def object_key(prefix: str, file_name: str) -> str:
    """``<prefix>/<file name>`` (just the name without a prefix), within S3's key length."""
    key = prefixed_object_name(prefix, file_name, what="an object name")
    if len(key.encode()) > MAX_KEY_BYTES:
        raise PermanentError(f"object key for {file_name!r} is longer than {MAX_KEY_BYTES} bytes")
    return key


def _header_safe(value: str) -> str:
    # User metadata travels as HTTP headers: ASCII only; anything else is percent-encoded.
    return value if value.isascii() and value.isprintable() else quote(value, safe="")


def object_metadata(request: DeliverBundle) -> dict[str, str]:
    """IDs that tie an object to its recipe, order and delivery (``x-amz-meta-*``); no PII."""
    metadata = {"recipe-id": request.recipe_id, "delivery-id": request.delivery_id}
    if request.order is not None:
        metadata["order-number"] = request.order.order_number
        metadata["order-id"] = request.order.order_id
    return {name: _header_safe(value) for name, value in metadata.items()}
