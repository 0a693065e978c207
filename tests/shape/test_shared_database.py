"""The three stores may share one database (compose gives association-store, retry and the notifier one PostgreSQL
database): each keeps its alembic revision in its own version table, so every start-up, in any order and again after
a restart, finds its own revision and migrates only its own tables."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from relay_association_store.adapters.repository import MIGRATIONS as ASSOCIATION_STORE
from relay_notifier.adapters.sent import MIGRATIONS as NOTIFIER
from relay_platform.sql import create_engine, migrate
from relay_retry.adapters.schedule import MIGRATIONS as RETRY
from relay_testing.postgres import PostgresServer

STORES = {"alembic_version": ASSOCIATION_STORE, "alembic_version_retry": RETRY, "alembic_version_notifier": NOTIFIER}


async def _migrate_all_twice(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        for migrations in [*STORES.values(), *reversed(STORES.values())]:
            await migrate(engine, migrations)
        async with engine.connect() as connection:
            return {
                table: list((await connection.execute(sa.text(f"SELECT version_num FROM {table}"))).scalars())
                for table in STORES
            }
    finally:
        await engine.dispose()


def _heads(migrations: Path) -> list[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(migrations))
    return list(ScriptDirectory.from_config(config).get_heads())


async def test_three_stores_share_one_sqlite_file(tmp_path: Path) -> None:
    versions = await _migrate_all_twice(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    assert versions == {table: _heads(migrations) for table, migrations in STORES.items()}


@pytest.mark.integration
async def test_three_stores_share_one_postgresql_database(postgres_server: PostgresServer) -> None:
    versions = await _migrate_all_twice(postgres_server.create_database("shared_stores"))
    assert versions == {table: _heads(migrations) for table, migrations in STORES.items()}
