"""Kafka routing table: decode the trigger, call the one use case, publish what it returns."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaRouter

from relay_bundle_builder import service
from relay_contracts.messages import DeliverBundle, DeliveryAttempted, IntegrationsTriggered, delivery_key
from relay_contracts.topics import INTEGRATIONS_TRIGGERED
from relay_platform.broker import consumer_options, current_read, kafka_error
from relay_platform.errors import TransientError
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import TenantsConfig

SERVICE = "bundle-builder"


@dataclass
class Runtime:
    """What the handler needs; ``build`` is filled in by the app's lifespan once the clients are open."""

    tenants: TenantsConfig
    broker: KafkaBroker
    kafka: KafkaSettings
    build: service.BuildContext | None = None

    def context(self) -> service.BuildContext:
        if self.build is None:
            # Not started yet (or stopping): leave the trigger uncommitted, it is read again.
            raise TransientError("bundle-builder clients are not open")
        return self.build

    async def publish(self, publications: Sequence[tuple[str, DeliverBundle | DeliveryAttempted]]) -> None:
        """Every message keyed by its delivery ID, pipelined, all confirmed before the trigger is committed."""
        try:
            await asyncio.gather(
                *(
                    self.broker.publish(message, topic, key=delivery_key(message.delivery_id))
                    for topic, message in publications
                )
            )
        except KafkaError as error:
            # Some may have gone out: a re-read publishes the same delivery IDs again, which is harmless.
            raise kafka_error(error, "publishing the delivery requests") from error


def make_router(runtime: Runtime) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(
        INTEGRATIONS_TRIGGERED,
        **consumer_options(runtime.kafka, SERVICE),
        title=f"{SERVICE}:{INTEGRATIONS_TRIGGERED}",
    )
    async def on_integrations_triggered(trigger: IntegrationsTriggered) -> None:
        await service.request_deliveries(
            trigger, runtime.tenants, runtime.context(), runtime.publish, final_read=current_read().final
        )

    return router
