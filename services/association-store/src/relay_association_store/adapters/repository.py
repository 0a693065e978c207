"""The SQL repository (SQLite or PostgreSQL through SQLAlchemy's asyncio API): the ``ports.Store`` of the consumers
and the ``ports.OrderQueries`` of the internal API.

The engine, the migrations runner and the translation of database failures (unavailable/locked/conflicting ->
``TransientError``, data the database rejects -> ``PermanentError``) are ``relay_platform.sql``'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay_association_store.adapters.tables import (
    deliveries,
    delivery_attempts,
    integration_states,
    order_items,
    orders,
    processed_events,
    recipes,
)
from relay_association_store.domain import (
    AttemptRecord,
    Cursor,
    DeliveryFilter,
    DeliveryRecord,
    DeliveryState,
    EventKind,
    IntegrationStateRecord,
    IntegrationTally,
    ItemState,
    OrderChange,
    OrderState,
    OrderStatus,
    OrderView,
    RecipeRecord,
    attempt_log,
)
from relay_contracts.internal_api import ORDERS_PAGE_SIZE, OrderLookupField
from relay_contracts.messages import IntegrationState, StateChangeCause
from relay_contracts.topics import IntegrationType
from relay_platform import sql
from relay_platform.sql import READ_ONLY, create_engine, translate_db_errors

logger = logging.getLogger("relay.association_store.db")

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class SqlStore:
    """The association store's database: one transaction per consumed message, plus the read queries."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    @classmethod
    def open(cls, url: str, *, pool_size: int = 5, connect_timeout_s: float = 5.0) -> SqlStore:
        return cls(create_engine(url, pool_size=pool_size, connect_timeout_s=connect_timeout_s))

    async def close(self) -> None:
        await self.engine.dispose()

    async def migrate(self) -> None:
        """``alembic upgrade head`` on this database (idempotent; safe with several instances starting)."""
        await sql.migrate(self.engine, MIGRATIONS)

    async def ping(self, timeout_s: float = 2.0) -> bool:
        """True when the database answers ``SELECT 1`` within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s), self._reader.connect() as connection:
                await connection.execute(sa.text("SELECT 1"))
        except (exc.SQLAlchemyError, OSError, TimeoutError) as error:
            logger.warning("database ping failed: %s", type(error).__name__)
            return False
        return True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlTransaction]:
        with translate_db_errors():
            async with self.engine.begin() as connection:
                yield SqlTransaction(connection)

    async def find_orders(
        self,
        tenant: str,
        by: OrderLookupField,
        value: str,
        *,
        after: str | None = None,
        limit: int = ORDERS_PAGE_SIZE,
    ) -> list[OrderView]:
        """Orders of ``tenant`` (only) by order ID, order number, or a recipe used on one of their items; at most
        ``limit``, by order ID, those after ``after`` (the last order ID of the previous page)."""
        if by == "orderId":
            where = sa.select(orders.c.order_id).where(orders.c.tenant == tenant, orders.c.order_id == value)
        elif by == "orderNumber":
            where = sa.select(orders.c.order_id).where(orders.c.tenant == tenant, orders.c.order_number == value)
        else:
            where = (
                sa.select(order_items.c.order_id)
                .where(order_items.c.tenant == tenant, order_items.c.recipe_id == value)
                .distinct()
            )
        id_column = where.selected_columns[0]
        if after is not None:
            where = where.where(id_column > after)
        with translate_db_errors():
            async with self._reader.connect() as connection:
                ids = list((await connection.execute(where.order_by(id_column).limit(limit))).scalars())
                # In the database's order: its collation is what `after` compares with.
                return await _order_views(connection, tenant, ids)

    async def recent_orders(self, tenant: str, *, after: Cursor | None, limit: int) -> list[OrderView]:
        """Orders of ``tenant`` (only), newest last event first, then by order ID descending (keyset paging on
        the ``ix_orders_tenant_updated_at`` index)."""
        query = sa.select(orders.c.order_id).where(orders.c.tenant == tenant)
        if after is not None:
            query = query.where(_older_than(after, orders.c.updated_at, orders.c.order_id))
        query = query.order_by(orders.c.updated_at.desc(), orders.c.order_id.desc()).limit(limit)
        with translate_db_errors():
            async with self._reader.connect() as connection:
                ids = list((await connection.execute(query)).scalars())
                return await _order_views(connection, tenant, ids)

    async def list_deliveries(
        self, tenant: str, wanted: DeliveryFilter, *, after: Cursor | None, limit: int
    ) -> list[DeliveryRecord]:
        """Deliveries of ``tenant`` (only) matching ``wanted``, newest change first, then by delivery ID
        descending. ``failed`` means final failures only; ``retrying`` only those not ended."""
        table = deliveries
        query = sa.select(table).where(*_matching(tenant, wanted))
        if after is not None:
            query = query.where(_older_than(after, table.c.updated_at, table.c.delivery_id))
        query = query.order_by(table.c.updated_at.desc(), table.c.delivery_id.desc()).limit(limit)
        with translate_db_errors():
            async with self._reader.connect() as connection:
                return [_delivery(row) for row in await connection.execute(query)]

    async def count_deliveries(self, tenant: str, wanted: DeliveryFilter) -> int:
        """How many deliveries of ``tenant`` (only) match ``wanted``."""
        query = sa.select(sa.func.count()).select_from(deliveries).where(*_matching(tenant, wanted))
        with translate_db_errors():
            async with self._reader.connect() as connection:
                return int(await connection.scalar(query) or 0)

    async def integration_tallies(self, tenant: str, *, since: datetime) -> list[IntegrationTally]:
        """One ``GROUP BY`` over the tenant's deliveries changed since ``since``."""
        table = deliveries
        query = (
            sa.select(
                table.c.integration_id,
                table.c.status,
                table.c.final,
                sa.func.count().label("total"),
                sa.func.max(table.c.updated_at).label("last_at"),
            )
            .where(table.c.tenant == tenant, table.c.updated_at >= since)
            .group_by(table.c.integration_id, table.c.status, table.c.final)
        )
        with translate_db_errors():
            async with self._reader.connect() as connection:
                rows = (await connection.execute(query)).all()
        return _tallies(rows)

    async def integration_states(self, tenant: str) -> list[IntegrationStateRecord]:
        """The stored state of each of ``tenant``'s (only) integrations ever paused or resumed, by integration ID."""
        query = (
            sa.select(integration_states)
            .where(integration_states.c.tenant == tenant)
            .order_by(integration_states.c.integration_id)
        )
        with translate_db_errors():
            async with self._reader.connect() as connection:
                return [_integration_state(row) for row in await connection.execute(query)]

    async def unfinished_deliveries(self, tenant: str, *, before: datetime, limit: int) -> list[DeliveryRecord]:
        """Deliveries of ``tenant`` (only) not final and last changed before ``before``, newest first."""
        query = (
            sa.select(deliveries)
            .where(
                deliveries.c.tenant == tenant,
                deliveries.c.final == sa.false(),
                deliveries.c.updated_at < before,
            )
            .order_by(deliveries.c.updated_at.desc(), deliveries.c.delivery_id)
            .limit(limit)
        )
        with translate_db_errors():
            async with self._reader.connect() as connection:
                return [_delivery(row) for row in await connection.execute(query)]


class SqlTransaction:
    """The ``ports.Transaction`` over one connection inside a transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self.connection = connection

    async def claim_event(self, tenant: str, kind: EventKind, event_id: str) -> bool:
        key = (
            processed_events.c.tenant == tenant,
            processed_events.c.kind == kind,
            processed_events.c.event_id == event_id,
        )
        seen = await self.connection.execute(sa.select(sa.literal(1)).where(*key))
        if seen.first() is not None:
            return False
        await self.connection.execute(
            processed_events.insert().values(
                tenant=tenant, kind=kind, event_id=event_id, processed_at=datetime.now(UTC)
            )
        )
        return True

    async def load_recipe(self, tenant: str, recipe_id: str) -> RecipeRecord | None:
        row = (
            await self.connection.execute(
                sa.select(recipes).where(recipes.c.tenant == tenant, recipes.c.recipe_id == recipe_id)
            )
        ).first()
        if row is None:
            return None
        return RecipeRecord(
            tenant=row.tenant,
            recipe_id=row.recipe_id,
            recipe_key=row.recipe_key,
            temporary=row.temporary,
            created=row.created,
            saved_at=row.saved_at,
        )

    async def save_recipe(self, record: RecipeRecord, *, exists: bool) -> None:
        values = {
            "recipe_key": record.recipe_key,
            "temporary": record.temporary,
            "created": record.created,
            "saved_at": record.saved_at,
        }
        if exists:
            await self.connection.execute(
                recipes.update()
                .where(recipes.c.tenant == record.tenant, recipes.c.recipe_id == record.recipe_id)
                .values(**values)
            )
        else:
            await self.connection.execute(
                recipes.insert().values(tenant=record.tenant, recipe_id=record.recipe_id, **values)
            )

    async def load_order(self, tenant: str, order_id: str, *, lock: bool = True) -> OrderState | None:
        query = sa.select(orders).where(orders.c.tenant == tenant, orders.c.order_id == order_id)
        if lock:
            query = query.with_for_update()  # PostgreSQL row lock; SQLite's BEGIN IMMEDIATE already serialises
        row = (await self.connection.execute(query)).first()
        if row is None:
            return None
        item_rows = await self.connection.execute(
            sa.select(order_items).where(order_items.c.tenant == tenant, order_items.c.order_id == order_id)
        )
        items = {
            item.item_id: ItemState(item.item_id, item.recipe_id, item.item_quantity, item.occurred_at)
            for item in item_rows
        }
        return OrderState(
            tenant=row.tenant,
            order_id=row.order_id,
            order_number=row.order_number,
            status=cast("OrderStatus", row.status),
            status_at=row.status_at,
            items_at=row.items_at,
            updated_at=row.updated_at,
            items=items,
            trace_parent=row.trace_parent,
        )

    async def save_order(self, change: OrderChange) -> None:
        before, after = change.before, change.after
        values = {
            "order_number": after.order_number,
            "status": after.status,
            "status_at": after.status_at,
            "items_at": after.items_at,
            "updated_at": after.updated_at,
        }
        key = (orders.c.tenant == after.tenant, orders.c.order_id == after.order_id)
        if before is None:
            # The trace is written with the row only: an order's first trace is never replaced.
            await self.connection.execute(
                orders.insert().values(
                    tenant=after.tenant, order_id=after.order_id, trace_parent=after.trace_parent, **values
                )
            )
        else:
            await self.connection.execute(orders.update().where(*key).values(**values))
        old_items: Mapping[str, ItemState] = before.items if before is not None else {}
        removed = [item_id for item_id in old_items if item_id not in after.items]
        if removed:
            await self.connection.execute(
                order_items.delete().where(
                    order_items.c.tenant == after.tenant,
                    order_items.c.order_id == after.order_id,
                    order_items.c.item_id.in_(removed),
                )
            )
        for item in after.items.values():
            old = old_items.get(item.item_id)
            if old == item:
                continue
            item_values = {
                "recipe_id": item.recipe_id,
                "item_quantity": item.quantity,
                "occurred_at": item.occurred_at,
            }
            if old is None:
                await self.connection.execute(
                    order_items.insert().values(
                        tenant=after.tenant, order_id=after.order_id, item_id=item.item_id, **item_values
                    )
                )
            else:
                await self.connection.execute(
                    order_items.update()
                    .where(
                        order_items.c.tenant == after.tenant,
                        order_items.c.order_id == after.order_id,
                        order_items.c.item_id == item.item_id,
                    )
                    .values(**item_values)
                )

    async def load_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        row = (
            await self.connection.execute(
                sa.select(deliveries).where(deliveries.c.delivery_id == delivery_id).with_for_update()
            )
        ).first()
        return None if row is None else _delivery(row)

    async def add_attempt(self, attempt: AttemptRecord) -> None:
        key = (
            delivery_attempts.c.delivery_id == attempt.delivery_id,
            delivery_attempts.c.attempt == attempt.attempt,
            delivery_attempts.c.status == attempt.status,
        )
        # Read, then insert: portable across SQLite and PostgreSQL, and the delivery row's lock (``load_delivery``
        # FOR UPDATE, taken first in the same transaction) keeps two consumers of one delivery from racing here.
        if (await self.connection.execute(sa.select(sa.literal(1)).where(*key))).first() is not None:
            return
        await self.connection.execute(
            delivery_attempts.insert().values(
                delivery_id=attempt.delivery_id,
                attempt=attempt.attempt,
                status=attempt.status,
                tenant=attempt.tenant,
                error_class=attempt.error_class,
                error=attempt.error,
                occurred_at=attempt.occurred_at,
                recorded_at=datetime.now(UTC),
            )
        )

    async def load_integration_state(self, tenant: str, integration_id: str) -> IntegrationStateRecord | None:
        row = (
            await self.connection.execute(
                sa.select(integration_states)
                .where(integration_states.c.tenant == tenant, integration_states.c.integration_id == integration_id)
                .with_for_update()  # PostgreSQL row lock; SQLite's BEGIN IMMEDIATE already serialises
            )
        ).first()
        return None if row is None else _integration_state(row)

    async def save_integration_state(self, record: IntegrationStateRecord, *, exists: bool) -> None:
        values = {
            "state": record.state,
            "reason": record.reason,
            "changed_by": record.changed_by,
            "cause": record.cause,
            "changed_at": record.changed_at,
            "event_id": record.event_id,
            "recorded_at": datetime.now(UTC),
        }
        if exists:
            await self.connection.execute(
                integration_states.update()
                .where(
                    integration_states.c.tenant == record.tenant,
                    integration_states.c.integration_id == record.integration_id,
                )
                .values(**values)
            )
        else:
            # Two first changes racing: the loser's insert conflicts, the transaction is retried (TransientError)
            # and then finds the winner's row to compare with.
            await self.connection.execute(
                integration_states.insert().values(tenant=record.tenant, integration_id=record.integration_id, **values)
            )

    async def save_delivery(self, record: DeliveryRecord, *, exists: bool) -> None:
        values = {
            "tenant": record.tenant,
            "integration_id": record.integration_id,
            "integration_type": record.integration_type,
            "recipe_id": record.recipe_id,
            "order_id": record.order_id,
            "order_number": record.order_number,
            "trigger_id": record.trigger_id,
            "reason": record.reason,
            "status": record.status,
            "final": record.final,
            "attempts": record.attempts,
            "last_error": record.last_error,
            "files": list(record.files),
            "updated_at": record.updated_at,
            "created_at": record.created_at,
            "triggered_at": record.triggered_at,
            "item_id": record.item_id,
            "replayed_by": record.replayed_by,
        }
        if exists:
            await self.connection.execute(
                deliveries.update().where(deliveries.c.delivery_id == record.delivery_id).values(**values)
            )
        else:
            await self.connection.execute(deliveries.insert().values(delivery_id=record.delivery_id, **values))


def _older_than(after: Cursor, at: sa.ColumnElement[datetime], key: sa.ColumnElement[str]) -> sa.ColumnElement[bool]:
    """Rows after ``after`` in a newest-first list ordered by ``(at DESC, key DESC)``: keyset paging."""
    return sa.or_(at < after.at, sa.and_(at == after.at, key < after.key))


def _matching(tenant: str, wanted: DeliveryFilter) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of a delivery list: ``failed`` means final failures only, ``retrying`` those not ended."""
    table = deliveries
    clauses: list[sa.ColumnElement[bool]] = [table.c.tenant == tenant, table.c.status == wanted.status]
    if wanted.status == "failed":
        clauses.append(table.c.final == sa.true())
    elif wanted.status == "retrying":
        clauses.append(table.c.final == sa.false())
    if wanted.integration_id is not None:
        clauses.append(table.c.integration_id == wanted.integration_id)
    if wanted.since is not None:
        clauses.append(table.c.updated_at >= wanted.since)
    if wanted.until is not None:
        clauses.append(table.c.updated_at <= wanted.until)
    if wanted.replayed is False:
        clauses.append(table.c.replayed_by.is_(None))
    elif wanted.replayed is True:
        clauses.append(table.c.replayed_by.is_not(None))
    return clauses


async def _order_views(connection: AsyncConnection, tenant: str, ids: list[str]) -> list[OrderView]:
    """The orders ``ids`` of ``tenant`` in that order, with their deliveries and each delivery's attempt log."""
    if not ids:
        return []
    tx = SqlTransaction(connection)
    loaded = [await tx.load_order(tenant, order_id, lock=False) for order_id in ids]
    rows = await connection.execute(
        sa.select(deliveries)
        .where(deliveries.c.tenant == tenant, deliveries.c.order_id.in_(ids))
        .order_by(deliveries.c.recipe_id, deliveries.c.integration_id, deliveries.c.delivery_id)
    )
    by_order: dict[str, list[DeliveryRecord]] = {}
    for row in rows:
        by_order.setdefault(row.order_id, []).append(_delivery(row))
    delivery_ids = [delivery.delivery_id for found in by_order.values() for delivery in found]
    logs: dict[str, list[AttemptRecord]] = {}
    # Chunked: one IN list per 500 deliveries keeps every database's bound-parameter limit far away.
    for start in range(0, len(delivery_ids), 500):
        chunk = delivery_ids[start : start + 500]
        attempt_rows = await connection.execute(
            sa.select(delivery_attempts).where(
                delivery_attempts.c.tenant == tenant, delivery_attempts.c.delivery_id.in_(chunk)
            )
        )
        for row in attempt_rows:
            logs.setdefault(row.delivery_id, []).append(_attempt(row))
    return [
        OrderView(
            order=order,
            deliveries=tuple(by_order.get(order.order_id, ())),
            attempts={
                delivery.delivery_id: attempt_log(logs[delivery.delivery_id])
                for delivery in by_order.get(order.order_id, ())
                if delivery.delivery_id in logs
            },
        )
        for order in loaded
        if order is not None
    ]


def _attempt(row: Row[Any]) -> AttemptRecord:
    return AttemptRecord(
        delivery_id=row.delivery_id,
        tenant=row.tenant,
        attempt=row.attempt,
        status=row.status,
        error_class=row.error_class,
        error=row.error,
        occurred_at=row.occurred_at,
    )


def _tallies(rows: Sequence[Row[Any]]) -> list[IntegrationTally]:
    """Per integration, the grouped counts folded into one tally (a non-final ``failed`` does not occur; a final
    one is a failure, every other final state is a success or a retry's give-up)."""
    tallies: dict[str, IntegrationTally] = {}
    for row in rows:
        tally = tallies.get(row.integration_id) or IntegrationTally(integration_id=row.integration_id)
        count, last_at = int(row.total), row.last_at
        if row.status == "succeeded":
            tally = replace(
                tally, succeeded=tally.succeeded + count, last_success_at=_latest(tally.last_success_at, last_at)
            )
        elif row.status == "failed" and row.final:
            tally = replace(tally, failed=tally.failed + count, last_failure_at=_latest(tally.last_failure_at, last_at))
        elif row.status == "pending":
            tally = replace(tally, pending=tally.pending + count)
        else:
            tally = replace(tally, retrying=tally.retrying + count)
        tallies[row.integration_id] = tally
    return [tallies[key] for key in sorted(tallies)]


def _latest(known: datetime | None, seen: datetime | None) -> datetime | None:
    if seen is None:
        return known
    return seen if known is None or seen > known else known


def _integration_state(row: Row[Any]) -> IntegrationStateRecord:
    return IntegrationStateRecord(
        tenant=row.tenant,
        integration_id=row.integration_id,
        state=cast("IntegrationState", row.state),
        changed_at=row.changed_at,
        event_id=row.event_id,
        reason=row.reason,
        changed_by=row.changed_by,
        cause=cast("StateChangeCause", row.cause),
    )


def _delivery(row: Row[Any]) -> DeliveryRecord:
    return DeliveryRecord(
        delivery_id=row.delivery_id,
        tenant=row.tenant,
        integration_id=row.integration_id,
        integration_type=cast("IntegrationType", row.integration_type),
        recipe_id=row.recipe_id,
        order_id=row.order_id,
        order_number=row.order_number,
        trigger_id=row.trigger_id,
        reason=row.reason,
        status=cast("DeliveryState", row.status),
        final=row.final,
        attempts=row.attempts,
        last_error=row.last_error,
        files=tuple(row.files or ()),
        updated_at=row.updated_at,
        created_at=row.created_at,
        triggered_at=row.triggered_at,
        item_id=row.item_id,
        replayed_by=row.replayed_by,
    )
