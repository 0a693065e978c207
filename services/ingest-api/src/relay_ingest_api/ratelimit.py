"""Per-key token buckets from each tenant's ``rate-limit`` (aiolimiter: capacity = burst, refill = per-second)."""

from __future__ import annotations

import math
from collections import OrderedDict

from aiolimiter import AsyncLimiter

from relay_ingest_api.service import retry_after_for_rate
from relay_platform.tenants import KeyMatch


class RateLimitedError(Exception):
    """Over the key's rate; ``retry_after_s`` is when one more request fits."""

    def __init__(self, retry_after_s: int) -> None:
        super().__init__(f"rate limit exceeded; retry after {retry_after_s} s")
        self.retry_after_s = retry_after_s


class KeyRateLimiter:
    def __init__(self) -> None:
        self._buckets: dict[str, AsyncLimiter] = {}

    async def check(self, match: KeyMatch) -> None:
        """Take one token for this key now, or raise ``RateLimitedError`` (never waits: load is pushed back)."""
        limit = match.tenant.rate_limit
        bucket_id = f"{match.tenant_id}/{match.key.name}"
        bucket = self._buckets.get(bucket_id)
        if bucket is None:
            bucket = self._buckets[bucket_id] = AsyncLimiter(limit.burst, limit.burst / limit.per_second)
        if not bucket.has_capacity():
            raise RateLimitedError(retry_after_for_rate(limit.per_second))
        # There is capacity (checked just above, no await in between), so this takes a token without waiting.
        await bucket.acquire()


def _retry_after(missing: float, per_second: float) -> int:
    return max(1, math.ceil(missing / per_second))


class FanOutLimiter:
    """Manual re-triggers charged by what they fan out to: one token per trigger published, per tenant.

    A trigger re-sends files to the factory for every matching order line, so one request for a popular recipe
    costs as much as thousands of single ones; the tenant's buckets refill at ``per_second``.
    """

    def __init__(self, per_second: float, burst: int) -> None:
        self.per_second = per_second
        self.burst = burst
        self._buckets: dict[str, AsyncLimiter] = {}

    async def check(self, tenant_id: str, cost: int) -> None:
        """Take ``cost`` tokens now, or raise ``RateLimitedError`` saying when they will be there."""
        if cost <= 0:
            return
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = AsyncLimiter(self.burst, self.burst / self.per_second)
        if not bucket.has_capacity(cost):
            # aiolimiter's level drains continuously; what is missing refills at ``per_second``.
            missing = cost - (self.burst - bucket._level)
            raise RateLimitedError(_retry_after(missing, self.per_second))
        await bucket.acquire(cost)


class FailedKeyThrottle:
    """Unknown API keys, counted per client address: past ``burst`` failures the client waits (429) whatever key
    it presents next, so keys cannot be guessed at speed. At most ``max_clients`` addresses are remembered."""

    def __init__(self, per_second: float, burst: int, *, max_clients: int = 10_000) -> None:
        self.per_second = per_second
        self.burst = burst
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, AsyncLimiter] = OrderedDict()

    def check(self, client: str) -> None:
        """Raise ``RateLimitedError`` when ``client`` has used up its failures."""
        bucket = self._buckets.get(client)
        if bucket is not None and not bucket.has_capacity():
            raise RateLimitedError(_retry_after(1, self.per_second))

    async def failed(self, client: str) -> None:
        """Count one failed key of ``client``."""
        bucket = self._buckets.pop(client, None) or AsyncLimiter(self.burst, self.burst / self.per_second)
        self._buckets[client] = bucket
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        if bucket.has_capacity():
            await bucket.acquire()
