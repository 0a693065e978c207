"""bundle-builder settings (env prefix ``BUNDLE_BUILDER_``); the artifact store comes from ``OBJECT_STORE_*``."""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from relay_pickticket import PREVIEW_MAX_PIXELS
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="BUNDLE_BUILDER_", extra="ignore")

    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    # Asset downloads (production files, previews, attachments).
    asset_timeout_s: float = Field(default=30.0, gt=0, description="Whole-request timeout per try.")
    asset_connect_timeout_s: float = Field(default=5.0, gt=0)
    asset_max_bytes: int = Field(default=100 * 1024 * 1024, ge=1, description="Per-file size cap.")
    asset_retries: int = Field(default=2, ge=0, le=10, description="Extra tries on transient fetch failures.")
    asset_retry_wait_s: float = Field(default=0.5, ge=0)
    asset_max_redirects: int = Field(default=5, ge=0, le=20)
    fetch_concurrency: int = Field(default=8, ge=1, le=256, description="Parallel asset downloads per process.")
    store_concurrency: int = Field(default=8, ge=1, le=256)
    # One bundle's budget: over it, its deliveries fail with the reason rather than hold the trigger queue.
    bundle_time_budget_s: float = Field(default=120.0, gt=0)
    bundle_max_assets: int = Field(default=200, ge=0)
    bundle_max_asset_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="All assets of one bundle.")
    # Of those, what one bundle keeps in memory (each asset up to 1 MiB); the rest wait in temporary files (TMPDIR),
    # so a bundle takes at most this much memory for its assets and bundle_max_asset_bytes of disk.
    bundle_max_memory_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Previews with more pixels (by their header) are not decoded: the ticket says so, the file is still delivered.
    preview_max_pixels: int = Field(default=PREVIEW_MAX_PIXELS, ge=1)
    # The QR code on the pick ticket points here (the ingest API serves GET /recipe/<id>.json).
    recipe_base_url: str = "http://127.0.0.1:8080/recipe/"

    @model_validator(mode="after")
    def _bundle_budget_fits_the_handler_budget(self) -> Settings:
        if self.bundle_time_budget_s >= self.kafka.handler_timeout_s:
            msg = (
                f"bundle_time_budget_s ({self.bundle_time_budget_s:g}) must stay under KAFKA_HANDLER_TIMEOUT_S "
                f"({self.kafka.handler_timeout_s:g}) so an over-budget bundle is reported, not re-read"
            )
            raise ValueError(msg)
        return self

    def recipe_url(self, recipe_id: str) -> str:
        return f"{self.recipe_base_url.rstrip('/')}/{recipe_id}.json"
