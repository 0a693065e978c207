"""Thin Kafka handlers: decode by topic and call one use case per message."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

from faststream.kafka import KafkaMessage, KafkaRouter
from pydantic import ValidationError

from relay_contracts.messages import OrderEventOccurred, RetryDelivery
from relay_contracts.topics import DELIVERIES_RETRY, ORDERS_EVENTS
from relay_platform.broker import consumer_options
from relay_platform.errors import TransientError
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import TenantsConfig
from relay_retry import domain, service
from relay_retry.domain import SERVICE
from relay_retry.scheduler import Scheduler
from relay_retry.service import Outbox, RetrySchedule

logger = logging.getLogger("relay.retry")


@dataclass
class Runtime:
    """What the handlers need; ``schedule`` and ``scheduler`` are set once the app has opened the database."""

    tenants: TenantsConfig
    outbox: Outbox
    jitter: float = 0.1
    rng: random.Random = field(default_factory=random.Random)
    schedule: RetrySchedule | None = None
    scheduler: Scheduler | None = None

    def opened(self) -> tuple[RetrySchedule, Scheduler]:
        if self.schedule is None or self.scheduler is None:
            # Not started yet (or stopping): leave the message uncommitted, it is read again.
            raise TransientError("retry schedule is not open")
        return self.schedule, self.scheduler


async def handle_retry(retry: RetryDelivery, runtime: Runtime) -> None:
    schedule, scheduler = runtime.opened()
    handled = await service.schedule_retry(
        retry,
        tenants=runtime.tenants,
        schedule=schedule,
        outbox=runtime.outbox,
        now=datetime.now(UTC),
        jitter=runtime.jitter,
        rng=runtime.rng,
    )
    if handled.add is not None and handled.add.status == "added":
        scheduler.notify()


async def handle_invalid_retry(body: bytes, error: ValidationError, runtime: Runtime) -> None:
    """A retry command the contract rejects still ends its delivery when its request can be read; the error is
    then re-raised so the raw message is dead-lettered as well."""
    detail = "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)[:3]
    )
    give_up = domain.invalid_command_give_up(body, detail, now=datetime.now(UTC))
    if give_up is not None:
        await runtime.outbox.final([give_up])
        logger.warning("invalid retry command for delivery %s: final failure published", give_up.outcome.delivery_id)


async def handle_order_event(event: OrderEventOccurred, runtime: Runtime) -> None:
    schedule, _ = runtime.opened()
    await service.record_order_event(event, schedule=schedule, outbox=runtime.outbox, now=datetime.now(UTC))


def make_router(runtime: Runtime, kafka: KafkaSettings) -> KafkaRouter:
    router = KafkaRouter()

    # One consumer for both topics rather than one per topic: a single group member per process joins (and
    # rebalances) once, which on Tansu is seconds rather than tens of seconds per start.
    @router.subscriber(
        DELIVERIES_RETRY,
        ORDERS_EVENTS,
        **consumer_options(kafka, SERVICE),
        title=f"{SERVICE}:consume",
        description=(
            f"{DELIVERIES_RETRY} (RetryDelivery): schedule the next attempt of a failed delivery or publish its "
            f"final failure. {ORDERS_EVENTS} (OrderEventOccurred): track each order's status by occurredAt; a "
            "cancelled order's pending retries end with a final failure."
        ),
    )
    async def on_message(message: KafkaMessage) -> None:
        # Decoded here, by topic; a ValidationError dead-letters the raw message (error middleware).
        topic = getattr(message.raw_message, "topic", DELIVERIES_RETRY)
        if topic == ORDERS_EVENTS:
            await handle_order_event(OrderEventOccurred.model_validate_json(message.body), runtime)
            return
        try:
            retry = RetryDelivery.model_validate_json(message.body)
        except ValidationError as error:
            await handle_invalid_retry(message.body, error, runtime)
            raise
        await handle_retry(retry, runtime)

    return router
