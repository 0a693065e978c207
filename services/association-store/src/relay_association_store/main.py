"""Composition root: the FastStream app with its database, tenant config and internal query API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from faststream import ContextRepo, FastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from relay_association_store import handlers
from relay_association_store.adapters.http import create_internal_api
from relay_association_store.adapters.repository import SqlStore
from relay_association_store.settings import Settings
from relay_platform.broker import make_broker
from relay_platform.tenants import TenantsConfig, load_tenants

SERVICE = "association-store"
logger = logging.getLogger("relay.association_store")


def create_app(
    settings: Settings | None = None,
    *,
    tenants: TenantsConfig | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastStream:
    """Build the app; nothing connects until it runs (so ``faststream docs gen`` can import it)."""
    settings = settings or Settings()
    broker = make_broker(settings.kafka, service=SERVICE, tracer_provider=tracer_provider)
    broker.include_router(handlers.build_router(settings.consumer_group))

    @asynccontextmanager
    async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
        config = tenants or load_tenants(settings.tenants_file)
        store = SqlStore.open(
            settings.database_url,
            pool_size=settings.database_pool_size,
            connect_timeout_s=settings.database_connect_timeout_s,
        )
        try:
            await store.migrate()
            context.set_global("store", store)
            context.set_global("tenants", config)
            runner = web.AppRunner(create_internal_api(store))
            await runner.setup()
            try:
                await web.TCPSite(runner, settings.http_host, settings.http_port).start()
                logger.info("internal query API on %s:%s", settings.http_host, settings.http_port)
                yield
            finally:
                await runner.cleanup()
        finally:
            await store.close()

    return FastStream(
        broker,
        lifespan=lifespan,
        specification=AsyncAPI(
            title="Recipe Relay association-store",
            version="1.0.0",
            description=(
                "Keeps order <-> recipe associations and the delivery log, and decides which integrations fire. "
                "OMS teams may publish `orders.events.v1` directly; this document is that contract."
            ),
        ),
    )
