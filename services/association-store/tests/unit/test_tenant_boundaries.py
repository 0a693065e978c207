"""The association store never lets one tenant's message touch another tenant's recipes or orders."""

from __future__ import annotations

import pytest
from association_store_factories import order_event, recipe_saved

from relay_association_store import domain
from relay_contracts.messages import OmsOrderEvent
from relay_contracts.topics import ORDERS_EVENTS
from relay_platform.errors import PermanentError
from relay_platform.tenants import TenantsConfig

OMS_TOPICS = {"oms.acme.orders.v1": "acme", "galaxy-orders": "galaxy"}


def oms_event(**fields: object) -> OmsOrderEvent:
    return OmsOrderEvent.model_validate(
        {
            "eventId": "e1",
            "type": "linked",
            "orderId": "O1",
            "orderNumber": "1001",
            "items": [{"recipeId": "ACME-1", "itemId": "i1", "itemQuantity": 1}],
            "occurredAt": "2026-11-01T12:00:00Z",
            **fields,
        }
    )


def test_the_tenant_of_an_oms_event_is_its_topics() -> None:
    event = domain.order_event_from("oms.acme.orders.v1", oms_event(), OMS_TOPICS)
    assert event.tenant == "acme"
    assert domain.order_event_from("oms.acme.orders.v1", oms_event(tenant="acme"), OMS_TOPICS).tenant == "acme"


@pytest.mark.parametrize(
    ("topic", "fields", "reason"),
    [
        ("oms.acme.orders.v1", {"tenant": "galaxy"}, "not 'acme', the tenant of topic"),
        ("galaxy-orders", {"tenant": "acme"}, "not 'galaxy'"),
        ("oms.nobody.orders.v1", {}, "no tenant publishes to topic"),
        (ORDERS_EVENTS, {}, "tenant is required"),
    ],
)
def test_a_spoofed_or_unknown_tenant_is_refused(topic: str, fields: dict[str, object], reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        domain.order_event_from(topic, oms_event(**fields), OMS_TOPICS)


def test_ingest_apis_topic_keeps_the_tenant_it_set() -> None:
    assert domain.order_event_from(ORDERS_EVENTS, oms_event(tenant="galaxy"), OMS_TOPICS).tenant == "galaxy"


def test_an_order_may_only_use_its_tenants_recipes(tenants: TenantsConfig) -> None:
    domain.check_own_recipes(tenants, order_event("linked", "O1", [("ACME-1", "i1", 1)]))
    domain.check_own_recipes(tenants, order_event("cancelled", "O1"))  # no items: nothing to check
    foreign = order_event("linked", "O1", [("ACME-1", "i1", 1), ("GLX-7", "i2", 1)])
    with pytest.raises(PermanentError, match=r"items/1/recipeId is not a recipe of tenant 'acme'"):
        domain.check_own_recipes(tenants, foreign)
    # A prefix alone is not enough: "ACMEX-1" is not "ACME-<id>".
    with pytest.raises(PermanentError):
        domain.check_own_recipes(tenants, order_event("linked", "O1", [("ACMEX-1", "i1", 1)]))
    with pytest.raises(PermanentError):
        domain.check_own_recipes(tenants, order_event("linked", "O1", [("no-prefix", "i1", 1)]))


def test_a_saved_recipe_must_be_its_tenants_under_its_tenants_key(tenants: TenantsConfig) -> None:
    domain.check_recipe_saved(tenants, recipe_saved("ACME-1"))
    with pytest.raises(PermanentError, match="recipeId"):
        domain.check_recipe_saved(tenants, recipe_saved("GLX-1"))
    moved = recipe_saved("ACME-1").model_copy(update={"recipe_key": "recipes/galaxy/GLX-1.json"})
    with pytest.raises(PermanentError, match="recipeKey"):
        domain.check_recipe_saved(tenants, moved)
    legacy = recipe_saved("ACME-1").model_copy(update={"recipe_key": "recipe/ACME-1.json"})
    with pytest.raises(PermanentError, match="recipeKey"):
        domain.check_recipe_saved(tenants, legacy)
