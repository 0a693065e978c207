"""Composition root of deliver-zapier: the deliverer runtime around the hook POST destination."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from faststream import FastStream
from opentelemetry.sdk.trace import TracerProvider

from relay_deliver_zapier import handlers
from relay_deliver_zapier.adapters.http import hook_poster
from relay_deliver_zapier.service import ZapierDestination
from relay_deliver_zapier.settings import Settings
from relay_delivery import DownloadLinks, build_deliverer_app
from relay_platform.objectstore import ObjectStore
from relay_platform.tenants import ZapierIntegration

SERVICE = "deliver-zapier"


def create_app(settings: Settings | None = None, *, tracer_provider: TracerProvider | None = None) -> FastStream:
    """The deliver-zapier app; raises ``ConfigError`` for a bad tenant file."""
    settings = settings or Settings()

    @asynccontextmanager
    async def open_destination(store: ObjectStore) -> AsyncIterator[ZapierDestination]:
        async with hook_poster(settings.hooks) as poster:
            yield ZapierDestination(poster, DownloadLinks(store, settings.links))

    return build_deliverer_app(
        settings,
        integration_type=handlers.INTEGRATION_TYPE,
        integration_class=ZapierIntegration,
        open_destination=open_destination,
        tracer_provider=tracer_provider,
    )
