"""notifier settings (env prefix ``NOTIFIER_``); the broker keeps its own ``KAFKA_*`` variables."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from relay_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    """The SMTP server notices go through, and where sent notices are recorded."""

    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")

    # SQLite file for the embedded default; ``postgresql+asyncpg://...`` in production.
    database_url: str = "sqlite+aiosqlite:///var/notifier.db"
    database_connect_timeout_s: float = Field(default=5.0, gt=0)
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    # Implicit TLS (port 465) ...
    smtp_use_tls: bool = False
    # ... or STARTTLS: true = required, false = never, unset = when the server offers it.
    smtp_start_tls: bool | None = None
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(default=10.0, gt=0)
    # A hiccup is retried in-process this many times in all before the outcome is left to be re-read.
    smtp_send_attempts: int = Field(default=3, ge=1, le=10)
    smtp_retry_wait_s: float = Field(default=0.5, ge=0)
    from_address: str = Field(default="Recipe Relay <relay@localhost>", min_length=3)
