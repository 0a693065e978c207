"""deliver-zapier settings (env prefix ``DELIVER_ZAPIER_``)."""

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from relay_delivery import DelivererSettings


class Settings(DelivererSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVER_ZAPIER_", extra="ignore")

    request_timeout_s: float = Field(default=30.0, gt=0)
    # Kept-alive connections per hook host, shared by every attempt.
    connections_per_host: int = Field(default=8, ge=1)
    user_agent: str = "RecipeRelay/0.1 (+deliver-zapier)"
