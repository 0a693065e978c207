"""The durable retry schedule in SQL (SQLite file by default, PostgreSQL in production).

Three tables (``tables``), made and changed by the alembic scripts in ``relay_retry.migrations`` when the schedule
opens: the scheduled retries, keyed by (delivery_id, attempt) so a redelivered retry command adds nothing (held
ones, of a paused integration, are never due until released), each order's status by ``occurredAt`` and each
integration's state by ``changedAt``. On PostgreSQL, due rows are taken with ``FOR UPDATE SKIP LOCKED``: several
replicas share the work and each row is published by one of them; the lock is held until its publish is confirmed
and the row deleted. Database failures become the platform's ``TransientError``/``PermanentError``
(``relay_platform.sql.translate_db_errors``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Collection
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, get_args

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import bindparam, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay_contracts.messages import DeliverBundle, StateChangeCause
from relay_platform.errors import TransientError
from relay_platform.sql import READ_ONLY, create_engine, migrate, translate_db_errors
from relay_retry.adapters.tables import (
    TRACE_PARENT_MAX,
    integration_health,
    integration_states,
    legacy_cancelled_orders,
    order_states,
    scheduled_retries,
)
from relay_retry.domain import (
    IntegrationHealth,
    IntegrationStatus,
    OrderState,
    OrderStatus,
    ScheduledRetry,
    StoredRetry,
    release_times,
)
from relay_retry.ports import AddResult
from relay_retry.settings import ScheduleDatabaseSettings

logger = logging.getLogger("relay.retry.schedule")

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class SqlRetrySchedule:
    """``RetrySchedule`` on SQLAlchemy 2 async. Nothing connects until ``opened()`` (the app's start-up) or
    ``SqlRetrySchedule.open(url)`` (tests, tools)."""

    def __init__(self, settings: ScheduleDatabaseSettings) -> None:
        self._settings = settings
        self._engine: AsyncEngine | None = None
        self._legacy = False

    @classmethod
    def open(cls, url: str, *, connect_timeout_s: float = 5.0) -> AbstractAsyncContextManager[SqlRetrySchedule]:
        """The schedule at ``url``, open for the ``async with`` block."""
        return cls(ScheduleDatabaseSettings(url=url, connect_timeout_s=connect_timeout_s)).opened()

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[SqlRetrySchedule]:
        """Connect and bring the tables up to date (alembic); dispose of the engine on exit."""
        engine = create_engine(
            self._settings.url,
            pool_size=self._settings.pool_size,
            connect_timeout_s=self._settings.connect_timeout_s,
        )
        try:
            await migrate(engine, MIGRATIONS)
            with translate_db_errors():
                async with engine.connect() as connection:
                    await connection.execution_options(**{READ_ONLY: True})
                    self._legacy = await connection.run_sync(
                        lambda sync: sa.inspect(sync).has_table(legacy_cancelled_orders.name)
                    )
            self._engine = engine
            yield self
        finally:
            self._engine = None
            await engine.dispose()

    def _opened(self) -> AsyncEngine:
        if self._engine is None:
            # Not started yet (or stopping): the message or round is tried again.
            raise TransientError("retry schedule is not open")
        return self._engine

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlScheduleTransaction]:
        """One transaction, committed when the block exits without error."""
        engine = self._opened()
        with translate_db_errors():
            async with engine.begin() as connection:
                yield SqlScheduleTransaction(connection, engine.dialect.name, legacy_cancellations=self._legacy)

    @asynccontextmanager
    async def _reading(self) -> AsyncIterator[AsyncConnection]:
        """A connection that only reads (on SQLite it takes no write lock)."""
        engine = self._opened()
        with translate_db_errors():
            async with engine.connect() as connection:
                await connection.execution_options(**{READ_ONLY: True})
                yield connection

    async def add(self, retry: ScheduledRetry, *, order_id: str | None) -> AddResult:
        """Store ``retry`` unless (delivery_id, attempt) is already there or its order refuses retries."""
        async with self.transaction() as tx:
            order = await tx.load_order(retry.request.tenant, order_id) if order_id is not None else None
            if order is not None and order.refuses_retries:
                return AddResult("order_cancelled", order)
            added = await tx.insert(retry, order_id=order_id)
        return AddResult("added" if added else "duplicate")

    async def next_due_at(self) -> datetime | None:
        async with self._reading() as connection:
            value = await connection.scalar(
                select(func.min(scheduled_retries.c.due_at)).where(scheduled_retries.c.held.is_(False))
            )
        return None if value is None else datetime.fromtimestamp(float(value), UTC)

    async def next_probe_at(self) -> datetime | None:
        """When the earliest probe of an unhealthy integration is due (``None``: none is unhealthy)."""
        async with self._reading() as connection:
            value = await connection.scalar(select(func.min(integration_health.c.next_probe_at)))
        return _instant(value)

    async def unhealthy(self) -> int:
        """How many integrations the health rules hold paused as unhealthy (the ops port's gauge)."""
        query = (
            select(func.count())
            .select_from(integration_health)
            .where(integration_health.c.unhealthy_since.is_not(None))
        )
        async with self._reading() as connection:
            return int(await connection.scalar(query) or 0)

    async def health(self, tenant: str, integration_id: str) -> IntegrationHealth | None:
        """The known health of one integration (for tests and operators)."""
        async with self._reading() as connection:
            return await SqlScheduleTransaction(
                connection, connection.dialect.name, legacy_cancellations=self._legacy
            ).load_health(tenant, integration_id)

    async def order_state(self, tenant: str, order_id: str) -> OrderState | None:
        """The known status of one order (for tests and operators)."""
        async with self._reading() as connection:
            return await SqlScheduleTransaction(
                connection, connection.dialect.name, legacy_cancellations=self._legacy
            ).load_order(tenant, order_id)

    async def ping(self) -> bool:
        """``SELECT 1`` answers (the ops port's readiness); False while the schedule is not open."""
        if self._engine is None:
            return False
        async with self._engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
        return True

    async def integration_state(self, tenant: str, integration_id: str) -> IntegrationStatus | None:
        """The known state of one integration (for tests and operators)."""
        async with self._reading() as connection:
            return await SqlScheduleTransaction(
                connection, connection.dialect.name, legacy_cancellations=self._legacy
            ).load_integration(tenant, integration_id)

    async def pending(self, delivery_id: str | None = None, *, held: bool | None = None) -> int:
        """How many retries are waiting (held ones included), in all or of one delivery; ``held`` counts only the
        held (True) or only the schedulable (False) ones (for tests, health output and the backlog gauge)."""
        query = select(func.count()).select_from(scheduled_retries)
        if delivery_id is not None:
            query = query.where(scheduled_retries.c.delivery_id == delivery_id)
        if held is not None:
            query = query.where(scheduled_retries.c.held.is_(held))
        async with self._reading() as connection:
            count = await connection.scalar(query)
        return int(count or 0)


class SqlScheduleTransaction:
    """``ScheduleTransaction`` on one connection inside ``engine.begin()``."""

    def __init__(self, connection: AsyncConnection, dialect: str, *, legacy_cancellations: bool) -> None:
        self._connection = connection
        self._postgres = dialect == "postgresql"
        self._insert = pg_insert if self._postgres else sqlite_insert
        self._legacy = legacy_cancellations

    async def load_order(self, tenant: str, order_id: str) -> OrderState | None:
        table = order_states
        row = (
            await self._connection.execute(
                select(table.c.status, table.c.status_at).where(table.c.tenant == tenant, table.c.order_id == order_id)
            )
        ).first()
        if row is not None:
            return OrderState(tenant, order_id, _status(row.status), datetime.fromisoformat(row.status_at))
        if not self._legacy:
            return None
        legacy = legacy_cancelled_orders
        cancelled_at = await self._connection.scalar(
            select(legacy.c.cancelled_at).where(legacy.c.tenant == tenant, legacy.c.order_id == order_id)
        )
        if cancelled_at is None:
            return None
        return OrderState(tenant, order_id, "cancelled", datetime.fromtimestamp(float(cancelled_at), UTC))

    async def save_order(self, state: OrderState) -> None:
        values = {
            "tenant": state.tenant,
            "order_id": state.order_id,
            "status": state.status,
            "status_at": state.status_at.isoformat(),
            "updated_at": datetime.now(UTC).timestamp(),
        }
        statement = self._insert(order_states).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[order_states.c.tenant, order_states.c.order_id],
            set_={name: statement.excluded[name] for name in ("status", "status_at", "updated_at")},
        )
        await self._connection.execute(statement)

    async def lock_integration(self, tenant: str, integration_id: str) -> None:
        """Serialise, per integration, a held request's store against a resume's release until this transaction
        ends.

        Without it, on PostgreSQL (READ COMMITTED) a hold could read "paused" (or no state at all) while a resume
        commits its release of the held rows it can see, then insert its row held after that release: held while
        the integration is active, for good. A row lock cannot cover this when the integration has no state row
        yet (nothing to lock), so the lock is a transaction-scoped advisory lock on the integration's key, taken by
        both sides before they read the state; the later one then reads what the earlier one committed. On SQLite
        every writing transaction starts with ``BEGIN IMMEDIATE`` and so already runs alone.
        """
        if self._postgres:
            await self._connection.execute(
                select(
                    func.pg_advisory_xact_lock(
                        _INTEGRATION_LOCK_CLASS, func.hashtext(sa.literal(f"{tenant}\x1f{integration_id}"))
                    )
                )
            )

    async def load_integration(self, tenant: str, integration_id: str) -> IntegrationStatus | None:
        table = integration_states
        row = (
            await self._connection.execute(
                select(table.c.state, table.c.changed_at, table.c.cause).where(
                    table.c.tenant == tenant, table.c.integration_id == integration_id
                )
            )
        ).first()
        if row is None:
            return None
        if row.state not in ("active", "paused"):
            # Only a newer version could have written it; refusing to guess keeps the row for that version.
            raise TransientError(f"unknown integration state {row.state[:16]!r} in the retry schedule")
        return IntegrationStatus(
            tenant,
            integration_id,
            "active" if row.state == "active" else "paused",
            datetime.fromisoformat(row.changed_at),
            # An unknown cause (a newer version's) is not guessed at either: only "unhealthy" lets probes run.
            cast(StateChangeCause, row.cause) if row.cause in _CAUSES else "operator",
        )

    async def save_integration(self, state: IntegrationStatus) -> None:
        values = {
            "tenant": state.tenant,
            "integration_id": state.integration_id,
            "state": state.state,
            "changed_at": state.changed_at.isoformat(),
            "updated_at": datetime.now(UTC).timestamp(),
            "cause": state.cause,
        }
        statement = self._insert(integration_states).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[integration_states.c.tenant, integration_states.c.integration_id],
            set_={name: statement.excluded[name] for name in ("state", "changed_at", "updated_at", "cause")},
        )
        await self._connection.execute(statement)

    async def load_health(self, tenant: str, integration_id: str) -> IntegrationHealth | None:
        table = integration_health
        row = (
            await self._connection.execute(
                select(table).where(table.c.tenant == tenant, table.c.integration_id == integration_id)
            )
        ).first()
        return None if row is None else _health(row)

    async def save_health(self, health: IntegrationHealth) -> None:
        values = {
            "tenant": health.tenant,
            "integration_id": health.integration_id,
            "consecutive_failures": health.consecutive_failures,
            "last_error": health.last_error[:200] if health.last_error is not None else None,
            "unhealthy_since": _seconds(health.unhealthy_since),
            "probes": health.probes,
            "next_probe_at": _seconds(health.next_probe_at),
            "updated_at": datetime.now(UTC).timestamp(),
        }
        statement = self._insert(integration_health).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=[integration_health.c.tenant, integration_health.c.integration_id],
            set_={name: statement.excluded[name] for name in values if name not in ("tenant", "integration_id")},
        )
        await self._connection.execute(statement)

    async def due_probes(self, now: datetime, limit: int) -> list[IntegrationHealth]:
        """Unhealthy integrations whose probe is due, earliest first; rows another replica holds are skipped."""
        table = integration_health
        query = (
            select(table)
            .where(table.c.next_probe_at <= now.timestamp())
            .order_by(table.c.next_probe_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return [_health(row) for row in (await self._connection.execute(query)).all()]

    async def oldest_held(self, tenant: str, integration_id: str) -> StoredRetry | None:
        """The integration's held request stored first (the one a probe sends), or ``None``."""
        table = scheduled_retries
        row = (
            await self._connection.execute(
                select(*_ROW_COLUMNS)
                .where(table.c.tenant == tenant, table.c.integration_id == integration_id, table.c.held.is_(True))
                .order_by(table.c.created_at, table.c.delivery_id, table.c.attempt)
                .limit(1)
            )
        ).first()
        return None if row is None else _stored(row, order=None)

    async def delete_held(self, delivery_id: str, attempt: int) -> bool:
        """Remove the held row ``(delivery_id, attempt)`` (its delivery ended); True when there was one."""
        table = scheduled_retries
        result = await self._connection.execute(
            delete(table).where(table.c.delivery_id == delivery_id, table.c.attempt == attempt, table.c.held.is_(True))
        )
        return bool(result.rowcount)

    async def release_held(self, tenant: str, integration_id: str, *, now: datetime) -> int:
        """Make every held row of the integration due from ``now``, in the order they were stored; how many."""
        table = scheduled_retries
        query = (
            select(table.c.delivery_id, table.c.attempt)
            .where(table.c.tenant == tenant, table.c.integration_id == integration_id, table.c.held.is_(True))
            .order_by(table.c.created_at, table.c.delivery_id, table.c.attempt)
            .with_for_update()
        )
        rows = (await self._connection.execute(query)).all()
        if not rows:
            return 0
        release = (
            sa.update(table)
            .where(table.c.delivery_id == bindparam("p_delivery_id"), table.c.attempt == bindparam("p_attempt"))
            .values(held=False, due_at=bindparam("p_due_at"))
        )
        await self._connection.execute(
            release,
            [
                {"p_delivery_id": row.delivery_id, "p_attempt": row.attempt, "p_due_at": due.timestamp()}
                for row, due in zip(rows, release_times(len(rows), now=now), strict=True)
            ],
        )
        return len(rows)

    async def insert(self, retry: ScheduledRetry, *, order_id: str | None, after_publish: bool = False) -> bool:
        """Insert unless (delivery_id, attempt) is already stored; True when a row was added.

        ``after_publish``: the row may have just been re-requested by a scheduler whose transaction (row locked,
        not yet deleted) is still open, as with a hold for the attempt it published. ``ON CONFLICT DO NOTHING``
        would see that row and add nothing, and the delete would then lose the request; waiting for the row's
        lock first lets the insert see the delete (PostgreSQL; SQLite's writers run one at a time anyway).
        """
        if after_publish:
            table = scheduled_retries
            existing = await self._connection.scalar(
                select(table.c.attempt)
                .where(table.c.delivery_id == retry.delivery_id, table.c.attempt == retry.attempt)
                .with_for_update()
            )
            if existing is not None:
                return False
        values = {
            "delivery_id": retry.delivery_id,
            "attempt": retry.attempt,
            "tenant": retry.request.tenant,
            "order_id": order_id,
            "integration_type": retry.request.integration_type,
            "recipe_id": retry.request.recipe_id,
            "due_at": retry.due_at.timestamp(),
            "request_json": retry.request.model_dump_json(),
            "created_at": _line_position(retry),
            "trace_parent": retry.trace_parent if _storable_trace(retry.trace_parent) else None,
            "held": retry.held,
            "integration_id": retry.request.integration_id,
        }
        result = await self._connection.execute(
            self._insert(scheduled_retries).values(**values).on_conflict_do_nothing()
        )
        return bool(result.rowcount)

    async def order_retries(self, tenant: str, order_id: str) -> list[StoredRetry]:
        table = scheduled_retries
        query = (
            select(*_ROW_COLUMNS)
            .where(table.c.tenant == tenant, table.c.order_id == order_id)
            .order_by(table.c.due_at)
            .with_for_update()
        )
        return [_stored(row, order=None) for row in (await self._connection.execute(query)).all()]

    async def due(self, now: datetime, limit: int) -> list[StoredRetry]:
        table, states = scheduled_retries, order_states
        query = (
            select(*_ROW_COLUMNS, states.c.status.label("order_status"), states.c.status_at.label("order_status_at"))
            .select_from(
                table.outerjoin(states, (states.c.tenant == table.c.tenant) & (states.c.order_id == table.c.order_id))
            )
            .where(table.c.due_at <= now.timestamp(), table.c.held.is_(False))
            .order_by(table.c.due_at)
            .limit(limit)
            # Only the schedule's rows are locked (PostgreSQL cannot lock the nullable side of an outer join).
            .with_for_update(skip_locked=True, of=table)
        )
        rows = (await self._connection.execute(query)).all()
        return [_stored(row, order=_joined_order(row)) for row in rows]

    async def delete(self, rows: Collection[tuple[str, int]]) -> None:
        if not rows:
            return
        table = scheduled_retries
        removal = delete(table).where(
            table.c.delivery_id == bindparam("p_delivery_id"), table.c.attempt == bindparam("p_attempt")
        )
        await self._connection.execute(
            removal, [{"p_delivery_id": delivery_id, "p_attempt": attempt} for delivery_id, attempt in rows]
        )


_ROW_COLUMNS = (
    scheduled_retries.c.delivery_id,
    scheduled_retries.c.attempt,
    scheduled_retries.c.tenant,
    scheduled_retries.c.order_id,
    scheduled_retries.c.integration_type,
    scheduled_retries.c.recipe_id,
    scheduled_retries.c.due_at,
    scheduled_retries.c.request_json,
    scheduled_retries.c.trace_parent,
)
_STATUSES: frozenset[str] = frozenset(get_args(OrderStatus))
_CAUSES: frozenset[str] = frozenset(get_args(StateChangeCause))
# The advisory-lock class of ``lock_integration`` (two-key form: apart from the migrations' one-key lock).
_INTEGRATION_LOCK_CLASS = 0x5245


def _line_position(retry: ScheduledRetry) -> float:
    """``created_at``, by which held rows are released (and probed) oldest first: for a held row, when its delivery
    was accepted, so an order whose last attempt was held after a later order's first one still goes out first; for
    any other row (and a held row of a producer without those times), when it is stored."""
    now = datetime.now(UTC).timestamp()
    if not retry.held:
        return now
    accepted = retry.request.accepted_at or retry.request.requested_at
    return min(accepted.timestamp(), now)


def _storable_trace(trace_parent: str | None) -> bool:
    """Only what fits the column is kept: a longer value (a future traceparent version) is dropped rather than
    failing the insert, and the retry is published in a new trace instead."""
    return trace_parent is not None and len(trace_parent) <= TRACE_PARENT_MAX


def _seconds(instant: datetime | None) -> float | None:
    return None if instant is None else instant.timestamp()


def _instant(value: object) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(cast(float, value)), UTC)


def _health(row: Any) -> IntegrationHealth:
    return IntegrationHealth(
        tenant=row.tenant,
        integration_id=row.integration_id,
        consecutive_failures=row.consecutive_failures,
        last_error=row.last_error,
        unhealthy_since=_instant(row.unhealthy_since),
        probes=row.probes,
        next_probe_at=_instant(row.next_probe_at),
    )


def _status(value: str) -> OrderStatus:
    if value not in _STATUSES:
        # Only a newer version could have written it; refusing to guess keeps the row for that version.
        raise TransientError(f"unknown order status {value[:16]!r} in the retry schedule")
    return cast(OrderStatus, value)


def _joined_order(row: Any) -> OrderState | None:
    if row.order_id is None or row.order_status is None:
        return None
    return OrderState(row.tenant, row.order_id, _status(row.order_status), datetime.fromisoformat(row.order_status_at))


def _stored(row: Any, *, order: OrderState | None) -> StoredRetry:
    try:
        request = DeliverBundle.model_validate_json(row.request_json)
    except ValidationError:
        # Only possible if the stored contract changed incompatibly; the delivery is ended, loudly.
        logger.error("scheduled retry %s attempt %s no longer parses", row.delivery_id, row.attempt)  # noqa: TRY400
        retry = None
    else:
        retry = ScheduledRetry(
            request=request, due_at=datetime.fromtimestamp(float(row.due_at), UTC), trace_parent=row.trace_parent
        )
    return StoredRetry(
        delivery_id=row.delivery_id,
        attempt=row.attempt,
        tenant=row.tenant,
        order_id=row.order_id,
        integration_type=row.integration_type,
        recipe_id=row.recipe_id,
        request_json=row.request_json,
        retry=retry,
        order=order,
        trace_parent=row.trace_parent,
    )
