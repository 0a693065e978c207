"""The ingest API's use cases: one per route, each taking the ``Ports`` it needs and going straight down.

``authorize`` (who is calling) runs first on every authenticated route, before the body is read; then the route's
use case applies the rules (``domain.py``), stores or publishes through the ports, and returns what the route
answers. Refusals are ``domain.IngestError``s; ``middleware.py`` turns them into HTTP answers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from relay_contracts.internal_api import OrderLookupField
from relay_contracts.messages import IntegrationState, IntegrationsTriggered, OrderItem, recipe_object_key
from relay_contracts.recipe import RecipeLimits
from relay_contracts.topics import INTEGRATIONS_CONTROL, INTEGRATIONS_TRIGGERED, ORDERS_EVENTS, RECIPES_SAVED
from relay_ingest_api import domain, shopify
from relay_ingest_api.domain import (
    ForbiddenError,
    NotFoundError,
    NothingToTriggerError,
    TooLargeError,
    TriggerTarget,
    UnauthorizedError,
)
from relay_ingest_api.jsonbody import parse_json
from relay_ingest_api.ports import Outgoing, Ports, RenderedPdf, RenderKey, StoreRefusedQueryError
from relay_ingest_api.schemas import (
    Accepted,
    IntegrationsOverview,
    IntegrationStateAccepted,
    RecipeCreated,
    ReplayAccepted,
    ShopifyAccepted,
    TriggersAccepted,
)
from relay_platform.errors import PermanentError, TransientError
from relay_platform.objectstore import ObjectNotFoundError
from relay_platform.tenants import ApiKey, KeyMatch, Permission, ShopifySettings, Tenant, TenantsConfig

logger = logging.getLogger("relay.ingest_api")


# --- who is calling ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presents: its API key (seed 002), and the client's address, charged for unknown keys."""

    key: str | None
    client: str


def identify(ports: Ports, credentials: Credentials) -> KeyMatch | None:
    """The presented key's tenant and record, ``None`` without a key. An unknown key is counted against the client
    (guessing keys is throttled: 429 past its share) and refused (401)."""
    if credentials.key is None:
        return None
    ports.failed_keys.check(credentials.client)
    match = ports.tenants.match_key(credentials.key)
    if match is None:
        ports.failed_keys.failed(credentials.client)
        raise UnauthorizedError("unauthorized", "unknown API key")
    return match


def authorize(ports: Ports, credentials: Credentials, permission: Permission) -> KeyMatch:
    """The caller's tenant and key, with ``permission`` checked and one token taken from its rate limit."""
    match = identify(ports, credentials)
    if match is None:
        raise UnauthorizedError("unauthorized", "an API key is required (Authorization: Bearer or apikey=)")
    if not match.key.allows(permission):
        raise ForbiddenError("forbidden", f"this API key lacks the {permission} permission")
    ports.key_limits.check(match)
    return match


def _own_recipes_only(tenants: TenantsConfig, caller: KeyMatch, recipe_ids: list[tuple[str, str]]) -> None:
    # A batch names few distinct recipes (often one for all its items): each is looked up once.
    owned: dict[str, bool] = {}

    def owns(recipe_id: str) -> bool:
        known = owned.get(recipe_id)
        if known is None:
            known = owned[recipe_id] = tenants.owns_recipe(caller.tenant_id, recipe_id)
        return known

    domain.foreign_recipes(owns, recipe_ids, caller.tenant.recipe_prefix)


# --- orders ------------------------------------------------------------------------------------------------------


async def link_orders(ports: Ports, caller: KeyMatch, document: object, *, max_items: int) -> Accepted:
    """``POST /api/v2/recipe/order`` (seed 002): one ``linked`` order event per association, published."""
    batch = domain.parse_associations(document, max_items=max_items)
    _own_recipes_only(ports.tenants, caller, domain.association_recipe_ids(batch.records))
    events = domain.link_events(caller.tenant_id, batch.records, datetime.now(UTC))
    await ports.publisher.publish([Outgoing(ORDERS_EVENTS, e, e.kafka_key) for e in events])
    return Accepted(accepted=len(events), dropped_fields=batch.dropped_fields)


async def record_order_events(ports: Ports, caller: KeyMatch, document: object, *, max_items: int) -> Accepted:
    """``POST /api/v2/orders/events``: the OMS's lifecycle events, published as order events."""
    batch = domain.parse_lifecycle_events(document, max_items=max_items)
    _own_recipes_only(ports.tenants, caller, domain.lifecycle_recipe_ids(batch.records))
    events = domain.lifecycle_events(caller.tenant_id, batch.records)
    await ports.publisher.publish([Outgoing(ORDERS_EVENTS, e, e.kafka_key) for e in events])
    return Accepted(accepted=len(events), dropped_fields=batch.dropped_fields)


async def find_orders(
    ports: Ports, caller: KeyMatch, field: OrderLookupField, value: str, *, after: str | None
) -> bytes:
    """``GET /api/v2/orders``: one page of the association store's answer, relayed unchanged."""
    # The tenant comes from the key, never from the query: one tenant cannot read another's orders.
    return await ports.associations.find_orders(caller.tenant_id, field, value, after=after)


async def audit_deliveries(ports: Ports, caller: KeyMatch, query: domain.AuditQuery) -> bytes:
    """``GET /api/v2/admin/audit``: deliveries of the caller's tenant that have not ended within the deadline."""
    # The tenant comes from the key, never from the query: one tenant cannot see another's deliveries.
    return await ports.associations.audit(caller.tenant_id, older_than_s=query.older_than_s, limit=query.limit)


# --- the console's lists ---------------------------------------------------------------------------------------
# The tenant comes from the key, never from the query: one tenant cannot list another's orders, deliveries or
# integrations.


async def recent_orders(ports: Ports, caller: KeyMatch, query: domain.PageQuery) -> bytes:
    """``GET /api/v2/orders/recent``: one page of the tenant's orders, newest first, relayed unchanged."""
    try:
        return await ports.associations.recent_orders(caller.tenant_id, limit=query.limit, after=query.after)
    except StoreRefusedQueryError as error:
        # Everything else in the query was checked here; only the caller's cursor can be news to the store.
        if query.after is None:
            raise
        raise domain.cursor_refused() from error


async def failed_deliveries(ports: Ports, caller: KeyMatch, query: domain.FailedDeliveriesQuery) -> bytes:
    """``GET /api/v2/deliveries/failed``: the tenant's final failures (its dead letters), newest first, relayed
    unchanged; optionally of one of its integrations, within ``since``..``until``."""
    domain.check_own_integration(caller.tenant, query.integration)
    try:
        return await ports.associations.deliveries(
            caller.tenant_id,
            status="failed",
            integration=query.integration,
            since=query.since,
            until=query.until,
            limit=query.page.limit,
            after=query.page.after,
        )
    except StoreRefusedQueryError as error:
        if query.page.after is None:
            raise
        raise domain.cursor_refused() from error


async def integrations(ports: Ports, caller: KeyMatch, *, hours: int) -> IntegrationsOverview:
    """``GET /api/v2/integrations``: the tenant's integrations as configured (nothing secret or personal) with
    their delivery counts over the last ``hours``."""
    stats = await ports.associations.integration_stats(caller.tenant_id, since_s=hours * 3600)
    return domain.integrations_overview(caller.tenant, stats, hours=hours)


async def change_integration_state(
    ports: Ports, caller: KeyMatch, integration_id: str, state: IntegrationState, document: object | None
) -> IntegrationStateAccepted:
    """``POST /api/v2/integrations/{integrationId}/pause`` and ``/resume``: one ``IntegrationStateChanged``
    published (acknowledged by every in-sync replica) for one of the caller's tenant's integrations. Deliverers hold
    a paused integration's requests; the retry service releases them on resume."""
    # The tenant comes from the key: another tenant's integration is a 404 like one nobody has.
    domain.own_integration(caller.tenant, integration_id)
    request = domain.parse_state_request(document)
    change = domain.state_change(
        caller.tenant_id, integration_id, state, request, changed_by=caller.key.name, now=datetime.now(UTC)
    )
    await ports.publisher.publish([Outgoing(INTEGRATIONS_CONTROL, change, change.kafka_key)])
    logger.info("integration %s/%s set %s by %s", caller.tenant_id, integration_id, state, caller.key.name)
    return domain.state_accepted(change)


# --- recipes -----------------------------------------------------------------------------------------------------


async def save_recipe(
    ports: Ports, caller: KeyMatch, document: object, *, limits: RecipeLimits, public_base_url: str
) -> RecipeCreated:
    """``POST /api/v2/recipes``: the recipe checked, stored under its tenant, then announced (``RecipeSaved``)."""
    now = datetime.now(UTC)
    recipe = domain.prepare_recipe(document, tenant_prefix=caller.tenant.recipe_prefix, now=now, limits=limits)
    # Not stored when it could not be announced: the client's retry would otherwise leave an orphan copy.
    ports.publisher.ensure_connected()
    await ports.objects.put(
        recipe_object_key(caller.tenant_id, recipe.recipe_id), recipe.body, content_type="application/json"
    )
    event = domain.recipe_saved(caller.tenant_id, recipe, now)
    await ports.publisher.publish([Outgoing(RECIPES_SAVED, event, recipe.recipe_id.encode())])
    return RecipeCreated(id=recipe.recipe_id, url=domain.recipe_url(public_base_url, recipe.recipe_id))


@dataclass(frozen=True, slots=True)
class StoredRecipe:
    recipe_id: str
    tenant: Tenant
    """The owning tenant: its ``recipe-read`` mode decides whether the answer may be cached publicly."""
    body: bytes


async def read_recipe(ports: Ports, credentials: Credentials, recipe_id: str) -> StoredRecipe:
    """``GET /recipe/<id>.json`` (seed 001 read rules): public by ID, or key-only per tenant, where another
    tenant's key sees 404 like an unknown ID. A key is charged to its rate limit."""
    owner = ports.tenants.tenant_for_recipe(recipe_id) if domain.is_recipe_id(recipe_id) else None
    if owner is None:
        raise NotFoundError("not_found", "no such recipe")
    owner_id, tenant = owner
    # Only key-protected recipes look at the key: a public one is served whatever is presented.
    match = identify(ports, credentials) if tenant.recipe_read == "key" else None
    domain.check_recipe_access(
        domain.recipe_access(
            read_mode=tenant.recipe_read,
            owner=owner_id,
            requester=match.tenant_id if match else None,
            can_read=match is not None and match.key.allows("recipes:read"),
        )
    )
    if match is not None:
        ports.key_limits.check(match)
    body = await ports.objects.get(recipe_object_key(owner_id, recipe_id))
    return StoredRecipe(recipe_id, tenant, body)


@dataclass(frozen=True, slots=True)
class PickTicket:
    recipe: StoredRecipe
    pdf: RenderedPdf


async def pick_ticket(ports: Ports, credentials: Credentials, recipe_id: str, *, public_base_url: str) -> PickTicket:
    """``GET /recipe/<id>.pdf``: the recipe's pick ticket ("humanReadable"); no thumbnails (the bundle's has them).

    Read access is checked first, every time (``read_recipe``); then the PDF of this recipe version comes from the
    cache, or from one render shared by every caller asking at once, charged to the caller (429 past its rate).
    """
    recipe = await read_recipe(ports, credentials, recipe_id)
    key = RenderKey.of(recipe_id, recipe.body)
    pdf = ports.pick_tickets.cached(key)
    if pdf is None:
        ports.pick_tickets.charge(render_client(ports.tenants, credentials))
        pdf = await ports.pick_tickets.render(
            key, domain.parse_stored_recipe(recipe.body), recipe_url=domain.recipe_url(public_base_url, recipe_id)
        )
    return PickTicket(recipe, pdf)


def render_client(tenants: TenantsConfig, credentials: Credentials) -> str:
    """Whom a render is charged to: a valid API key's tenant and name, else the client's address."""
    match = tenants.match_key(credentials.key) if credentials.key is not None else None
    if match is not None:
        return f"key:{match.tenant_id}/{match.key.name}"
    return credentials.client


# --- files -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignedFile:
    body: bytes
    name: str
    mime_type: str


async def signed_file(ports: Ports, token: str) -> SignedFile:
    """``GET /files/<token>``: the artifact behind a signed, expiring download link."""
    key, name, mime_type = ports.links.verify(token)
    return SignedFile(await ports.objects.get(key), name, mime_type)


# --- manual triggers ---------------------------------------------------------------------------------------------


async def trigger_integrations(
    ports: Ports,
    caller: KeyMatch,
    document: object,
    *,
    idempotency_key: str | None,
    max_fanout: int,
    link_traces: Callable[[Sequence[str]], None] | None = None,
) -> TriggersAccepted:
    """``POST /api/v2/integrations/trigger`` (seed 000 "Trigger Integrations"): re-run bundle and delivery for an
    order, or for a recipe (its raw feed) and every order using it.

    Every matching order is triggered (the store's pages are followed), up to ``max_fanout`` (413 past it,
    nothing sent); the triggers are charged to the tenant's fan-out bucket (429), then published.
    ``link_traces`` receives the matching orders' original traces (W3C traceparents, one per trace, at most
    ``domain.MAX_ORDER_TRACE_LINKS``), for the request's span to link to.
    """
    target = domain.parse_trigger(document)
    domain.check_integration_ids(caller.tenant, target)
    only_recipe = target.value if target.field == "recipeId" else None
    if only_recipe is not None:
        _own_recipes_only(ports.tenants, caller, [(domain.pointer("recipeId"), only_recipe)])
    new_id = domain.trigger_ids(caller.tenant_id, idempotency_key)
    now = datetime.now(UTC)
    triggers: list[IntegrationsTriggered] = []
    if only_recipe is not None:
        triggers.extend(await _raw_feed_trigger(ports, caller, target, now=now, new_id=new_id))
    order_feed = caller.tenant.manual_feed("order", target.integration_ids)
    found_orders = False
    traces: dict[str, str] = {}
    # The tenant comes from the key: one tenant cannot trigger another's orders.
    async for page in ports.associations.all_orders(caller.tenant_id, target.field, target.value):
        found_orders = found_orders or bool(page.orders)
        domain.original_traces(page, traces)
        triggers.extend(
            domain.manual_order_triggers(
                caller.tenant_id,
                page,
                order_feed,
                now=now,
                owns=lambda recipe_id: ports.tenants.owns_recipe(caller.tenant_id, recipe_id),
                only_recipe=only_recipe,
                new_id=new_id,
            )
        )
        if len(triggers) > max_fanout:
            raise TooLargeError(
                "too_many_triggers",
                f"more than {max_fanout} order lines match; nothing was triggered. "
                "Trigger fewer at a time (by orderId or orderNumber, or with integrationIds).",
            )
    if link_traces is not None and traces:
        link_traces(list(traces.values()))
    if not triggers:
        if not found_orders:
            raise NotFoundError("not_found", "no order or recipe matches")
        raise NothingToTriggerError("nothing_to_trigger", "no enabled integration takes this order's feed")
    ports.fan_out.check(caller.tenant_id, len(triggers))
    await ports.publisher.publish([Outgoing(INTEGRATIONS_TRIGGERED, t, t.recipe_id.encode()) for t in triggers])
    logger.info("manual trigger by %s/%s: %d trigger(s) published", caller.tenant_id, caller.key.name, len(triggers))
    return TriggersAccepted(triggered=len(triggers), triggers=[domain.trigger_summary(t) for t in triggers])


async def replay_deliveries(ports: Ports, caller: KeyMatch, document: object) -> ReplayAccepted:
    """``POST /api/v2/deliveries/replay``: re-trigger one batch of the tenant's final failures in a window (after
    an outage), each to its own integration once; or, with ``dryRun``, only count them.

    The selection leaves out what a replay already re-sent (the association store marks a failure when it reads
    its replay's trigger), and a failure's replay trigger ID is derived from its delivery ID: replaying twice sends
    once per delivery. The batch is charged to the tenant's fan-out budget (429, nothing sent), then published;
    ``next`` continues after it. How fast batches follow each other is the caller's choice (``relay replay
    --rate``); the budget is the ceiling.
    """
    request = domain.parse_replay(document, caller.tenant)
    until = request.until or datetime.now(UTC)
    try:
        page = await ports.associations.replay_selection(
            caller.tenant_id,
            integration=request.integration_id,
            since=request.since,
            until=until,
            limit=request.limit,
            after=request.after,
        )
    except StoreRefusedQueryError as error:
        if request.after is None:
            raise
        raise domain.cursor_refused() from error
    matched = page.total or 0
    if request.dry_run:
        return ReplayAccepted(dry_run=True, matched=matched, replayed=0, deliveries=[], next=None)
    triggers, skipped = domain.replay_triggers(
        caller.tenant_id,
        caller.tenant,
        page.deliveries,
        owns=lambda recipe_id: ports.tenants.owns_recipe(caller.tenant_id, recipe_id),
        now=datetime.now(UTC),
    )
    if triggers:
        ports.fan_out.check(caller.tenant_id, len(triggers))
        await ports.publisher.publish([Outgoing(INTEGRATIONS_TRIGGERED, t, t.recipe_id.encode()) for t in triggers])
    logger.info(
        "replay by %s/%s: %d failure(s) re-triggered, %d skipped, %d matched",
        caller.tenant_id,
        caller.key.name,
        len(triggers),
        skipped,
        matched,
    )
    return ReplayAccepted(
        dry_run=False,
        matched=matched,
        replayed=len(triggers),
        skipped=skipped,
        deliveries=[domain.replayed_delivery(trigger) for trigger in triggers],
        next=page.next,
    )


async def _raw_feed_trigger(
    ports: Ports, caller: KeyMatch, target: TriggerTarget, *, now: datetime, new_id: domain.TriggerIds
) -> list[IntegrationsTriggered]:
    """The raw recipe feed re-run for the target recipe, when some integration takes it; the recipe must then be
    stored (404 otherwise). A temporary recipe goes only where included."""
    if not caller.tenant.manual_feed("recipe", target.integration_ids):
        return []
    try:
        body = await ports.objects.get(recipe_object_key(caller.tenant_id, target.value))
    except ObjectNotFoundError as error:
        raise NotFoundError("not_found", "no such recipe") from error
    temporary = domain.is_temporary_recipe(body)
    integration_ids = caller.tenant.manual_feed("recipe", target.integration_ids, temporary=temporary)
    if not integration_ids:
        return []
    return [domain.manual_recipe_trigger(caller.tenant_id, target.value, integration_ids, now=now, new_id=new_id)]


# --- health ------------------------------------------------------------------------------------------------------


async def readiness(ports: Ports, timeout_s: float) -> dict[str, bool]:
    """Whether the broker, the object store and the association store each answer within ``timeout_s``."""

    async def bounded(check: Awaitable[bool]) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                return await check
        except TimeoutError:
            return False

    broker, objects, associations = await asyncio.gather(
        bounded(ports.publisher.ping(timeout_s)),
        bounded(_object_store_up(ports)),
        bounded(ports.associations.ready()),
    )
    return {"broker": broker, "object-store": objects, "association-store": associations}


async def _object_store_up(ports: Ports) -> bool:
    try:
        await ports.objects.ping()
    except TransientError:
        return False
    return True


# --- Shopify order webhooks ------------------------------------------------------------------------------------

# The webhook sender's own rate-limit bucket in its tenant's ``rate-limit`` (it presents no API key).
_SHOPIFY_SENDER = ApiKey(name="shopify-webhooks", sha256="0" * 64, permissions=("order-tracking",))


async def receive_shopify_webhook(
    ports: Ports, tenant_id: str, headers: Mapping[str, str], body: bytes, *, client: str, now: datetime
) -> ShopifyAccepted:
    """``POST /api/v2/integrations/shopify/{tenant}/webhooks``: one signed Shopify delivery becomes at most one
    order event of ``tenant_id``, with only its non-personal fields (``shopify``).

    The tenant is the one whose webhook secret verifies the raw body: an unknown tenant, one without Shopify, and a
    wrong or missing signature all get the same 401, counted against the client (in a bucket of its own) like an
    unknown API key. Nothing of the body is read before that, and nothing of it is logged.
    """
    # Counted apart from unknown API keys: a store with a rotated secret must not lock its own OMS out of the API.
    sender = f"shopify-webhook:{client}"
    ports.failed_keys.check(sender)
    tenant = ports.tenants.tenant(tenant_id)
    config = tenant.shopify if tenant is not None else None
    if (
        tenant is None
        or config is None
        or not shopify.signature_valid(_webhook_secret(tenant_id, config), body, headers.get(shopify.SIGNATURE_HEADER))
        or not shopify.shop_matches(config.shop_domain, headers)
    ):
        ports.failed_keys.failed(sender)
        raise UnauthorizedError("unauthorized", "the webhook signature does not verify")
    ports.key_limits.check(KeyMatch(tenant_id, tenant, _SHOPIFY_SENDER))
    delivery = shopify.delivery_of(headers, now=now, max_age=timedelta(hours=config.max_age_h))
    if delivery.topic is None:
        return ShopifyAccepted(accepted=0, ignored="topic")
    document = parse_json(body)

    def owns(recipe_id: str) -> bool:
        return ports.tenants.owns_recipe(tenant_id, recipe_id)

    if delivery.topic == "refunds/create":
        refund = shopify.parse_refund(document, recipe_property=config.recipe_property, owns=owns)
        known = await _known_order(ports, tenant_id, refund.order_id) if refund.refunded else None
        event = shopify.refund_event(tenant_id, delivery, refund, known)
        ignored_items = refund.ignored
        why: Literal["no_recipe_items", "order_unknown"] = "order_unknown" if refund.refunded else "no_recipe_items"
    else:
        order = shopify.parse_order(document, recipe_property=config.recipe_property, owns=owns)
        event = shopify.order_event(tenant_id, delivery, order)
        ignored_items, why = order.ignored, "no_recipe_items"
    if event is None:
        logger.info(
            "shopify %s delivery %s for %s: nothing to record (%s)", delivery.topic, delivery.webhook_id, tenant_id, why
        )
        return ShopifyAccepted(accepted=0, ignored_items=ignored_items, ignored=why)
    await ports.publisher.publish([Outgoing(ORDERS_EVENTS, event, event.kafka_key)])
    logger.info(
        "shopify %s delivery %s for %s: order %s %s (%d items)",
        delivery.topic,
        delivery.webhook_id,
        tenant_id,
        event.order_id,
        event.type,
        len(event.items or ()),
    )
    return ShopifyAccepted(accepted=1, ignored_items=ignored_items)


def _webhook_secret(tenant_id: str, config: ShopifySettings) -> str:
    try:
        return config.webhook_secret.resolve().get_secret_value()
    except PermanentError:
        # A deployment mistake, not the sender's: 503, so Shopify keeps retrying until the secret is set.
        logger.error("the Shopify webhook secret of tenant %s is not set in the environment", tenant_id)  # noqa: TRY400
        raise TransientError(f"the Shopify webhooks of tenant {tenant_id} are not configured") from None


async def _known_order(ports: Ports, tenant_id: str, order_id: str) -> shopify.KnownOrder | None:
    """The refunded order as the association store knows it (its number, its items), or ``None``."""
    async for page in ports.associations.all_orders(tenant_id, "orderId", order_id):
        for order in page.orders:
            if order.order_id == order_id:
                items = [
                    OrderItem(recipe_id=i.recipe_id, item_id=i.item_id, item_quantity=i.item_quantity)
                    for i in order.items
                ]
                return shopify.KnownOrder(order_number=order.order_number, items=items)
        break
    return None
