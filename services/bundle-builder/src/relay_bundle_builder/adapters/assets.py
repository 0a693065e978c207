"""Fetch recipe assets over HTTP(S) with aiohttp: SSRF guard, manual redirects, size cap, timeouts, retries.

SSRF: an asset host must resolve only to public addresses unless the tenant's ``allowed-asset-hosts`` lists it
(with the port, see ``relay_platform.tenants.AssetHost``). Checked before each request and each redirect hop
(``_check_target``), and again on the very addresses a connection uses (``GuardedResolver``, against DNS
rebinding). ``is_public_address`` says which addresses count as public, IPv6 forms embedding an IPv4 included.
"""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urljoin, urlparse

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from yarl import URL

from relay_bundle_builder.domain import AssetError, AssetUnavailableError, ByteBudget
from relay_bundle_builder.ports import FetchedAsset
from relay_bundle_builder.settings import AssetFetchSettings
from relay_bundle_builder.spool import AssetSpool
from relay_platform.objectstore import classify_os_error
from relay_platform.tenants import AssetHost, parse_asset_host

logger = logging.getLogger("relay.bundle_builder.assets")

_REDIRECTS = {301, 302, 303, 307, 308}
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}
_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Hop:
    """The request being made: its tenant's allow-list and its URL's scheme (for entries without a port)."""

    allowed: tuple[AssetHost, ...]
    scheme: str


# The hop being fetched, seen by the connector's resolver.
_hop: contextvars.ContextVar[_Hop | None] = contextvars.ContextVar("asset_hop", default=None)


class _RetryableFetchError(Exception):
    """Internal: one try failed in a way worth another try."""


def _host_allowed(host: str, port: int, scheme: str, allowed: Sequence[AssetHost]) -> bool:
    host = host.lower().strip("[]")
    return any(entry.allows(host, port, scheme) for entry in allowed)


# IANA's special-purpose registries, entries not globally reachable. Spelled out because Python's own tables
# (``is_global``) differ between versions: 3.11 calls ``::7f00:1`` and ``64:ff9b:1::1`` global.
_NON_PUBLIC_V4 = tuple(
    ipaddress.IPv4Network(network)
    for network in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",  # reserved, and 255.255.255.255
    )
)
_NON_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(network)
    for network in (
        "::/96",  # unspecified ::, loopback ::1 and the deprecated IPv4-compatible ::a.b.c.d
        "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): where the IPv4 sits is the network's choice
        "100::/64",  # discard-only
        "2001::/23",  # IETF protocol assignments, Teredo 2001::/32 among them
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4
        "3fff::/20",  # documentation
        "5f00::/16",  # segment routing (SRv6) SIDs
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_ISATAP_MARK, _ISATAP_MASK = 0x00005EFE, 0xFDFFFFFF  # interface ID 0000:5efe or 0200:5efe (u/l bit) + IPv4


def _public_v4(ip: ipaddress.IPv4Address) -> bool:
    return ip.is_global and not any(ip in network for network in _NON_PUBLIC_V4)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 host an IPv4-mapped, IPv4-translated or NAT64 (64:ff9b::/96) address reaches."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _IPV4_TRANSLATED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public_address(address: str) -> bool:
    """Only globally routable unicast addresses; private, loopback, link-local, CGNAT, multicast… are not.

    IPv6 forms embedding an IPv4 address: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``)
    and NAT64 (``64:ff9b::a.b.c.d``) reach that IPv4 host, so they are public exactly when it is (an IPv6-only
    cluster's DNS64 answers every IPv4-only CDN with a ``64:ff9b::`` address). The deprecated IPv4-compatible
    ``::a.b.c.d``, local-use NAT64 ``64:ff9b:1::/48``, 6to4 ``2002::/16`` and Teredo ``2001::/32`` are never public,
    whatever IPv4 they embed: their relays may sit inside our network and no asset host needs them. An ISATAP
    interface ID (``…:0:5efe:a.b.c.d``) with a non-public IPv4 is refused. An address with a zone
    (``fe80::1%eth0``) is never public: a zone only scopes link-local and site addresses.
    """
    text, percent, _zone = address.partition("%")
    if percent:
        return False
    ip = ipaddress.ip_address(text)
    if isinstance(ip, ipaddress.IPv4Address):
        return _public_v4(ip)
    embedded = _embedded_v4(ip)
    if embedded is not None:
        return _public_v4(embedded)
    if any(ip in network for network in _NON_PUBLIC_V6):
        return False
    if (int(ip) >> 32) & _ISATAP_MASK == _ISATAP_MARK and not _public_v4(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)):
        return False
    return ip.is_global and not ip.is_multicast


_HEX = re.compile(r"0x[0-9a-f]*")


def numeric_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host written as a number means (URL standard: ``2130706433``, ``0x7f.1``,
    ``017700000001``, ``127.1`` all mean 127.0.0.1), or ``None`` when it is a name. ``ValueError`` when it ends in a
    number but is no address (``1.2.3.4.5``, ``example.123``)."""
    parts = host.lower().split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    if not (last.isascii() and last.isdigit()) and not _HEX.fullmatch(last):
        return None
    if len(parts) > 4:
        raise ValueError(f"{host!r} ends in a number but has more than four parts")
    numbers: list[int] = []
    for part in parts:
        if _HEX.fullmatch(part):
            numbers.append(int(part[2:] or "0", 16))
        elif part.isascii() and part.isdigit():
            numbers.append(int(part, 8) if len(part) > 1 and part.startswith("0") else int(part))
        else:
            raise ValueError(f"{host!r} ends in a number but {part!r} is not one")
    *leading, final = numbers
    if any(n > 255 for n in leading) or final >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is out of the IPv4 range")
    value = final
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


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
        hop = _hop.get()
        if hop is None or not _host_allowed(host, port, hop.scheme, hop.allowed):
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


def _allow_hint(host: str, port: int) -> str:
    if "%" in host:
        return ""  # a zoned address cannot be allow-listed
    return f" (add {AssetHost(host, port)} to the tenant's allowed-asset-hosts if it is trusted)"


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


def make_session(settings: AssetFetchSettings) -> aiohttp.ClientSession:
    """The process's asset HTTP session; DNS cache off so every connection's addresses are checked."""
    connector = aiohttp.TCPConnector(
        resolver=GuardedResolver(), use_dns_cache=False, limit=max(settings.concurrency * 2, 10)
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=settings.timeout_s, sock_connect=settings.connect_timeout_s),
        auto_decompress=True,
        headers={"User-Agent": "RecipeRelay-BundleBuilder/0.1"},
        trust_env=False,
    )


class HttpAssetFetcher:
    """Implements the ``AssetFetcher`` port. Errors name the asset (``label``), never its URL's query/secrets."""

    def __init__(self, session: aiohttp.ClientSession, settings: AssetFetchSettings) -> None:
        self._session = session
        self._settings = settings
        self._limit = asyncio.Semaphore(settings.concurrency)

    async def fetch(
        self, url: str, *, label: str, allowed_hosts: Sequence[str], budget: ByteBudget | None = None
    ) -> FetchedAsset:
        try:
            allowed = tuple(parse_asset_host(entry) for entry in allowed_hosts)
        except ValueError as error:
            raise AssetError(f"{label}: the tenant's allowed-asset-hosts is invalid ({error})") from error
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._settings.retries + 1),
            wait=wait_exponential(multiplier=self._settings.retry_wait_s, max=10),
            retry=retry_if_exception_type(_RetryableFetchError),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self._limit:
                        return await self._fetch_once(url, label, allowed, budget)
        except _RetryableFetchError as error:
            raise AssetUnavailableError(f"{label}: {error} (after {self._settings.retries + 1} tries)") from error
        raise AssetUnavailableError(f"{label}: not fetched")  # unreachable: tenacity re-raises or returns

    async def _fetch_once(
        self, url: str, label: str, allowed: tuple[AssetHost, ...], budget: ByteBudget | None
    ) -> FetchedAsset:
        token = _hop.set(None)
        try:
            current = url
            for _ in range(self._settings.max_redirects + 1):
                # Every hop is checked afresh: a redirect may name another host, port or scheme.
                scheme = await self._check_target(current, label, allowed)
                _hop.set(_Hop(allowed, scheme))
                async with self._session.get(current, allow_redirects=False) as response:
                    if response.status in _REDIRECTS:
                        location = response.headers.get("Location")
                        if not location:
                            raise AssetError(f"{label}: redirect without a Location")
                        current = urljoin(current, location)
                        continue
                    return await self._read(response, label, budget)
            raise AssetError(f"{label}: more than {self._settings.max_redirects} redirects")
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
            _hop.reset(token)

    async def _check_target(self, url: str, label: str, allowed: tuple[AssetHost, ...]) -> str:
        """Scheme, host and address checks before connecting, for a clear permanent error (and each redirect hop);
        the URL's scheme."""
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
            # Judged as aiohttp will connect: yarl's host (lower case, IDNA-encoded) and port.
            target = URL(url)
            host, port = (target.raw_host or "").lower(), target.port
        except ValueError as error:
            raise AssetError(f"{label}: invalid port in URL") from error
        if not port:
            raise AssetError(f"{label}: invalid port in URL")
        try:
            numeric = None if ":" in host else numeric_ipv4(host)
        except ValueError as error:
            raise AssetError(f"{label}: host {host!r} is neither a name nor an IPv4 address") from error
        if numeric is not None and str(numeric) != host:
            raise AssetError(
                f"{label}: refused, numeric host {host!r} means {numeric} "
                f"({'public' if is_public_address(str(numeric)) else 'not public'}): write IPv4 addresses as a.b.c.d"
            )
        if _host_allowed(host, port, parsed.scheme, allowed):
            return parsed.scheme
        if _is_ip_literal(unquote(host)):
            if not is_public_address(unquote(host).strip("[]")):
                raise AssetError(
                    f"{label}: refused, {host!r} is a private, loopback, link-local or otherwise non-public "
                    f"address{_allow_hint(host, port)}"
                )
            return parsed.scheme
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
                f"{label}: refused, host {host!r} resolves to a private, loopback or link-local address"
                f"{_allow_hint(host, port)}"
            )
        return parsed.scheme

    async def _read(self, response: aiohttp.ClientResponse, label: str, budget: ByteBudget | None) -> FetchedAsset:
        if response.status == 200:
            declared = response.content_length
            if declared is not None and declared > self._settings.max_bytes:
                raise AssetError(f"{label}: {declared} bytes exceeds the {self._settings.max_bytes}-byte limit")
            # Spooled as it arrives: in memory while small (within the bundle's allowance), else in a temporary file.
            spool = AssetSpool(allowance=budget)
            try:
                await self._spool(response, spool, label, budget)
            except BaseException:
                spool.close()
                raise
            return FetchedAsset(spool, media_type(response.headers.get("Content-Type")))
        if response.status in _TRANSIENT_STATUS:
            raise _RetryableFetchError(f"HTTP {response.status}")
        if response.status in {404, 410}:
            raise AssetError(f"{label}: not found (HTTP {response.status})")
        raise AssetError(f"{label}: HTTP {response.status}")

    async def _spool(
        self, response: aiohttp.ClientResponse, spool: AssetSpool, label: str, budget: ByteBudget | None
    ) -> None:
        async for chunk in response.content.iter_chunked(_CHUNK):
            if spool.size + len(chunk) > self._settings.max_bytes:
                raise AssetError(f"{label}: larger than the {self._settings.max_bytes}-byte limit")
            if budget is not None:
                budget.charge(len(chunk), label=label)
            try:
                await spool.write(chunk)
            except OSError as error:
                # The local disk, not the asset: a full TMPDIR is transient (the trigger is read again later).
                raise classify_os_error(error, f"{label}: cannot spool to a temporary file") from error
