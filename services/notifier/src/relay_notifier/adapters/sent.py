"""The record of notices already sent (SQL), so a redelivered outcome does not mail anyone twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, Float, MetaData, String, Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relay_notifier.service import Notice
from relay_platform.errors import TransientError

metadata = MetaData()

sent_notices = Table(
    "sent_notices",
    metadata,
    Column("notice_id", String(64), primary_key=True),
    Column("delivery_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("sent_at", Float, nullable=False),
)


class SqlSentNotices:
    """Open with ``async with SqlSentNotices.open(url):``; the table is created when missing."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, connect_timeout_s: float = 5.0) -> AsyncIterator[SqlSentNotices]:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url, connect_args={"timeout": connect_timeout_s}, pool_pre_ping=parsed.get_backend_name() != "sqlite"
        )
        try:
            try:
                async with engine.begin() as connection:
                    await connection.run_sync(metadata.create_all)
            except (SQLAlchemyError, OSError) as error:
                raise TransientError(f"notifier database unavailable: {type(error).__name__}") from error
            yield cls(engine)
        finally:
            await engine.dispose()

    async def was_sent(self, notice_id: str) -> bool:
        try:
            async with self._engine.connect() as connection:
                found = await connection.scalar(
                    select(sent_notices.c.notice_id).where(sent_notices.c.notice_id == notice_id)
                )
        except SQLAlchemyError as error:
            raise TransientError(f"cannot read sent notices: {type(error).__name__}") from error
        return found is not None

    async def record(self, notice: Notice) -> None:
        statement = (
            self._insert(sent_notices)
            .values(
                notice_id=notice.notice_id,
                delivery_id=notice.delivery_id,
                kind=notice.kind,
                sent_at=datetime.now(UTC).timestamp(),
            )
            .on_conflict_do_nothing()
        )
        try:
            async with self._engine.begin() as connection:
                await connection.execute(statement)
        except SQLAlchemyError as error:
            raise TransientError(f"cannot record sent notice: {type(error).__name__}") from error
