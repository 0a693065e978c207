"""The HTTP side of the routes: reading what a request presents (key, client address, body) and writing the
headers only HTTP has (``Content-Disposition``, ``Cache-Control``). ``middleware.py`` maps errors to answers."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel

from relay_ingest_api import service
from relay_ingest_api.domain import InvalidInputError, TooLargeError
from relay_ingest_api.jsonbody import parse_json
from relay_ingest_api.ports import Ports
from relay_ingest_api.service import Credentials
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_platform.tenants import KeyMatch, Permission, Tenant

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class UnreadableBodyError(InvalidInputError):
    """The body's bytes could not be read (a Content-Encoding that does not decode): the answer closes the
    connection, as the rest of the body cannot be skipped."""


def ports(request: web.Request) -> Ports:
    return request.app[PORTS]


def settings(request: web.Request) -> Settings:
    return request.app[SETTINGS]


def presented_key(request: web.Request) -> str | None:
    """Seed 002: ``Authorization: Bearer <key>`` or the ``apikey=`` query parameter."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query.get("apikey") or None


def client_address(request: web.Request) -> str:
    """The client's address for per-client limits (``X-Forwarded-For`` only from a configured trusted proxy)."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    return originating_address(request.remote, forwarded, settings(request).trusted_proxies)


def credentials(request: web.Request) -> Credentials:
    return Credentials(key=presented_key(request), client=client_address(request))


def authorize(request: web.Request, permission: Permission) -> KeyMatch:
    """The caller, checked before anything else of the request is read (``service.authorize``)."""
    return service.authorize(ports(request), credentials(request), permission)


async def read_json(request: web.Request) -> object:
    """The body as strict JSON (``jsonbody.parse_json``), at most ``max_body`` bytes (413)."""
    return parse_json(await _read_body(request))


async def read_optional_json(request: web.Request) -> object | None:
    """Like ``read_json``, but an empty body (or only whitespace) is ``None``: the body is optional."""
    raw = await _read_body(request)
    return parse_json(raw) if raw.strip() else None


async def read_body(request: web.Request) -> bytes:
    """The raw body, at most ``max_body`` bytes (413): for a signature computed over the exact bytes."""
    return await _read_body(request)


async def _read_body(request: web.Request) -> bytes:
    limit = settings(request).max_body
    if request.content_length is not None and request.content_length > limit:
        raise TooLargeError("body_too_large", f"the body exceeds {limit} bytes")
    # client_max_size (= max_body) also stops a chunked body that grows past the limit.
    try:
        raw = await request.read()
    except web.RequestPayloadError as error:
        # A Content-Encoding (gzip, deflate) whose bytes do not decompress: the client's fault, not ours.
        raise UnreadableBodyError("malformed_body", "the request body could not be decoded") from error
    return raw


def json_response(model: BaseModel, status: int) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(), content_type="application/json")


def recipe_cache_control(tenant: Tenant) -> str:
    """A public recipe may be cached anywhere for a minute; a key-protected one nowhere."""
    return "public, max-age=60" if tenant.recipe_read == "public" else "private, no-store"


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact UTF-8 name (RFC 6266 / 5987)."""
    fallback = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in name) or "download"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


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
