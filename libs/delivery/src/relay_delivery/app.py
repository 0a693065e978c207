"""The composition of one deliverer: the broker with the shared routing table (``handlers``), the resources the
attempts need (artifact store, the destination's clients) and the graceful drain, in the platform's lifecycle
(``relay_platform.app.service_app``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TypeVar

from faststream import ContextRepo, FastStream
from faststream.kafka import KafkaRouter
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr

from relay_contracts.topics import IntegrationType
from relay_delivery import handlers
from relay_delivery.control import ControlReader
from relay_delivery.ports import Destination
from relay_delivery.scrub import Scrubber
from relay_delivery.service import Deliverer
from relay_delivery.settings import DelivererSettings
from relay_delivery.states import IntegrationStates
from relay_platform.app import service_app
from relay_platform.broker import make_broker
from relay_platform.objectstore import ObjectStore
from relay_platform.objectstore_settings import open_object_store
from relay_platform.tenants import IntegrationBase, TenantsConfig, load_tenants

IntegrationT = TypeVar("IntegrationT", bound=IntegrationBase)

OpenDestination = Callable[[ObjectStore], AbstractAsyncContextManager[Destination[IntegrationT]]]
"""Opens a destination's clients for the process lifetime; given the artifact store (for download links)."""


def build_deliverer_app(
    settings: DelivererSettings,
    *,
    integration_type: IntegrationType,
    integration_class: type[IntegrationT],
    open_destination: OpenDestination[IntegrationT],
    service_secrets: Sequence[SecretStr | None] = (),
    tracer_provider: TracerProvider | None = None,
    tenants: TenantsConfig | None = None,
    topic: str | None = None,
) -> FastStream:
    """The complete FastStream app of the ``deliver-<integration_type>`` service.

    - Subscribes with ``handlers.build_router``: ``deliveries_requested(integration_type)`` as group
      ``settings.consumer_group``, ``settings.concurrency`` attempts at once.
    - Per message: looks the integration up in the tenant config (unknown, disabled or of another type ->
      ``failed``), reads and verifies the bundle files, calls ``Destination.deliver`` and publishes one
      ``DeliveryAttempted`` on ``deliveries.outcomes.v1`` (plus a ``RetryDelivery`` on ``deliveries.retry.v1``
      for a transient failure) before the offset is committed.
    - A request of an integration paused on ``integrations.control.v1`` (read whole by a background task,
      ``control.ControlReader``) is not attempted: its hold command goes to ``deliveries.retry.v1`` instead; until
      that topic is read up to where it stood at start, requests wait (``settings.control_catch_up_s`` at most).
    - On start: opens the artifact store, then ``open_destination(store)`` (clients live until shutdown).
    - On stop (SIGTERM): stops fetching, lets in-flight attempts finish and publish (``shutdown_grace_s``),
      then stops the broker and closes the destination and store.

    Tenants are loaded here from ``settings.tenants_file`` unless given, so a bad file raises
    ``relay_platform.tenants.ConfigError`` before anything starts. ``service_secrets`` (e.g. the SMTP
    password) are scrubbed from every error text along with each integration's own secrets. ``topic``
    replaces the requests topic for tests only.
    """
    tenants = tenants if tenants is not None else load_tenants(settings.tenants_file)
    service = f"deliver-{integration_type}"
    broker = make_broker(settings.kafka, service=service, tracer_provider=tracer_provider)
    router = handlers.build_router(settings, integration_type=integration_type, topic=topic)
    broker.include_router(router)
    scrubber = Scrubber(service_secrets)
    states = IntegrationStates()
    control = ControlReader(settings.kafka, states, service=service)

    @asynccontextmanager
    async def resources(context: ContextRepo) -> AsyncIterator[None]:
        async with open_object_store(settings.object_store) as store, open_destination(store) as destination:
            deliverer = Deliverer(
                integration_type=integration_type,
                integration_class=integration_class,
                tenants=tenants,
                store=store,
                destination=destination,
                attempt_timeout_s=settings.attempt_timeout_s,
                scrubber=scrubber,
                states=states,
                control_catch_up_s=settings.control_catch_up_s,
            )
            context.set_global("deliverer", deliverer)
            try:
                yield
            finally:
                context.reset_global("deliverer")

    async def drain() -> None:
        await drain_in_flight(router, settings.shutdown_grace_s)

    app = service_app(
        broker,
        resources=resources,
        background=[(f"{service}-control", control.run)],
        drain=drain,
        service=service,
        settings=settings,
        specification=AsyncAPI(
            title=f"Recipe Relay {service}",
            version="1.0.0",
            description=f"Delivers recipe bundles to the tenants' {integration_type} integrations.",
        ),
    )
    # For ``relay_delivery.testing.in_memory``: on the in-memory broker there is no topic to read.
    app.context.set_global(CONTROL_READER, control)
    return app


CONTROL_READER = "integration_control"
"""The app context's name for the ``ControlReader`` of a deliverer app."""


async def drain_in_flight(router: KafkaRouter, grace_s: float) -> None:
    """Stop fetching and wait up to ``grace_s`` for the attempts in flight, while the broker is still up."""
    for subscriber in router.subscribers:
        # FastStream's concurrent subscriber stops its consumers before waiting for in-flight handlers, which
        # would lose their commits; stop fetching and wait here first, while the consumers are still up.
        subscriber.running = False
        wait_release = getattr(subscriber.lock, "wait_release", None)
        if wait_release is not None:
            await wait_release(grace_s)
