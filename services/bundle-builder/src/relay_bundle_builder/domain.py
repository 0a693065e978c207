"""Bundle rules, pure: which files a recipe yields, event bundles, the manifest, the messages to publish."""

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
    stable_id,
)
from relay_contracts.topics import DELIVERIES_OUTCOMES, IntegrationType, deliveries_requested
from relay_platform.errors import PermanentError, TransientError
from relay_platform.redact import redact_secrets
from relay_platform.tenants import Tenant, integration_type

AssetKind = Literal["production", "preview", "variant", "attachment"]


# --- errors ------------------------------------------------------------------------------------------------------


class AssetError(PermanentError):
    """An asset cannot be part of the bundle (missing, too large, refused address); the bundle is not delivered."""


class AssetUnavailableError(TransientError):
    """An asset kept failing transiently through every in-attempt retry."""


class BundleFailedError(PermanentError):
    """The bundle cannot be built; every listed integration gets a final failed outcome with this reason."""


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


# --- manifest ---------------------------------------------------------------------------------------------------


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
    trigger: IntegrationsTriggered, tenant: Tenant, files: tuple[BundleFile, ...], now: datetime
) -> list[tuple[str, DeliverBundle]]:
    """One ``DeliverBundle`` per integration, with the topic of its deliverer."""
    return [
        (deliveries_requested(request.integration_type), request) for request in _requests(trigger, tenant, files, now)
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
    trigger: IntegrationsTriggered,
    tenant: Tenant,
    *,
    error_class: str,
    reason: str,
    now: datetime,
    duration_ms: int = 0,
) -> list[tuple[str, DeliveryAttempted]]:
    """A final failed outcome per integration: the lookup shows it and the notifier tells each failure list why."""
    return [
        (
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
        )
        for request in _requests(trigger, tenant, (), now)
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
