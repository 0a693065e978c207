"""deliver-sftp settings (env prefix ``DELIVER_SFTP_``): the runtime's, and how SFTP connections are made."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_delivery import DelivererSettings


class SftpSettings(BaseSettings):
    """How connections are made (``DELIVER_SFTP_CONNECT_TIMEOUT_S``...); where to is per integration."""

    model_config = SettingsConfigDict(env_prefix="DELIVER_SFTP_", extra="ignore")

    connect_timeout_s: float = Field(default=15.0, gt=0)
    login_timeout_s: float = Field(default=30.0, gt=0)
    # Connections are kept per server/account and reused; keepalives notice a dead one early.
    keepalive_interval_s: float = Field(default=30.0, ge=0)


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_SFTP_", extra="ignore")

    consumer_group: str = Field(default="deliver-sftp", min_length=1)
    sftp: SftpSettings = Field(default_factory=SftpSettings)
