"""The deliverer runtime as an e-mail deliverer on FastStream's in-memory broker, with a destination of the test's."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

from relay_contracts.messages import DeliverBundle
from relay_delivery import DelivererSettings, FetchedFile, build_deliverer_app
from relay_delivery.testing import InMemoryDeliverer, in_memory
from relay_platform.objectstore import ObjectStore
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_platform.tenants import EmailIntegration, TenantsConfig
from relay_testing.shared_secrets import link_settings


class EmailDestination(Protocol):
    async def deliver(
        self, integration: EmailIntegration, request: DeliverBundle, files: Sequence[FetchedFile]
    ) -> None: ...


@asynccontextmanager
async def running_email_deliverer(
    tmp_path: Path, destination: EmailDestination, tenants: TenantsConfig
) -> AsyncIterator[InMemoryDeliverer]:
    """The app ``build_deliverer_app`` makes for e-mail, bundles read from ``tmp_path/objects``, no retry back-off."""

    @asynccontextmanager
    async def open_destination(_store: ObjectStore) -> AsyncIterator[EmailDestination]:
        yield destination

    settings = DelivererSettings(
        kafka=KafkaSettings(transient_backoff_s=0),
        object_store=ObjectStoreSettings(url=f"file://{tmp_path}/objects"),
        links=link_settings(),
        consumer_group="deliver-email",
    )
    app = build_deliverer_app(
        settings,
        integration_type="email",
        integration_class=EmailIntegration,
        open_destination=open_destination,
        tenants=tenants,
    )
    async with in_memory(app) as deliverer:
        yield deliverer
