"""The SQL schedule on a real PostgreSQL: several replicas share due retries, each published by one of them; order
states by occurredAt; a cancelled order's retries end with final failures."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationState,
    IntegrationStateChanged,
    OrderEventOccurred,
    OrderEventType,
    OrderLine,
    RetryDelivery,
)
from relay_platform.tenants import load_tenants
from relay_retry import service
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import ORDER_CANCELLED, GiveUp, IntegrationStatus, ScheduledRetry
from relay_retry.ports import AddResult, PublishFailure
from relay_testing.postgres import PostgresServer

pytestmark = pytest.mark.integration


HOSTILE_ORDER = "ø" * 64 + "订" * 64  # 128 characters, none ASCII


def scheduled(due_in_s: float, *, order_id: str = "o1", tenant: str = "rt") -> ScheduledRetry:
    delivery_id = uuid.uuid4().hex
    request = DeliverBundle(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant=tenant,
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


class Outbox:
    """Records finals and requests; ``before_requests`` (if set) is awaited first, so a test can hold a round."""

    def __init__(self) -> None:
        self.finals: list[GiveUp] = []
        self.changes: list[IntegrationStateChanged] = []
        self.requested: list[str] = []
        self.before_requests: Callable[[], Awaitable[None]] | None = None

    async def state_changes(self, changes: Sequence[IntegrationStateChanged]) -> None:
        self.changes.extend(changes)

    async def final(self, give_ups: Sequence[GiveUp]) -> None:
        self.finals.extend(give_ups)

    async def requests(self, due: Sequence[ScheduledRetry]) -> list[PublishFailure | None]:
        if self.before_requests is not None:
            await self.before_requests()
        self.requested.extend(retry.delivery_id for retry in due)
        return [None for _ in due]


def order_event(kind: OrderEventType, at: datetime, *, order_id: str, tenant: str = "rt") -> OrderEventOccurred:
    return OrderEventOccurred(
        event_id=uuid.uuid4().hex, tenant=tenant, type=kind, order_id=order_id, order_number="1022", occurred_at=at
    )


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
    assert await first.add(retry, order_id="o1") == AddResult("added")
    assert await second.add(retry, order_id="o1") == AddResult("duplicate")
    publishing, release = asyncio.Event(), asyncio.Event()
    slow, quick = Outbox(), Outbox()

    async def hold() -> None:
        publishing.set()
        await release.wait()

    slow.before_requests = hold
    holder = asyncio.create_task(service.publish_due(datetime.now(UTC), 10, schedule=first, outbox=slow))
    async with asyncio.timeout(10):
        await publishing.wait()
    assert await service.publish_due(datetime.now(UTC), 10, schedule=second, outbox=quick) == 0
    release.set()
    assert await holder == 1

    assert slow.requested == [retry.delivery_id]
    assert quick.requested == []
    assert await second.pending() == 0


async def test_cancel_and_next_due_on_postgres(replicas: tuple[SqlRetrySchedule, SqlRetrySchedule]) -> None:
    first, _ = replicas
    order = f"o-{uuid.uuid4().hex[:6]}"
    later = scheduled(60, order_id=order)
    await first.add(later, order_id=order)
    due = await first.next_due_at()
    assert due is not None
    assert due <= later.due_at + timedelta(milliseconds=1)
    outbox = Outbox()
    ended = await service.record_order_event(
        order_event("cancelled", datetime.now(UTC), order_id=order),
        schedule=first,
        outbox=outbox,
        now=datetime.now(UTC),
    )
    assert [give_up.outcome.delivery_id for give_up in ended] == [later.delivery_id]
    assert await first.pending(later.delivery_id) == 0


async def test_order_states_by_occurred_at_on_postgres(replicas: tuple[SqlRetrySchedule, SqlRetrySchedule]) -> None:
    first, second = replicas
    outbox = Outbox()
    now = datetime.now(UTC)
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    latest = datetime(9998, 12, 30, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(hours=23, minutes=59)))
    earliest = datetime(1, 1, 2, tzinfo=timezone(timedelta(hours=23, minutes=59)))
    mine, theirs = scheduled(60, order_id=HOSTILE_ORDER, tenant=tenant), scheduled(60, order_id=HOSTILE_ORDER)
    assert await first.add(mine, order_id=HOSTILE_ORDER) == AddResult("added")
    assert await first.add(theirs, order_id=HOSTILE_ORDER) == AddResult("added")

    await service.record_order_event(
        order_event("created", latest, order_id=HOSTILE_ORDER, tenant=tenant), schedule=first, outbox=outbox, now=now
    )
    stale = await service.record_order_event(
        order_event("cancelled", earliest, order_id=HOSTILE_ORDER, tenant=tenant),
        schedule=second,
        outbox=outbox,
        now=now,
    )

    assert stale == ()
    state = await second.order_state(tenant, HOSTILE_ORDER)
    assert state is not None
    assert (state.status, state.status_at, state.status_at.utcoffset()) == ("open", latest, latest.utcoffset())
    assert await first.pending(mine.delivery_id) == 1
    assert await first.order_state("rt", HOSTILE_ORDER) is None

    cancelled_at = latest
    await service.record_order_event(
        order_event("created", earliest, order_id=HOSTILE_ORDER), schedule=first, outbox=outbox, now=now
    )
    ended = await service.record_order_event(
        order_event("cancelled", cancelled_at, order_id=HOSTILE_ORDER), schedule=second, outbox=outbox, now=now
    )
    # Only tenant "rt"'s retry of that order ID ends; the other tenant's stays.
    assert [give_up.outcome.delivery_id for give_up in ended] == [theirs.delivery_id]
    assert await first.pending(mine.delivery_id) == 1
    refused = await first.add(scheduled(60, order_id=HOSTILE_ORDER), order_id=HOSTILE_ORDER)
    assert refused.status == "order_cancelled"
    assert refused.order is not None
    assert refused.order.status_at == cancelled_at


async def test_due_retry_of_an_order_cancelled_meanwhile_ends_on_postgres(
    replicas: tuple[SqlRetrySchedule, SqlRetrySchedule],
) -> None:
    first, second = replicas
    order = f"o-{uuid.uuid4().hex[:6]}"
    retry, other = scheduled(-1, order_id=order), scheduled(-1, order_id=f"{order}-other")
    await service.record_order_event(
        order_event("cancelled", datetime.now(UTC), order_id=order),
        schedule=second,
        outbox=Outbox(),
        now=datetime.now(UTC),
    )
    async with first.transaction() as tx:  # as stored by a replica that had not seen the cancellation
        assert await tx.insert(retry, order_id=order)
    await first.add(other, order_id=other.request.order.order_id if other.request.order else None)
    outbox = Outbox()

    # The outer join to the order states and FOR UPDATE OF the schedule only: valid on PostgreSQL.
    assert await service.publish_due(datetime.now(UTC), 100, schedule=first, outbox=outbox) >= 2

    assert other.delivery_id in outbox.requested
    assert retry.delivery_id not in outbox.requested
    [end] = [give_up for give_up in outbox.finals if give_up.outcome.delivery_id == retry.delivery_id]
    assert end.outcome.error_class == ORDER_CANCELLED


async def test_cancellations_of_the_previous_version_count_on_postgres(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database(f"retry_old_{uuid.uuid4().hex[:8]}")
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("CREATE TABLE cancelled_orders (tenant VARCHAR(128), order_id VARCHAR(128), cancelled_at FLOAT)")
            )
            await connection.execute(text("INSERT INTO cancelled_orders VALUES ('rt', 'o-old', 1700000000.5)"))
    finally:
        await engine.dispose()
    async with SqlRetrySchedule.open(url) as schedule:
        refused = await schedule.add(scheduled(60, order_id="o-old"), order_id="o-old")
        assert refused.status == "order_cancelled"
        assert await schedule.add(scheduled(60, order_id="o-new"), order_id="o-new") == AddResult("added")


# --- paused integrations ---------------------------------------------------------------------------------------


def hold_of(tenant: str) -> RetryDelivery:
    retry = scheduled(0, tenant=tenant)
    return RetryDelivery(
        request=retry.request,
        error_class="IntegrationPaused",
        error_message="held",
        failed_at=datetime.now(UTC),
        hold="paused",
    )


def integration_change(state: IntegrationState, at: datetime, *, tenant: str) -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex, tenant=tenant, integration_id="fast-hook", state=state, changed_at=at
    )


async def due_ids(schedule: SqlRetrySchedule, now: datetime) -> list[str]:
    async with schedule.transaction() as tx:
        return [row.delivery_id for row in await tx.due(now, 100)]


async def test_held_requests_wait_for_the_resume_and_go_oldest_first_on_postgres(
    replicas: tuple[SqlRetrySchedule, SqlRetrySchedule],
) -> None:
    first, second = replicas
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    await service.record_integration_state(
        integration_change("paused", t0, tenant=tenant), schedule=first, now=datetime.now(UTC)
    )
    holds = [hold_of(tenant) for _ in range(3)]
    for hold in holds:
        handled = await service.hold_request(hold, schedule=second, outbox=Outbox(), now=datetime.now(UTC))
        assert handled.add == AddResult("added")
    assert await first.pending(held=True) >= 3
    assert not set(await due_ids(first, datetime.now(UTC) + timedelta(days=1))) & {h.request.delivery_id for h in holds}

    released = await service.record_integration_state(
        integration_change("active", t0 + timedelta(seconds=1), tenant=tenant), schedule=second, now=datetime.now(UTC)
    )

    assert released == 3
    mine = {h.request.delivery_id for h in holds}
    due = [d for d in await due_ids(first, datetime.now(UTC) + timedelta(seconds=1)) if d in mine]
    assert due == [h.request.delivery_id for h in holds]


async def test_a_hold_racing_the_resume_waits_for_it_and_is_due_on_postgres(
    replicas: tuple[SqlRetrySchedule, SqlRetrySchedule], database_url: str
) -> None:
    first, second = replicas
    tenant = f"t-{uuid.uuid4().hex[:6]}"
    t0 = datetime.now(UTC)
    hold = hold_of(tenant)
    engine = create_async_engine(database_url)
    try:
        # The resume's transaction is open (lock taken, state written, nothing committed) when the hold arrives.
        async with first.transaction() as tx:
            await tx.lock_integration(tenant, "fast-hook")
            current = await tx.load_integration(tenant, "fast-hook")
            assert current is None  # no state known yet: without the lock, the hold would be stored held for good
            await tx.save_integration(IntegrationStatus(tenant, "fast-hook", "active", t0))
            holding = asyncio.create_task(
                service.hold_request(hold, schedule=second, outbox=Outbox(), now=datetime.now(UTC))
            )
            async with asyncio.timeout(10):
                while True:
                    async with engine.connect() as probe:
                        waiting = await probe.scalar(
                            text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
                        )
                    if waiting:
                        break
                    await asyncio.sleep(0.02)
            await tx.release_held(tenant, "fast-hook", now=datetime.now(UTC))
        handled = await holding
    finally:
        await engine.dispose()

    assert handled.scheduled is not None
    assert not handled.scheduled.held
    assert hold.request.delivery_id in await due_ids(first, datetime.now(UTC) + timedelta(seconds=2))


# --- destination health ----------------------------------------------------------------------------------------

HEALTH_TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")


async def test_health_is_counted_across_replicas_and_a_due_probe_is_sent_by_one_of_them_on_postgres(
    replicas: tuple[SqlRetrySchedule, SqlRetrySchedule],
) -> None:
    first, second = replicas
    now = datetime.now(UTC)
    outbox = Outbox()

    def failed_attempt() -> DeliveryAttempted:
        request = scheduled(0, tenant="rt2").request.model_copy(update={"integration_id": "flaky-hook"})
        return DeliveryAttempted.of(
            request, status="retrying", final=False, occurred_at=now, error_class="TransientError", error_message="503"
        )

    decided = [
        await service.record_outcome(failed_attempt(), tenants=HEALTH_TENANTS, schedule=replica, outbox=outbox, now=now)
        for replica in (first, second, first)
    ]
    assert decided[:2] == [None, None]
    paused = decided[2]
    assert paused is not None
    assert (paused.state, paused.cause) == ("paused", "unhealthy")
    await service.record_integration_state(paused, schedule=second, now=now)
    hold = hold_of("rt2")
    hold = hold.model_copy(update={"request": hold.request.model_copy(update={"integration_id": "flaky-hook"})})
    await service.hold_request(hold, schedule=first, outbox=outbox, now=now)

    due = now + timedelta(seconds=0.2)
    async with first.transaction() as tx:
        assert [h.integration_id for h in await tx.due_probes(due, 10)] == ["flaky-hook"]
        # Locked by the first replica's round: the second skips it rather than probing the same delivery.
        assert await service.probe_unhealthy(due, 10, tenants=HEALTH_TENANTS, schedule=second, outbox=outbox) == 0
    assert await service.probe_unhealthy(due, 10, tenants=HEALTH_TENANTS, schedule=first, outbox=outbox) == 1
    [probe] = outbox.requested
    assert probe == hold.request.delivery_id
    health = await second.health("rt2", "flaky-hook")
    assert health is not None
    assert (health.probes, health.consecutive_failures) == (1, 3)
    assert await second.next_probe_at() == due + timedelta(seconds=0.4)
