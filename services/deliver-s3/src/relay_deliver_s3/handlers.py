"""deliver-s3's subscriber is the shared deliverer runtime (``relay_delivery.handlers.build_router``): one
consumer of ``deliveries.requested.s3.v1`` in group ``Settings.consumer_group`` (``deliver-s3``), running
``Settings.concurrency`` attempts at once. Each ``DeliverBundle`` is attempted once through
``service.S3Destination`` and its outcome published on ``deliveries.outcomes.v1`` (with a ``RetryDelivery`` on
``deliveries.retry.v1`` for a transient failure). ``main.create_app`` builds it with ``build_deliverer_app``."""

from relay_contracts.topics import IntegrationType, deliveries_requested
from relay_delivery.handlers import build_router

INTEGRATION_TYPE: IntegrationType = "s3"
TOPIC = deliveries_requested(INTEGRATION_TYPE)

__all__ = ["INTEGRATION_TYPE", "TOPIC", "build_router"]
