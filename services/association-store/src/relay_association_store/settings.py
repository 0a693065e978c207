"""association-store settings (env prefix ``ASSOCIATION_STORE_``)."""

from __future__ import annotations

import os

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import SettingsConfigDict

from relay_platform.settings import ServiceSettings
from relay_platform.shared_secret import check_shared_secret, is_loopback_host


class Settings(ServiceSettings):
    """Where the SQL database is and where the internal query API listens, and the token it asks callers for.

    ``ASSOCIATION_STORE_API_TOKEN`` (at least 32 random characters; the ingest API sends the same value as
    ``INGEST_API_ASSOCIATION_STORE_TOKEN``) guards ``/internal/*``, which answers any tenant's orders. It is
    required whenever the API listens on anything but loopback: then it is reachable from the network. On loopback
    (the embedded default) it is optional, and its absence is logged as a warning at start-up: only processes of
    this machine reach it, and in the embedded setup they can read the SQLite file it serves anyway. Requiring it
    there too would break nothing in ``relay dev`` (which generates one) but would make every embedded start and
    ``faststream docs gen`` need a secret without protecting anything more. The probes stay open for orchestrators.
    """

    model_config = SettingsConfigDict(
        env_prefix="ASSOCIATION_STORE_", extra="ignore", validate_by_name=True, hide_input_in_errors=True
    )

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
    # Aliased to its variable so a missing or weak token stops start-up naming ASSOCIATION_STORE_API_TOKEN.
    api_token: SecretStr | None = Field(
        default=None, validation_alias="ASSOCIATION_STORE_API_TOKEN", validate_default=True
    )

    @field_validator("api_token")
    @classmethod
    def _token_guards_a_reachable_api(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None:
            return check_shared_secret(value)
        host = info.data.get("http_host")
        if host is not None and not is_loopback_host(host):
            msg = (
                f"ASSOCIATION_STORE_API_TOKEN is required when ASSOCIATION_STORE_HTTP_HOST ({host}) is not a "
                "loopback address: the internal API would answer any tenant's orders to anyone who can reach it"
            )
            raise ValueError(msg)
        return None
