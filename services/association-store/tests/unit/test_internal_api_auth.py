"""The internal API answers any tenant's orders, so it answers only its caller's bearer token; the probes stay open.
A store reachable from the network refuses to start without a token."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from association_store_factories import TENANTS_FILE
from pydantic import SecretStr, ValidationError

from relay_association_store.adapters.http import create_internal_api
from relay_association_store.domain import DeliveryRecord, IntegrationStateRecord, IntegrationTally, OrderView
from relay_association_store.settings import Settings
from relay_contracts.internal_api import OrderLookupField
from relay_platform.shared_secret import new_shared_secret

TOKEN = new_shared_secret()
QUERIES = (
    ("/internal/v1/orders", {"tenant": "acme", "orderId": "O1"}),
    ("/internal/v1/audit", {"tenant": "acme"}),
    ("/internal/v1/orders/recent", {"tenant": "acme"}),
    ("/internal/v1/deliveries", {"tenant": "acme", "status": "failed"}),
    ("/internal/v1/integrations/stats", {"tenant": "acme"}),
)


class EmptyStore:
    async def find_orders(self, tenant: str, by: OrderLookupField, value: str, **_page: object) -> list[OrderView]:
        return []

    async def ping(self, timeout_s: float = 2.0) -> bool:
        return True

    async def unfinished_deliveries(self, tenant: str, *, before: object, limit: int) -> list[DeliveryRecord]:
        return []

    async def recent_orders(self, tenant: str, *, after: object, limit: int) -> list[OrderView]:
        return []

    async def list_deliveries(self, tenant: str, wanted: object, *, after: object, limit: int) -> list[DeliveryRecord]:
        return []

    async def count_deliveries(self, tenant: str, wanted: object) -> int:
        return 0

    async def integration_tallies(self, tenant: str, *, since: object) -> list[IntegrationTally]:
        return []

    async def integration_states(self, tenant: str) -> list[IntegrationStateRecord]:
        return []


def _client() -> TestClient[web.Request, web.Application]:
    return TestClient(TestServer(create_internal_api(EmptyStore(), token=SecretStr(TOKEN))))


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        f"Bearer {new_shared_secret()}",  # a wrong token
        TOKEN,  # the right token without the scheme
        f"Basic {TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer  {TOKEN}",
        "Bearer é" + TOKEN,  # not ASCII: still a plain 401
    ],
)
async def test_internal_queries_without_the_token_are_401(authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    async with _client() as client:
        for path, params in QUERIES:
            response = await client.get(path, params=params, headers=headers)
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            body = await response.json()
            assert body["error"] == "unauthorized"
            assert TOKEN not in await response.text()


async def test_internal_queries_with_the_token_are_answered() -> None:
    async with _client() as client:
        for path, params in QUERIES:
            response = await client.get(path, params=params, headers={"Authorization": f"Bearer {TOKEN}"})
            assert response.status == 200, await response.text()


async def test_unknown_paths_need_the_token_too() -> None:
    async with _client() as client:
        assert (await client.get("/internal/v2/orders")).status == 401
        assert (await client.get("/internal/v2/orders", headers={"Authorization": f"Bearer {TOKEN}"})).status == 404


async def test_probes_answer_without_a_token() -> None:
    async with _client() as client:
        for path in ("/healthz", "/readyz"):
            assert (await client.get(path)).status == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.7", "association-store"])
def test_a_network_facing_store_without_a_token_is_refused(host: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(http_host=host)
    [error] = caught.value.errors()
    assert "ASSOCIATION_STORE_API_TOKEN" in error["msg"]
    assert Settings(http_host=host, api_token=SecretStr(TOKEN)).api_token == SecretStr(TOKEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_store_may_run_without_a_token(host: str) -> None:
    assert Settings(http_host=host).api_token is None


@pytest.mark.parametrize("token", ["short", "change-me-change-me-change-me-change-me", "a" * 40])
def test_a_weak_token_is_refused_without_echoing_it(token: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(api_token=SecretStr(token))
    assert token not in str(caught.value)


def test_the_token_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSOCIATION_STORE_API_TOKEN", TOKEN)
    monkeypatch.setenv("ASSOCIATION_STORE_HTTP_HOST", "0.0.0.0")
    settings = Settings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)


def test_the_process_refuses_to_listen_on_the_network_without_a_token(tmp_path: Path) -> None:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("ASSOCIATION_STORE_")}
    env = inherited | {
        "ASSOCIATION_STORE_TENANTS_FILE": str(TENANTS_FILE),
        "ASSOCIATION_STORE_HTTP_HOST": "0.0.0.0",
        "ASSOCIATION_STORE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/store.db",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "relay_association_store"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode != 0
    assert "association-store: invalid settings" in result.stderr
    assert "ASSOCIATION_STORE_API_TOKEN" in result.stderr
