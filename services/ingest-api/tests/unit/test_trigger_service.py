"""service.py manual triggers: body parsing, which integrations fire, one trigger per order item."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

import pytest

from relay_ingest_api import service
from relay_ingest_api.schemas import OrdersFound
from relay_ingest_api.service import InvalidInputError, TriggerTarget
from relay_platform.tenants import Tenant

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)

TENANT = Tenant.model_validate(
    {
        "recipe-prefix": "999",
        "integrations": [
            {"id": "mail", "type": "email", "to": "a@example.com"},
            {"id": "raw", "type": "zapier", "hook-url": "https://h.example", "feeds": ["recipe"]},
            {
                "id": "raw-final",
                "type": "zapier",
                "hook-url": "https://h.example",
                "feeds": ["recipe", "order"],
                "include-temporary-recipes": False,
            },
            {"id": "off", "type": "email", "to": "b@example.com", "enabled": False},
        ],
    }
)


def test_trigger_body_keeps_the_one_criterion_and_dedupes_integration_ids() -> None:
    target = service.parse_trigger({"orderNumber": "1022", "integrationIds": ["mail", "mail", "raw-final"]})
    assert target == TriggerTarget(field="orderNumber", value="1022", integration_ids=("mail", "raw-final"))
    assert service.parse_trigger({"recipeId": "999-x", "orderId": None}).field == "recipeId"


def test_trigger_body_with_an_unknown_field_names_it() -> None:
    with pytest.raises(InvalidInputError) as caught:
        service.parse_trigger({"orderNumber": "1", "orderNumbr": "2"})
    assert [p.pointer for p in caught.value.problems or []] == ["/orderNumbr"]


def test_default_integrations_per_feed_are_the_enabled_ones_taking_it() -> None:
    assert service.feed_integrations(TENANT, "order", None) == ("mail", "raw-final")
    assert service.feed_integrations(TENANT, "recipe", None) == ("raw", "raw-final")
    assert service.feed_integrations(TENANT, "recipe", None, temporary=True) == ("raw",)
    # Named integrations are honoured for temporary recipes too: the operator asked for them.
    assert service.feed_integrations(TENANT, "recipe", ("raw-final", "mail"), temporary=True) == ("raw-final",)


def test_raw_feed_only_integration_cannot_fire_for_an_order() -> None:
    target = TriggerTarget(field="orderId", value="1", integration_ids=("raw", "mail"))
    with pytest.raises(InvalidInputError) as caught:
        service.check_integration_ids(TENANT, target)
    assert [p.pointer for p in caught.value.problems or []] == ["/integrationIds/0"]
    service.check_integration_ids(TENANT, TriggerTarget(field="recipeId", value="999-x", integration_ids=("raw",)))


def test_order_triggers_cover_each_item_of_the_recipe_with_fresh_ids() -> None:
    found = OrdersFound.model_validate(
        {
            "orders": [
                {
                    "orderId": "o1",
                    "orderNumber": "1",
                    "status": "open",
                    "items": [
                        {"recipeId": "999-a", "itemId": "i1", "itemQuantity": 1},
                        {"recipeId": "999-b", "itemId": "i2", "itemQuantity": 2},
                    ],
                }
            ]
        }
    )
    ids = (f"t{n}" for n in count())
    everything = service.manual_order_triggers("demo", found, ("mail",), now=NOW, new_id=lambda: next(ids))
    assert [(t.trigger_id, t.recipe_id, t.reason, t.feed) for t in everything] == [
        ("t0", "999-a", "manual", "order"),
        ("t1", "999-b", "manual", "order"),
    ]
    only_a = service.manual_order_triggers("demo", found, ("mail",), now=NOW, only_recipe="999-a")
    assert [t.order.item_id for t in only_a if t.order] == ["i1"]
    assert service.manual_order_triggers("demo", found, (), now=NOW) == []
    assert service.new_trigger_id() != service.new_trigger_id()
