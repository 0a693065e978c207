"""Composition root: the broker and its routing table, and the resources the handlers reach through the context
(the database, the tenant config) with the internal query API served beside them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiokafka.errors import KafkaError
from faststream import ContextRepo, FastStream
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider

from relay_association_store import handlers
from relay_association_store.adapters.http import serving_internal_api
from relay_association_store.adapters.repository import SqlStore
from relay_association_store.ports import ServicePorts
from relay_association_store.settings import Settings
from relay_contracts.messages import OmsOrderEvent
from relay_platform.app import service_app
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
    broker.include_router(handlers.build_router(settings, oms_topics))

    opened: list[SqlStore] = []

    @asynccontextmanager
    async def resources(context: ContextRepo) -> AsyncIterator[None]:
        await _ensure_oms_topics(settings, tuple(oms_topics))
        store = SqlStore.open(
            settings.database_url,
            pool_size=settings.database_pool_size,
            connect_timeout_s=settings.database_connect_timeout_s,
        )
        try:
            await store.migrate()
            async with serving_internal_api(
                store, host=settings.http_host, port=settings.http_port, token=settings.api_token
            ):
                context.set_global("ports", ServicePorts(store=store, tenants=config))
                opened.append(store)
                yield
        finally:
            opened.clear()
            await store.close()

    async def database_up() -> bool:
        # SELECT 1 within the ops check timeout (the store's own ping logs the failure's class, never its text).
        return bool(opened) and await opened[0].ping(settings.ops.check_timeout_s)

    return service_app(
        broker,
        resources=resources,
        service=SERVICE,
        settings=settings,
        readiness={"database": database_up},
        specification=AsyncAPI(
            title="Recipe Relay association-store",
            version="1.0.0",
            description=(
                "Keeps order <-> recipe associations and the delivery log, and decides which integrations fire. "
                "OMS teams may publish `orders.events.v1` directly; this document is that contract."
            ),
        ),
    )
