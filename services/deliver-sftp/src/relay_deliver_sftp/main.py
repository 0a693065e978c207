"""Composition root of deliver-sftp: the deliverer runtime around the SFTP destination."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_deliver_sftp import handlers
from relay_deliver_sftp.adapters.sftp import sftp_pool
from relay_deliver_sftp.service import SftpDestination
from relay_deliver_sftp.settings import Settings
from relay_delivery import build_deliverer_app
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import SftpIntegration

SERVICE = "deliver-sftp"


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The deliver-sftp app; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()

    @asynccontextmanager
    async def open_destination(_store: ObjectStore) -> AsyncIterator[SftpDestination]:
        async with sftp_pool(settings.sftp) as pool:
            yield SftpDestination(pool)

    return build_deliverer_app(
        settings,
        integration_type=handlers.INTEGRATION_TYPE,
        integration_class=SftpIntegration,
        open_destination=open_destination,
        tracer_provider=tracer_provider,
    )
