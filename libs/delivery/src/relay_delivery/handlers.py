"""The routing table every deliverer runs: one consumer of ``deliveries.requested.<type>.v1``.

Each ``DeliverBundle`` is attempted once (``service.Deliverer.attempt``, around the service's destination) and
its ``DeliveryAttempted`` published on ``deliveries.outcomes.v1`` (plus a ``RetryDelivery`` on
``deliveries.retry.v1`` for a transient failure), acknowledged by the broker before the offset is committed.
Both are keyed by delivery ID, so every attempt of one delivery stays in order. A request of a paused integration
is not attempted: only its hold command goes to ``deliveries.retry.v1`` (``service.Deliverer.handle``). The
``Deliverer`` comes from the app context (``app.build_deliverer_app`` opens it).
"""

from __future__ import annotations

from typing import Annotated, Any

from faststream import Context
from faststream.kafka import KafkaRouter
from faststream.kafka.annotations import KafkaBroker

from relay_contracts.messages import DeliverBundle
from relay_contracts.topics import IntegrationType, deliveries_requested
from relay_delivery.service import Deliverer
from relay_delivery.settings import DelivererSettings
from relay_platform.subscriber import publish_all, subscribe

DelivererInContext = Annotated[Deliverer[Any], Context("deliverer")]


def build_router(
    settings: DelivererSettings, *, integration_type: IntegrationType, topic: str | None = None
) -> KafkaRouter:
    """The consumer of ``deliver-<integration_type>``: group ``settings.consumer_group``, ``settings.concurrency``
    attempts at once (each partition still in order). ``topic`` replaces the requests topic in tests only."""
    service = f"deliver-{integration_type}"
    router = KafkaRouter()
    consumer = subscribe(
        router,
        topic or deliveries_requested(integration_type),
        kafka=settings.kafka,
        group_id=settings.consumer_group,
        max_workers=settings.concurrency,
        title=f"{service}:deliver",
        description=f"Deliver bundles to {integration_type} integrations; one outcome per attempt.",
    )

    @consumer
    async def on_deliver_bundle(request: DeliverBundle, deliverer: DelivererInContext, broker: KafkaBroker) -> None:
        result = await deliverer.handle(request)
        await publish_all(broker, result.messages())

    return router
