"""Thin Kafka handler: decode the trigger, build the bundle, publish the delivery requests (or failures)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.middlewares import AckPolicy

from relay_bundle_builder import domain, service
from relay_contracts.messages import DeliverBundle, DeliveryAttempted, IntegrationsTriggered, delivery_key
from relay_contracts.topics import INTEGRATIONS_TRIGGERED
from relay_platform.errors import PermanentError
from relay_platform.tenants import TenantsConfig

SERVICE = "bundle-builder"
logger = logging.getLogger("relay.bundle_builder")


@dataclass
class Runtime:
    """What the handler needs; ``build`` is filled in by the app's lifespan once the clients are open."""

    tenants: TenantsConfig
    broker: KafkaBroker
    build: service.BuildContext | None = None

    def context(self) -> service.BuildContext:
        if self.build is None:
            msg = "bundle-builder handler called before the lifespan opened its clients"
            raise RuntimeError(msg)
        return self.build


async def handle_trigger(trigger: IntegrationsTriggered, runtime: Runtime) -> None:
    """Build the bundle once and request one delivery per listed integration; awaits every publish."""
    tenant = runtime.tenants.tenants.get(trigger.tenant)
    if tenant is None:
        raise PermanentError(f"unknown tenant {trigger.tenant!r}")
    if not domain.targets(trigger, tenant):
        logger.warning(
            "trigger %s lists no integration known to tenant %s; nothing to build", trigger.trigger_id, trigger.tenant
        )
        return
    started = time.monotonic()
    publications: list[tuple[str, DeliverBundle | DeliveryAttempted]]
    try:
        bundle = await service.build_bundle(trigger, tenant, runtime.context())
    except domain.BundleFailedError as error:
        elapsed_ms = int((time.monotonic() - started) * 1000)
        logger.warning("bundle for trigger %s (recipe %s) failed: %s", trigger.trigger_id, trigger.recipe_id, error)
        publications = list(domain.failure_outcomes(trigger, tenant, error, datetime.now(UTC), elapsed_ms))
    else:
        logger.info(
            "bundle for trigger %s (%s, recipe %s): %d files in %s",
            trigger.trigger_id,
            trigger.reason,
            trigger.recipe_id,
            len(bundle.files),
            bundle.directory,
        )
        publications = list(domain.delivery_requests(trigger, tenant, bundle.files, datetime.now(UTC)))
    await asyncio.gather(
        *(
            runtime.broker.publish(message, topic, key=delivery_key(message.delivery_id))
            for topic, message in publications
        )
    )


def make_router(runtime: Runtime) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(
        INTEGRATIONS_TRIGGERED,
        group_id=SERVICE,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=f"{SERVICE}:{INTEGRATIONS_TRIGGERED}",
    )
    async def on_integrations_triggered(trigger: IntegrationsTriggered) -> None:
        await handle_trigger(trigger, runtime)

    return router
