"""The scheduler and the SQL schedule (SQLite file): order, wake-ups, idempotence, no loss on publish failure."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from relay_contracts.messages import DeliverBundle, IntegrationStateChanged, OrderLine
from relay_platform.errors import TransientError
from relay_retry import service
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import GiveUp, ScheduledRetry
from relay_retry.ports import PublishFailure
from relay_retry.scheduler import Scheduler


def scheduled(due_in_s: float, *, order_id: str | None = None, attempt: int = 2) -> ScheduledRetry:
    delivery_id = uuid.uuid4().hex
    request = DeliverBundle(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant="rt",
        integration_id="fast-hook",
        integration_type="zapier",
        recipe_id="999-abc",
        feed="order" if order_id else "recipe",
        reason="order_created" if order_id else "recipe_saved",
        order=OrderLine(order_id=order_id, order_number="1022") if order_id else None,
        attempt=attempt,
        requested_at=datetime.now(UTC),
    )
    return ScheduledRetry(request=request, due_at=datetime.now(UTC) + timedelta(seconds=due_in_s))


@pytest.fixture
async def schedule(tmp_path: Path) -> AsyncIterator[SqlRetrySchedule]:
    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{tmp_path / 'var' / 'retry.db'}") as opened:
        yield opened


class Recorder:
    """A fake ``Outbox``: records what is published; ``fail_next`` rounds of requests fail for now."""

    def __init__(self) -> None:
        self.published: list[tuple[float, ScheduledRetry]] = []
        self.finals: list[GiveUp] = []
        self.changes: list[IntegrationStateChanged] = []
        self.fail_next = 0
        self.changed = asyncio.Event()

    async def requests(self, due: Sequence[ScheduledRetry]) -> list[PublishFailure | None]:
        if self.fail_next:
            self.fail_next -= 1
            return [PublishFailure("KafkaTimeoutError", "broker down", permanent=False) for _ in due]
        self.published.extend((time.monotonic(), retry) for retry in due)
        self.changed.set()
        return [None for _ in due]

    async def state_changes(self, changes: Sequence[IntegrationStateChanged]) -> None:
        self.changes.extend(changes)

    async def final(self, give_ups: Sequence[GiveUp]) -> None:
        self.finals.extend(give_ups)

    async def wait_for(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.published) < count:
                self.changed.clear()
                await self.changed.wait()

    @property
    def ids(self) -> list[str]:
        return [retry.delivery_id for _, retry in self.published]


def rounds(schedule: SqlRetrySchedule, recorder: Recorder) -> Callable[[datetime, int], Awaitable[int]]:
    return partial(service.publish_due, schedule=schedule, outbox=recorder)


@contextlib.asynccontextmanager
async def running(scheduler: Scheduler) -> AsyncIterator[None]:
    task = asyncio.create_task(scheduler.run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_adding_the_same_attempt_twice_stores_it_once(schedule: SqlRetrySchedule) -> None:
    retry = scheduled(10)
    assert (await schedule.add(retry, order_id=None)).status == "added"
    assert (await schedule.add(retry, order_id=None)).status == "duplicate"
    assert await schedule.pending() == 1


async def test_due_retries_are_published_earliest_first_and_then_removed(schedule: SqlRetrySchedule) -> None:
    later, sooner, future = scheduled(-1), scheduled(-2), scheduled(60)
    for retry in (later, sooner, future):
        await schedule.add(retry, order_id=None)
    recorder = Recorder()

    assert await rounds(schedule, recorder)(datetime.now(UTC), 100) == 2

    assert recorder.ids == [sooner.delivery_id, later.delivery_id]
    assert recorder.published[0][1].request == sooner.request
    assert await schedule.pending() == 1
    assert await schedule.next_due_at() == pytest.approx(future.due_at, abs=timedelta(milliseconds=1))


async def test_a_failed_publish_keeps_the_rows(schedule: SqlRetrySchedule) -> None:
    await schedule.add(scheduled(-1), order_id=None)
    recorder = Recorder()
    recorder.fail_next = 1

    with pytest.raises(TransientError):
        await rounds(schedule, recorder)(datetime.now(UTC), 100)

    assert await schedule.pending() == 1
    assert await rounds(schedule, recorder)(datetime.now(UTC), 100) == 1
    assert await schedule.pending() == 0


async def test_rows_survive_reopening_the_database(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'retry.db'}"
    retry = scheduled(30)
    async with SqlRetrySchedule.open(url) as first:
        await first.add(retry, order_id=None)
    async with SqlRetrySchedule.open(url) as second:
        assert await second.pending() == 1


async def test_scheduler_wakes_for_a_new_sooner_retry_while_sleeping_until_a_later_one(
    schedule: SqlRetrySchedule,
) -> None:
    recorder = Recorder()
    scheduler = Scheduler(schedule, recorder, idle_recheck_s=30)
    await schedule.add(scheduled(30), order_id=None)
    async with running(scheduler):
        await asyncio.sleep(0)
        sooner = scheduled(0.05)
        added_at = time.monotonic()
        await schedule.add(sooner, order_id=None)
        scheduler.notify()
        await recorder.wait_for(1)
    published_at, published = recorder.published[0]
    assert published.delivery_id == sooner.delivery_id
    assert 0.03 <= published_at - added_at < 1.0


async def test_scheduler_tries_again_after_a_publish_failure(schedule: SqlRetrySchedule) -> None:
    recorder = Recorder()
    recorder.fail_next = 2
    retry = scheduled(0)
    await schedule.add(retry, order_id=None)
    async with running(Scheduler(schedule, recorder, error_backoff_s=0.01)):
        await recorder.wait_for(1)
        async with asyncio.timeout(5):
            while await schedule.pending():  # deleted once the publish is confirmed
                await asyncio.sleep(0.01)
    assert recorder.ids == [retry.delivery_id]
