"""The database URL comes from ASSOCIATION_STORE_DATABASE_URL or the conventional DATABASE_URL."""

import pytest

from relay_association_store.settings import Settings


def test_conventional_database_url_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASSOCIATION_STORE_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://relay@db/relay")
    assert Settings().database_url == "postgresql+asyncpg://relay@db/relay"


def test_prefixed_database_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://relay@db/relay")
    monkeypatch.setenv("ASSOCIATION_STORE_DATABASE_URL", "sqlite+aiosqlite:///var/x.db")
    assert Settings().database_url == "sqlite+aiosqlite:///var/x.db"


def test_default_is_the_embedded_sqlite_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ASSOCIATION_STORE_DATABASE_URL", raising=False)
    assert Settings().database_url == "sqlite+aiosqlite:///var/association-store.db"
    assert Settings(database_url="sqlite+aiosqlite:///tmp/y.db").database_url == "sqlite+aiosqlite:///tmp/y.db"
