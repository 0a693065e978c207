"""The e-mail of one bundle delivery, without I/O: subject, a short body without PII, attachments or download links."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from relay_contracts.messages import DeliverBundle, TriggerReason
from relay_delivery.ports import FetchedFile
from relay_platform.tenants import EmailIntegration

_ORDER_EVENT_LABELS: dict[TriggerReason, str] = {
    "order_updated": "updated",
}
# Lifecycle events delivered as notices (an event bundle), not as a recipe's files to produce.
_ORDER_NOTICES: dict[TriggerReason, str] = {
    "order_cancelled": "cancelled",
    "order_refunded": "refunded",
    "order_returned": "returned",
}
_NOTICE_ACTIONS: dict[TriggerReason, str] = {
    "order_cancelled": "Do not produce it: the pick ticket sent with this notice is stamped CANCELLED.",
}


def message_id(delivery_id: str, from_address: str) -> str:
    """The same Message-ID for every attempt of one delivery, so a resent e-mail is recognisable."""
    domain = parseaddr(from_address)[1].rpartition("@")[2] or "relay.invalid"
    return f"<relay-delivery-{delivery_id}@{domain}>"


def subject(request: DeliverBundle, prefix: str) -> str:
    """``<prefix> Order 1022: recipe 999-abc (updated)``, ``<prefix> Order cancelled: 1022`` (also refunded,
    returned) or ``<prefix> Recipe 999-abc``."""
    notice = _ORDER_NOTICES.get(request.reason)
    if request.order is not None and notice:
        text = f"Order {notice}: {request.order.order_number}"
    elif request.order is not None:
        text = f"Order {request.order.order_number}: recipe {request.recipe_id}"
        label = _ORDER_EVENT_LABELS.get(request.reason)
        if label:
            text += f" ({label})"
    else:
        text = f"Recipe {request.recipe_id}"
    return f"{prefix.strip()} {text}".strip()


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1024 * 1024):.1f} MB"


def body(
    request: DeliverBundle,
    files: Sequence[FetchedFile],
    links: dict[str, str] | None,
    *,
    limit_bytes: int,
    links_valid_for_s: int,
) -> str:
    """A short plain-text body: what this is, and the files (attached, or as expiring links). IDs only."""
    notice = _ORDER_NOTICES.get(request.reason)
    if request.order is not None and notice:
        order = request.order
        item = f"line item {order.item_id}, " if order.item_id else ""
        quantity = f"quantity {order.item_quantity}, " if order.item_quantity is not None else ""
        lines = [
            f"Order {order.order_number} (order ID {order.order_id}) was {notice}.",
            f"It concerns recipe {request.recipe_id} ({item}{quantity}event: {request.reason.replace('_', ' ')}).",
        ]
        if action := _NOTICE_ACTIONS.get(request.reason):
            lines.append(action)
    elif request.order is not None:
        lines = [
            f"Recipe {request.recipe_id} for order {request.order.order_number} "
            f"(order ID {request.order.order_id}), event: {request.reason.replace('_', ' ')}."
        ]
    else:
        lines = [f"Recipe {request.recipe_id}, event: {request.reason.replace('_', ' ')}."]
    lines.append("")
    if links is None:
        lines.append(f"Attached files ({len(files)}):")
        lines.extend(f"  - {f.name} ({_size(f.size)})" for f in files)
    else:
        days = max(1, links_valid_for_s // 86400)
        total = sum(f.size for f in files)
        lines.append(
            f"The files ({_size(total)}) are larger than this integration's attachment limit "
            f"({_size(limit_bytes)}). Download them here; the links expire in {days} day{'s' * (days != 1)}:"
        )
        lines.extend(f"  - {f.name} ({_size(f.size)}): {links[f.name]}" for f in files)
    lines += ["", "-- ", "Sent by Recipe Relay. Resends of the same delivery carry the same Message-ID."]
    return "\n".join(lines) + "\n"


def compose(
    integration: EmailIntegration,
    request: DeliverBundle,
    files: Sequence[FetchedFile],
    *,
    from_address: str,
    links: dict[str, str] | None,
    links_valid_for_s: int = 0,
) -> EmailMessage:
    """The message for ``request``: every file attached under its bundle name, unless ``links`` are given."""
    message = EmailMessage()
    message["From"] = from_address
    message["To"] = ", ".join(integration.to)
    message["Subject"] = subject(request, integration.subject_prefix)
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = message_id(request.delivery_id, from_address)
    message["X-Relay-Delivery-Id"] = request.delivery_id
    message.set_content(
        body(
            request,
            files,
            links,
            limit_bytes=integration.attachment_limit_bytes,
            links_valid_for_s=links_valid_for_s,
        )
    )
    if links is None:
        for file in files:
            maintype, _, subtype = file.mime_type.partition("/")
            message.add_attachment(
                file.data,
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=file.name,
            )
    return message
