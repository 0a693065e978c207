"""Composition root of deliver-azure-blob: the deliverer runtime around the Azure Blob destination."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_deliver_azure_blob import handlers
from relay_deliver_azure_blob.adapters.blob import open_uploader
from relay_deliver_azure_blob.service import AzureBlobDestination
from relay_deliver_azure_blob.settings import Settings
from relay_delivery import build_deliverer_app
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import AzureBlobIntegration

SERVICE = "deliver-azure-blob"


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The deliver-azure-blob app; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()

    @asynccontextmanager
    async def open_destination(
        store: ObjectStore,  # noqa: ARG001 - blobs get the files, not links
    ) -> AsyncIterator[AzureBlobDestination]:
        async with open_uploader(settings.uploads) as uploader:
            yield AzureBlobDestination(uploader)

    return build_deliverer_app(
        settings,
        integration_type=handlers.INTEGRATION_TYPE,
        integration_class=AzureBlobIntegration,
        open_destination=open_destination,
        tracer_provider=tracer_provider,
    )
