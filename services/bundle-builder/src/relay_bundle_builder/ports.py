"""The bundle-builder's ports: what the use case needs from the outside world, and what the handler hands it.

Adapters implement the protocols (``adapters.assets.HttpAssetFetcher``; the artifact store is the platform's
``ObjectStore``: a local directory or S3); ``service`` and ``domain`` import this module, never an adapter. The
use case's budget per bundle (``BundleBudget``) is a pydantic settings object, nested in ``settings.Settings``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from relay_pickticket import PREVIEW_MAX_PIXELS
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import TenantsConfig

if TYPE_CHECKING:
    from relay_bundle_builder.domain import ByteBudget
    from relay_bundle_builder.spool import AssetSpool

__all__ = [
    "AssetFetcher",
    "BuildContext",
    "BundleBudget",
    "BundlePorts",
    "FetchedAsset",
    "MemoryAllowance",
    "ObjectStore",
]


@dataclass(frozen=True, slots=True)
class FetchedAsset:
    """An asset's bytes, spooled (in memory or a temporary file): whoever receives it closes ``body``."""

    body: AssetSpool
    content_type: str


class AssetFetcher(Protocol):
    async def fetch(
        self, url: str, *, label: str, allowed_hosts: Sequence[str], budget: ByteBudget | None = None
    ) -> FetchedAsset:
        """The asset's bytes; ``AssetError`` when it can never be fetched, ``AssetUnavailableError`` for now."""
        ...


class MemoryAllowance(Protocol):
    """What one bundle may keep in memory of its fetched assets (``domain.ByteBudget``)."""

    def hold(self, size: int) -> bool:
        """Take ``size`` bytes of the allowance; ``False`` (nothing taken) when it has no room."""
        ...

    def release(self, size: int) -> None: ...


class BundleBudget(BaseSettings):
    """What one bundle may cost: over it, its deliveries fail with the reason rather than hold the trigger queue.
    Env ``BUNDLE_BUILDER_BUNDLE_*`` (and ``BUNDLE_BUILDER_PREVIEW_MAX_PIXELS``)."""

    model_config = SettingsConfigDict(
        env_prefix="BUNDLE_BUILDER_BUNDLE_", extra="ignore", validate_by_name=True, frozen=True
    )

    time_s: float = Field(default=120.0, gt=0, validation_alias="BUNDLE_BUILDER_BUNDLE_TIME_BUDGET_S")
    max_assets: int = Field(default=200, ge=0)
    max_asset_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="All assets of one bundle.")
    # Of those, what one bundle keeps in memory (each asset up to 1 MiB); the rest wait in temporary files (TMPDIR),
    # so a bundle takes at most this much memory for its assets and max_asset_bytes of disk.
    max_memory_bytes: int = Field(default=16 * 1024 * 1024, ge=0)
    # Previews with more pixels (by their header) are not decoded: the ticket says so, the file is still delivered.
    max_preview_pixels: int = Field(
        default=PREVIEW_MAX_PIXELS, ge=1, validation_alias="BUNDLE_BUILDER_PREVIEW_MAX_PIXELS"
    )


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What building a bundle needs: the artifact store, the asset fetcher, and the values that shape a bundle."""

    store: ObjectStore
    fetcher: AssetFetcher
    recipe_url: Callable[[str], str]
    render_in_thread: bool = True
    store_concurrency: int = 8
    budget: BundleBudget = field(default_factory=BundleBudget)


@dataclass(frozen=True, slots=True)
class BundlePorts:
    """What the handler takes from the app context (``main`` puts it there once the clients are open)."""

    tenants: TenantsConfig
    build: BuildContext
