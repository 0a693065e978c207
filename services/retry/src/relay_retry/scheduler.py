"""The scheduler: the retry service's background task. Each round is the use cases ``service.publish_due`` and
``service.probe_unhealthy``; between rounds it sleeps until the next retry or probe is due or a new retry arrives
(``notify``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from relay_platform.errors import TransientError
from relay_platform.tenants import TenantsConfig
from relay_retry import service
from relay_retry.ports import Outbox, RetrySchedule

logger = logging.getLogger("relay.retry.scheduler")

_MIN_WAIT_S = 0.01


class Scheduler:
    """Runs until cancelled. Rows are deleted only after their publish was confirmed, so nothing is lost on a
    crash (a crash between the two re-publishes once: deliveries are idempotent).

    There is no polling tick: the loop sleeps exactly until the earliest due time, and ``notify()`` (called when
    a row is added) wakes it early, so a retry due in 50 ms is never held back by one due in an hour.
    """

    def __init__(
        self,
        schedule: RetrySchedule,
        outbox: Outbox,
        *,
        batch_size: int = 100,
        idle_recheck_s: float = 5.0,
        error_backoff_s: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        tenants: TenantsConfig | None = None,
    ) -> None:
        self._schedule = schedule
        self._outbox = outbox
        self._batch_size = batch_size
        self._idle_recheck_s = idle_recheck_s
        self._error_backoff_s = error_backoff_s
        self._clock = clock or _utcnow
        self._wake = asyncio.Event()
        # None: no probes (schedulers built for the retry rules alone, as in older tests).
        self._tenants = tenants

    def notify(self) -> None:
        """A retry was added: look at the schedule again now."""
        self._wake.set()

    async def run(self) -> None:
        while True:
            # Cleared before reading the schedule: a row added from here on sets it again and is not missed.
            self._wake.clear()
            try:
                published = await service.publish_due(
                    self._clock(), self._batch_size, schedule=self._schedule, outbox=self._outbox
                )
                if published:
                    logger.info("%d due retries re-requested or ended", published)
                if self._tenants is not None:
                    await service.probe_unhealthy(
                        self._clock(),
                        self._batch_size,
                        tenants=self._tenants,
                        schedule=self._schedule,
                        outbox=self._outbox,
                    )
                if published >= self._batch_size:
                    continue
                next_due = await self._schedule.next_due_at()
                if self._tenants is not None:
                    next_probe = await self._schedule.next_probe_at()
                    if next_probe is not None:
                        next_due = next_probe if next_due is None else min(next_due, next_probe)
            except TransientError as error:
                logger.warning("scheduler round failed, trying again in %gs: %s", self._error_backoff_s, error)
                await self._sleep(self._error_backoff_s)
                continue
            timeout = self._idle_recheck_s
            if next_due is not None:
                timeout = min(timeout, max((next_due - self._clock()).total_seconds(), 0.0))
                if published == 0:
                    # Due but not taken: another replica holds it (SKIP LOCKED). Do not spin on it.
                    timeout = max(timeout, _MIN_WAIT_S)
            await self._sleep(timeout)

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            pass


def _utcnow() -> datetime:
    return datetime.now(UTC)
