"""Per-key token buckets from each tenant's ``rate-limit`` (aiolimiter: capacity = burst, refill = per-second)."""

from __future__ import annotations

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
