"""The record of notices already sent (SQL), so a redelivered outcome or state change does not mail anyone twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from relay_notifier.adapters.tables import sent_notices
from relay_notifier.domain import Notice
from relay_platform.sql import READ_ONLY, create_engine, migrate, translate_db_errors

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


class SqlSentNotices:
    """Open with ``async with SqlSentNotices.open(url):``; the schema is migrated to the latest on opening."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, connect_timeout_s: float = 5.0) -> AsyncIterator[SqlSentNotices]:
        engine = create_engine(url, connect_timeout_s=connect_timeout_s)
        try:
            await migrate(engine, MIGRATIONS)
            yield cls(engine)
        finally:
            await engine.dispose()

    async def was_sent(self, notice_id: str) -> bool:
        with translate_db_errors():
            async with self._reader.connect() as connection:
                found = await connection.scalar(
                    select(sent_notices.c.notice_id).where(sent_notices.c.notice_id == notice_id)
                )
        return found is not None

    async def record(self, notice: Notice) -> None:
        statement = (
            self._insert(sent_notices)
            .values(
                notice_id=notice.notice_id,
                # The column keeps its first name; it holds what the notice is about (a delivery or change ID).
                delivery_id=notice.about,
                kind=notice.kind,
                sent_at=datetime.now(UTC).timestamp(),
            )
            .on_conflict_do_nothing()
        )
        with translate_db_errors():
            async with self._engine.begin() as connection:
                await connection.execute(statement)
