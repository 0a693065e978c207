"""``GET /api/v2/admin/audit``: admin only, the tenant from the key, durations checked, the store's answer relayed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from relay_contracts.internal_api import AuditReport

pytestmark = pytest.mark.integration

URL = "/api/v2/admin/audit"
STUCK = {
    "deliveryId": "0f3c",
    "orderId": "6182665224482",
    "orderNumber": "1022",
    "recipeId": "999-RecipeA",
    "integration": "demo-email",
    "type": "email",
    "trigger": "order_linked",
    "triggerId": "t-1",
    "status": "pending",
    "attempts": 0,
    "lastError": None,
    "lastChange": "2026-12-01T11:00:00.000Z",
    "createdAt": "2026-12-01T11:00:00.000Z",
    "triggeredAt": "2026-12-01T10:59:59.000Z",
    "reason": "no outcome yet since 2026-12-01T11:00:00Z",
}


async def _get(api: Any, params: dict[str, str] | None = None, key: str | None = "demo-admin") -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with api.session.get(f"{api.url}{URL}", params=params or {}, headers=headers) as response:
        assert response.content_type == "application/json"
        return response.status, await response.json()


@pytest.fixture(autouse=True)
def clean_stub(association_stub: Any) -> Iterator[None]:
    association_stub.audits.clear()
    association_stub.audit_deliveries.clear()
    association_stub.audit_override = None
    yield
    association_stub.audit_override = None


async def test_admin_gets_its_own_tenants_audit_with_the_default_deadline(api: Any, association_stub: Any) -> None:
    association_stub.audit_deliveries["demo"] = [STUCK]
    association_stub.audit_deliveries["acme"] = [STUCK | {"deliveryId": "acme-only"}]
    status, body = await _get(api, {"tenant": "acme"})  # a tenant parameter is ignored: the key decides
    assert status == 200, body
    report = AuditReport.model_validate(body)
    assert (report.tenant, report.older_than_s, report.limit, report.truncated) == ("demo", 900, 100, False)
    assert body["deliveries"] == [STUCK]
    assert association_stub.audits == [{"tenant": "demo", "olderThanS": "900", "limit": "100"}]


@pytest.mark.parametrize(("older_than", "seconds"), [("0", "0"), ("90s", "90"), ("1h30m", "5400"), ("2d", "172800")])
async def test_older_than_and_limit_reach_the_store_in_seconds(
    api: Any, association_stub: Any, older_than: str, seconds: str
) -> None:
    status, body = await _get(api, {"olderThan": older_than, "limit": "1000"})
    assert status == 200, body
    assert body["deliveries"] == []
    assert association_stub.audits == [{"tenant": "demo", "olderThanS": seconds, "limit": "1000"}]


@pytest.mark.parametrize(
    ("key", "status"), [(None, 401), ("no-such-key", 401), ("demo-writer", 403), ("demo-reader", 403)]
)
async def test_only_an_admin_key_may_audit(api: Any, association_stub: Any, key: str | None, status: int) -> None:
    answer_status, body = await _get(api, {"olderThan": "1m"}, key=key)
    assert answer_status == status
    assert body["error"] == ("unauthorized" if status == 401 else "forbidden")
    assert association_stub.audits == []


@pytest.mark.parametrize("older_than", ["-1", "1e309", "abc", "99999999999999999999d", "", "15 m"])
async def test_a_bad_older_than_is_a_400_naming_the_field(api: Any, association_stub: Any, older_than: str) -> None:
    status, body = await _get(api, {"olderThan": older_than})
    assert status == 400
    assert body["error"] == "invalid_query"
    assert [p["pointer"] for p in body["problems"]] == ["/olderThan"]
    assert association_stub.audits == []


async def test_a_bad_limit_is_a_400_too(api: Any, association_stub: Any) -> None:
    status, body = await _get(api, {"limit": "1001"})
    assert (status, [p["pointer"] for p in body["problems"]]) == (400, ["/limit"])


async def test_the_audit_is_checked_before_it_is_relayed(api: Any, association_stub: Any) -> None:
    association_stub.audit_override = (
        200,
        {"tenant": "acme", "olderThanS": 900, "cutoff": "x", "limit": 100, "truncated": False, "deliveries": []},
    )
    status, body = await _get(api)
    assert (status, body["error"]) == (502, "upstream_error")
    association_stub.audit_override = (200, {"deliveries": "not a list"})
    status, body = await _get(api)
    assert (status, body["error"]) == (502, "upstream_error")


async def test_association_store_down_is_a_503_with_retry_after(api: Any, association_stub: Any) -> None:
    association_stub.audit_override = (503, {"error": "unavailable", "message": "database down"})
    async with api.session.get(f"{api.url}{URL}", headers={"Authorization": "Bearer demo-admin"}) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "2"
        assert (await response.json())["error"] == "unavailable"
