"""The retry decision: back-off per attempt, jitter bounds, Retry-After as a capped floor, giving up."""

from __future__ import annotations

import base64
import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from relay_contracts.messages import DeliverBundle, OrderLine, RetryDelivery
from relay_platform.tenants import RetryPolicy, load_tenants
from relay_retry.domain import GiveUp, ScheduledRetry, backoff_s, plan_retry, policy_for, retry_delay_s

FAILED_AT = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
DEFAULT = RetryPolicy()


def request(attempt: int = 1) -> DeliverBundle:
    delivery_id = uuid.uuid4().hex
    return DeliverBundle(
        delivery_id=delivery_id,
        trigger_id="t1",
        tenant="rt",
        integration_id="fast-hook",
        integration_type="zapier",
        recipe_id="999-63CHGJokGoxPfSba",
        feed="order",
        reason="order_created",
        order=OrderLine(order_id="6182665224482", order_number="1022"),
        attempt=attempt,
        requested_at=FAILED_AT,
    )


def retry(attempt: int = 1, retry_after_s: float | None = None) -> RetryDelivery:
    return RetryDelivery(
        request=request(attempt),
        error_class="TransientError",
        error_message="hook answered 503",
        retry_after_s=retry_after_s,
        failed_at=FAILED_AT,
    )


def test_default_policy_is_three_attempts_with_30_then_120_second_backoff() -> None:
    assert DEFAULT.max_attempts == 3
    assert [backoff_s(DEFAULT, attempt) for attempt in (1, 2, 3, 7)] == [30.0, 120.0, 120.0, 120.0]


def test_without_jitter_the_delay_is_the_backoff() -> None:
    assert retry_delay_s(DEFAULT, 1, jitter=0) == 30.0
    assert retry_delay_s(DEFAULT, 2, jitter=0) == 120.0


def test_jitter_stays_within_ten_percent_and_actually_spreads() -> None:
    rng = random.Random(7)
    delays = [retry_delay_s(DEFAULT, 1, jitter=0.1, rng=rng) for _ in range(500)]
    assert all(27.0 <= delay <= 33.0 for delay in delays)
    assert max(delays) - min(delays) > 4.0


def test_retry_after_longer_than_the_backoff_is_honoured() -> None:
    policy = RetryPolicy(backoff_s=(0.05,), retry_after_cap_s=600)
    assert retry_delay_s(policy, 1, retry_after_s=90, jitter=0.1, rng=random.Random(1)) == 90


def test_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    assert retry_delay_s(DEFAULT, 1, retry_after_s=5, jitter=0) == 30.0


def test_retry_after_is_capped() -> None:
    policy = RetryPolicy(backoff_s=(1.0,), retry_after_cap_s=300)
    assert retry_delay_s(policy, 1, retry_after_s=86_400, jitter=0) == 300


def test_first_failure_schedules_attempt_2_after_the_backoff_from_the_failure_time() -> None:
    failed = retry(attempt=1)
    decision = plan_retry(failed, DEFAULT, now=FAILED_AT, jitter=0)
    assert isinstance(decision, ScheduledRetry)
    assert decision.request == failed.request.model_copy(update={"attempt": 2})
    assert decision.due_at == FAILED_AT + timedelta(seconds=30)
    assert decision.topic == "deliveries.requested.zapier.v1"
    assert decision.key == failed.request.delivery_id.encode()


def test_second_failure_schedules_attempt_3_after_the_second_backoff() -> None:
    decision = plan_retry(retry(attempt=2), DEFAULT, now=FAILED_AT, jitter=0)
    assert isinstance(decision, ScheduledRetry)
    assert (decision.attempt, decision.due_at) == (3, FAILED_AT + timedelta(seconds=120))


@pytest.mark.parametrize("attempt", [3, 4])
def test_exhausted_attempts_give_up_with_a_final_failure_and_a_dead_letter(attempt: int) -> None:
    failed = retry(attempt=attempt)
    decision = plan_retry(failed, DEFAULT, now=FAILED_AT)
    assert isinstance(decision, GiveUp)
    outcome = decision.outcome
    assert (outcome.status, outcome.final, outcome.attempt) == ("failed", True, attempt)
    assert (outcome.error_class, outcome.error_message) == ("TransientError", "hook answered 503")
    assert outcome.order == failed.request.order
    assert outcome.delivery_id == failed.request.delivery_id
    dead = decision.dead_letter
    assert dead is not None
    assert dead.source_topic == "deliveries.requested.zapier.v1"
    assert dead.key == failed.request.delivery_id
    assert dead.error_class == "TransientError"
    assert failed.request.delivery_id in dead.reason
    assert "hook answered 503" in dead.reason
    replay = DeliverBundle.model_validate_json(base64.b64decode(dead.payload_b64))
    assert replay == failed.request.model_copy(update={"attempt": 1})


def test_single_attempt_policy_gives_up_at_once() -> None:
    assert isinstance(plan_retry(retry(attempt=1), RetryPolicy(max_attempts=1), now=FAILED_AT), GiveUp)


def test_policy_comes_from_the_integration_and_is_none_for_an_unknown_one() -> None:
    from pathlib import Path

    tenants = load_tenants(Path(__file__).parent.parent / "tenants.yaml")
    policy = policy_for(tenants, "rt", "fast-hook")
    assert policy is not None
    assert policy.backoff_s == (0.05, 0.1)
    assert policy_for(tenants, "rt", "gone") is None
    assert policy_for(tenants, "nobody", "fast-hook") is None
