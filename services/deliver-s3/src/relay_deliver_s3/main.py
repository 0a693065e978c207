"""Composition root of deliver-s3: the deliverer runtime around the S3 destination."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_deliver_s3.adapters.s3 import UploadSettings, open_uploader
from relay_deliver_s3.service import S3Destination
from relay_deliver_s3.settings import Settings
from relay_delivery import build_deliverer_app
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import S3Integration

SERVICE = "deliver-s3"


def upload_settings(settings: Settings) -> UploadSettings:
    return UploadSettings(
        multipart_threshold_bytes=settings.multipart_threshold_bytes,
        multipart_part_size_bytes=settings.multipart_part_size_bytes,
        multipart_concurrency=settings.multipart_concurrency,
        connect_timeout_s=settings.connect_timeout_s,
        read_timeout_s=settings.read_timeout_s,
        client_max_attempts=settings.client_max_attempts,
        max_pool_connections=settings.max_pool_connections,
    )


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The deliver-s3 app; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()
    uploads = upload_settings(settings)

    @asynccontextmanager
    async def open_destination(store: ObjectStore) -> AsyncIterator[S3Destination]:  # noqa: ARG001 - files, not links
        async with open_uploader(uploads) as uploader:
            yield S3Destination(uploader)

    return build_deliverer_app(
        settings,
        integration_type="s3",
        integration_class=S3Integration,
        open_destination=open_destination,
        tracer_provider=tracer_provider,
    )
