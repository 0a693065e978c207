"""Composition root of deliver-email: the deliverer runtime around the SMTP destination."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_deliver_email.adapters.smtp import smtp_pool
from relay_deliver_email.service import EmailDestination
from relay_deliver_email.settings import Settings
from relay_delivery import DownloadLinks, build_deliverer_app
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import EmailIntegration

SERVICE = "deliver-email"


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The deliver-email app; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()

    @asynccontextmanager
    async def open_destination(store: ObjectStore) -> AsyncIterator[EmailDestination]:
        async with smtp_pool(settings, size=settings.concurrency) as pool:
            yield EmailDestination(pool, DownloadLinks(store, settings.links), from_address=settings.from_address)

    return build_deliverer_app(
        settings,
        integration_type="email",
        integration_class=EmailIntegration,
        open_destination=open_destination,
        service_secrets=[settings.smtp_password],
        tracer_provider=tracer_provider,
    )
