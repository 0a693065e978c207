"""Thin HTTP handlers: authenticate, decode, call ``service``, publish or store, answer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from datetime import UTC, datetime

from aiohttp import web

from relay_contracts.messages import IntegrationsTriggered, recipe_object_key
from relay_contracts.topics import INTEGRATIONS_TRIGGERED, ORDERS_EVENTS, RECIPES_SAVED
from relay_ingest_api import service
from relay_ingest_api.adapters.kafka import Outgoing
from relay_ingest_api.openapi import openapi_document
from relay_ingest_api.renders import RenderKey, originating_address
from relay_ingest_api.schemas import Accepted, Health, Readiness, RecipeCreated, TriggersAccepted
from relay_ingest_api.service import IngestError, NothingToTriggerError, TooLargeError, TriggerTarget
from relay_ingest_api.state import (
    ASSOCIATIONS,
    FAILED_KEYS,
    FANOUT,
    LIMITER,
    OBJECTS,
    PUBLISHER,
    RENDERS,
    SETTINGS,
    SIGNER,
    TENANTS,
)
from relay_platform.errors import TransientError
from relay_platform.objectstore import ObjectNotFoundError
from relay_platform.tenants import KeyMatch, Permission, Tenant

logger = logging.getLogger("relay.ingest_api")

routes = web.RouteTableDef()


class UnauthorizedError(IngestError):
    status = 401


class ForbiddenError(IngestError):
    status = 403


class NotFoundError(IngestError):
    status = 404


def _json(model: Accepted | RecipeCreated | Health | Readiness | TriggersAccepted, status: int) -> web.Response:
    return web.Response(status=status, text=model.model_dump_json(), content_type="application/json")


def presented_key(request: web.Request) -> str | None:
    """Seed 002: ``Authorization: Bearer <key>`` or the ``apikey=`` query parameter."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.query.get("apikey") or None


def client_address(request: web.Request) -> str:
    """The client's address for per-client limits (``X-Forwarded-For`` only from a configured trusted proxy)."""
    forwarded = request.headers.getall("X-Forwarded-For", [])
    return originating_address(request.remote, forwarded, request.app[RENDERS].trusted_proxies)


async def known_key(request: web.Request, raw: str) -> KeyMatch | None:
    """The key's tenant and record, or ``None`` (counted against the client: guessing keys is throttled)."""
    client = client_address(request)
    request.app[FAILED_KEYS].check(client)
    match = request.app[TENANTS].match_key(raw)
    if match is None:
        await request.app[FAILED_KEYS].failed(client)
    return match


async def authorize(request: web.Request, permission: Permission) -> KeyMatch:
    """The caller's tenant and key, with ``permission`` checked and one token taken from its rate limit."""
    raw = presented_key(request)
    if raw is None:
        raise UnauthorizedError("unauthorized", "an API key is required (Authorization: Bearer or apikey=)")
    match = await known_key(request, raw)
    if match is None:
        raise UnauthorizedError("unauthorized", "unknown API key")
    if not match.key.allows(permission):
        raise ForbiddenError("forbidden", f"this API key lacks the {permission} permission")
    await request.app[LIMITER].check(match)
    return match


async def read_json(request: web.Request) -> object:
    limit = request.app[SETTINGS].max_body
    if request.content_length is not None and request.content_length > limit:
        raise TooLargeError("body_too_large", f"the body exceeds {limit} bytes")
    # client_max_size (= max_body) also stops a chunked body that grows past the limit.
    try:
        raw = await request.read()
    except web.RequestPayloadError as error:
        # A Content-Encoding (gzip, deflate) whose bytes do not decompress: the client's fault, not ours.
        raise service.UnreadableBodyError("malformed_body", "the request body could not be decoded") from error
    return service.parse_json(raw)


def _own_recipes_only(request: web.Request, match: KeyMatch, recipe_ids: list[tuple[str, str]]) -> None:
    tenants = request.app[TENANTS]
    service.foreign_recipes(
        lambda recipe_id: tenants.owns_recipe(match.tenant_id, recipe_id), recipe_ids, match.tenant.recipe_prefix
    )


@routes.post("/api/v2/recipe/order")
async def post_recipe_order(request: web.Request) -> web.Response:
    match = await authorize(request, "order-tracking")
    batch = service.parse_associations(await read_json(request), max_items=request.app[SETTINGS].max_items)
    _own_recipes_only(request, match, service.association_recipe_ids(batch.records))
    events = service.link_events(match.tenant_id, batch.records, datetime.now(UTC))
    await request.app[PUBLISHER].publish([Outgoing(ORDERS_EVENTS, e, e.kafka_key) for e in events])
    return _json(Accepted(accepted=len(events), dropped_fields=batch.dropped_fields), 202)


@routes.post("/api/v2/orders/events")
async def post_order_events(request: web.Request) -> web.Response:
    match = await authorize(request, "order-tracking")
    batch = service.parse_lifecycle_events(await read_json(request), max_items=request.app[SETTINGS].max_items)
    _own_recipes_only(request, match, service.lifecycle_recipe_ids(batch.records))
    events = service.lifecycle_events(match.tenant_id, batch.records)
    await request.app[PUBLISHER].publish([Outgoing(ORDERS_EVENTS, e, e.kafka_key) for e in events])
    return _json(Accepted(accepted=len(events), dropped_fields=batch.dropped_fields), 202)


@routes.post("/api/v2/recipes")
async def post_recipe(request: web.Request) -> web.Response:
    match = await authorize(request, "recipes:write")
    now = datetime.now(UTC)
    recipe = service.prepare_recipe(
        await read_json(request),
        tenant_prefix=match.tenant.recipe_prefix,
        now=now,
        limits=request.app[SETTINGS].recipe_limits(),
    )
    # Not stored when it could not be announced: the client's retry would otherwise leave an orphan copy.
    request.app[PUBLISHER].ensure_connected()
    await request.app[OBJECTS].put(
        recipe_object_key(match.tenant_id, recipe.recipe_id), recipe.body, content_type="application/json"
    )
    event = service.recipe_saved(match.tenant_id, recipe, now)
    await request.app[PUBLISHER].publish([Outgoing(RECIPES_SAVED, event, recipe.recipe_id.encode())])
    base = request.app[SETTINGS].links.public_base_url.rstrip("/")
    url = f"{base}/recipe/{recipe.recipe_id}.json"
    response = _json(RecipeCreated(id=recipe.recipe_id, url=url), 201)
    response.headers["Location"] = url
    return response


async def readable_recipe(request: web.Request) -> tuple[str, Tenant, bytes]:
    """Seed 001 read rules for ``/recipe/<id>.*``: the ID, its owning tenant and the stored JSON."""
    recipe_id = request.match_info["recipe_id"]
    owner = request.app[TENANTS].tenant_for_recipe(recipe_id) if service.is_recipe_id(recipe_id) else None
    if owner is None:
        raise NotFoundError("not_found", "no such recipe")
    owner_id, tenant = owner
    match: KeyMatch | None = None
    if tenant.recipe_read == "key":
        raw = presented_key(request)
        match = await known_key(request, raw) if raw is not None else None
        if raw is not None and match is None:
            raise UnauthorizedError("unauthorized", "unknown API key")
    access = service.recipe_access(
        read_mode=tenant.recipe_read,
        owner=owner_id,
        requester=match.tenant_id if match else None,
        can_read=match is not None and match.key.allows("recipes:read"),
    )
    if access == "unauthenticated":
        raise UnauthorizedError("unauthorized", "this recipe needs an API key with recipes:read")
    if access == "hidden":
        raise NotFoundError("not_found", "no such recipe")
    if access == "forbidden":
        raise ForbiddenError("forbidden", "this API key lacks the recipes:read permission")
    if match is not None:
        await request.app[LIMITER].check(match)
    body = await request.app[OBJECTS].get(recipe_object_key(owner_id, recipe_id))
    return recipe_id, tenant, body


def _recipe_cache_control(tenant: Tenant) -> str:
    return "public, max-age=60" if tenant.recipe_read == "public" else "private, no-store"


def _recipe_url(request: web.Request, recipe_id: str) -> str:
    base = request.app[SETTINGS].links.public_base_url.rstrip("/")
    return f"{base}/recipe/{recipe_id}.json"


@routes.get("/recipe/{recipe_id}.json")
async def get_recipe(request: web.Request) -> web.Response:
    _, tenant, body = await readable_recipe(request)
    return web.Response(
        body=body, content_type="application/json", headers={"Cache-Control": _recipe_cache_control(tenant)}
    )


@routes.get("/recipe/{recipe_id}.pdf")
async def get_recipe_pdf(request: web.Request) -> web.Response:
    """The recipe's pick ticket ("humanReadable"); no thumbnails (the bundle's ticket has them).

    Bounded work (``renders.py``): read access is checked first, every time; then the PDF of this recipe version
    comes from the cache, or from one render shared by every caller asking at once, charged to the caller (429
    past its rate) and waiting briefly for a render slot (503 when none frees). ``If-None-Match`` with the
    ``ETag`` answers 304 without the body.
    """
    recipe_id, tenant, body = await readable_recipe(request)
    renders = request.app[RENDERS]
    key = RenderKey.of(recipe_id, body)
    pdf = renders.cached(key)
    if pdf is None:
        renders.charge(_render_client(request))
        recipe = service.parse_stored_recipe(body)
        pdf = await renders.render(key, recipe, recipe_url=_recipe_url(request, recipe_id))
    headers = {"ETag": pdf.etag, "Cache-Control": _recipe_cache_control(tenant)}
    if pdf.matches(request.headers.get("If-None-Match")):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=pdf.body,
        headers={
            **headers,
            "Content-Type": "application/pdf",
            # The ID is [A-Za-z0-9_-] only (is_recipe_id), so it needs no quoting beyond the quotes.
            "Content-Disposition": f'inline; filename="{recipe_id}.pdf"',
            "X-Content-Type-Options": "nosniff",
        },
    )


def _render_client(request: web.Request) -> str:
    """Whom a render is charged to: a valid API key's tenant and name, else the client's address."""
    raw = presented_key(request)
    match = request.app[TENANTS].match_key(raw) if raw is not None else None
    if match is not None:
        return f"key:{match.tenant_id}/{match.key.name}"
    return client_address(request)


@routes.get("/files/{token}")
async def get_file(request: web.Request) -> web.Response:
    key, name, mime_type = request.app[SIGNER].verify(request.match_info["token"])
    body = await request.app[OBJECTS].get(key)
    return web.Response(
        body=body,
        headers={
            "Content-Type": mime_type,
            "Content-Disposition": service.content_disposition(name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@routes.get("/api/v2/orders")
async def get_orders(request: web.Request) -> web.Response:
    match = await authorize(request, "order-tracking")
    field, value = service.lookup_query(request.query)
    after = service.page_after(request.query)
    # The tenant comes from the key, never from the query: one tenant cannot read another's orders.
    body = await request.app[ASSOCIATIONS].find_orders(match.tenant_id, field, value, after=after)
    return web.Response(body=body, content_type="application/json")


@routes.get("/api/v2/admin/audit")
async def get_audit(request: web.Request) -> web.Response:
    """Deliveries of the caller's tenant that have not ended within ``olderThan``: empty means nothing is stuck."""
    match = await authorize(request, "admin")
    query = service.audit_query(request.query)
    # The tenant comes from the key, never from the query: one tenant cannot see another's deliveries.
    body = await request.app[ASSOCIATIONS].audit(match.tenant_id, older_than_s=query.older_than_s, limit=query.limit)
    return web.Response(body=body, content_type="application/json")


async def _recipe_feed_trigger(
    request: web.Request, match: KeyMatch, target: TriggerTarget, now: datetime, ids: service.TriggerIds
) -> IntegrationsTriggered | None:
    """The raw recipe feed re-run for ``target``'s recipe, when some integration takes it; the recipe must be
    stored (404 otherwise). Its tenant was checked by the caller."""
    if not service.feed_integrations(match.tenant, "recipe", target.integration_ids):
        return None
    recipe_id = target.value
    try:
        body = await request.app[OBJECTS].get(recipe_object_key(match.tenant_id, recipe_id))
    except ObjectNotFoundError as error:
        raise NotFoundError("not_found", "no such recipe") from error
    temporary = service.is_temporary_recipe(body)
    integration_ids = service.feed_integrations(match.tenant, "recipe", target.integration_ids, temporary=temporary)
    if not integration_ids:
        return None
    return service.manual_recipe_trigger(match.tenant_id, recipe_id, integration_ids, now=now, new_id=ids)


@routes.post("/api/v2/integrations/trigger")
async def post_trigger(request: web.Request) -> web.Response:
    """Seed 000 "Trigger Integrations": re-run bundle and delivery for an order, or a recipe and its orders.

    Every matching order is triggered (the store's pages are followed), up to ``max_trigger_fanout`` (413 past
    it, nothing sent); the triggers are charged to the tenant's fan-out bucket (429 with ``Retry-After``).
    """
    match = await authorize(request, "integrations:trigger")
    idempotency_key = service.parse_idempotency_key(request.headers.get("Idempotency-Key"))
    target = service.parse_trigger(await read_json(request))
    service.check_integration_ids(match.tenant, target)
    if target.field == "recipeId":
        _own_recipes_only(request, match, [(service.pointer("recipeId"), target.value)])
    settings = request.app[SETTINGS]
    ids = service.trigger_ids(match.tenant_id, idempotency_key)
    now = datetime.now(UTC)
    triggers: list[IntegrationsTriggered] = []
    if target.field == "recipeId":
        recipe_trigger = await _recipe_feed_trigger(request, match, target, now, ids)
        if recipe_trigger is not None:
            triggers.append(recipe_trigger)
    tenants = request.app[TENANTS]
    order_integrations = service.feed_integrations(match.tenant, "order", target.integration_ids)
    found_orders = False
    # The tenant comes from the key: one tenant cannot trigger another's orders.
    async for page in request.app[ASSOCIATIONS].all_orders(match.tenant_id, target.field, target.value):
        found_orders = found_orders or bool(page.orders)
        triggers.extend(
            service.manual_order_triggers(
                match.tenant_id,
                page,
                order_integrations,
                now=now,
                owns=lambda recipe_id: tenants.owns_recipe(match.tenant_id, recipe_id),
                only_recipe=target.value if target.field == "recipeId" else None,
                new_id=ids,
            )
        )
        if len(triggers) > settings.max_trigger_fanout:
            raise TooLargeError(
                "too_many_triggers",
                f"more than {settings.max_trigger_fanout} order lines match; nothing was triggered. "
                "Trigger fewer at a time (by orderId or orderNumber, or with integrationIds).",
            )
    if not triggers:
        if not found_orders:
            raise NotFoundError("not_found", "no order or recipe matches")
        raise NothingToTriggerError("nothing_to_trigger", "no enabled integration takes this order's feed")
    await request.app[FANOUT].check(match.tenant_id, len(triggers))
    await request.app[PUBLISHER].publish([Outgoing(INTEGRATIONS_TRIGGERED, t, t.recipe_id.encode()) for t in triggers])
    logger.info("manual trigger by %s/%s: %d trigger(s) published", match.tenant_id, match.key.name, len(triggers))
    summaries = [service.trigger_summary(t) for t in triggers]
    return _json(TriggersAccepted(triggered=len(triggers), triggers=summaries), 202)


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return _json(Health(status="ok"), 200)


async def _object_store_up(request: web.Request) -> bool:
    try:
        await request.app[OBJECTS].ping()
    except TransientError:
        return False
    return True


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    timeout = request.app[SETTINGS].readiness_timeout_s

    async def bounded(check: Awaitable[bool]) -> bool:
        try:
            async with asyncio.timeout(timeout):
                return await check
        except TimeoutError:
            return False

    broker, objects, associations = await asyncio.gather(
        bounded(request.app[PUBLISHER].ping(timeout)),
        bounded(_object_store_up(request)),
        bounded(request.app[ASSOCIATIONS].ready()),
    )
    checks = {"broker": broker, "object-store": objects, "association-store": associations}
    ready = all(checks.values())
    report = Readiness(
        status="ready" if ready else "not_ready",
        checks={name: "up" if up else "down" for name, up in checks.items()},
    )
    return _json(report, 200 if ready else 503)


@routes.get("/api/v2/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    document = openapi_document(
        max_items=settings.max_items,
        max_body=settings.max_body,
        recipe_limits=settings.recipe_limits(),
        max_trigger_fanout=settings.max_trigger_fanout,
    )
    return web.json_response(document)
