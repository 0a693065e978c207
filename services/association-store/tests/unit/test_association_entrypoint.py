"""The process entrypoint and the internal API's failure answers, without servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from relay_association_store.adapters.http import create_internal_api
from relay_association_store.adapters.repository import OrderLookup
from relay_association_store.service import OrderView
from relay_platform.errors import TransientError


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
    async def find_orders(self, tenant: str, by: OrderLookup, value: str) -> list[OrderView]:
        raise TransientError("database unavailable (ConnectionRefusedError)")

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return False


async def test_database_down_makes_readyz_and_queries_answer_503() -> None:
    async with TestClient(TestServer(create_internal_api(DownStore()))) as client:
        assert (await client.get("/healthz")).status == 200
        assert (await client.get("/readyz")).status == 503
        response = await client.get("/internal/v1/orders", params={"tenant": "acme", "orderId": "O1"})
        assert response.status == 503
        assert set(await response.json()) == {"error", "message"}
