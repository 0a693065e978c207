"""Pure rules of the Shopify order webhooks (seed 002's prebuilt e-commerce integrations): the signature, the
headers, and the few non-personal fields an order event keeps. Kept apart from ``domain`` for its size; no I/O.

A Shopify order payload carries the customer, addresses, e-mails, phones, payment details, notes and the buyer's IP.
None of it is read: each parser walks an allow-list (order ID and number, line item IDs and quantities, the recipe
ID from one line-item property, the event time) and builds the order event from that alone, so nothing else can
reach a message, a row, a log line or an error. Errors name the field (a JSON pointer), never its value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from urllib.parse import unquote, urlsplit

from relay_contracts.messages import OrderEventOccurred, OrderItem, stable_id
from relay_contracts.types import check_id_text, check_utc_instant
from relay_ingest_api.domain import InvalidInputError
from relay_ingest_api.schemas import Problem

ShopifyTopic = Literal["orders/create", "orders/updated", "orders/cancelled", "refunds/create"]
SHOPIFY_TOPICS: tuple[ShopifyTopic, ...] = ("orders/create", "orders/updated", "orders/cancelled", "refunds/create")
_TOPICS: dict[str, ShopifyTopic] = {topic: topic for topic in SHOPIFY_TOPICS}

TOPIC_HEADER = "X-Shopify-Topic"
SIGNATURE_HEADER = "X-Shopify-Hmac-Sha256"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
TRIGGERED_AT_HEADER = "X-Shopify-Triggered-At"
SHOP_DOMAIN_HEADER = "X-Shopify-Shop-Domain"

_ID_MAX = 128
_MAX_QUANTITY = 1_000_000
_MAX_LINE_ITEMS = 1000
# A clock ahead of ours by more than this makes a delivery "from the future": refused like a stale one.
_FUTURE_SKEW = timedelta(minutes=5)
_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]{1,128}$")
# The last path segment of a recipe link (``https://.../recipe/999-abc.json``, with or without ``.json``).
_RECIPE_LINK_TAIL = re.compile(r"/([^/]+?)(?:\.json)?/?$")


def _invalid(code: str, pointer: str, message: str) -> InvalidInputError:
    return InvalidInputError(code, f"{pointer.lstrip('/')}: {message}", [Problem(pointer=pointer, message=message)])


# --- the delivery's headers ------------------------------------------------------------------------------------


def signature_valid(secret: str, body: bytes, presented: str | None) -> bool:
    """Whether ``presented`` is the base64 HMAC-SHA256 of the raw ``body`` under ``secret`` (Shopify's scheme),
    compared in constant time."""
    if not presented:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, presented.strip().encode("utf-8", errors="replace"))


def shop_matches(expected: str | None, headers: Mapping[str, str]) -> bool:
    """Whether the delivery names the configured shop (any shop when none is configured); case-insensitive."""
    return expected is None or headers.get(SHOP_DOMAIN_HEADER, "").strip().lower() == expected.lower()


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """What the headers of one (signed) delivery say: the topic (``None``: one this API does not handle) and the
    delivery's ID, the same for every retry of it, so a resend is recognised downstream."""

    topic: ShopifyTopic | None
    webhook_id: str


def delivery_of(headers: Mapping[str, str], *, now: datetime, max_age: timedelta) -> WebhookDelivery:
    """The delivery's topic and ID; a missing or malformed header, or a stale delivery, is a 400 naming it."""
    topic = headers.get(TOPIC_HEADER, "").strip()
    if not topic:
        raise _invalid("missing_header", f"/{TOPIC_HEADER}", "the webhook topic header is required")
    webhook_id = headers.get(WEBHOOK_ID_HEADER, "").strip()
    if not _VISIBLE_ASCII.match(webhook_id):
        raise _invalid("missing_header", f"/{WEBHOOK_ID_HEADER}", "must be 1-128 visible ASCII characters")
    triggered = headers.get(TRIGGERED_AT_HEADER, "").strip()
    if triggered:
        at = _instant(triggered)
        if at is None:
            raise _invalid("invalid_header", f"/{TRIGGERED_AT_HEADER}", "must be an RFC 3339 time with a time zone")
        if at < now - max_age or at > now + _FUTURE_SKEW:
            raise _invalid(
                "stale_webhook",
                f"/{TRIGGERED_AT_HEADER}",
                f"the delivery was triggered more than {max_age.total_seconds() / 3600:g} h ago (or in the future); "
                "refused as stale",
            )
    return WebhookDelivery(topic=_TOPICS.get(topic), webhook_id=webhook_id)


# --- the payloads ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecipeLine:
    """A line item that uses a recipe: its ID, the recipe, and how many are still ordered."""

    item_id: str
    recipe_id: str
    quantity: int


@dataclass(frozen=True, slots=True)
class ShopifyOrder:
    """The non-personal part of an order payload; ``ignored`` counts line items whose recipe is not the tenant's
    (or is not a usable ID): they are left out, not an error, so one bad property cannot block the whole order."""

    order_id: str
    order_number: str
    lines: tuple[RecipeLine, ...]
    updated_at: datetime
    cancelled_at: datetime | None
    fully_refunded: bool
    ignored: int = 0


@dataclass(frozen=True, slots=True)
class ShopifyRefund:
    """The non-personal part of a refund: which recipe line items lost how many, and when."""

    order_id: str
    created_at: datetime
    refunded: Mapping[str, int] = field(default_factory=dict)
    ignored: int = 0


def parse_order(document: object, *, recipe_property: str, owns: Callable[[str], bool]) -> ShopifyOrder:
    """An order payload (orders/create, orders/updated, orders/cancelled) reduced to its recipe line items.

    The quantity is what is still ordered: ``current_quantity`` where Shopify sends it, else ``quantity`` less what
    the order's refunds took back. A line item without the recipe property is not the suite's business.
    """
    order = _object(document, "")
    order_id = _id(order.get("id"), "/id")
    number = order.get("order_number")
    order_number = _id(number, "/order_number") if number is not None else _order_name(order.get("name"))
    updated_at = _first_time(order, "updated_at", "created_at")
    cancelled_at = _time(order.get("cancelled_at"), "/cancelled_at", required=False)
    refunded = _refunded_by_item(order.get("refunds"))
    lines: list[RecipeLine] = []
    ignored = 0
    for index, item in enumerate(_list(order.get("line_items"), "/line_items")):
        pointer = f"/line_items/{index}"
        line = _object(item, pointer)
        recipe_id = _recipe_of(line.get("properties"), recipe_property)
        if recipe_id is None:
            continue
        if not owns(recipe_id):
            ignored += 1
            continue
        item_id = _id(line.get("id"), f"{pointer}/id")
        current = line.get("current_quantity")
        if current is not None:
            quantity = _quantity(current, f"{pointer}/current_quantity")
        else:
            quantity = max(_quantity(line.get("quantity"), f"{pointer}/quantity") - refunded.get(item_id, 0), 0)
        lines.append(RecipeLine(item_id=item_id, recipe_id=recipe_id, quantity=quantity))
    financial_status = order.get("financial_status")
    return ShopifyOrder(
        order_id=order_id,
        order_number=order_number,
        lines=tuple(lines),
        updated_at=updated_at,
        cancelled_at=cancelled_at,
        fully_refunded=financial_status == "refunded",
        ignored=ignored,
    )


def parse_refund(document: object, *, recipe_property: str, owns: Callable[[str], bool]) -> ShopifyRefund:
    """A refunds/create payload reduced to the recipe line items it takes back, and when."""
    refund = _object(document, "")
    order_id = _id(refund.get("order_id"), "/order_id")
    created_at = _first_time(refund, "created_at", "processed_at")
    refunded: dict[str, int] = {}
    ignored = 0
    for index, entry in enumerate(_list(refund.get("refund_line_items"), "/refund_line_items", required=False)):
        pointer = f"/refund_line_items/{index}"
        refund_line = _object(entry, pointer)
        line_item = refund_line.get("line_item")
        properties = line_item.get("properties") if isinstance(line_item, dict) else None
        recipe_id = _recipe_of(properties, recipe_property)
        if recipe_id is None:
            continue
        if not owns(recipe_id):
            ignored += 1
            continue
        item_id = _id(refund_line.get("line_item_id"), f"{pointer}/line_item_id")
        refunded[item_id] = refunded.get(item_id, 0) + _quantity(refund_line.get("quantity"), f"{pointer}/quantity")
    return ShopifyRefund(order_id=order_id, created_at=created_at, refunded=refunded, ignored=ignored)


# --- the order events ------------------------------------------------------------------------------------------


def event_id(tenant: str, webhook_id: str) -> str:
    """One ID per delivery, scoped to the tenant: every retry of a delivery is the same event downstream (the
    association store applies an event ID once), and two tenants' deliveries never collide."""
    return stable_id("shopify", tenant, webhook_id)


def order_event(tenant: str, delivery: WebhookDelivery, order: ShopifyOrder) -> OrderEventOccurred | None:
    """The order event an order payload becomes; ``None`` when no line item carries one of the tenant's recipes.

    orders/create: ``created`` with the items. orders/updated: ``updated`` with the items, or ``refunded`` once
    Shopify says every item was refunded. orders/cancelled: ``cancelled`` at ``cancelled_at``. Each at the time the
    order says it happened, so a late, older delivery never overwrites newer state.
    """
    if not order.lines:
        return None
    items = tuple(
        OrderItem(recipe_id=line.recipe_id, item_id=line.item_id, item_quantity=line.quantity) for line in order.lines
    )
    kind: Literal["created", "updated", "cancelled", "refunded"]
    at = order.updated_at
    with_items: tuple[OrderItem, ...] | None = items
    if delivery.topic == "orders/create":
        kind = "created"
    elif delivery.topic == "orders/cancelled":
        kind, at, with_items = "cancelled", order.cancelled_at or order.updated_at, None
    elif order.fully_refunded:
        kind, with_items = "refunded", None
    else:
        kind = "updated"
    return OrderEventOccurred(
        event_id=event_id(tenant, delivery.webhook_id),
        tenant=tenant,
        type=kind,
        order_id=order.order_id,
        order_number=order.order_number,
        items=with_items,
        occurred_at=at,
    )


@dataclass(frozen=True, slots=True)
class KnownOrder:
    """What the association store knows of the refunded order: its number and its recipe items' quantities."""

    order_number: str
    items: Sequence[OrderItem]


def refund_event(
    tenant: str, delivery: WebhookDelivery, refund: ShopifyRefund, known: KnownOrder | None
) -> OrderEventOccurred | None:
    """The order event a refund becomes: ``refunded`` when nothing of the order's recipe items is left, else
    ``updated`` with the quantities less what was refunded. ``None`` when it takes back no recipe item, or the order
    is not known (it never had a recipe item recorded; the orders/updated Shopify sends after every refund carries
    the quantities and the refunded status anyway)."""
    if not refund.refunded or known is None:
        return None
    items = tuple(
        item.model_copy(update={"item_quantity": max(item.item_quantity - refund.refunded.get(item.item_id, 0), 0)})
        for item in known.items
    )
    everything = all(item.item_quantity == 0 for item in items)
    return OrderEventOccurred(
        event_id=event_id(tenant, delivery.webhook_id),
        tenant=tenant,
        type="refunded" if everything else "updated",
        order_id=refund.order_id,
        order_number=known.order_number,
        items=None if everything else items,
        occurred_at=refund.created_at,
    )


# --- reading the allow-listed fields ---------------------------------------------------------------------------


def _object(value: object, pointer: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _invalid("invalid_webhook", pointer or "/", "must be a JSON object")
    return value


def _list(value: object, pointer: str, *, required: bool = True) -> list[object]:
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _invalid("invalid_webhook", pointer, "must be a list")
    if len(value) > _MAX_LINE_ITEMS:
        raise _invalid("invalid_webhook", pointer, f"at most {_MAX_LINE_ITEMS} entries")
    return value


def _id(value: object, pointer: str) -> str:
    """Shopify IDs are integers (64-bit); a string ID is taken as it is, if usable."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _invalid("invalid_webhook", pointer, "must be an ID (integer or string)")
    text = str(value).strip()
    if not text or len(text) > _ID_MAX:
        raise _invalid("invalid_webhook", pointer, f"must be 1-{_ID_MAX} characters")
    try:
        return check_id_text(text)
    except ValueError as error:
        raise _invalid("invalid_webhook", pointer, str(error)) from None


def _order_name(value: object) -> str:
    """The order's display name (``#1001``) without its prefix, when the payload has no ``order_number``."""
    if not isinstance(value, str) or not value.strip().lstrip("#").strip():
        raise _invalid("invalid_webhook", "/order_number", "an order number (order_number or name) is required")
    return _id(value.strip().lstrip("#").strip(), "/name")


def _quantity(value: object, pointer: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_QUANTITY:
        raise _invalid("invalid_webhook", pointer, f"must be an integer from 0 to {_MAX_QUANTITY}")
    return value


def _time(value: object, pointer: str, *, required: bool = True) -> datetime | None:
    if value is None and not required:
        return None
    at = _instant(value) if isinstance(value, str) else None
    if at is None:
        raise _invalid("invalid_webhook", pointer, "must be an RFC 3339 time with a time zone")
    return at


def _first_time(payload: Mapping[str, object], name: str, fallback: str) -> datetime:
    """``payload[name]``, or ``payload[fallback]`` when the first is absent; one of them is required."""
    at = _time(payload.get(name), f"/{name}", required=False)
    if at is not None:
        return at
    found = _time(payload.get(fallback), f"/{fallback}", required=False)
    if found is None:
        raise _invalid("invalid_webhook", f"/{name}", "the event time is required")
    return found


def _instant(text: str) -> datetime | None:
    """An RFC 3339 time with its offset, within the years every service can compute with; else ``None``."""
    try:
        return check_utc_instant(datetime.fromisoformat(text.strip()))
    except ValueError:
        return None


def _refunded_by_item(refunds: object) -> dict[str, int]:
    """Quantities taken back per line item over the order's refunds (for payloads without ``current_quantity``).
    A malformed entry counts for nothing here: only the quantities read from ``line_items`` are checked."""
    taken: dict[str, int] = {}
    if not isinstance(refunds, list):
        return taken
    for refund in refunds[:_MAX_LINE_ITEMS]:
        lines = refund.get("refund_line_items") if isinstance(refund, dict) else None
        for line in lines[:_MAX_LINE_ITEMS] if isinstance(lines, list) else ():
            if not isinstance(line, dict):
                continue
            item, quantity = line.get("line_item_id"), line.get("quantity")
            if isinstance(item, int | str) and not isinstance(item, bool) and isinstance(quantity, int):
                taken[str(item)] = taken.get(str(item), 0) + max(quantity, 0)
    return taken


def _recipe_of(properties: object, name: str) -> str | None:
    """The recipe ID in the line item's property ``name``: the ID itself, or the last segment of a recipe link.
    ``None`` when the property is absent or holds nothing usable as an ID."""
    value: object = None
    if isinstance(properties, list):
        for entry in properties:
            if isinstance(entry, dict) and entry.get("name") == name:
                value = entry.get("value")
                break
    elif isinstance(properties, dict):  # some apps send properties as an object
        value = properties.get(name)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if "/" in text:
        match = _RECIPE_LINK_TAIL.search(urlsplit(text).path)
        if match is None:
            return None
        text = unquote(match.group(1))
    if len(text) > _ID_MAX:
        return None
    try:
        return check_id_text(text)
    except ValueError:
        return None
