"""Which triggers get an event-only bundle, and the event JSON they carry."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from relay_bundle_builder.domain import event_json, event_plan, ticket_banner
from relay_contracts.messages import IntegrationsTriggered, OrderLine, TriggerReason, recipe_object_key

ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2)


def trigger(reason: TriggerReason, order: OrderLine | None = ORDER) -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id="t",
        tenant="bb",
        recipe_id="999-63CHGJokGoxPfSba",
        recipe_key=recipe_object_key("bb", "999-63CHGJokGoxPfSba"),
        feed="order" if order else "recipe",
        reason=reason,
        order=order,
        integration_ids=("mail",),
        occurred_at=datetime(2026, 11, 21, 8, 15, tzinfo=UTC),
    )


@pytest.mark.parametrize("reason", ["recipe_saved", "order_linked", "order_created", "order_updated", "manual"])
def test_manufacturing_triggers_build_the_full_bundle(reason: TriggerReason) -> None:
    assert event_plan(trigger(reason)) is None


@pytest.mark.parametrize(
    ("reason", "stem", "banner"),
    [
        ("order_cancelled", "Cancellation", "CANCELLED"),
        ("order_refunded", "Refund", None),
        ("order_returned", "Return", None),
    ],
)
def test_lifecycle_events_build_an_event_bundle(reason: TriggerReason, stem: str, banner: str | None) -> None:
    plan = event_plan(trigger(reason))
    assert plan is not None
    assert (plan.stem, plan.ticket_banner) == (stem, banner)


def test_event_json_has_the_ids_quantity_and_time_of_the_event() -> None:
    raw = event_json(trigger("order_cancelled"))
    assert json.loads(raw) == {
        "event": "order_cancelled",
        "orderId": "6182665224482",
        "orderNumber": "1022",
        "recipeId": "999-63CHGJokGoxPfSba",
        "itemId": "14523",
        "itemQuantity": 2,
        "occurredAt": "2026-11-21T08:15:00Z",
    }
    assert event_json(trigger("order_cancelled")) == raw


def test_manufacturing_ticket_of_a_cancelled_order_line_is_stamped() -> None:
    cancelled = ORDER.model_copy(update={"status": "cancelled"})
    assert ticket_banner(trigger("order_updated", cancelled)) == "CANCELLED"
    assert ticket_banner(trigger("manual", cancelled)) == "CANCELLED"
    assert ticket_banner(trigger("order_updated", ORDER.model_copy(update={"status": "open"}))) is None
    assert ticket_banner(trigger("order_created")) is None
    assert ticket_banner(trigger("recipe_saved", None)) is None
