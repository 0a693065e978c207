"""Composition root of deliver-s3: the deliverer runtime around the S3 destination."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_deliver_s3 import handlers
from relay_deliver_s3.adapters.s3 import open_uploader
from relay_deliver_s3.service import S3Destination
from relay_deliver_s3.settings import Settings
from relay_delivery import build_deliverer_app
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import S3Integration

SERVICE = "deliver-s3"


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The deliver-s3 app; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()

    @asynccontextmanager
    async def open_destination(store: ObjectStore) -> AsyncIterator[S3Destination]:  # noqa: ARG001 - files, not links
        async with open_uploader(settings.uploads) as uploader:
            yield S3Destination(uploader)

    return build_deliverer_app(
        settings,
        integration_type=handlers.INTEGRATION_TYPE,
        integration_class=S3Integration,
        open_destination=open_destination,
        tracer_provider=tracer_provider,
    )
