"""Composition root: the FastStream app with its database, tenant config and internal query API."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web
from aiokafka.errors import KafkaError
from faststream import ContextRepo, FastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from relay_association_store import handlers
from relay_association_store.adapters.http import create_internal_api
from relay_association_store.adapters.repository import SqlStore
from relay_association_store.settings import Settings
from relay_contracts.messages import OmsOrderEvent
from relay_platform.broker import ensure_topics, make_broker
from relay_platform.errors import RelayError
from relay_platform.tenants import TenantsConfig, load_tenants

SERVICE = "association-store"
logger = logging.getLogger("relay.association_store")


async def _ensure_oms_topics(settings: Settings, topics: tuple[str, ...]) -> None:
    """Create missing OMS topics, so the first events of a new tenant are read without waiting for a metadata
    refresh. Production usually creates topics itself (and may deny this service the right): then it is only
    logged."""
    if not topics:
        return
    try:
        await ensure_topics(settings.kafka.bootstrap_servers, topics)
    except (KafkaError, RelayError, OSError) as error:
        logger.warning("could not check or create the OMS topics: %s", type(error).__name__)


def create_app(
    settings: Settings | None = None,
    *,
    tenants: TenantsConfig | None = None,
    tracer_provider: TracerProvider | None = None,
) -> FastStream:
    """Build the app; nothing connects until it runs (so ``faststream docs gen`` can import it).

    The tenant file is read here, not at start: each tenant's OMS topic is one of the subscribed topics.
    """
    settings = settings or Settings()
    config = tenants or load_tenants(settings.tenants_file)
    oms_topics = config.oms_topics()
    broker = make_broker(
        settings.kafka,
        service=SERVICE,
        tracer_provider=tracer_provider,
        topic_models=dict.fromkeys(oms_topics, OmsOrderEvent),
    )
    broker.include_router(handlers.build_router(settings.consumer_group, oms_topics))

    @asynccontextmanager
    async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
        await _ensure_oms_topics(settings, tuple(oms_topics))
        store = SqlStore.open(
            settings.database_url,
            pool_size=settings.database_pool_size,
            connect_timeout_s=settings.database_connect_timeout_s,
        )
        try:
            await store.migrate()
            context.set_global("store", store)
            context.set_global("tenants", config)
            runner = web.AppRunner(create_internal_api(store, token=settings.api_token))
            await runner.setup()
            try:
                await web.TCPSite(runner, settings.http_host, settings.http_port).start()
                logger.info("internal query API on %s:%s", settings.http_host, settings.http_port)
                if settings.api_token is None:
                    # Settings allow this on loopback only; say so, as every local process can read any tenant.
                    logger.warning("internal query API has no token (ASSOCIATION_STORE_API_TOKEN unset): loopback only")
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
