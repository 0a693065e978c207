"""The OMS-facing HTTP bodies (seed 002 associations, seed 003 lifecycle events) and their field allow-lists.

The ingest API validates ``POST /api/v2/recipe/order`` and ``POST /api/v2/orders/events`` with these models (and
builds their OpenAPI schemas from them); ``relay sync associations`` checks each line of a file with the very same
models before sending it, so a line the API would refuse is reported by its line number instead of failing a batch.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr
from pydantic.alias_generators import to_camel

from relay_contracts.messages import ID_TEXT
from relay_contracts.types import ID_PATTERN, check_id_text, check_utc_instant

# Seed 002: only non-personal metadata survives; everything else is dropped before it is published, sent or logged.
ASSOCIATION_FIELDS = frozenset({"recipeId", "orderNumber", "orderId", "itemId", "itemQuantity"})
LIFECYCLE_FIELDS = frozenset({"eventId", "type", "orderId", "orderNumber", "items", "occurredAt"})
LIFECYCLE_ITEM_FIELDS = frozenset({"recipeId", "itemId", "itemQuantity"})

# The pattern documents the rule (no control characters, U+FFFD or lone surrogates, not blank); check_id_text is it.
Id = Annotated[
    StrictStr,
    Field(min_length=1, max_length=ID_TEXT, json_schema_extra={"pattern": ID_PATTERN}),
    AfterValidator(check_id_text),
]


def _json_integer(value: object) -> object:
    # JSON Schema's "integer" includes 2.0; strings, booleans and 2.5 stay errors (StrictInt).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


Quantity = Annotated[StrictInt, Field(ge=0, le=1_000_000), BeforeValidator(_json_integer)]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


def _rfc3339_text(value: object) -> object:
    # pydantic alone would also take epoch numbers and other ISO shapes; seed 003 asks for RFC 3339 strings.
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError("must be an RFC 3339 date-time with a time zone, e.g. 2025-01-31T12:00:00Z")
    return value


# Years 1-9998 once in UTC (check_utc_instant): 0001-01-01T00:00:00+01:00 has no UTC form at all.
Rfc3339 = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(check_utc_instant)]


class ApiModel(BaseModel):
    """Wire names are exactly the seed's camelCase names; unknown fields are scrubbed before validation."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,  # harmless: the scrub keeps only camelCase keys
        serialize_by_alias=True,
        frozen=True,
        # Unknown fields are dropped by the PII scrub (and counted), not rejected: the schema allows them.
        extra="ignore",
    )


class OrderAssociation(ApiModel):
    """Seed 002: one order-to-recipe association descriptor."""

    recipe_id: Id = Field(description="Recipe ID used on an item.")
    order_number: Id = Field(description="Order number.")
    order_id: Id | None = Field(default=None, description="Order ID, if different from order number.")
    item_id: Id = Field(description="Line item ID.")
    item_quantity: Quantity = Field(description="Line item quantity.")


class LifecycleItem(ApiModel):
    recipe_id: Id
    item_id: Id
    item_quantity: Quantity


LifecycleType = Literal["created", "updated", "cancelled", "refunded", "returned"]


class OrderLifecycleEvent(ApiModel):
    """Something happened to an order in the OMS (seed 003: batches, safe resends, occurred_at)."""

    event_id: Id | None = Field(
        default=None, description="Idempotency key; derived from the business keys and occurredAt when absent."
    )
    type: LifecycleType
    order_id: Id
    order_number: Id
    items: Annotated[list[LifecycleItem], Field(max_length=1000)] | None = Field(
        default=None, description="The order's full item list; absent means unchanged."
    )
    occurred_at: Rfc3339 = Field(
        description="When it happened in the OMS (RFC 3339 with a time zone; years 0001-9998 once in UTC)."
    )
