"""What the use cases need from the outside: the store (one transaction per message, plus read queries) and a way
to publish triggers. ``adapters.repository.SqlStore`` is the store; the handlers publish through the broker."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

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
)
from relay_contracts.internal_api import ORDERS_PAGE_SIZE, OrderLookupField
from relay_contracts.messages import IntegrationsTriggered
from relay_platform.tenants import TenantsConfig


class Transaction(Protocol):
    """One database transaction; committed when the ``Store.transaction()`` block exits without error."""

    async def claim_event(self, tenant: str, kind: EventKind, event_id: str) -> bool:
        """Record ``event_id`` as processed; ``False`` if it already was."""

    async def load_recipe(self, tenant: str, recipe_id: str) -> RecipeRecord | None: ...
    async def save_recipe(self, record: RecipeRecord, *, exists: bool) -> None: ...
    async def load_order(self, tenant: str, order_id: str) -> OrderState | None: ...
    async def save_order(self, change: OrderChange) -> None: ...
    async def load_delivery(self, delivery_id: str) -> DeliveryRecord | None: ...
    async def save_delivery(self, record: DeliveryRecord, *, exists: bool) -> None: ...
    async def add_attempt(self, attempt: AttemptRecord) -> None:
        """Append to the delivery's attempt log; the same (delivery, attempt, status) again adds nothing."""

    async def load_integration_state(self, tenant: str, integration_id: str) -> IntegrationStateRecord | None:
        """The integration's stored state, locked for this transaction; ``None`` when never changed."""

    async def save_integration_state(self, record: IntegrationStateRecord, *, exists: bool) -> None: ...


class Store(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...


class AuditQueries(Protocol):
    async def unfinished_deliveries(self, tenant: str, *, before: datetime, limit: int) -> list[DeliveryRecord]:
        """Non-final deliveries of ``tenant`` with ``updated_at < before``, newest first, at most ``limit``."""


class OrderQueries(AuditQueries, Protocol):
    """What the internal query API reads."""

    async def find_orders(
        self, tenant: str, by: OrderLookupField, value: str, *, after: str | None = None, limit: int = ORDERS_PAGE_SIZE
    ) -> list[OrderView]:
        """Orders of ``tenant`` (only) by ``by``, ordered by order ID, those after ``after``, at most ``limit``."""

    async def recent_orders(self, tenant: str, *, after: Cursor | None, limit: int) -> list[OrderView]:
        """Orders of ``tenant`` (only), newest last event first (then order ID, descending), those after
        ``after``, at most ``limit``, each with its deliveries and their attempt logs."""

    async def list_deliveries(
        self, tenant: str, wanted: DeliveryFilter, *, after: Cursor | None, limit: int
    ) -> list[DeliveryRecord]:
        """Deliveries of ``tenant`` (only) matching ``wanted``, newest change first, those after ``after``."""

    async def count_deliveries(self, tenant: str, wanted: DeliveryFilter) -> int:
        """How many deliveries of ``tenant`` (only) match ``wanted``."""

    async def integration_tallies(self, tenant: str, *, since: datetime) -> list[IntegrationTally]:
        """Per integration of ``tenant`` (only), its deliveries last changed at or after ``since``, by status."""

    async def integration_states(self, tenant: str) -> list[IntegrationStateRecord]:
        """The stored state of each of ``tenant``'s (only) integrations ever paused or resumed, by integration ID."""

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """Whether the database answers within ``timeout_s``."""


Publish = Callable[[Sequence[IntegrationsTriggered]], Awaitable[None]]
"""Publishes triggers, each awaited to the broker's acknowledgement; the use cases call it before they commit."""


@dataclass(frozen=True, slots=True)
class ServicePorts:
    """What the handlers find in the FastStream context under ``ports`` (set at start-up by ``main``)."""

    store: Store
    tenants: TenantsConfig
