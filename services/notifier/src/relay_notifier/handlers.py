"""The notifier's routing table: one consumer of ``deliveries.outcomes.v1`` and ``integrations.control.v1``; an
outcome goes to the use case ``service.notify_outcome`` (at most one e-mail per final outcome), an integration's
state change to ``service.notify_state_change`` (at most one e-mail per pause as unhealthy or recovery). The offset
is committed after it returns."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from faststream import Context
from faststream.kafka import KafkaRouter

from relay_contracts.messages import DeliveryAttempted, IntegrationStateChanged
from relay_contracts.topics import DELIVERIES_OUTCOMES, INTEGRATIONS_CONTROL
from relay_notifier import service
from relay_notifier.ports import NotifierPorts
from relay_notifier.settings import Settings
from relay_platform.subscriber import on_topic, subscribe

Ports = Annotated[NotifierPorts, Context("ports")]

CONSUMER_DOC = f"""\
`{DELIVERIES_OUTCOMES}` (DeliveryAttempted): e-mail one success or failure notice per finished delivery to the
integration's lists. `{INTEGRATIONS_CONTROL}` (IntegrationStateChanged): e-mail the integration's failure list once
when the destination-health rules pause it (`cause` unhealthy) and once when they resume it (`cause` recovered); an
operator's pause or resume mails no one. Malformed messages go to `deliveries.dead.v1` with the reason."""


def build_router(settings: Settings) -> KafkaRouter:
    """The consumer in group ``settings.consumer_group``; its ports come from the app context (``main``)."""
    router = KafkaRouter()
    # One consumer for both topics rather than one per topic: a single group member per process joins (and
    # rebalances) once. The control topic is compacted and a group new to it starts at the beginning: a change
    # read again there finds its notice in the sent table and mails no one twice.
    consumer = subscribe(
        router,
        DELIVERIES_OUTCOMES,
        INTEGRATIONS_CONTROL,
        kafka=settings.kafka,
        group_id=settings.consumer_group,
        title="notifier:consume",
        description=CONSUMER_DOC,
    )

    @consumer(filter=on_topic(DELIVERIES_OUTCOMES))
    async def on_delivery_attempted(outcome: DeliveryAttempted, ports: Ports) -> None:
        await service.notify_outcome(outcome, ports)

    @consumer(filter=on_topic(INTEGRATIONS_CONTROL))
    async def on_integration_state_changed(change: IntegrationStateChanged, ports: Ports) -> None:
        await service.notify_state_change(change, ports, now=datetime.now(UTC))

    return router
