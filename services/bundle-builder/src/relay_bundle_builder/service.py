"""Bundle logic: which files a recipe yields, their names and keys, the manifest, the messages; no broker/HTTP/SDK."""

from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlparse

from pathvalidate import sanitize_filename

from relay_contracts.messages import (
    BundleFile,
    DeliverBundle,
    DeliveryAttempted,
    IntegrationsTriggered,
    OrderLine,
    TriggerReason,
    stable_id,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES, IntegrationType, deliveries_requested
from relay_pickticket import TicketImage, TicketOrder, render_pick_ticket
from relay_platform.errors import PermanentError, TransientError
from relay_platform.objectstore import ObjectNotFoundError, ObjectStore
from relay_platform.tenants import Tenant, integration_type

NAME_MAX = 80  # the <name> part, in characters
FILE_NAME_MAX = 200  # the whole file name, in characters (and 255 bytes at most)
RECIPE_FILE = "Recipe"
TICKET_FILE = "Ticket"
MANIFEST_FILE = "manifest.json"
EVENTS_DIR = "events"  # event bundles live beside, not over, the manufacturing bundle of the same order line

AssetKind = Literal["production", "preview", "variant", "attachment"]

_EXTENSION = re.compile(r"^[a-z0-9]{1,8}$")
# mimetypes' first guesses are not the ones people expect for these.
_PREFERRED_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/svg+xml": "svg",
    "image/tiff": "tif",
    "application/pdf": "pdf",
    "text/plain": "txt",
    "application/json": "json",
    "application/octet-stream": "bin",
    "application/postscript": "eps",
}


# --- errors ------------------------------------------------------------------------------------------------------


class AssetError(PermanentError):
    """An asset cannot be part of the bundle (missing, too large, refused address); the bundle is not delivered."""


class AssetUnavailableError(TransientError):
    """An asset kept failing transiently through every in-attempt retry."""


class BundleFailedError(PermanentError):
    """The bundle cannot be built; every listed integration gets a final failed outcome with this reason."""


# --- ports -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FetchedAsset:
    data: bytes
    content_type: str


class AssetFetcher(Protocol):
    async def fetch(self, url: str, *, label: str, allowed_hosts: Sequence[str]) -> FetchedAsset:
        """The asset's bytes; ``AssetError`` when it can never be fetched, ``AssetUnavailableError`` for now."""
        ...


# --- which files -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssetRef:
    """One file the bundle needs from a URL in the recipe, with its base name (``<viewCode>-Preview``)."""

    kind: AssetKind
    url: str
    stem: str
    label: str  # how a person finds it in the recipe: "view front production", "attachment logo"
    extension: str | None = None  # fixed by the recipe field (previewPng -> png) or the URL; else the content type
    view: str | None = None


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def url_extension(url: str) -> str | None:
    """The extension in a URL's path (``.../a.PNG?x`` -> ``png``), if it looks like one."""
    name = unquote(urlparse(url).path).rsplit("/", 1)[-1]
    if "." not in name:
        return None
    extension = name.rsplit(".", 1)[1].lower()
    return extension if _EXTENSION.match(extension) else None


def content_type_extension(content_type: str) -> str:
    media = content_type.split(";", 1)[0].strip().lower()
    if media in _PREFERRED_EXTENSIONS:
        return _PREFERRED_EXTENSIONS[media]
    guessed = mimetypes.guess_extension(media, strict=False)
    return guessed.lstrip(".") if guessed else "bin"


def mime_type_for(extension: str, content_type: str | None = None) -> str:
    if content_type and "/" in content_type:
        return content_type.split(";", 1)[0].strip().lower()
    guessed, _ = mimetypes.guess_type(f"x.{extension}", strict=False)
    return guessed or "application/octet-stream"


def asset_refs(recipe: Mapping[str, Any]) -> list[AssetRef]:
    """Production files, preview images and variants of every view, then attachments, in recipe order."""
    refs: list[AssetRef] = []
    for index, view in enumerate(_dicts(recipe.get("views")), start=1):
        code = _str(view.get("code")) or _str(view.get("name")) or f"view{index}"
        if production := _str(view.get("production")):
            refs.append(
                AssetRef(
                    "production",
                    production,
                    f"{code}-Production",
                    f"view {code} production file",
                    url_extension(production),
                    code,
                )
            )
        if png := _str(view.get("previewPng")):
            refs.append(AssetRef("preview", png, f"{code}-Preview", f"view {code} PNG preview", "png", code))
        if jpg := _str(view.get("previewJpg")):
            refs.append(AssetRef("preview", jpg, f"{code}-Preview", f"view {code} JPG preview", "jpg", code))
        for v_index, variant in enumerate(_dicts(view.get("variants")), start=1):
            if preview := _str(variant.get("preview")):
                v_code = _str(variant.get("code")) or _str(variant.get("suffix")) or f"variant{v_index}"
                refs.append(
                    AssetRef(
                        "variant",
                        preview,
                        f"{code}-{v_code}",
                        f"view {code} variant {v_code}",
                        url_extension(preview),
                        code,
                    )
                )
    for index, attachment in enumerate(_dicts(recipe.get("attachments")), start=1):
        if url := _str(attachment.get("url")):
            name = _str(attachment.get("code")) or _str(attachment.get("name")) or f"attachment{index}"
            refs.append(AssetRef("attachment", url, name, f"attachment {name}", url_extension(url)))
    return refs


# --- names and keys ----------------------------------------------------------------------------------------------


def sanitize_part(text: str, *, limit: int = NAME_MAX, fallback: str = "file") -> str:
    """A safe name fragment: no separators, control characters or ``..``; whitespace as ``_``; bounded length."""
    cleaned = "".join(ch for ch in text if ch.isprintable())
    cleaned = re.sub(r"[\s/\\]+", "_", cleaned)
    cleaned = sanitize_filename(cleaned, replacement_text="_", platform="universal", max_len=limit * 4)
    cleaned = re.sub(r"\.{2,}", ".", cleaned).strip("._ ")
    return cleaned[:limit].rstrip("._ ") or fallback


def name_prefix(recipe_id: str, order: OrderLine | None) -> str:
    """Seed 000: ``<recipeId>-`` for the recipe feed, ``<orderNumber>_ID_<orderId>_R_<recipeId>_`` for an order."""
    recipe = sanitize_part(recipe_id, limit=64)
    if order is None:
        return f"{recipe}-"
    number = sanitize_part(order.order_number, limit=40)
    order_id = sanitize_part(order.order_id, limit=40)
    return f"{number}_ID_{order_id}_R_{recipe}_"


def file_name(prefix: str, stem: str, extension: str) -> str:
    room = max(8, min(NAME_MAX, FILE_NAME_MAX - len(prefix) - len(extension) - 1))
    return f"{prefix}{sanitize_part(stem, limit=room)}.{extension}"


def unique_names(names: Sequence[str]) -> list[str]:
    """Resolve collisions (case-insensitively) by ``-2``, ``-3``… in input order, so a rebuild names alike."""
    taken: set[str] = set()
    result: list[str] = []
    for name in names:
        stem, dot, extension = name.rpartition(".")
        if not dot:
            stem, extension = name, ""
        candidate, counter = name, 1
        while candidate.lower() in taken:
            counter += 1
            candidate = f"{stem}-{counter}{dot}{extension}"
        taken.add(candidate.lower())
        result.append(candidate)
    return result


def bundle_dir(tenant: str, recipe_id: str, order: OrderLine | None) -> str:
    """Deterministic object-store folder of a bundle, so a rebuild overwrites rather than duplicates."""
    tenant_part = sanitize_part(tenant, limit=64)
    recipe = sanitize_part(recipe_id, limit=128)
    if order is None:
        return f"bundles/{tenant_part}/recipes/{recipe}"
    order_id = sanitize_part(order.order_id, limit=128)
    item = sanitize_part(order.item_id or "", limit=128, fallback="order")
    return f"bundles/{tenant_part}/orders/{order_id}/{item}/{recipe}"


# --- order lifecycle events --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventPlan:
    """The event-only bundle an order lifecycle trigger gets instead of the manufacturing bundle.

    ``stem`` names the event file (``<prefix><stem>.json``); ``ticket_banner`` set means the pick ticket is
    included, stamped with it (a cancellation: whoever holds the earlier ticket must see it is void).
    """

    reason: TriggerReason
    stem: str
    folder: str
    ticket_banner: str | None = None


EVENT_PLANS: Mapping[TriggerReason, EventPlan] = {
    "order_cancelled": EventPlan("order_cancelled", "Cancellation", "cancelled", ticket_banner="CANCELLED"),
    "order_refunded": EventPlan("order_refunded", "Refund", "refunded"),
    "order_returned": EventPlan("order_returned", "Return", "returned"),
}


def event_plan(trigger: IntegrationsTriggered) -> EventPlan | None:
    """The event bundle for a cancelled/refunded/returned order line; ``None`` for a manufacturing bundle.

    Created, linked, updated, recipe-saved and manual triggers (re)build the manufacturing bundle: an update
    re-delivers it with the new quantities under the same names and keys.
    """
    return EVENT_PLANS.get(trigger.reason)


def ticket_banner(trigger: IntegrationsTriggered) -> str | None:
    """The stamp on a manufacturing bundle's ticket: ``CANCELLED`` when the order line is cancelled.

    The association store may still fire ``updated``/``linked``/``manual`` for a cancelled order (say, an item
    list that predates the cancellation); its re-delivered ticket must not read as a work order again.
    """
    if trigger.order is not None and (trigger.order.status or "").lower() == "cancelled":
        return EVENT_PLANS["order_cancelled"].ticket_banner
    return None


def event_json(trigger: IntegrationsTriggered) -> bytes:
    """``{"event", "orderId", "orderNumber", "recipeId", "itemId", "itemQuantity", "occurredAt"}``.

    Deterministic for one trigger (same bytes on a rebuild); IDs and quantity only, nothing personal.
    """
    if trigger.order is None:
        raise BundleFailedError(f"{trigger.reason} trigger without an order line: no event to deliver")
    document = {
        "event": trigger.reason,
        "orderId": trigger.order.order_id,
        "orderNumber": trigger.order.order_number,
        "recipeId": trigger.recipe_id,
        "itemId": trigger.order.item_id,
        "itemQuantity": trigger.order.item_quantity,
        "occurredAt": trigger.model_dump(mode="json", include={"occurred_at"})["occurredAt"],
    }
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def event_dir(trigger: IntegrationsTriggered, plan: EventPlan) -> str:
    """``<bundle dir>/events/<cancelled|refunded|returned>``: deterministic, apart from the manufacturing files
    (their keys and checksums stay valid for deliveries still in flight)."""
    return f"{bundle_dir(trigger.tenant, trigger.recipe_id, trigger.order)}/{EVENTS_DIR}/{plan.folder}"


# --- the bundle --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BuiltFile:
    name: str
    mime_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Bundle:
    directory: str
    files: tuple[BundleFile, ...]
    manifest_key: str


@dataclass(frozen=True, slots=True)
class BuildContext:
    """What ``build_bundle`` needs from the outside world, as ports and plain values."""

    store: ObjectStore
    fetcher: AssetFetcher
    recipe_url: Callable[[str], str]
    render_in_thread: bool = True
    store_concurrency: int = 8


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ticket_order(order: OrderLine | None) -> TicketOrder | None:
    if order is None:
        return None
    return TicketOrder(order.order_number, order.order_id, order.item_id, order.item_quantity, order.status)


def _is_image(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() in {"image/png", "image/jpeg", "image/gif", "image/webp"}


async def _load_recipe(store: ObjectStore, key: str) -> tuple[bytes, dict[str, Any]]:
    try:
        raw = await store.get(key)
    except ObjectNotFoundError as error:
        raise BundleFailedError(f"recipe JSON not found in the artifact store ({key})") from error
    try:
        recipe = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleFailedError(f"stored recipe JSON is not valid JSON ({key})") from error
    if not isinstance(recipe, dict):
        raise BundleFailedError(f"stored recipe JSON is not an object ({key})")
    return raw, recipe


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
    try:
        fetched = await asyncio.gather(
            *(ctx.fetcher.fetch(ref.url, label=ref.label, allowed_hosts=tenant.allowed_asset_hosts) for ref in refs)
        )
    except AssetError as error:
        raise BundleFailedError(f"bundle incomplete: {error}") from error
    except AssetUnavailableError as error:
        raise BundleFailedError(
            f"bundle incomplete: {error}; retries exhausted, trigger the integrations again to rebuild"
        ) from error

    previews = [
        TicketImage(ref.view or ref.stem, asset.data)
        for ref, asset in zip(refs, fetched, strict=True)
        if ref.kind == "preview" and _is_image(asset.content_type)
    ]
    # One thumbnail per view: the PNG if there is one, else the JPG.
    thumbnails = list({p.label: p for p in reversed(previews)}.values())[::-1]
    render = _render_args(recipe, trigger, ctx, thumbnails, banner=ticket_banner(trigger))
    ticket = await asyncio.to_thread(render) if ctx.render_in_thread else render()

    prefix = name_prefix(trigger.recipe_id, trigger.order)
    planned: list[tuple[str, str, bytes]] = [
        (file_name(prefix, RECIPE_FILE, "json"), "application/json", raw_recipe),
        (file_name(prefix, TICKET_FILE, "pdf"), "application/pdf", ticket),
    ]
    for ref, asset in zip(refs, fetched, strict=True):
        extension = ref.extension or content_type_extension(asset.content_type)
        planned.append(
            (file_name(prefix, ref.stem, extension), mime_type_for(extension, asset.content_type), asset.data)
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
        ticket = await asyncio.to_thread(render) if ctx.render_in_thread else render()
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
    return lambda: render_pick_ticket(recipe, order=order, previews=thumbnails, recipe_url=url, banner=banner)


async def _store(
    trigger: IntegrationsTriggered, ctx: BuildContext, built: list[BuiltFile], *, directory: str | None = None
) -> Bundle:
    directory = directory or bundle_dir(trigger.tenant, trigger.recipe_id, trigger.order)
    files = tuple(
        BundleFile(
            name=f.name, mime_type=f.mime_type, size=len(f.data), sha256=_sha256(f.data), key=f"{directory}/{f.name}"
        )
        for f in built
    )
    limit = asyncio.Semaphore(ctx.store_concurrency)

    async def put(key: str, data: bytes, mime: str) -> None:
        async with limit:
            await ctx.store.put(key, data, content_type=mime)

    await asyncio.gather(*(put(meta.key, f.data, f.mime_type) for meta, f in zip(files, built, strict=True)))
    manifest_key = f"{directory}/{MANIFEST_FILE}"
    await ctx.store.put(manifest_key, manifest_json(trigger, files), content_type="application/json")
    return Bundle(directory=directory, files=files, manifest_key=manifest_key)


def manifest_json(trigger: IntegrationsTriggered, files: Sequence[BundleFile]) -> bytes:
    """The bundle's table of contents, stored beside the files (same fields as the messages carry)."""
    document = {
        "schemaVersion": 1,
        "tenant": trigger.tenant,
        "recipeId": trigger.recipe_id,
        "feed": trigger.feed,
        "reason": trigger.reason,
        "order": trigger.order.model_dump(mode="json") if trigger.order else None,
        "triggerId": trigger.trigger_id,
        "files": [f.model_dump(mode="json") for f in files],
    }
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


# --- messages ----------------------------------------------------------------------------------------------------


def targets(trigger: IntegrationsTriggered, tenant: Tenant) -> list[tuple[str, IntegrationType]]:
    """``(integration_id, type)`` for each listed integration the tenant config still knows, in trigger order."""
    found: list[tuple[str, IntegrationType]] = []
    for integration_id in dict.fromkeys(trigger.integration_ids):
        integration = tenant.integration(integration_id)
        if integration is not None:
            found.append((integration_id, integration_type(integration)))
    return found


def delivery_requests(
    trigger: IntegrationsTriggered, tenant: Tenant, bundle: Bundle, now: datetime
) -> list[tuple[str, DeliverBundle]]:
    """One ``DeliverBundle`` per integration, with the topic of its deliverer."""
    return [
        (deliveries_requested(request.integration_type), request)
        for request in _requests(trigger, tenant, bundle.files, now)
    ]


def _requests(
    trigger: IntegrationsTriggered, tenant: Tenant, files: tuple[BundleFile, ...], now: datetime
) -> list[DeliverBundle]:
    return [
        DeliverBundle(
            delivery_id=stable_id(trigger.trigger_id, integration_id),
            trigger_id=trigger.trigger_id,
            tenant=trigger.tenant,
            integration_id=integration_id,
            integration_type=kind,
            recipe_id=trigger.recipe_id,
            feed=trigger.feed,
            reason=trigger.reason,
            order=trigger.order,
            attempt=1,
            files=files,
            requested_at=now,
        )
        for integration_id, kind in targets(trigger, tenant)
    ]


def failure_outcomes(
    trigger: IntegrationsTriggered, tenant: Tenant, error: BundleFailedError, now: datetime, duration_ms: int = 0
) -> list[tuple[str, DeliveryAttempted]]:
    """A final failed outcome per integration: the notifier tells each failure list why."""
    cause = error.__cause__ if isinstance(error.__cause__, Exception) else error
    return [
        (
            DELIVERIES_OUTCOMES,
            DeliveryAttempted.of(
                request,
                status="failed",
                final=True,
                occurred_at=now,
                duration_ms=duration_ms,
                error_class=type(cause).__name__,
                error_message=str(error)[:2000],
            ),
        )
        for request in _requests(trigger, tenant, (), now)
    ]
