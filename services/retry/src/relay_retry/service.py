"""The retry service's use cases, broker- and SQL-free: ports come in as arguments, rules from ``domain``.

One per inbound message (``handle_retry_command``, ``record_order_event``, ``record_integration_state``) and one per
scheduler round (``publish_due``). Each publishes what the rules decided through the ``Outbox`` port and awaits the
broker's confirmation before its transaction commits (rows deleted) or its handler returns (offset committed): a
crash in between repeats the publish, which is harmless (deliveries are idempotent, the notifier sends one notice
per delivery and status). They publish themselves, rather than return messages for the handler to publish, because a
final outcome must be confirmed while the rows it ends are still locked, before the transaction commits.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pydantic import ValidationError

from relay_contracts.messages import DeliveryAttempted, IntegrationStateChanged, OrderEventOccurred, RetryDelivery
from relay_platform.errors import TransientError
from relay_platform.tenants import HealthPolicy, RetryPolicy, TenantsConfig
from relay_retry import domain
from relay_retry.domain import GiveUp, IntegrationHealth, ScheduledRetry
from relay_retry.ports import AddResult, Outbox, RetryPorts, RetrySchedule

logger = logging.getLogger("relay.retry")


@dataclass(frozen=True, slots=True)
class RetryHandled:
    """What became of one retry command: ``scheduled`` is set unless the delivery was given up."""

    scheduled: ScheduledRetry | None
    add: AddResult | None
    give_up: GiveUp | None


# --- deliveries.retry.v1 ---------------------------------------------------------------------------------------


async def handle_retry_command(
    body: bytes, ports: RetryPorts, *, now: datetime, trace_parent: str | None = None
) -> RetryHandled:
    """Decode a retry command and schedule its delivery's next attempt (``schedule_retry``); the scheduler is
    woken when a row was added. ``trace_parent`` is the command's trace, kept with the scheduled attempt.

    A command the contract rejects still ends its delivery when the request inside can be read: its final
    failure is published, then the ``ValidationError`` is raised again so the raw message is dead-lettered too.
    """
    try:
        retry = RetryDelivery.model_validate_json(body)
    except ValidationError as error:
        give_up = domain.invalid_command_give_up(body, domain.validation_detail(error), now=now)
        if give_up is not None:
            await ports.outbox.final([give_up])
            logger.warning(
                "invalid retry command for delivery %s: final failure published", give_up.outcome.delivery_id
            )
        raise
    if retry.hold is not None:
        handled = await hold_request(
            retry, schedule=ports.schedule, outbox=ports.outbox, now=now, trace_parent=trace_parent
        )
        if handled.add is not None and handled.add.status == "added":
            ports.wake.notify()
        return handled
    handled = await schedule_retry(
        retry,
        tenants=ports.tenants,
        schedule=ports.schedule,
        outbox=ports.outbox,
        now=now,
        jitter=ports.jitter,
        rng=ports.rng,
        trace_parent=trace_parent,
    )
    if handled.add is not None and handled.add.status == "added":
        ports.wake.notify()
    return handled


async def schedule_retry(
    retry: RetryDelivery,
    *,
    tenants: TenantsConfig,
    schedule: RetrySchedule,
    outbox: Outbox,
    now: datetime,
    jitter: float = 0.1,
    rng: random.Random | None = None,
    trace_parent: str | None = None,
) -> RetryHandled:
    """Store the next attempt (durably, before the offset commits) or publish the delivery's final failure."""
    request = retry.request
    policy = domain.policy_for(tenants, request.tenant, request.integration_id)
    if policy is None:
        # The deliverer answers an unknown integration with a final failure of its own, so the attempt ends too.
        logger.warning(
            "integration %s/%s is no longer configured; using the default retry policy",
            request.tenant,
            request.integration_id,
        )
        policy = RetryPolicy()
    decision = domain.plan_retry(retry, policy, now=now, jitter=jitter, rng=rng, trace_parent=trace_parent)
    if isinstance(decision, GiveUp):
        await outbox.final([decision])
        logger.warning(
            "delivery %s to %s/%s failed after %d attempts (%s); dead-lettered",
            request.delivery_id,
            request.tenant,
            request.integration_id,
            request.attempt,
            retry.error_class,
        )
        return RetryHandled(scheduled=None, add=None, give_up=decision)
    added = await schedule.add(decision, order_id=domain.cancellable_order_id(request))
    if added.status == "order_cancelled" and added.order is not None:
        refused = domain.cancelled_give_up(decision.request, added.order, now=now)
        await outbox.final([refused])
        logger.info(
            "delivery %s attempt %d not scheduled: order cancelled at %s; final failure published",
            request.delivery_id,
            decision.attempt,
            added.order.status_at.isoformat(),
        )
        return RetryHandled(scheduled=None, add=added, give_up=refused)
    logger.info(
        "delivery %s attempt %d scheduled for %s%s",
        request.delivery_id,
        decision.attempt,
        decision.due_at.isoformat(timespec="milliseconds"),
        "" if added.status == "added" else " (already scheduled)",
    )
    return RetryHandled(scheduled=decision, add=added, give_up=None)


async def hold_request(
    retry: RetryDelivery, *, schedule: RetrySchedule, outbox: Outbox, now: datetime, trace_parent: str | None = None
) -> RetryHandled:
    """Keep a request its deliverer held because the integration is paused (``retry.hold``).

    Not a failed attempt: no back-off, no attempt limit, the same attempt number. Held until the integration is
    resumed, or due now when the resume was read already (the deliverer was behind). A cancelled order's request is
    ended with its final failure instead, as a retry would be.
    """
    request = retry.request
    order_id = domain.cancellable_order_id(request)
    async with schedule.transaction() as tx:
        # Locked before the state is read: a resume committing meanwhile would otherwise miss this row (see
        # ``SqlScheduleTransaction.lock_integration``).
        await tx.lock_integration(request.tenant, request.integration_id)
        state = await tx.load_integration(request.tenant, request.integration_id)
        order = await tx.load_order(request.tenant, order_id) if order_id is not None else None
        cancelled = order is not None and order.refuses_retries
        stored = domain.held_request(retry, state, now=now, trace_parent=trace_parent)
        inserted = not cancelled and await tx.insert(stored, order_id=order_id, after_publish=True)
    if cancelled and order is not None:
        refused = domain.cancelled_give_up(request, order, now=now)
        await outbox.final([refused])
        logger.info(
            "delivery %s attempt %d not held: order cancelled at %s; final failure published",
            request.delivery_id,
            request.attempt,
            order.status_at.isoformat(),
        )
        return RetryHandled(scheduled=None, add=AddResult("order_cancelled", order), give_up=refused)
    added = AddResult("added" if inserted else "duplicate")
    logger.info(
        "delivery %s attempt %d to %s/%s %s%s",
        request.delivery_id,
        request.attempt,
        request.tenant,
        request.integration_id,
        "held until the integration is resumed" if stored.held else "due now: the integration is already resumed",
        "" if added.status == "added" else " (already stored)",
    )
    return RetryHandled(scheduled=stored, add=added, give_up=None)


# --- integrations.control.v1 -----------------------------------------------------------------------------------


async def record_integration_state(change: IntegrationStateChanged, *, schedule: RetrySchedule, now: datetime) -> int:
    """Track the integration's state by ``changedAt``; while it is active, its held requests are released (due from
    ``now``, oldest stored first). Returns how many were released; the caller wakes the scheduler."""
    async with schedule.transaction() as tx:
        await tx.lock_integration(change.tenant, change.integration_id)
        current = await tx.load_integration(change.tenant, change.integration_id)
        changed = domain.integration_state_after(current, change)
        if changed is not None:
            await tx.save_integration(changed)
        state = changed or current
        # Also when the state did not change: a hold stored before any state was known waits for no other resume.
        released = 0
        if state is not None and state.active:
            released = await tx.release_held(change.tenant, change.integration_id, now=now)
            if changed is not None:
                # A resume (an operator's, or the health rules' own) starts the failure count again: the next
                # pause takes a full ``pause-after-failures`` more, and no probe is left due.
                health = await tx.load_health(change.tenant, change.integration_id)
                if health is not None and (health.unhealthy or health.consecutive_failures):
                    await tx.save_health(health.healthy())
    if changed is not None or released:
        logger.info(
            "integration %s/%s %s (at %s): %d held requests released",
            change.tenant,
            change.integration_id,
            "active" if state is not None and state.active else "paused",
            state.changed_at.isoformat() if state is not None else "?",
            released,
        )
    return released


# --- deliveries.outcomes.v1: destination health ---------------------------------------------------------------


async def record_outcome(
    outcome: DeliveryAttempted, *, tenants: TenantsConfig, schedule: RetrySchedule, outbox: Outbox, now: datetime
) -> IntegrationStateChanged | None:
    """Count the attempt towards its integration's health (``domain.health_after_outcome``), for integrations whose
    tenant config asks for it; publish the pause (``unhealthy``) or resume (``recovered``) the count decides.

    A final outcome also removes the delivery's held row of the same attempt: a probe that went out while the row
    stayed held (so it keeps its place in the line) has ended, delivered or failed for good. Returns the change
    published, if any. Outcomes of other integrations cost no database round trip.
    """
    integration = tenants.integration(outcome.tenant, outcome.integration_id)
    policy = integration.health if integration is not None else None
    if policy is None:
        return None
    async with schedule.transaction() as tx:
        await tx.lock_integration(outcome.tenant, outcome.integration_id)
        if outcome.final:
            await tx.delete_held(outcome.delivery_id, outcome.attempt)
        current = await tx.load_health(outcome.tenant, outcome.integration_id)
        state = await tx.load_integration(outcome.tenant, outcome.integration_id)
        decision = domain.health_after_outcome(current, outcome, policy, state, now=now)
        if decision is None:
            return None
        if decision.change is not None:
            # Confirmed before the row is saved: a crash in between decides (and publishes, same event ID) again.
            await outbox.state_changes([decision.change])
        await tx.save_health(decision.health)
    if decision.change is not None:
        log = logger.warning if decision.change.cause == "unhealthy" else logger.info
        log(
            "integration %s/%s %s by the destination-health rules: %s",
            outcome.tenant,
            outcome.integration_id,
            "paused" if decision.change.state == "paused" else "resumed",
            decision.change.reason,
        )
    return decision.change


async def probe_unhealthy(
    now: datetime, limit: int, *, tenants: TenantsConfig, schedule: RetrySchedule, outbox: Outbox
) -> int:
    """Send a probe for each unhealthy integration whose probe is due: its oldest held request, marked ``probe`` so
    the deliverer attempts it although the integration is paused. The row stays held (keeping its place in the
    line) until the probe's final outcome removes it; a transient failure holds the request again, same attempt.

    Also lets go of integrations someone else resumed or paused since, and resumes those whose health rules were
    turned off. Returns how many integrations were looked at; ``TransientError`` when the broker did not confirm.
    """
    sent: list[tuple[IntegrationHealth, HealthPolicy, ScheduledRetry]] = []
    confirmed: list[tuple[IntegrationHealth, ScheduledRetry]] = []
    unsent = 0
    async with schedule.transaction() as tx:
        due = await tx.due_probes(now, limit)
        if not due:
            return 0
        changes = []
        for health in due:
            integration = tenants.integration(health.tenant, health.integration_id)
            policy = integration.health if integration is not None else None
            state = await tx.load_integration(health.tenant, health.integration_id)
            step = domain.probe_step(health, policy, state)
            if step == "recover" or policy is None:
                changes.append(domain.health_released(health, now=now))
                await tx.save_health(health.healthy())
                continue
            if step == "clear":
                await tx.save_health(health.healthy())
                continue
            held = await tx.oldest_held(health.tenant, health.integration_id) if step == "probe" else None
            if held is None or held.retry is None:
                # Our pause not read back yet, or nothing held to try (no delivery since): look again later.
                # An unreadable row is ended when it is released, not probed.
                later = now + timedelta(seconds=domain.probe_interval_s(policy, health.probes))
                await tx.save_health(replace(health, next_probe_at=later))
                continue
            probe = replace(held.retry, request=held.retry.request.model_copy(update={"probe": True}), due_at=now)
            sent.append((health, policy, probe))
        if changes:
            await outbox.state_changes(changes)
        results = await outbox.requests([probe for _, _, probe in sent]) if sent else []
        for (health, policy, probe), result in zip(sent, results, strict=True):
            if result is not None:
                # Not confirmed: stays due, tried again next round (the error is raised once the rest is saved).
                unsent += 1
                continue
            wait = domain.probe_interval_s(policy, health.probes + 1)
            await tx.save_health(replace(health, probes=health.probes + 1, next_probe_at=now + timedelta(seconds=wait)))
            confirmed.append((health, probe))
    for health, probe in confirmed:
        logger.info(
            "probe %d of unhealthy integration %s/%s: delivery %s attempt %d sent",
            health.probes + 1,
            health.tenant,
            health.integration_id,
            probe.delivery_id,
            probe.attempt,
        )
    if unsent:
        raise TransientError(f"{unsent} probes could not be sent; they stay due")
    return len(due)


# --- orders.events.v1 ------------------------------------------------------------------------------------------


async def record_order_event(
    event: OrderEventOccurred, *, schedule: RetrySchedule, outbox: Outbox, now: datetime
) -> tuple[GiveUp, ...]:
    """Track the order's status by ``occurredAt``; a cancelled order's pending retries end with final failures.

    Returns the final failures published (one per dropped retry).
    """
    if event.type not in domain.STATUS_BY_EVENT:
        return ()
    async with schedule.transaction() as tx:
        current = await tx.load_order(event.tenant, event.order_id)
        changed = domain.order_status_after(current, event)
        if changed is not None:
            await tx.save_order(changed)
        state = changed or current
        if state is None or not state.refuses_retries:
            return ()
        # Also when the status did not change: rows a racing replica stored after the cancellation go too.
        rows = await tx.order_retries(event.tenant, event.order_id)
        give_ups = tuple(
            domain.cancelled_give_up(row.retry.request, state, now=now)
            if row.retry is not None
            else domain.unreadable_give_up(row, now=now)
            for row in rows
        )
        if give_ups:
            await outbox.final(give_ups)
            await tx.delete([row.row_key for row in rows])
    if changed is not None or give_ups:
        logger.info(
            "order %s of %s %s (at %s): %d pending retries ended",
            event.order_id,
            event.tenant,
            state.status,
            state.status_at.isoformat(),
            len(give_ups),
        )
    return give_ups


# --- the scheduler's round -------------------------------------------------------------------------------------


async def publish_due(now: datetime, limit: int, *, schedule: RetrySchedule, outbox: Outbox) -> int:
    """Re-request up to ``limit`` due retries (earliest first) and delete each once it is out or given up.

    One transaction: if publishing a final failure fails, nothing is deleted and the rows are taken again later.
    A retry the broker refuses for good (too large, invalid topic, not authorised) ends with a final failure;
    one it refuses for now stays, and ``TransientError`` is raised once the rest is committed.
    """
    pending = 0
    async with schedule.transaction() as tx:
        rows = await tx.due(now, limit)
        if not rows:
            return 0
        actions = [(row, domain.due_action(row, now=now)) for row in rows]
        give_ups = [action for _, action in actions if isinstance(action, GiveUp)]
        done = [row.row_key for row, action in actions if isinstance(action, GiveUp)]
        requests = [(row, action) for row, action in actions if isinstance(action, ScheduledRetry)]
        results = await outbox.requests([retry for _, retry in requests]) if requests else []
        for (row, retry), result in zip(requests, results, strict=True):
            if result is None:
                done.append(row.row_key)
            elif result.permanent:
                give_ups.append(domain.unpublishable_give_up(retry, result.error_class, result.detail, now=now))
                done.append(row.row_key)
            else:
                pending += 1
        if give_ups:
            await outbox.final(give_ups)
        await tx.delete(done)
    if give_ups:
        logger.warning("%d due retries ended with a final failure instead of a new attempt", len(give_ups))
    if pending:
        raise TransientError(f"{pending} due retries could not be re-requested; they stay scheduled")
    return len(done)
