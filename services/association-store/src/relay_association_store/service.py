"""The use cases: one per consumed topic and one per internal API route, each over the ports it is handed.

A consumed message is one transaction. Triggers are published through the ``Publish`` port inside it, each
awaited to the broker's acknowledgement, so they are out before the commit: a crash in between re-reads the
message and re-publishes the same trigger IDs (derived from the event), and a failed publish commits nothing. The
use cases return what they published or stored. The rules themselves are in ``domain``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from relay_association_store.domain import (
    AuditReport,
    Cursor,
    DeliveryFilter,
    DeliveryList,
    DeliveryRecord,
    IntegrationStateRecord,
    IntegrationTally,
    OrderPage,
    RecentOrders,
    apply_order_event,
    attempt_of,
    audit_report,
    check_own_recipes,
    check_recipe_saved,
    delivery_list_page,
    held_deliveries,
    mark_replayed,
    merge_delivery,
    merge_recipe,
    newest_state,
    order_page,
    order_triggers,
    pending_deliveries,
    recent_orders_page,
    recipe_trigger,
    require_tenant,
    unsettled,
)
from relay_association_store.ports import AuditQueries, OrderQueries, Publish, Store
from relay_contracts.internal_api import MAX_AUDIT_LIMIT, ORDERS_PAGE_SIZE, HeldCause, OrderLookupField
from relay_contracts.messages import (
    DeliveryAttempted,
    IntegrationStateChanged,
    IntegrationsTriggered,
    OrderEventOccurred,
    RecipeSaved,
)
from relay_platform.tenants import TenantsConfig

logger = logging.getLogger("relay.association_store")


# --- consumed messages: one message, one transaction ----------------------------------------------------------


async def record_recipe_saved(
    event: RecipeSaved, tenants: TenantsConfig, store: Store, publish: Publish, *, accepted_at: datetime | None = None
) -> IntegrationsTriggered | None:
    """Store the recipe row and fire the raw recipe feed, publishing before the transaction commits.
    ``accepted_at``: when the broker accepted the event (carried on the trigger for the order-to-delivered time)."""
    tenant = require_tenant(tenants, event.tenant)
    check_recipe_saved(tenants, event)
    async with store.transaction() as tx:
        if not await tx.claim_event(event.tenant, "recipe", event.event_id):
            return None
        stored = await tx.load_recipe(event.tenant, event.recipe_id)
        record = merge_recipe(stored, event)
        if record is not None:
            await tx.save_recipe(record, exists=stored is not None)
        trigger = recipe_trigger(tenant, event, accepted_at=accepted_at)
        if trigger is not None:
            # Published before the commit: a crash in between re-reads the event and re-publishes the same ID.
            await publish((trigger,))
    return trigger


async def record_order_event(
    event: OrderEventOccurred,
    tenants: TenantsConfig,
    store: Store,
    publish: Publish,
    *,
    trace_parent: str | None = None,
    accepted_at: datetime | None = None,
) -> tuple[IntegrationsTriggered, ...]:
    """Apply an order event (idempotent on event ID and business keys) and fire the order feed, publishing before
    the transaction commits.

    ``trace_parent``: the W3C traceparent of the trace the event was read in, kept by a new order as its original
    trace. ``accepted_at``: when the broker accepted the event, carried on every trigger.
    """
    tenant = require_tenant(tenants, event.tenant)
    check_own_recipes(tenants, event)
    async with store.transaction() as tx:
        if not await tx.claim_event(event.tenant, "order", event.event_id):
            return ()
        current = await tx.load_order(event.tenant, event.order_id)
        change = apply_order_event(current, event, trace_parent=trace_parent)
        if not change.applied:
            return ()
        await tx.save_order(change)
        triggers = order_triggers(tenant, event, change, accepted_at=accepted_at)
        if triggers:
            await publish(triggers)
    return triggers


async def record_trigger(
    trigger: IntegrationsTriggered, tenants: TenantsConfig, store: Store, *, now: datetime | None = None
) -> tuple[DeliveryRecord, ...]:
    """A ``pending`` row for each delivery of ``trigger`` not yet in the log; returns the rows inserted.

    Never overwrites: a redelivered trigger finds its rows, and an outcome read first (the topics are not
    ordered relative to each other) already says more than ``pending``.
    """
    tenant = tenants.tenant(trigger.tenant)
    if tenant is None:
        # The bundle-builder dead-letters this trigger (it cannot build it); a second dead letter of the same
        # message from here would only make a replay deliver it twice.
        logger.warning("trigger %s names unknown tenant %r; no deliveries recorded", trigger.trigger_id, trigger.tenant)
        return ()
    inserted = []
    async with store.transaction() as tx:
        for record in pending_deliveries(trigger, tenant, now or datetime.now(UTC)):
            if await tx.load_delivery(record.delivery_id) is None:
                await tx.save_delivery(record, exists=False)
                inserted.append(record)
        if trigger.replay_of is not None:
            replayed = await tx.load_delivery(trigger.replay_of)
            marked = mark_replayed(replayed, trigger)
            if marked is not None:
                await tx.save_delivery(marked, exists=True)
    return tuple(inserted)


async def record_delivery_outcome(
    outcome: DeliveryAttempted, store: Store, *, now: datetime | None = None
) -> DeliveryRecord | None:
    """Upsert the delivery log row (a final outcome is never regressed by a late, older attempt) and append the
    outcome to the delivery's attempt log (a late one too: it did happen)."""
    async with store.transaction() as tx:
        stored = await tx.load_delivery(outcome.delivery_id)
        record = merge_delivery(stored, outcome, now=now or datetime.now(UTC))
        if record is not None:
            await tx.save_delivery(record, exists=stored is not None)
        await tx.add_attempt(attempt_of(outcome))
    return record


async def record_integration_state(
    change: IntegrationStateChanged, tenants: TenantsConfig, store: Store
) -> IntegrationStateRecord | None:
    """Keep ``change`` as its integration's state when it is the newest seen (a stale one is ignored); returns the
    record stored, ``None`` when nothing changed."""
    if tenants.tenant(change.tenant) is None:
        # ingest-api only publishes for its callers' tenants: a tenant gone from the config has nothing to show.
        logger.warning("state change %s names unknown tenant %r; ignored", change.event_id, change.tenant)
        return None
    async with store.transaction() as tx:
        stored = await tx.load_integration_state(change.tenant, change.integration_id)
        record = newest_state(stored, change)
        if record is not None:
            await tx.save_integration_state(record, exists=stored is not None)
    return record


# --- the internal query API ------------------------------------------------------------------------------------


async def find_orders(
    queries: OrderQueries,
    tenant: str,
    by: OrderLookupField,
    value: str,
    *,
    after: str | None = None,
    page_size: int = ORDERS_PAGE_SIZE,
) -> OrderPage:
    """A page of ``tenant``'s orders by order number, order ID or a recipe on one of their items, by order ID;
    ``after`` is the previous page's ``next``."""
    found = await queries.find_orders(tenant, by, value, after=after, limit=page_size + 1)
    page = order_page(found, page_size)
    held = await _held(queries, tenant, (delivery for view in page.orders for delivery in view.deliveries))
    return replace(page, held=held)


async def audit_deliveries(
    queries: AuditQueries, tenant: str, *, older_than: timedelta, limit: int, now: datetime | None = None
) -> AuditReport:
    """Deliveries of ``tenant`` that are not final (``pending`` or ``retrying``) and unchanged for ``older_than``."""
    if not 1 <= limit <= MAX_AUDIT_LIMIT:
        raise ValueError(f"limit must be 1 to {MAX_AUDIT_LIMIT}")
    cutoff = (now or datetime.now(UTC)) - older_than
    found = await queries.unfinished_deliveries(tenant, before=cutoff, limit=limit + 1)
    return audit_report(tenant, cutoff, limit, found)


async def recent_orders(queries: OrderQueries, tenant: str, *, after: Cursor | None, limit: int) -> RecentOrders:
    """The console's "Review Recent Orders": ``tenant``'s orders, newest last event first, a page at a time."""
    found = await queries.recent_orders(tenant, after=after, limit=limit + 1)
    page = recent_orders_page(found, limit)
    held = await _held(queries, tenant, (delivery for view in page.orders for delivery in view.deliveries))
    return replace(page, held=held)


async def list_deliveries(
    queries: OrderQueries,
    tenant: str,
    wanted: DeliveryFilter,
    *,
    after: Cursor | None,
    limit: int,
    with_total: bool = False,
) -> DeliveryList:
    """``tenant``'s deliveries matching ``wanted`` (final failures for the console's "Dead letters" and the
    replay), newest change first, a page at a time; ``with_total`` counts every match too."""
    found = await queries.list_deliveries(tenant, wanted, after=after, limit=limit + 1)
    page = delivery_list_page(found, limit)
    page = replace(page, held=await _held(queries, tenant, page.deliveries))
    if with_total:
        page = replace(page, total=await queries.count_deliveries(tenant, wanted))
    return page


async def integration_tallies(
    queries: OrderQueries, tenant: str, *, window: timedelta, now: datetime | None = None
) -> list[IntegrationTally]:
    """Per integration of ``tenant``, its deliveries changed within ``window`` (up to now), by status."""
    return await queries.integration_tallies(tenant, since=(now or datetime.now(UTC)) - window)


async def integration_states(queries: OrderQueries, tenant: str) -> list[IntegrationStateRecord]:
    """Each of ``tenant``'s integrations ever paused or resumed, with its newest change (by integration ID)."""
    return await queries.integration_states(tenant)


async def _held(queries: OrderQueries, tenant: str, deliveries: Iterable[DeliveryRecord]) -> dict[str, HeldCause]:
    """Which of a page's deliveries are held now: one read of the tenant's integration states per page (a handful
    of rows), and none when nothing on the page is still waiting (a page of final failures, say)."""
    waiting = [delivery for delivery in deliveries if unsettled(delivery)]
    if not waiting:
        return {}
    return held_deliveries(waiting, await queries.integration_states(tenant))
