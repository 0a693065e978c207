"""Deliverer runtime: a deliverer service is ``build_deliverer_app`` around one ``Destination`` implementation.

A new deliverer (say ``deliver-s3``) needs three pieces::

    class S3Destination:                                   # implements relay_delivery.Destination[S3Integration]
        async def deliver(self, integration, request, files) -> None: ...   # raise TransientError/PermanentError

    @asynccontextmanager
    async def open_s3(store: ObjectStore) -> AsyncIterator[S3Destination]:
        async with ClientPool() as pool:                   # clients opened once, reused by every attempt
            yield S3Destination(pool)

    def create_app(settings: Settings) -> FastStream:      # Settings(DelivererSettings), env prefix DELIVER_S3_
        return build_deliverer_app(settings, integration_type="s3", integration_class=S3Integration,
                                   open_destination=open_s3, tracer_provider=setup_tracing("deliver-s3"))

The runtime does the rest: the subscriber (``handlers``), tenant lookup, claim-check reads with SHA-256 checks,
timing, one ``DeliveryAttempted`` per attempt, ``RetryDelivery`` for transient failures (``service``), secret
scrubbing, commit after publish, concurrency and the graceful drain (``app``). ``relay_delivery.testing`` has
helpers for tests.
"""

from relay_delivery.app import OpenDestination, build_deliverer_app
from relay_delivery.links import DownloadLinks
from relay_delivery.ports import Destination, FetchedFile, PresigningStore
from relay_delivery.scrub import Scrubber, integration_secrets
from relay_delivery.service import (
    ArtifactCorruptError,
    AttemptResult,
    Deliverer,
    IntegrationUnavailableError,
    fetch_files,
)
from relay_delivery.settings import DelivererSettings

__all__ = [
    "ArtifactCorruptError",
    "AttemptResult",
    "Deliverer",
    "DelivererSettings",
    "Destination",
    "DownloadLinks",
    "FetchedFile",
    "IntegrationUnavailableError",
    "OpenDestination",
    "PresigningStore",
    "Scrubber",
    "build_deliverer_app",
    "fetch_files",
    "integration_secrets",
]
