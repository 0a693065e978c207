"""domain.py manual triggers: body parsing, which integrations fire, one trigger per order item."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import count

import pytest

from relay_contracts.internal_api import OrdersPage
from relay_ingest_api import domain
from relay_ingest_api.domain import InvalidInputError, TriggerTarget
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
    target = domain.parse_trigger({"orderNumber": "1022", "integrationIds": ["mail", "mail", "raw-final"]})
    assert target == TriggerTarget(field="orderNumber", value="1022", integration_ids=("mail", "raw-final"))
    assert domain.parse_trigger({"recipeId": "999-x", "orderId": None}).field == "recipeId"


def test_trigger_body_with_an_unknown_field_names_it() -> None:
    with pytest.raises(InvalidInputError) as caught:
        domain.parse_trigger({"orderNumber": "1", "orderNumbr": "2"})
    assert [p.pointer for p in caught.value.problems or []] == ["/orderNumbr"]


def test_default_integrations_per_feed_are_the_enabled_ones_taking_it() -> None:
    assert TENANT.manual_feed("order", None) == ("mail", "raw-final")
    assert TENANT.manual_feed("recipe", None) == ("raw", "raw-final")
    assert TENANT.manual_feed("recipe", None, temporary=True) == ("raw",)
    # Named integrations are honoured for temporary recipes too: the operator asked for them.
    assert TENANT.manual_feed("recipe", ("raw-final", "mail"), temporary=True) == ("raw-final",)


def test_raw_feed_only_integration_cannot_fire_for_an_order() -> None:
    target = TriggerTarget(field="orderId", value="1", integration_ids=("raw", "mail"))
    with pytest.raises(InvalidInputError) as caught:
        domain.check_integration_ids(TENANT, target)
    assert [p.pointer for p in caught.value.problems or []] == ["/integrationIds/0"]
    domain.check_integration_ids(TENANT, TriggerTarget(field="recipeId", value="999-x", integration_ids=("raw",)))


def _found(*items: tuple[str, str]) -> OrdersPage:
    return OrdersPage.model_validate(
        {
            "orders": [
                {
                    "orderId": "o1",
                    "orderNumber": "1",
                    "status": "open",
                    "items": [{"recipeId": r, "itemId": i, "itemQuantity": 1} for r, i in items],
                }
            ]
        }
    )


def _demo_owns(recipe_id: str) -> bool:
    return recipe_id.startswith("999-")


def test_order_triggers_cover_each_item_of_the_recipe_with_fresh_ids() -> None:
    found = _found(("999-a", "i1"), ("999-b", "i2"))
    ids = (f"t{n}" for n in count())
    everything = domain.manual_order_triggers(
        "demo", found, ("mail",), now=NOW, owns=_demo_owns, new_id=lambda *_: next(ids)
    )
    assert [(t.trigger_id, t.recipe_id, t.reason, t.feed, t.recipe_key) for t in everything] == [
        ("t0", "999-a", "manual", "order", "recipes/demo/999-a.json"),
        ("t1", "999-b", "manual", "order", "recipes/demo/999-b.json"),
    ]
    only_a = domain.manual_order_triggers("demo", found, ("mail",), now=NOW, owns=_demo_owns, only_recipe="999-a")
    assert [t.order.item_id for t in only_a if t.order] == ["i1"]
    assert domain.manual_order_triggers("demo", found, (), now=NOW, owns=_demo_owns) == []
    fresh = domain.trigger_ids("demo", None)
    assert fresh("999-a", "o1", "i1") != fresh("999-a", "o1", "i1")


def test_an_item_using_another_tenants_recipe_is_never_triggered() -> None:
    found = _found(("999-a", "i1"), ("777-theirs", "i2"))
    triggers = domain.manual_order_triggers("demo", found, ("mail",), now=NOW, owns=_demo_owns)
    assert [t.recipe_id for t in triggers] == ["999-a"]


def test_an_idempotency_key_gives_the_same_triggers_again() -> None:
    found = _found(("999-a", "i1"), ("999-b", "i2"))

    def run(key: str | None, tenant: str = "demo") -> list[str]:
        triggers = domain.manual_order_triggers(
            tenant, found, ("mail",), now=NOW, owns=_demo_owns, new_id=domain.trigger_ids(tenant, key)
        )
        return [t.trigger_id for t in triggers]

    assert run("k-1") == run("k-1")
    assert len(set(run("k-1"))) == 2  # one per item
    assert run("k-1") != run("k-2")
    assert run("k-1") != run("k-1", tenant="acme")  # scoped to the tenant


@pytest.mark.parametrize("header", ["", " ", "x" * 129, "ключ", "a b", "a\tb"])
def test_a_malformed_idempotency_key_is_refused(header: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        domain.parse_idempotency_key(header)
    assert [p.pointer for p in caught.value.problems or []] == ["/Idempotency-Key"]
    assert domain.parse_idempotency_key("order-1022/retry#2") == "order-1022/retry#2"
    assert domain.parse_idempotency_key(None) is None


def test_foreign_recipe_ids_are_refused_with_their_pointers() -> None:
    domain.foreign_recipes(_demo_owns, [("/0/recipeId", "999-a")], "999")
    with pytest.raises(InvalidInputError) as caught:
        domain.foreign_recipes(
            _demo_owns, [("/0/recipeId", "999-a"), ("/1/recipeId", "777-b"), ("/2/recipeId", "999")], "999"
        )
    assert caught.value.code == "foreign_recipe"
    assert [p.pointer for p in caught.value.problems or []] == ["/1/recipeId", "/2/recipeId"]
    assert "'999-'" in (caught.value.problems or [])[0].message
