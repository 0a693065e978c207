"""Composition root of deliver-email: the deliverer runtime around the e-mail destination and the SMTP client."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_deliver_email import handlers
from relay_deliver_email.service import EmailDestination
from relay_deliver_email.settings import Settings
from relay_delivery import DownloadLinks, build_deliverer_app
from relay_platform.objectstore import ObjectStore
from relay_platform.smtp import open_smtp_client
from relay_platform.tenants import EmailIntegration

SERVICE = "deliver-email"


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The deliver-email app; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()

    @asynccontextmanager
    async def open_destination(store: ObjectStore) -> AsyncIterator[EmailDestination]:
        # One kept-open SMTP connection per attempt that may run at once.
        async with open_smtp_client(settings.smtp, connections=settings.concurrency) as smtp:
            yield EmailDestination(smtp, DownloadLinks(store, settings.links), from_address=settings.from_address)

    return build_deliverer_app(
        settings,
        integration_type=handlers.INTEGRATION_TYPE,
        integration_class=EmailIntegration,
        open_destination=open_destination,
        service_secrets=[settings.smtp.password],
        tracer_provider=tracer_provider,
    )
