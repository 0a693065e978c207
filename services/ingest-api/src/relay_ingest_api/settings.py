"""ingest-api settings (env prefix ``INGEST_API_``); broker, object store and links keep their own prefixes."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from relay_platform.links import LinkSettings
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import ServiceSettings

SERVICE = "ingest-api"


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="INGEST_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    association_store_url: str = "http://127.0.0.1:8081"
    association_store_timeout_s: float = Field(default=3.0, gt=0, lt=5)
    # Every publish is bounded so a lost broker turns into a 503 well inside the client's 5 s budget.
    publish_timeout_s: float = Field(default=3.0, gt=0, lt=5)
    readiness_timeout_s: float = Field(default=1.0, gt=0, lt=5)
    retry_after_s: int = Field(default=2, ge=1, description="Retry-After sent with 503 answers.")
    max_items: int = Field(default=1000, ge=1)
    max_body: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Pick tickets render in worker threads; bounded so renders never starve the object store's threads.
    max_concurrent_renders: int = Field(default=4, ge=1)
    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    links: LinkSettings = Field(default_factory=LinkSettings)
