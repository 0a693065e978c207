"""Fetch recipe assets over HTTP(S) with aiohttp: SSRF guard, manual redirects, size cap, timeouts, retries."""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlparse

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from relay_bundle_builder.domain import AssetError, AssetUnavailableError
from relay_bundle_builder.service import ByteBudget, FetchedAsset

logger = logging.getLogger("relay.bundle_builder.assets")

_REDIRECTS = {301, 302, 303, 307, 308}
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 64 * 1024

# The allow-list of the tenant whose asset is being fetched, seen by the connector's resolver.
_allowed_hosts: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("allowed_hosts", default=frozenset())


class _RetryableFetchError(Exception):
    """Internal: one try failed in a way worth another try."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    timeout_s: float = 20.0
    connect_timeout_s: float = 5.0
    max_bytes: int = 100 * 1024 * 1024
    retries: int = 2
    retry_wait_s: float = 0.5
    max_redirects: int = 5
    concurrency: int = 8


def _host_allowed(host: str, port: int | None, allowed: frozenset[str]) -> bool:
    host = host.lower().strip("[]")
    return host in allowed or (port is not None and f"{host}:{port}" in allowed)


def is_public_address(address: str) -> bool:
    """Only globally routable unicast addresses; private, loopback, link-local, CGNAT, multicast… are not."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp's default, then refuses non-public addresses for hosts not on the allow-list.

    This is the check that matters against DNS rebinding: it runs on the very addresses the connection uses.
    """

    def __init__(self) -> None:
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if not _host_allowed(host, port, _allowed_hosts.get()):
            for result in results:
                if not is_public_address(result["host"]):
                    raise OSError(f"refused non-public address for {host}")
        return results

    async def close(self) -> None:
        await self._inner.close()


_MEDIA_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}$")


def media_type(header: str | None) -> str:
    """The response's ``type/subtype`` (parameters dropped), or ``application/octet-stream`` when the header is
    missing or not one: a server's header becomes a file's MIME type in messages with bounded fields."""
    media = (header or "").split(";", 1)[0].strip().lower()
    return media if _MEDIA_TYPE.match(media) else "application/octet-stream"


def _encodable_host(host: str) -> bool:
    """Whether ``host`` can be looked up at all: IDNA-encodable, every label 1-63 bytes, 253 bytes in all."""
    if _is_ip_literal(host):
        return True
    try:
        encoded = host.rstrip(".").encode("idna")
    except UnicodeError:
        return False
    labels = encoded.split(b".")
    return 0 < len(encoded) <= 253 and all(0 < len(label) <= 63 for label in labels)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def make_session(policy: FetchPolicy) -> aiohttp.ClientSession:
    """The process's asset HTTP session; DNS cache off so every connection's addresses are checked."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(), use_dns_cache=False, limit=max(policy.concurrency * 2, 10)
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=policy.timeout_s, sock_connect=policy.connect_timeout_s),
        auto_decompress=True,
        headers={"User-Agent": "RecipeRelay-BundleBuilder/0.1"},
        trust_env=False,
    )


class HttpAssetFetcher:
    """Implements the ``AssetFetcher`` port. Errors name the asset (``label``), never its URL's query/secrets."""

    def __init__(self, session: aiohttp.ClientSession, policy: FetchPolicy) -> None:
        self._session = session
        self._policy = policy
        self._limit = asyncio.Semaphore(policy.concurrency)

    async def fetch(
        self, url: str, *, label: str, allowed_hosts: Sequence[str], budget: ByteBudget | None = None
    ) -> FetchedAsset:
        allowed = frozenset(h.lower().strip() for h in allowed_hosts)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._policy.retries + 1),
            wait=wait_exponential(multiplier=self._policy.retry_wait_s, max=10),
            retry=retry_if_exception_type(_RetryableFetchError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._limit:
                        return await self._fetch_once(url, label, allowed, budget)
        except _RetryableFetchError as error:
            raise AssetUnavailableError(f"{label}: {error} (after {self._policy.retries + 1} tries)") from error
        raise AssetUnavailableError(f"{label}: not fetched")  # unreachable: tenacity re-raises or returns

    async def _fetch_once(
        self, url: str, label: str, allowed: frozenset[str], budget: ByteBudget | None
    ) -> FetchedAsset:
        token = _allowed_hosts.set(allowed)
        try:
            current = url
            for _ in range(self._policy.max_redirects + 1):
                await self._check_target(current, label, allowed)
                async with self._session.get(current, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            raise AssetError(f"{label}: redirect without a Location")
                        current = urljoin(current, location)
                        continue
                    return await self._read(response, label, budget)
            raise AssetError(f"{label}: more than {self._policy.max_redirects} redirects")
        except aiohttp.ClientResponseError as error:
            # The server's answer could not be parsed (an over-long header line, a malformed status): it will
            # answer the same way next time.
            raise AssetError(f"{label}: unreadable HTTP response ({type(error).__name__})") from error
        except (UnicodeError, ValueError) as error:
            # yarl/aiohttp refuse host names that IDNA cannot encode (empty or over-long labels) and other
            # malformed URLs at request time.
            raise AssetError(f"{label}: the URL cannot be requested (malformed host name or URL)") from error
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as error:
            if isinstance(error, aiohttp.ClientConnectorError) and "refused non-public address" in str(error):
                raise AssetError(f"{label}: host resolves to a non-public address") from error
            reason = "timed out" if isinstance(error, TimeoutError) else f"connection failed ({type(error).__name__})"
            raise _RetryableFetchError(reason) from error
        finally:
            _allowed_hosts.reset(token)

    async def _check_target(self, url: str, label: str, allowed: frozenset[str]) -> None:
        """Scheme and address checks before connecting, for a clear permanent error (and each redirect hop)."""
        try:
            parsed = urlparse(url)
            host = parsed.hostname
        except ValueError as error:
            raise AssetError(f"{label}: malformed URL") from error
        if parsed.scheme not in {"http", "https"} or not host:
            raise AssetError(f"{label}: only http(s) URLs are fetched")
        if not _encodable_host(host):
            raise AssetError(f"{label}: host name cannot be encoded for DNS (empty or over-long labels)")
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError as error:
            raise AssetError(f"{label}: invalid port in URL") from error
        if _host_allowed(host, port, allowed):
            return
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except UnicodeError as error:
            raise AssetError(f"{label}: host name cannot be encoded for DNS") from error
        except socket.gaierror as error:
            # Unknown names stay unknown; a resolver outage shows up as EAI_AGAIN.
            if error.errno == socket.EAI_AGAIN:
                raise _RetryableFetchError("DNS lookup failed temporarily") from error
            raise AssetError(f"{label}: host {host!r} does not resolve") from error
        addresses = {str(info[4][0]) for info in infos}
        if not addresses or not all(is_public_address(a) for a in addresses):
            raise AssetError(
                f"{label}: refused, host {host!r} resolves to a private, loopback or link-local address "
                "(add it to the tenant's allowed-asset-hosts if it is trusted)"
            )

    async def _read(self, response: aiohttp.ClientResponse, label: str, budget: ByteBudget | None) -> FetchedAsset:
        if response.status == 200:
            declared = response.content_length
            if declared is not None and declared > self._policy.max_bytes:
                raise AssetError(f"{label}: {declared} bytes exceeds the {self._policy.max_bytes}-byte limit")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(_CHUNK):
                size += len(chunk)
                if size > self._policy.max_bytes:
                    raise AssetError(f"{label}: larger than the {self._policy.max_bytes}-byte limit")
                if budget is not None:
                    budget.charge(len(chunk), label=label)
                chunks.append(chunk)
            return FetchedAsset(b"".join(chunks), media_type(response.headers.get("Content-Type")))
        if response.status in _TRANSIENT_STATUS:
            raise _RetryableFetchError(f"HTTP {response.status}")
        if response.status in {404, 410}:
            raise AssetError(f"{label}: not found (HTTP {response.status})")
        raise AssetError(f"{label}: HTTP {response.status}")
