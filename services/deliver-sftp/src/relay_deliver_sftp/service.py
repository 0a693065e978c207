"""deliver-sftp's destination: plan the uploads (``domain.plan``) and hand them to the uploader."""

from __future__ import annotations

from collections.abc import Sequence

from relay_contracts.messages import DeliverBundle
from relay_deliver_sftp.domain import plan
from relay_deliver_sftp.ports import SftpUploader
from relay_delivery.ports import FetchedFile
from relay_platform.tenants import SftpIntegration


class SftpDestination:
    """The sftp ``Destination``."""

    def __init__(self, uploader: SftpUploader) -> None:
        self._uploader = uploader

    async def deliver(self, integration: SftpIntegration, request: DeliverBundle, files: Sequence[FetchedFile]) -> None:
        await self._uploader.upload(integration, plan(integration, request, files))
