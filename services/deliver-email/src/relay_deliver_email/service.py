"""deliver-email's destination: attachments up to the integration's limit, expiring download links above it, one
e-mail through the SMTP client."""

from __future__ import annotations

from collections.abc import Sequence

from relay_contracts.messages import DeliverBundle
from relay_deliver_email.domain import compose
from relay_deliver_email.ports import MailSender
from relay_delivery.links import DownloadLinks
from relay_delivery.ports import FetchedFile
from relay_platform.tenants import EmailIntegration


class EmailDestination:
    """The email ``Destination``: attachments up to ``attachment-limit-bytes`` in total, links above it."""

    def __init__(self, sender: MailSender, links: DownloadLinks, *, from_address: str) -> None:
        self._sender = sender
        self._links = links
        self._from = from_address

    async def deliver(
        self, integration: EmailIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        links: dict[str, str] | None = None
        if sum(f.size for f in files) > integration.attachment_limit_bytes:
            links = {f.name: await self._links.url_for(f.meta) for f in files}
        message = compose(
            integration,
            request,
            files,
            from_address=self._from,
            links=links,
            links_valid_for_s=self._links.valid_for_s,
        )
        await self._sender.send(message)
