"""bundle-builder settings (env prefix ``BUNDLE_BUILDER_``); the artifact store comes from ``OBJECT_STORE_*``.

Each part is its own pydantic settings object, handed as it is to what it configures: ``assets`` to the asset
fetcher (``adapters.assets``), ``bundle`` to the use case (``BuildContext.budget``). The bundle budget is declared in
``ports`` with the use case's other inputs: ``service`` must stay free of I/O imports, and this module reaches the
S3 client (through ``ObjectStoreSettings``).
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_bundle_builder.ports import BundleBudget
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import ServiceSettings


class AssetFetchSettings(BaseSettings):
    """Asset downloads (production files, previews, attachments): env ``BUNDLE_BUILDER_ASSET_*``."""

    model_config = SettingsConfigDict(env_prefix="BUNDLE_BUILDER_ASSET_", extra="ignore", validate_by_name=True)

    timeout_s: float = Field(default=30.0, gt=0, description="Whole-request timeout per try.")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=1, description="Per-file size cap.")
    retries: int = Field(default=2, ge=0, le=10, description="Extra tries on transient fetch failures.")
    retry_wait_s: float = Field(default=0.5, ge=0)
    max_redirects: int = Field(default=5, ge=0, le=20)
    concurrency: int = Field(
        default=8,
        ge=1,
        le=256,
        validation_alias="BUNDLE_BUILDER_FETCH_CONCURRENCY",
        description="Parallel asset downloads per process.",
    )


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BUNDLE_BUILDER_", extra="ignore")

    # One group per deployment; a second deployment (blue/green, a replay) reads the triggers independently.
    consumer_group: str = Field(default="bundle-builder", min_length=1)
    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    assets: AssetFetchSettings = Field(default_factory=AssetFetchSettings)
    bundle: BundleBudget = Field(default_factory=BundleBudget)
    store_concurrency: int = Field(default=8, ge=1, le=256)
    # The QR code on the pick ticket points here (the ingest API serves GET /recipe/<id>.json).
    recipe_base_url: str = "http://127.0.0.1:8080/recipe/"

    @model_validator(mode="after")
    def _bundle_budget_fits_the_handler_budget(self) -> Settings:
        if self.bundle.time_s >= self.kafka.handler_timeout_s:
            msg = (
                f"BUNDLE_BUILDER_BUNDLE_TIME_BUDGET_S ({self.bundle.time_s:g}) must stay under KAFKA_HANDLER_TIMEOUT_S "
                f"({self.kafka.handler_timeout_s:g}) so an over-budget bundle is reported, not re-read"
            )
            raise ValueError(msg)
        return self

    def recipe_url(self, recipe_id: str) -> str:
        return f"{self.recipe_base_url.rstrip('/')}/{recipe_id}.json"
