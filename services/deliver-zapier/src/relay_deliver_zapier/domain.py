"""The Zapier payload (seed 000): order fields or recipe ID, the trigger reason, and links to the files."""

from __future__ import annotations

from collections.abc import Sequence

from relay_contracts.messages import DeliverBundle
from relay_delivery.ports import FetchedFile

JsonObject = dict[str, object]


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
