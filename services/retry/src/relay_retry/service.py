"""The retry decision, broker-free: schedule the next attempt with back-off, or give up and dead-letter."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    MessageDeadLettered,
    RetryDelivery,
    delivery_key,
)
from relay_contracts.topics import deliveries_requested
from relay_platform.tenants import RetryPolicy, TenantsConfig

SERVICE = "retry"
_MAX_REASON = 4000


@dataclass(frozen=True, slots=True)
class ScheduledRetry:
    """One pending attempt: ``request`` (already numbered ``attempt``) is re-published at ``due_at``."""

    request: DeliverBundle
    due_at: datetime

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
    """Attempts are exhausted: the final outcome (for the notifier and the delivery log) and the dead letter."""

    outcome: DeliveryAttempted
    dead_letter: MessageDeadLettered


def policy_for(tenants: TenantsConfig, tenant_id: str, integration_id: str) -> RetryPolicy | None:
    """The integration's retry policy, or ``None`` when the tenant config no longer knows the integration."""
    tenant = tenants.tenants.get(tenant_id)
    integration = tenant.integration(integration_id) if tenant is not None else None
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
    jitter: float = 0.1,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> ScheduledRetry | GiveUp:
    """Decide what happens after ``retry.request.attempt`` failed transiently.

    ``policy.max_attempts`` counts every attempt (3 = one attempt plus two retries, seed 000).
    """
    request = retry.request
    if request.attempt >= policy.max_attempts:
        return give_up(retry, policy, now=now or datetime.now(UTC))
    delay = retry_delay_s(policy, request.attempt, retry_after_s=retry.retry_after_s, jitter=jitter, rng=rng)
    next_request = request.model_copy(update={"attempt": request.attempt + 1})
    return ScheduledRetry(request=next_request, due_at=retry.failed_at + timedelta(seconds=delay))


def give_up(retry: RetryDelivery, policy: RetryPolicy, *, now: datetime) -> GiveUp:
    """The final failed outcome and a dead letter carrying the request, replayable as a fresh first attempt."""
    request = retry.request
    outcome = DeliveryAttempted.of(
        request,
        status="failed",
        final=True,
        occurred_at=now,
        error_class=retry.error_class,
        error_message=retry.error_message,
    )
    # `relay dlq replay` re-publishes the payload on `source_topic`: a fresh attempt 1 gets a full set of retries.
    replayable = request.model_copy(update={"attempt": 1})
    reason = (
        f"delivery {request.delivery_id} to {request.tenant}/{request.integration_id} ({request.integration_type}) "
        f"failed after {request.attempt} of {policy.max_attempts} attempts; last error "
        f"{retry.error_class}: {retry.error_message}"
    )
    dead_letter = MessageDeadLettered(
        source_topic=deliveries_requested(request.integration_type),
        key=request.delivery_id,
        consumer_group=SERVICE,
        service=SERVICE,
        reason=reason[:_MAX_REASON],
        error_class=retry.error_class or "TransientError",
        payload_b64=base64.b64encode(replayable.model_dump_json().encode()).decode(),
        dead_lettered_at=now,
    )
    return GiveUp(outcome=outcome, dead_letter=dead_letter)
