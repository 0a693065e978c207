"""``relay_order_to_delivered_seconds`` (issue 12): the latency customers feel, from when the suite accepted the order
(``DeliverBundle.acceptedAt``), falling back to the delivery request for a request without it."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from relay_contracts.messages import DeliverBundle, OrderLine
from relay_delivery import Deliverer
from relay_delivery.testing import deliver_bundle, store_bundle
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import IntegrationBase, TenantsConfig, ZapierIntegration

TENANTS = TenantsConfig.model_validate(
    {"tenants": {"acme": {"recipe-prefix": "999", "integrations": [{"id": "zap", "type": "zapier", "hook-url": "x"}]}}}
)
METRIC = "relay_order_to_delivered_seconds"


class Accepts:
    async def deliver(self, integration: IntegrationBase, request: DeliverBundle, files: object) -> None:
        """Every bundle arrives."""


def bucket(le: str) -> float:
    """Observations so far at or under ``le`` seconds (the zapier series)."""
    return REGISTRY.get_sample_value(f"{METRIC}_bucket", {"integration_type": "zapier", "le": le}) or 0.0


async def _deliver(tmp_path: Path, *, accepted_ago: timedelta | None, requested_ago: timedelta) -> None:
    store = LocalDirectoryStore(tmp_path / "objects")
    deliverer = Deliverer(
        integration_type="zapier",
        integration_class=ZapierIntegration,
        tenants=TENANTS,
        store=store,
        destination=Accepts(),
    )
    files = await store_bundle(store, {"a.json": (b"{}", "application/json")})
    order = OrderLine(order_id="1", order_number="1001", item_id="i1", item_quantity=1)
    request = deliver_bundle(tenant="acme", integration_id="zap", integration_type="zapier", files=files, order=order)
    now = datetime.now(UTC)
    request = request.model_copy(
        update={
            "requested_at": now - requested_ago,
            "accepted_at": None if accepted_ago is None else now - accepted_ago,
        }
    )
    result = await deliverer.attempt(request)
    assert result.outcome.status == "succeeded"


@pytest.mark.parametrize(
    ("accepted_ago", "requested_ago"),
    [
        # Accepted two hours ago, requested a minute ago (a long queue before the bundle-builder): two hours.
        (timedelta(hours=2), timedelta(minutes=1)),
        # An older producer's request without acceptedAt: from the request, as before.
        (None, timedelta(hours=2)),
    ],
)
async def test_order_to_delivered_counts_from_the_orders_acceptance(
    tmp_path: Path, accepted_ago: timedelta | None, requested_ago: timedelta
) -> None:
    # Buckets (not the sum): the attempt's own time, whatever it is, cannot move an observation across them.
    hour, four_hours = bucket("3600.0"), bucket("14400.0")
    await _deliver(tmp_path, accepted_ago=accepted_ago, requested_ago=requested_ago)
    assert (bucket("3600.0") - hour, bucket("14400.0") - four_hours) == (0, 1)
