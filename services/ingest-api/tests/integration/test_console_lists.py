"""The console's read routes on the real app (``create_app``: the real association-store client, the store's token)
against the stub store: the tenant sent is always the key's, and each tenant sees only its own lists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from relay_contracts.internal_api import DELIVERIES_PATH, INTEGRATION_STATS_PATH, RECENT_ORDERS_PATH

pytestmark = pytest.mark.integration

DEMO_ORDER = {"orderId": "demo-o1", "orderNumber": "1001", "status": "open", "items": [], "deliveries": []}
ACME_FAILURE = {
    "deliveryId": "acme-d1",
    "orderId": "acme-o1",
    "orderNumber": "A-1",
    "recipeId": "777-r",
    "integration": "acme-email",
    "type": "email",
    "trigger": "order_linked",
    "status": "failed",
    "final": True,
    "attempts": 3,
    "lastError": "550",
    "updatedAt": "2026-12-01T10:00:00.000Z",
}


async def _get(api: Any, path: str, key: str, params: dict[str, str] | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    async with api.session.get(f"{api.url}{path}", params=params or {}, headers=headers) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


@pytest.fixture(autouse=True)
def clean_stub(association_stub: Any) -> Iterator[None]:
    association_stub.console_queries.clear()
    association_stub.recent.update({"demo": [DEMO_ORDER]})
    association_stub.failed.update({"acme": [ACME_FAILURE]})
    association_stub.counts.update({"acme": [{"integration": "acme-email", "failed": 1}]})
    yield
    for answers in (association_stub.recent, association_stub.failed, association_stub.counts):
        answers.clear()


async def test_each_tenant_lists_only_its_own(api: Any, association_stub: Any) -> None:
    status, demo_recent = await _get(api, "/api/v2/orders/recent", "demo-writer", {"tenant": "acme"})
    assert status == 200
    assert [o["orderId"] for o in demo_recent["orders"]] == ["demo-o1"]
    status, acme_recent = await _get(api, "/api/v2/orders/recent", "acme-orders-only")
    assert (status, acme_recent["orders"]) == (200, [])

    status, demo_failed = await _get(api, "/api/v2/deliveries/failed", "demo-writer")
    assert (status, demo_failed["deliveries"]) == (200, [])
    status, acme_failed = await _get(api, "/api/v2/deliveries/failed", "acme-orders-only")
    assert [d["deliveryId"] for d in acme_failed["deliveries"]] == ["acme-d1"]

    status, demo_integrations = await _get(api, "/api/v2/integrations", "demo-writer")
    assert status == 200
    assert "acme-email" not in [i["id"] for i in demo_integrations["integrations"]]
    status, acme_integrations = await _get(api, "/api/v2/integrations", "acme-orders-only", {"hours": "2"})
    assert [(i["id"], i["counts"]["failed"], i["windowHours"]) for i in acme_integrations["integrations"]] == [
        ("acme-email", 1, 2)
    ]

    assert [(path, query["tenant"]) for path, query in association_stub.console_queries] == [
        (RECENT_ORDERS_PATH, "demo"),
        (RECENT_ORDERS_PATH, "acme"),
        (DELIVERIES_PATH, "demo"),
        (DELIVERIES_PATH, "acme"),
        (INTEGRATION_STATS_PATH, "demo"),
        (INTEGRATION_STATS_PATH, "acme"),
    ]
    assert association_stub.console_queries[-1][1]["sinceS"] == "7200"
    assert all(
        query["status"] == "failed" for path, query in association_stub.console_queries if path == DELIVERIES_PATH
    )


async def test_another_tenants_integration_is_refused_before_the_store(api: Any, association_stub: Any) -> None:
    status, body = await _get(api, "/api/v2/deliveries/failed", "demo-writer", {"integrationId": "acme-email"})
    assert status == 400
    assert [p["pointer"] for p in body["problems"]] == ["/integrationId"]
    assert association_stub.console_queries == []


async def test_a_cursor_the_store_does_not_know_is_a_400_naming_after(api: Any) -> None:
    status, body = await _get(api, "/api/v2/deliveries/failed", "acme-orders-only", {"after": "unknown-cursor"})
    assert status == 400
    assert (body["error"], [p["pointer"] for p in body["problems"]]) == ("invalid_query", ["/after"])
