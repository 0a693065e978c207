"""The sent-notices table on SQLite: alembic creates it, a restart migrates nothing twice, and a database the
notifier made before alembic (table, no ``alembic_version``) keeps its rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from relay_notifier.adapters.sent import SqlSentNotices
from relay_notifier.domain import Notice

# The table the notifier created from its metadata before the migrations existed.
LEGACY_SCHEMA = """
CREATE TABLE sent_notices (
    notice_id VARCHAR(64) NOT NULL,
    delivery_id VARCHAR(128) NOT NULL,
    kind VARCHAR(16) NOT NULL,
    sent_at FLOAT NOT NULL,
    PRIMARY KEY (notice_id)
)
"""


def notice(notice_id: str) -> Notice:
    return Notice(
        notice_id=notice_id, kind="failure", about="d-1", recipients=("ops@example.com",), subject="s", body="b"
    )


def versions(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version_notifier")]


async def test_a_new_database_is_migrated_and_a_restart_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "notifier.db"
    async with SqlSentNotices.open(f"sqlite+aiosqlite:///{path}") as sent:
        assert not await sent.was_sent("n-1")
        await sent.record(notice("n-1"))
        await sent.record(notice("n-1"))  # a redelivery records nothing twice
    async with SqlSentNotices.open(f"sqlite+aiosqlite:///{path}") as sent:
        assert await sent.was_sent("n-1")

    assert versions(path) == ["0001"]


async def test_a_database_from_before_the_migrations_keeps_its_notices(tmp_path: Path) -> None:
    path = tmp_path / "notifier.db"
    with sqlite3.connect(path) as connection:
        connection.execute(LEGACY_SCHEMA)
        connection.execute("INSERT INTO sent_notices VALUES ('n-old', 'd-0', 'success', 1.0)")

    async with SqlSentNotices.open(f"sqlite+aiosqlite:///{path}") as sent:
        assert await sent.was_sent("n-old")
        await sent.record(notice("n-new"))
        assert await sent.was_sent("n-new")

    assert versions(path) == ["0001"]
