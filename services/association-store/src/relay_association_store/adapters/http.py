"""The internal query API (read by ingest-api) and health probes, served by aiohttp inside the FastStream app.

``GET /internal/v1/orders?tenant=<t>&(orderNumber|orderId|recipeId)=<v>`` answers strictly within the tenant.
No secrets or PII are stored, so none can be returned: only order/line IDs, quantities and delivery status.
"""

from __future__ import annotations

from typing import Any, Protocol

from aiohttp import web

from relay_association_store.adapters.repository import OrderLookup
from relay_association_store.service import DeliveryRecord, OrderView
from relay_platform.errors import RelayError

LOOKUPS: tuple[OrderLookup, ...] = ("orderNumber", "orderId", "recipeId")
MAX_PARAM = 128


class OrderQueries(Protocol):
    async def find_orders(self, tenant: str, by: OrderLookup, value: str) -> list[OrderView]: ...
    async def ping(self, timeout_s: float = 2.0) -> bool: ...


STORE = web.AppKey("store", OrderQueries)


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": "bad_request", "message": message}, status=400)


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
    try:
        views = await request.app[STORE].find_orders(tenant, by, value)
    except RelayError:
        return web.json_response(
            {"error": "unavailable", "message": "the order database is not answering; try again"}, status=503
        )
    return web.json_response({"orders": [order_json(view) for view in views]})


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if await request.app[STORE].ping():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "database unavailable"}, status=503)


def create_internal_api(store: OrderQueries) -> web.Application:
    """The aiohttp application; started and stopped by the FastStream lifespan (see ``main``)."""
    app = web.Application()
    app[STORE] = store
    app.router.add_get("/internal/v1/orders", get_orders)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app
