"""Every kind of bad request answers with the JSON error body and the right status."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer demo-writer"}
ORDER = "/api/v2/recipe/order"
GOOD = {"recipeId": "999-r", "orderNumber": "1", "orderId": "2", "itemId": "3", "itemQuantity": 1}


async def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    return body


async def test_every_bad_field_is_listed_by_json_pointer(api: Any) -> None:
    batch = [
        GOOD,
        {"recipeId": "999-r", "orderNumber": "1", "itemId": "3", "itemQuantity": -1},
        {"orderNumber": 7, "itemId": "3", "itemQuantity": "2"},
        "not an object",
    ]
    async with api.session.post(f"{api.url}{ORDER}", json=batch, headers=WRITER) as response:
        body = await _error(response, 400, "invalid_fields")
    pointers = sorted(p["pointer"] for p in body["problems"])
    assert pointers == ["/1/itemQuantity", "/2/itemQuantity", "/2/orderNumber", "/2/recipeId", "/3"]


async def test_lifecycle_event_needs_rfc3339_time_with_zone_and_known_type(api: Any) -> None:
    batch = [{"type": "exploded", "orderId": "o", "orderNumber": "1", "occurredAt": "2025-01-01T00:00:00"}]
    async with api.session.post(f"{api.url}/api/v2/orders/events", json=batch, headers=WRITER) as response:
        body = await _error(response, 400, "invalid_fields")
    assert sorted(p["pointer"] for p in body["problems"]) == ["/0/occurredAt", "/0/type"]


@pytest.mark.parametrize("payload", [b"{not json", b"", b"\xff\xfe"])
async def test_malformed_json_is_400(api: Any, payload: bytes) -> None:
    async with api.session.post(f"{api.url}{ORDER}", data=payload, headers=WRITER) as response:
        await _error(response, 400, "malformed_json")


async def test_a_body_that_is_not_an_array_is_400(api: Any) -> None:
    async with api.session.post(f"{api.url}{ORDER}", json=GOOD, headers=WRITER) as response:
        body = await _error(response, 400, "invalid_body")
    assert body["problems"] == [{"pointer": "", "message": "must be an array"}]


async def test_missing_or_unknown_key_is_401(api: Any) -> None:
    async with api.session.post(f"{api.url}{ORDER}", json=[GOOD]) as response:
        await _error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    async with api.session.post(f"{api.url}{ORDER}", json=[GOOD], params={"apikey": "nope"}) as response:
        await _error(response, 401, "unauthorized")
    async with api.session.post(f"{api.url}{ORDER}", json=[GOOD], headers={"Authorization": "Bearer x"}) as response:
        await _error(response, 401, "unauthorized")


async def test_key_without_order_tracking_is_403(api: Any) -> None:
    async with api.session.post(f"{api.url}{ORDER}", json=[GOOD], headers={"Authorization": "Bearer demo-reader"}) as r:
        await _error(r, 403, "forbidden")


async def test_more_than_1000_items_is_413(api: Any) -> None:
    async with api.session.post(f"{api.url}{ORDER}", json=[GOOD] * 1001, headers=WRITER) as response:
        await _error(response, 413, "too_many_items")


async def test_more_than_5_mib_is_413_with_or_without_content_length(api: Any) -> None:
    big = json.dumps([GOOD | {"padding": "x" * (6 * 1024 * 1024)}]).encode()
    async with api.session.post(f"{api.url}{ORDER}", data=io.BytesIO(big), headers=WRITER) as response:
        await _error(response, 413, "body_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 256 * 1024):
            yield big[start : start + 256 * 1024]

    async with api.session.post(f"{api.url}{ORDER}", data=chunks(), headers=WRITER) as response:
        await _error(response, 413, "body_too_large")


async def test_over_the_rate_limit_is_429_with_retry_after(api: Any) -> None:
    headers = {"Authorization": "Bearer demo-throttled"}
    statuses = []
    for _ in range(4):
        async with api.session.post(f"{api.url}{ORDER}", json=[], headers=headers) as response:
            statuses.append(response.status)
            if response.status == 429:
                await _error(response, 429, "rate_limited")
                assert int(response.headers["Retry-After"]) >= 1
    assert statuses[:2] == [202, 202]
    assert 429 in statuses[2:]


async def test_unknown_route_and_wrong_method_answer_json(api: Any) -> None:
    async with api.session.get(f"{api.url}/nope") as response:
        await _error(response, 404, "not_found")
    async with api.session.get(f"{api.url}{ORDER}", headers=WRITER) as response:
        await _error(response, 405, "method_not_allowed")
        assert "POST" in response.headers["Allow"]
