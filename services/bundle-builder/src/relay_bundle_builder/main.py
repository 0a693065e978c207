"""Composition root: broker, router, and the clients (asset HTTP session, artifact store) opened once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import ContextRepo, FastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from relay_bundle_builder import handlers
from relay_bundle_builder.adapters.assets import HttpAssetFetcher, make_session
from relay_bundle_builder.ports import BuildContext, BundlePorts
from relay_bundle_builder.settings import Settings
from relay_platform.app import service_app
from relay_platform.broker import make_broker
from relay_platform.objectstore_settings import open_object_store
from relay_platform.tenants import load_tenants

SERVICE = "bundle-builder"


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The bundle-builder app; a bad tenant file raises ``ConfigError`` here, before anything starts."""
    settings = settings or Settings()
    tenants = load_tenants(settings.tenants_file)
    broker = make_broker(settings.kafka, service=SERVICE, tracer_provider=tracer_provider)
    broker.include_router(handlers.build_router(settings.kafka, group_id=settings.consumer_group))

    @asynccontextmanager
    async def resources(context: ContextRepo) -> AsyncIterator[None]:
        async with make_session(settings.assets) as session, open_object_store(settings.object_store) as store:
            await store.ping()
            build = BuildContext(
                store=store,
                fetcher=HttpAssetFetcher(session, settings.assets),
                recipe_url=settings.recipe_url,
                store_concurrency=settings.store_concurrency,
                budget=settings.bundle,
            )
            context.set_global("ports", BundlePorts(tenants=tenants, build=build))
            yield

    return service_app(
        broker,
        resources=resources,
        service=SERVICE,
        settings=settings,
        specification=AsyncAPI(
            title="Recipe Relay bundle-builder",
            version="1.0.0",
            description="Builds each trigger's recipe bundle into the artifact store and requests its deliveries.",
        ),
    )
