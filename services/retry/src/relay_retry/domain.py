"""Pure retry rules: back-off, giving up, an order's status by ``occurredAt``, and the final word on a delivery.

No SQL, broker or clock here: ``now`` is always passed in. Every way a delivery leaves the schedule without being
re-requested ends in a ``GiveUp`` (a final ``failed`` outcome), so no delivery stays ``retrying`` in the log.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationState,
    IntegrationStateChanged,
    MessageDeadLettered,
    OrderEventOccurred,
    OrderEventType,
    RetryDelivery,
    StateChangeCause,
    delivery_key,
    stable_id,
)
from relay_contracts.topics import deliveries_requested
from relay_platform.redact import redact_secrets
from relay_platform.tenants import HealthPolicy, RetryPolicy, TenantsConfig

SERVICE = "retry"
_MAX_REASON = 4000
_MAX_ERROR_MESSAGE = 2000

# Deliveries made because of these reasons are notices about the order, not manufacturing: a cancellation must not
# drop them (the cancellation notice itself must still get its retries, whichever topic is read first).
NOTICE_REASONS = frozenset({"order_cancelled", "order_refunded", "order_returned"})

OrderStatus = Literal["open", "cancelled", "refunded", "returned"]
# The association store's rule (``relay_association_store.service.STATUS_BY_EVENT``), kept identical on purpose:
# only these events set an order's status; ``linked`` and ``updated`` leave it as it is.
STATUS_BY_EVENT: Mapping[OrderEventType, OrderStatus] = {
    "created": "open",
    "cancelled": "cancelled",
    "refunded": "refunded",
    "returned": "returned",
}

ORDER_CANCELLED = "OrderCancelled"
UNREADABLE_RETRY = "UnreadableScheduledRetry"
INVALID_RETRY_COMMAND = "InvalidRetryCommand"


@dataclass(frozen=True, slots=True)
class ScheduledRetry:
    """One pending attempt: ``request`` (already numbered ``attempt``) is re-published at ``due_at``.

    ``trace_parent`` is the W3C ``traceparent`` of the failed attempt's retry command: the re-request is published
    in that trace, so an order stays one trace across its retries although the scheduler has no span of its own.
    """

    request: DeliverBundle
    due_at: datetime
    trace_parent: str | None = None
    # Not due until its integration is resumed (a request held while the integration is paused).
    held: bool = False

    @property
    def delivery_id(self) -> str:
        return self.request.delivery_id

    @property
    def attempt(self) -> int:
        return self.request.attempt

    @property
    def topic(self) -> str:
        return deliveries_requested(self.request.integration_type)

    @property
    def key(self) -> bytes:
        """Deliveries are requested keyed by delivery ID, like the bundle-builder does."""
        return delivery_key(self.request.delivery_id)


@dataclass(frozen=True, slots=True)
class GiveUp:
    """No further attempt: the final outcome (for the notifier and the delivery log), and a dead letter where
    there is something an operator may want to replay or inspect."""

    outcome: DeliveryAttempted
    dead_letter: MessageDeadLettered | None = None
    # The trace the outcome is published in when no span is current (the scheduler's); see ``ScheduledRetry``.
    trace_parent: str | None = None


@dataclass(frozen=True, slots=True)
class OrderState:
    """What the retry service knows of an order: its status and the ``occurredAt`` that set it (own offset)."""

    tenant: str
    order_id: str
    status: OrderStatus
    status_at: datetime

    @property
    def refuses_retries(self) -> bool:
        """A cancelled order gets no more manufacturing attempts (the association store triggers none either)."""
        return self.status == "cancelled"


@dataclass(frozen=True, slots=True)
class StoredRetry:
    """A row of the schedule as read back; ``retry`` is ``None`` when ``request_json`` no longer parses."""

    delivery_id: str
    attempt: int
    tenant: str
    order_id: str | None
    integration_type: str
    recipe_id: str
    request_json: str
    retry: ScheduledRetry | None
    order: OrderState | None = None
    trace_parent: str | None = None

    @property
    def row_key(self) -> tuple[str, int]:
        return (self.delivery_id, self.attempt)


@dataclass(frozen=True, slots=True)
class IntegrationStatus:
    """What the retry service knows of an integration: its state and the ``changedAt`` that set it."""

    tenant: str
    integration_id: str
    state: IntegrationState
    changed_at: datetime
    cause: StateChangeCause = "operator"

    @property
    def active(self) -> bool:
        return self.state == "active"

    @property
    def paused_as_unhealthy(self) -> bool:
        return self.state == "paused" and self.cause == "unhealthy"


# --- back-off --------------------------------------------------------------------------------------------------


def policy_for(tenants: TenantsConfig, tenant_id: str, integration_id: str) -> RetryPolicy | None:
    """The integration's retry policy, or ``None`` when the tenant config no longer knows the integration."""
    integration = tenants.integration(tenant_id, integration_id)
    return integration.retry if integration is not None else None


def backoff_s(policy: RetryPolicy, attempt: int) -> float:
    """The nominal wait after failed attempt ``attempt`` (1 = first); the last entry is reused."""
    index = min(max(attempt, 1), len(policy.backoff_s)) - 1
    return policy.backoff_s[index]


def retry_delay_s(
    policy: RetryPolicy,
    attempt: int,
    *,
    retry_after_s: float | None = None,
    jitter: float = 0.1,
    rng: random.Random | None = None,
) -> float:
    """How long after the failure of ``attempt`` the next attempt is due.

    The back-off is spread by ``±jitter`` so a burst of failures does not come back as a burst; a destination's
    ``Retry-After`` is a floor (not jittered down), capped at ``policy.retry_after_cap_s`` so a hostile or
    broken header cannot park a delivery for days.
    """
    factor = (rng or random).uniform(1.0 - jitter, 1.0 + jitter) if jitter > 0 else 1.0
    delay = backoff_s(policy, attempt) * factor
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.retry_after_cap_s))
    return max(delay, 0.0)


def plan_retry(
    retry: RetryDelivery,
    policy: RetryPolicy,
    *,
    now: datetime,
    jitter: float = 0.1,
    rng: random.Random | None = None,
    trace_parent: str | None = None,
) -> ScheduledRetry | GiveUp:
    """Decide what happens after ``retry.request.attempt`` failed transiently.

    ``policy.max_attempts`` counts every attempt (3 = one attempt plus two retries, seed 000). ``trace_parent``
    (the command's trace) goes with the scheduled attempt.
    """
    request = retry.request
    if request.attempt >= policy.max_attempts:
        return give_up(retry, policy, now=now)
    delay = retry_delay_s(policy, request.attempt, retry_after_s=retry.retry_after_s, jitter=jitter, rng=rng)
    next_request = request.model_copy(update={"attempt": request.attempt + 1})
    return ScheduledRetry(
        request=next_request, due_at=retry.failed_at + timedelta(seconds=delay), trace_parent=trace_parent
    )


def give_up(retry: RetryDelivery, policy: RetryPolicy, *, now: datetime) -> GiveUp:
    """The final failed outcome and a dead letter carrying the request, replayable as a fresh first attempt."""
    request = retry.request
    # Defence in depth: the deliverer scrubbed the message already; the final outcome must carry no credential.
    error_message = redact_secrets(retry.error_message)[:_MAX_ERROR_MESSAGE]
    outcome = DeliveryAttempted.of(
        request,
        status="failed",
        final=True,
        occurred_at=now,
        error_class=retry.error_class,
        error_message=error_message,
    )
    reason = (
        f"delivery {request.delivery_id} to {request.tenant}/{request.integration_id} ({request.integration_type}) "
        f"failed after {request.attempt} of {policy.max_attempts} attempts; last error "
        f"{retry.error_class}: {error_message}"
    )
    return GiveUp(outcome=outcome, dead_letter=_replayable(request, reason, retry.error_class or "TransientError", now))


def _replayable(request: DeliverBundle, reason: str, error_class: str, now: datetime) -> MessageDeadLettered:
    # `relay dlq replay` re-publishes the payload on `source_topic`: a fresh attempt 1 gets a full set of retries.
    replay = request.model_copy(update={"attempt": 1})
    return MessageDeadLettered(
        source_topic=deliveries_requested(request.integration_type),
        key=request.delivery_id,
        consumer_group=SERVICE,
        service=SERVICE,
        reason=reason[:_MAX_REASON],
        error_class=error_class[:200],
        payload_b64=base64.b64encode(replay.model_dump_json().encode()).decode(),
        dead_lettered_at=now,
    )


# --- orders ----------------------------------------------------------------------------------------------------


def cancellable_order_id(request: DeliverBundle) -> str | None:
    """The order whose cancellation stops this delivery's retries; ``None`` for recipe deliveries and notices."""
    if request.order is None or request.reason in NOTICE_REASONS:
        return None
    return request.order.order_id


def order_status_after(current: OrderState | None, event: OrderEventOccurred) -> OrderState | None:
    """The order's new state after ``event``, or ``None`` when it does not change it.

    The association store's ordering rule (``apply_order_event``/``_is_stale``): an event older than the stored
    status is stale and ignored, whatever its type; the same status again (a resend, or a repeat) keeps the
    first ``status_at``; a newer different status replaces it, so a later ``created`` re-opens a cancelled order.
    At the same ``occurredAt`` a different status wins, as it does there.
    """
    status = STATUS_BY_EVENT.get(event.type)
    if status is None:
        return None
    if current is not None and (event.occurred_at < current.status_at or status == current.status):
        return None
    return OrderState(tenant=event.tenant, order_id=event.order_id, status=status, status_at=event.occurred_at)


def cancelled_give_up(
    next_request: DeliverBundle, order: OrderState, *, now: datetime, trace_parent: str | None = None
) -> GiveUp:
    """The final outcome of a delivery whose next attempt (``next_request``) is not made: its order is cancelled.

    The outcome carries the last attempt actually made, so the delivery log's attempt count stays true.
    """
    made = max(next_request.attempt - 1, 1)
    number = next_request.order.order_number if next_request.order is not None else order.order_id
    message = (
        f"order {number} was cancelled at {order.status_at.isoformat()}, so attempt {next_request.attempt} was not made"
    )
    outcome = DeliveryAttempted.of(
        next_request.model_copy(update={"attempt": made}),
        status="failed",
        final=True,
        occurred_at=now,
        error_class=ORDER_CANCELLED,
        error_message=message[:_MAX_ERROR_MESSAGE],
    )
    return GiveUp(outcome=outcome, trace_parent=trace_parent)


def unpublishable_give_up(retry: ScheduledRetry, error_class: str, detail: str, *, now: datetime) -> GiveUp:
    """The final outcome (and a replayable dead letter) of a due attempt the broker refuses for good."""
    request = retry.request
    message = f"attempt {request.attempt} could not be requested on {retry.topic}: {error_class}: {detail}"
    outcome = DeliveryAttempted.of(
        request.model_copy(update={"attempt": max(request.attempt - 1, 1)}),
        status="failed",
        final=True,
        occurred_at=now,
        error_class=error_class[:200],
        error_message=message[:_MAX_ERROR_MESSAGE],
    )
    reason = f"delivery {request.delivery_id}: {message}"
    dead_letter = _replayable(request, reason, error_class, now)
    return GiveUp(outcome=outcome, dead_letter=dead_letter, trace_parent=retry.trace_parent)


def due_action(row: StoredRetry, *, now: datetime) -> ScheduledRetry | GiveUp:
    """What a due row becomes: its request again, or the final word when it can no longer be sent.

    The order is looked at again here: a retry stored while a cancellation was being recorded by another
    replica (no ordering between them) is caught at its due time instead of being sent.
    """
    if row.retry is None:
        return unreadable_give_up(row, now=now)
    if row.order is not None and row.order.refuses_retries:
        return cancelled_give_up(row.retry.request, row.order, now=now, trace_parent=row.trace_parent)
    return row.retry


def unreadable_give_up(row: StoredRetry, *, now: datetime) -> GiveUp:
    """A stored request that no longer parses (the contract changed incompatibly): end the delivery anyway.

    The outcome takes every identifying field it still can from the stored JSON, the rest from the row's own
    columns; the raw JSON goes to the dead letter, the only copy left of what was to be sent.
    """
    message = f"the scheduled attempt {row.attempt} could not be read back and was not made"
    fields = _salvaged_request(row.request_json)
    known: dict[str, Any] = {
        "deliveryId": row.delivery_id,
        "tenant": row.tenant,
        "integrationType": row.integration_type,
        "recipeId": row.recipe_id,
    }
    fallback: dict[str, Any] = {
        "triggerId": row.delivery_id,
        "integrationId": "unknown",
        "feed": "order" if row.order_id else "recipe",
        "reason": "order_created" if row.order_id else "recipe_saved",
        "order": {"orderId": row.order_id, "orderNumber": row.order_id} if row.order_id else None,
    }
    final: dict[str, Any] = {
        "attempt": max(row.attempt - 1, 1),
        "status": "failed",
        "final": True,
        "errorClass": UNREADABLE_RETRY,
        "errorMessage": message,
        "occurredAt": now,
    }
    candidate = {**fallback, **fields, **known, **final}
    try:
        outcome = DeliveryAttempted.model_validate(candidate)
    except ValidationError as error:
        # Drop what the current contract rejects and use the row's stand-ins for it.
        bad = {str(detail["loc"][0]) for detail in error.errors(include_url=False) if detail["loc"]}
        outcome = DeliveryAttempted.model_validate(
            {**candidate, **{name: fallback[name] for name in bad if name in fallback}}
        )
    dead = MessageDeadLettered(
        source_topic=f"deliveries.requested.{row.integration_type}.v1",
        key=row.delivery_id,
        consumer_group=SERVICE,
        service=SERVICE,
        reason=f"delivery {row.delivery_id}: {message}"[:_MAX_REASON],
        error_class=UNREADABLE_RETRY,
        payload_b64=base64.b64encode(row.request_json.encode()).decode(),
        dead_lettered_at=now,
    )
    return GiveUp(outcome=outcome, dead_letter=dead, trace_parent=row.trace_parent)


_REQUEST_IDENTITY = ("deliveryId", "triggerId", "integrationId", "feed", "reason", "order", "files")


def _salvaged_request(raw: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    fields = {name: data[name] for name in _REQUEST_IDENTITY if name in data}
    # Outcomes list file names; the request lists file objects.
    files = fields.pop("files", None)
    if isinstance(files, list):
        fields["files"] = [f["name"] for f in files if isinstance(f, dict) and isinstance(f.get("name"), str)]
    return fields


# --- paused integrations --------------------------------------------------------------------------------------

# Released held rows become due this far apart, in the order they were stored: the scheduler takes due rows
# earliest first, so the oldest request goes out first.
RELEASE_SPACING_S = 0.001
# A hold read after the resume goes out again this much later, not at once: a deliverer whose view of the control
# topic lags (or is stuck on a broker error) would otherwise hold it again at once, in a loop as fast as the broker.
BEHIND_RECHECK_S = 1.0


def integration_state_after(
    current: IntegrationStatus | None, change: IntegrationStateChanged
) -> IntegrationStatus | None:
    """The integration's new state after ``change``, or ``None`` when it does not change it.

    The newest ``changedAt`` wins; a change that is not newer than the stored one (stale, or a resend) is ignored.
    Every deliverer keeps its view by the same rule (``relay_delivery.control``), so both agree on the outcome.
    """
    if current is not None and change.changed_at <= current.changed_at:
        return None
    return IntegrationStatus(
        tenant=change.tenant,
        integration_id=change.integration_id,
        state=change.state,
        changed_at=change.changed_at,
        cause=change.cause,
    )


def held_request(
    retry: RetryDelivery, state: IntegrationStatus | None, *, now: datetime, trace_parent: str | None
) -> ScheduledRetry:
    """What to store for a request its deliverer held (``retry.hold``): the same attempt (it was not made), held
    until a resume, or due ``BEHIND_RECHECK_S`` from now when the resume was already read (the deliverer's view was
    behind ours; by then it has most likely read the resume too).

    No state known yet counts as paused: the deliverer saw the pause, so its change is on its way to us too.
    """
    active = state is not None and state.active
    due_at = now + timedelta(seconds=BEHIND_RECHECK_S) if active else now
    return ScheduledRetry(request=retry.request, due_at=due_at, trace_parent=trace_parent, held=not active)


def release_times(count: int, *, now: datetime) -> list[datetime]:
    """The due times of ``count`` released rows, oldest stored first."""
    return [now + timedelta(seconds=rank * RELEASE_SPACING_S) for rank in range(count)]


def validation_detail(error: ValidationError) -> str:
    """What an invalid command got wrong, for its final failure: the first three problems, by field."""
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)[:3]
    )


def invalid_command_give_up(raw: bytes, detail: str, *, now: datetime) -> GiveUp | None:
    """A retry command the current contract rejects, whose ``request`` still parses: end that delivery.

    ``None`` when not even the request can be read (nothing names the delivery); the raw message is then only
    dead-lettered by the error middleware.
    """
    try:
        data = json.loads(raw)
        request = DeliverBundle.model_validate(data["request"])
    except (ValueError, TypeError, KeyError):  # ValidationError is a ValueError
        return None
    message = f"the retry command for attempt {request.attempt} was invalid ({detail}); no further attempt is made"
    outcome = DeliveryAttempted.of(
        request,
        status="failed",
        final=True,
        occurred_at=now,
        error_class=INVALID_RETRY_COMMAND,
        error_message=message[:_MAX_ERROR_MESSAGE],
    )
    return GiveUp(outcome=outcome)


# --- destination health ---------------------------------------------------------------------------------------

# ``changedBy`` of the changes the health rules publish (never an operator's key name).
HEALTH_ACTOR = "destination-health"
_MAX_REASON_TEXT = 200
# Outcomes older than this say nothing about the destination now, and are not counted. It matters most once: a
# consumer group new to deliveries.outcomes.v1 (the upgrade that brings these rules) starts at its beginning, and
# replaying months of history must not pause and resume integrations (and mail their lists) today.
HEALTH_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class IntegrationHealth:
    """What the health rules know of one integration (opt-in, ``HealthPolicy``): its consecutive failed attempts,
    and while they hold it paused as unhealthy, since when and when the next probe is due."""

    tenant: str
    integration_id: str
    consecutive_failures: int = 0
    last_error: str | None = None
    unhealthy_since: datetime | None = None
    probes: int = 0
    next_probe_at: datetime | None = None

    @property
    def unhealthy(self) -> bool:
        return self.unhealthy_since is not None

    def healthy(self) -> IntegrationHealth:
        """Back to no failures, not unhealthy, no probe due."""
        return IntegrationHealth(self.tenant, self.integration_id)


@dataclass(frozen=True, slots=True)
class HealthDecision:
    """The health row to keep, and the state change to publish first (before the row is saved), if any."""

    health: IntegrationHealth
    change: IntegrationStateChanged | None = None


ProbeStep = Literal["probe", "postpone", "clear", "recover"]


def probe_interval_s(policy: HealthPolicy, probes_sent: int) -> float:
    """How long after a probe the next is due: ``probe-interval-s``, doubling per probe, capped."""
    return min(policy.probe_interval_s * 2.0 ** min(probes_sent, 32), policy.probe_max_interval_s)


def health_after_outcome(
    current: IntegrationHealth | None,
    outcome: DeliveryAttempted,
    policy: HealthPolicy,
    state: IntegrationStatus | None,
    *,
    now: datetime,
) -> HealthDecision | None:
    """The integration's health after one attempt's outcome, or ``None`` when nothing changes.

    Only transient failures count (``retrying``: the destination did not answer, or answered "later"): a permanent
    one is about the request or the configuration, which holding deliveries would not mend, and a retry service's
    own final failure repeats an attempt already counted. A success resets the count, and resumes an integration
    the rules paused (the probe, or an attempt that was in flight, went through). An outcome older than
    ``HEALTH_WINDOW`` is history, not health: ignored.
    """
    if now - outcome.occurred_at > HEALTH_WINDOW:
        return None
    health = current or IntegrationHealth(outcome.tenant, outcome.integration_id)
    if outcome.status == "succeeded":
        if health.unhealthy:
            reason = f"delivery {outcome.delivery_id} attempt {outcome.attempt} succeeded; held deliveries released"
            return HealthDecision(health.healthy(), _change(outcome, "active", "recovered", reason, now=now))
        if health.consecutive_failures == 0:
            return None
        return HealthDecision(health.healthy())
    if outcome.status != "retrying":
        return None
    failures = health.consecutive_failures + 1
    last_error = redact_secrets(f"{outcome.error_class or 'Error'}: {outcome.error_message or ''}".rstrip(": "))
    counted = replace(health, consecutive_failures=failures, last_error=last_error[:_MAX_REASON_TEXT])
    already_paused = state is not None and not state.active
    if health.unhealthy or failures < policy.pause_after_failures or already_paused:
        # Paused by an operator already: no second pause, and no probe (the operator resumes it).
        return HealthDecision(counted)
    reason = f"{failures} consecutive failed attempts; last: {last_error}"
    return HealthDecision(
        replace(
            counted,
            unhealthy_since=now,
            probes=0,
            next_probe_at=now + timedelta(seconds=probe_interval_s(policy, 0)),
        ),
        _change(outcome, "paused", "unhealthy", reason, now=now),
    )


def probe_step(health: IntegrationHealth, policy: HealthPolicy | None, state: IntegrationStatus | None) -> ProbeStep:
    """What a due probe of an unhealthy integration does.

    ``recover``: the tenant config no longer asks for health rules, so the pause they made is lifted. ``postpone``:
    our own pause has not been read back from the control topic yet (no state, or an older one). ``clear``: someone
    changed the state since (an operator resumed or paused it), so the rules let go. ``probe``: send the oldest held
    delivery.
    """
    if policy is None:
        return "recover"
    since = health.unhealthy_since
    if state is None or (since is not None and state.changed_at < since):
        return "postpone"
    if not state.paused_as_unhealthy:
        return "clear"
    return "probe"


def health_released(health: IntegrationHealth, *, now: datetime) -> IntegrationStateChanged:
    """The resume of an integration whose health rules were turned off while they held it paused."""
    reason = "destination health is no longer configured for this integration; held deliveries released"
    return IntegrationStateChanged(
        event_id=stable_id("health", health.tenant, health.integration_id, "released", now.isoformat()),
        tenant=health.tenant,
        integration_id=health.integration_id,
        state="active",
        cause="recovered",
        reason=reason,
        changed_by=HEALTH_ACTOR,
        changed_at=now,
    )


def _change(
    outcome: DeliveryAttempted, state: IntegrationState, cause: StateChangeCause, reason: str, *, now: datetime
) -> IntegrationStateChanged:
    # The ID comes from the outcome that decided it: a redelivered outcome decides the same again (its transaction
    # was not committed), and the notifier's one notice per event ID holds.
    event_id = stable_id(
        "health", outcome.tenant, outcome.integration_id, cause, outcome.delivery_id, str(outcome.attempt)
    )
    return IntegrationStateChanged(
        event_id=event_id,
        tenant=outcome.tenant,
        integration_id=outcome.integration_id,
        state=state,
        cause=cause,
        reason=reason[:_MAX_REASON_TEXT],
        changed_by=HEALTH_ACTOR,
        changed_at=now,
    )
