"""Destination health on the SQLite schedule: consecutive transient failures pause an opted-in integration as
unhealthy (once, with a scrubbed reason); a probe sends its oldest held request while the row keeps its place; a
probe's transient failure changes nothing, its success resumes the integration and releases the rest, oldest first;
an operator's resume starts the count again; a second tenant's integration of the same ID is counted apart."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    DeliveryStatus,
    IntegrationState,
    IntegrationStateChanged,
    OrderLine,
    RetryDelivery,
    StateChangeCause,
)
from relay_platform.tenants import TenantsConfig, load_tenants
from relay_retry import service
from relay_retry.adapters.schedule import SqlRetrySchedule
from relay_retry.domain import HEALTH_ACTOR, GiveUp, ScheduledRetry
from relay_retry.ports import PublishFailure

TENANTS = load_tenants(Path(__file__).parent.parent / "tenants.yaml")
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HEALTH_BLOCK = """\
        health:
          pause-after-failures: 3
          probe-interval-s: 0.2
          probe-max-interval-s: 0.5
"""


class Outbox:
    """Records the state changes, finals and (probe) requests published."""

    def __init__(self) -> None:
        self.changes: list[IntegrationStateChanged] = []
        self.finals: list[GiveUp] = []
        self.requested: list[ScheduledRetry] = []

    async def state_changes(self, changes: Sequence[IntegrationStateChanged]) -> None:
        self.changes.extend(changes)

    async def final(self, give_ups: Sequence[GiveUp]) -> None:
        self.finals.extend(give_ups)

    async def requests(self, due: Sequence[ScheduledRetry]) -> list[PublishFailure | None]:
        self.requested.extend(due)
        return [None for _ in due]


@pytest.fixture
async def schedule(tmp_path: Path) -> AsyncIterator[SqlRetrySchedule]:
    async with SqlRetrySchedule.open(f"sqlite+aiosqlite:///{tmp_path / 'retry.db'}") as opened:
        yield opened


def request(*, tenant: str = "rt", integration_id: str = "flaky-hook", attempt: int = 1) -> DeliverBundle:
    return DeliverBundle(
        delivery_id=uuid.uuid4().hex,
        trigger_id="t1",
        tenant=tenant,
        integration_id=integration_id,
        integration_type="zapier",
        recipe_id="999-abc",
        feed="order",
        reason="order_created",
        order=OrderLine(order_id=f"o-{uuid.uuid4().hex[:6]}", order_number="1022"),
        attempt=attempt,
        requested_at=NOW,
    )


def outcome(
    of: DeliverBundle,
    status: DeliveryStatus,
    *,
    error_class: str = "TransientError",
    error_message: str = "connection refused",
) -> DeliveryAttempted:
    failed = status != "succeeded"
    return DeliveryAttempted.of(
        of,
        status=status,
        final=status != "retrying",
        occurred_at=NOW,
        error_class=error_class if failed else None,
        error_message=error_message if failed else None,
    )


def change(
    state: IntegrationState, at: datetime, *, cause: StateChangeCause = "operator", integration_id: str = "flaky-hook"
) -> IntegrationStateChanged:
    return IntegrationStateChanged(
        event_id=uuid.uuid4().hex, tenant="rt", integration_id=integration_id, state=state, cause=cause, changed_at=at
    )


async def seen(
    schedule: SqlRetrySchedule,
    outbox: Outbox,
    attempt: DeliveryAttempted,
    *,
    at: datetime = NOW,
    tenants: TenantsConfig = TENANTS,
) -> IntegrationStateChanged | None:
    return await service.record_outcome(attempt, tenants=tenants, schedule=schedule, outbox=outbox, now=at)


async def read_back(schedule: SqlRetrySchedule, state_change: IntegrationStateChanged, *, at: datetime) -> int:
    return await service.record_integration_state(state_change, schedule=schedule, now=at)


async def hold(schedule: SqlRetrySchedule, outbox: Outbox, held: DeliverBundle, *, at: datetime) -> None:
    command = RetryDelivery(
        request=held, error_class="IntegrationPaused", error_message="held", failed_at=at, hold="paused"
    )
    await service.hold_request(command, schedule=schedule, outbox=outbox, now=at)


async def probe(schedule: SqlRetrySchedule, outbox: Outbox, *, at: datetime, tenants: TenantsConfig = TENANTS) -> int:
    return await service.probe_unhealthy(at, 100, tenants=tenants, schedule=schedule, outbox=outbox)


async def unhealthy(schedule: SqlRetrySchedule, outbox: Outbox) -> IntegrationStateChanged:
    """Three transient failures: the integration is paused as unhealthy at ``NOW``, and that pause is read back."""
    for _ in range(3):
        decided = await seen(schedule, outbox, outcome(request(), "retrying"))
    assert decided is not None
    await read_back(schedule, decided, at=NOW)
    return decided


async def test_consecutive_transient_failures_pause_the_integration_once_with_a_scrubbed_reason(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    secret = "https://hooks.zapier.com/hooks/catch/123456/abcdef/"
    assert await seen(schedule, outbox, outcome(request(), "retrying")) is None
    assert await seen(schedule, outbox, outcome(request(), "retrying")) is None
    # A success in between starts the count again.
    assert await seen(schedule, outbox, outcome(request(), "succeeded")) is None
    assert await seen(schedule, outbox, outcome(request(), "retrying")) is None
    assert await seen(schedule, outbox, outcome(request(), "retrying")) is None
    paused = await seen(schedule, outbox, outcome(request(), "retrying", error_message=f"POST {secret}: 503"))
    again = await seen(schedule, outbox, outcome(request(), "retrying"))

    assert paused is not None
    assert again is None
    assert outbox.changes == [paused]
    assert (paused.tenant, paused.integration_id, paused.state, paused.cause) == (
        "rt",
        "flaky-hook",
        "paused",
        "unhealthy",
    )
    assert paused.changed_by == HEALTH_ACTOR
    assert paused.changed_at == NOW
    assert paused.reason is not None
    assert paused.reason.startswith("3 consecutive failed attempts; last: TransientError: POST ")
    assert "abcdef" not in paused.reason
    assert len(paused.reason) <= 200
    health = await schedule.health("rt", "flaky-hook")
    assert health is not None
    assert (health.consecutive_failures, health.unhealthy_since, health.probes) == (4, NOW, 0)
    assert health.next_probe_at == NOW + timedelta(seconds=0.2)


async def test_permanent_failures_other_integrations_and_another_tenant_are_counted_apart(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    for _ in range(5):
        # Refused for good (a request or configuration problem): holding deliveries would not mend it.
        await seen(schedule, outbox, outcome(request(), "failed", error_class="PermanentError"))
        # No health policy: not counted, nothing stored.
        await seen(schedule, outbox, outcome(request(integration_id="fast-hook"), "retrying"))
    for _ in range(2):
        await seen(schedule, outbox, outcome(request(), "retrying"))
        await seen(schedule, outbox, outcome(request(tenant="rt2"), "retrying"))

    assert outbox.changes == []
    assert await schedule.health("rt", "fast-hook") is None
    first, second = await schedule.health("rt", "flaky-hook"), await schedule.health("rt2", "flaky-hook")
    assert first is not None
    assert second is not None
    assert (first.consecutive_failures, second.consecutive_failures) == (2, 2)


async def test_an_integration_an_operator_paused_is_not_paused_again(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    await read_back(schedule, change("paused", NOW - timedelta(minutes=1)), at=NOW)
    for _ in range(4):
        assert await seen(schedule, outbox, outcome(request(), "retrying")) is None
    assert outbox.changes == []
    assert await probe(schedule, outbox, at=NOW + timedelta(hours=1)) == 0


async def test_a_probe_sends_the_oldest_held_request_until_one_succeeds_then_the_rest_go_oldest_first(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    oldest, newer = request(attempt=2), request()
    other_tenants = request(tenant="rt2")
    await hold(schedule, outbox, oldest, at=NOW)
    await unhealthy(schedule, outbox)
    await hold(schedule, outbox, newer, at=NOW)
    await hold(schedule, outbox, other_tenants, at=NOW)

    assert await probe(schedule, outbox, at=NOW + timedelta(seconds=0.1)) == 0  # not due yet
    assert await probe(schedule, outbox, at=NOW + timedelta(seconds=0.2)) == 1
    [first] = outbox.requested
    assert (first.delivery_id, first.attempt, first.request.probe) == (oldest.delivery_id, 2, True)
    # The row stays held, in its place: a probe is not a release.
    assert await schedule.pending(held=True) == 3

    # The destination is still down: the deliverer publishes the outcome and holds the request again.
    assert await seen(schedule, outbox, outcome(first.request, "retrying"), at=NOW + timedelta(seconds=0.3)) is None
    await hold(schedule, outbox, first.request.model_copy(update={"probe": False}), at=NOW + timedelta(seconds=0.3))
    assert await schedule.pending(held=True) == 3
    health = await schedule.health("rt", "flaky-hook")
    assert health is not None
    assert (health.probes, health.next_probe_at) == (1, NOW + timedelta(seconds=0.6))  # 0.2, then doubled

    assert await probe(schedule, outbox, at=NOW + timedelta(seconds=0.6)) == 1
    second = outbox.requested[-1]
    assert second.delivery_id == oldest.delivery_id  # the oldest again, never the other tenant's
    health = await schedule.health("rt", "flaky-hook")
    assert health is not None
    assert health.next_probe_at == NOW + timedelta(seconds=1.1)  # capped at probe-max-interval-s 0.5

    resumed = await seen(schedule, outbox, outcome(second.request, "succeeded"), at=NOW + timedelta(seconds=0.7))
    assert resumed is not None
    assert (resumed.state, resumed.cause, resumed.changed_by) == ("active", "recovered", HEALTH_ACTOR)
    assert await schedule.pending(oldest.delivery_id) == 0  # delivered by the probe: not sent again
    assert await read_back(schedule, resumed, at=NOW + timedelta(seconds=0.7)) == 1
    assert await service.publish_due(NOW + timedelta(seconds=1), 10, schedule=schedule, outbox=outbox) == 1
    assert outbox.requested[-1].delivery_id == newer.delivery_id
    assert not outbox.requested[-1].request.probe
    assert await schedule.pending(other_tenants.delivery_id, held=True) == 1
    health = await schedule.health("rt", "flaky-hook")
    assert health is not None
    assert (health.unhealthy, health.consecutive_failures, health.next_probe_at) == (False, 0, None)


async def test_an_operators_resume_lets_go_and_the_count_starts_again(schedule: SqlRetrySchedule) -> None:
    outbox = Outbox()
    await unhealthy(schedule, outbox)
    await hold(schedule, outbox, request(), at=NOW)

    assert await read_back(schedule, change("active", NOW + timedelta(seconds=1)), at=NOW + timedelta(seconds=1)) == 1
    assert await probe(schedule, outbox, at=NOW + timedelta(hours=1)) == 0
    assert outbox.requested == []
    for _ in range(2):
        assert await seen(schedule, outbox, outcome(request(), "retrying")) is None
    assert await seen(schedule, outbox, outcome(request(), "retrying")) is not None  # a full count again


async def test_no_probe_before_the_pause_is_read_back_and_none_once_an_operator_paused_it_since(
    schedule: SqlRetrySchedule,
) -> None:
    outbox = Outbox()
    for _ in range(3):
        paused = await seen(schedule, outbox, outcome(request(), "retrying"))
    assert paused is not None
    await hold(schedule, outbox, request(), at=NOW)

    # Our own pause not read back yet: the deliverers may not hold yet either, so nothing is probed.
    assert await probe(schedule, outbox, at=NOW + timedelta(seconds=0.2)) == 1
    assert outbox.requested == []
    health = await schedule.health("rt", "flaky-hook")
    assert health is not None
    assert health.next_probe_at == NOW + timedelta(seconds=0.4)

    await read_back(schedule, paused, at=NOW)
    await read_back(schedule, change("paused", NOW + timedelta(seconds=0.3)), at=NOW)  # the operator takes over
    assert await probe(schedule, outbox, at=NOW + timedelta(seconds=0.4)) == 1
    assert outbox.requested == []
    health = await schedule.health("rt", "flaky-hook")
    assert health is not None
    assert (health.unhealthy, health.next_probe_at) == (False, None)


async def test_health_turned_off_while_unhealthy_resumes_the_integration(
    schedule: SqlRetrySchedule, tmp_path: Path
) -> None:
    outbox = Outbox()
    await unhealthy(schedule, outbox)
    config = (Path(__file__).parent.parent / "tenants.yaml").read_text()
    without = tmp_path / "tenants.yaml"
    without.write_text(config.replace(HEALTH_BLOCK, ""))
    tenants = load_tenants(without)
    assert tenants.integration("rt", "flaky-hook") is not None

    assert await probe(schedule, outbox, at=NOW + timedelta(seconds=0.2), tenants=tenants) == 1

    resumed = outbox.changes[-1]
    assert (resumed.state, resumed.cause, resumed.integration_id) == ("active", "recovered", "flaky-hook")
    assert outbox.requested == []


async def test_outcomes_older_than_the_window_are_history_not_health(schedule: SqlRetrySchedule) -> None:
    """A group new to the outcomes topic reads it from the beginning: months of old failures pause nothing."""
    outbox = Outbox()
    for _ in range(5):
        old = await seen(schedule, outbox, outcome(request(), "retrying"), at=NOW + timedelta(minutes=16))
        assert old is None
    assert outbox.changes == []
    assert await schedule.health("rt", "flaky-hook") is None
    for _ in range(3):
        fresh = await seen(schedule, outbox, outcome(request(), "retrying"), at=NOW + timedelta(minutes=14))
    assert fresh is not None  # within the window, counted as ever
