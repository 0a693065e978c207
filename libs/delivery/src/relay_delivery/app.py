"""The FastStream app of one deliverer: subscriber, lifespan resources, outcome publishing, graceful drain."""

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass
from typing import Generic, Self, TypeVar

from aiokafka.errors import KafkaError
from faststream import FastStream
from faststream.kafka import KafkaBroker
from opentelemetry.sdk.trace import TracerProvider
from pydantic import Field, SecretStr, model_validator

from relay_contracts.messages import DeliverBundle, delivery_key
from relay_contracts.topics import DELIVERIES_OUTCOMES, DELIVERIES_RETRY, IntegrationType, deliveries_requested
from relay_delivery.port import Destination
from relay_delivery.scrub import Scrubber
from relay_delivery.service import AttemptResult, Deliverer
from relay_platform.broker import consumer_options, make_broker
from relay_platform.errors import TransientError
from relay_platform.links import LinkSettings
from relay_platform.objectstore import ObjectStore
from relay_platform.objectstore_settings import ObjectStoreSettings, open_object_store
from relay_platform.settings import ServiceSettings
from relay_platform.tenants import IntegrationBase, TenantsConfig, load_tenants

logger = logging.getLogger("relay.delivery")

IntegrationT = TypeVar("IntegrationT", bound=IntegrationBase)


class DelivererSettings(ServiceSettings):
    """Settings every deliverer has; a service subclasses it with its ``env_prefix`` (``DELIVER_SFTP_``).

    ``object_store`` and ``links`` read their own ``OBJECT_STORE_*`` / ``LINKS_*`` variables, shared by every
    service that needs the same store and link key. ``LINKS_SIGNING_KEY`` has no default: without it (or with a
    weak one) a deliverer refuses to start, naming the variable.
    """

    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    links: LinkSettings = Field(default_factory=LinkSettings)
    # Attempts in flight at once. Each is a consumer of the group processing its partitions in order (so only
    # processed offsets are committed); more than the topic's partition count leaves consumers idle.
    concurrency: int = Field(default=3, ge=1, le=64)
    # One attempt's budget (the destination call included): past it the attempt is reported `retrying` with a
    # timeout, well before the consumer's handler budget (`KAFKA_HANDLER_TIMEOUT_S`) would cut it off.
    attempt_timeout_s: float = Field(default=180.0, gt=0)
    # On SIGTERM: how long in-flight attempts may take to finish and publish their outcome.
    shutdown_grace_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _attempt_fits_the_handler_budget(self) -> Self:
        # Room for reading the bundle files and publishing the outcome after the destination call.
        if self.attempt_timeout_s + 15 > self.kafka.handler_timeout_s:
            msg = (
                f"attempt_timeout_s ({self.attempt_timeout_s:g}) must stay at least 15 s under "
                f"KAFKA_HANDLER_TIMEOUT_S ({self.kafka.handler_timeout_s:g})"
            )
            raise ValueError(msg)
        return self


OpenDestination = Callable[[ObjectStore], AbstractAsyncContextManager[Destination[IntegrationT]]]
"""Opens a destination's clients for the process lifetime; given the artifact store (for download links)."""


@dataclass(slots=True)
class _Running(Generic[IntegrationT]):
    deliverer: Deliverer[IntegrationT] | None = None


async def publish_result(broker: KafkaBroker, result: AttemptResult) -> None:
    """Publish the outcome (and retry command) and wait for the broker's acknowledgements.

    Keyed by ``delivery_id`` so every attempt of one delivery stays in order. A broker failure raises
    ``TransientError``: the request is not committed and will be attempted again.
    """
    key = delivery_key(result.outcome.delivery_id)
    publishes = [broker.publish(result.outcome, DELIVERIES_OUTCOMES, key=key)]
    if result.retry is not None:
        publishes.append(broker.publish(result.retry, DELIVERIES_RETRY, key=key))
    try:
        await asyncio.gather(*publishes)
    except KafkaError as error:
        raise TransientError(f"cannot publish delivery outcome: {type(error).__name__}") from error


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
    group_id: str | None = None,
) -> FastStream:
    """The complete FastStream app of the ``deliver-<integration_type>`` service.

    - Subscribes to ``deliveries_requested(integration_type)`` as group ``deliver-<type>`` with
      ``AckPolicy.NACK_ON_ERROR``, ``auto_offset_reset="earliest"`` and ``settings.concurrency`` consumers.
    - Per message: looks the integration up in the tenant config (unknown, disabled or of another type ->
      ``failed``), reads and verifies the bundle files, calls ``Destination.deliver`` and publishes one
      ``DeliveryAttempted`` on ``deliveries.outcomes.v1`` (plus a ``RetryDelivery`` on ``deliveries.retry.v1``
      for a transient failure) before the offset is committed.
    - On start: opens the artifact store, then ``open_destination(store)`` (clients live until shutdown).
    - On stop (SIGTERM): stops fetching, lets in-flight attempts finish and publish (``shutdown_grace_s``),
      then stops the broker and closes the destination and store.

    Tenants are loaded here from ``settings.tenants_file`` unless given, so a bad file raises
    ``relay_platform.tenants.ConfigError`` before anything starts. ``service_secrets`` (e.g. the SMTP
    password) are scrubbed from every error text along with each integration's own secrets. ``topic`` and
    ``group_id`` override the defaults for tests only.
    """
    tenants = tenants if tenants is not None else load_tenants(settings.tenants_file)
    service = f"deliver-{integration_type}"
    broker = make_broker(settings.kafka, service=service, tracer_provider=tracer_provider)
    running: _Running[IntegrationT] = _Running()
    scrubber = Scrubber(service_secrets)

    subscriber = broker.subscriber(
        topic or deliveries_requested(integration_type),
        **consumer_options(settings.kafka, group_id or service),
        max_workers=settings.concurrency,
        title=f"{service}:deliver",
        description=f"Deliver bundles to {integration_type} integrations; one outcome per attempt.",
    )

    @subscriber
    async def deliver(request: DeliverBundle) -> None:
        if running.deliverer is None:
            raise TransientError("deliverer not started")
        result = await running.deliverer.attempt(request)
        await publish_result(broker, result)

    resources = AsyncExitStack()

    async def open_resources() -> None:
        store = await resources.enter_async_context(open_object_store(settings.object_store))
        destination = await resources.enter_async_context(open_destination(store))
        running.deliverer = Deliverer(
            integration_type=integration_type,
            integration_class=integration_class,
            tenants=tenants,
            store=store,
            destination=destination,
            attempt_timeout_s=settings.attempt_timeout_s,
            scrubber=scrubber,
        )

    async def drain() -> None:
        # FastStream's concurrent subscriber stops its consumers before waiting for in-flight handlers, which
        # would lose their commits; stop fetching and wait here first, while the consumers are still up.
        subscriber.running = False
        wait_release = getattr(subscriber.lock, "wait_release", None)
        if wait_release is not None:
            await wait_release(settings.shutdown_grace_s)

    async def close_resources() -> None:
        running.deliverer = None
        await resources.aclose()

    return FastStream(
        broker,
        on_startup=[open_resources],
        on_shutdown=[drain],
        after_shutdown=[close_resources],
    )
