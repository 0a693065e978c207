"""The internal query API (read by ingest-api) and health probes, served by aiohttp inside the FastStream app.

The contract (paths, parameters, limits, answer bodies) is ``relay_contracts.internal_api``: ``ORDERS_PATH``
answers an ``OrdersPage`` (pages of ``ORDERS_PAGE_SIZE`` by order ID; ``next`` names the following page),
``AUDIT_PATH`` an ``AuditReport``, strictly within the tenant (see README). This module checks the query, calls the
route's use case in ``service`` and serialises its answer.
No secrets or PII are stored, so none can be returned: only order/line IDs, quantities and delivery status.
With a token configured, ``/internal/*`` answers only ``Authorization: Bearer <token>``; the probes stay open.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from pydantic import SecretStr

from relay_association_store import domain, service
from relay_association_store.ports import OrderQueries
from relay_contracts import internal_api as api
from relay_platform.errors import RelayError

logger = logging.getLogger("relay.association_store")

_DIGITS = re.compile(r"[0-9]{1,12}")

STORE = web.AppKey("store", OrderQueries)


class BadQueryError(Exception):
    """A query parameter the API refuses; the message names it."""


def _answer(body: api.InternalApiModel, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    # Nulls stay in the body (``"lastError": null``, ``"next": null``): the ingest API relays them as they are.
    return web.json_response(body.model_dump(mode="json", by_alias=True), status=status, headers=headers)


def _bad_request(message: str) -> web.Response:
    return _answer(api.ApiError(error="bad_request", message=message), status=400)


def _unavailable() -> web.Response:
    return _answer(
        api.ApiError(error="unavailable", message="the order database is not answering; try again"), status=503
    )


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def attempt_entry(attempt: domain.AttemptRecord) -> api.AttemptEntry:
    return api.AttemptEntry(
        attempt=attempt.attempt,
        status=attempt.status,
        at=_rfc3339(attempt.occurred_at),
        error_class=attempt.error_class,
        error=attempt.error,
    )


def found_delivery(
    delivery: domain.DeliveryRecord,
    attempts: tuple[domain.AttemptRecord, ...] = (),
    held: api.HeldCause | None = None,
) -> api.FoundDelivery:
    """``held``: why the delivery is held now (its integration is paused), ``None`` when it is not."""
    return api.FoundDelivery(
        delivery_id=delivery.delivery_id,
        integration=delivery.integration_id,
        type=delivery.integration_type,
        recipe_id=delivery.recipe_id,
        trigger=delivery.reason,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        files=list(delivery.files),
        updated_at=_rfc3339(delivery.updated_at),
        attempt_log=[attempt_entry(attempt) for attempt in attempts],
        held=held is not None,
        held_cause=held,
    )


def found_order(view: domain.OrderView, held: Mapping[str, api.HeldCause] | None = None) -> api.FoundOrder:
    """``held``: delivery ID -> why it is held, for the held deliveries (of the page)."""
    order = view.order
    held = held or {}
    return api.FoundOrder(
        order_id=order.order_id,
        order_number=order.order_number,
        status=order.status,
        items=[
            api.FoundItem(recipe_id=item.recipe_id, item_id=item.item_id, item_quantity=item.quantity)
            for item in sorted(order.items.values(), key=lambda item: item.item_id)
        ],
        deliveries=[
            found_delivery(delivery, view.attempts.get(delivery.delivery_id, ()), held.get(delivery.delivery_id))
            for delivery in view.deliveries
        ],
        trace_parent=order.trace_parent,
        updated_at=_rfc3339(order.updated_at),
    )


async def get_orders(request: web.Request) -> web.Response:
    query = request.query
    tenant = query.get("tenant", "").strip()
    if not tenant:
        return _bad_request("query parameter 'tenant' is required")
    given = [name for name in api.ORDER_LOOKUP_FIELDS if name in query]
    if len(given) != 1:
        return _bad_request("give exactly one of 'orderNumber', 'orderId' or 'recipeId'")
    by = given[0]
    value = query[by].strip()
    if not value or len(value) > api.MAX_QUERY_TEXT or len(tenant) > api.MAX_QUERY_TEXT:
        return _bad_request(f"'{by}' and 'tenant' must be 1 to {api.MAX_QUERY_TEXT} characters")
    after = query.get("after")
    if after is not None and not 1 <= len(after) <= api.MAX_QUERY_TEXT:
        return _bad_request(f"'after' must be 1 to {api.MAX_QUERY_TEXT} characters")
    try:
        page = await service.find_orders(request.app[STORE], tenant, by, value, after=after)
    except RelayError:
        return _unavailable()
    return _answer(api.OrdersPage(orders=[found_order(view, page.held) for view in page.orders], next=page.next))


def _tenant(query: Mapping[str, str]) -> str:
    tenant = query.get("tenant", "").strip()
    if not tenant or len(tenant) > api.MAX_QUERY_TEXT:
        raise BadQueryError(f"query parameter 'tenant' is required (1 to {api.MAX_QUERY_TEXT} characters)")
    return tenant


def _cursor(query: Mapping[str, str]) -> domain.Cursor | None:
    after = query.get("after")
    if after is None:
        return None
    try:
        return domain.decode_cursor(after)
    except ValueError as error:
        raise BadQueryError("'after' is not a cursor this list gave out (pass its 'next' back unchanged)") from error


def _flag(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise BadQueryError(f"'{name}' must be true or false")
    return raw == "true"


def _instant(query: Mapping[str, str], name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw) if len(raw) <= 64 else None
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise BadQueryError(f"'{name}' must be an RFC 3339 instant with its offset, e.g. 2026-12-01T10:00:00Z")
    return moment.astimezone(UTC)


async def get_recent_orders(request: web.Request) -> web.Response:
    query = request.query
    try:
        tenant = _tenant(query)
        limit = _whole_number(query, "limit", default=api.DEFAULT_PAGE_LIMIT, low=1, high=api.MAX_PAGE_LIMIT)
        after = _cursor(query)
    except BadQueryError as error:
        return _bad_request(str(error))
    try:
        page = await service.recent_orders(request.app[STORE], tenant, after=after, limit=limit)
    except RelayError:
        return _unavailable()
    return _answer(
        api.OrdersPage(
            orders=[found_order(view, page.held) for view in page.orders],
            next=domain.encode_cursor(page.next) if page.next is not None else None,
        )
    )


def listed_delivery(delivery: domain.DeliveryRecord, held: api.HeldCause | None = None) -> api.ListedDelivery:
    """``held``: why the delivery is held now (its integration is paused), ``None`` when it is not."""
    return api.ListedDelivery(
        delivery_id=delivery.delivery_id,
        order_id=delivery.order_id,
        order_number=delivery.order_number,
        recipe_id=delivery.recipe_id,
        integration=delivery.integration_id,
        type=delivery.integration_type,
        trigger=delivery.reason,
        status=delivery.status,
        final=delivery.final,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        updated_at=_rfc3339(delivery.updated_at),
        item_id=delivery.item_id,
        replayed_by=delivery.replayed_by,
        held=held is not None,
        held_cause=held,
    )


def _delivery_filter(query: Mapping[str, str]) -> domain.DeliveryFilter:
    status = query.get("status", "")
    if status not in api.DELIVERY_LIST_STATUSES:
        raise BadQueryError(f"'status' must be one of {', '.join(api.DELIVERY_LIST_STATUSES)}")
    integration = query.get("integration")
    if integration is not None and not 1 <= len(integration) <= api.MAX_QUERY_TEXT:
        raise BadQueryError(f"'integration' must be 1 to {api.MAX_QUERY_TEXT} characters")
    wanted = domain.DeliveryFilter(
        status=status,
        integration_id=integration,
        since=_instant(query, "since"),
        until=_instant(query, "until"),
        replayed=_flag(query, "replayed"),
    )
    if wanted.since is not None and wanted.until is not None and wanted.since > wanted.until:
        raise BadQueryError("'since' must not be after 'until'")
    return wanted


async def get_deliveries(request: web.Request) -> web.Response:
    query = request.query
    try:
        tenant = _tenant(query)
        wanted = _delivery_filter(query)
        limit = _whole_number(query, "limit", default=api.DEFAULT_PAGE_LIMIT, low=1, high=api.MAX_PAGE_LIMIT)
        after = _cursor(query)
        with_total = _flag(query, "withTotal") is True
    except BadQueryError as error:
        return _bad_request(str(error))
    try:
        page = await service.list_deliveries(
            request.app[STORE], tenant, wanted, after=after, limit=limit, with_total=with_total
        )
    except RelayError:
        return _unavailable()
    return _answer(
        api.DeliveriesPage(
            deliveries=[listed_delivery(delivery, page.held.get(delivery.delivery_id)) for delivery in page.deliveries],
            next=domain.encode_cursor(page.next) if page.next is not None else None,
            total=page.total,
        )
    )


async def get_integration_stats(request: web.Request) -> web.Response:
    query = request.query
    try:
        tenant = _tenant(query)
        window_s = _whole_number(
            query, "sinceS", default=api.DEFAULT_STATS_WINDOW_S, low=1, high=api.MAX_STATS_WINDOW_S
        )
    except BadQueryError as error:
        return _bad_request(str(error))
    try:
        tallies = await service.integration_tallies(request.app[STORE], tenant, window=timedelta(seconds=window_s))
        states = await service.integration_states(request.app[STORE], tenant)
    except RelayError:
        return _unavailable()
    return _answer(
        api.IntegrationStats(
            window_s=window_s,
            integrations=[
                api.IntegrationCounts(
                    integration=tally.integration_id,
                    succeeded=tally.succeeded,
                    failed=tally.failed,
                    retrying=tally.retrying,
                    pending=tally.pending,
                    last_success_at=_rfc3339(tally.last_success_at) if tally.last_success_at else None,
                    last_failure_at=_rfc3339(tally.last_failure_at) if tally.last_failure_at else None,
                )
                for tally in tallies
            ],
            states=[
                api.IntegrationStateEntry(
                    integration=state.integration_id,
                    state=state.state,
                    changed_at=_rfc3339(state.changed_at),
                    reason=state.reason,
                    cause=state.cause,
                    changed_by=state.changed_by,
                )
                for state in states
            ],
        )
    )


def _whole_number(query: Mapping[str, str], name: str, *, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadQueryError(f"'{name}' must be a whole number from {low} to {high}")
    return int(raw)


def audit_delivery(entry: domain.AuditEntry) -> api.AuditDelivery:
    delivery = entry.delivery
    return api.AuditDelivery(
        delivery_id=delivery.delivery_id,
        order_id=delivery.order_id,
        order_number=delivery.order_number,
        recipe_id=delivery.recipe_id,
        integration=delivery.integration_id,
        type=delivery.integration_type,
        trigger=delivery.reason,
        trigger_id=delivery.trigger_id,
        status=delivery.status,
        attempts=delivery.attempts,
        last_error=delivery.last_error,
        last_change=_rfc3339(delivery.updated_at),
        created_at=_rfc3339(delivery.created_at),
        triggered_at=_rfc3339(delivery.triggered_at) if delivery.triggered_at is not None else None,
        reason=entry.reason,
    )


def audit_report(report: domain.AuditReport, older_than_s: int) -> api.AuditReport:
    return api.AuditReport(
        tenant=report.tenant,
        older_than_s=older_than_s,
        cutoff=_rfc3339(report.cutoff),
        limit=report.limit,
        truncated=report.truncated,
        deliveries=[audit_delivery(entry) for entry in report.entries],
    )


async def get_audit(request: web.Request) -> web.Response:
    query = request.query
    tenant = query.get("tenant", "").strip()
    if not tenant or len(tenant) > api.MAX_QUERY_TEXT:
        return _bad_request(f"query parameter 'tenant' is required (1 to {api.MAX_QUERY_TEXT} characters)")
    try:
        older_than_s = _whole_number(
            query, "olderThanS", default=api.DEFAULT_AUDIT_OLDER_THAN_S, low=0, high=api.MAX_AUDIT_OLDER_THAN_S
        )
        limit = _whole_number(query, "limit", default=api.DEFAULT_AUDIT_LIMIT, low=1, high=api.MAX_AUDIT_LIMIT)
    except BadQueryError as error:
        return _bad_request(str(error))
    try:
        report = await service.audit_deliveries(
            request.app[STORE], tenant, older_than=timedelta(seconds=older_than_s), limit=limit
        )
    except RelayError:
        return _unavailable()
    return _answer(audit_report(report, older_than_s))


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if await request.app[STORE].ping():
        return web.json_response({"status": "ready"})
    return web.json_response({"status": "database unavailable"}, status=503)


def _unauthorized() -> web.Response:
    return _answer(
        api.ApiError(error="unauthorized", message="a valid 'Authorization: Bearer <token>' header is required"),
        status=401,
        headers={"WWW-Authenticate": 'Bearer realm="association-store"'},
    )


def bearer_token_middleware(token: SecretStr) -> Middleware:
    """Answers 401 to a request without ``token`` as its bearer token (compared in constant time). Only the
    probes pass without it, so orchestrators need no secret; any other path, known or not, needs the token."""
    expected = f"Bearer {token.get_secret_value()}".encode()

    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in api.HEALTH_PATHS:
            presented = request.headers.get("Authorization", "").encode("utf-8", "replace")
            if not hmac.compare_digest(presented, expected):
                return _unauthorized()
        return await handler(request)

    return check


def create_internal_api(store: OrderQueries, *, token: SecretStr | None = None) -> web.Application:
    """The aiohttp application; started and stopped with the service's resources (see ``main``). ``token``: the
    bearer token ``/internal/*`` requires (``None`` only on loopback; ``Settings`` enforces that)."""
    app = web.Application(middlewares=[bearer_token_middleware(token)] if token is not None else [])
    app[STORE] = store
    app.router.add_get(api.ORDERS_PATH, get_orders)
    app.router.add_get(api.RECENT_ORDERS_PATH, get_recent_orders)
    app.router.add_get(api.DELIVERIES_PATH, get_deliveries)
    app.router.add_get(api.INTEGRATION_STATS_PATH, get_integration_stats)
    app.router.add_get(api.AUDIT_PATH, get_audit)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serving_internal_api(
    store: OrderQueries, *, host: str, port: int, token: SecretStr | None
) -> AsyncIterator[None]:
    """Serves ``create_internal_api(store, token=token)`` on ``host:port`` for the duration of the block."""
    runner = web.AppRunner(create_internal_api(store, token=token))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        logger.info("internal query API on %s:%s", host, port)
        if token is None:
            # Settings allow this on loopback only; say so, as every local process can read any tenant.
            logger.warning("internal query API has no token (ASSOCIATION_STORE_API_TOKEN unset): loopback only")
        yield
    finally:
        await runner.cleanup()
