"""The notifier's routing table: one consumer of ``deliveries.outcomes.v1``; each outcome goes to the use case
``service.notify_outcome`` (at most one e-mail per final outcome). The offset is committed after it returns."""

from __future__ import annotations

from typing import Annotated

from faststream import Context
from faststream.kafka import KafkaRouter

from relay_contracts.messages import DeliveryAttempted
from relay_contracts.topics import DELIVERIES_OUTCOMES
from relay_notifier import service
from relay_notifier.ports import NotifierPorts
from relay_notifier.settings import Settings
from relay_platform.subscriber import subscribe

Ports = Annotated[NotifierPorts, Context("ports")]


def build_router(settings: Settings) -> KafkaRouter:
    """The outcome consumer in group ``settings.consumer_group``; its ports come from the app context (``main``)."""
    router = KafkaRouter()
    consumer = subscribe(
        router,
        DELIVERIES_OUTCOMES,
        kafka=settings.kafka,
        group_id=settings.consumer_group,
        title=f"notifier:{DELIVERIES_OUTCOMES}",
        description="E-mail one success or failure notice per finished delivery to the integration's lists.",
    )

    @consumer
    async def on_delivery_attempted(outcome: DeliveryAttempted, ports: Ports) -> None:
        await service.notify_outcome(outcome, ports)

    return router
