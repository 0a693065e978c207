"""association-store settings (env prefix ``ASSOCIATION_STORE_``)."""

from __future__ import annotations

import os

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from relay_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    """Where the SQL database is and where the internal query API listens."""

    model_config = SettingsConfigDict(env_prefix="ASSOCIATION_STORE_", extra="ignore")

    # SQLite file for the embedded default; ``postgresql+asyncpg://...`` in production. The conventional
    # ``DATABASE_URL`` works too; the prefixed name wins when both are set.
    database_url: str = Field(
        default_factory=lambda: os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///var/association-store.db")
    )
    # One group per deployment; a second deployment (blue/green, a replay) reads the topics independently.
    consumer_group: str = Field(default="association-store", min_length=1)
    database_pool_size: int = Field(default=5, ge=1)
    database_connect_timeout_s: float = Field(default=5.0, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65535)
