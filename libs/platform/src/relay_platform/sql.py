"""The one SQL bootstrap of every store: an async engine (SQLite or PostgreSQL), its alembic migrations, and the
error taxonomy's reading of database failures.

Every service with a database keeps its tables in ``adapters/tables.py`` and its alembic scripts in a
``migrations`` package (``env.py`` runs on the connection ``migrate`` hands over); start-up runs
``await migrate(engine, MIGRATIONS)`` before any consumer starts.

Database failures map onto the taxonomy here: unavailable/locked/conflicting -> ``TransientError`` (the message is
read again), data the database rejects -> ``PermanentError``. Texts carry the error class only, never SQL or
values.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from relay_platform.errors import PermanentError, TransientError

READ_ONLY = "relay_read_only"
"""Execution option: a SQLite transaction that only reads starts with a plain ``BEGIN`` (no write lock)."""

# Serialises concurrent start-ups running migrations against one PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x52454C4159


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Map SQLAlchemy/driver failures onto the platform's transient/permanent taxonomy."""
    try:
        yield
    except exc.IntegrityError as error:
        # Two writers raced on the same key; reading the message again sees the winner's row.
        raise TransientError(f"concurrent write conflict ({_orig(error)})") from error
    except (exc.OperationalError, exc.InterfaceError, exc.TimeoutError) as error:
        raise TransientError(f"database unavailable ({_orig(error)})") from error
    except exc.DBAPIError as error:
        if error.connection_invalidated:
            raise TransientError(f"database connection lost ({_orig(error)})") from error
        raise PermanentError(f"database rejected the data ({_orig(error)})") from error
    except (OSError, TimeoutError) as error:
        raise TransientError(f"database unreachable ({type(error).__name__})") from error


def _orig(error: exc.SQLAlchemyError) -> str:
    orig = getattr(error, "orig", None)
    return type(orig if orig is not None else error).__name__


def create_engine(url: str, *, pool_size: int = 5, connect_timeout_s: float = 5.0) -> AsyncEngine:
    """An engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and ``BEGIN IMMEDIATE`` for writers
    (a plain ``BEGIN`` with the ``READ_ONLY`` execution option)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            url,
            pool_size=pool_size,
            pool_pre_ping=True,
            pool_timeout=connect_timeout_s,
            connect_args={"timeout": connect_timeout_s},
        )
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": connect_timeout_s})

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN can be IMMEDIATE (SQLAlchemy's aiosqlite recipe).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads, then writes, fails at once with "database is locked" when another
        # writer got in between; IMMEDIATE waits (busy timeout) for the write lock instead.
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


async def migrate(engine: AsyncEngine, migrations: Path) -> None:
    """``alembic upgrade head`` with the scripts in ``migrations`` (idempotent; safe with several instances
    starting at once: PostgreSQL serialises them on an advisory lock, SQLite on its write lock)."""
    with translate_db_errors():
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                await connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK_KEY)))
            await connection.run_sync(_upgrade, migrations)


def _upgrade(connection: Connection, migrations: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_migrations_on_handed_connection(target_metadata: sa.MetaData, *, version_table: str) -> None:
    """The body of every ``migrations/env.py``: run on the connection ``migrate`` handed over.

    ``version_table`` is the service's own: production may give several services one PostgreSQL database (compose
    does), and alembic's shared default table would hold only one service's revision, so another service's
    start-up would fail to find it."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        msg = "run migrations through relay_platform.sql.migrate() (the service does this at start-up)"
        raise TypeError(msg)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=version_table,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
