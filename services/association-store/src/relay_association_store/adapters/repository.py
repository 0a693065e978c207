"""The SQL repository (SQLite or PostgreSQL through SQLAlchemy's asyncio API): the ``ports.Store`` of the consumers
and the ``ports.OrderQueries`` of the internal API.

The engine, the migrations runner and the translation of database failures (unavailable/locked/conflicting ->
``TransientError``, data the database rejects -> ``PermanentError``) are ``relay_platform.sql``'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from relay_association_store.adapters.tables import deliveries, order_items, orders, processed_events, recipes
from relay_association_store.domain import (
    DeliveryRecord,
    DeliveryState,
    EventKind,
    ItemState,
    OrderChange,
    OrderState,
    OrderStatus,
    OrderView,
    RecipeRecord,
)
from relay_contracts.internal_api import ORDERS_PAGE_SIZE, OrderLookupField
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
                if not ids:
                    return []
                tx = SqlTransaction(connection)
                # In the database's order: its collation is what `after` compares with.
                loaded = [await tx.load_order(tenant, order_id, lock=False) for order_id in ids]
                rows = await connection.execute(
                    sa.select(deliveries)
                    .where(deliveries.c.tenant == tenant, deliveries.c.order_id.in_(ids))
                    .order_by(deliveries.c.recipe_id, deliveries.c.integration_id, deliveries.c.delivery_id)
                )
                by_order: dict[str, list[DeliveryRecord]] = {}
                for row in rows:
                    by_order.setdefault(row.order_id, []).append(_delivery(row))
        return [
            OrderView(order=order, deliveries=tuple(by_order.get(order.order_id, ())))
            for order in loaded
            if order is not None
        ]

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
        }
        if exists:
            await self.connection.execute(
                deliveries.update().where(deliveries.c.delivery_id == record.delivery_id).values(**values)
            )
        else:
            await self.connection.execute(deliveries.insert().values(delivery_id=record.delivery_id, **values))


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
    )
