"""Bundle rules, pure: which files a recipe yields, what a bundle may cost, event bundles, the manifest, whose
recipe a trigger may build, and the messages to publish."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from relay_bundle_builder.naming import EVENTS_DIR, bundle_dir, url_extension
from relay_contracts.messages import (
    BundleFile,
    DeliverBundle,
    DeliveryAttempted,
    IntegrationsTriggered,
    TriggerReason,
    delivery_key,
    recipe_object_key,
    stable_id,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES, IntegrationType, deliveries_requested
from relay_platform.errors import PermanentError, TransientError
from relay_platform.outgoing import Outgoing
from relay_platform.redact import redact_secrets
from relay_platform.tenants import Tenant, TenantsConfig, integration_type

AssetKind = Literal["production", "preview", "variant", "attachment"]


# --- errors ------------------------------------------------------------------------------------------------------


class AssetError(PermanentError):
    """An asset cannot be part of the bundle (missing, too large, refused address); the bundle is not delivered."""


class AssetUnavailableError(TransientError):
    """An asset kept failing transiently through every in-attempt retry."""


class BundleFailedError(PermanentError):
    """The bundle cannot be built; every listed integration gets a final failed outcome with this reason."""


# --- whose recipe ------------------------------------------------------------------------------------------------


def check_ownership(trigger: IntegrationsTriggered, tenants: TenantsConfig) -> None:
    """A trigger builds only its own tenant's recipe, from its own tenant's key (``BundleFailedError`` otherwise):
    whoever wrote the trigger, another tenant's recipe, ticket and assets never reach this tenant's destinations."""
    if not tenants.owns_recipe(trigger.tenant, trigger.recipe_id):
        raise BundleFailedError(f"recipe {trigger.recipe_id} is not a recipe of tenant {trigger.tenant}")
    if trigger.recipe_key != recipe_object_key(trigger.tenant, trigger.recipe_id):
        raise BundleFailedError(f"the recipe key of trigger {trigger.trigger_id} is not its tenant's key")


# --- what a bundle may cost --------------------------------------------------------------------------------------


class ByteBudget:
    """The bytes one bundle may still fetch; shared by its concurrent downloads, charged as chunks arrive. Of
    those, at most ``memory_limit`` stay in memory (``hold``/``release``); the rest are spooled to disk."""

    def __init__(self, limit: int, *, memory_limit: int = 16 * 1024 * 1024) -> None:
        self.limit = limit
        self.used = 0
        self.memory_limit = memory_limit
        self.in_memory = 0

    def charge(self, size: int, *, label: str) -> None:
        self.used += size
        if self.used > self.limit:
            raise AssetError(f"{label}: the bundle's assets exceed its {self.limit}-byte budget")

    def hold(self, size: int) -> bool:
        """Take ``size`` bytes of the memory allowance; ``False`` (nothing taken) when it has no room."""
        if self.in_memory + size > self.memory_limit:
            return False
        self.in_memory += size
        return True

    def release(self, size: int) -> None:
        self.in_memory -= size


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


def parse_recipe(raw: bytes, key: str) -> dict[str, Any]:
    """The stored recipe JSON as an object; ``BundleFailedError`` when it is not one."""
    try:
        recipe = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleFailedError(f"stored recipe JSON is not valid JSON ({key})") from error
    if not isinstance(recipe, dict):
        raise BundleFailedError(f"stored recipe JSON is not an object ({key})")
    return recipe


def is_image(content_type: str) -> bool:
    """Whether a fetched preview can go on the pick ticket."""
    return content_type.split(";", 1)[0].strip().lower() in {"image/png", "image/jpeg", "image/gif", "image/webp"}


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


# --- the built bundle and its manifest --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bundle:
    """A stored bundle: its directory, its files (as the messages list them) and its manifest's key."""

    directory: str
    files: tuple[BundleFile, ...]
    manifest_key: str


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

Target = tuple[str, IntegrationType]
"""A listed integration the tenant config still knows: ``(integration_id, type)``."""


def targets(trigger: IntegrationsTriggered, tenant: Tenant) -> list[Target]:
    """``(integration_id, type)`` for each listed integration the tenant config still knows, in trigger order."""
    found: list[Target] = []
    for integration_id in dict.fromkeys(trigger.integration_ids):
        integration = tenant.integration(integration_id)
        if integration is not None:
            found.append((integration_id, integration_type(integration)))
    return found


def delivery_requests(
    trigger: IntegrationsTriggered, targets: Sequence[Target], files: tuple[BundleFile, ...], now: datetime
) -> list[Outgoing]:
    """One ``DeliverBundle`` per target, on the topic of its deliverer, keyed by its delivery ID."""
    return [
        Outgoing(deliveries_requested(request.integration_type), request, delivery_key(request.delivery_id))
        for request in _requests(trigger, targets, files, now)
    ]


def _requests(
    trigger: IntegrationsTriggered, targets: Sequence[Target], files: tuple[BundleFile, ...], now: datetime
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
            # When the suite accepted the order: the deliverers measure order-to-delivered from it.
            accepted_at=trigger.accepted_at,
        )
        for integration_id, kind in targets
    ]


def failure_outcomes(
    trigger: IntegrationsTriggered,
    targets: Sequence[Target],
    *,
    error_class: str,
    reason: str,
    now: datetime,
    duration_ms: int = 0,
) -> list[Outgoing]:
    """A final failed outcome per target, keyed by its delivery ID: the lookup shows it and the notifier tells each
    failure list why."""
    return [
        Outgoing(
            DELIVERIES_OUTCOMES,
            DeliveryAttempted.of(
                request,
                status="failed",
                final=True,
                occurred_at=now,
                duration_ms=duration_ms,
                error_class=error_class[:200],
                error_message=reason[:2000],
            ),
            delivery_key(request.delivery_id),
        )
        for request in _requests(trigger, targets, (), now)
    ]


def failure_of(error: Exception) -> tuple[str, str]:
    """``(error class, reason)`` to report for a bundle that could not be built.

    A classified error's text is written for people (and holds no secret); anything else is reported by its
    class only, since its text was never reviewed for what it may carry.
    """
    # Reviewed texts may still quote an asset URL, and a URL may carry a signature or token: redacted by pattern.
    if isinstance(error, BundleFailedError):
        cause = error.__cause__ if isinstance(error.__cause__, Exception) else error
        return type(cause).__name__, redact_secrets(str(error))
    if isinstance(error, PermanentError | TransientError):
        return type(error).__name__, redact_secrets(f"bundle not built: {error}")
    return type(error).__name__, f"bundle not built: unexpected {type(error).__name__} (see the bundle-builder log)"
