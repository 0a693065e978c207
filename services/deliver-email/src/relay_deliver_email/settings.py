"""deliver-email settings (env prefix ``DELIVER_EMAIL_``): the SMTP relay every email integration sends through."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from relay_delivery import DelivererSettings


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_EMAIL_", extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    # none: plain SMTP (local relays only); starttls: upgrade on connect (port 587); tls: implicit TLS (465).
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    smtp_validate_certs: bool = True
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = Field(default=30.0, gt=0)
    from_address: str = "Recipe Relay <relay@localhost>"
