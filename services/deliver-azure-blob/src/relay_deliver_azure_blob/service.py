"""deliver-azure-blob's destination: one block blob per bundle file, overwritten by a redelivery (``domain`` names
them)."""

from __future__ import annotations

from collections.abc import Sequence

from relay_contracts.messages import DeliverBundle
from relay_deliver_azure_blob.domain import blob_metadata, blob_name
from relay_deliver_azure_blob.ports import BlobUploader
from relay_delivery.ports import FetchedFile
from relay_platform.tenants import AzureBlobIntegration


class AzureBlobDestination:
    """``relay_delivery.Destination`` for ``type: azure-blob`` integrations: one block blob per bundle file."""

    def __init__(self, uploader: BlobUploader) -> None:
        self._uploader = uploader

    async def deliver(
        self, integration: AzureBlobIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None:
        connection_string = integration.connection_string_secure.resolve()
        metadata = blob_metadata(request)
        names = [blob_name(integration.prefix, file.name) for file in files]
        # One at a time: a bundle is a handful of files and large ones are already sent as parallel blocks.
        for name, file in zip(names, files, strict=True):
            await self._uploader.put(
                connection_string,
                integration.container,
                name,
                file.data,
                content_type=file.mime_type,
                metadata=metadata,
            )
