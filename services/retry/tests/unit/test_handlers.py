"""The routing table on FastStream's in-memory broker, with the SQL schedule on a SQLite file: each topic's handler
calls its use case, whose final outcomes are published; invalid messages are dead-lettered and the next handled.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage, TestKafkaBroker

from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationStateChanged,
    MessageDeadLettered,
    OrderEventOccurred,
    OrderLine,
    RetryDelivery,
    delivery_key,
)
from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    DELIVERIES_RETRY,
    INTEGRATIONS_CONTROL,
    ORDERS_EVENTS,
    deliveries_requested,
)
from relay_platform.broker import make_broker
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import load_tenants
from relay_retry.adapters.outbox import KafkaOutbox
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import INVALID_RETRY_COMMAND, ORDER_CANCELLED
from relay_retry.handlers import build_router
from relay_retry.ports import RetryPorts

TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")
WATCHED = (DELIVERIES_OUTCOMES, DELIVERIES_DEAD, deliveries_requested("zapier"))


class Wakes:
    """Stands in for the scheduler: counts the wake-ups."""

    def __init__(self) -> None:
        self.count = 0

    def notify(self) -> None:
        self.count += 1


@dataclass
class Running:
    broker: KafkaBroker
    schedule: SqlRetrySchedule
    wakes: Wakes
    records: list[tuple[str, bytes | None, dict[str, Any]]] = field(default_factory=list)

    def outcomes(self) -> list[tuple[bytes | None, DeliveryAttempted]]:
        return [
            (key, DeliveryAttempted.model_validate(body)) for t, key, body in self.records if t == DELIVERIES_OUTCOMES
        ]

    def dead_letters(self) -> list[MessageDeadLettered]:
        return [MessageDeadLettered.model_validate(body) for t, _, body in self.records if t == DELIVERIES_DEAD]


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    kafka = KafkaSettings()
    broker = make_broker(kafka, service="retry", tracer_provider=None)
    broker.include_router(build_router(kafka, group_id="retry"))
    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{tmp_path / 'retry.db'}") as schedule:
        state = Running(broker=broker, schedule=schedule, wakes=Wakes())

        @broker.subscriber(*WATCHED, group_id="test-watcher")
        async def watch(body: dict[str, Any], message: KafkaMessage) -> None:
            record = message.raw_message
            assert not isinstance(record, tuple)  # not a batch subscriber
            state.records.append((record.topic, record.key, body))

        ports = RetryPorts(
            tenants=TENANTS, schedule=schedule, outbox=KafkaOutbox(broker), wake=state.wakes, rng=random.Random(1)
        )
        broker.context.set_global("ports", ports)
        async with TestKafkaBroker(broker) as test_broker:
            state.broker = test_broker
            yield state


def retry_of(*, attempt: int = 1, order_id: str | None = None, integration_id: str = "slow-hook") -> RetryDelivery:
    delivery_id = uuid.uuid4().hex
    request = DeliverBundle(
        delivery_id=delivery_id,
        trigger_id=f"t-{delivery_id}",
        tenant="rt",
        integration_id=integration_id,
        integration_type="zapier",
        recipe_id="999-abc",
        feed="order" if order_id else "recipe",
        reason="order_created" if order_id else "recipe_saved",
        order=OrderLine(order_id=order_id, order_number="1022") if order_id else None,
        attempt=attempt,
        requested_at=datetime.now(UTC),
    )
    return RetryDelivery(
        request=request, error_class="TransientError", error_message="503", failed_at=datetime.now(UTC)
    )


def cancelled(order_id: str) -> OrderEventOccurred:
    return OrderEventOccurred(
        event_id=uuid.uuid4().hex,
        tenant="rt",
        type="cancelled",
        order_id=order_id,
        order_number="1022",
        occurred_at=datetime.now(UTC),
    )


async def test_a_failed_attempt_is_scheduled_and_wakes_the_scheduler(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        retry = retry_of()
        await app.broker.publish(retry, DELIVERIES_RETRY)

        assert await app.schedule.pending(retry.request.delivery_id) == 1
        assert app.wakes.count == 1
        assert app.records == []


async def test_the_last_failed_attempt_publishes_its_final_failure_and_a_replayable_dead_letter(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        retry = retry_of(attempt=3, integration_id="fast-hook")
        await app.broker.publish(retry, DELIVERIES_RETRY)

        [(key, outcome)] = app.outcomes()
        assert key == delivery_key(retry.request.delivery_id)
        assert (outcome.delivery_id, outcome.status, outcome.final, outcome.attempt) == (
            retry.request.delivery_id,
            "failed",
            True,
            3,
        )
        [dead] = app.dead_letters()
        assert dead.source_topic == deliveries_requested("zapier")
        assert await app.schedule.pending(retry.request.delivery_id) == 0
        assert app.wakes.count == 0


async def test_a_cancellation_ends_the_pending_retries_of_its_order(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        retry = retry_of(order_id="o-1")
        await app.broker.publish(retry, DELIVERIES_RETRY)
        assert await app.schedule.pending(retry.request.delivery_id) == 1

        await app.broker.publish(cancelled("o-1"), ORDERS_EVENTS)

        [(_, outcome)] = app.outcomes()
        assert (outcome.delivery_id, outcome.error_class, outcome.final) == (
            retry.request.delivery_id,
            ORDER_CANCELLED,
            True,
        )
        assert await app.schedule.pending(retry.request.delivery_id) == 0


async def test_an_invalid_retry_command_with_a_readable_request_ends_its_delivery_and_is_dead_lettered(
    tmp_path: Path,
) -> None:
    async with running(tmp_path) as app:
        invalid = retry_of(attempt=2)
        body = json.loads(invalid.model_dump_json()) | {"errorClass": "x" * 999}
        await app.broker.publish(json.dumps(body).encode(), DELIVERIES_RETRY)
        following = retry_of()
        await app.broker.publish(following, DELIVERIES_RETRY)

        [(key, outcome)] = app.outcomes()
        assert key == delivery_key(invalid.request.delivery_id)
        assert (outcome.delivery_id, outcome.attempt, outcome.final, outcome.error_class) == (
            invalid.request.delivery_id,
            2,
            True,
            INVALID_RETRY_COMMAND,
        )
        assert "errorClass" in (outcome.error_message or "")
        [dead] = app.dead_letters()
        assert dead.source_topic == DELIVERIES_RETRY
        assert dead.reason.startswith("invalid message: ")
        assert await app.schedule.pending(invalid.request.delivery_id) == 0
        assert await app.schedule.pending(following.request.delivery_id) == 1


async def test_unreadable_messages_are_only_dead_lettered_and_the_next_one_is_handled(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        await app.broker.publish(b'{"request": {"deliveryId": "d1"}}', DELIVERIES_RETRY)
        await app.broker.publish(b"not json", ORDERS_EVENTS)
        retry = retry_of(order_id="o-2")
        await app.broker.publish(retry, DELIVERIES_RETRY)
        await app.broker.publish(cancelled("o-2"), ORDERS_EVENTS)

        assert sorted(dead.source_topic for dead in app.dead_letters()) == [DELIVERIES_RETRY, ORDERS_EVENTS]
        [(_, outcome)] = app.outcomes()
        assert (outcome.delivery_id, outcome.error_class) == (retry.request.delivery_id, ORDER_CANCELLED)


async def test_a_held_request_waits_for_the_resume_on_the_control_topic(tmp_path: Path) -> None:
    async with running(tmp_path) as app:
        t0 = datetime.now(UTC)
        pause = IntegrationStateChanged(
            event_id="e1", tenant="rt", integration_id="fast-hook", state="paused", changed_at=t0
        )
        await app.broker.publish(pause, INTEGRATIONS_CONTROL, key=pause.kafka_key)
        hold = retry_of(attempt=9, integration_id="fast-hook").model_copy(update={"hold": "paused"})
        await app.broker.publish(hold, DELIVERIES_RETRY)

        assert await app.schedule.pending(hold.request.delivery_id, held=True) == 1
        assert app.outcomes() == []  # past fast-hook's attempt limit, yet no give-up: a hold is no attempt
        wakes = app.wakes.count

        resume = pause.model_copy(update={"event_id": "e2", "state": "active", "changed_at": t0 + timedelta(seconds=1)})
        await app.broker.publish(resume, INTEGRATIONS_CONTROL, key=resume.kafka_key)

        assert await app.schedule.pending(hold.request.delivery_id, held=False) == 1
        assert app.wakes.count == wakes + 1
