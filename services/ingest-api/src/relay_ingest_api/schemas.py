"""The HTTP API's request and response bodies; their JSON Schemas also build the OpenAPI document. The OMS-facing
ones (associations, lifecycle events) live in ``relay_contracts.oms_api``, shared with ``relay sync``.

Lookups and audits answer with the association store's bodies, relayed unchanged: their models are the internal
API's (``relay_contracts.internal_api``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)

from relay_contracts.messages import Feed, IntegrationState, StateChangeCause
from relay_contracts.oms_api import ApiModel, Id, Rfc3339


class Accepted(ApiModel):
    accepted: int = Field(ge=0, description="Events published (durably) for this request.")
    dropped_fields: int = Field(ge=0, description="Fields discarded by the PII allow-list.")


class RecipeCreated(ApiModel):
    id: str
    url: str = Field(description="Where the recipe JSON is served.")


class Problem(ApiModel):
    pointer: str = Field(description="JSON pointer (RFC 6901) into the request body; `/<name>` for a query parameter.")
    message: str


class ErrorBody(ApiModel):
    error: str = Field(description="Stable machine-readable code.")
    message: str
    problems: list[Problem] | None = None


class Health(ApiModel):
    status: Literal["ok"]


class Readiness(ApiModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, Literal["up", "down"]]


class TriggerRequest(ApiModel):
    """A manual trigger (seed 000 "Trigger Integrations"): exactly one of ``recipeId``, ``orderId``, ``orderNumber``."""

    # An operator's command, not an OMS feed: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": [name]} for name in ("recipeId", "orderId", "orderNumber")]},
    )

    recipe_id: Id | None = Field(
        default=None, description="Re-run every order using this recipe, plus the raw recipe feed."
    )
    order_id: Id | None = Field(default=None, description="Re-run this order's items.")
    order_number: Id | None = Field(default=None, description="Re-run the items of the order(s) with this number.")
    integration_ids: Annotated[list[Id], Field(min_length=1, max_length=100)] | None = Field(
        default=None,
        description="Only these integrations (each an enabled integration of the caller's tenant); "
        "default: every enabled integration taking the feed.",
    )


class TriggerSummary(ApiModel):
    trigger_id: str = Field(description="New for every manual trigger, so deliveries get new IDs.")
    feed: Literal["recipe", "order"]
    recipe_id: str
    order_id: str | None = None
    order_number: str | None = None
    item_id: str | None = None
    integration_ids: list[str]


class TriggersAccepted(ApiModel):
    triggered: int = Field(ge=0, description="Triggers durably published to integrations.triggered.v1.")
    triggers: list[TriggerSummary]


class ReplayRequest(ApiModel):
    """A bulk replay: re-trigger the tenant's final failures in a window, a batch at a time."""

    # An operator's command: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    since: Rfc3339 = Field(description="Failures whose last change is at or after this instant.")
    until: Rfc3339 | None = Field(default=None, description="...and at or before this one (default: now).")
    integration_id: Id | None = Field(
        default=None, description="Only this integration (one of the caller's tenant's); default: all."
    )
    status: Literal["failed"] = Field(
        default="failed", description="What to replay: deliveries that failed for good (each has a dead letter)."
    )
    # Strict: "yes" or 1 is a mistake to name, not a switch to guess.
    dry_run: StrictBool = Field(default=False, description="Only count what would be replayed; nothing is sent.")
    limit: Annotated[StrictInt, Field(ge=1, le=100)] = Field(default=25, description="At most this many per call.")
    after: Annotated[StrictStr, Field(min_length=1, max_length=512)] | None = Field(
        default=None, description="The previous answer's `next`: the following batch."
    )


class ReplayedDelivery(ApiModel):
    delivery_id: str = Field(description="The failed delivery that was re-triggered.")
    replay_trigger_id: str = Field(description="The trigger that re-sends it (the same for every replay of it).")
    integration: str
    order_id: str | None = None
    order_number: str | None = None
    recipe_id: str


class ReplayAccepted(ApiModel):
    dry_run: bool
    matched: int = Field(ge=0, description="Failures in the window not replayed yet (before this batch).")
    replayed: int = Field(ge=0, description="Re-triggered by this call (durably published).")
    skipped: int = Field(
        default=0, ge=0, description="Left out of this batch: their integration is no longer configured or enabled."
    )
    deliveries: list[ReplayedDelivery]
    next: str | None = Field(description="Pass back as `after` for the next batch; null when this was the last.")


class DeliveryCounts(ApiModel):
    succeeded: int = Field(ge=0)
    failed: int = Field(ge=0, description="Final failures (each has a dead letter).")
    retrying: int = Field(ge=0)
    pending: int = Field(ge=0, description="Triggered, no outcome yet.")


class IntegrationOverview(ApiModel):
    """One of the tenant's integrations as an operator may see it: never its hosts, user names, addresses,
    notification lists or secrets."""

    id: str
    type: str = Field(description="email, sftp, s3, azure-blob or zapier.")
    description: str
    feeds: list[Feed]
    enabled: bool
    counts: DeliveryCounts = Field(description="Its deliveries whose last change is within the window, by status.")
    window_hours: int = Field(ge=1, description="The window of `counts`, in hours.")
    last_success_at: str | None = Field(description="RFC 3339 UTC of the last success within the window.")
    last_failure_at: str | None = Field(description="RFC 3339 UTC of the last final failure within the window.")
    state: IntegrationState = Field(
        default="active", description="`paused`: its deliveries are held (not attempted) until it is resumed."
    )
    state_changed_at: str | None = Field(
        default=None, description="RFC 3339 UTC of its last pause or resume; null when it never had one."
    )
    state_reason: str | None = Field(default=None, description="Why it was last paused or resumed, if said.")
    state_cause: StateChangeCause = Field(
        default="operator",
        description="Why `state` last changed: `operator` (a pause or resume by the API or the console; also when it "
        "never changed), `unhealthy` (paused by the destination-health rules after consecutive failed attempts: its "
        "deliveries are held and probed; an operator may resume it) or `recovered` (resumed after a probe delivery "
        "succeeded).",
    )
    state_changed_by: str | None = Field(
        default=None,
        description="Who last paused or resumed it: the API key's name (never the key) or `destination-health`; "
        "null when it never changed or it was not said.",
    )


class IntegrationsOverview(ApiModel):
    integrations: list[IntegrationOverview] = Field(description="The caller's tenant's integrations, as configured.")


MAX_STATE_REASON = 200


def _reason_text(value: str) -> str | None:
    # Shown in the console and kept in the store: one line of visible text; blank means no reason.
    text = value.strip()
    if not text:
        return None
    if not text.isprintable() or "\ufffd" in text:
        raise ValueError("must be printable text (no control characters or line breaks)")
    return text


Reason = Annotated[StrictStr, Field(max_length=MAX_STATE_REASON), AfterValidator(_reason_text)]


class IntegrationStateRequest(ApiModel):
    """A pause or a resume; the body is optional."""

    # An operator's command: a misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = Field(
        default=None,
        description=f"Why, in the operator's words: at most {MAX_STATE_REASON} printable characters, one line "
        "(blank means none). Shown on the console's Integrations page.",
    )


class IntegrationStateAccepted(ApiModel):
    integration_id: str
    state: IntegrationState
    changed_at: str = Field(description="RFC 3339 UTC: when the change was made (the newest change wins).")


class ShopifyAccepted(ApiModel):
    """The answer to a Shopify order webhook (any 2xx tells Shopify the delivery arrived)."""

    accepted: int = Field(ge=0, le=1, description="Order events published (durably) for this delivery: 0 or 1.")
    ignored_items: int = Field(
        default=0, ge=0, description="Line items whose recipe property names no recipe of this tenant: left out."
    )
    ignored: Literal["topic", "no_recipe_items", "order_unknown"] | None = Field(
        default=None,
        description="Why nothing was published: a topic this API does not handle, no line item with one of the "
        "tenant's recipes, or a refund of an order never recorded (the orders/updated that follows carries it).",
    )
