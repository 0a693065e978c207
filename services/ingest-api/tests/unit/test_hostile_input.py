"""Hostile input to the ingest API's pure logic: every odd value is an ``IngestError`` (4xx) naming its JSON
pointer, never an exception that would answer 500; and what is accepted can be published and stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import MultiDict

from relay_contracts.messages import OrderEventOccurred
from relay_contracts.recipe import RecipeLimits
from relay_ingest_api import domain
from relay_ingest_api.domain import IngestError, TooLargeError
from relay_ingest_api.jsonbody import parse_json
from relay_ingest_api.middleware import status_of
from relay_ingest_api.openapi import openapi_document
from relay_ingest_api.settings import Settings
from relay_platform.tenants import load_tenants

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
LINK = {"recipeId": "999-r", "orderNumber": "1001", "orderId": "1111", "itemId": "2222", "itemQuantity": 2}
EVENT = {"type": "created", "orderId": "o", "orderNumber": "1", "occurredAt": "2026-01-01T00:00:00Z"}
TENANTS_FILE = Path(__file__).parent.parent / "tenants.yaml"


def refused(call: Any, *args: Any, **kwargs: Any) -> IngestError:
    with pytest.raises(IngestError) as caught:
        call(*args, **kwargs)
    error = caught.value
    assert 400 <= status_of(error) < 500
    return error


def pointers(error: IngestError) -> list[str]:
    return [p.pointer for p in error.problems or []]


def answer_bytes(error: IngestError) -> bytes:
    """The error as the middleware would send it: it must encode as UTF-8 (no lone surrogate, no input echo)."""
    problems = [{"pointer": p.pointer, "message": p.message} for p in error.problems or []]
    return json.dumps({"error": error.code, "message": error.message, "problems": problems}).encode()


def link_body(**fields: str) -> bytes:
    return ("[" + json.dumps(LINK)[:-1] + "".join(f', "{k}": {v}' for k, v in fields.items()) + "}]").encode()


# --- numbers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["itemQuantity", "customerNotes"])
def test_an_integer_of_5000_digits_is_400_by_pointer_wherever_it_is(where: str) -> None:
    # json raises a plain ValueError (not JSONDecodeError) past 4300 digits: that used to answer 500.
    error = refused(parse_json, link_body(**{where: "9" * 5000}))
    assert error.code == "invalid_json_value"
    assert pointers(error) == [f"/0/{where}"]
    assert "9999" not in answer_bytes(error).decode()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1.5e999"])
def test_non_finite_numbers_are_refused_by_pointer(literal: str) -> None:
    error = refused(parse_json, link_body(itemQuantity=literal))
    assert error.code == "invalid_json_value"
    assert pointers(error) == ["/0/itemQuantity"]


def test_numbers_json_allows_are_read_as_numbers() -> None:
    document = parse_json(b'{"a": -0, "b": 1.0e2, "c": -0.0, "d": 9223372036854775807, "e": 1e308}')
    assert document == {"a": 0, "b": 100.0, "c": -0.0, "d": 2**63 - 1, "e": 1e308}


@pytest.mark.parametrize(("quantity", "expected"), [("1.0e2", 100), ("-0", 0), ("1E2", 100), ("0.0", 0)])
def test_integral_quantities_in_any_json_spelling_are_accepted(quantity: str, expected: int) -> None:
    batch = domain.parse_associations(parse_json(link_body(itemQuantity=quantity)), max_items=10)
    assert batch.records[0].item_quantity == expected


@pytest.mark.parametrize("quantity", ["1e308", "18446744073709551616", "1000001", "2.5", "-1", '"2"', "true", "null"])
def test_quantities_out_of_range_or_type_are_400(quantity: str) -> None:
    error = refused(domain.parse_associations, parse_json(link_body(itemQuantity=quantity)), max_items=10)
    assert pointers(error) == ["/0/itemQuantity"]


# --- text, encodings -----------------------------------------------------------------------------------------------


def test_a_lone_surrogate_anywhere_is_400_by_pointer_and_the_answer_encodes() -> None:
    body = b'[{"recipeId": "\\ud800", "orderNumber": "1", "itemId": "i", "itemQuantity": 1, "x\\udfffy": 1}]'
    error = refused(parse_json, body)
    assert error.code == "invalid_json_value"
    # The key is shown with U+FFFD in place of the surrogate, so the answer is valid UTF-8.
    assert pointers(error) == ["/0/recipeId", "/0/x\ufffdy"]
    answer_bytes(error)


def test_surrogate_pairs_are_ordinary_text() -> None:
    assert parse_json(b'{"name": "\\ud83d\\ude00 \\uD83D\\uDE00"}') == {"name": "\U0001f600 \U0001f600"}


@pytest.mark.parametrize(
    "raw",
    [
        b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8 bytes: not UTF-8
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}'.encode("utf-32"),
        b"",
        b"   \n",
        b"\xef\xbb\xbf",
        b'{"a": 1} trailing',
        b"{'a': 1}",
        b'{"a": "unterminated',
        b'{"a": "raw \x01 control"}',
        b"[" * 100_000,
        b'{"a":' * 100_000,
    ],
)
def test_malformed_bodies_are_malformed_json(raw: bytes) -> None:
    assert refused(parse_json, raw).code == "malformed_json"


def test_a_utf8_byte_order_mark_is_ignored() -> None:
    assert parse_json(b'\xef\xbb\xbf[{"a": 1}]') == [{"a": 1}]


def test_null_and_scalars_parse_and_are_refused_by_shape() -> None:
    assert parse_json(b"null") is None
    not_arrays: list[object] = [None, 7, "x", True, {}]
    for document in not_arrays:
        assert pointers(refused(domain.parse_associations, document, max_items=10)) == [""]
        assert pointers(refused(domain.parse_lifecycle_events, document, max_items=10)) == [""]
    not_objects: list[object] = [None, 7, "x", True, []]
    for document in not_objects:
        assert pointers(refused(domain.prepare_recipe, document, tenant_prefix="999", now=NOW)) == [""]
        assert pointers(refused(domain.parse_trigger, document)) == [""]


def test_duplicate_keys_keep_the_last_value_as_python_json_does() -> None:
    # Documented choice: everything is re-serialised from the parsed value, so no later reader sees the other.
    assert parse_json(b'{"id": "999-a", "id": "999-b"}') == {"id": "999-b"}


# --- IDs ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    ["", " ", "\t\n", "\u3000", "a\x00b", "a\x1fb", "\x7f", "a\x85b", "a\x9fb", "a\ufffdb", "\uffff", "x" * 129],
)
@pytest.mark.parametrize("field", ["recipeId", "orderNumber", "orderId", "itemId"])
def test_association_ids_refuse_blank_control_characters_and_replacement_marks(bad_id: str, field: str) -> None:
    error = refused(domain.parse_associations, [LINK | {field: bad_id}], max_items=10)
    assert pointers(error) == [f"/0/{field}"]
    if len(bad_id.strip()) > 1:
        assert json.dumps(bad_id)[1:-1] not in answer_bytes(error).decode()


@pytest.mark.parametrize("good_id", ["注文-1", "Ā", " padded ", "a b", "#1001", "a/b~c", "x" * 128])
def test_ids_in_any_script_with_inner_or_outer_spaces_are_accepted(good_id: str) -> None:
    batch = domain.parse_associations([LINK | {"orderId": good_id}], max_items=10)
    events = domain.link_events("demo", batch.records, NOW)
    assert events[0].order_id == good_id


@pytest.mark.parametrize("field", ["eventId", "orderId", "orderNumber"])
def test_lifecycle_ids_refuse_control_characters(field: str) -> None:
    error = refused(domain.parse_lifecycle_events, [EVENT | {field: "a\x00"}], max_items=10)
    assert pointers(error) == [f"/0/{field}"]


def test_lifecycle_item_ids_refuse_control_characters() -> None:
    event = EVENT | {"items": [{"recipeId": "999-r", "itemId": "\x1b[31m", "itemQuantity": 1}]}
    assert pointers(refused(domain.parse_lifecycle_events, [event], max_items=10)) == ["/0/items/0/itemId"]


@pytest.mark.parametrize(
    "body",
    [
        {"orderId": "a\x00"},
        {"recipeId": " "},
        {"orderNumber": "\x85"},
        {"orderId": "1", "integrationIds": ["demo-email", "\x00"]},
    ],
)
def test_trigger_ids_refuse_control_characters_and_blanks(body: dict[str, Any]) -> None:
    assert refused(domain.parse_trigger, body).code == "invalid_fields"


# --- dates -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC: astimezone overflowed (500)
        "9999-12-31T23:59:59-01:00",  # after year 9999 in UTC: the same
        "9999-01-01T00:00:00Z",  # representable, but no room left to add a retry delay
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00Z",
        "2026-01-01T00:00:60Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00",
        "٢٠٢٦-01-01T00:00:00Z",  # Arabic-Indic digits
        "2026-01-01T00:00:00Z\n",
        "",
        1767225600,
    ],
)
def test_unusable_occurred_at_is_400_by_pointer(occurred_at: object) -> None:
    error = refused(domain.parse_lifecycle_events, [EVENT | {"occurredAt": occurred_at}], max_items=10)
    assert pointers(error) == ["/0/occurredAt"]


@pytest.mark.parametrize(
    "occurred_at",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00-14:00",
        "9998-12-31T23:59:59.999999Z",
        "9998-12-31T10:00:00+13:59",
        "2026-01-01t00:00:00z",
    ],
)
def test_extreme_but_valid_occurred_at_builds_a_publishable_event(occurred_at: str) -> None:
    batch = domain.parse_lifecycle_events([EVENT | {"occurredAt": occurred_at}], max_items=10)
    (event,) = domain.lifecycle_events("demo", batch.records)
    assert domain.lifecycle_event_id("demo", batch.records[0]) == event.event_id
    # What a consumer decodes: the published JSON, validated again.
    assert OrderEventOccurred.model_validate(json.loads(event.model_dump_json())) == event


# --- recipes -----------------------------------------------------------------------------------------------------


def recipe(**fields: Any) -> dict[str, Any]:
    return {"id": "999-hostile", "created": "2026-01-01T00:00:00Z", **fields}


def prepare(document: object, limits: RecipeLimits | None = None) -> domain.PreparedRecipe:
    if limits is None:
        return domain.prepare_recipe(document, tenant_prefix="999", now=NOW)
    return domain.prepare_recipe(document, tenant_prefix="999", now=NOW, limits=limits)


@pytest.mark.parametrize(
    ("field", "item", "limit", "setting"),
    [
        ("components", {"code": "c"}, 500, "recipe_max_components"),
        ("views", {"code": "v"}, 100, "recipe_max_views"),
        ("attachments", {"code": "a"}, 100, "recipe_max_attachments"),
        ("tags", "t", 1000, "recipe_max_array_items"),
        ("related", {}, 1000, "recipe_max_array_items"),
    ],
)
def test_an_array_over_its_limit_is_413_naming_the_limit_and_pointer(
    field: str, item: object, limit: int, setting: str
) -> None:
    prepare(recipe(**{field: [item] * limit}))
    error = refused(prepare, recipe(**{field: [item] * (limit + 1)}))
    assert isinstance(error, TooLargeError)
    assert status_of(error) == 413
    assert error.code == "recipe_too_large"
    assert pointers(error) == [f"/{field}"]
    assert setting in (error.problems or [])[0].message
    assert setting in error.message


def test_nested_arrays_are_bounded_too() -> None:
    views = [{"code": "v", "variants": [{"code": "x"}] * 1001}]
    assert pointers(refused(prepare, recipe(views=views))) == ["/views/0/variants"]
    components = [{"code": "c", "component": {"description": [{"code": "d"}] * 1001}}]
    assert pointers(refused(prepare, recipe(components=components))) == ["/components/0/component/description"]


def test_limits_come_from_the_caller() -> None:
    limits = RecipeLimits(max_components=2, max_string_length=20)
    prepare(recipe(components=[{}, {}], name="x" * 20), limits)
    assert status_of(refused(prepare, recipe(components=[{}, {}, {}]), limits)) == 413
    assert pointers(refused(prepare, recipe(name="x" * 21), limits)) == ["/name"]


def child(recipe: dict[str, Any]) -> dict[str, Any]:
    return {"component": "c", "placement": "p", "recipe": recipe}


def multiplier(value: float) -> dict[str, Any]:
    return {"component": {"quantityMultiplier": value}}


@pytest.mark.parametrize(
    ("fields", "pointer", "words"),
    [
        ({"name": "x" * 10_001}, "/name", "recipe_max_string_length"),
        ({"custom": {"k" * 10_001: "v"}}, "/custom", "recipe_max_string_length"),
        ({"views": [{"custom": {"note": "x" * 10_001}}]}, "/views/0/custom/note", "recipe_max_string_length"),
        ({"name": "a\x00b"}, "/name", "NUL"),
        ({"custom": {"a\x00": "v"}}, "/custom", "NUL"),
        ({"name": "\ud800"}, "/name", "surrogate"),
        ({"custom": {"\udc00": "v"}}, "/custom", "surrogate"),
        ({"assembly": [child({"n": 2**63})]}, "/assembly/0/recipe/n", "2^63"),
        ({"assembly": [child({"n": -(2**63) - 1})]}, "/assembly/0/recipe/n", "2^63"),
        ({"components": [multiplier(float("nan"))]}, "/components/0/component/quantityMultiplier", "finite"),
        ({"components": [multiplier(float("inf"))]}, "/components/0/component/quantityMultiplier", "finite"),
    ],
)  # fmt: skip
def test_unusable_recipe_values_are_400_by_pointer(fields: dict[str, Any], pointer: str, words: str) -> None:
    error = refused(prepare, recipe(**fields))
    assert status_of(error) == 400
    assert error.code == "invalid_recipe"
    assert pointers(error) == [pointer]
    assert words in (error.problems or [])[0].message
    answer_bytes(error)


def test_nesting_is_bounded_at_32_levels() -> None:
    def nested(levels: int) -> dict[str, Any]:
        inner: dict[str, Any] = {}
        for _ in range(levels):
            inner = {"n": inner}
        return inner

    # The recipe is level 1, assembly 2, its item 3, the child recipe 4: 28 more fit.
    fits = recipe(assembly=[{"component": "c", "placement": "p", "recipe": nested(28)}])
    prepare(fits)
    too_deep = recipe(assembly=[{"component": "c", "placement": "p", "recipe": nested(29)}])
    error = refused(prepare, too_deep)
    assert status_of(error) == 400
    assert pointers(error) == ["/assembly/0/recipe" + "/n" * 29]
    assert "recipe_max_depth" in (error.problems or [])[0].message


def test_a_recipe_nested_as_deep_as_json_allows_is_400_not_a_recursion_error() -> None:
    body = b'{"assembly": [{"component": "c", "placement": "p", "recipe": ' + b'{"a":' * 900 + b"1" + b"}" * 901 + b"]}"
    error = refused(prepare, parse_json(body))
    assert "recipe_max_depth" in (error.problems or [])[0].message


def test_problems_are_capped_and_the_answer_stays_small() -> None:
    error = refused(prepare, recipe(tags=["\x00"] * 1000))
    assert len(error.problems or []) == domain.MAX_BODY_PROBLEMS
    assert len(answer_bytes(error)) < 10_000


def test_schema_messages_do_not_echo_long_values() -> None:
    error = refused(prepare, recipe(session="x" * 9_000))
    assert pointers(error) == ["/session"]
    assert len(answer_bytes(error)) < 1_000


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-06-01T00:00:00Z"])
def test_an_unconvertible_created_is_400_by_pointer(created: str) -> None:
    error = refused(prepare, recipe(created=created))
    assert error.code == "invalid_recipe"
    assert pointers(error) == ["/created"]
    assert "UTC" in (error.problems or [])[0].message


@pytest.mark.parametrize("created", ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00-01:00", "9998-12-31T23:59:59Z"])
def test_an_extreme_but_valid_created_gives_a_publishable_event(created: str) -> None:
    prepared = prepare(recipe(created=created))
    event = domain.recipe_saved("demo", prepared, NOW)
    assert event.created == prepared.created


def test_an_accepted_recipe_is_stored_as_utf8_exactly() -> None:
    document = parse_json(json.dumps(recipe(name="Ж \U0001f600 \u2028", custom={"tab\tkey": "line\nbreak"})).encode())
    prepared = prepare(document)
    assert json.loads(prepared.body.decode("utf-8"))["name"] == "Ж \U0001f600 \u2028"


@pytest.mark.parametrize("recipe_id", ["999-\x00", "999-\ud800", "999- ", " 999-a", "999-a\n", "999-" + "a" * 101, ""])
def test_recipe_ids_outside_the_safe_alphabet_are_400(recipe_id: str) -> None:
    error = refused(prepare, recipe(id=recipe_id))
    assert pointers(error) == ["/id"]
    answer_bytes(error)


# --- query parameters --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["\ufffd\ufffd\ufffd", "\ufffd", "\x00", "a\x85", "  ", "", "x" * 129])
def test_lookup_values_refuse_bad_percent_encoding_controls_and_blanks(value: str) -> None:
    # yarl decodes %ED%A0%80 or %FF to U+FFFD, %00 to NUL, %C2%85 to NEL, +%20 to blanks.
    error = refused(domain.lookup_query, MultiDict({"orderId": value}))
    assert error.code == "invalid_query"
    assert pointers(error) == ["/orderId"]


def test_a_lookup_criterion_given_twice_is_400() -> None:
    params: MultiDict[str] = MultiDict([("orderId", "a"), ("orderId", "b")])
    assert refused(domain.lookup_query, params).code == "invalid_query"


def test_a_lookup_value_in_any_script_is_accepted() -> None:
    assert domain.lookup_query(MultiDict({"recipeId": "注文 #1", "apikey": "k"})) == ("recipeId", "注文 #1")


# --- headers -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw_key", ["\udcff\udcfe", "\ud800", "a\x00b", "é" * 10_000])
def test_an_api_key_of_odd_bytes_is_just_unknown(raw_key: str) -> None:
    # aiohttp hands undecodable header bytes over as lone surrogates; hashing them used to raise (500).
    assert load_tenants(TENANTS_FILE).match_key(raw_key) is None


# --- settings and the document -----------------------------------------------------------------------------------


def test_recipe_limits_are_settings_with_the_ingest_api_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKS_SIGNING_KEY", "Zq8vN3kR7pW2xL5mT9bY4cH6jD1fG0sA-uE_iOyK")
    monkeypatch.setenv("INGEST_API_RECIPE_MAX_COMPONENTS", "7")
    monkeypatch.setenv("INGEST_API_RECIPE_MAX_STRING_LENGTH", "256")
    limits = Settings().recipe_limits()
    assert limits == RecipeLimits(max_components=7, max_string_length=256)


@pytest.mark.parametrize(("name", "value"), [("STRING_LENGTH", "64"), ("DEPTH", "4"), ("COMPONENTS", "0")])
def test_recipe_limits_too_small_for_any_recipe_stop_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("LINKS_SIGNING_KEY", "Zq8vN3kR7pW2xL5mT9bY4cH6jD1fG0sA-uE_iOyK")
    monkeypatch.setenv(f"INGEST_API_RECIPE_MAX_{name}", value)
    with pytest.raises(ValueError, match=f"recipe_max_{name.lower()}"):
        Settings()


def test_the_openapi_document_states_the_recipe_limits() -> None:
    limits = RecipeLimits(max_components=7, max_views=8, max_attachments=9)
    document = openapi_document(max_items=10, max_body=2048, recipe_limits=limits)
    recipe_input = document["components"]["schemas"]["RecipeInput"]
    assert recipe_input["properties"]["components"]["maxItems"] == 7
    assert recipe_input["properties"]["views"]["maxItems"] == 8
    assert recipe_input["properties"]["attachments"]["maxItems"] == 9
    assert "10000 characters" in recipe_input["description"]
    assert "maxItems" not in document["components"]["schemas"]["Recipe"]["properties"]["components"]
    assert "413" in document["paths"]["/api/v2/recipes"]["post"]["responses"]
    criteria = document["paths"]["/api/v2/orders"]["get"]["parameters"][0]["schema"]["properties"]
    assert all("pattern" in criterion for criterion in criteria.values())
