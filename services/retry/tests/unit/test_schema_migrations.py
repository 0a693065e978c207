"""The schedule's tables come from alembic migrations, and a database made by the versions before them (tables
created from the table definitions at start-up, no ``alembic_version``) is adopted as it is, rows included."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from relay_contracts.messages import DeliverBundle
from relay_retry.adapters.schedule import MIGRATIONS, SqlRetrySchedule
from relay_retry.adapters.tables import metadata, scheduled_retries
from relay_retry.domain import ScheduledRetry


def scheduled(delivery_id: str) -> ScheduledRetry:
    request = DeliverBundle(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant="rt",
        integration_id="fast-hook",
        integration_type="zapier",
        recipe_id="999-abc",
        feed="recipe",
        reason="recipe_saved",
        attempt=2,
        requested_at=datetime.now(UTC),
    )
    return ScheduledRetry(request=request, due_at=datetime.now(UTC) + timedelta(seconds=60))


def schema_differences(database: Path) -> list[object]:
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            # The retry service's own alembic version table (stores may share a database) is alembic's, not ours.
            context = MigrationContext.configure(connection, opts={"version_table": "alembic_version_retry"})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


async def test_the_migrations_make_exactly_the_tables_the_adapter_uses(tmp_path: Path) -> None:
    database = tmp_path / "retry.db"
    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{database}"):
        pass

    assert schema_differences(database) == []
    with sqlite3.connect(database) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version_retry").fetchall() == [("0004",)]


async def test_a_database_of_the_version_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    database = tmp_path / "retry.db"
    engine = sa.create_engine(f"sqlite:///{database}")
    kept = scheduled("kept")
    try:
        # What that version did at every start-up: the tables from their definitions, no migration history.
        metadata.create_all(engine)
        with engine.begin() as connection:
            # That version's table had no trace column (revision 0002 adds it) and nothing of revision 0003.
            connection.execute(sa.text("ALTER TABLE scheduled_retries DROP COLUMN trace_parent"))
            connection.execute(sa.text("DROP INDEX ix_scheduled_retries_integration"))
            connection.execute(sa.text("ALTER TABLE scheduled_retries DROP COLUMN integration_id"))
            connection.execute(sa.text("ALTER TABLE scheduled_retries DROP COLUMN held"))
            connection.execute(sa.text("DROP TABLE integration_states"))
        with engine.begin() as connection:
            connection.execute(
                sa.insert(scheduled_retries).values(
                    delivery_id=kept.delivery_id,
                    attempt=kept.attempt,
                    tenant="rt",
                    order_id=None,
                    integration_type="zapier",
                    recipe_id="999-abc",
                    due_at=kept.due_at.timestamp(),
                    request_json=kept.request.model_dump_json(),
                    created_at=datetime.now(UTC).timestamp(),
                )
            )
    finally:
        engine.dispose()

    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{database}") as schedule:
        assert await schedule.pending("kept") == 1
        assert (await schedule.add(kept, order_id=None)).status == "duplicate"
        assert (await schedule.add(scheduled("new"), order_id=None)).status == "added"

    assert schema_differences(database) == []
    with sqlite3.connect(database) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version_retry").fetchall() == [("0004",)]


def migrated_to(database: Path, revision: str) -> None:
    """The schema as that revision left it (what a replica of that version made)."""
    engine = sa.create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        engine.dispose()


async def test_an_upgrade_from_0002_keeps_every_stored_retry_schedulable(tmp_path: Path) -> None:
    database = tmp_path / "retry.db"
    migrated_to(database, "0002")
    kept = scheduled("kept")
    with sqlite3.connect(database) as raw:
        raw.execute(
            "INSERT INTO scheduled_retries (delivery_id, attempt, tenant, order_id, integration_type, recipe_id,"
            " due_at, request_json, created_at, trace_parent) VALUES (?, ?, 'rt', NULL, 'zapier', '999-abc', ?, ?, ?,"
            " NULL)",
            (kept.delivery_id, kept.attempt, 0.0, kept.request.model_dump_json(), 0.0),
        )

    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{database}") as schedule:
        assert await schedule.pending("kept", held=False) == 1
        assert await schedule.pending(held=True) == 0
        async with schedule.transaction() as tx:
            assert [row.delivery_id for row in await tx.due(datetime.now(UTC), 10)] == ["kept"]

    assert schema_differences(database) == []
    with sqlite3.connect(database) as raw:
        assert raw.execute("SELECT version_num FROM alembic_version_retry").fetchall() == [("0004",)]
        assert raw.execute("SELECT held, integration_id FROM scheduled_retries").fetchall() == [(0, None)]


async def test_an_upgrade_from_0003_reads_every_stored_state_as_an_operators(tmp_path: Path) -> None:
    database = tmp_path / "retry.db"
    migrated_to(database, "0003")
    with sqlite3.connect(database) as raw:
        raw.execute(
            "INSERT INTO integration_states (tenant, integration_id, state, changed_at, updated_at)"
            " VALUES ('rt', 'fast-hook', 'paused', '2026-12-01T10:00:00+00:00', 0.0)"
        )

    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{database}") as schedule:
        state = await schedule.integration_state("rt", "fast-hook")
        assert state is not None
        assert (state.state, state.cause, state.paused_as_unhealthy) == ("paused", "operator", False)
        assert await schedule.health("rt", "fast-hook") is None
        assert await schedule.next_probe_at() is None

    assert schema_differences(database) == []
