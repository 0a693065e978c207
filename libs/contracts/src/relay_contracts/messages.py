"""Pydantic models of every message on every topic; JSON field names are camelCase on the wire."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    DELIVERIES_RETRY,
    INTEGRATION_TYPES,
    INTEGRATIONS_CONTROL,
    INTEGRATIONS_TRIGGERED,
    ORDERS_EVENTS,
    RECIPES_SAVED,
    IntegrationType,
    deliveries_requested,
)
from relay_contracts.types import IdText, UtcInstant

SHORT_TEXT = 200
ID_TEXT = 128


class Message(BaseModel):
    """Base of every message: camelCase aliases, immutable, unknown fields ignored (forward compatible)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        frozen=True,
        extra="ignore",
    )


def stable_id(*parts: str) -> str:
    """A deterministic ID from business keys, so a redelivered input yields the same downstream ID."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:32]


# --- recipes.saved.v1 ------------------------------------------------------------------------------------------


class RecipeSaved(Message):
    """A recipe was validated and stored; the JSON itself stays in the object store (claim check)."""

    schema_version: Literal[1] = 1
    event_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    tenant: IdText = Field(min_length=1, max_length=ID_TEXT)
    recipe_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    recipe_key: str = Field(min_length=1, max_length=512, description="Object-store key of the recipe JSON.")
    temporary: bool = False
    name: str | None = Field(default=None, max_length=SHORT_TEXT * 5)
    style_code: str | None = Field(default=None, max_length=SHORT_TEXT)
    created: UtcInstant
    occurred_at: UtcInstant


# --- orders.events.v1 ------------------------------------------------------------------------------------------

OrderEventType = Literal["linked", "created", "updated", "cancelled", "refunded", "returned"]


class OrderItem(Message):
    """One line item of an order that uses a recipe. Only non-personal metadata (seed 002)."""

    recipe_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    item_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    item_quantity: int = Field(ge=0, le=1_000_000)


class _OrderEventFields(Message):
    """What every order event says, whoever publishes it."""

    schema_version: Literal[1] = 1
    event_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    type: OrderEventType
    order_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    order_number: IdText = Field(min_length=1, max_length=ID_TEXT)
    items: tuple[OrderItem, ...] | None = Field(default=None, max_length=1000)
    occurred_at: UtcInstant


class OrderEventOccurred(_OrderEventFields):
    """Something happened to an order: a recipe linked to a line item, or a lifecycle change.

    Keyed by ``tenant:orderId`` so one order's events stay in order. ``items`` absent means "unchanged";
    for ``linked`` it holds the linked item(s); for ``created``/``updated`` it is the order's full item list.
    Only Recipe Relay's ingest-api publishes ``orders.events.v1`` (its tenant comes from the caller's API key);
    an OMS publishes ``OmsOrderEvent`` to its own tenant's topic instead.
    """

    tenant: IdText = Field(min_length=1, max_length=ID_TEXT)

    @property
    def kafka_key(self) -> bytes:
        return order_key(self.tenant, self.order_id)


class OmsOrderEvent(_OrderEventFields):
    """An order event an OMS publishes to its tenant's own topic (``oms-topic``, default ``oms.<tenant>.orders.v1``).

    The tenant is the topic's: ``tenant`` may be left out, and when given it must name the topic's tenant (a
    mismatch is dead-lettered, never applied to either tenant). Key by ``orderId`` for per-order order.
    """

    tenant: IdText | None = Field(default=None, min_length=1, max_length=ID_TEXT)

    def for_tenant(self, tenant: str) -> OrderEventOccurred:
        """The event as the topic's ``tenant`` says it happened; ``ValueError`` when the payload names another."""
        if self.tenant is not None and self.tenant != tenant:
            msg = "the payload's tenant is not the topic's tenant"
            raise ValueError(msg)
        return OrderEventOccurred.model_validate({**self.model_dump(exclude={"tenant"}), "tenant": tenant})


def order_key(tenant: str, order_id: str) -> bytes:
    """Partition key for ``orders.events.v1``: per-order ordering."""
    return f"{tenant}:{order_id}".encode()


def delivery_key(delivery_id: str) -> bytes:
    """Partition key for ``deliveries.*``: the attempts of one delivery stay in order, while many deliveries of
    one popular recipe still spread over every partition (and so over every deliverer replica)."""
    return delivery_id.encode()


# --- integrations.triggered.v1 ---------------------------------------------------------------------------------

TriggerReason = Literal[
    "recipe_saved",
    "order_linked",
    "order_created",
    "order_updated",
    "order_cancelled",
    "order_refunded",
    "order_returned",
    "manual",
]
Feed = Literal["recipe", "order"]


class OrderLine(Message):
    """The order context of a trigger: which order and line item used the recipe."""

    order_id: IdText = Field(max_length=ID_TEXT)
    order_number: IdText = Field(max_length=ID_TEXT)
    item_id: IdText | None = Field(default=None, max_length=ID_TEXT)
    item_quantity: int | None = Field(default=None, ge=0)
    status: str | None = Field(default=None, max_length=32, description="Order status when triggered.")


class IntegrationsTriggered(Message):
    """These integrations of a tenant must receive this recipe's bundle (keyed by recipe ID)."""

    schema_version: Literal[1] = 1
    trigger_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    tenant: IdText = Field(min_length=1, max_length=ID_TEXT)
    recipe_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    recipe_key: str = Field(min_length=1, max_length=512)
    feed: Feed
    reason: TriggerReason
    order: OrderLine | None = None
    integration_ids: tuple[str, ...] = Field(min_length=1)
    occurred_at: UtcInstant
    accepted_at: UtcInstant | None = Field(
        default=None,
        description="When the suite accepted the event that led here: the broker timestamp of the order or recipe "
        "event record, or the manual trigger's time. Absent from older producers.",
    )
    replay_of: IdText | None = Field(
        default=None,
        max_length=ID_TEXT,
        description="The delivery this trigger replays (a bulk replay of final failures): the association store marks "
        "that delivery replayed, so a second replay does not send it again.",
    )


# --- deliveries.requested.<type>.v1 ----------------------------------------------------------------------------


class BundleFile(Message):
    """One file of a built bundle, stored in the artifact store under ``key`` (claim check)."""

    name: str = Field(min_length=1, max_length=255)
    mime_type: str = Field(max_length=SHORT_TEXT)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    key: str = Field(min_length=1, max_length=1024)


class DeliverBundle(Message):
    """Command to one deliverer: deliver this bundle to this integration (attempt N)."""

    schema_version: Literal[1] = 1
    delivery_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    trigger_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    tenant: IdText = Field(min_length=1, max_length=ID_TEXT)
    integration_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    integration_type: IntegrationType
    recipe_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    feed: Feed
    reason: TriggerReason
    order: OrderLine | None = None
    attempt: int = Field(default=1, ge=1)
    files: tuple[BundleFile, ...] = ()
    requested_at: UtcInstant
    accepted_at: UtcInstant | None = Field(
        default=None,
        description="When the suite accepted the event that led here: the broker timestamp of the order or recipe "
        "event record, or the manual trigger's time. Absent from older producers.",
    )
    probe: bool = Field(
        default=False,
        description="Set by the retry service's destination-health probe on one held request of an integration it "
        "paused as unhealthy: attempted although the integration is paused. A transient failure holds it again "
        "(same attempt, not counted); a success resumes the integration.",
    )


# --- deliveries.outcomes.v1 ------------------------------------------------------------------------------------

DeliveryStatus = Literal["succeeded", "retrying", "failed"]


class DeliveryAttempted(Message):
    """The outcome of one delivery attempt; ``final`` marks the last word on a delivery."""

    schema_version: Literal[1] = 1
    delivery_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    trigger_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    tenant: IdText = Field(min_length=1, max_length=ID_TEXT)
    integration_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    integration_type: IntegrationType
    recipe_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    feed: Feed
    reason: TriggerReason
    order: OrderLine | None = None
    attempt: int = Field(ge=1)
    status: DeliveryStatus
    final: bool
    duration_ms: int = Field(default=0, ge=0)
    error_class: str | None = Field(default=None, max_length=SHORT_TEXT)
    error_message: str | None = Field(default=None, max_length=2000)
    files: tuple[str, ...] = ()
    occurred_at: UtcInstant

    @classmethod
    def of(
        cls,
        request: DeliverBundle,
        *,
        status: DeliveryStatus,
        final: bool,
        occurred_at: datetime,
        duration_ms: int = 0,
        error_class: str | None = None,
        error_message: str | None = None,
    ) -> DeliveryAttempted:
        """The outcome of ``request``'s attempt: every identifying field copied from the request."""
        return cls(
            delivery_id=request.delivery_id,
            trigger_id=request.trigger_id,
            tenant=request.tenant,
            integration_id=request.integration_id,
            integration_type=request.integration_type,
            recipe_id=request.recipe_id,
            feed=request.feed,
            reason=request.reason,
            order=request.order,
            attempt=request.attempt,
            status=status,
            final=final,
            duration_ms=duration_ms,
            error_class=error_class,
            error_message=error_message,
            files=tuple(file.name for file in request.files),
            occurred_at=occurred_at,
        )


# --- deliveries.retry.v1 ---------------------------------------------------------------------------------------


class RetryDelivery(Message):
    """Command to the retry service: schedule another attempt of this delivery."""

    schema_version: Literal[1] = 1
    request: DeliverBundle
    error_class: str = Field(max_length=SHORT_TEXT)
    error_message: str = Field(max_length=2000)
    retry_after_s: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="Destination's Retry-After, if any."
    )
    failed_at: UtcInstant
    hold: Literal["paused"] | None = Field(
        default=None,
        description="Set by a deliverer that did not attempt the request because its integration is paused: the "
        "retry service keeps it, not counted as an attempt, until the integration is resumed; then it is "
        "requested again, oldest first. Absent for a failed attempt.",
    )


# --- integrations.control.v1 -----------------------------------------------------------------------------------

IntegrationState = Literal["active", "paused"]
# Who changed it: an operator (pause/resume API, console), or the retry service's destination-health rules
# (``unhealthy``: paused after consecutive failed attempts; ``recovered``: resumed after a probe delivery succeeded).
StateChangeCause = Literal["operator", "unhealthy", "recovered"]


def integration_key(tenant: str, integration_id: str) -> bytes:
    """Partition key (and compaction key) for ``integrations.control.v1``: one integration's changes in order."""
    return f"{tenant}:{integration_id}".encode()


class IntegrationStateChanged(Message):
    """An integration was paused or resumed, by an operator or by the destination-health rules (``cause``).

    While paused, deliverers hold its delivery requests (neither attempted nor failed: the retry service keeps them);
    a resume releases them, oldest first. Readers keep, per integration, the change with the newest ``changedAt``.
    """

    schema_version: Literal[1] = 1
    event_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    tenant: IdText = Field(min_length=1, max_length=ID_TEXT)
    integration_id: IdText = Field(min_length=1, max_length=ID_TEXT)
    state: IntegrationState
    reason: str | None = Field(default=None, max_length=200, description="Why, in the operator's words.")
    changed_by: str | None = Field(
        default=None, max_length=SHORT_TEXT, description="Who: the API key's name (never the key), or a service."
    )
    changed_at: UtcInstant
    cause: StateChangeCause = Field(
        default="operator",
        description="operator (the API, the console), unhealthy (paused after consecutive failed attempts) or "
        "recovered (resumed after a probe delivery succeeded). The notifier tells the failure list of the last two.",
    )

    @property
    def kafka_key(self) -> bytes:
        return integration_key(self.tenant, self.integration_id)


# --- deliveries.dead.v1 ----------------------------------------------------------------------------------------


class MessageDeadLettered(Message):
    """A message no consumer could process, kept with its reason so an operator can inspect and replay it."""

    schema_version: Literal[1] = 1
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key: str | None = None
    consumer_group: str | None = None
    service: str
    reason: str = Field(max_length=4000)
    error_class: str = Field(max_length=SHORT_TEXT)
    payload_b64: str = Field(
        description=(
            "The original message value, base64, for replay: a JSON object keeps only the fields its topic's "
            "message defines (anything else, personal data included, is dropped as on the HTTP API); empty when "
            "the value could not be kept (not JSON, or too large)."
        )
    )
    payload_complete: bool = Field(
        default=True, description="False when the payload was dropped or cut: such a letter cannot be replayed."
    )
    payload_size: int | None = Field(default=None, ge=0, description="Size of the original value in bytes.")
    payload_sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the original value, to match it."
    )
    dead_lettered_at: datetime


MESSAGE_BY_TOPIC: Mapping[str, type[Message]] = MappingProxyType(
    {
        RECIPES_SAVED: RecipeSaved,
        ORDERS_EVENTS: OrderEventOccurred,
        INTEGRATIONS_TRIGGERED: IntegrationsTriggered,
        **{deliveries_requested(kind): DeliverBundle for kind in INTEGRATION_TYPES},
        DELIVERIES_OUTCOMES: DeliveryAttempted,
        DELIVERIES_RETRY: RetryDelivery,
        DELIVERIES_DEAD: MessageDeadLettered,
        INTEGRATIONS_CONTROL: IntegrationStateChanged,
    }
)
"""The message each topic carries."""


def known_fields_only(model: type[BaseModel], data: object) -> object:
    """``data`` with only the JSON fields ``model`` defines, recursively (nested messages, lists of them).

    The Kafka-side twin of the HTTP API's allow-list: whatever else a publisher put in a message (names,
    addresses, notes) is dropped before the message is kept anywhere, such as in a dead letter.
    """
    if not isinstance(data, dict):
        return data
    kept: dict[str, object] = {}
    for name, field in model.model_fields.items():
        for key in dict.fromkeys((field.alias or name, name)):
            if key in data:
                kept[key] = _known_in(field.annotation, data[key])
    return kept


def _known_in(annotation: object, value: object) -> object:
    nested = [arg for arg in _flatten(annotation) if isinstance(arg, type) and issubclass(arg, BaseModel)]
    if not nested:
        return value
    if isinstance(value, list):
        return [known_fields_only(nested[0], item) for item in value]
    return known_fields_only(nested[0], value)


def _flatten(annotation: object) -> list[object]:
    args = get_args(annotation)
    if not args:
        return [annotation]
    return [leaf for arg in args for leaf in _flatten(arg)]


RECIPES_PREFIX = "recipes"


def recipe_object_key(tenant: str, recipe_id: str) -> str:
    """Where a saved recipe's JSON lives in the object store: under its tenant, so no key of one tenant can name
    another's recipe (seed 001 serves it publicly as ``/recipe/<id>.json``; that URL is not the storage key)."""
    return f"{RECIPES_PREFIX}/{tenant}/{recipe_id}.json"
