"""Requests held while their integration is paused (SQLite file): kept, not due, not an attempt; a resume releases
them oldest first; a hold read after the resume is due a moment later; stale changes are ignored; a cancelled order
still ends its held requests with a final failure."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relay_contracts.messages import (
    DeliverBundle,
    IntegrationStateChanged,
    OrderEventOccurred,
    OrderEventType,
    OrderLine,
    RetryDelivery,
)
from relay_contracts.messages import IntegrationState as State
from relay_platform.tenants import load_tenants
from relay_retry import service
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import ORDER_CANCELLED, GiveUp, ScheduledRetry
from relay_retry.ports import AddResult, PublishFailure, RetryPorts

TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")


class Outbox:
    """Records finals and requests."""

    def __init__(self) -> None:
        self.finals: list[GiveUp] = []
        self.changes: list[IntegrationStateChanged] = []
        self.requested: list[ScheduledRetry] = []

    async def state_changes(self, changes: Sequence[IntegrationStateChanged]) -> None:
        self.changes.extend(changes)

    async def final(self, give_ups: Sequence[GiveUp]) -> None:
        self.finals.extend(give_ups)

    async def requests(self, due: Sequence[ScheduledRetry]) -> list[PublishFailure | None]:
        self.requested.extend(due)
        return [None for _ in due]

    def final_for(self, delivery_id: str) -> list[GiveUp]:
        return [give_up for give_up in self.finals if give_up.outcome.delivery_id == delivery_id]


def order_event(kind: OrderEventType, at: datetime, *, order_id: str, tenant: str = "rt") -> OrderEventOccurred:
    return OrderEventOccurred(
        event_id=uuid.uuid4().hex, tenant=tenant, type=kind, order_id=order_id, order_number="1022", occurred_at=at
    )


async def event_in(schedule: SqlRetrySchedule, outbox: Outbox, event: OrderEventOccurred) -> tuple[GiveUp, ...]:
    return await service.record_order_event(event, schedule=schedule, outbox=outbox, now=datetime.now(UTC))


@pytest.fixture
async def schedule(tmp_path: Path) -> AsyncIterator[SqlRetrySchedule]:
    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{tmp_path / 'retry.db'}") as opened:
        yield opened


def held(
    *, tenant: str = "rt", integration_id: str = "fast-hook", attempt: int = 2, order_id: str = "o1"
) -> RetryDelivery:
    request = DeliverBundle(
        delivery_id=uuid.uuid4().hex,
        trigger_id="t1",
        tenant=tenant,
        integration_id=integration_id,
        integration_type="zapier",
        recipe_id="999-abc",
        feed="order",
        reason="order_created",
        order=OrderLine(order_id=order_id, order_number="1022"),
        attempt=attempt,
        requested_at=datetime.now(UTC),
    )
    return RetryDelivery(
        request=request,
        error_class="IntegrationPaused",
        error_message="integration paused; held",
        failed_at=datetime.now(UTC),
        hold="paused",
    )


def change(
    state: State, at: datetime, *, tenant: str = "rt", integration_id: str = "fast-hook"
) -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex, tenant=tenant, integration_id=integration_id, state=state, changed_at=at
    )


async def hold_in(
    schedule: SqlRetrySchedule, outbox: Outbox, retry: RetryDelivery, now: datetime
) -> service.RetryHandled:
    return await service.hold_request(retry, schedule=schedule, outbox=outbox, now=now)


async def due_ids(schedule: SqlRetrySchedule, now: datetime) -> list[str]:
    async with schedule.transaction() as tx:
        return [row.delivery_id for row in await tx.due(now, 100)]


async def test_a_hold_while_paused_is_kept_not_due_and_not_an_attempt(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    now = datetime.now(UTC)
    await service.record_integration_state(change("paused", now - timedelta(minutes=5)), schedule=schedule, now=now)
    retry = held(attempt=3)

    handled = await hold_in(schedule, outbox, retry, now)

    assert handled.add == AddResult("added")
    assert handled.scheduled is not None
    assert handled.scheduled.attempt == 3
    assert await schedule.pending(held=True) == 1
    assert await due_ids(schedule, now + timedelta(days=365)) == []
    assert await schedule.next_due_at() is None
    assert outbox.finals == []


async def test_a_retry_command_with_hold_goes_to_the_hold_and_ignores_the_attempt_limit(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    # Far past fast-hook's max attempts: a failure would give up, a hold is kept.
    retry = held(attempt=50)

    handled = await service.handle_retry_command(
        retry.model_dump_json(by_alias=True).encode(),
        RetryPorts(tenants=TENANTS, schedule=schedule, outbox=outbox, wake=_NoWake(), rng=random.Random(1)),
        now=datetime.now(UTC),
    )

    assert handled.give_up is None
    assert outbox.finals == []
    assert await schedule.pending(retry.request.delivery_id, held=True) == 1


class _NoWake:
    def notify(self) -> None:
        pass


async def test_a_resume_releases_the_held_requests_in_the_order_they_were_stored(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await service.record_integration_state(change("paused", t0), schedule=schedule, now=t0)
    retries = [held() for _ in range(4)]
    for retry in retries:
        await hold_in(schedule, outbox, retry, t0)

    released = await service.record_integration_state(
        change("active", t0 + timedelta(seconds=1)), schedule=schedule, now=t0 + timedelta(seconds=2)
    )

    assert released == 4
    assert await schedule.pending(held=True) == 0
    assert await due_ids(schedule, t0 + timedelta(seconds=3)) == [r.request.delivery_id for r in retries]
    state = await schedule.integration_state("rt", "fast-hook")
    assert state is not None
    assert state.state == "active"


async def test_a_hold_read_after_the_resume_is_due_a_moment_later(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await service.record_integration_state(change("paused", t0), schedule=schedule, now=t0)
    await service.record_integration_state(change("active", t0 + timedelta(seconds=1)), schedule=schedule, now=t0)
    retry = held()

    # The deliverer had not read the resume yet when it held this request.
    handled = await hold_in(schedule, outbox, retry, t0 + timedelta(seconds=2))

    assert handled.scheduled is not None
    assert not handled.scheduled.held
    # Not at once: a deliverer still behind would hold it again in a loop; a second later it has read the resume.
    assert await due_ids(schedule, t0 + timedelta(seconds=2)) == []
    assert await due_ids(schedule, t0 + timedelta(seconds=3)) == [retry.request.delivery_id]


async def test_a_hold_read_before_any_state_is_released_by_the_next_resume(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    retry = held()
    await hold_in(schedule, outbox, retry, t0)
    assert await schedule.pending(held=True) == 1

    await service.record_integration_state(change("paused", t0), schedule=schedule, now=t0)
    assert await schedule.pending(held=True) == 1
    await service.record_integration_state(change("active", t0 + timedelta(seconds=1)), schedule=schedule, now=t0)

    assert await due_ids(schedule, t0 + timedelta(seconds=1)) == [retry.request.delivery_id]


async def test_stale_resume_and_stale_pause_are_ignored(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await service.record_integration_state(change("paused", t0), schedule=schedule, now=t0)
    retry = held()
    await hold_in(schedule, outbox, retry, t0)

    # A resume older than the pause changes nothing and releases nothing.
    assert (
        await service.record_integration_state(change("active", t0 - timedelta(seconds=1)), schedule=schedule, now=t0)
        == 0
    )
    assert await schedule.pending(held=True) == 1

    await service.record_integration_state(change("active", t0 + timedelta(seconds=5)), schedule=schedule, now=t0)
    # A pause older than that resume is ignored too: a later hold is due at once.
    await service.record_integration_state(change("paused", t0 + timedelta(seconds=2)), schedule=schedule, now=t0)
    state = await schedule.integration_state("rt", "fast-hook")
    assert state is not None
    assert state.state == "active"
    late = held()
    await hold_in(schedule, outbox, late, t0)
    assert await schedule.pending(held=True) == 0


async def test_a_cancelled_order_ends_its_held_requests_with_a_final_failure(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await service.record_integration_state(change("paused", t0), schedule=schedule, now=t0)
    retry = held(order_id="o-held")
    await hold_in(schedule, outbox, retry, t0)

    ended = await event_in(schedule, outbox, order_event("cancelled", t0, order_id="o-held"))

    assert [give_up.outcome.error_class for give_up in ended] == [ORDER_CANCELLED]
    assert await schedule.pending() == 0
    # A hold arriving after the cancellation is refused with its final failure too.
    late = held(order_id="o-held")
    handled = await hold_in(schedule, outbox, late, t0)
    assert handled.add is not None
    assert handled.add.status == "order_cancelled"
    assert [g.outcome.final for g in outbox.final_for(late.request.delivery_id)] == [True]
    assert await schedule.pending() == 0


async def test_a_resume_never_releases_another_tenants_or_integrations_requests(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    for tenant, integration in (("rt", "fast-hook"), ("other", "fast-hook"), ("rt", "slow-hook")):
        await service.record_integration_state(
            change("paused", t0, tenant=tenant, integration_id=integration), schedule=schedule, now=t0
        )
        await hold_in(schedule, outbox, held(tenant=tenant, integration_id=integration), t0)

    await service.record_integration_state(
        change("active", t0 + timedelta(seconds=1), tenant="other"), schedule=schedule, now=t0
    )

    assert await schedule.pending(held=True) == 2
    assert len(await due_ids(schedule, t0 + timedelta(seconds=1))) == 1


async def test_a_duplicate_hold_adds_nothing(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    t0 = datetime.now(UTC)
    await service.record_integration_state(change("paused", t0), schedule=schedule, now=t0)
    retry = held()

    assert (await hold_in(schedule, outbox, retry, t0)).add == AddResult("added")
    assert (await hold_in(schedule, outbox, retry, t0)).add == AddResult("duplicate")

    assert await schedule.pending() == 1
    assert outbox.finals == []
