"""Bounded on-demand pick tickets: a byte-bounded LRU cache, one render per recipe version, per-client limits, slots.

``GET /recipe/<id>.pdf`` answers anonymous callers for public recipes, so nothing about it may grow with the load:
a cached PDF costs a lookup; a render costs one of ``slots`` worker threads, and a caller who would wait longer than
``slot_wait_s`` for one gets 503 + Retry-After rather than a place in an unbounded queue; renders per client are
rate limited (429 + Retry-After). Access is checked before the cache is asked, on every request.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay_ingest_api.ratelimit import RateLimitedError
from relay_platform.errors import TransientError

logger = logging.getLogger("relay.ingest_api.renders")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Renderer = Callable[..., bytes]
"""``render(recipe, *, recipe_url=...) -> PDF bytes`` (``relay_pickticket.render_pick_ticket``); runs in a thread."""

# Bookkeeping per cache entry beyond the PDF's bytes (key, ETag, links): keeps many tiny entries bounded too.
_ENTRY_OVERHEAD = 256


@dataclass(frozen=True, slots=True)
class RenderKey:
    """A recipe version: its ID and the SHA-256 of its stored JSON (a re-save with other bytes is another key)."""

    recipe_id: str
    recipe_sha256: str

    @classmethod
    def of(cls, recipe_id: str, stored_json: bytes) -> RenderKey:
        return cls(recipe_id, hashlib.sha256(stored_json).hexdigest())


@dataclass(frozen=True, slots=True)
class RenderedPdf:
    body: bytes
    etag: str
    """Strong ETag: the quoted SHA-256 of ``body`` (renders are byte-for-byte deterministic)."""

    @classmethod
    def of(cls, body: bytes) -> RenderedPdf:
        return cls(body, f'"{hashlib.sha256(body).hexdigest()}"')

    def matches(self, if_none_match: str | None) -> bool:
        """Whether an ``If-None-Match`` header names this body (weak comparison, as RFC 9110 asks for it)."""
        if not if_none_match:
            return False
        tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
        return "*" in tags or self.etag in tags


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


class ClientRateLimiter:
    """A token bucket per client (``burst`` tokens, refilled at ``per_second``): ``check`` takes one or raises
    ``RateLimitedError`` with the whole seconds until one is back.

    Written out rather than one ``aiolimiter`` per client (as ``KeyRateLimiter`` does) because clients here are
    anonymous addresses without number: buckets idle long enough to be full again are dropped (they equal a new
    one), and at most ``max_clients`` are kept, the least recently seen dropped first.
    """

    def __init__(
        self,
        per_second: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._max_clients = max_clients
        self._clock = clock
        # client -> (tokens, when they were counted); ordered by last use.
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, client: str) -> None:
        now = self._clock()
        self._forget_full(now)
        tokens, counted = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - counted) * self.per_second)
        if tokens < 1:
            self._buckets[client] = (tokens, now)
            raise RateLimitedError(max(1, math.ceil((1 - tokens) / self.per_second)))
        self._buckets[client] = (tokens - 1, now)
        while len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)

    def _forget_full(self, now: float) -> None:
        while self._buckets:
            tokens, counted = next(iter(self._buckets.values()))
            if tokens + (now - counted) * self.per_second < self.burst:
                return
            self._buckets.popitem(last=False)


def originating_address(peer: str | None, forwarded_for: Iterable[str], trusted_proxies: Sequence[IPNetwork]) -> str:
    """Who a request comes from, for per-client limits: the peer address, or, when the peer is a trusted proxy,
    the ``X-Forwarded-For`` entry nearest to us that is not a trusted proxy itself (entries further left are
    whatever the client wrote). IPv6 clients count per /64, the block one subscriber usually holds."""
    current = _address(peer)
    if current is None:
        return "unknown"
    if _trusted(current, trusted_proxies):
        hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage: no trusted proxy wrote it; the last proxy is all we know
            current = address
            if not _trusted(address, trusted_proxies):
                break
    if isinstance(current, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((current, 64), strict=False))
    return str(current)


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    try:
        address = ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[IPNetwork]) -> bool:
    return any(address.version == network.version and address in network for network in proxies)


class PickTicketRenders:
    """The pick tickets ``GET /recipe/<id>.pdf`` serves: cached, rendered once per recipe version however many ask
    at once (single flight), in at most ``slots`` threads, at most ``rate`` renders per client."""

    def __init__(
        self,
        renderer: Renderer,
        *,
        cache_bytes: int,
        slots: int,
        slot_wait_s: float,
        retry_after_s: float,
        limiter: ClientRateLimiter,
        trusted_proxies: Sequence[IPNetwork] = (),
    ) -> None:
        self.renderer = renderer
        self.stats = RenderStats()
        self.cache = PdfCache(cache_bytes, self.stats)
        self.limiter = limiter
        self.trusted_proxies = tuple(trusted_proxies)
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
