"""Thin Kafka handlers: schedule (or give up on) a retry; drop the retries of a cancelled order."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaMessage, KafkaRouter
from faststream.middlewares import AckPolicy

from relay_contracts.messages import OrderEventOccurred, RetryDelivery
from relay_contracts.topics import DELIVERIES_DEAD, DELIVERIES_OUTCOMES, DELIVERIES_RETRY, ORDERS_EVENTS
from relay_platform.broker import DEAD_LETTER_REASON_HEADER
from relay_platform.errors import TransientError
from relay_platform.tenants import RetryPolicy, TenantsConfig
from relay_retry import service
from relay_retry.scheduler import RetrySchedule, Scheduler
from relay_retry.service import SERVICE, GiveUp, ScheduledRetry

NOTICE_REASONS = frozenset({"order_cancelled", "order_refunded", "order_returned"})
logger = logging.getLogger("relay.retry")


@dataclass
class Runtime:
    """What the handlers need; ``schedule`` and ``scheduler`` are set once the app has opened the database."""

    tenants: TenantsConfig
    broker: KafkaBroker
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
    """Store the next attempt (durably, before the offset commits) or publish the final failure."""
    request = retry.request
    policy = service.policy_for(runtime.tenants, request.tenant, request.integration_id)
    if policy is None:
        logger.warning(
            "integration %s/%s is no longer configured; using the default retry policy",
            request.tenant,
            request.integration_id,
        )
        policy = RetryPolicy()
    decision = service.plan_retry(retry, policy, jitter=runtime.jitter, rng=runtime.rng)
    if isinstance(decision, GiveUp):
        await publish_give_up(runtime.broker, decision)
        logger.warning(
            "delivery %s to %s/%s failed after %d attempts (%s); dead-lettered",
            request.delivery_id,
            request.tenant,
            request.integration_id,
            request.attempt,
            retry.error_class,
        )
        return
    schedule, scheduler = runtime.opened()
    # Only manufacturing deliveries are dropped when their order is cancelled; the cancellation (or refund/return)
    # notice itself must still get its retries, whichever topic the retry service reads first.
    cancellable = request.order is not None and request.reason not in NOTICE_REASONS
    order_id = request.order.order_id if request.order is not None and cancellable else None
    added = await schedule.add(decision, order_id=order_id)
    if added:
        scheduler.notify()
    logger.info(
        "delivery %s attempt %d scheduled for %s%s",
        request.delivery_id,
        decision.attempt,
        decision.due_at.isoformat(timespec="milliseconds"),
        "" if added else " (not added: already scheduled, or its order was cancelled)",
    )


async def handle_order_event(event: OrderEventOccurred, runtime: Runtime) -> None:
    """A cancelled order gets no more attempts."""
    if event.type != "cancelled":
        return
    schedule, _ = runtime.opened()
    dropped = await schedule.cancel_order(event.tenant, event.order_id)
    if dropped:
        logger.info("order %s of %s cancelled: dropped %d pending retries", event.order_id, event.tenant, dropped)


async def publish_give_up(broker: KafkaBroker, decision: GiveUp) -> None:
    """The final outcome (keyed by delivery ID, like the deliverers' outcomes) and the dead letter."""
    outcome, dead = decision.outcome, decision.dead_letter
    try:
        await asyncio.gather(
            broker.publish(outcome, DELIVERIES_OUTCOMES, key=outcome.delivery_id.encode()),
            broker.publish(
                dead,
                DELIVERIES_DEAD,
                key=(dead.key or "").encode() or None,
                headers={DEAD_LETTER_REASON_HEADER: dead.reason[:256]},
            ),
        )
    except KafkaError as error:
        raise TransientError(f"cannot publish final failure: {type(error).__name__}") from error


async def publish_due(broker: KafkaBroker, due: Sequence[ScheduledRetry]) -> None:
    """Re-request each due delivery on its deliverer's topic; returns once the broker confirmed all."""
    try:
        await asyncio.gather(*(broker.publish(retry.request, retry.topic, key=retry.key) for retry in due))
    except KafkaError as error:
        raise TransientError(f"cannot publish due retries: {type(error).__name__}") from error


def make_router(runtime: Runtime) -> KafkaRouter:
    router = KafkaRouter()

    # One consumer for both topics rather than one per topic: a single group member per process joins (and
    # rebalances) once, which on Tansu is seconds rather than tens of seconds per start.
    @router.subscriber(
        DELIVERIES_RETRY,
        ORDERS_EVENTS,
        group_id=SERVICE,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=f"{SERVICE}:consume",
        description=(
            f"{DELIVERIES_RETRY} (RetryDelivery): schedule the next attempt of a failed delivery or publish its "
            f"final failure. {ORDERS_EVENTS} (OrderEventOccurred): drop pending retries of cancelled orders."
        ),
    )
    async def on_message(message: KafkaMessage) -> None:
        # Decoded here, by topic; a ValidationError dead-letters the raw message (error middleware).
        topic = getattr(message.raw_message, "topic", DELIVERIES_RETRY)
        if topic == ORDERS_EVENTS:
            await handle_order_event(OrderEventOccurred.model_validate_json(message.body), runtime)
        else:
            await handle_retry(RetryDelivery.model_validate_json(message.body), runtime)

    return router
