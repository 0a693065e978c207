"""Odd input on the running API (real broker): always a 4xx JSON error naming the field, never a 5xx; what is
accepted at the edges of the valid range is published and decodes for the consumers."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from yarl import URL

from relay_contracts.messages import OrderEventOccurred
from relay_contracts.topics import ORDERS_EVENTS

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer demo-writer", "Content-Type": "application/json"}
ORDER = "/api/v2/recipe/order"
EVENTS = "/api/v2/orders/events"
RECIPES = "/api/v2/recipes"
TRIGGER = "/api/v2/integrations/trigger"
LINK = '{"recipeId": "999-odd", "orderNumber": "1", "orderId": "2", "itemId": "3", "itemQuantity": %s}'


async def error_of(response: Any, status: int) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/json"
    body: dict[str, Any] = json.loads(text)
    assert body["error"]
    assert body["message"]
    return body


def pointers(body: dict[str, Any]) -> list[str]:
    return [p["pointer"] for p in body.get("problems", [])]


async def post(api: Any, path: str, data: bytes, headers: dict[str, str] | None = None) -> Any:
    return api.session.post(f"{api.url}{path}", data=data, headers=headers or WRITER)


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (("[" + LINK % ("9" * 5000) + "]").encode(), "/0/itemQuantity"),
        (("[" + LINK % "NaN" + "]").encode(), "/0/itemQuantity"),
        (("[" + LINK % "-Infinity" + "]").encode(), "/0/itemQuantity"),
        (("[" + LINK % "1e400" + "]").encode(), "/0/itemQuantity"),
        (("[" + LINK % '1, "note": 1e999' + "]").encode(), "/0/note"),
        (("[" + LINK % "1" + "]").replace('"999-odd"', '"\\ud800"').encode(), "/0/recipeId"),
        (("[" + LINK % "1" + "]").replace('"2"', '"2\\u0000"').encode(), "/0/orderId"),
        (("[" + LINK % "1" + "]").replace('"3"', '"   "').encode(), "/0/itemId"),
        (("[" + LINK % "1" + "]").replace('"1", "orderId"', '"\\u0085", "orderId"').encode(), "/0/orderNumber"),
        (("[" + LINK % "1" + "]").replace('"3"', '"\\ufffd"').encode(), "/0/itemId"),
        (("[" + LINK % "1e308" + "]").encode(), "/0/itemQuantity"),
    ],
)
async def test_odd_values_in_an_association_batch_are_400_by_pointer(api: Any, body: bytes, pointer: str) -> None:
    async with await post(api, ORDER, body) as response:
        problem = await error_of(response, 400)
    assert pointers(problem) == [pointer]


@pytest.mark.parametrize(
    "body",
    [b"", b" ", b"\xef\xbb\xbf", b'"\xed\xa0\x80"', '[{"a": 1}]'.encode("utf-16"), b"[" * 50_000, b"\x00[]"],
)
async def test_bodies_that_are_not_utf8_json_are_400(api: Any, body: bytes) -> None:
    async with await post(api, ORDER, body) as response:
        assert (await error_of(response, 400))["error"] == "malformed_json"


@pytest.mark.parametrize(("body", "pointer"), [(b"null", ""), (b"{}", ""), (b"7", ""), (b'["x"]', "/0")])
async def test_bodies_of_the_wrong_shape_are_400(api: Any, body: bytes, pointer: str) -> None:
    async with await post(api, ORDER, body) as response:
        assert pointers(await error_of(response, 400)) == [pointer]


@pytest.mark.parametrize(
    "content_type", ["application/json", "text/plain", "application/json; charset=UTF-8", "application/x-www-form"]
)
async def test_a_json_body_is_read_as_json_whatever_its_content_type_says(api: Any, content_type: str) -> None:
    # Lenient on purpose (OMSes send what curl -d sends); a UTF-8 BOM is ignored.
    headers = WRITER | {"Content-Type": content_type}
    body = b"\xef\xbb\xbf[" + (LINK % "1").encode() + b"]"
    async with await post(api, ORDER, body, headers) as response:
        assert response.status == 202, await response.text()


async def test_a_body_that_does_not_decompress_is_400_and_a_bomb_is_413(api: Any) -> None:
    for encoding in ("gzip", "deflate"):
        async with await post(api, ORDER, b"not compressed", WRITER | {"Content-Encoding": encoding}) as response:
            assert (await error_of(response, 400))["error"] == "malformed_body"
    bomb = gzip.compress(b"[" + b" " * (64 * 1024 * 1024) + b"]")
    async with await post(api, ORDER, bomb, WRITER | {"Content-Encoding": "gzip"}) as response:
        assert (await error_of(response, 413))["error"] == "body_too_large"


@pytest.mark.parametrize(
    "occurred_at",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-06-01T00:00:00Z", "2026-02-30T00:00:00Z"],
)
async def test_occurred_at_outside_utc_years_1_to_9998_is_400(api: Any, occurred_at: str) -> None:
    event = {"type": "created", "orderId": "odd-o", "orderNumber": "1", "occurredAt": occurred_at}
    async with await post(api, EVENTS, json.dumps([event]).encode()) as response:
        assert pointers(await error_of(response, 400)) == ["/0/occurredAt"]


async def test_extreme_but_valid_instants_are_published_and_decode(api: Any, tail: Any) -> None:
    moments = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00-14:00", "9998-12-31T23:59:59.999999Z"]
    batch = [
        {"type": "cancelled", "orderId": f"odd-extreme-{n}", "orderNumber": "1", "occurredAt": moment}
        for n, moment in enumerate(moments)
    ]
    async with tail(ORDERS_EVENTS) as t:
        async with await post(api, EVENTS, json.dumps(batch).encode()) as response:
            assert response.status == 202, await response.text()
        wanted = {f"demo:odd-extreme-{n}".encode() for n in range(len(moments))}
        records = await t.wait_for(lambda rs: wanted <= {r.key for r in rs})
    decoded = [OrderEventOccurred.model_validate_json(r.value) for r in records if r.key in wanted]
    assert sorted(e.occurred_at.isoformat() for e in decoded) == sorted(
        ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00-14:00", "9998-12-31T23:59:59.999999+00:00"]
    )


def recipe(**fields: Any) -> dict[str, Any]:
    return {"name": "Odd Mug", **fields}


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (json.dumps(recipe(name="\ud800")).encode(), "/name"),
        (json.dumps(recipe(custom={"\udc00": "v"})).encode(), "/custom/\ufffd"),
        (json.dumps(recipe(components=[{"component": {"quantityMultiplier": 1}}])).replace("1}", "NaN}").encode(),
         "/components/0/component/quantityMultiplier"),
        (b'{"name": "x", "components": [{"component": {"quantityMultiplier": ' + b"1" * 5000 + b"}}]}",
         "/components/0/component/quantityMultiplier"),
    ],
)  # fmt: skip
async def test_a_recipe_that_json_cannot_carry_is_400_by_pointer(api: Any, body: bytes, pointer: str) -> None:
    # These used to answer 500 (UnicodeEncodeError while storing, ValueError while parsing).
    async with await post(api, RECIPES, body) as response:
        assert pointers(await error_of(response, 400)) == [pointer]


@pytest.mark.parametrize(
    ("fields", "pointer"),
    [
        ({"name": "a\x00b"}, "/name"),
        ({"custom": {"note": "x" * 10_001}}, "/custom/note"),
        ({"created": "0001-01-01T00:00:00+01:00"}, "/created"),
        ({"created": "9999-12-31T23:59:59-01:00"}, "/created"),
        ({"assembly": [{"component": "c", "placement": "p", "recipe": {"n": 2**64}}]}, "/assembly/0/recipe/n"),
        ({"id": "999-\u0085"}, "/id"),
    ],
)
async def test_a_recipe_with_unusable_values_is_400_by_pointer(api: Any, fields: dict[str, Any], pointer: str) -> None:
    async with await post(api, RECIPES, json.dumps(recipe(**fields)).encode()) as response:
        body = await error_of(response, 400)
    assert body["error"] == "invalid_recipe"
    assert pointers(body) == [pointer]


async def test_a_recipe_nested_too_deep_is_400_naming_the_limit(api: Any) -> None:
    child: dict[str, Any] = {}
    for _ in range(40):
        child = {"n": child}
    body = recipe(assembly=[{"component": "c", "placement": "p", "recipe": child}])
    async with await post(api, RECIPES, json.dumps(body).encode()) as response:
        problem = await error_of(response, 400)
    assert "recipe_max_depth" in problem["problems"][0]["message"]


@pytest.mark.parametrize(
    ("field", "count", "setting"),
    [
        ("components", 501, "recipe_max_components"),
        ("views", 101, "recipe_max_views"),
        ("attachments", 101, "recipe_max_attachments"),
        ("tags", 1001, "recipe_max_array_items"),
    ],
)
async def test_a_recipe_over_a_count_limit_is_413_naming_it(api: Any, field: str, count: int, setting: str) -> None:
    items = ["t"] * count if field == "tags" else [{"code": "x"}] * count
    async with await post(api, RECIPES, json.dumps(recipe(**{field: items})).encode()) as response:
        body = await error_of(response, 413)
    assert body["error"] == "recipe_too_large"
    assert pointers(body) == [f"/{field}"]
    assert setting in body["message"]


async def test_a_recipe_at_every_limit_is_saved(api: Any) -> None:
    body = recipe(
        name="Ж\U0001f600" * 5_000,
        components=[{"code": "c", "component": {"code": "k", "quantityMultiplier": 1.0e2}}] * 500,
        views=[{"code": "v"}] * 100,
        attachments=[{"code": "a"}] * 100,
        tags=["t"] * 1000,
    )
    async with await post(api, RECIPES, json.dumps(body).encode()) as response:
        assert response.status == 201, (await response.text())[:500]
        saved = await response.json()
    async with api.session.get(f"{api.url}/recipe/{saved['id']}.json") as response:
        assert response.status == 200
        stored = await response.json()
    assert stored["name"] == body["name"]
    assert len(stored["components"]) == 500


@pytest.mark.parametrize(
    "body",
    [b'{"orderId": "\\ud800"}', b'{"recipeId": "999-a\\u0000"}', b'{"orderNumber": "  "}', b'{"orderId": NaN}'],
)
async def test_odd_trigger_bodies_are_400(api: Any, body: bytes) -> None:
    async with await post(api, TRIGGER, body) as response:
        assert (await error_of(response, 400))["problems"]


@pytest.mark.parametrize(
    "query",
    ["orderId=%ED%A0%80", "orderId=%FF", "orderId=%00", "orderId=a%0Ab", "orderId=%C2%85", "orderId=+%20", "orderId="],
)
async def test_lookup_values_with_bad_encoding_or_controls_are_400_and_never_reach_the_store(
    api: Any, association_stub: Any, query: str
) -> None:
    before = len(association_stub.lookups)
    url = URL(f"{api.url}/api/v2/orders?{query}", encoded=True)
    async with api.session.get(url, headers={"Authorization": "Bearer demo-writer"}) as response:
        assert pointers(await error_of(response, 400)) == ["/orderId"]
    assert len(association_stub.lookups) == before


async def test_a_lookup_criterion_given_twice_is_400(api: Any) -> None:
    url = URL(f"{api.url}/api/v2/orders?orderId=a&orderId=b", encoded=True)
    async with api.session.get(url, headers={"Authorization": "Bearer demo-writer"}) as response:
        await error_of(response, 400)


async def raw_request(api: Any, head: bytes) -> tuple[int, bytes]:
    """A request written byte for byte (aiohttp's client will not send undecodable header bytes)."""
    address = urlsplit(api.url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("key", [b"\xff\xfe", b"\xed\xa0\x80"])
async def test_an_authorization_header_of_undecodable_bytes_is_401(api: Any, key: bytes) -> None:
    # Only two: unknown keys count against the client's address (too many and every key gets 429).
    head = b"GET /api/v2/orders?orderId=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer "
    status, body = await raw_request(api, head + key + b"\r\n\r\n")
    assert status == 401
    assert json.loads(body)["error"] == "unauthorized"
