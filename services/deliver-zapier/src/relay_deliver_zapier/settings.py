"""deliver-zapier settings (env prefix ``DELIVER_ZAPIER_``): the runtime's, and how hooks are called."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_delivery import DelivererSettings


class HookSettings(BaseSettings):
    """How hook POSTs are made (``DELIVER_ZAPIER_REQUEST_TIMEOUT_S``...); the poster takes them as they are."""

    model_config = SettingsConfigDict(env_prefix="DELIVER_ZAPIER_", extra="ignore")

    request_timeout_s: float = Field(default=30.0, gt=0)
    # Kept-alive connections per hook host, shared by every attempt.
    connections_per_host: int = Field(default=8, ge=1)
    user_agent: str = "RecipeRelay/0.1 (+deliver-zapier)"


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_ZAPIER_", extra="ignore")

    consumer_group: str = Field(default="deliver-zapier", min_length=1)
    hooks: HookSettings = Field(default_factory=HookSettings)
