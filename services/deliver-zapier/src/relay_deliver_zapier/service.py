"""The Zapier payload (seed 000): order fields or recipe ID, the trigger reason, and links to the files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from relay_contracts.messages import DeliverBundle
from relay_delivery import DownloadLinks, FetchedFile
from relay_platform.tenants import ZapierIntegration

JsonObject = dict[str, object]


class HookPoster(Protocol):
    """POSTs JSON to a hook URL; raises ``TransientError`` (429/5xx/network) or ``PermanentError`` (other 4xx)."""

    async def post(self, url: str, payload: JsonObject, *, idempotency_key: str) -> None: ...


def payload(request: DeliverBundle, files: Sequence[tuple[FetchedFile, str]]) -> JsonObject:
    """``{"orderId", "orderNumber", "recipeId", "event", "files": [{"name", "mimeType", "url"}]}``.

    A recipe-feed delivery has no order, so it carries ``recipeId`` without the order fields.
    """
    body: JsonObject = {}
    if request.order is not None:
        body["orderId"] = request.order.order_id
        body["orderNumber"] = request.order.order_number
    body["recipeId"] = request.recipe_id
    body["event"] = request.reason
    body["files"] = [{"name": f.name, "mimeType": f.mime_type, "url": url} for f, url in files]
    return body


class ZapierDestination:
    """The zapier ``Destination``: one POST per delivery, ``Idempotency-Key`` = delivery ID."""

    def __init__(self, poster: HookPoster, links: DownloadLinks) -> None:
        self._poster = poster
        self._links = links

    async def deliver(
        self, integration: ZapierIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        linked = [(f, await self._links.url_for(f.meta)) for f in files]
        url = integration.hook_url.resolve().get_secret_value()
        await self._poster.post(url, payload(request, linked), idempotency_key=request.delivery_id)
