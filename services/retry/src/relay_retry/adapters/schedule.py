"""The durable retry schedule in SQL (SQLite file by default, PostgreSQL in production).

One table, created at start-up. Rows are keyed by (delivery_id, attempt), so a redelivered retry command adds
nothing. On PostgreSQL, due rows are taken with ``FOR UPDATE SKIP LOCKED``: several replicas share the work and
each row is published by one of them; the lock is held until its publish is confirmed and the row deleted.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    event,
    func,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relay_contracts.messages import DeliverBundle
from relay_platform.errors import TransientError
from relay_retry.scheduler import PublishDue
from relay_retry.service import ScheduledRetry

logger = logging.getLogger("relay.retry.schedule")

metadata = MetaData()

scheduled_retries = Table(
    "scheduled_retries",
    metadata,
    Column("delivery_id", String(128), primary_key=True),
    # The attempt number the re-published request carries (2 = first retry).
    Column("attempt", Integer, primary_key=True),
    Column("tenant", String(128), nullable=False),
    # Set for order deliveries, so a cancelled order drops its pending retries.
    Column("order_id", String(128), nullable=True),
    Column("integration_type", String(32), nullable=False),
    Column("recipe_id", String(128), nullable=False),
    # Seconds since the epoch (UTC): compared and ordered the same way on every database.
    Column("due_at", Float, nullable=False),
    Column("request_json", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Index("ix_scheduled_retries_due_at", "due_at"),
    Index("ix_scheduled_retries_order", "tenant", "order_id"),
)

# Orders known to be cancelled: a manufacturing retry that arrives after the cancellation is not scheduled
# (the two topics have no ordering between them).
cancelled_orders = Table(
    "cancelled_orders",
    metadata,
    Column("tenant", String(128), primary_key=True),
    Column("order_id", String(128), primary_key=True),
    Column("cancelled_at", Float, nullable=False),
)


def _prepare_sqlite_file(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


class SqlRetrySchedule:
    """``RetrySchedule`` on SQLAlchemy 2 async; open with ``async with SqlRetrySchedule.open(url):``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, connect_timeout_s: float = 5.0) -> AsyncIterator[SqlRetrySchedule]:
        """Connect, create the table if missing, and dispose of the engine on exit."""
        _prepare_sqlite_file(url)
        backend = make_url(url).get_backend_name()
        connect_args: dict[str, Any] = {"timeout": connect_timeout_s}
        engine = create_async_engine(url, connect_args=connect_args, pool_pre_ping=backend != "sqlite")
        if backend == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        try:
            try:
                async with engine.begin() as connection:
                    await connection.run_sync(metadata.create_all)
            except (SQLAlchemyError, OSError) as error:
                raise TransientError(f"retry schedule database unavailable: {type(error).__name__}") from error
            yield cls(engine)
        finally:
            await engine.dispose()

    async def add(self, retry: ScheduledRetry, *, order_id: str | None) -> bool:
        """Store ``retry`` unless (delivery_id, attempt) is already there; True when a row was added."""
        values = {
            "delivery_id": retry.delivery_id,
            "attempt": retry.attempt,
            "tenant": retry.request.tenant,
            "order_id": order_id,
            "integration_type": retry.request.integration_type,
            "recipe_id": retry.request.recipe_id,
            "due_at": retry.due_at.timestamp(),
            "request_json": retry.request.model_dump_json(),
            "created_at": datetime.now(UTC).timestamp(),
        }
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        statement = insert(scheduled_retries).values(**values).on_conflict_do_nothing()
        try:
            async with self._engine.begin() as connection:
                if order_id is not None and await connection.scalar(
                    select(func.count())
                    .select_from(cancelled_orders)
                    .where(cancelled_orders.c.tenant == retry.request.tenant, cancelled_orders.c.order_id == order_id)
                ):
                    logger.info("delivery %s not retried: order %s was cancelled", retry.delivery_id, order_id)
                    return False
                result = await connection.execute(statement)
        except SQLAlchemyError as error:
            raise TransientError(f"cannot store scheduled retry: {type(error).__name__}") from error
        return bool(result.rowcount)

    async def next_due_at(self) -> datetime | None:
        try:
            async with self._engine.connect() as connection:
                value = await connection.scalar(select(func.min(scheduled_retries.c.due_at)))
        except SQLAlchemyError as error:
            raise TransientError(f"cannot read retry schedule: {type(error).__name__}") from error
        return None if value is None else datetime.fromtimestamp(float(value), UTC)

    async def publish_due(self, now: datetime, limit: int, publish: PublishDue) -> int:
        """Hand up to ``limit`` due retries (earliest first) to ``publish``, then delete them.

        One transaction: if ``publish`` raises, nothing is deleted and the rows are taken again later.
        """
        table = scheduled_retries
        query = (
            select(table.c.delivery_id, table.c.attempt, table.c.request_json, table.c.due_at)
            .where(table.c.due_at <= now.timestamp())
            .order_by(table.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        removal = delete(table).where(
            table.c.delivery_id == bindparam("p_delivery_id"), table.c.attempt == bindparam("p_attempt")
        )
        try:
            async with self._engine.begin() as connection:
                rows = (await connection.execute(query)).all()
                if not rows:
                    return 0
                due = [retry for row in rows if (retry := _decode(row)) is not None]
                if due:
                    await publish(due)
                await connection.execute(
                    removal, [{"p_delivery_id": row.delivery_id, "p_attempt": row.attempt} for row in rows]
                )
        except SQLAlchemyError as error:
            raise TransientError(f"cannot take due retries: {type(error).__name__}") from error
        return len(rows)

    async def cancel_order(self, tenant: str, order_id: str) -> int:
        """Drop every pending retry of one order, and refuse its later ones; returns how many were dropped."""
        table = scheduled_retries
        statement = delete(table).where(table.c.tenant == tenant, table.c.order_id == order_id)
        insert = pg_insert if self._dialect == "postgresql" else sqlite_insert
        remember = (
            insert(cancelled_orders)
            .values(tenant=tenant, order_id=order_id, cancelled_at=datetime.now(UTC).timestamp())
            .on_conflict_do_nothing()
        )
        try:
            async with self._engine.begin() as connection:
                await connection.execute(remember)
                result = await connection.execute(statement)
        except SQLAlchemyError as error:
            raise TransientError(f"cannot cancel scheduled retries: {type(error).__name__}") from error
        return int(result.rowcount or 0)

    async def is_cancelled(self, tenant: str, order_id: str) -> bool:
        """Whether a cancellation of this order has been seen."""
        query = (
            select(func.count())
            .select_from(cancelled_orders)
            .where(cancelled_orders.c.tenant == tenant, cancelled_orders.c.order_id == order_id)
        )
        try:
            async with self._engine.connect() as connection:
                return bool(await connection.scalar(query))
        except SQLAlchemyError as error:
            raise TransientError(f"cannot read cancelled orders: {type(error).__name__}") from error

    async def pending(self, delivery_id: str | None = None) -> int:
        """How many retries are waiting, in all or of one delivery (for tests and health output)."""
        query = select(func.count()).select_from(scheduled_retries)
        if delivery_id is not None:
            query = query.where(scheduled_retries.c.delivery_id == delivery_id)
        try:
            async with self._engine.connect() as connection:
                count = await connection.scalar(query)
        except SQLAlchemyError as error:
            raise TransientError(f"cannot read retry schedule: {type(error).__name__}") from error
        return int(count or 0)


def _decode(row: Any) -> ScheduledRetry | None:
    try:
        request = DeliverBundle.model_validate_json(row.request_json)
    except ValidationError:
        # Only possible if the stored contract changed incompatibly; the row is dropped, loudly.
        logger.error("dropping unreadable scheduled retry %s attempt %s", row.delivery_id, row.attempt)  # noqa: TRY400
        return None
    return ScheduledRetry(request=request, due_at=datetime.fromtimestamp(float(row.due_at), UTC))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL: the handler's inserts are not blocked by the scheduler's reads; a crash loses no committed row.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
