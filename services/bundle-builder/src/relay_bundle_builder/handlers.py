"""Kafka routing table: one consumer of the triggers; its handler decodes, calls the use case and publishes what
it returns (each message keyed by its delivery ID, all confirmed before the trigger's offset is committed)."""

from __future__ import annotations

import time
from typing import Annotated

from faststream import Context
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaBroker

from relay_bundle_builder import service
from relay_bundle_builder.ports import BundlePorts
from relay_contracts.messages import IntegrationsTriggered
from relay_contracts.topics import INTEGRATIONS_TRIGGERED
from relay_platform.broker import current_read
from relay_platform.metrics import BUNDLE_BUILD_SECONDS
from relay_platform.settings import KafkaSettings
from relay_platform.subscriber import publish_all, subscribe

Ports = Annotated[BundlePorts, Context("ports")]

TRIGGERS_DOC = """\
Build the recipe's bundle (recipe JSON, pick ticket, assets; for a cancelled, refunded or returned order line the
event file instead) into the artifact store once, then request one delivery per listed integration the tenant
still knows (`deliveries.requested.<type>.v1`). A bundle that cannot be built ends every listed integration with a
final failed outcome on `deliveries.outcomes.v1`; a transient failure is read again, and reported the same way on
the last read. Malformed messages go to `deliveries.dead.v1` with the reason."""


def build_router(kafka: KafkaSettings, *, group_id: str) -> KafkaRouter:
    """The trigger consumer; its dependencies come from the app context (``main``)."""
    router = KafkaRouter()
    triggers = subscribe(
        router,
        INTEGRATIONS_TRIGGERED,
        kafka=kafka,
        group_id=group_id,
        title=f"bundle-builder:{INTEGRATIONS_TRIGGERED}",
        description=TRIGGERS_DOC,
    )

    @triggers
    async def on_integrations_triggered(trigger: IntegrationsTriggered, ports: Ports, broker: KafkaBroker) -> None:
        # On the final read a transient failure is reported as failed outcomes rather than raised to be dropped.
        started = time.monotonic()
        outgoing = await service.request_deliveries(
            trigger, ports.tenants, ports.build, final_read=current_read().final
        )
        BUNDLE_BUILD_SECONDS.observe(time.monotonic() - started)
        await publish_all(broker, outgoing)

    return router
