"""deliver-s3's destination: one object per bundle file, overwritten by a redelivery (``domain`` names them)."""

from __future__ import annotations

from collections.abc import Sequence

from relay_contracts.messages import DeliverBundle
from relay_deliver_s3.domain import S3Target, object_key, object_metadata
from relay_deliver_s3.ports import Uploader
from relay_delivery.ports import FetchedFile
from relay_platform.tenants import S3Integration


class S3Destination:
    """``relay_delivery.Destination`` for ``type: s3`` integrations: one object per bundle file."""

    def __init__(self, uploader: Uploader) -> None:
        self._uploader = uploader

    async def deliver(self, integration: S3Integration, request: DeliverBundle, files: Sequence[FetchedFile]) -> None:
        target = S3Target.of(integration)
        metadata = object_metadata(request)
        keys = [object_key(integration.prefix, file.name) for file in files]
        # One at a time: a bundle is a handful of files and large ones are already split into parallel parts.
        for key, file in zip(keys, files, strict=True):
            await self._uploader.put(target, key, file.data, content_type=file.mime_type, metadata=metadata)
