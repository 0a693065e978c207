"""The internal query API (read by ingest-api) and health probes, served by aiohttp inside the FastStream app.

``GET /internal/v1/orders?tenant=<t>&(orderNumber|orderId|recipeId)=<v>[&after=<orderId>]`` (pages of 100 by
order ID; ``next`` names the following page) and
``GET /internal/v1/audit?tenant=<t>&olderThanS=<s>&limit=<n>`` answer strictly within the tenant (see README).
No secrets or PII are stored, so none can be returned: only order/line IDs, quantities and delivery status.
With a token configured, ``/internal/*`` answers only ``Authorization: Bearer <token>``; the probes stay open.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

from relay_association_store import service
from relay_association_store.adapters.repository import OrderLookup
from relay_association_store.service import AuditEntry, AuditQueries, AuditReport, DeliveryRecord, OrderView
from relay_platform.errors import RelayError

LOOKUPS: tuple[OrderLookup, ...] = ("orderNumber", "orderId", "recipeId")
MAX_PARAM = 128
# Orders per lookup page; ``next`` (the page's last order ID) is passed back as ``after`` for the following one.
PAGE_SIZE = 100
DEFAULT_OLDER_THAN_S = 15 * 60
MAX_OLDER_THAN_S = 3650 * 24 * 3600  # ten years: far past any retention, still a representable cutoff
DEFAULT_AUDIT_LIMIT = 100
_DIGITS = re.compile(r"[0-9]{1,12}")
OPEN_PATHS = frozenset({"/healthz", "/readyz"})


class OrderQueries(AuditQueries, Protocol):
    async def find_orders(
        self, tenant: str, by: OrderLookup, value: str, *, after: str | None = None, limit: int = ...
    ) -> list[OrderView]: ...
    async def ping(self, timeout_s: float = 2.0) -> bool: ...


STORE = web.AppKey("store", OrderQueries)


class BadQueryError(Exception):
    """A query parameter the API refuses; the message names it."""


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": "bad_request", "message": message}, status=400)


def _unavailable() -> web.Response:
    return web.json_response(
        {"error": "unavailable", "message": "the order database is not answering; try again"}, status=503
    )


def _rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _delivery_json(delivery: DeliveryRecord) -> dict[str, Any]:
    return {
        "integration": delivery.integration_id,
        "type": delivery.integration_type,
        "recipeId": delivery.recipe_id,
        "trigger": delivery.reason,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastError": delivery.last_error,
        "files": list(delivery.files),
    }


def order_json(view: OrderView) -> dict[str, Any]:
    order = view.order
    return {
        "orderId": order.order_id,
        "orderNumber": order.order_number,
        "status": order.status,
        "items": [
            {"recipeId": item.recipe_id, "itemId": item.item_id, "itemQuantity": item.quantity}
            for item in sorted(order.items.values(), key=lambda item: item.item_id)
        ],
        "deliveries": [_delivery_json(delivery) for delivery in view.deliveries],
    }


async def get_orders(request: web.Request) -> web.Response:
    query = request.query
    tenant = query.get("tenant", "").strip()
    if not tenant:
        return _bad_request("query parameter 'tenant' is required")
    given = [name for name in LOOKUPS if name in query]
    if len(given) != 1:
        return _bad_request("give exactly one of 'orderNumber', 'orderId' or 'recipeId'")
    by = given[0]
    value = query[by].strip()
    if not value or len(value) > MAX_PARAM or len(tenant) > MAX_PARAM:
        return _bad_request(f"'{by}' and 'tenant' must be 1 to {MAX_PARAM} characters")
    after = query.get("after")
    if after is not None and not 1 <= len(after) <= MAX_PARAM:
        return _bad_request(f"'after' must be 1 to {MAX_PARAM} characters")
    try:
        # One more than a page: whether there is a next page without a second query.
        views = await request.app[STORE].find_orders(tenant, by, value, after=after, limit=PAGE_SIZE + 1)
    except RelayError:
        return _unavailable()
    page = views[:PAGE_SIZE]
    more = len(views) > PAGE_SIZE and page
    return web.json_response(
        {"orders": [order_json(view) for view in page], "next": page[-1].order.order_id if more else None}
    )


def _whole_number(query: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadQueryError(f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


def audit_entry_json(entry: AuditEntry) -> dict[str, Any]:
    delivery = entry.delivery
    return {
        "deliveryId": delivery.delivery_id,
        "orderId": delivery.order_id,
        "orderNumber": delivery.order_number,
        "recipeId": delivery.recipe_id,
        "integration": delivery.integration_id,
        "type": delivery.integration_type,
        "trigger": delivery.reason,
        "triggerId": delivery.trigger_id,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "lastError": delivery.last_error,
        "lastChange": _rfc3339(delivery.updated_at),
        "createdAt": _rfc3339(delivery.created_at),
        "triggeredAt": _rfc3339(delivery.triggered_at),
        "reason": entry.reason,
    }


def audit_json(report: AuditReport, older_than_s: int) -> dict[str, Any]:
    return {
        "tenant": report.tenant,
        "olderThanS": older_than_s,
        "cutoff": _rfc3339(report.cutoff),
        "limit": report.limit,
        "truncated": report.truncated,
        "deliveries": [audit_entry_json(entry) for entry in report.entries],
    }


async def get_audit(request: web.Request) -> web.Response:
    query = request.query
    tenant = query.get("tenant", "").strip()
    if not tenant or len(tenant) > MAX_PARAM:
        return _bad_request(f"query parameter 'tenant' is required (1 to {MAX_PARAM} characters)")
    try:
        older_than_s = _whole_number(query, "olderThanS", default=DEFAULT_OLDER_THAN_S, low=0, high=MAX_OLDER_THAN_S)
        limit = _whole_number(query, "limit", default=DEFAULT_AUDIT_LIMIT, low=1, high=service.MAX_AUDIT_LIMIT)
    except BadQueryError as error:
        return _bad_request(str(error))
    try:
        report = await service.audit_deliveries(
            request.app[STORE], tenant, older_than=timedelta(seconds=older_than_s), limit=limit
        )
    except RelayError:
        return _unavailable()
    return web.json_response(audit_json(report, older_than_s))


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if await request.app[STORE].ping():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "database unavailable"}, status=503)


def _unauthorized() -> web.Response:
    return web.json_response(
        {"error": "unauthorized", "message": "a valid 'Authorization: Bearer <token>' header is required"},
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="association-store"'},
    )


def bearer_token_middleware(token: SecretStr) -> Middleware:
    """Answers 401 to a request without ``token`` as its bearer token (compared in constant time). Only the
    probes pass without it, so orchestrators need no secret; any other path, known or not, needs the token."""
    expected = f"Bearer {token.get_secret_value()}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in OPEN_PATHS:
            presented = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(presented, expected):
                return _unauthorized()
        return await handler(request)

    return check


def create_internal_api(store: OrderQueries, *, token: SecretStr | None = None) -> web.Application:
    """The aiohttp application; started and stopped by the FastStream lifespan (see ``main``). ``token``: the
    bearer token ``/internal/*`` requires (``None`` only on loopback; ``Settings`` enforces that)."""
    app = web.Application(middlewares=[bearer_token_middleware(token)] if token is not None else [])
    app[STORE] = store
    app.router.add_get("/internal/v1/orders", get_orders)
    app.router.add_get("/internal/v1/audit", get_audit)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
