"""retry settings (env prefix ``RETRY_``); the broker keeps its own ``KAFKA_*`` variables.

The schedule's database is its own settings object (``RETRY_DATABASE_*``), handed as it is to the SQL adapter.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_platform.settings import ServiceSettings


class ScheduleDatabaseSettings(BaseSettings):
    """Where the schedule is kept: env ``RETRY_DATABASE_URL`` and the like."""

    model_config = SettingsConfigDict(env_prefix="RETRY_DATABASE_", extra="ignore")

    # SQLite file for the embedded default; ``postgresql+asyncpg://...`` in production (several replicas).
    url: str = "sqlite+aiosqlite:///var/retry.db"
    connect_timeout_s: float = Field(default=5.0, gt=0)
    pool_size: int = Field(default=5, ge=1)


class Settings(ServiceSettings):
    """Where the schedule is kept and how the scheduler behaves."""

    model_config = SettingsConfigDict(env_prefix="RETRY_", extra="ignore")

    # One group per deployment; a second deployment (blue/green, a replay) reads the topics independently.
    consumer_group: str = Field(default="retry", min_length=1)
    database: ScheduleDatabaseSettings = Field(default_factory=ScheduleDatabaseSettings)
    # Each back-off is multiplied by a random factor in [1 - jitter, 1 + jitter] so retries do not bunch up.
    jitter: float = Field(default=0.1, ge=0, lt=1)
    # Due retries published per scheduler round (one transaction, publishes awaited together).
    batch_size: int = Field(default=100, ge=1, le=10_000)
    # With no retry due, look again after this long anyway: rows added by other replicas wake nobody here.
    idle_recheck_s: float = Field(default=5.0, gt=0)
    # Pause after the database or broker failed a scheduler round.
    error_backoff_s: float = Field(default=1.0, gt=0)
