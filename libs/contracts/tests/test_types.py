"""IdText and UtcInstant: what a consumer decodes from Kafka is refused there (and dead-lettered), not later in SQL,
file names or date arithmetic; and the recipe limits the seed schema leaves open."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from relay_contracts.messages import (
    DeliverBundle,
    IntegrationsTriggered,
    OmsOrderEvent,
    OrderEventOccurred,
    RecipeSaved,
    RetryDelivery,
)
from relay_contracts.recipe import RecipeLimits, recipe_bound_problems, validate_recipe
from relay_contracts.types import IdText, UtcInstant, check_id_text, replace_lone_surrogates

ORDER_EVENT: dict[str, Any] = {
    "eventId": "ev-1",
    "tenant": "acme",
    "type": "created",
    "orderId": "6182665224482",
    "orderNumber": "1022",
    "items": [{"recipeId": "777-a", "itemId": "1", "itemQuantity": 2}],
    "occurredAt": "2026-11-20T10:00:00Z",
}
ids = TypeAdapter(IdText)
instants = TypeAdapter(UtcInstant)


def consumer_decode(model: type[Any], payload: dict[str, Any]) -> Any:
    """As FastStream decodes without a custom parser: ``json.loads`` then validation in Python mode."""
    return model.model_validate(json.loads(json.dumps(payload)))


@pytest.mark.parametrize("text", ["a\x00", "\x01", "a\x1f", "\x7f", "a\x80", "\x9f", "\ud800", "a\udfff", "\ufffdz"])
def test_id_text_refuses_control_characters_lone_surrogates_and_replacement_marks(text: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        ids.validate_python(text)


@pytest.mark.parametrize("text", [" ", "\t", "\u3000 \u2003", "\n\r"])
def test_id_text_refuses_blanks(text: str) -> None:
    with pytest.raises(ValidationError):
        ids.validate_python(text)


@pytest.mark.parametrize("text", ["", "1022", " padded ", "注文-1", "a\u00a0b", "\U0001f600", "a/b~c%00"])
def test_id_text_keeps_ordinary_ids_unchanged(text: str) -> None:
    # Empty is left to each field's min_length (OrderLine's may be empty).
    assert ids.validate_python(text) == text
    assert check_id_text(text) == text


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "9999-01-01T00:00:00Z",
        datetime(9999, 12, 31, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(minutes=1))),
        "2026-01-01T00:00:00",
    ],
)
def test_utc_instant_refuses_what_cannot_be_converted_or_delayed(moment: object) -> None:
    with pytest.raises(ValidationError):
        instants.validate_python(moment)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=-14))),
        datetime(9998, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9998, 12, 31, 10, tzinfo=timezone(timedelta(hours=13, minutes=59))),
    ],
)
def test_utc_instant_keeps_extreme_but_usable_instants_as_given(moment: datetime) -> None:
    kept = instants.validate_python(moment)
    assert kept == moment
    assert kept.utcoffset() == moment.utcoffset()
    # What the services do with them: convert, format, add a retry delay, take a timestamp.
    kept.astimezone(UTC).isoformat()
    (kept + timedelta(days=1)).astimezone(UTC)
    kept.timestamp()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("orderId", "\ud800"),
        ("orderId", "a\x00b"),
        ("orderNumber", "   "),
        ("eventId", "\x85"),
        ("tenant", "acme\n"),
        ("occurredAt", "0001-01-01T00:00:00+01:00"),
        ("occurredAt", "9999-12-31T23:59:59-01:00"),
    ],
)
@pytest.mark.parametrize("model", [OrderEventOccurred, OmsOrderEvent])
def test_an_order_event_with_odd_values_is_refused_at_decode(model: type[Any], field: str, value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        consumer_decode(model, ORDER_EVENT | {field: value})
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize(("field", "value"), [("recipeId", "\ud800"), ("itemId", "\x00"), ("itemId", " ")])
def test_an_order_item_with_odd_ids_is_refused_at_decode(field: str, value: str) -> None:
    items = [{"recipeId": "777-a", "itemId": "1", "itemQuantity": 2} | {field: value}]
    with pytest.raises(ValidationError):
        consumer_decode(OrderEventOccurred, ORDER_EVENT | {"items": items})


def test_the_json_parser_path_refuses_lone_surrogates_too() -> None:
    raw = json.dumps(ORDER_EVENT).replace('"6182665224482"', '"\\ud800"')
    with pytest.raises(ValidationError):
        OrderEventOccurred.model_validate_json(raw)


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00Z", "9998-12-31T23:59:59.999999+00:00"])
def test_an_order_event_at_an_extreme_but_valid_instant_is_accepted(moment: str) -> None:
    event = consumer_decode(OrderEventOccurred, ORDER_EVENT | {"occurredAt": moment})
    assert event.occurred_at.astimezone(UTC).year in (1, 9998)


def test_other_messages_use_the_same_types() -> None:
    created = "0001-01-01T00:00:00+01:00"
    saved = {"eventId": "e", "tenant": "acme", "recipeId": "777-a", "recipeKey": "k", "created": created}
    with pytest.raises(ValidationError):
        consumer_decode(RecipeSaved, saved | {"occurredAt": "2026-01-01T00:00:00Z"})
    trigger = {
        "triggerId": "t\x00",
        "tenant": "acme",
        "recipeId": "777-a",
        "recipeKey": "k",
        "feed": "order",
        "reason": "manual",
        "integrationIds": ["i"],
        "occurredAt": "2026-01-01T00:00:00Z",
    }
    with pytest.raises(ValidationError):
        consumer_decode(IntegrationsTriggered, trigger)


@pytest.mark.parametrize("retry_after", [float("inf"), float("nan")])
def test_a_retry_after_that_cannot_be_added_to_a_date_is_refused(retry_after: float) -> None:
    request = DeliverBundle(
        delivery_id="d",
        trigger_id="t",
        tenant="acme",
        integration_id="i",
        integration_type="email",
        recipe_id="777-a",
        feed="recipe",
        reason="recipe_saved",
        requested_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(ValidationError):
        RetryDelivery(
            request=request,
            error_class="E",
            error_message="m",
            retry_after_s=retry_after,
            failed_at=datetime(2026, 1, 1, tzinfo=UTC),
        )


def test_replace_lone_surrogates_keeps_pairs_and_marks_each_lone_one() -> None:
    assert replace_lone_surrogates("a\ud800b\udfff\U0001f600") == "a\ufffdb\ufffd\U0001f600"


# --- recipe limits ------------------------------------------------------------------------------------------------


def test_recipe_limits_default_to_the_documented_values() -> None:
    assert RecipeLimits() == RecipeLimits(
        max_components=500,
        max_views=100,
        max_attachments=100,
        max_array_items=1000,
        max_string_length=10_000,
        max_depth=32,
    )


def test_bound_problems_come_in_document_order_with_their_limit() -> None:
    document = {
        "views": [{}] * 3,
        "name": "x" * 7,
        "custom": {"k" * 7: "v", "ok": "\x00"},
        "tags": ["\ud800"],
        "n": 2**64,
        "f": float("-inf"),
    }
    problems = recipe_bound_problems(document, RecipeLimits(max_views=2, max_string_length=6))
    assert [(p.pointer, p.limit, p.too_large) for p in problems] == [
        ("/views", "max_views", True),
        ("/name", "max_string_length", False),
        ("/custom", "max_string_length", False),  # a key too long is named by its object
        ("/custom/ok", None, False),
        ("/tags/0", None, False),
        ("/n", None, False),
        ("/f", None, False),
    ]


def test_bound_problems_stop_at_the_cap() -> None:
    assert len(recipe_bound_problems({"tags": ["\x00"] * 500}, max_problems=7)) == 7


def test_a_valid_recipe_within_limits_has_no_bound_problems() -> None:
    recipe = {
        "id": "999-x",
        "created": "2026-01-01T00:00:00Z",
        "components": [{"code": "c", "component": {"quantityMultiplier": 1.5, "custom": {"a": "b"}}}] * 500,
        "views": [{"code": "v", "variants": [{"code": "s"}] * 1000}] * 100,
    }
    assert recipe_bound_problems(recipe) == []
    assert validate_recipe(recipe) == []


def test_schema_messages_are_short_even_for_long_values() -> None:
    (problem,) = validate_recipe({"id": "999-x", "created": "2026-01-01T00:00:00Z", "session": "x" * 50_000})
    assert problem.pointer == "/session"
    assert len(problem.message) <= 300
