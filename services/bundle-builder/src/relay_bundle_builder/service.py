"""The bundle-builder's use case: one trigger in, its delivery requests (or a failed outcome per integration) out.

``request_deliveries`` is what the handler calls; the rest of this module builds the bundle it needs (fetch the
assets, render the pick ticket, store every file and the manifest) through the ports it is handed (``ports``),
with the rules of ``domain``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from relay_bundle_builder.domain import (
    AssetError,
    AssetRef,
    AssetUnavailableError,
    Bundle,
    BundleFailedError,
    ByteBudget,
    EventPlan,
    Target,
    asset_refs,
    check_ownership,
    delivery_requests,
    event_dir,
    event_json,
    event_plan,
    failure_of,
    failure_outcomes,
    is_image,
    manifest_json,
    parse_recipe,
    targets,
    ticket_banner,
)
from relay_bundle_builder.naming import (
    MANIFEST_FILE,
    RECIPE_FILE,
    TICKET_FILE,
    bundle_dir,
    content_type_extension,
    file_name,
    mime_type_for,
    name_prefix,
    object_key,
    unique_names,
)
from relay_bundle_builder.ports import BuildContext, FetchedAsset, ObjectStore
from relay_bundle_builder.spool import AssetSpool
from relay_contracts.messages import BundleFile, IntegrationsTriggered, OrderLine
from relay_pickticket import TicketImage, TicketOrder, render_pick_ticket
from relay_platform.errors import PermanentError, RelayError, TransientError
from relay_platform.objectstore import ObjectNotFoundError
from relay_platform.outgoing import Outgoing
from relay_platform.tenants import Tenant, TenantsConfig

logger = logging.getLogger("relay.bundle_builder")
# The process's provider (``relay_platform.telemetry``) once installed; a no-op before that (unit tests). Spans
# start inside the trigger's consume span, so the build is in the order's trace.
tracer = trace.get_tracer("relay.bundle_builder")

T = TypeVar("T")


# --- the use case ------------------------------------------------------------------------------------------------


async def request_deliveries(
    trigger: IntegrationsTriggered, tenants: TenantsConfig, ctx: BuildContext, *, final_read: bool
) -> list[Outgoing]:
    """Build the trigger's bundle once; the messages to publish: one delivery request per listed integration.

    The one place a trigger ends: whatever goes wrong while building — a classified failure, a bundle over its
    budget, a bug — becomes a final failed outcome per integration instead, so the order lookup shows it and
    every failure list hears why. Only a transient failure before the final read is raised, for the consumer to
    read the trigger again after a pause; an unknown tenant is a ``PermanentError`` (nothing names an outcome).
    """
    tenant = tenants.tenant(trigger.tenant)
    if tenant is None:
        raise PermanentError(f"unknown tenant {trigger.tenant!r}")
    found = targets(trigger, tenant)
    if not found:
        logger.warning("trigger %s lists no integration known to tenant %s", trigger.trigger_id, trigger.tenant)
        return []
    started = time.monotonic()
    with tracer.start_as_current_span(
        "bundle build",
        attributes={"relay.trigger.reason": trigger.reason, "relay.bundle.integrations": len(found)},
        # Failures are classified below; an exception's text (a URL, a recipe value) stays out of the trace.
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            try:
                check_ownership(trigger, tenants)
                async with asyncio.timeout(ctx.budget.time_s):
                    bundle = await build_bundle(trigger, tenant, ctx)
            except TimeoutError as error:
                raise BundleFailedError(f"bundle not built within its {ctx.budget.time_s:g} s budget") from error
        except Exception as error:
            error_class = type(error).__name__
            span.set_attribute("error.type", error_class)
            span.set_status(Status(StatusCode.ERROR, error_class))
            if isinstance(error, TransientError) and not final_read:
                raise
            return _failed(trigger, found, error, started)
        span.set_attribute("relay.bundle.files", len(bundle.files))
    logger.info(
        "bundle for trigger %s (%s, recipe %s): %d files in %s",
        trigger.trigger_id,
        trigger.reason,
        trigger.recipe_id,
        len(bundle.files),
        bundle.directory,
    )
    return delivery_requests(trigger, found, bundle.files, datetime.now(UTC))


def _failed(
    trigger: IntegrationsTriggered, found: Sequence[Target], error: Exception, started: float
) -> list[Outgoing]:
    error_class, reason = failure_of(error)
    if isinstance(error, RelayError):
        logger.warning("bundle for trigger %s (recipe %s) failed: %s", trigger.trigger_id, trigger.recipe_id, reason)
    else:
        logger.error("bundle for trigger %s (recipe %s) failed", trigger.trigger_id, trigger.recipe_id, exc_info=error)
    elapsed_ms = int((time.monotonic() - started) * 1000)
    return failure_outcomes(
        trigger, found, error_class=error_class, reason=reason, now=datetime.now(UTC), duration_ms=elapsed_ms
    )


# --- building the bundle -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltFile:
    name: str
    mime_type: str
    data: bytes | AssetSpool


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ticket_order(order: OrderLine | None) -> TicketOrder | None:
    if order is None:
        return None
    return TicketOrder(order.order_number, order.order_id, order.item_id, order.item_quantity, order.status)


async def _load_recipe(store: ObjectStore, key: str) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = await store.get(key)
    except ObjectNotFoundError as error:
        raise BundleFailedError(f"recipe JSON not found in the artifact store ({key})") from error
    return raw, parse_recipe(raw, key)


async def build_bundle(trigger: IntegrationsTriggered, tenant: Tenant, ctx: BuildContext) -> Bundle:
    """Fetch, render and store every file of the trigger's bundle; write its manifest beside the files.

    Raises ``BundleFailedError`` when the bundle cannot be complete (a missing/oversized/refused asset, assets
    unavailable after retries, no recipe): a manufacturing bundle is never delivered silently incomplete.
    Store errors propagate unchanged (transient -> the message is re-read). A cancelled, refunded or returned
    order line gets its event bundle instead (``build_event_bundle``).
    """
    plan = event_plan(trigger)
    if plan is not None:
        return await build_event_bundle(trigger, plan, ctx)
    raw_recipe, recipe = await _load_recipe(ctx.store, trigger.recipe_key)
    refs = asset_refs(recipe)
    if len(refs) > ctx.budget.max_assets:
        raise BundleFailedError(f"the recipe lists {len(refs)} asset files; a bundle takes {ctx.budget.max_assets}")
    budget = ByteBudget(ctx.budget.max_asset_bytes, memory_limit=ctx.budget.max_memory_bytes)
    try:
        fetched = await _fetch_all(ctx, refs, tenant.allowed_asset_hosts, budget)
    except AssetError as error:
        raise BundleFailedError(f"bundle incomplete: {error}") from error
    except AssetUnavailableError as error:
        raise BundleFailedError(
            f"bundle incomplete: {error}; retries exhausted, trigger the integrations again to rebuild"
        ) from error
    try:
        return await _render_and_store(trigger, ctx, recipe, raw_recipe, list(zip(refs, fetched, strict=True)))
    finally:
        for asset in fetched:
            asset.body.close()


async def _fetch_all(
    ctx: BuildContext, refs: Sequence[AssetRef], allowed_hosts: Sequence[str], budget: ByteBudget
) -> list[FetchedAsset]:
    """Every ref's asset, fetched concurrently; on the first failure the other fetches are cancelled and what was
    already fetched is closed (its temporary file deleted) before the error is raised."""
    tasks = [asyncio.ensure_future(_traced_fetch(ctx, ref, allowed_hosts, budget)) for ref in refs]
    try:
        return await _all_or_none(tasks)
    except BaseException:
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                task.result().body.close()
        raise


async def _traced_fetch(
    ctx: BuildContext, ref: AssetRef, allowed_hosts: Sequence[str], budget: ByteBudget
) -> FetchedAsset:
    """One asset's fetch as a child span of the build; it names the host only: a path or query string may carry
    a signed token."""
    with tracer.start_as_current_span(
        "asset fetch",
        kind=SpanKind.CLIENT,
        attributes={"server.address": _host_of(ref.url)},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            asset = await ctx.fetcher.fetch(ref.url, label=ref.label, allowed_hosts=allowed_hosts, budget=budget)
        except Exception as error:
            span.set_attribute("error.type", type(error).__name__)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        span.set_attribute("relay.asset.bytes", asset.body.size)
        return asset


def _host_of(url: str) -> str:
    # The host alone: never the user:password@ part, the path or the query string.
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


async def _render_ticket(ctx: BuildContext, render: Callable[[], bytes]) -> bytes:
    """The pick ticket's render as a child span of the build (in a thread unless the context says otherwise)."""
    with tracer.start_as_current_span("ticket render") as span:
        ticket = await asyncio.to_thread(render) if ctx.render_in_thread else render()
        span.set_attribute("relay.ticket.bytes", len(ticket))
        return ticket


async def _all_or_none(tasks: Sequence[asyncio.Future[T]]) -> list[T]:
    """The tasks' results; on the first failure (or cancellation) the others are cancelled and awaited first, so
    none is left running (reading a spool about to be closed, say)."""
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


async def _render_and_store(
    trigger: IntegrationsTriggered,
    ctx: BuildContext,
    recipe: Mapping[str, Any],
    raw_recipe: bytes,
    assets: list[tuple[AssetRef, FetchedAsset]],
) -> Bundle:
    # The render thread reads previews straight from their spools; Pillow decodes at most the first MAX_PREVIEWS.
    previews = [
        TicketImage(ref.view or ref.stem, asset.body.reader())
        for ref, asset in assets
        if ref.kind == "preview" and is_image(asset.content_type)
    ]
    # One thumbnail per view: the PNG if there is one, else the JPG.
    thumbnails = list({p.label: p for p in reversed(previews)}.values())[::-1]
    render = _render_args(recipe, trigger, ctx, thumbnails, banner=ticket_banner(trigger))
    ticket = await _render_ticket(ctx, render)

    prefix = name_prefix(trigger.recipe_id, trigger.order)
    planned: list[tuple[str, str, bytes | AssetSpool]] = [
        (file_name(prefix, RECIPE_FILE, "json"), "application/json", raw_recipe),
        (file_name(prefix, TICKET_FILE, "pdf"), "application/pdf", ticket),
    ]
    for ref, asset in assets:
        extension = ref.extension or content_type_extension(asset.content_type)
        planned.append(
            (file_name(prefix, ref.stem, extension), mime_type_for(extension, asset.content_type), asset.body)
        )
    names = unique_names([name for name, _, _ in planned])
    built = [BuiltFile(name, mime, data) for name, (_, mime, data) in zip(names, planned, strict=True)]
    return await _store(trigger, ctx, built)


async def build_event_bundle(trigger: IntegrationsTriggered, plan: EventPlan, ctx: BuildContext) -> Bundle:
    """The event JSON (plus, for a cancellation, the pick ticket stamped with the banner); no asset is fetched.

    The files keep the order line's name prefix, so a file destination gets them beside the earlier ones; the
    stamped ticket has the ticket's name and replaces the one a worker would print.
    """
    prefix = name_prefix(trigger.recipe_id, trigger.order)
    built = [BuiltFile(file_name(prefix, plan.stem, "json"), "application/json", event_json(trigger))]
    if plan.ticket_banner is not None:
        _, recipe = await _load_recipe(ctx.store, trigger.recipe_key)
        render = _render_args(recipe, trigger, ctx, [], banner=plan.ticket_banner)
        ticket = await _render_ticket(ctx, render)
        built.append(BuiltFile(file_name(prefix, TICKET_FILE, "pdf"), "application/pdf", ticket))
    return await _store(trigger, ctx, built, directory=event_dir(trigger, plan))


def _render_args(
    recipe: Mapping[str, Any],
    trigger: IntegrationsTriggered,
    ctx: BuildContext,
    thumbnails: list[TicketImage],
    *,
    banner: str | None = None,
) -> Callable[[], bytes]:
    order = _ticket_order(trigger.order)
    url = ctx.recipe_url(trigger.recipe_id)
    max_pixels = ctx.budget.max_preview_pixels
    return lambda: render_pick_ticket(
        recipe, order=order, previews=thumbnails, recipe_url=url, banner=banner, max_preview_pixels=max_pixels
    )


async def _store(
    trigger: IntegrationsTriggered, ctx: BuildContext, built: list[BuiltFile], *, directory: str | None = None
) -> Bundle:
    directory = directory or bundle_dir(trigger.tenant, trigger.recipe_id, trigger.order)
    # Keys carry the content's hash: a rebuild with other bytes never replaces the object that a delivery still
    # in flight points at (its checksum stays true), and a rebuild with the same bytes writes the same key.
    files = tuple(
        BundleFile(
            name=f.name,
            mime_type=f.mime_type,
            size=f.data.size if isinstance(f.data, AssetSpool) else len(f.data),
            sha256=(digest := f.data.sha256 if isinstance(f.data, AssetSpool) else _sha256(f.data)),
            key=object_key(directory, f.name, digest),
        )
        for f in built
    )
    limit = asyncio.Semaphore(ctx.store_concurrency)

    async def put(key: str, data: bytes | AssetSpool, mime: str) -> None:
        async with limit:
            if isinstance(data, AssetSpool):
                # Streamed from the spool in bounded chunks: a 100 MB asset never sits in memory whole.
                await ctx.store.put_stream(key, data.reader(), content_type=mime)
            else:
                await ctx.store.put(key, data, content_type=mime)

    await _all_or_none(
        [asyncio.ensure_future(put(meta.key, f.data, f.mime_type)) for meta, f in zip(files, built, strict=True)]
    )
    manifest_key = f"{directory}/{MANIFEST_FILE}"
    await ctx.store.put(manifest_key, manifest_json(trigger, files), content_type="application/json")
    return Bundle(directory=directory, files=files, manifest_key=manifest_key)
