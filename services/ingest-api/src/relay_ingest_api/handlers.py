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
from relay_ingest_api.schemas import Accepted, Health, Readiness, RecipeCreated, TriggersAccepted
from relay_ingest_api.service import IngestError, NothingToTriggerError, TooLargeError, TriggerTarget
from relay_ingest_api.state import (
    ASSOCIATIONS,
    LIMITER,
    OBJECTS,
    PUBLISHER,
    RENDERS,
    SETTINGS,
    SIGNER,
    TENANTS,
)
from relay_pickticket import render_pick_ticket
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


async def authorize(request: web.Request, permission: Permission) -> KeyMatch:
    """The caller's tenant and key, with ``permission`` checked and one token taken from its rate limit."""
    raw = presented_key(request)
    if raw is None:
        raise UnauthorizedError("unauthorized", "an API key is required (Authorization: Bearer or apikey=)")
    match = request.app[TENANTS].match_key(raw)
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
    return service.parse_json(await request.read())


@routes.post("/api/v2/recipe/order")
async def post_recipe_order(request: web.Request) -> web.Response:
    match = await authorize(request, "order-tracking")
    batch = service.parse_associations(await read_json(request), max_items=request.app[SETTINGS].max_items)
    events = service.link_events(match.tenant_id, batch.records, datetime.now(UTC))
    await request.app[PUBLISHER].publish([Outgoing(ORDERS_EVENTS, e, e.kafka_key) for e in events])
    return _json(Accepted(accepted=len(events), dropped_fields=batch.dropped_fields), 202)


@routes.post("/api/v2/orders/events")
async def post_order_events(request: web.Request) -> web.Response:
    match = await authorize(request, "order-tracking")
    batch = service.parse_lifecycle_events(await read_json(request), max_items=request.app[SETTINGS].max_items)
    events = service.lifecycle_events(match.tenant_id, batch.records)
    await request.app[PUBLISHER].publish([Outgoing(ORDERS_EVENTS, e, e.kafka_key) for e in events])
    return _json(Accepted(accepted=len(events), dropped_fields=batch.dropped_fields), 202)


@routes.post("/api/v2/recipes")
async def post_recipe(request: web.Request) -> web.Response:
    match = await authorize(request, "recipes:write")
    now = datetime.now(UTC)
    recipe = service.prepare_recipe(await read_json(request), tenant_prefix=match.tenant.recipe_prefix, now=now)
    # Not stored when it could not be announced: the client's retry would otherwise leave an orphan copy.
    request.app[PUBLISHER].ensure_connected()
    await request.app[OBJECTS].put(recipe.key, recipe.body, content_type="application/json")
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
        match = request.app[TENANTS].match_key(raw) if raw is not None else None
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
    body = await request.app[OBJECTS].get(recipe_object_key(recipe_id))
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
    """The recipe's pick ticket ("humanReadable"), rendered on demand; no thumbnails (the bundle's ticket has them)."""
    recipe_id, tenant, body = await readable_recipe(request)
    recipe = service.parse_stored_recipe(body)
    async with request.app[RENDERS]:
        pdf = await asyncio.to_thread(render_pick_ticket, recipe, recipe_url=_recipe_url(request, recipe_id))
    return web.Response(
        body=pdf,
        headers={
            "Content-Type": "application/pdf",
            # The ID is [A-Za-z0-9_-] only (is_recipe_id), so it needs no quoting beyond the quotes.
            "Content-Disposition": f'inline; filename="{recipe_id}.pdf"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": _recipe_cache_control(tenant),
        },
    )


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
    # The tenant comes from the key, never from the query: one tenant cannot read another's orders.
    body = await request.app[ASSOCIATIONS].find_orders(match.tenant_id, field, value)
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
    request: web.Request, match: KeyMatch, target: TriggerTarget, now: datetime
) -> IntegrationsTriggered | None:
    """The raw recipe feed re-run for ``target``'s recipe, when some integration takes it; the recipe must be the
    caller's tenant's and stored (404 otherwise)."""
    if not service.feed_integrations(match.tenant, "recipe", target.integration_ids):
        return None
    recipe_id = target.value
    owner = request.app[TENANTS].tenant_for_recipe(recipe_id) if service.is_recipe_id(recipe_id) else None
    if owner is None or owner[0] != match.tenant_id:
        raise NotFoundError("not_found", "no such recipe")
    try:
        body = await request.app[OBJECTS].get(recipe_object_key(recipe_id))
    except ObjectNotFoundError as error:
        raise NotFoundError("not_found", "no such recipe") from error
    temporary = service.is_temporary_recipe(body)
    integration_ids = service.feed_integrations(match.tenant, "recipe", target.integration_ids, temporary=temporary)
    if not integration_ids:
        return None
    return service.manual_recipe_trigger(match.tenant_id, recipe_id, integration_ids, now=now)


@routes.post("/api/v2/integrations/trigger")
async def post_trigger(request: web.Request) -> web.Response:
    """Seed 000 "Trigger Integrations": re-run bundle and delivery for an order, or a recipe and its orders."""
    match = await authorize(request, "order-tracking")
    target = service.parse_trigger(await read_json(request))
    service.check_integration_ids(match.tenant, target)
    now = datetime.now(UTC)
    triggers: list[IntegrationsTriggered] = []
    if target.field == "recipeId":
        recipe_trigger = await _recipe_feed_trigger(request, match, target, now)
        if recipe_trigger is not None:
            triggers.append(recipe_trigger)
    # The tenant comes from the key: one tenant cannot trigger another's orders.
    found = await request.app[ASSOCIATIONS].orders(match.tenant_id, target.field, target.value)
    triggers.extend(
        service.manual_order_triggers(
            match.tenant_id,
            found,
            service.feed_integrations(match.tenant, "order", target.integration_ids),
            now=now,
            only_recipe=target.value if target.field == "recipeId" else None,
        )
    )
    if not triggers:
        if not found.orders:
            raise NotFoundError("not_found", "no order or recipe matches")
        raise NothingToTriggerError("nothing_to_trigger", "no enabled integration takes this order's feed")
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
    return web.json_response(openapi_document(max_items=settings.max_items, max_body=settings.max_body))
