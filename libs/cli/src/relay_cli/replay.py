"""``relay replay``: re-trigger, in paced batches, the deliveries that failed for good in a time window.

The loop over ``POST /api/v2/deliveries/replay``: a dry run counts, then batches follow ``next`` until it is null, at
most ``rate`` deliveries a second (a destination that just recovered is not flooded), honouring the API's
``Retry-After`` on 429 (the tenant's trigger budget) and 503. Replaying is idempotent on the server (a replayed
delivery no longer matches), so a batch retried after a 429/503, or a whole run started again, sends nothing twice.

Sleep, clock and the stop check are injected: tests assert on the waits it computes, never on wall time.
The API key goes only into the ``Authorization`` header: it is never printed, logged or put in a URL.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

from relay_cli.trigger import api_error_message

REPLAY_PATH = "/api/v2/deliveries/replay"
DEFAULT_RATE = 5.0
DEFAULT_BATCH = 25
MAX_BATCH = 100
STATUSES = ("failed",)
MAX_RETRIES = 5
"""Consecutive 429/503 answers for one batch before the run gives up (and says what it did)."""
MAX_RETRY_AFTER_S = 300.0
"""A longer ``Retry-After`` is not waited out silently: the run stops and says when to try again."""
FALLBACK_RETRY_S = 2.0
"""The wait for a 429/503 without a readable ``Retry-After`` (doubled per retry)."""
RETRIED_STATUSES = frozenset({429, 503})

_DURATION = re.compile(r"([0-9]+)([smhd])")
_DURATIONS = re.compile(r"(?:[0-9]+[smhd])+")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Sleep = Callable[[float], Awaitable[None]]


class ReplayFailedError(Exception):
    """The replay stopped on an error; ``done`` is what it replayed before (the message is safe to print)."""

    def __init__(self, message: str, done: ReplaySummary | None = None) -> None:
        super().__init__(message)
        self.done = done if done is not None else ReplaySummary()


# --- the window ------------------------------------------------------------------------------------------------


def parse_instant(value: str, now: datetime) -> datetime:
    """``2h``, ``30m``, ``1d``, ``1h30m`` (that long before ``now``) or an RFC 3339 instant with an offset.

    Raises ``ValueError`` with a message meant for the operator.
    """
    text = value.strip()
    if _DURATIONS.fullmatch(text):
        seconds = sum(int(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(text))
        try:
            return _representable(now - timedelta(seconds=seconds))
        except OverflowError:
            raise ValueError(f"{value!r} reaches back past the year 1") from None
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        instant = None
    # A date alone or a time without an offset is ambiguous across time zones: refused rather than guessed.
    if instant is None or instant.tzinfo is None:
        raise ValueError(
            f"{value!r} is neither a duration (30m, 2h, 1d, 1h30m) nor an RFC 3339 instant with an offset "
            "(2026-12-01T10:00:00Z)"
        )
    try:
        return _representable(instant)
    except OverflowError:
        raise ValueError(f"{value!r} has no UTC form between the years 1 and 9998") from None


def _representable(instant: datetime) -> datetime:
    """``instant`` when its UTC form lies in the years 1-9998 (what the API takes); ``OverflowError`` otherwise."""
    utc = instant.astimezone(UTC)
    if not 1 <= utc.year <= 9998:
        raise OverflowError(utc.year)
    return instant


def rfc3339(instant: datetime) -> str:
    """UTC with a ``Z``, whole seconds unless the instant had a fraction."""
    utc = instant.astimezone(UTC)
    return utc.isoformat(timespec="seconds" if utc.microsecond == 0 else "milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Selection:
    """What to replay: the request body's filter (the same on every call of one run)."""

    since: str
    until: str | None = None
    integration: str | None = None
    status: str = "failed"

    def body(self, *, dry_run: bool, limit: int, after: str | None = None) -> dict[str, object]:
        body: dict[str, object] = {"since": self.since, "status": self.status, "dryRun": dry_run, "limit": limit}
        if self.until is not None:
            body["until"] = self.until
        if self.integration is not None:
            body["integrationId"] = self.integration
        if after is not None:
            body["after"] = after
        return body

    def describe(self, count: int) -> str:
        """``N deliveries of demo-sftp failed for good between … and … and were not replayed``."""
        what = self.integration or "all integrations"
        noun = "delivery" if count == 1 else "deliveries"
        return (
            f"{count} {noun} of {what} failed for good between {self.since} and {self.until or 'now'} "
            "and were not replayed"
        )


# --- the answers -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Replayed:
    """One delivery re-triggered by the replay (its new trigger for that one integration)."""

    delivery_id: str
    replay_trigger_id: str
    integration: str
    order_id: str | None
    order_number: str | None
    recipe_id: str


@dataclass(frozen=True, slots=True)
class Batch:
    dry_run: bool
    matched: int
    replayed: int
    deliveries: tuple[Replayed, ...]
    next: str | None
    skipped: int = 0
    """Left out by the API: their integration is no longer configured or enabled (they stay unreplayed)."""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def parse_batch(document: object) -> Batch:
    """A 200 (dry run) or 202 answer of ``POST /api/v2/deliveries/replay``."""
    if not isinstance(document, dict):
        raise ReplayFailedError("the API answered without a JSON object")
    matched, replayed = _count(document.get("matched")), _count(document.get("replayed"))
    entries = document.get("deliveries")
    after = document.get("next")
    if matched is None or replayed is None or not isinstance(entries, list) or not (after is None or _text(after)):
        raise ReplayFailedError("the API answered with an unreadable replay result")
    deliveries = []
    for entry in entries:
        if not isinstance(entry, dict) or not _text(entry.get("deliveryId")):
            raise ReplayFailedError("the API answered with an unreadable replayed delivery")
        deliveries.append(
            Replayed(
                delivery_id=entry["deliveryId"],
                replay_trigger_id=_text(entry.get("replayTriggerId")) or "",
                integration=_text(entry.get("integration")) or "?",
                order_id=_text(entry.get("orderId")),
                order_number=_text(entry.get("orderNumber")),
                recipe_id=_text(entry.get("recipeId")) or "",
            )
        )
    return Batch(
        dry_run=document.get("dryRun") is True,
        matched=matched,
        replayed=replayed,
        deliveries=tuple(deliveries),
        next=_text(after),
        skipped=_count(document.get("skipped")) or 0,
    )


@dataclass(slots=True)
class ReplaySummary:
    """What a run did so far; complete when it ends, partial in a ``ReplayFailedError`` or after a stop."""

    deliveries: list[Replayed] = field(default_factory=list)
    batches: int = 0
    skipped: int = 0
    stopped: bool = False

    @property
    def replayed(self) -> int:
        return len(self.deliveries)

    def per_integration(self) -> list[tuple[str, int]]:
        """Integration and count, the most replayed first."""
        counts = Counter(d.integration for d in self.deliveries)
        return sorted(counts.items(), key=lambda item: (-item[1], item[0]))

    def text(self, first: int = 5) -> str:
        """The closing summary: how many, per integration, and the first delivery IDs (to look up or grep)."""
        noun = "delivery" if self.replayed == 1 else "deliveries"
        lines = [f"{self.replayed} {noun} replayed in {self.batches} batch(es){' (stopped)' if self.stopped else ''}"]
        lines += [f"  {integration}: {count}" for integration, count in self.per_integration()]
        if self.skipped:
            lines.append(f"{self.skipped} skipped: their integration is no longer configured or enabled")
        if self.deliveries:
            ids = ", ".join(d.delivery_id for d in self.deliveries[:first])
            rest = self.replayed - first
            lines.append(f"first delivery IDs: {ids}{f' (and {rest} more)' if rest > 0 else ''}")
        return "\n".join(lines)


# --- the calls -------------------------------------------------------------------------------------------------


def retry_wait(retry_after: str | None, retry: int) -> float:
    """Seconds to wait before retrying a 429/503: its ``Retry-After`` seconds, else a doubling fallback."""
    if retry_after is not None:
        try:
            seconds = float(retry_after.strip())
        except ValueError:
            seconds = -1.0  # an HTTP date or garbage: the fallback below
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    return min(FALLBACK_RETRY_S * 2.0**retry, 60.0)


def pacing_wait(replayed: int, rate: float, elapsed: float) -> float:
    """Seconds to wait after a batch of ``replayed`` so that at most ``rate`` a second are re-triggered overall:
    the batch "costs" ``replayed / rate`` seconds, of which ``elapsed`` (the call itself) have passed."""
    return max(0.0, replayed / rate - elapsed)


@dataclass(slots=True)
class ReplayClient:
    """One HTTP session to the ingest API for a whole run, with the retry policy for 429/503."""

    api_url: str
    api_key: str
    sleep: Sleep = asyncio.sleep
    timeout_s: float = 30.0
    max_retries: int = MAX_RETRIES
    on_wait: Callable[[float, str], None] | None = None
    stop: Callable[[], bool] = lambda: False
    """Checked after each retry wait: a stop asked for while waiting ends the run there, the batch not sent."""
    _session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ReplayClient:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, body: dict[str, object], done: ReplaySummary) -> Batch:
        """One batch (or the dry run), retried on 429/503 after their ``Retry-After``; the same body each time."""
        assert self._session is not None, "use ReplayClient in `async with`"
        url = self.api_url.rstrip("/") + REPLAY_PATH
        base = self.api_url.rstrip("/")
        retry = 0
        while True:
            try:
                async with self._session.post(
                    url, json=body, headers={"Authorization": f"Bearer {self.api_key}"}
                ) as response:
                    status = response.status
                    text = await response.text(errors="replace")
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as failure:
                raise ReplayFailedError(f"cannot reach the API at {base}: {type(failure).__name__}", done) from failure
            if status in (200, 202):
                try:
                    document: object = json.loads(text)
                except ValueError as failure:
                    raise ReplayFailedError(f"the API answered {status} without JSON", done) from failure
                try:
                    return parse_batch(document)
                except ReplayFailedError as failure:
                    raise ReplayFailedError(str(failure), done) from failure
            message = api_error_message(status, text, retry_after)
            if status not in RETRIED_STATUSES:
                raise ReplayFailedError(message, done)
            if retry >= self.max_retries:
                raise ReplayFailedError(f"{message} (gave up after {retry} retries)", done)
            wait = retry_wait(retry_after, retry)
            if wait > MAX_RETRY_AFTER_S:
                raise ReplayFailedError(f"{message}: the API asks to wait longer than {MAX_RETRY_AFTER_S:.0f} s", done)
            retry += 1
            if self.on_wait is not None:
                self.on_wait(wait, f"HTTP {status} (retry {retry} of {self.max_retries})")
            await self.sleep(wait)
            if self.stop():
                done.stopped = True
                raise ReplayFailedError(f"stopped while waiting to retry after {message}", done)


async def count(client: ReplayClient, selection: Selection) -> int:
    """The dry run: how many deliveries match now (nothing is re-triggered)."""
    batch = await client.post(selection.body(dry_run=True, limit=1), ReplaySummary())
    return batch.matched


async def replay_batches(
    client: ReplayClient,
    selection: Selection,
    *,
    rate: float = DEFAULT_RATE,
    batch_size: int = DEFAULT_BATCH,
    clock: Callable[[], float] = time.monotonic,
    stop: Callable[[], bool] = lambda: False,
    on_batch: Callable[[Batch, ReplaySummary], None] | None = None,
    done: ReplaySummary | None = None,
) -> ReplaySummary:
    """Batches until ``next`` is null or ``stop()`` says so (checked between batches: a batch is never cut).

    ``done`` (a new one by default) fills as batches are answered: the caller still has it if the run is cancelled.
    """
    done = done if done is not None else ReplaySummary()
    after: str | None = None
    while True:
        started = clock()
        batch = await client.post(selection.body(dry_run=False, limit=batch_size, after=after), done)
        done.batches += 1
        done.skipped += batch.skipped
        done.deliveries.extend(batch.deliveries)
        if on_batch is not None:
            on_batch(batch, done)
        if batch.next is None:
            return done
        if batch.next == after:
            raise ReplayFailedError("the API answered the same cursor twice: stopped to avoid a loop", done)
        after = batch.next
        if stop():
            done.stopped = True
            return done
        await client.sleep(pacing_wait(batch.replayed, rate, clock() - started))
        if stop():
            done.stopped = True
            return done
