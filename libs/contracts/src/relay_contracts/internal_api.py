"""The association store's internal HTTP API, read by ingest-api: paths, query parameters and answer bodies.

The one synchronous call between services. Orders and the delivery log live in the association store; the ingest
API answers its public lookups, audits and manual triggers from them. Both sides use these models: the store
serialises its answers with them, the ingest API parses them (and relays them unchanged to its callers).

``GET /internal/v1/orders?tenant=<t>&(orderNumber|orderId|recipeId)=<v>[&after=<orderId>]`` -> ``OrdersPage``
(pages of ``ORDERS_PAGE_SIZE`` by order ID in the database's collation; ``next`` is passed back as ``after``).

``GET /internal/v1/audit?tenant=<t>&olderThanS=<s>&limit=<n>`` -> ``AuditReport``.

``GET /internal/v1/orders/recent?tenant=<t>[&limit=<n>][&after=<cursor>]`` -> ``OrdersPage``, newest first (by the
order's last applied event, then order ID); ``next`` is an opaque cursor passed back as ``after``.

``GET /internal/v1/deliveries?tenant=<t>&status=<failed|retrying|pending|succeeded>[&integration=<id>]
[&since=<RFC 3339>][&until=<RFC 3339>][&replayed=false][&withTotal=true][&limit=<n>][&after=<cursor>]`` ->
``DeliveriesPage``, newest change first; ``status=failed`` lists final failures only (each has a dead letter), the
console's "Dead letters" and the replay's selection; ``replayed=false`` leaves out those a bulk replay already
re-triggered; ``withTotal=true`` adds how many match in all.

Each delivery in these three answers says whether it is ``held``: not ended while its integration is paused (read
from the tenant's integration states when answering, never stored with the delivery), and why (``heldCause``).

``GET /internal/v1/integrations/stats?tenant=<t>[&sinceS=<s>]`` -> ``IntegrationStats``: per integration, its
deliveries by status changed within the window, and the delivery state (active / paused) of each integration that
was ever paused or resumed (its newest change; the others are active).

Every answer is strictly within ``tenant``. ``/internal/*`` needs ``Authorization: Bearer <token>`` (the store's
``ASSOCIATION_STORE_API_TOKEN``, the ingest API's ``INGEST_API_ASSOCIATION_STORE_TOKEN``) whenever a token is
configured; ``/healthz`` and ``/readyz`` stay open. Errors are ``ApiError`` bodies: 400 for a bad query (the message
names the parameter), 401 without the token, 503 when the database does not answer.

Answer models allow fields they do not name (``extra="allow"``): a newer store may add some, and the ingest API
relays them rather than dropping them.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidatorFunctionWrapHandler, field_validator
from pydantic.alias_generators import to_camel

ORDERS_PATH = "/internal/v1/orders"
RECENT_ORDERS_PATH = "/internal/v1/orders/recent"
DELIVERIES_PATH = "/internal/v1/deliveries"
INTEGRATION_STATS_PATH = "/internal/v1/integrations/stats"
AUDIT_PATH = "/internal/v1/audit"
HEALTH_PATHS = frozenset({"/healthz", "/readyz"})

OrderLookupField = Literal["orderNumber", "orderId", "recipeId"]
ORDER_LOOKUP_FIELDS: tuple[OrderLookupField, ...] = get_args(OrderLookupField)

ORDERS_PAGE_SIZE = 100
MAX_QUERY_TEXT = 128
"""Longest ``tenant``, lookup value or ``after`` the API takes."""
DEFAULT_AUDIT_OLDER_THAN_S = 15 * 60
MAX_AUDIT_OLDER_THAN_S = 3650 * 24 * 3600
"""Ten years: far past any retention, still a representable cutoff."""
DEFAULT_PAGE_LIMIT = 25
MAX_PAGE_LIMIT = 100
MAX_CURSOR_TEXT = 512
"""Longest ``after`` cursor of the newest-first lists (an encoded instant and an ID of up to 128 characters)."""
DEFAULT_STATS_WINDOW_S = 24 * 3600
MAX_STATS_WINDOW_S = 90 * 24 * 3600
MAX_ATTEMPT_LOG = 50
"""Attempts listed per delivery (the newest); a delivery has three by default, a replayed one a few more."""
DeliveryListStatus = Literal["failed", "retrying", "pending", "succeeded"]
DELIVERY_LIST_STATUSES: tuple[DeliveryListStatus, ...] = get_args(DeliveryListStatus)
HeldCause = Literal["operator", "unhealthy"]
"""Why a delivery is held: its integration was paused by an operator, or by the destination-health rules."""
DEFAULT_AUDIT_LIMIT = 100
MAX_AUDIT_LIMIT = 1000
TRACEPARENT_LENGTH = 55
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
"""A W3C trace-context ``traceparent`` (version, trace ID, parent span ID, flags), lowercase hex as the spec has it."""


class InternalApiModel(BaseModel):
    """camelCase on the wire; fields this version does not name are kept (see the module docstring)."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_alias=True, validate_by_name=True, serialize_by_alias=True, extra="allow"
    )


class FoundItem(InternalApiModel):
    recipe_id: str
    item_id: str
    item_quantity: int


class AttemptEntry(InternalApiModel):
    """One outcome of one attempt, as the delivery log recorded it."""

    attempt: int = Field(ge=1)
    status: str = Field(description="`succeeded`, `retrying` or `failed`.")
    at: str = Field(description="RFC 3339 UTC: when the attempt ended (the outcome's occurredAt).")
    error_class: str | None = None
    error: str | None = Field(default=None, description="The failure, secrets scrubbed.")


class FoundDelivery(InternalApiModel):
    delivery_id: str | None = Field(default=None, description="The delivery's ID (stable across its attempts).")
    integration: str = Field(description="Integration ID.")
    type: str = Field(description="Integration type: email, sftp, s3, azure-blob or zapier.")
    recipe_id: str
    trigger: str = Field(description="Why it was triggered: order_linked, order_created, ..., recipe_saved, manual.")
    status: str = Field(
        description="`pending` (triggered, no outcome yet), `retrying`, `succeeded` or `failed`; more may appear."
    )
    attempts: int
    last_error: str | None = Field(default=None, description="The last failure, secrets scrubbed.")
    files: list[str] = Field(default_factory=list, description="Names of the files delivered.")
    updated_at: str | None = Field(default=None, description="RFC 3339 UTC: the delivery's last change.")
    attempt_log: list[AttemptEntry] = Field(
        default_factory=list, description=f"Its attempts, oldest first (the newest {MAX_ATTEMPT_LOG})."
    )
    held: bool = Field(
        default=False,
        description="True when it has not ended (`pending` or `retrying`) and its integration is paused now: it is "
        "not attempted until the integration is resumed (or, paused as unhealthy, until a probe succeeds).",
    )
    held_cause: HeldCause | None = Field(
        default=None,
        description="Why it is held: `operator` (paused by the API or the console) or `unhealthy` (paused by the "
        "destination-health rules after consecutive failed attempts); null when not held.",
    )


class FoundOrder(InternalApiModel):
    order_id: str
    order_number: str
    status: str | None = Field(default=None, description="`open`, `cancelled`, `refunded` or `returned`.")
    items: list[FoundItem] = Field(default_factory=list)
    deliveries: list[FoundDelivery] = Field(default_factory=list)
    updated_at: str | None = Field(default=None, description="RFC 3339 UTC: the newest event applied to the order.")
    trace_parent: str | None = Field(
        default=None,
        max_length=TRACEPARENT_LENGTH,
        pattern=TRACEPARENT_PATTERN,
        description="The W3C `traceparent` of the order's original trace (its first event's), for a re-trigger to "
        "link to; null when unknown.",
    )

    @field_validator("trace_parent", mode="wrap")
    @classmethod
    def _unusable_trace_is_unknown(cls, value: object, handler: ValidatorFunctionWrapHandler) -> str | None:
        # Only tracing reads it: a value that is not a traceparent is dropped, never a reason to refuse the order.
        try:
            result: str | None = handler(value)
        except ValidationError:
            return None
        return result


class OrdersPage(InternalApiModel):
    orders: list[FoundOrder]
    next: str | None = Field(
        default=None,
        description="More orders match: pass this back unchanged as `after` for the next page (a lookup's pages "
        "come by order ID, the recent orders newest first).",
    )


class ListedDelivery(InternalApiModel):
    """A delivery in a newest-first list (``DeliveriesPage``)."""

    delivery_id: str
    order_id: str | None = Field(default=None, description="Null for the raw recipe feed.")
    order_number: str | None = None
    recipe_id: str
    integration: str = Field(description="Integration ID.")
    type: str = Field(description="Integration type: email, sftp, s3, azure-blob or zapier.")
    trigger: str = Field(description="Why it was triggered: order_linked, order_created, ..., recipe_saved, manual.")
    status: str
    final: bool
    attempts: int = Field(ge=0)
    last_error: str | None = Field(default=None, description="The last failure, secrets scrubbed.")
    updated_at: str = Field(description="RFC 3339 UTC: the delivery's last change.")
    item_id: str | None = Field(default=None, description="The order line it was made for, when known.")
    replayed_by: str | None = Field(
        default=None, description="The trigger ID of the bulk replay that re-triggered it; null when not replayed."
    )
    held: bool = Field(
        default=False,
        description="True when it has not ended (`pending` or `retrying`) and its integration is paused now: it is "
        "not attempted until the integration is resumed (or, paused as unhealthy, until a probe succeeds).",
    )
    held_cause: HeldCause | None = Field(
        default=None,
        description="Why it is held: `operator` (paused by the API or the console) or `unhealthy` (paused by the "
        "destination-health rules after consecutive failed attempts); null when not held.",
    )


class DeliveriesPage(InternalApiModel):
    deliveries: list[ListedDelivery]
    next: str | None = Field(default=None, description="More match: pass this as `after` for the next page.")
    total: int | None = Field(default=None, ge=0, description="How many match in all (asked with `withTotal=true`).")


class IntegrationCounts(InternalApiModel):
    """One integration's deliveries whose last change is within the window, by status."""

    integration: str = Field(description="Integration ID.")
    succeeded: int = Field(default=0, ge=0)
    failed: int = Field(default=0, ge=0, description="Final failures.")
    retrying: int = Field(default=0, ge=0)
    pending: int = Field(default=0, ge=0)
    last_success_at: str | None = Field(default=None, description="RFC 3339 UTC, within the window.")
    last_failure_at: str | None = Field(default=None, description="RFC 3339 UTC of the last final failure.")


class IntegrationStateEntry(InternalApiModel):
    """One integration's delivery state: its newest pause or resume (``integrations.control.v1``)."""

    integration: str = Field(description="Integration ID.")
    state: Literal["active", "paused"] = Field(description="`paused`: its deliveries are held until it is resumed.")
    changed_at: str = Field(description="RFC 3339 UTC: when it was paused or resumed.")
    reason: str | None = Field(
        default=None, description="Why, in the operator's words, or what the destination-health rules saw."
    )
    cause: Literal["operator", "unhealthy", "recovered"] = Field(
        default="operator",
        description="Who changed it: `operator` (the API, the console), `unhealthy` (paused by the destination-health "
        "rules after consecutive failed attempts; deliveries held) or `recovered` (resumed after a probe succeeded).",
    )
    changed_by: str | None = Field(
        default=None,
        description="Who: the API key's name (never the key) or `destination-health`; null when not said.",
    )


class IntegrationStats(InternalApiModel):
    window_s: int = Field(ge=1)
    integrations: list[IntegrationCounts]
    states: list[IntegrationStateEntry] = Field(
        default_factory=list,
        description="Each integration ever paused or resumed, with its newest change; one not listed is active.",
    )


class AuditDelivery(InternalApiModel):
    """A delivery that has not ended (not final) and has not changed within the deadline."""

    delivery_id: str
    order_id: str | None = Field(default=None, description="Null for the raw recipe feed.")
    order_number: str | None = None
    recipe_id: str
    integration: str = Field(description="Integration ID.")
    type: str = Field(description="Integration type: email, sftp, s3, azure-blob or zapier.")
    trigger: str = Field(description="Why it was triggered: order_linked, order_created, ..., recipe_saved, manual.")
    trigger_id: str
    status: str = Field(description="`pending` (no outcome yet) or `retrying`; more may appear.")
    attempts: int = Field(ge=0)
    last_error: str | None = None
    last_change: str = Field(description="RFC 3339 UTC: the last outcome, or when a pending delivery was recorded.")
    created_at: str | None = Field(default=None, description="RFC 3339 UTC: when the delivery was first recorded.")
    triggered_at: str | None = Field(default=None, description="RFC 3339 UTC: the trigger's occurredAt, if seen.")
    reason: str = Field(description="`no outcome yet since <time>` or `retrying: <last error>`.")


class AuditReport(InternalApiModel):
    """The tenant's deliveries that have not ended within the deadline, newest change first."""

    tenant: str
    older_than_s: int = Field(ge=0, description="The deadline in seconds.")
    cutoff: str = Field(description="RFC 3339 UTC: deliveries last changed before this instant are listed.")
    limit: int = Field(ge=1, le=MAX_AUDIT_LIMIT)
    truncated: bool = Field(description="More deliveries matched than `limit`; the oldest are left out.")
    deliveries: list[AuditDelivery]


class ApiError(InternalApiModel):
    error: Literal["bad_request", "unauthorized", "unavailable"]
    message: str
