"""The use cases on the SQL schedule (SQLite file) with a recording outbox: cancellations by occurredAt, and every
retry that is not sent ending with a final failure before its row or offset goes."""

from __future__ import annotations

import random
import sqlite3
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)

from relay_contracts.messages import (
    DeliverBundle,
    IntegrationStateChanged,
    OrderEventOccurred,
    OrderEventType,
    OrderLine,
    RetryDelivery,
)
from relay_platform.errors import TransientError
from relay_platform.tenants import load_tenants
from relay_retry import service
from relay_retry.adapters.outbox import publish_failure
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import ORDER_CANCELLED, GiveUp, ScheduledRetry
from relay_retry.ports import AddResult, PublishFailure

TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")
HOSTILE_ORDER = "ñ" * 100 + "注文" * 14  # 128 characters, none ASCII


class Outbox:
    """Records finals and requests; ``refuse`` maps a delivery ID to the failure its request gets."""

    def __init__(self) -> None:
        self.finals: list[GiveUp] = []
        self.changes: list[IntegrationStateChanged] = []
        self.requested: list[ScheduledRetry] = []
        self.refuse: dict[str, PublishFailure] = {}
        self.finals_fail = False

    async def state_changes(self, changes: Sequence[IntegrationStateChanged]) -> None:
        self.changes.extend(changes)

    async def final(self, give_ups: Sequence[GiveUp]) -> None:
        if self.finals_fail:
            raise TransientError("outcomes topic unavailable")
        self.finals.extend(give_ups)

    async def requests(self, due: Sequence[ScheduledRetry]) -> list[PublishFailure | None]:
        results: list[PublishFailure | None] = []
        for retry in due:
            refused = self.refuse.get(retry.delivery_id)
            if refused is None:
                self.requested.append(retry)
            results.append(refused)
        return results

    def final_for(self, delivery_id: str) -> list[GiveUp]:
        return [give_up for give_up in self.finals if give_up.outcome.delivery_id == delivery_id]


@pytest.fixture
async def schedule(tmp_path: Path) -> AsyncIterator[SqlRetrySchedule]:
    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{tmp_path / 'retry.db'}") as opened:
        yield opened


def failed(
    *, order_id: str | None = "o1", tenant: str = "rt", attempt: int = 1, reason: str = "order_created"
) -> RetryDelivery:
    delivery_id = uuid.uuid4().hex
    request = DeliverBundle(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant=tenant,
        integration_id="slow-hook",  # 2 s back-off: nothing falls due during a test unless asked
        integration_type="zapier",
        recipe_id="999-abc",
        feed="order" if order_id else "recipe",
        reason=reason,  # type: ignore[arg-type]
        order=OrderLine(order_id=order_id, order_number="1022") if order_id else None,
        attempt=attempt,
        requested_at=datetime.now(UTC),
    )
    return RetryDelivery(
        request=request, error_class="TransientError", error_message="503", failed_at=datetime.now(UTC)
    )


def order_event(kind: OrderEventType, at: datetime, *, order_id: str = "o1", tenant: str = "rt") -> OrderEventOccurred:
    return OrderEventOccurred(
        event_id=uuid.uuid4().hex, tenant=tenant, type=kind, order_id=order_id, order_number="1022", occurred_at=at
    )


async def retry_in(schedule: SqlRetrySchedule, outbox: Outbox, retry: RetryDelivery) -> service.RetryHandled:
    return await service.schedule_retry(
        retry, tenants=TENANTS, schedule=schedule, outbox=outbox, now=datetime.now(UTC), rng=random.Random(1)
    )


async def event_in(schedule: SqlRetrySchedule, outbox: Outbox, event: OrderEventOccurred) -> tuple[GiveUp, ...]:
    return await service.record_order_event(event, schedule=schedule, outbox=outbox, now=datetime.now(UTC))


# --- cancellations obey occurredAt -----------------------------------------------------------------------------


async def test_fresh_cancellation_drops_the_retries_and_ends_each_with_a_final_failure(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await event_in(schedule, outbox, order_event("created", t0 - timedelta(hours=1)))
    first, second = failed(), failed(attempt=2)
    for retry in (first, second):
        assert (await retry_in(schedule, outbox, retry)).add == AddResult("added")

    ended = await event_in(schedule, outbox, order_event("cancelled", t0))

    assert {give_up.outcome.delivery_id for give_up in ended} == {first.request.delivery_id, second.request.delivery_id}
    assert outbox.finals == list(ended)
    [end] = outbox.final_for(second.request.delivery_id)
    assert (end.outcome.status, end.outcome.final, end.outcome.attempt) == ("failed", True, 2)
    assert end.outcome.error_class == ORDER_CANCELLED
    assert end.outcome.error_message == f"order 1022 was cancelled at {t0.isoformat()}, so attempt 3 was not made"
    assert await schedule.pending() == 0


async def test_stale_cancellation_keeps_the_retries_of_a_reopened_order(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await event_in(schedule, outbox, order_event("cancelled", t0 - timedelta(minutes=10)))
    await event_in(schedule, outbox, order_event("created", t0))  # re-opened
    retry = failed()
    assert (await retry_in(schedule, outbox, retry)).add == AddResult("added")

    assert await event_in(schedule, outbox, order_event("cancelled", t0 - timedelta(minutes=5))) == ()

    assert outbox.finals == []
    assert await schedule.pending(retry.request.delivery_id) == 1
    state = await schedule.order_state("rt", "o1")
    assert state is not None
    assert (state.status, state.status_at) == ("open", t0)


async def test_update_after_a_cancellation_does_not_reopen_the_order(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await event_in(schedule, outbox, order_event("cancelled", t0))
    await event_in(schedule, outbox, order_event("updated", t0 + timedelta(hours=1)))

    handled = await retry_in(schedule, outbox, failed())

    assert handled.add is not None
    assert handled.add.status == "order_cancelled"


async def test_retry_arriving_after_the_cancellation_is_refused_with_a_final_failure(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    cancelled_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=14)))
    await event_in(schedule, outbox, order_event("cancelled", cancelled_at, order_id=HOSTILE_ORDER))
    retry = failed(order_id=HOSTILE_ORDER)

    handled = await retry_in(schedule, outbox, retry)

    assert handled.add is not None
    assert handled.add.status == "order_cancelled"
    [end] = outbox.finals
    assert (end.outcome.delivery_id, end.outcome.attempt, end.outcome.final) == (retry.request.delivery_id, 1, True)
    assert (
        end.outcome.error_message == "order 1022 was cancelled at 2026-01-02T03:04:05+14:00, so attempt 2 was not made"
    )
    assert await schedule.pending() == 0


async def test_duplicate_retry_command_publishes_nothing(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    retry = failed()
    await retry_in(schedule, outbox, retry)

    handled = await retry_in(schedule, outbox, retry)

    assert handled.add == AddResult("duplicate")
    assert outbox.finals == []
    assert await schedule.pending() == 1


async def test_cancellation_never_touches_another_tenants_order_of_the_same_id(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    mine, theirs = failed(order_id=HOSTILE_ORDER), failed(order_id=HOSTILE_ORDER, tenant="rt2")
    await retry_in(schedule, outbox, mine)
    await retry_in(schedule, outbox, theirs)

    ended = await event_in(schedule, outbox, order_event("cancelled", datetime.now(UTC), order_id=HOSTILE_ORDER))

    assert [give_up.outcome.delivery_id for give_up in ended] == [mine.request.delivery_id]
    assert await schedule.pending(theirs.request.delivery_id) == 1
    assert await schedule.order_state("rt2", HOSTILE_ORDER) is None
    later = failed(order_id=HOSTILE_ORDER, tenant="rt2")
    assert (await retry_in(schedule, outbox, later)).add == AddResult("added")


async def test_order_notices_keep_their_retries_when_the_order_is_cancelled(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    notice = failed(reason="order_cancelled")
    await retry_in(schedule, outbox, notice)
    await event_in(schedule, outbox, order_event("cancelled", datetime.now(UTC)))

    assert (await retry_in(schedule, outbox, failed(reason="order_cancelled"))).add == AddResult("added")
    assert outbox.finals == []
    assert await schedule.pending(notice.request.delivery_id) == 1


async def test_extreme_offsets_are_stored_and_compared_exactly(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    # The extremes a message may carry (years 0001-9998 in UTC), written with the most distant offsets.
    latest = datetime(9998, 12, 30, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(hours=23, minutes=59)))
    earliest = datetime(1, 1, 2, tzinfo=timezone(timedelta(hours=23, minutes=59)))
    await event_in(schedule, outbox, order_event("created", latest))
    await event_in(schedule, outbox, order_event("cancelled", earliest))
    state = await schedule.order_state("rt", "o1")
    assert state is not None
    assert (state.status, state.status_at, state.status_at.utcoffset()) == ("open", latest, latest.utcoffset())


async def test_a_cancellation_whose_final_failures_cannot_be_published_changes_nothing(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    retry = failed()
    await retry_in(schedule, outbox, retry)
    outbox.finals_fail = True

    with pytest.raises(TransientError):
        await event_in(schedule, outbox, order_event("cancelled", datetime.now(UTC)))

    # Rolled back: the message is read again, and the cancellation is applied then, with its notices.
    assert await schedule.pending() == 1
    assert await schedule.order_state("rt", "o1") is None
    outbox.finals_fail = False
    assert len(await event_in(schedule, outbox, order_event("cancelled", datetime.now(UTC)))) == 1


async def test_cancellations_recorded_by_the_previous_version_still_refuse_retries(tmp_path: Path) -> None:
    database = tmp_path / "old.db"
    with sqlite3.connect(database) as old:
        old.execute("CREATE TABLE cancelled_orders (tenant VARCHAR(128), order_id VARCHAR(128), cancelled_at FLOAT)")
        old.execute("INSERT INTO cancelled_orders VALUES ('rt', 'o-old', 1700000000.5)")
    outbox = Outbox()
    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{database}") as schedule:
        handled = await retry_in(schedule, outbox, failed(order_id="o-old"))
        assert handled.add is not None
        assert handled.add.status == "order_cancelled"
        # A re-opening newer than the old cancellation lifts it, as for new ones.
        await event_in(schedule, outbox, order_event("created", datetime.now(UTC), order_id="o-old"))
        assert (await retry_in(schedule, outbox, failed(order_id="o-old"))).add == AddResult("added")


# --- due retries: sent, or ended -------------------------------------------------------------------------------


async def add_due(schedule: SqlRetrySchedule, retry: RetryDelivery) -> ScheduledRetry:
    due = ScheduledRetry(retry.request.model_copy(update={"attempt": 2}), datetime.now(UTC) - timedelta(seconds=1))
    assert (await schedule.add(due, order_id=retry.request.order.order_id if retry.request.order else None)).status == (
        "added"
    )
    return due


async def test_due_retry_the_broker_refuses_for_good_ends_and_leaves_the_schedule(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    refused, fine = await add_due(schedule, failed()), await add_due(schedule, failed())
    outbox.refuse[refused.delivery_id] = PublishFailure("MessageSizeTooLargeError", "too big", permanent=True)

    assert await service.publish_due(datetime.now(UTC), 10, schedule=schedule, outbox=outbox) == 2

    assert [retry.delivery_id for retry in outbox.requested] == [fine.delivery_id]
    [end] = outbox.finals
    assert (end.outcome.delivery_id, end.outcome.error_class, end.outcome.final) == (
        refused.delivery_id,
        "MessageSizeTooLargeError",
        True,
    )
    assert end.dead_letter is not None
    assert await schedule.pending() == 0


async def test_due_retry_the_broker_refuses_for_now_stays_while_the_rest_goes(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    stuck, fine = await add_due(schedule, failed()), await add_due(schedule, failed())
    outbox.refuse[stuck.delivery_id] = PublishFailure("KafkaTimeoutError", "slow", permanent=False)

    with pytest.raises(TransientError):
        await service.publish_due(datetime.now(UTC), 10, schedule=schedule, outbox=outbox)

    assert outbox.finals == []
    assert await schedule.pending(stuck.delivery_id) == 1
    assert await schedule.pending(fine.delivery_id) == 0


async def test_due_retry_whose_final_failure_cannot_be_published_stays(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    refused = await add_due(schedule, failed())
    outbox.refuse[refused.delivery_id] = PublishFailure("TopicAuthorizationFailedError", "denied", permanent=True)
    outbox.finals_fail = True

    with pytest.raises(TransientError):
        await service.publish_due(datetime.now(UTC), 10, schedule=schedule, outbox=outbox)

    assert await schedule.pending() == 1


async def test_due_retry_stored_while_its_order_was_being_cancelled_ends_at_its_due_time(
    schedule: SqlRetrySchedule,
) -> None:
    # Another replica stored it after this one had dropped the order's retries: the order state is looked at again.
    outbox = Outbox()
    await event_in(schedule, outbox, order_event("cancelled", datetime.now(UTC)))
    retry = failed()
    due = ScheduledRetry(retry.request.model_copy(update={"attempt": 2}), datetime.now(UTC) - timedelta(seconds=1))
    async with schedule.transaction() as tx:
        assert await tx.insert(due, order_id="o1")

    assert await service.publish_due(datetime.now(UTC), 10, schedule=schedule, outbox=outbox) == 1

    assert outbox.requested == []
    [end] = outbox.finals
    assert (end.outcome.delivery_id, end.outcome.error_class) == (retry.request.delivery_id, ORDER_CANCELLED)


async def test_stored_row_that_no_longer_parses_ends_with_a_final_failure_and_a_dead_letter(
    schedule: SqlRetrySchedule, tmp_path: Path
) -> None:
    outbox = Outbox()
    due = await add_due(schedule, failed())
    with sqlite3.connect(tmp_path / "retry.db") as raw:
        raw.execute("UPDATE scheduled_retries SET request_json = '{\"schemaVersion\": 9}'")

    assert await service.publish_due(datetime.now(UTC), 10, schedule=schedule, outbox=outbox) == 1

    [end] = outbox.finals
    assert (end.outcome.delivery_id, end.outcome.attempt, end.outcome.final) == (due.delivery_id, 1, True)
    assert end.dead_letter is not None
    assert await schedule.pending() == 0


# --- the order's trace goes with its retries -----------------------------------------------------------------

TRACE = "00-" + "4bf92f3577b34da6a3ce929d0e0e4736" + "-" + "00f067aa0ba902b7" + "-01"


async def test_a_retry_is_re_requested_in_the_trace_of_its_command(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    retry = failed()
    handled = await service.schedule_retry(
        retry, tenants=TENANTS, schedule=schedule, outbox=outbox, now=datetime.now(UTC), trace_parent=TRACE
    )
    assert handled.scheduled is not None
    later = datetime.now(UTC) + timedelta(hours=1)

    assert await service.publish_due(later, 10, schedule=schedule, outbox=outbox) == 1

    assert [(r.delivery_id, r.trace_parent) for r in outbox.requested] == [(retry.request.delivery_id, TRACE)]


@pytest.mark.parametrize("kept", ["", "x" * 56, "00-" + "٤" * 32 + "-" + "0" * 16 + "-01", "garbage"])
async def test_a_trace_value_too_long_for_its_column_is_dropped_and_anything_else_is_only_carried(
    schedule: SqlRetrySchedule, kept: str
) -> None:
    # Never parsed here: the scheduler's publish ignores a value that is not a valid traceparent (platform test).
    outbox = Outbox()
    retry = failed()
    await service.schedule_retry(
        retry, tenants=TENANTS, schedule=schedule, outbox=outbox, now=datetime.now(UTC), trace_parent=kept
    )

    assert await service.publish_due(datetime.now(UTC) + timedelta(hours=1), 10, schedule=schedule, outbox=outbox) == 1

    [again] = outbox.requested
    assert again.trace_parent == (kept if len(kept) <= 55 else None)


async def test_final_failures_the_scheduler_decides_are_published_in_the_retrys_trace(
    schedule: SqlRetrySchedule, tmp_path: Path
) -> None:
    outbox = Outbox()
    await event_in(schedule, outbox, order_event("cancelled", datetime.now(UTC)))
    cancelled, refused, unreadable = failed(), failed(order_id="o2"), failed(order_id="o3")
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with schedule.transaction() as tx:
        for retry, order_id in ((cancelled, "o1"), (refused, "o2"), (unreadable, "o3")):
            due = ScheduledRetry(retry.request.model_copy(update={"attempt": 2}), past, trace_parent=TRACE)
            assert await tx.insert(due, order_id=order_id)
    outbox.refuse[refused.request.delivery_id] = PublishFailure("MessageSizeTooLargeError", "big", permanent=True)
    with sqlite3.connect(tmp_path / "retry.db") as raw:
        raw.execute(
            "UPDATE scheduled_retries SET request_json = '{}' WHERE delivery_id = ?", (unreadable.request.delivery_id,)
        )

    assert await service.publish_due(datetime.now(UTC), 10, schedule=schedule, outbox=outbox) == 3

    assert {(end.outcome.delivery_id, end.trace_parent) for end in outbox.finals} == {
        (retry.request.delivery_id, TRACE) for retry in (cancelled, refused, unreadable)
    }


# --- Kafka errors: for good, or for now ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "permanent"),
    [
        (MessageSizeTooLargeError(), True),
        (TopicAuthorizationFailedError(), True),
        (KafkaTimeoutError(), False),
        (KafkaConnectionError(), False),
        (NotLeaderForPartitionError(), False),
    ],
)
def test_kafka_errors_are_classified_for_good_or_for_now(error: Exception, permanent: bool) -> None:
    from aiokafka.errors import KafkaError

    assert isinstance(error, KafkaError)
    failure = publish_failure(error)
    assert failure.permanent is permanent
    assert failure.error_class == type(error).__name__
