"""deliver-zapier's destination: an expiring link per file, then one hook POST per delivery."""

from __future__ import annotations

from collections.abc import Sequence

from relay_contracts.messages import DeliverBundle
from relay_deliver_zapier.domain import payload
from relay_deliver_zapier.ports import HookPoster
from relay_delivery.links import DownloadLinks
from relay_delivery.ports import FetchedFile
from relay_platform.tenants import ZapierIntegration


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
