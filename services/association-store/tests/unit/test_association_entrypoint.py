"""The process entrypoint and the internal API's answers to bad queries and a database that is down, without
servers."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from association_store_factories import MemoryStore, triggered

from relay_association_store import service
from relay_association_store.adapters.http import create_internal_api
from relay_association_store.domain import (
    Cursor,
    DeliveryFilter,
    DeliveryRecord,
    IntegrationStateRecord,
    IntegrationTally,
    OrderView,
)
from relay_contracts.internal_api import OrderLookupField
from relay_contracts.messages import stable_id
from relay_platform.errors import TransientError
from relay_platform.tenants import TenantsConfig


def test_bad_tenant_config_exits_non_zero_with_the_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "tenants.yaml"
    bad.write_text("tenants:\n  acme:\n    recipe-prefix: 'not valid!'\n")
    env = {**os.environ, "ASSOCIATION_STORE_TENANTS_FILE": str(bad), "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    result = subprocess.run(
        [sys.executable, "-m", "relay_association_store"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "invalid tenant config" in result.stderr
    assert "tenants.acme.recipe-prefix" in result.stderr


class DownStore:
    async def find_orders(
        self, tenant: str, by: OrderLookupField, value: str, *, after: str | None = None, limit: int = 100
    ) -> list[OrderView]:
        raise TransientError("database unavailable (ConnectionRefusedError)")

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return False

    async def unfinished_deliveries(self, tenant: str, *, before: datetime, limit: int) -> list[DeliveryRecord]:
        raise TransientError("database unavailable (ConnectionRefusedError)")

    async def recent_orders(self, tenant: str, *, after: Cursor | None, limit: int) -> list[OrderView]:
        raise TransientError("database unavailable (ConnectionRefusedError)")

    async def list_deliveries(
        self, tenant: str, wanted: DeliveryFilter, *, after: Cursor | None, limit: int
    ) -> list[DeliveryRecord]:
        raise TransientError("database unavailable (ConnectionRefusedError)")

    async def count_deliveries(self, tenant: str, wanted: DeliveryFilter) -> int:
        raise TransientError("database unavailable (ConnectionRefusedError)")

    async def integration_tallies(self, tenant: str, *, since: datetime) -> list[IntegrationTally]:
        raise TransientError("database unavailable (ConnectionRefusedError)")

    async def integration_states(self, tenant: str) -> list[IntegrationStateRecord]:
        raise TransientError("database unavailable (ConnectionRefusedError)")


async def test_database_down_makes_readyz_and_queries_answer_503() -> None:
    async with TestClient(TestServer(create_internal_api(DownStore()))) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503
        response = await client.get("/internal/v1/orders", params={"tenant": "acme", "orderId": "O1"})
        assert response.status == 503
        assert set(await response.json()) == {"error", "message"}
        for path, query in (
            ("/internal/v1/audit", {"tenant": "acme"}),
            ("/internal/v1/orders/recent", {"tenant": "acme"}),
            ("/internal/v1/deliveries", {"tenant": "acme", "status": "failed"}),
            ("/internal/v1/integrations/stats", {"tenant": "acme"}),
        ):
            response = await client.get(path, params=query)
            assert response.status == 503, path
            assert set(await response.json()) == {"error", "message"}


class AuditOnlyStore(MemoryStore):
    async def find_orders(
        self, tenant: str, by: OrderLookupField, value: str, *, after: str | None = None, limit: int = 100
    ) -> list[OrderView]:
        return []

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return True


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({}, "tenant"),
        ({"tenant": ""}, "tenant"),
        ({"tenant": "acme", "olderThanS": "-1"}, "olderThanS"),
        ({"tenant": "acme", "olderThanS": "1e309"}, "olderThanS"),
        ({"tenant": "acme", "olderThanS": "abc"}, "olderThanS"),
        ({"tenant": "acme", "olderThanS": "1.5"}, "olderThanS"),
        ({"tenant": "acme", "olderThanS": "99999999999999999999"}, "olderThanS"),
        ({"tenant": "acme", "olderThanS": "315360001"}, "olderThanS"),
        ({"tenant": "acme", "limit": "0"}, "limit"),
        ({"tenant": "acme", "limit": "1001"}, "limit"),
    ],
)
async def test_bad_audit_query_is_a_400_naming_the_parameter(query: dict[str, str], named: str) -> None:
    async with TestClient(TestServer(create_internal_api(AuditOnlyStore()))) as client:
        response = await client.get("/internal/v1/audit", params=query)
        assert response.status == 400
        body = await response.json()
        assert body["error"] == "bad_request"
        assert f"'{named}'" in body["message"]


async def test_audit_answers_the_documented_shape(tenants: TenantsConfig) -> None:
    store = AuditOnlyStore()
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    trigger = triggered(("orders-sftp",), order_id="O1")
    await service.record_trigger(trigger, tenants, store, now=long_ago)
    async with TestClient(TestServer(create_internal_api(store))) as client:
        response = await client.get("/internal/v1/audit", params={"tenant": "acme"})  # default: 15 minutes
        assert response.status == 200
        body = await response.json()
        assert set(body) == {"tenant", "olderThanS", "cutoff", "limit", "truncated", "deliveries"}
        assert (body["tenant"], body["olderThanS"], body["limit"], body["truncated"]) == ("acme", 900, 100, False)
        [entry] = body["deliveries"]
        assert entry == {
            "deliveryId": stable_id(trigger.trigger_id, "orders-sftp"),
            "orderId": "O1",
            "orderNumber": "1001",
            "recipeId": "ACME-1",
            "integration": "orders-sftp",
            "type": "sftp",
            "trigger": "order_linked",
            "triggerId": trigger.trigger_id,
            "status": "pending",
            "attempts": 0,
            "lastError": None,
            "lastChange": entry["lastChange"],
            "createdAt": entry["lastChange"],
            "triggeredAt": "2026-11-01T12:00:00.000Z",
            "reason": "no outcome yet since " + long_ago.isoformat(timespec="seconds").replace("+00:00", "Z"),
        }
        assert entry["lastChange"].endswith("Z")
        recent = await client.get("/internal/v1/audit", params={"tenant": "acme", "olderThanS": "7200"})
        assert (await recent.json())["deliveries"] == []
        other = await client.get("/internal/v1/audit", params={"tenant": "globex", "olderThanS": "0"})
        assert (await other.json())["deliveries"] == []
