"""domain.py: scrubbing, validation pointers, stable IDs, event building, recipes, access rules."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from relay_ingest_api import domain
from relay_ingest_api.domain import InvalidInputError, TooLargeError
from relay_ingest_api.http import content_disposition
from relay_ingest_api.jsonbody import parse_json
from relay_ingest_api.ratelimit import retry_after_for_rate

NOW = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)
GOOD = {"recipeId": "999-r", "orderNumber": "1001", "orderId": "1111", "itemId": "2222", "itemQuantity": 2}


def test_unknown_and_personal_fields_are_dropped_and_counted() -> None:
    item = GOOD | {"email": "jane@example.com", "customer": {"name": "Jane Doe"}, "orderid": "typo"}
    batch = domain.parse_associations([item], max_items=10)
    assert batch.dropped_fields == 3
    assert batch.records[0].model_dump(by_alias=True) == GOOD


def test_lifecycle_scrub_reaches_into_items() -> None:
    event = {
        "type": "created",
        "orderId": "o",
        "orderNumber": "1",
        "occurredAt": "2025-01-01T00:00:00Z",
        "billing": {"card": "4111 1111 1111 1111"},
        "items": [{"recipeId": "999-r", "itemId": "i", "itemQuantity": 1, "title": "Jane's shoe"}],
    }
    batch = domain.parse_lifecycle_events([event], max_items=10)
    assert batch.dropped_fields == 2
    assert batch.records[0].items is not None
    assert batch.records[0].items[0].item_id == "i"


def test_each_bad_field_gets_a_pointer_and_no_input_is_echoed() -> None:
    bad = [GOOD, {"recipeId": "", "orderNumber": "1", "itemId": "i", "itemQuantity": True}, 3]
    with pytest.raises(InvalidInputError) as caught:
        domain.parse_associations(bad, max_items=10)
    problems = caught.value.problems or []
    assert sorted(p.pointer for p in problems) == ["/1/itemQuantity", "/1/recipeId", "/2"]
    assert all("True" not in p.message for p in problems)


@pytest.mark.parametrize("quantity", [-1, 1.5, "2", None, True])
def test_item_quantity_must_be_a_non_negative_integer(quantity: object) -> None:
    with pytest.raises(InvalidInputError):
        domain.parse_associations([GOOD | {"itemQuantity": quantity}], max_items=10)


def test_too_many_items_is_too_large() -> None:
    with pytest.raises(TooLargeError):
        domain.parse_associations([GOOD] * 3, max_items=2)


@pytest.mark.parametrize("raw", [b"{", b"\xff", b"[" * 100_000])
def test_malformed_json_is_invalid_input(raw: bytes) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_json(raw)
    assert caught.value.code == "malformed_json"


def test_linked_event_ids_are_stable_across_resends_and_order_id_defaults_to_number() -> None:
    batch = domain.parse_associations([GOOD, GOOD | {"orderId": None} | {"itemId": "x"}], max_items=10).records
    first = domain.link_events("demo", batch, NOW)
    again = domain.link_events("demo", batch, NOW + timedelta(minutes=5))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    assert first[0].event_id != first[1].event_id
    assert first[1].order_id == "1001"
    assert first[0].kafka_key == b"demo:1111"
    assert domain.link_events("acme", batch, NOW)[0].event_id != first[0].event_id


def test_lifecycle_event_ids_use_business_keys_and_occurred_at_or_the_tenant_scoped_client_id() -> None:
    event = {"type": "cancelled", "orderId": "o", "orderNumber": "1", "occurredAt": "2025-01-01T01:00:00+01:00"}
    same_moment = event | {"occurredAt": "2025-01-01T00:00:00Z"}
    later = event | {"occurredAt": "2025-01-01T00:00:01Z"}
    records = domain.parse_lifecycle_events([event, same_moment, later, event | {"eventId": "e1"}], max_items=9)
    ids = [e.event_id for e in domain.lifecycle_events("demo", records.records)]
    assert ids[0] == ids[1]
    assert len({ids[0], ids[2], ids[3]}) == 3
    other = domain.lifecycle_events("acme", records.records)[3].event_id
    assert other != ids[3]


@pytest.mark.parametrize("value", ["2025-01-01T00:00:00", "1735689600", 1735689600, "2025-01-01"])
def test_occurred_at_must_be_rfc3339_with_zone(value: object) -> None:
    event = {"type": "updated", "orderId": "o", "orderNumber": "1", "occurredAt": value}
    with pytest.raises(InvalidInputError) as caught:
        domain.parse_lifecycle_events([event], max_items=1)
    assert [p.pointer for p in caught.value.problems or []] == ["/0/occurredAt"]


def test_new_recipe_ids_are_prefixed_base62() -> None:
    ids = {domain.new_recipe_id("999") for _ in range(100)}
    assert len(ids) == 100
    assert all(re.fullmatch(r"999-[0-9A-Za-z]{16}", i) for i in ids)


def test_prepare_recipe_assigns_id_and_created_and_keeps_the_rest() -> None:
    recipe = domain.prepare_recipe({"name": "n", "temporaryRecipe": True}, tenant_prefix="999", now=NOW)
    stored = json.loads(recipe.body)
    assert stored["created"] == "2025-05-01T12:00:00.000Z"
    assert stored["id"] == recipe.recipe_id
    assert recipe.temporary
    event = domain.recipe_saved("demo", recipe, NOW)
    assert event.recipe_key == f"recipes/demo/{recipe.recipe_id}.json"  # under its tenant
    assert (event.recipe_id, event.temporary, event.name) == (recipe.recipe_id, True, "n")


def test_prepare_recipe_keeps_a_supplied_id_and_created() -> None:
    created = "2024-02-03T04:05:06+02:00"
    recipe = domain.prepare_recipe({"id": "999-mine", "created": created}, tenant_prefix="999", now=NOW)
    assert recipe.recipe_id == "999-mine"
    assert recipe.created == datetime(2024, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))


@pytest.mark.parametrize("recipe_id", ["777-x", "999-", "999-../../etc", "999x-y"])
def test_foreign_or_unsafe_ids_are_refused_at_slash_id(recipe_id: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        domain.prepare_recipe({"id": recipe_id}, tenant_prefix="999", now=NOW)
    assert "/id" in [p.pointer for p in caught.value.problems or []]


def test_recipe_must_be_an_object() -> None:
    with pytest.raises(InvalidInputError):
        domain.prepare_recipe([], tenant_prefix="999", now=NOW)


def test_recipe_access_hides_key_mode_recipes_from_other_tenants() -> None:
    access = domain.recipe_access
    assert access(read_mode="public", owner="a", requester=None, can_read=False) == "allow"
    assert access(read_mode="key", owner="a", requester=None, can_read=False) == "unauthenticated"
    assert access(read_mode="key", owner="a", requester="b", can_read=True) == "hidden"
    assert access(read_mode="key", owner="a", requester="a", can_read=False) == "forbidden"
    assert access(read_mode="key", owner="a", requester="a", can_read=True) == "allow"


def test_lookup_query_wants_exactly_one_criterion() -> None:
    assert domain.lookup_query({"orderId": "1", "apikey": "k"}) == ("orderId", "1")
    for params in ({}, {"orderId": "1", "recipeId": "2"}, {"orderNumber": ""}):
        with pytest.raises(InvalidInputError):
            domain.lookup_query(params)


def test_content_disposition_is_safe_for_any_name() -> None:
    header = content_disposition('rézé "x"\n.pdf')
    assert "\n" not in header
    assert 'filename="r_z_ _x__.pdf"' in header
    assert "filename*=UTF-8''r%C3%A9z%C3%A9%20%22x%22%0A.pdf" in header


def test_retry_after_covers_one_token() -> None:
    assert retry_after_for_rate(100) == 1
    assert retry_after_for_rate(0.25) == 4


def test_an_integral_float_quantity_is_an_integer_as_in_json_schema() -> None:
    (record,) = domain.parse_associations([GOOD | {"itemQuantity": 3.0}], max_items=1).records
    assert record.item_quantity == 3
    assert isinstance(record.item_quantity, int)
