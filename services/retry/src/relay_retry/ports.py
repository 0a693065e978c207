"""The retry service's ports: the durable schedule, the broker side, the scheduler's wake-up, and the bundle of
them the handlers take from the app context.

``adapters.schedule.SqlRetrySchedule`` and ``adapters.outbox.KafkaOutbox`` implement them, ``scheduler.Scheduler``
is the wake-up; ``service`` imports this module, never an adapter.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from relay_contracts.messages import IntegrationStateChanged
from relay_platform.tenants import TenantsConfig
from relay_retry.domain import GiveUp, IntegrationHealth, IntegrationStatus, OrderState, ScheduledRetry, StoredRetry

AddStatus = Literal["added", "duplicate", "order_cancelled"]


@dataclass(frozen=True, slots=True)
class AddResult:
    """Why ``RetrySchedule.add`` did (not) store a retry; ``order`` is the cancelled order's state if refused."""

    status: AddStatus
    order: OrderState | None = None


class ScheduleTransaction(Protocol):
    """One database transaction, committed when ``RetrySchedule.transaction()`` exits without error."""

    async def load_order(self, tenant: str, order_id: str) -> OrderState | None: ...

    async def save_order(self, state: OrderState) -> None: ...

    async def lock_integration(self, tenant: str, integration_id: str) -> None:
        """Serialise this transaction against every other that locks the same integration (hold vs. resume)."""
        ...

    async def load_integration(self, tenant: str, integration_id: str) -> IntegrationStatus | None: ...

    async def save_integration(self, state: IntegrationStatus) -> None: ...

    async def release_held(self, tenant: str, integration_id: str, *, now: datetime) -> int:
        """Make the integration's held rows due from ``now``, oldest stored first; returns how many."""
        ...

    async def load_health(self, tenant: str, integration_id: str) -> IntegrationHealth | None: ...

    async def save_health(self, health: IntegrationHealth) -> None: ...

    async def due_probes(self, now: datetime, limit: int) -> Sequence[IntegrationHealth]:
        """Unhealthy integrations whose probe is due, earliest first (locked; another replica's are skipped)."""
        ...

    async def oldest_held(self, tenant: str, integration_id: str) -> StoredRetry | None:
        """The integration's held request stored first, or ``None``."""
        ...

    async def delete_held(self, delivery_id: str, attempt: int) -> bool:
        """Remove that held row (its delivery ended); True when there was one."""
        ...

    async def insert(self, retry: ScheduledRetry, *, order_id: str | None, after_publish: bool = False) -> bool:
        """Store ``retry`` unless (delivery_id, attempt) is already stored; True when a row was added."""
        ...

    async def order_retries(self, tenant: str, order_id: str) -> Sequence[StoredRetry]:
        """The pending retries of one order (locked until the transaction ends)."""
        ...

    async def due(self, now: datetime, limit: int) -> Sequence[StoredRetry]:
        """Up to ``limit`` due retries, earliest first, with their order's state; rows another replica holds are
        skipped."""
        ...

    async def delete(self, rows: Collection[tuple[str, int]]) -> None:
        """Remove these ``(delivery_id, attempt)`` rows."""
        ...


class RetrySchedule(Protocol):
    """The durable schedule; ``adapters.schedule.SqlRetrySchedule`` is the SQL implementation."""

    def transaction(self) -> AbstractAsyncContextManager[ScheduleTransaction]: ...

    async def add(self, retry: ScheduledRetry, *, order_id: str | None) -> AddResult:
        """Store ``retry`` unless it is already stored or ``order_id`` names an order that refuses retries."""
        ...

    async def next_due_at(self) -> datetime | None: ...

    async def next_probe_at(self) -> datetime | None:
        """When the earliest probe of an unhealthy integration is due."""
        ...


@dataclass(frozen=True, slots=True)
class PublishFailure:
    """Why one record was not published: ``permanent`` when the broker will refuse it again (too large, invalid
    topic, not authorised), so retrying the publish cannot help."""

    error_class: str
    detail: str
    permanent: bool


class Outbox(Protocol):
    """The broker side; ``adapters.outbox.KafkaOutbox`` publishes with ``acks=all``."""

    async def final(self, give_ups: Sequence[GiveUp]) -> None:
        """Publish the final outcomes (and dead letters); returns once confirmed, else ``TransientError``."""
        ...

    async def requests(self, due: Sequence[ScheduledRetry]) -> Sequence[PublishFailure | None]:
        """Re-request each delivery; per retry ``None`` once confirmed, or why it was not."""
        ...

    async def state_changes(self, changes: Sequence[IntegrationStateChanged]) -> None:
        """Publish pauses and resumes of the health rules; returns once confirmed, else ``TransientError``."""
        ...


class Wake(Protocol):
    """The scheduler, told that a retry was added so it looks at the schedule again now (``Scheduler``)."""

    def notify(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPorts:
    """What the handlers take from the app context (``main`` puts it there once the schedule is open)."""

    tenants: TenantsConfig
    schedule: RetrySchedule
    outbox: Outbox
    wake: Wake
    # Each back-off is spread by this factor (``Settings.jitter``), drawn from ``rng``.
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)
