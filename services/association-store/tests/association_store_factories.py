"""Message factories and helpers for the association-store tests (importable: conftest puts this dir on sys.path)."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from relay_association_store.domain import (
    AttemptRecord,
    Cursor,
    DeliveryFilter,
    DeliveryRecord,
    EventKind,
    IntegrationStateRecord,
    IntegrationTally,
    OrderChange,
    OrderState,
    OrderView,
    RecipeRecord,
    attempt_log,
)
from relay_contracts.messages import (
    DeliveryAttempted,
    IntegrationsTriggered,
    OrderEventOccurred,
    OrderEventType,
    OrderItem,
    OrderLine,
    RecipeSaved,
    recipe_object_key,
)
from relay_platform.errors import TransientError

TENANTS_FILE = Path(__file__).parent / "tenants.yaml"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def order_event(
    type_: OrderEventType,
    order_id: str,
    items: list[tuple[str, str, int]] | None = None,
    *,
    minutes: float = 0,
    tenant: str = "acme",
    order_number: str = "1001",
    event_id: str | None = None,
) -> OrderEventOccurred:
    """``items`` as (recipe_id, item_id, quantity) triples."""
    return OrderEventOccurred(
        event_id=event_id or unique("ev"),
        tenant=tenant,
        type=type_,
        order_id=order_id,
        order_number=order_number,
        items=None
        if items is None
        else tuple(OrderItem(recipe_id=recipe, item_id=item, item_quantity=qty) for recipe, item, qty in items),
        occurred_at=at(minutes),
    )


def recipe_saved(recipe_id: str, *, tenant: str = "acme", temporary: bool = False, minutes: float = 0) -> RecipeSaved:
    return RecipeSaved(
        event_id=unique("rs"),
        tenant=tenant,
        recipe_id=recipe_id,
        recipe_key=recipe_object_key(tenant, recipe_id),
        temporary=temporary,
        created=at(minutes),
        occurred_at=at(minutes),
    )


def triggered(
    integration_ids: tuple[str, ...],
    *,
    recipe_id: str = "ACME-1",
    order_id: str | None = None,
    tenant: str = "acme",
    trigger_id: str | None = None,
    minutes: float = 0,
) -> IntegrationsTriggered:
    """A trigger as the association store or a manual re-run publishes it; with ``order_id`` the order feed."""
    return IntegrationsTriggered(
        trigger_id=trigger_id or unique("trig"),
        tenant=tenant,
        recipe_id=recipe_id,
        recipe_key=recipe_object_key(tenant, recipe_id),
        feed="order" if order_id else "recipe",
        reason="order_linked" if order_id else "recipe_saved",
        order=OrderLine(order_id=order_id, order_number="1001", item_id="i1", item_quantity=1, status="open")
        if order_id
        else None,
        integration_ids=integration_ids,
        occurred_at=at(minutes),
    )


def delivery_attempted(
    delivery_id: str,
    *,
    recipe_id: str,
    order_id: str | None,
    attempt: int,
    status: str,
    final: bool,
    tenant: str = "acme",
    integration_id: str = "orders-sftp",
    error: tuple[str, str] | None = None,
    files: tuple[str, ...] = (),
    trigger_id: str | None = None,
) -> DeliveryAttempted:
    return DeliveryAttempted.model_validate(
        {
            "delivery_id": delivery_id,
            "trigger_id": trigger_id or "t-" + delivery_id,
            "tenant": tenant,
            "integration_id": integration_id,
            "integration_type": "sftp",
            "recipe_id": recipe_id,
            "feed": "order" if order_id else "recipe",
            "reason": "order_linked" if order_id else "recipe_saved",
            "order": OrderLine(order_id=order_id, order_number="1001") if order_id else None,
            "attempt": attempt,
            "status": status,
            "final": final,
            "error_class": error[0] if error else None,
            "error_message": error[1] if error else None,
            "files": files,
            "occurred_at": at(attempt),
        }
    )


async def eventually(condition: Callable[[], object], *, timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` (sync or async) until true, failing after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class MemoryTransaction:
    """In-memory ``ports.Transaction`` for unit tests; changes land in the store only on commit."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.processed = set(store.processed)
        self.recipes = dict(store.recipes)
        self.orders = dict(store.orders)
        self.deliveries = dict(store.deliveries)
        self.attempts = dict(store.attempts)
        self.states = dict(store.states)

    async def claim_event(self, tenant: str, kind: EventKind, event_id: str) -> bool:
        key = (tenant, kind, event_id)
        if key in self.processed:
            return False
        self.processed.add(key)
        return True

    async def load_recipe(self, tenant: str, recipe_id: str) -> RecipeRecord | None:
        return self.recipes.get((tenant, recipe_id))

    async def save_recipe(self, record: RecipeRecord, *, exists: bool) -> None:
        self.recipes[(record.tenant, record.recipe_id)] = record

    async def load_order(self, tenant: str, order_id: str) -> OrderState | None:
        return self.orders.get((tenant, order_id))

    async def save_order(self, change: OrderChange) -> None:
        self.orders[(change.after.tenant, change.after.order_id)] = change.after

    async def load_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return self.deliveries.get(delivery_id)

    async def save_delivery(self, record: DeliveryRecord, *, exists: bool) -> None:
        self.deliveries[record.delivery_id] = record

    async def add_attempt(self, attempt: AttemptRecord) -> None:
        self.attempts.setdefault((attempt.delivery_id, attempt.attempt, attempt.status), attempt)

    async def load_integration_state(self, tenant: str, integration_id: str) -> IntegrationStateRecord | None:
        return self.states.get((tenant, integration_id))

    async def save_integration_state(self, record: IntegrationStateRecord, *, exists: bool) -> None:
        self.states[(record.tenant, record.integration_id)] = record


class MemoryStore:
    """A ``ports.Store`` in memory; ``fail_commits`` makes the next N commits fail like a crashed database."""

    def __init__(self) -> None:
        self.processed: set[tuple[str, str, str]] = set()
        self.recipes: dict[tuple[str, str], RecipeRecord] = {}
        self.orders: dict[tuple[str, str], OrderState] = {}
        self.deliveries: dict[str, DeliveryRecord] = {}
        self.attempts: dict[tuple[str, int, str], AttemptRecord] = {}
        self.states: dict[tuple[str, str], IntegrationStateRecord] = {}
        self.fail_commits = 0

    async def unfinished_deliveries(self, tenant: str, *, before: datetime, limit: int) -> list[DeliveryRecord]:
        """What ``SqlStore.unfinished_deliveries`` selects, in memory."""
        found = [d for d in self.deliveries.values() if d.tenant == tenant and not d.final and d.updated_at < before]
        found.sort(key=lambda d: d.delivery_id)
        found.sort(key=lambda d: d.updated_at, reverse=True)
        return found[:limit]

    async def recent_orders(self, tenant: str, *, after: Cursor | None, limit: int) -> list[OrderView]:
        """What ``SqlStore.recent_orders`` selects, in memory (deliveries and attempt logs included)."""
        found = sorted(
            (o for o in self.orders.values() if o.tenant == tenant),
            key=lambda o: (o.updated_at, o.order_id),
            reverse=True,
        )
        if after is not None:
            found = [o for o in found if (o.updated_at, o.order_id) < (after.at, after.key)]
        views = []
        for order in found[:limit]:
            made = tuple(d for d in self.deliveries.values() if d.tenant == tenant and d.order_id == order.order_id)
            logs = {
                d.delivery_id: attempt_log([a for a in self.attempts.values() if a.delivery_id == d.delivery_id])
                for d in made
            }
            views.append(OrderView(order=order, deliveries=made, attempts={k: v for k, v in logs.items() if v}))
        return views

    async def list_deliveries(
        self, tenant: str, wanted: DeliveryFilter, *, after: Cursor | None, limit: int
    ) -> list[DeliveryRecord]:
        """What ``SqlStore.list_deliveries`` selects, in memory."""
        found = [
            d
            for d in self.deliveries.values()
            if d.tenant == tenant
            and d.status == wanted.status
            and (d.final if wanted.status == "failed" else not d.final if wanted.status == "retrying" else True)
            and (wanted.integration_id is None or d.integration_id == wanted.integration_id)
            and (wanted.since is None or d.updated_at >= wanted.since)
            and (wanted.until is None or d.updated_at <= wanted.until)
            and (wanted.replayed is None or (d.replayed_by is not None) == wanted.replayed)
            and (after is None or (d.updated_at, d.delivery_id) < (after.at, after.key))
        ]
        found.sort(key=lambda d: (d.updated_at, d.delivery_id), reverse=True)
        return found[:limit]

    async def count_deliveries(self, tenant: str, wanted: DeliveryFilter) -> int:
        return len(await self.list_deliveries(tenant, wanted, after=None, limit=len(self.deliveries) + 1))

    async def integration_tallies(self, tenant: str, *, since: datetime) -> list[IntegrationTally]:
        """What ``SqlStore.integration_tallies`` counts, in memory."""
        tallies: dict[str, IntegrationTally] = {}
        for d in self.deliveries.values():
            if d.tenant != tenant or d.updated_at < since:
                continue
            tally = tallies.get(d.integration_id) or IntegrationTally(integration_id=d.integration_id)
            if d.status == "succeeded":
                last = max(filter(None, (tally.last_success_at, d.updated_at)))
                tally = replace(tally, succeeded=tally.succeeded + 1, last_success_at=last)
            elif d.status == "failed" and d.final:
                last = max(filter(None, (tally.last_failure_at, d.updated_at)))
                tally = replace(tally, failed=tally.failed + 1, last_failure_at=last)
            elif d.status == "pending":
                tally = replace(tally, pending=tally.pending + 1)
            else:
                tally = replace(tally, retrying=tally.retrying + 1)
            tallies[d.integration_id] = tally
        return [tallies[key] for key in sorted(tallies)]

    async def integration_states(self, tenant: str) -> list[IntegrationStateRecord]:
        return [self.states[key] for key in sorted(self.states) if key[0] == tenant]

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryTransaction]:
        tx = MemoryTransaction(self)
        yield tx
        if self.fail_commits:
            self.fail_commits -= 1
            raise TransientError("commit failed: database restarting")
        self.processed, self.recipes = tx.processed, tx.recipes
        self.orders, self.deliveries, self.attempts = tx.orders, tx.deliveries, tx.attempts
        self.states = tx.states


class Published:
    """A ``ports.Publish`` that records what was published."""

    def __init__(self) -> None:
        self.messages: list[IntegrationsTriggered] = []

    async def __call__(self, triggers: Sequence[IntegrationsTriggered]) -> None:
        self.messages.extend(triggers)
