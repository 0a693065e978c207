"""The association store's rules, pure: how an event changes the stored state, and which integrations fire.

No I/O here (``service`` runs these inside one transaction per message). Ordering rule for order events (seed 003):
an event older than the state it would change never overwrites it; an event at the same ``occurred_at`` that
changes nothing is a resend and fires nothing. The delivery log learns of every delivery from its trigger (a
``pending`` row) before its first outcome, so a delivery that never ends is visible to the audit.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Literal

from relay_contracts.internal_api import MAX_ATTEMPT_LOG, MAX_CURSOR_TEXT, DeliveryListStatus, HeldCause
from relay_contracts.messages import (
    DeliveryAttempted,
    IntegrationState,
    IntegrationStateChanged,
    IntegrationsTriggered,
    OmsOrderEvent,
    OrderEventOccurred,
    OrderEventType,
    OrderLine,
    RecipeSaved,
    StateChangeCause,
    TriggerReason,
    recipe_object_key,
    stable_id,
)
from relay_contracts.topics import ORDERS_EVENTS, IntegrationType
from relay_platform.errors import PermanentError
from relay_platform.redact import redact_secrets
from relay_platform.tenants import Tenant, TenantsConfig, integration_type

OrderStatus = Literal["open", "cancelled", "refunded", "returned"]
DeliveryState = Literal["pending", "retrying", "succeeded", "failed"]
EventKind = Literal["recipe", "order"]

ORDER_REASONS: Mapping[OrderEventType, TriggerReason] = {
    "linked": "order_linked",
    "created": "order_created",
    "updated": "order_updated",
    "cancelled": "order_cancelled",
    "refunded": "order_refunded",
    "returned": "order_returned",
}
MANUFACTURING_EVENTS: frozenset[OrderEventType] = frozenset({"linked", "created", "updated"})
STATUS_BY_EVENT: Mapping[OrderEventType, OrderStatus] = {
    "created": "open",
    "cancelled": "cancelled",
    "refunded": "refunded",
    "returned": "returned",
}


# --- state -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipeRecord:
    tenant: str
    recipe_id: str
    recipe_key: str
    temporary: bool
    created: datetime
    saved_at: datetime


@dataclass(frozen=True, slots=True)
class ItemState:
    item_id: str
    recipe_id: str
    quantity: int
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order as stored. ``status_at``/``items_at`` date the last status change / full item-list replacement
    (``None`` while only ``linked`` events were seen); ``updated_at`` is the newest event applied. ``trace_parent``
    is the W3C traceparent of the trace the order was first recorded in (``None`` when unknown): set once, never
    replaced, so a re-trigger can link to the order's original trace."""

    tenant: str
    order_id: str
    order_number: str
    status: OrderStatus
    status_at: datetime | None
    items_at: datetime | None
    updated_at: datetime
    items: Mapping[str, ItemState] = field(default_factory=dict)
    trace_parent: str | None = None


@dataclass(frozen=True, slots=True)
class OrderChange:
    """What one order event does: ``after`` is the state to store; ``affected`` the items to trigger for."""

    before: OrderState | None
    after: OrderState
    applied: bool
    stale: bool
    affected: tuple[ItemState, ...] = ()


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One row of the delivery log. ``updated_at`` is its last change: the outcome's ``occurred_at``, or for a
    ``pending`` row when the store learned of it; ``created_at`` when the store first recorded the delivery;
    ``triggered_at`` the trigger's ``occurred_at`` when the trigger was seen before any outcome."""

    delivery_id: str
    tenant: str
    integration_id: str
    integration_type: IntegrationType
    recipe_id: str
    order_id: str | None
    order_number: str | None
    trigger_id: str
    reason: str
    status: DeliveryState
    final: bool
    attempts: int
    last_error: str | None
    files: tuple[str, ...]
    updated_at: datetime
    created_at: datetime
    triggered_at: datetime | None = None
    item_id: str | None = None
    # The trigger ID of the bulk replay that re-sent it (``replay_of`` on that trigger).
    replayed_by: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """One outcome in a delivery's attempt log (``delivery_attempts``); ``error`` is scrubbed of secrets."""

    delivery_id: str
    tenant: str
    attempt: int
    status: str
    error_class: str | None
    error: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order with its items and the deliveries made for it (the internal query API's read model); ``attempts``
    holds each delivery's attempt log, oldest first, by delivery ID."""

    order: OrderState
    deliveries: tuple[DeliveryRecord, ...]
    attempts: Mapping[str, tuple[AttemptRecord, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a newest-first list stopped: the last row's instant and ID (the ``after`` of the next page)."""

    at: datetime
    key: str


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries of one tenant a newest-first list shows; instants bound ``updated_at`` (inclusive)."""

    status: DeliveryListStatus
    integration_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    # False: only those no bulk replay re-sent yet (the replay's selection); None: either.
    replayed: bool | None = None


@dataclass(frozen=True, slots=True)
class RecentOrders:
    orders: tuple[OrderView, ...]
    next: Cursor | None
    # Delivery ID -> why it is held, for those of the page held now (``held_deliveries``).
    held: Mapping[str, HeldCause] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryList:
    deliveries: tuple[DeliveryRecord, ...]
    next: Cursor | None
    total: int | None = None
    held: Mapping[str, HeldCause] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IntegrationTally:
    """One integration's deliveries changed within the window, by status (``failed`` counts final ones only)."""

    integration_id: str
    succeeded: int = 0
    failed: int = 0
    retrying: int = 0
    pending: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IntegrationStateRecord:
    """An integration's delivery state as last changed (``integrations.control.v1``); none stored means active."""

    tenant: str
    integration_id: str
    state: IntegrationState
    changed_at: datetime
    event_id: str
    reason: str | None = None
    changed_by: str | None = None
    # Rows stored before revision 0007 read as "operator": only operators paused and resumed then.
    cause: StateChangeCause = "operator"


def newest_state(
    stored: IntegrationStateRecord | None, change: IntegrationStateChanged
) -> IntegrationStateRecord | None:
    """The record to keep after ``change``, ``None`` when it changes nothing: a change not newer than the stored one
    is stale (a late or redelivered message), so the newest ``changedAt`` wins whatever order they are read in."""
    if stored is not None and change.changed_at <= stored.changed_at:
        return None
    return IntegrationStateRecord(
        tenant=change.tenant,
        integration_id=change.integration_id,
        state=change.state,
        changed_at=change.changed_at,
        event_id=change.event_id,
        reason=change.reason,
        changed_by=change.changed_by,
        cause=change.cause,
    )


def unsettled(delivery: DeliveryRecord) -> bool:
    """Not ended: triggered with no outcome yet, or waiting for its next attempt."""
    return not delivery.final and delivery.status in ("pending", "retrying")


def held_deliveries(
    deliveries: Iterable[DeliveryRecord], states: Iterable[IntegrationStateRecord]
) -> dict[str, HeldCause]:
    """Delivery ID -> why it is held, for each of ``deliveries`` not ended whose integration is paused now (in
    ``states``, the stored state of the same tenant's integrations). Derived when read, never stored: a resume
    clears it at once, and the delivery log's own rules (ordering, finality) are untouched."""
    # Keyed by tenant too: another tenant's paused integration of the same ID never holds this tenant's deliveries.
    paused = {(state.tenant, state.integration_id): state.cause for state in states if state.state == "paused"}
    held: dict[str, HeldCause] = {}
    for delivery in deliveries:
        cause = paused.get((delivery.tenant, delivery.integration_id))
        if cause is not None and unsettled(delivery):
            # A pause is the operator's or the health rules'; "recovered" only ever comes with a resume.
            held[delivery.delivery_id] = "unhealthy" if cause == "unhealthy" else "operator"
    return held


@dataclass(frozen=True, slots=True)
class OrderPage:
    """One page of an order lookup; ``next`` (the page's last order ID) asks for the following page."""

    orders: tuple[OrderView, ...]
    next: str | None
    held: Mapping[str, HeldCause] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A delivery that has not ended within the deadline, and why."""

    delivery: DeliveryRecord
    reason: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    """Unfinished deliveries of one tenant last changed before ``cutoff``, newest first; ``truncated`` when more
    than ``limit`` matched."""

    tenant: str
    cutoff: datetime
    limit: int
    entries: tuple[AuditEntry, ...]
    truncated: bool


# --- which integrations fire -----------------------------------------------------------------------------------


def accepted_at_of(timestamp_ms: int | None) -> datetime | None:
    """When the broker accepted a record, from its timestamp (ms since the epoch); ``None`` when it has none.

    Kafka says "no timestamp" with -1 (and an old or odd producer may send 0): that is unknown, not 1970. A value
    past what ``datetime`` holds is unknown too rather than an error: it only feeds a latency metric.
    """
    if timestamp_ms is None or timestamp_ms <= 0:
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def require_tenant(tenants: TenantsConfig, tenant_id: str) -> Tenant:
    tenant = tenants.tenant(tenant_id)
    if tenant is None:
        raise PermanentError(f"unknown tenant {tenant_id[:64]!r}")
    return tenant


def order_event_from(topic: str, event: OmsOrderEvent, tenant_of_topic: Mapping[str, str]) -> OrderEventOccurred:
    """The event with its tenant taken from where it was published (``PermanentError`` when it cannot be).

    ``orders.events.v1`` is ingest-api's (it sets the tenant of the authenticated caller); any other topic is a
    tenant's OMS topic, whose tenant is the topic's whatever the payload says.
    """
    if topic == ORDERS_EVENTS:
        if event.tenant is None:
            raise PermanentError(f"tenant is required on {ORDERS_EVENTS}")
        return event.for_tenant(event.tenant)
    tenant = tenant_of_topic.get(topic)
    if tenant is None:
        raise PermanentError(f"no tenant publishes to topic {topic[:64]!r}")
    try:
        return event.for_tenant(tenant)
    except ValueError as error:
        raise PermanentError(f"tenant in the payload is not {tenant!r}, the tenant of topic {topic!r}") from error


def check_recipe_saved(tenants: TenantsConfig, event: RecipeSaved) -> None:
    """A saved recipe must be its tenant's, stored under its tenant's key (``PermanentError`` otherwise)."""
    if not tenants.owns_recipe(event.tenant, event.recipe_id):
        raise PermanentError(f"recipeId is not a recipe of tenant {event.tenant!r}")
    if event.recipe_key != recipe_object_key(event.tenant, event.recipe_id):
        raise PermanentError(f"recipeKey is not the key of this recipe of tenant {event.tenant!r}")


def check_own_recipes(tenants: TenantsConfig, event: OrderEventOccurred) -> None:
    """Every item of an order event must use one of the tenant's own recipes: linking another tenant's recipe
    would send its files to this tenant's destinations (``PermanentError`` naming the item otherwise)."""
    for position, item in enumerate(event.items or ()):
        if not tenants.owns_recipe(event.tenant, item.recipe_id):
            raise PermanentError(f"items/{position}/recipeId is not a recipe of tenant {event.tenant!r}")


def recipe_trigger(
    tenant: Tenant, event: RecipeSaved, *, accepted_at: datetime | None = None
) -> IntegrationsTriggered | None:
    """The raw recipe feed's trigger; ``accepted_at`` is when the suite accepted the event (its record's time)."""
    integration_ids = tenant.recipe_feed(temporary=event.temporary)
    if not integration_ids:
        return None
    return IntegrationsTriggered(
        trigger_id=stable_id(event.event_id, event.recipe_id),
        tenant=event.tenant,
        recipe_id=event.recipe_id,
        recipe_key=event.recipe_key,
        feed="recipe",
        reason="recipe_saved",
        integration_ids=integration_ids,
        occurred_at=event.occurred_at,
        accepted_at=accepted_at,
    )


def order_triggers(
    tenant: Tenant, event: OrderEventOccurred, change: OrderChange, *, accepted_at: datetime | None = None
) -> tuple[IntegrationsTriggered, ...]:
    """One trigger per affected item; IDs derive from the event so a redelivery re-publishes the same ones.
    ``accepted_at`` (when the suite accepted the event: its record's time) rides on each."""
    integration_ids = tenant.order_feed(event.type)
    if not integration_ids or not change.applied:
        return ()
    order = change.after
    if order.status == "cancelled" and event.type in MANUFACTURING_EVENTS:
        # A cancelled order is never sent to manufacturing again: a late link or update is recorded, not
        # delivered (it would overwrite the CANCELLED ticket at the destination).
        return ()
    return tuple(
        IntegrationsTriggered(
            trigger_id=stable_id(event.event_id, item.recipe_id, item.item_id),
            tenant=event.tenant,
            recipe_id=item.recipe_id,
            # Always the tenant's own key, derived here: never one a payload named, never outside the tenant.
            recipe_key=recipe_object_key(event.tenant, item.recipe_id),
            feed="order",
            reason=ORDER_REASONS[event.type],
            order=OrderLine(
                order_id=order.order_id,
                order_number=order.order_number,
                item_id=item.item_id,
                item_quantity=item.quantity,
                status=order.status,
            ),
            integration_ids=integration_ids,
            occurred_at=event.occurred_at,
            accepted_at=accepted_at,
        )
        for item in change.affected
    )


# --- how state changes -----------------------------------------------------------------------------------------


def merge_recipe(stored: RecipeRecord | None, event: RecipeSaved) -> RecipeRecord | None:
    """The row to write for a saved recipe, or ``None`` when the stored one is newer or identical."""
    record = RecipeRecord(
        tenant=event.tenant,
        recipe_id=event.recipe_id,
        recipe_key=event.recipe_key,
        temporary=event.temporary,
        created=event.created,
        saved_at=event.occurred_at,
    )
    if stored is not None and (stored.saved_at > record.saved_at or stored == record):
        return None
    return record


def apply_order_event(
    current: OrderState | None, event: OrderEventOccurred, *, trace_parent: str | None = None
) -> OrderChange:
    """The order's state after ``event``. Stale events leave it untouched; so do resends (same content).

    ``trace_parent`` (the trace ``event`` was read in) is kept only by a new order: its original trace.
    """
    at = event.occurred_at
    base = current or OrderState(
        tenant=event.tenant,
        order_id=event.order_id,
        order_number=event.order_number,
        status="open",
        status_at=None,
        items_at=None,
        updated_at=at,
        trace_parent=trace_parent,
    )
    if event.type == "linked":
        return _apply_link(current, base, event)
    if current is not None and _is_stale(current, event):
        return OrderChange(before=current, after=current, applied=False, stale=True)

    changed = current is None
    status, status_at = base.status, base.status_at
    new_status = STATUS_BY_EVENT.get(event.type)
    if new_status is not None and (base.status_at is None or new_status != base.status):
        status, status_at, changed = new_status, at, True
    items, items_at = base.items, base.items_at
    if event.type in ("created", "updated") and event.items is not None:
        replaced = _replace_items(base.items, event)
        if replaced != base.items or items_at is None:
            changed = changed or replaced != base.items
            items, items_at = replaced, at
    if event.type == "updated" and event.items is None and at > base.updated_at:
        changed = True  # the OMS says the order changed in ways we do not store; its integrations still hear it
    newest = at >= base.updated_at
    if newest and event.order_number != base.order_number:
        changed = True
    if not changed:
        return OrderChange(before=current, after=base, applied=False, stale=False)
    after = OrderState(
        tenant=base.tenant,
        order_id=base.order_id,
        order_number=event.order_number if newest else base.order_number,
        status=status,
        status_at=status_at,
        items_at=items_at,
        updated_at=max(base.updated_at, at),
        items=items,
        trace_parent=base.trace_parent,
    )
    return OrderChange(
        before=current, after=after, applied=True, stale=False, affected=tuple(_sorted_items(after.items))
    )


def _is_stale(current: OrderState, event: OrderEventOccurred) -> bool:
    """Older than the part of the state the event would change."""
    at = event.occurred_at
    if event.type in STATUS_BY_EVENT and current.status_at is not None and at < current.status_at:
        return True
    if event.type in ("created", "updated") and event.items is not None:
        return current.items_at is not None and at < current.items_at
    return event.type == "updated" and at < current.updated_at


def _apply_link(current: OrderState | None, base: OrderState, event: OrderEventOccurred) -> OrderChange:
    """Link item(s) to recipes; idempotent on (tenant, order, item): relinking the same content fires nothing."""
    at = event.occurred_at
    items = dict(base.items)
    affected: list[ItemState] = []
    stale = bool(event.items)
    for given in event.items or ():
        item = ItemState(given.item_id, given.recipe_id, given.item_quantity, at)
        old = items.get(item.item_id)
        if (base.items_at is not None and at < base.items_at) or (old is not None and at < old.occurred_at):
            continue  # a later full item list or link superseded this one
        stale = False
        if old is None or (old.recipe_id, old.quantity) != (item.recipe_id, item.quantity):
            items[item.item_id] = item
            affected.append(item)
    if stale:
        return OrderChange(before=current, after=base, applied=False, stale=True)
    if not affected and current is not None:
        return OrderChange(before=current, after=base, applied=False, stale=False)
    newest = at >= base.updated_at
    after = replace(
        base,
        order_number=event.order_number if newest else base.order_number,
        updated_at=max(base.updated_at, at),
        items=items,
    )
    return OrderChange(before=current, after=after, applied=True, stale=False, affected=tuple(affected))


def _replace_items(stored: Mapping[str, ItemState], event: OrderEventOccurred) -> dict[str, ItemState]:
    """The full item list of a created/updated event, keeping items linked after it."""
    at = event.occurred_at
    given = {
        item.item_id: ItemState(item.item_id, item.recipe_id, item.item_quantity, at) for item in event.items or ()
    }
    result: dict[str, ItemState] = {}
    for item_id in {*stored, *given}:
        old, new = stored.get(item_id), given.get(item_id)
        if old is not None and old.occurred_at > at:
            result[item_id] = old
        elif new is not None:
            # Same content keeps its old stamp, so a resend compares equal and fires nothing.
            same = old is not None and (old.recipe_id, old.quantity) == (new.recipe_id, new.quantity)
            result[item_id] = old if same and old is not None else new
    return result


def _sorted_items(items: Mapping[str, ItemState]) -> list[ItemState]:
    return sorted(items.values(), key=lambda item: item.item_id)


# --- the delivery log and what reads it ------------------------------------------------------------------------


def format_error(error_class: str | None, error_message: str | None) -> str | None:
    if not error_class and not error_message:
        return None
    # Defence in depth: the deliverer scrubbed the message already; lastError must never show a credential.
    return redact_secrets(f"{error_class or 'Error'}: {error_message or ''}".rstrip(": ").strip())


def merge_delivery(
    stored: DeliveryRecord | None, outcome: DeliveryAttempted, *, now: datetime
) -> DeliveryRecord | None:
    """The delivery row after an outcome, or ``None`` if nothing changes.

    Outcomes are ordered by ``(attempt, final)``: a late, older attempt never regresses a newer or final one,
    it can only raise the attempt count. A ``pending`` row (attempt 0) is replaced by any outcome.
    """
    record = DeliveryRecord(
        delivery_id=outcome.delivery_id,
        tenant=outcome.tenant,
        integration_id=outcome.integration_id,
        integration_type=outcome.integration_type,
        recipe_id=outcome.recipe_id,
        order_id=outcome.order.order_id if outcome.order else None,
        order_number=outcome.order.order_number if outcome.order else None,
        trigger_id=outcome.trigger_id,
        reason=outcome.reason,
        status=outcome.status,
        final=outcome.final,
        attempts=outcome.attempt,
        last_error=format_error(outcome.error_class, outcome.error_message),
        files=outcome.files,
        updated_at=outcome.occurred_at,
        created_at=now,
        item_id=outcome.order.item_id if outcome.order else None,
    )
    if stored is None:
        return record
    if (outcome.attempt, outcome.final) <= (stored.attempts, stored.final):
        return None
    return replace(
        record,
        last_error=record.last_error or stored.last_error,
        files=record.files or stored.files,
        attempts=max(stored.attempts, record.attempts),
        created_at=stored.created_at,
        triggered_at=stored.triggered_at,
        item_id=record.item_id or stored.item_id,
        replayed_by=stored.replayed_by,
    )


def pending_deliveries(trigger: IntegrationsTriggered, tenant: Tenant, now: datetime) -> tuple[DeliveryRecord, ...]:
    """One ``pending`` row per delivery the bundle-builder will request for ``trigger``.

    The bundle-builder's rule: each listed integration the tenant config knows (enabled or not), once, with
    ``delivery_id = stable_id(trigger_id, integration_id)``; so the first outcome lands on this very row.
    """
    order = trigger.order
    records = []
    for integration_id in dict.fromkeys(trigger.integration_ids):
        integration = tenant.integration(integration_id)
        if integration is None:
            continue
        records.append(
            DeliveryRecord(
                delivery_id=stable_id(trigger.trigger_id, integration_id),
                tenant=trigger.tenant,
                integration_id=integration_id,
                integration_type=integration_type(integration),
                recipe_id=trigger.recipe_id,
                order_id=order.order_id if order else None,
                order_number=order.order_number if order else None,
                trigger_id=trigger.trigger_id,
                reason=trigger.reason,
                status="pending",
                final=False,
                attempts=0,
                last_error=None,
                files=(),
                updated_at=now,
                created_at=now,
                triggered_at=trigger.occurred_at,
                item_id=order.item_id if order else None,
            )
        )
    return tuple(records)


_MAX_ATTEMPT_ERROR = 2000


def attempt_of(outcome: DeliveryAttempted) -> AttemptRecord:
    """The attempt-log row of an outcome. Defence in depth: the deliverer scrubbed the message already, it is
    scrubbed again here, as ``lastError`` is."""
    error = redact_secrets(outcome.error_message)[:_MAX_ATTEMPT_ERROR] if outcome.error_message else None
    return AttemptRecord(
        delivery_id=outcome.delivery_id,
        tenant=outcome.tenant,
        attempt=outcome.attempt,
        status=outcome.status,
        error_class=outcome.error_class[:200] if outcome.error_class else None,
        error=error,
        occurred_at=outcome.occurred_at,
    )


def attempt_log(rows: Sequence[AttemptRecord]) -> tuple[AttemptRecord, ...]:
    """A delivery's attempts in the order they happened (by attempt, then outcome time), the newest
    ``MAX_ATTEMPT_LOG`` of them."""
    ordered = sorted(rows, key=lambda row: (row.attempt, row.occurred_at, row.status != "retrying"))
    return tuple(ordered[-MAX_ATTEMPT_LOG:])


def encode_cursor(cursor: Cursor) -> str:
    """The opaque ``after`` of a newest-first list: URL-safe, no padding, so it travels in a query unescaped."""
    text = json.dumps([cursor.at.astimezone(UTC).isoformat(), cursor.key], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(text: str) -> Cursor:
    """The cursor ``encode_cursor`` made; ``ValueError`` for anything else (too long, not base64, not the shape)."""
    if not 1 <= len(text) <= MAX_CURSOR_TEXT or not text.isascii():
        raise ValueError("not a cursor of this list")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        at_text, key = json.loads(raw.decode())
        at = datetime.fromisoformat(at_text)
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as error:
        raise ValueError("not a cursor of this list") from error
    if not isinstance(key, str) or not 1 <= len(key) <= 128 or at.tzinfo is None:
        raise ValueError("not a cursor of this list")
    return Cursor(at=at.astimezone(UTC), key=key)


def recent_orders_page(found: Sequence[OrderView], limit: int) -> RecentOrders:
    """A page from up to ``limit + 1`` orders, newest first (one more tells there is a next page)."""
    page = tuple(found[:limit])
    more = len(found) > limit and page
    last = page[-1].order if more else None
    return RecentOrders(orders=page, next=Cursor(last.updated_at, last.order_id) if last is not None else None)


def delivery_list_page(found: Sequence[DeliveryRecord], limit: int) -> DeliveryList:
    """A page from up to ``limit + 1`` deliveries, newest change first."""
    page = tuple(found[:limit])
    more = len(found) > limit and page
    last = page[-1] if more else None
    return DeliveryList(deliveries=page, next=Cursor(last.updated_at, last.delivery_id) if last is not None else None)


def mark_replayed(delivery: DeliveryRecord | None, trigger: IntegrationsTriggered) -> DeliveryRecord | None:
    """The delivery ``trigger`` replays, marked as replayed by it; ``None`` when there is nothing to mark: unknown
    (its outcome not read yet: the replay's own row still shows the re-send), another tenant's (never touched), or
    already marked (the first replay stays its replay). ``updated_at`` is left as it is: the lists page by it."""
    if delivery is None or delivery.tenant != trigger.tenant or delivery.replayed_by is not None:
        return None
    return replace(delivery, replayed_by=trigger.trigger_id)


def audit_reason(delivery: DeliveryRecord) -> str:
    """Why an unfinished delivery is listed, in an operator's words."""
    if delivery.status == "pending":
        return f"no outcome yet since {_instant(delivery.updated_at)}"
    return f"{delivery.status}: {delivery.last_error or 'no error reported'}"


def _instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def audit_report(tenant: str, cutoff: datetime, limit: int, found: Sequence[DeliveryRecord]) -> AuditReport:
    """The audit of ``tenant`` from up to ``limit + 1`` unfinished deliveries (one more tells it was truncated)."""
    return AuditReport(
        tenant=tenant,
        cutoff=cutoff,
        limit=limit,
        entries=tuple(AuditEntry(delivery, audit_reason(delivery)) for delivery in found[:limit]),
        truncated=len(found) > limit,
    )


def order_page(found: Sequence[OrderView], page_size: int) -> OrderPage:
    """A page from up to ``page_size + 1`` orders (one more tells there is a next page, without a second query)."""
    page = tuple(found[:page_size])
    more = len(found) > page_size and page
    return OrderPage(orders=page, next=page[-1].order.order_id if more else None)
