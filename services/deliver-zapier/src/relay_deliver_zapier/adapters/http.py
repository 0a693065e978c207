"""Hook POSTs over one shared aiohttp session; HTTP statuses translated to the error taxonomy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp

from relay_deliver_zapier.domain import JsonObject
from relay_deliver_zapier.settings import HookSettings
from relay_platform.errors import PermanentError, TransientError

_RETRY_AFTER_CAP_S = 3600.0


def retry_after_s(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date); ``None`` if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), _RETRY_AFTER_CAP_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP_S)


class HttpHookPoster:
    """POSTs JSON with ``Idempotency-Key``; 2xx ok, 408/429/5xx transient (keeping Retry-After), other 4xx
    permanent. Errors name the hook's host only: the URL's path is the hook's credential."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def post(self, url: str, payload: JsonObject, *, idempotency_key: str) -> None:
        host = _host(url)
        try:
            async with self._session.post(
                url, json=payload, headers={"Idempotency-Key": idempotency_key}, allow_redirects=False
            ) as response:
                status = response.status
                retry_after = retry_after_s(response.headers.get("Retry-After"))
        except aiohttp.InvalidURL as error:
            raise PermanentError("hook-url is not a valid URL") from error
        except (aiohttp.ClientError, TimeoutError) as error:
            raise TransientError(f"cannot reach hook at {host}: {type(error).__name__}") from error
        if 200 <= status < 300:
            return
        if status in (408, 429) or status >= 500:
            raise TransientError(f"hook at {host} answered {status}", retry_after_s=retry_after)
        raise PermanentError(f"hook at {host} answered {status}")


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or "?"
    except ValueError:
        return "?"


@asynccontextmanager
async def hook_poster(settings: HookSettings) -> AsyncIterator[HttpHookPoster]:
    """One client session (connection pool per host) for the process lifetime."""
    connector = aiohttp.TCPConnector(limit_per_host=settings.connections_per_host)
    timeout = aiohttp.ClientTimeout(total=settings.request_timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers={"User-Agent": settings.user_agent}
    ) as session:
        yield HttpHookPoster(session)
