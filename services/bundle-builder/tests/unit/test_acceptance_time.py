"""Issue 12: each delivery request carries when the suite accepted the order (the trigger's ``acceptedAt``), so the
deliverers measure order-to-delivered from there rather than from the bundle-builder's request."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relay_bundle_builder.domain import delivery_requests
from relay_contracts.messages import DeliverBundle, IntegrationsTriggered, OrderLine, recipe_object_key

ACCEPTED = datetime(2026, 11, 21, 8, 15, 0, 250000, tzinfo=UTC)
BUILT = datetime(2026, 11, 21, 8, 15, 9, tzinfo=UTC)


def trigger(accepted_at: datetime | None) -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id="t",
        tenant="bb",
        recipe_id="999-a",
        recipe_key=recipe_object_key("bb", "999-a"),
        feed="order",
        reason="order_created",
        order=OrderLine(order_id="1", order_number="1001", item_id="i1", item_quantity=1),
        integration_ids=("mail", "zap"),
        occurred_at=datetime(2026, 11, 21, 8, 14, tzinfo=UTC),
        accepted_at=accepted_at,
    )


@pytest.mark.parametrize("accepted_at", [ACCEPTED, None])
def test_every_delivery_request_carries_the_triggers_acceptance_time(accepted_at: datetime | None) -> None:
    outgoing = delivery_requests(trigger(accepted_at), [("mail", "email"), ("zap", "zapier")], (), BUILT)
    requests = [record.message for record in outgoing]
    assert all(isinstance(request, DeliverBundle) for request in requests)
    assert [(r.accepted_at, r.requested_at) for r in requests if isinstance(r, DeliverBundle)] == [
        (accepted_at, BUILT),
        (accepted_at, BUILT),
    ]
