"""deliver-sftp settings (env prefix ``DELIVER_SFTP_``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from relay_delivery import DelivererSettings


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_SFTP_", extra="ignore")

    connect_timeout_s: float = Field(default=15.0, gt=0)
    login_timeout_s: float = Field(default=30.0, gt=0)
    # Connections are kept per server/account and reused; keepalives notice a dead one early.
    keepalive_interval_s: float = Field(default=30.0, ge=0)
