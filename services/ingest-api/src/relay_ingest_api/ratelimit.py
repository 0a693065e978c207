"""Rate limits: one keyed token bucket (``TokenBuckets``), used four ways.

- Each API key, sized by its tenant's ``rate-limit`` (``KeyRateLimiter``).
- Manual re-triggers, per tenant, one token per trigger published (``TokenBuckets.check(tenant_id, cost)``): a
  trigger re-sends files to the factory for every matching order line, so one request for a popular recipe costs
  as much as thousands of single ones.
- Unknown API keys, per client address (``FailedKeyThrottle``): keys cannot be guessed at speed.
- Pick-ticket renders, per client: its API key, else its address (``TokenBuckets.check(client)``).

A refusal is a ``RateLimitedError``; the HTTP side sends its ``retry_after_s`` as ``Retry-After``.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable

from relay_platform.tenants import KeyMatch

DEFAULT_MAX_KEYS = 10_000


class RateLimitedError(Exception):
    """Over a rate; ``retry_after_s`` is when one more request fits."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


def whole_seconds(wait_s: float) -> int:
    """A wait as ``Retry-After`` seconds: rounded up, at least 1."""
    return max(1, math.ceil(wait_s))


def retry_after_for_rate(per_second: float) -> int:
    """Whole seconds until a full bucket has room for one more request (at least 1)."""
    return whole_seconds(1 / per_second)


class TokenBuckets:
    """A token bucket per key: ``burst`` tokens, refilled at ``per_second``; a new key starts full.

    Never waits (load is pushed back, not queued). Bounded: a bucket that has refilled is dropped (it equals a new
    one), and at most ``max_keys`` are kept, the least recently used dropped first (``None``: keys come from
    configuration, so their number is bounded already).
    """

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        max_keys: int | None = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        # key -> (tokens, when they were counted); least recently used first.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, counted = self._buckets.get(key, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - counted) * self.per_second)

    def wait(self, key: str, cost: int = 1) -> float:
        """Seconds until ``key`` has ``cost`` tokens (0.0: it has them now); takes nothing."""
        return max(0.0, (cost - self._tokens(key, self._clock())) / self.per_second)

    def take(self, key: str, cost: int = 1) -> float:
        """Take ``cost`` tokens from ``key`` and return 0.0, or take none and return the seconds until they are
        there."""
        now = self._clock()
        self._forget_full(now)
        tokens = self._tokens(key, now)
        taken = tokens >= cost
        self._buckets.pop(key, None)  # re-inserted last: the most recently used
        self._buckets[key] = (tokens - cost if taken else tokens, now)
        while self._max_keys is not None and len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return 0.0 if taken else (cost - tokens) / self.per_second

    def check(self, key: str, cost: int = 1) -> None:
        """Take ``cost`` tokens now, or raise ``RateLimitedError`` saying when they will be there."""
        wait = self.take(key, cost)
        if wait > 0:
            raise RateLimitedError(whole_seconds(wait))

    def _forget_full(self, now: float) -> None:
        while self._buckets:
            tokens, counted = next(iter(self._buckets.values()))
            if tokens + (now - counted) * self.per_second < self.burst:
                return
            self._buckets.popitem(last=False)


class KeyRateLimiter:
    """One bucket per API key, sized by its tenant's ``rate-limit`` (capacity = burst, refill = per-second)."""

    def __init__(self) -> None:
        self._tenants: dict[str, TokenBuckets] = {}

    def check(self, match: KeyMatch) -> None:
        """Take one token for this key now, or raise ``RateLimitedError``."""
        limit = match.tenant.rate_limit
        buckets = self._tenants.get(match.tenant_id)
        if buckets is None:
            buckets = self._tenants[match.tenant_id] = TokenBuckets(limit.per_second, limit.burst, max_keys=None)
        if buckets.take(match.key.name) > 0:
            # One token's interval however little is missing: the Retry-After key limits have always sent.
            raise RateLimitedError(retry_after_for_rate(limit.per_second))


class FailedKeyThrottle:
    """Unknown API keys, counted per client address: past ``burst`` failures the client waits (429) whatever key
    it presents next, so keys cannot be guessed at speed. At most ``max_clients`` addresses are remembered."""

    def __init__(self, per_second: float, burst: int, *, max_clients: int = DEFAULT_MAX_KEYS) -> None:
        self.per_second = per_second
        self._buckets = TokenBuckets(per_second, burst, max_keys=max_clients)

    def check(self, client: str) -> None:
        """Raise ``RateLimitedError`` when ``client`` has used up its failures."""
        if self._buckets.wait(client) > 0:
            raise RateLimitedError(retry_after_for_rate(self.per_second))

    def failed(self, client: str) -> None:
        """Count one failed key of ``client`` (an empty bucket stays empty)."""
        self._buckets.take(client)
