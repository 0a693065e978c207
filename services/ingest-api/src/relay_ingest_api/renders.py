"""Bounded on-demand pick tickets: a byte-bounded LRU cache, one render per recipe version, per-client limits, slots.

``GET /recipe/<id>.pdf`` answers anonymous callers for public recipes, so nothing about it may grow with the load:
a cached PDF costs a lookup; a render costs one of ``slots`` worker threads, and a caller who would wait longer than
``slot_wait_s`` for one gets 503 + Retry-After rather than a place in an unbounded queue; renders per client are
rate limited (429 + Retry-After). Access is checked before the cache is asked, on every request
(``service.pick_ticket``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from relay_ingest_api.ports import Limits, RenderedPdf, RenderKey
from relay_ingest_api.ratelimit import RateLimitedError
from relay_platform.errors import TransientError

logger = logging.getLogger("relay.ingest_api.renders")

Renderer = Callable[..., bytes]
"""``render(recipe, *, recipe_url=...) -> PDF bytes`` (``relay_pickticket.render_pick_ticket``); runs in a thread."""

# Bookkeeping per cache entry beyond the PDF's bytes (key, ETag, links): keeps many tiny entries bounded too.
_ENTRY_OVERHEAD = 256


@dataclass(slots=True)
class RenderStats:
    """Counters for tests and logs: ``renders`` is how often the renderer really ran."""

    hits: int = 0
    misses: int = 0
    renders: int = 0
    joined: int = 0
    evictions: int = 0
    busy: int = 0
    rate_limited: int = 0


class PdfCache:
    """Rendered PDFs by ``RenderKey``, least recently used out first, at most ``max_bytes`` in all; a PDF over a
    quarter of that is not kept (one ticket must not empty the cache)."""

    def __init__(self, max_bytes: int, stats: RenderStats) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[RenderKey, RenderedPdf] = OrderedDict()
        self._stats = stats

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: RenderKey) -> RenderedPdf | None:
        pdf = self._entries.get(key)
        if pdf is not None:
            self._entries.move_to_end(key)
        return pdf

    def put(self, key: RenderKey, pdf: RenderedPdf) -> None:
        cost = _cost(pdf)
        if cost > self.max_bytes // 4 or key in self._entries:
            return
        self._entries[key] = pdf
        self.size += cost
        while self.size > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self.size -= _cost(evicted)
            self._stats.evictions += 1


def _cost(pdf: RenderedPdf) -> int:
    return len(pdf.body) + _ENTRY_OVERHEAD


class PickTicketRenders:
    """The pick tickets ``GET /recipe/<id>.pdf`` serves: cached, rendered once per recipe version however many ask
    at once (single flight), in at most ``slots`` threads, at most ``limiter``'s rate of renders per client.
    Implements ``ports.PickTickets``."""

    def __init__(
        self,
        renderer: Renderer,
        *,
        cache_bytes: int,
        slots: int,
        slot_wait_s: float,
        retry_after_s: float,
        limiter: Limits,
    ) -> None:
        self.renderer = renderer
        self.stats = RenderStats()
        self.cache = PdfCache(cache_bytes, self.stats)
        self.limiter = limiter
        self._slots = asyncio.Semaphore(slots)
        self._slot_wait_s = slot_wait_s
        self._retry_after_s = retry_after_s
        self._in_flight: dict[RenderKey, asyncio.Task[RenderedPdf]] = {}

    def cached(self, key: RenderKey) -> RenderedPdf | None:
        pdf = self.cache.get(key)
        if pdf is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return pdf

    def charge(self, client: str) -> None:
        """One render for ``client``, or ``RateLimitedError`` (429) when it has had its share."""
        try:
            self.limiter.check(client)
        except RateLimitedError:
            self.stats.rate_limited += 1
            raise

    async def render(self, key: RenderKey, recipe: Mapping[str, Any], *, recipe_url: str) -> RenderedPdf:
        """The PDF for ``key``: from the cache, from a render already under way, or from a new one.

        A new render runs as its own task, so a caller who goes away does not cancel it for the others waiting on
        it; it waits at most ``slot_wait_s`` for a free slot, then raises ``TransientError`` (503 + Retry-After).
        """
        pdf = self.cache.get(key)
        if pdf is not None:
            return pdf
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.create_task(self._render_once(key, recipe, recipe_url))
            self._in_flight[key] = task
            task.add_done_callback(lambda done: self._landed(key, done))
        else:
            self.stats.joined += 1
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Cancel renders still waiting for a slot (a render already in its thread finishes there)."""
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _render_once(self, key: RenderKey, recipe: Mapping[str, Any], recipe_url: str) -> RenderedPdf:
        try:
            async with asyncio.timeout(self._slot_wait_s):
                await self._slots.acquire()
        except TimeoutError:
            self.stats.busy += 1
            raise TransientError("every pick-ticket render slot is busy", retry_after_s=self._retry_after_s) from None
        try:
            self.stats.renders += 1
            body = await asyncio.to_thread(self.renderer, recipe, recipe_url=recipe_url)
        finally:
            self._slots.release()
        pdf = RenderedPdf.of(body)
        self.cache.put(key, pdf)
        return pdf

    def _landed(self, key: RenderKey, task: asyncio.Task[RenderedPdf]) -> None:
        if self._in_flight.get(key) is task:
            del self._in_flight[key]
        # Retrieved here so a failure nobody waits for any more (every caller gone) is not logged as lost.
        if not task.cancelled() and task.exception() is not None:
            logger.debug("pick-ticket render for %s failed: %s", key.recipe_id, task.exception())
