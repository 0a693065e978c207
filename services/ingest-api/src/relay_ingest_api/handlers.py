"""The routing table: each route reads the request (key, body, query; ``http.py``), calls one use case
(``service.py``) and answers with its result. Errors become answers in ``middleware.py``."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from relay_ingest_api import domain, service
from relay_ingest_api.http import (
    authorize,
    client_address,
    content_disposition,
    credentials,
    json_response,
    ports,
    read_body,
    read_json,
    read_optional_json,
    recipe_cache_control,
    settings,
)
from relay_ingest_api.openapi import openapi_document
from relay_ingest_api.schemas import Health, Readiness
from relay_ingest_api.tracing import link_order_traces

routes = web.RouteTableDef()


@routes.post("/api/v2/recipe/order")
async def post_recipe_order(request: web.Request) -> web.Response:
    caller = authorize(request, "order-tracking")
    document = await read_json(request)
    accepted = await service.link_orders(ports(request), caller, document, max_items=settings(request).max_items)
    return json_response(accepted, 202)


@routes.post("/api/v2/orders/events")
async def post_order_events(request: web.Request) -> web.Response:
    caller = authorize(request, "order-tracking")
    document = await read_json(request)
    accepted = await service.record_order_events(
        ports(request), caller, document, max_items=settings(request).max_items
    )
    return json_response(accepted, 202)


@routes.post("/api/v2/recipes")
async def post_recipe(request: web.Request) -> web.Response:
    caller = authorize(request, "recipes:write")
    document = await read_json(request)
    created = await service.save_recipe(
        ports(request),
        caller,
        document,
        limits=settings(request).recipe_limits(),
        public_base_url=settings(request).links.public_base_url,
    )
    response = json_response(created, 201)
    response.headers["Location"] = created.url
    return response


@routes.get("/recipe/{recipe_id}.json")
async def get_recipe(request: web.Request) -> web.Response:
    recipe = await service.read_recipe(ports(request), credentials(request), request.match_info["recipe_id"])
    return web.Response(
        body=recipe.body,
        content_type="application/json",
        headers={"Cache-Control": recipe_cache_control(recipe.tenant)},
    )


@routes.get("/recipe/{recipe_id}.pdf")
async def get_recipe_pdf(request: web.Request) -> web.Response:
    """The pick ticket, with a strong ``ETag``: ``If-None-Match`` naming it answers 304 without the body."""
    ticket = await service.pick_ticket(
        ports(request),
        credentials(request),
        request.match_info["recipe_id"],
        public_base_url=settings(request).links.public_base_url,
    )
    headers = {"ETag": ticket.pdf.etag, "Cache-Control": recipe_cache_control(ticket.recipe.tenant)}
    if ticket.pdf.matches(request.headers.get("If-None-Match")):
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=ticket.pdf.body,
        headers={
            **headers,
            "Content-Type": "application/pdf",
            # The ID is [A-Za-z0-9_-] only (domain.is_recipe_id), so it needs no quoting beyond the quotes.
            "Content-Disposition": f'inline; filename="{ticket.recipe.recipe_id}.pdf"',
            "X-Content-Type-Options": "nosniff",
        },
    )


@routes.get("/files/{token}")
async def get_file(request: web.Request) -> web.Response:
    file = await service.signed_file(ports(request), request.match_info["token"])
    return web.Response(
        body=file.body,
        headers={
            "Content-Type": file.mime_type,
            "Content-Disposition": content_disposition(file.name),
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )


@routes.get("/api/v2/orders")
async def get_orders(request: web.Request) -> web.Response:
    caller = authorize(request, "order-tracking")
    field, value = domain.lookup_query(request.query)
    after = domain.page_after(request.query)
    body = await service.find_orders(ports(request), caller, field, value, after=after)
    return web.Response(body=body, content_type="application/json")


@routes.get("/api/v2/orders/recent")
async def get_recent_orders(request: web.Request) -> web.Response:
    caller = authorize(request, "order-tracking")
    query = domain.recent_orders_query(request.query)
    body = await service.recent_orders(ports(request), caller, query)
    return web.Response(body=body, content_type="application/json")


@routes.get("/api/v2/deliveries/failed")
async def get_failed_deliveries(request: web.Request) -> web.Response:
    caller = authorize(request, "order-tracking")
    query = domain.failed_deliveries_query(request.query)
    body = await service.failed_deliveries(ports(request), caller, query)
    return web.Response(body=body, content_type="application/json")


@routes.get("/api/v2/integrations")
async def get_integrations(request: web.Request) -> web.Response:
    caller = authorize(request, "order-tracking")
    hours = domain.stats_hours(request.query)
    overview = await service.integrations(ports(request), caller, hours=hours)
    return json_response(overview, 200)


@routes.get("/api/v2/admin/audit")
async def get_audit(request: web.Request) -> web.Response:
    caller = authorize(request, "admin")
    query = domain.audit_query(request.query)
    body = await service.audit_deliveries(ports(request), caller, query)
    return web.Response(body=body, content_type="application/json")


@routes.post("/api/v2/integrations/trigger")
async def post_trigger(request: web.Request) -> web.Response:
    caller = authorize(request, "integrations:trigger")
    idempotency_key = domain.parse_idempotency_key(request.headers.get("Idempotency-Key"))
    document = await read_json(request)
    accepted = await service.trigger_integrations(
        ports(request),
        caller,
        document,
        idempotency_key=idempotency_key,
        max_fanout=settings(request).max_trigger_fanout,
        link_traces=link_order_traces,
    )
    return json_response(accepted, 202)


@routes.post("/api/v2/integrations/shopify/{tenant}/webhooks")
async def post_shopify_webhook(request: web.Request) -> web.Response:
    # No API key: the sender is authenticated by the HMAC of the raw body under the tenant's webhook secret.
    body = await read_body(request)
    accepted = await service.receive_shopify_webhook(
        ports(request),
        request.match_info["tenant"],
        request.headers,
        body,
        client=client_address(request),
        now=datetime.now(UTC),
    )
    return json_response(accepted, 202)


@routes.post("/api/v2/integrations/{integration_id}/pause")
async def post_pause(request: web.Request) -> web.Response:
    # admin: pausing stops a destination's deliveries for the whole tenant.
    caller = authorize(request, "admin")
    document = await read_optional_json(request)
    changed = await service.change_integration_state(
        ports(request), caller, request.match_info["integration_id"], "paused", document
    )
    return json_response(changed, 202)


@routes.post("/api/v2/integrations/{integration_id}/resume")
async def post_resume(request: web.Request) -> web.Response:
    caller = authorize(request, "admin")
    document = await read_optional_json(request)
    changed = await service.change_integration_state(
        ports(request), caller, request.match_info["integration_id"], "active", document
    )
    return json_response(changed, 202)


@routes.post("/api/v2/deliveries/replay")
async def post_replay(request: web.Request) -> web.Response:
    caller = authorize(request, "integrations:trigger")
    document = await read_json(request)
    replay = await service.replay_deliveries(ports(request), caller, document)
    return json_response(replay, 200 if replay.dry_run else 202)


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    return json_response(Health(status="ok"), 200)


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    checks = await service.readiness(ports(request), settings(request).readiness_timeout_s)
    ready = all(checks.values())
    report = Readiness(
        status="ready" if ready else "not_ready",
        checks={name: "up" if up else "down" for name, up in checks.items()},
    )
    return json_response(report, 200 if ready else 503)


@routes.get("/api/v2/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    config = settings(request)
    document = openapi_document(
        max_items=config.max_items,
        max_body=config.max_body,
        recipe_limits=config.recipe_limits(),
        max_trigger_fanout=config.max_trigger_fanout,
    )
    return web.json_response(document)
