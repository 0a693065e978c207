"""The environment variables operators set keep their names, nested settings or not."""

from __future__ import annotations

import pytest

from relay_retry.settings import Settings


def test_every_setting_is_read_from_its_documented_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "RETRY_CONSUMER_GROUP": "retry-blue",
        "RETRY_DATABASE_URL": "postgresql+asyncpg://relay@db/relay",
        "RETRY_DATABASE_CONNECT_TIMEOUT_S": "2",
        "RETRY_JITTER": "0.2",
        "RETRY_BATCH_SIZE": "50",
        "RETRY_IDLE_RECHECK_S": "3",
        "RETRY_ERROR_BACKOFF_S": "0.5",
    }.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.consumer_group == "retry-blue"
    assert (settings.database.url, settings.database.connect_timeout_s) == ("postgresql+asyncpg://relay@db/relay", 2)
    assert (settings.jitter, settings.batch_size) == (0.2, 50)
    assert (settings.idle_recheck_s, settings.error_backoff_s) == (3, 0.5)


def test_the_defaults_keep_the_embedded_schedule_and_the_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RETRY_DATABASE_URL", raising=False)
    monkeypatch.delenv("RETRY_CONSUMER_GROUP", raising=False)
    settings = Settings()
    assert settings.database.url == "sqlite+aiosqlite:///var/retry.db"
    assert settings.consumer_group == "retry"
