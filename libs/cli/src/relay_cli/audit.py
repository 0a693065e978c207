"""``relay audit``: the deliveries that have not ended within a deadline, from the ingest API's admin audit.

The API key goes only into the ``Authorization`` header: it is never printed, logged or put in a URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay_cli.trigger import call_api

AUDIT_PATH = "/api/v2/admin/audit"
DEFAULT_OLDER_THAN = "15m"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
REASON_WIDTH = 100  # the reason is what the operator acts on: wider than other tables' cells


class AuditFailedError(Exception):
    """The audit could not be read; the message is the API's own explanation (safe to print)."""


@dataclass(frozen=True, slots=True)
class Unfinished:
    """One delivery that has not ended in time."""

    delivery_id: str
    order_id: str | None
    order_number: str | None
    recipe_id: str
    integration: str
    type: str
    status: str
    attempts: int
    last_change: str
    reason: str


@dataclass(frozen=True, slots=True)
class AuditResult:
    tenant: str
    older_than_s: int
    cutoff: str
    truncated: bool
    deliveries: tuple[Unfinished, ...]
    document: dict[str, Any]  # the API's answer as is, for ``--json``


def _text(value: object, default: str = "") -> str:
    return value if isinstance(value, str) else default


def _optional(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_audit(document: object) -> AuditResult:
    """The 200 answer of ``GET /api/v2/admin/audit``."""
    if not isinstance(document, dict) or not isinstance(document.get("deliveries"), list):
        raise AuditFailedError("the API answered 200 without a delivery list")
    deliveries = []
    for entry in document["deliveries"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("deliveryId"), str):
            raise AuditFailedError("the API answered 200 with an unreadable delivery")
        attempts = entry.get("attempts")
        deliveries.append(
            Unfinished(
                delivery_id=entry["deliveryId"],
                order_id=_optional(entry.get("orderId")),
                order_number=_optional(entry.get("orderNumber")),
                recipe_id=_text(entry.get("recipeId")),
                integration=_text(entry.get("integration")),
                type=_text(entry.get("type")),
                status=_text(entry.get("status"), "?"),
                attempts=attempts if isinstance(attempts, int) else 0,
                last_change=_text(entry.get("lastChange")),
                reason=_text(entry.get("reason")),
            )
        )
    older_than_s = document.get("olderThanS")
    return AuditResult(
        tenant=_text(document.get("tenant"), "?"),
        older_than_s=older_than_s if isinstance(older_than_s, int) else 0,
        cutoff=_text(document.get("cutoff")),
        truncated=document.get("truncated") is True,
        deliveries=tuple(deliveries),
        document=document,
    )


async def fetch_audit(
    api_url: str, api_key: str, *, older_than: str, limit: int = DEFAULT_LIMIT, timeout_s: float = 30.0
) -> AuditResult:
    """``GET /api/v2/admin/audit``; raises ``AuditFailedError`` with the API's message."""
    url = api_url.rstrip("/") + AUDIT_PATH
    params = {"olderThan": older_than, "limit": str(limit)}
    document = await call_api(
        "GET", url, api_key, expect=200, params=params, timeout_s=timeout_s, error=AuditFailedError
    )
    return parse_audit(document)


def one_line(text: str, width: int) -> str:
    """At most ``width`` characters on one line (for table cells)."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: max(width - 1, 0)] + "…"
