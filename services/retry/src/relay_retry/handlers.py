"""Kafka routing table: one consumer for the retry commands, the order events, the integrations' states and the
delivery outcomes (destination health), one handler per topic, each calling one use case. The use cases publish
their final outcomes through the ``Outbox`` port themselves (see ``service``), so the handlers have nothing left to
publish."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from faststream import Context
from faststream.kafka import KafkaMessage, KafkaRouter

from relay_contracts.messages import DeliveryAttempted, IntegrationStateChanged, OrderEventOccurred
from relay_contracts.topics import DELIVERIES_OUTCOMES, DELIVERIES_RETRY, INTEGRATIONS_CONTROL, ORDERS_EVENTS
from relay_platform.settings import KafkaSettings
from relay_platform.subscriber import on_topic, subscribe
from relay_platform.telemetry import current_traceparent
from relay_retry import service
from relay_retry.ports import RetryPorts

Ports = Annotated[RetryPorts, Context("ports")]

CONSUMER_DOC = f"""\
`{DELIVERIES_RETRY}` (RetryDelivery): schedule the next attempt of a failed delivery or publish its final failure;
an invalid command whose `request` can still be read ends that delivery with a final failure before it is
dead-lettered; a request held because its integration is paused (`hold`) is kept, same attempt, until a resume.
`{ORDERS_EVENTS}` (OrderEventOccurred): track each order's status by occurredAt; a cancelled order's pending retries
end with a final failure. `{INTEGRATIONS_CONTROL}` (IntegrationStateChanged): track each integration's state by
changedAt; a resume releases its held requests, oldest first. `{DELIVERIES_OUTCOMES}` (DeliveryAttempted): for
integrations with a health policy, count consecutive transient failures; pause one as unhealthy at the limit, and
resume it when an attempt (its probe) succeeds. Malformed messages go to `deliveries.dead.v1` with the reason."""


def build_router(kafka: KafkaSettings, *, group_id: str) -> KafkaRouter:
    """The consumer and its handlers; their dependencies come from the app context (``main``)."""
    router = KafkaRouter()
    # One consumer for both topics rather than one per topic: a single group member per process joins (and
    # rebalances) once, which on Tansu is seconds rather than tens of seconds per start.
    consumer = subscribe(
        router,
        DELIVERIES_RETRY,
        ORDERS_EVENTS,
        INTEGRATIONS_CONTROL,
        DELIVERIES_OUTCOMES,
        kafka=kafka,
        group_id=group_id,
        title="retry:consume",
        description=CONSUMER_DOC,
    )

    @consumer(filter=on_topic(DELIVERIES_RETRY))
    async def on_retry_command(message: KafkaMessage, ports: Ports) -> None:
        # Decoded by the use case, not by this signature: a command the contract rejects must still end its
        # delivery (a final failure, when the request inside can be read) before the ValidationError reaches the
        # error middleware, which dead-letters the raw message. Typed decoding would raise before this runs.
        # The consume span's trace goes with the stored attempt: the scheduler re-requests it in that trace.
        await service.handle_retry_command(
            message.body, ports, now=datetime.now(UTC), trace_parent=current_traceparent()
        )

    @consumer(filter=on_topic(ORDERS_EVENTS))
    async def on_order_event(event: OrderEventOccurred, ports: Ports) -> None:
        await service.record_order_event(event, schedule=ports.schedule, outbox=ports.outbox, now=datetime.now(UTC))

    @consumer(filter=on_topic(INTEGRATIONS_CONTROL))
    async def on_integration_state(change: IntegrationStateChanged, ports: Ports) -> None:
        if await service.record_integration_state(change, schedule=ports.schedule, now=datetime.now(UTC)):
            ports.wake.notify()

    @consumer(filter=on_topic(DELIVERIES_OUTCOMES))
    async def on_delivery_outcome(outcome: DeliveryAttempted, ports: Ports) -> None:
        await service.record_outcome(
            outcome, tenants=ports.tenants, schedule=ports.schedule, outbox=ports.outbox, now=datetime.now(UTC)
        )

    return router
