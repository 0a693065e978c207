"""notifier settings (env prefix ``NOTIFIER_``); the broker keeps its own ``KAFKA_*`` variables and the SMTP server
its ``NOTIFIER_SMTP_*``."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from relay_platform.settings import ServiceSettings
from relay_platform.smtp import Seconds, SendAttempts, SmtpPort, SmtpSecurity, SmtpSettings


class NotifierSmtpSettings(SmtpSettings):
    """The SMTP server notices go through (``NOTIFIER_SMTP_HOST``, ``_PORT``, ``_USERNAME``, ``_PASSWORD``...).

    A hiccup is tried again in-process (``send_attempts`` in all) before the outcome is left to be re-read.
    ``NOTIFIER_SMTP_USE_TLS`` / ``NOTIFIER_SMTP_START_TLS`` still choose the security.
    """

    model_config = SettingsConfigDict(env_prefix="NOTIFIER_SMTP_", extra="ignore")

    port: SmtpPort = 1025
    security: SmtpSecurity = "opportunistic"
    timeout_s: Seconds = 10.0
    send_attempts: SendAttempts = 3


class Settings(ServiceSettings):
    """The SMTP server notices go through, and where sent notices are recorded."""

    model_config = SettingsConfigDict(env_prefix="NOTIFIER_", extra="ignore")

    consumer_group: str = Field(default="notifier", min_length=1)
    # SQLite file for the embedded default; ``postgresql+asyncpg://...`` in production.
    database_url: str = "sqlite+aiosqlite:///var/notifier.db"
    database_connect_timeout_s: float = Field(default=5.0, gt=0)
    smtp: NotifierSmtpSettings = Field(default_factory=NotifierSmtpSettings)
    from_address: str = Field(default="Recipe Relay <relay@localhost>", min_length=3)
