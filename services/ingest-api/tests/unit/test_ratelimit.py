"""ratelimit.py: one keyed token bucket used four ways, each answering exactly as the limiter it replaced.

The replaced limiters were aiolimiter leaky buckets (per key, fan-out, failed keys) and a hand-written token bucket
(renders, kept in ``test_renders``); here the aiolimiter ones are replayed, on the same clock, as the reference.
"""

from __future__ import annotations

import math

import pytest
from aiolimiter import AsyncLimiter
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_ingest_api.ratelimit import FailedKeyThrottle, KeyRateLimiter, RateLimitedError, TokenBuckets
from relay_platform.tenants import KeyMatch, TenantsConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ClockLoop:
    """What ``AsyncLimiter`` asks of its event loop when it never has to wait: the time."""

    def __init__(self, clock: Clock) -> None:
        self.time = clock

    def is_closed(self) -> bool:
        return False


def reference_bucket(per_second: float, burst: int, clock: Clock) -> AsyncLimiter:
    """A bucket as the replaced limiters made it (capacity = burst, refilled at ``per_second``), on ``clock``."""
    bucket = AsyncLimiter(burst, burst / per_second)
    bucket._event_loop = ClockLoop(clock)  # type: ignore[assignment]
    return bucket


# Rates and times that are exact in binary, so both sides round alike and only the rules can differ.
RATES = st.sampled_from([0.25, 0.5, 1.0, 2.0, 8.0])
BURSTS = st.integers(min_value=1, max_value=6)
STEPS = st.lists(
    st.tuples(st.integers(min_value=0, max_value=24).map(lambda n: n / 8), st.integers(min_value=0, max_value=3)),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(per_second=RATES, burst=BURSTS, steps=STEPS)
async def test_fan_out_answers_as_the_aiolimiter_bucket_did(
    per_second: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = Clock()
    reference = reference_bucket(per_second, burst, clock)
    buckets = TokenBuckets(per_second, burst, max_keys=None, clock=clock)
    for elapsed, cost in steps:
        clock.now += elapsed
        expected: int | None = None
        if cost > 0:
            if reference.has_capacity(cost):
                await reference.acquire(cost)
            else:
                missing = cost - (burst - reference._level)
                expected = max(1, math.ceil(missing / per_second))
        if expected is None:
            buckets.check("demo", cost)
        else:
            with pytest.raises(RateLimitedError) as refused:
                buckets.check("demo", cost)
            assert refused.value.retry_after_s == expected


@settings(max_examples=200, deadline=None)
@given(per_second=RATES, burst=BURSTS, steps=STEPS)
async def test_failed_keys_answer_as_the_aiolimiter_throttle_did(
    per_second: float, burst: int, steps: list[tuple[float, int]]
) -> None:
    clock = Clock()
    reference: AsyncLimiter | None = None
    throttle = FailedKeyThrottle(per_second, burst)
    throttle._buckets = TokenBuckets(per_second, burst, clock=clock)
    for elapsed, action in steps:
        clock.now += elapsed
        if action == 0:  # a key presented: refused while the failures are used up
            refused = reference is not None and not reference.has_capacity()
            if refused:
                with pytest.raises(RateLimitedError) as error:
                    throttle.check("198.51.100.7")
                assert error.value.retry_after_s == max(1, math.ceil(1 / per_second))
            else:
                throttle.check("198.51.100.7")
        else:  # a key that turned out unknown
            reference = reference or reference_bucket(per_second, burst, clock)
            if reference.has_capacity():
                await reference.acquire()
            throttle.failed("198.51.100.7")


TENANTS = TenantsConfig.model_validate(
    {
        "tenants": {
            "slow": {
                "recipe-prefix": "555",
                "rate-limit": {"per-second": 0.5, "burst": 2},
                "api-keys": [
                    {"name": "a", "sha256": "a" * 64, "permissions": ["order-tracking"]},
                    {"name": "b", "sha256": "b" * 64, "permissions": ["order-tracking"]},
                ],
            }
        }
    }
)


def test_each_api_key_has_its_tenants_burst_and_waits_one_tokens_interval() -> None:
    limiter = KeyRateLimiter()
    first, second = (TENANTS.tenants["slow"].api_keys[i] for i in (0, 1))
    tenant = TENANTS.tenants["slow"]
    limiter.check(KeyMatch("slow", tenant, first))
    limiter.check(KeyMatch("slow", tenant, first))
    with pytest.raises(RateLimitedError) as refused:
        limiter.check(KeyMatch("slow", tenant, first))
    assert refused.value.retry_after_s == 2  # 1 / 0.5 per second
    limiter.check(KeyMatch("slow", tenant, second))  # another key, its own bucket


def test_a_bucket_takes_nothing_when_refused_and_says_when_there_is_enough() -> None:
    clock = Clock()
    buckets = TokenBuckets(per_second=2, burst=4, clock=clock)
    assert buckets.take("t", 3) == 0.0
    assert buckets.take("t", 3) == 1.0  # 1 token left, 2 more at 2/s
    assert buckets.wait("t", 1) == 0.0
    clock.now += 1
    assert buckets.take("t", 3) == 0.0


def test_wait_neither_takes_nor_remembers_a_key() -> None:
    buckets = TokenBuckets(per_second=1, burst=1, max_keys=1, clock=Clock())
    buckets.take("a")
    assert buckets.wait("b") == 0.0
    assert len(buckets) == 1
    assert buckets.wait("a") == 1.0
