"""Composition root: broker, router, and the clients (asset HTTP session, artifact store) opened once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_bundle_builder.adapters.assets import FetchPolicy, HttpAssetFetcher, make_session
from relay_bundle_builder.handlers import SERVICE, Runtime, make_router
from relay_bundle_builder.service import BuildContext, BundleBudget
from relay_bundle_builder.settings import Settings
from relay_platform.broker import make_broker
from relay_platform.objectstore_settings import open_object_store
from relay_platform.tenants import load_tenants


def fetch_policy(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        timeout_s=settings.asset_timeout_s,
        connect_timeout_s=settings.asset_connect_timeout_s,
        max_bytes=settings.asset_max_bytes,
        retries=settings.asset_retries,
        retry_wait_s=settings.asset_retry_wait_s,
        max_redirects=settings.asset_max_redirects,
        concurrency=settings.fetch_concurrency,
    )


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The bundle-builder app; a bad tenant file raises ``ConfigError`` here, before anything starts."""
    settings = settings or Settings()
    tenants = load_tenants(settings.tenants_file)
    broker = make_broker(settings.kafka, service=SERVICE, tracer_provider=tracer_provider)
    runtime = Runtime(tenants=tenants, broker=broker, kafka=settings.kafka)
    broker.include_router(make_router(runtime))

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        policy = fetch_policy(settings)
        async with make_session(policy) as session, open_object_store(settings.object_store) as store:
            await store.ping()
            runtime.build = BuildContext(
                store=store,
                fetcher=HttpAssetFetcher(session, policy),
                recipe_url=settings.recipe_url,
                store_concurrency=settings.store_concurrency,
                budget=BundleBudget(
                    time_s=settings.bundle_time_budget_s,
                    max_assets=settings.bundle_max_assets,
                    max_asset_bytes=settings.bundle_max_asset_bytes,
                    max_memory_bytes=settings.bundle_max_memory_bytes,
                    max_preview_pixels=settings.preview_max_pixels,
                ),
            )
            try:
                yield
            finally:
                runtime.build = None

    return FastStream(broker, lifespan=lifespan)
