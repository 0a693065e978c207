"""The SQL schedule on a real PostgreSQL: several replicas share due retries, each published by one of them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from relay_contracts.messages import DeliverBundle, OrderLine
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.service import ScheduledRetry
from relay_testing.postgres import PostgresServer

pytestmark = pytest.mark.integration


def scheduled(due_in_s: float, *, order_id: str = "o1") -> ScheduledRetry:
    delivery_id = uuid.uuid4().hex
    request = DeliverBundle(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant="rt",
        integration_id="fast-hook",
        integration_type="zapier",
        recipe_id="999-abc",
        feed="order",
        reason="order_created",
        order=OrderLine(order_id=order_id, order_number="1022"),
        attempt=2,
        requested_at=datetime.now(UTC),
    )
    return ScheduledRetry(request=request, due_at=datetime.now(UTC) + timedelta(seconds=due_in_s))


@pytest.fixture(scope="module")
def database_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database(f"retry_{uuid.uuid4().hex[:8]}")


@pytest.fixture
async def replicas(database_url: str) -> AsyncIterator[tuple[SqlRetrySchedule, SqlRetrySchedule]]:
    async with SqlRetrySchedule.open(database_url) as first, SqlRetrySchedule.open(database_url) as second:
        yield first, second


async def test_a_retry_being_published_by_one_replica_is_skipped_by_another(
    replicas: tuple[SqlRetrySchedule, SqlRetrySchedule],
) -> None:
    first, second = replicas
    retry = scheduled(-1)
    assert await first.add(retry, order_id="o1")
    assert not await second.add(retry, order_id="o1")
    publishing, release = asyncio.Event(), asyncio.Event()
    by_first: list[str] = []
    by_second: list[str] = []

    async def slow_publish(due: Sequence[ScheduledRetry]) -> None:
        by_first.extend(r.delivery_id for r in due)
        publishing.set()
        await release.wait()

    async def publish(due: Sequence[ScheduledRetry]) -> None:
        by_second.extend(r.delivery_id for r in due)

    holder = asyncio.create_task(first.publish_due(datetime.now(UTC), 10, slow_publish))
    async with asyncio.timeout(10):
        await publishing.wait()
    assert await second.publish_due(datetime.now(UTC), 10, publish) == 0
    release.set()
    assert await holder == 1

    assert by_first == [retry.delivery_id]
    assert by_second == []
    assert await second.pending() == 0


async def test_cancel_and_next_due_on_postgres(replicas: tuple[SqlRetrySchedule, SqlRetrySchedule]) -> None:
    first, _ = replicas
    order = f"o-{uuid.uuid4().hex[:6]}"
    later = scheduled(60, order_id=order)
    await first.add(later, order_id=order)
    due = await first.next_due_at()
    assert due is not None
    assert due <= later.due_at + timedelta(milliseconds=1)
    assert await first.cancel_order("rt", order) == 1
