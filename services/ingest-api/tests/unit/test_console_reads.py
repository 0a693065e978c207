"""The console's read routes (``GET /api/v2/orders/recent``, ``/api/v2/deliveries/failed``, ``/api/v2/integrations``)
on in-memory ports: what reaches the association store (always the key's tenant), what is answered, and every bad
parameter refused with a 400 naming it. Fast: no broker, no association store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import TENANTS_FILE, World, order

from relay_contracts.internal_api import DeliveriesPage, IntegrationCounts, IntegrationStats
from relay_ingest_api import handlers
from relay_ingest_api.adapters.association_store import RefusedQueryError
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_platform.errors import TransientError
from relay_testing.shared_secrets import link_settings

Client = TestClient[web.Request, web.Application]

DEMO = {"Authorization": "Bearer demo-writer"}
DEMO_READER = {"Authorization": "Bearer demo-reader"}  # recipes:read only
ACME = {"Authorization": "Bearer acme-orders-only"}
RECENT = "/api/v2/orders/recent"
FAILED = "/api/v2/deliveries/failed"
INTEGRATIONS = "/api/v2/integrations"
ROUTES = [RECENT, FAILED, INTEGRATIONS]

FAILED_DELIVERY = {
    "deliveryId": "d1",
    "orderId": "o1",
    "orderNumber": "1001",
    "recipeId": "999-a",
    "integration": "demo-email",
    "type": "email",
    "trigger": "order_linked",
    "status": "failed",
    "final": True,
    "attempts": 3,
    "lastError": "550 mailbox unavailable",
    "updatedAt": "2026-12-01T10:00:00.000Z",
    "futureField": "kept",
}
# What tests/tenants.yaml holds for demo's integrations beyond what an operator may see.
SECRET_BITS = ["ops@example.com", "off@example.com", "hooks.example.com", "/catch/"]


@pytest.fixture
def world() -> World:
    world = World().with_orders([order("o1", ("999-a", "i1"))])
    world.associations.failed = DeliveriesPage.model_validate({"deliveries": [FAILED_DELIVERY], "next": "c2"})
    return world


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    app = web.Application(middlewares=[error_middleware(None)])
    app[SETTINGS] = Settings(tenants_file=TENANTS_FILE, links=link_settings(public_base_url="http://relay.test"))
    app[PORTS] = world.ports
    app.add_routes(handlers.routes)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _refused(client: Client, path: str, params: Any, headers: dict[str, str] = DEMO) -> dict[str, Any]:
    response = await client.get(path, params=params, headers=headers)
    assert response.status == 400, await response.text()
    body: dict[str, Any] = await response.json()
    assert body["error"] == "invalid_query"
    return body


def _pointers(body: dict[str, Any]) -> list[str]:
    return [problem["pointer"] for problem in body["problems"]]


# --- recent orders -----------------------------------------------------------------------------------------------


async def test_recent_orders_relay_the_stores_page_for_the_keys_tenant(client: Client, world: World) -> None:
    response = await client.get(RECENT, headers=DEMO)
    assert response.status == 200
    assert response.content_type == "application/json"
    assert await response.read() == world.associations.pages[0].model_dump_json().encode()
    assert world.associations.recent_calls == [{"tenant": "demo", "limit": 25, "after": None}]


async def test_recent_orders_pass_limit_and_cursor_through(client: Client, world: World) -> None:
    cursor = "MjAyNi0xMi0wMVQxMDowMDowMFp8bzE=|ordre-été"  # opaque; non-ASCII but printable is taken
    response = await client.get(RECENT, params={"limit": "100", "after": cursor, "tenant": "acme"}, headers=DEMO)
    assert response.status == 200
    # ``tenant=acme`` in the query changes nothing: the tenant is the key's.
    assert world.associations.recent_calls == [{"tenant": "demo", "limit": 100, "after": cursor}]


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"limit": "0"}, "/limit"),
        ({"limit": "101"}, "/limit"),
        ({"limit": ""}, "/limit"),
        ({"limit": "+5"}, "/limit"),
        ({"limit": "-1"}, "/limit"),
        ({"limit": "1e2"}, "/limit"),
        ({"limit": "5.0"}, "/limit"),
        ({"limit": "\uff15"}, "/limit"),  # fullwidth 5
        ({"limit": "\u0663"}, "/limit"),  # Arabic-Indic 3
        ({"limit": "9" * 5000}, "/limit"),
        ({"after": ""}, "/after"),
        ({"after": "x" * 513}, "/after"),
        ({"after": "a\x00b"}, "/after"),
        ({"after": "a\x1b[31m"}, "/after"),
        ({"after": "a\x85b"}, "/after"),  # C1 control
        ({"after": "abc\u202edcba"}, "/after"),  # right-to-left override
        ({"after": "a\u200bb"}, "/after"),  # zero-width space
        ({"after": "a\ufeffb"}, "/after"),  # zero-width no-break space
        ({"after": "a\ufffdb"}, "/after"),  # what a bad percent-encoding decodes to
        ([("limit", "5"), ("limit", "50")], "/limit"),
        ([("after", "a"), ("after", "b")], "/after"),
    ],
)
async def test_recent_orders_refuse_a_bad_parameter_by_name(
    client: Client, world: World, params: Any, pointer: str
) -> None:
    body = await _refused(client, RECENT, params)
    assert _pointers(body) == [pointer]
    assert world.associations.recent_calls == [], "nothing reaches the store"


async def test_a_cursor_of_512_characters_is_taken(client: Client, world: World) -> None:
    response = await client.get(RECENT, params={"after": "x" * 512}, headers=DEMO)
    assert response.status == 200
    assert world.associations.recent_calls[0]["after"] == "x" * 512


async def test_a_bad_percent_encoding_in_the_cursor_is_refused(client: Client) -> None:
    response = await client.get(f"{RECENT}?after=%ED%A0%80", headers=DEMO)
    assert response.status == 400
    assert _pointers(await response.json()) == ["/after"]


async def test_a_cursor_the_store_refuses_is_a_400_naming_after(client: Client, world: World) -> None:
    world.associations.error = RefusedQueryError("association store answered 400: after is not a cursor")
    body = await _refused(client, RECENT, {"after": "forged"})
    assert _pointers(body) == ["/after"]
    assert "forged" not in json.dumps(body)


async def test_a_store_refusal_without_a_cursor_is_the_stores_fault(client: Client, world: World) -> None:
    world.associations.error = RefusedQueryError("association store answered 400: limit")
    response = await client.get(RECENT, headers=DEMO)
    assert response.status == 502
    assert (await response.json())["error"] == "upstream_error"


# --- failed deliveries -------------------------------------------------------------------------------------------


async def test_failed_deliveries_relay_the_stores_final_failures(client: Client, world: World) -> None:
    response = await client.get(FAILED, headers=DEMO)
    assert response.status == 200
    body = await response.json()
    assert body["deliveries"][0]["deliveryId"] == "d1"
    assert body["deliveries"][0]["futureField"] == "kept", "fields this version does not name are relayed"
    assert body["next"] == "c2"
    assert world.associations.delivery_calls == [
        {
            "tenant": "demo",
            "status": "failed",
            "integration": None,
            "since": None,
            "until": None,
            "limit": 25,
            "after": None,
        }
    ]


async def test_failed_deliveries_filter_by_integration_and_window(client: Client, world: World) -> None:
    params = {
        "integrationId": "demo-off",  # disabled, still the tenant's: its old failures are listable
        "since": "2026-12-01T10:00:00+02:00",
        "until": "2026-12-01T10:00:00Z",
        "limit": "7",
        "after": "c2",
    }
    response = await client.get(FAILED, params=params, headers=DEMO)
    assert response.status == 200
    [call] = world.associations.delivery_calls
    assert call["tenant"] == "demo"
    assert call["integration"] == "demo-off"
    assert call["since"] == datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert call["until"] == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert (call["limit"], call["after"]) == (7, "c2")


async def test_since_equal_to_until_is_taken(client: Client) -> None:
    instant = "2026-12-01T10:00:00Z"
    response = await client.get(FAILED, params={"since": instant, "until": instant}, headers=DEMO)
    assert response.status == 200


@pytest.mark.parametrize(
    ("params", "pointer"),
    [
        ({"integrationId": "../x"}, "/integrationId"),
        ({"integrationId": "no-such"}, "/integrationId"),
        ({"integrationId": ""}, "/integrationId"),
        ({"integrationId": "Demo-Email"}, "/integrationId"),
        ({"integrationId": "demo-email\u200b"}, "/integrationId"),
        ({"integrationId": "demo-email\n"}, "/integrationId"),
        ({"integrationId": "x" * 1000}, "/integrationId"),
        ({"since": "2026-13-45T10:00:00Z"}, "/since"),
        ({"since": "2026-02-30T10:00:00Z"}, "/since"),
        ({"since": "2026-12-01T10:00:00"}, "/since"),  # naive: no offset
        ({"since": "2026-12-01"}, "/since"),
        ({"since": "1733047200"}, "/since"),
        ({"since": "yesterday"}, "/since"),
        ({"since": ""}, "/since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "/since"),  # before year 1 in UTC
        ({"since": "\uff12026-12-01T10:00:00Z"}, "/since"),
        ({"until": "2026-12-01T25:00:00Z"}, "/until"),
        ({"until": "2026-12-01T10:00:00+24:00"}, "/until"),
        ({"since": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}, "/since"),
        ({"limit": "0"}, "/limit"),
        ({"limit": "\uff15"}, "/limit"),
        ({"after": "x" * 513}, "/after"),
        ({"after": "a\u202eb"}, "/after"),
        ([("integrationId", "demo-email"), ("integrationId", "demo-raw")], "/integrationId"),
        ([("since", "2026-12-01T10:00:00Z"), ("since", "2026-12-01T11:00:00Z")], "/since"),
    ],
)
async def test_failed_deliveries_refuse_a_bad_parameter_by_name(
    client: Client, world: World, params: Any, pointer: str
) -> None:
    body = await _refused(client, FAILED, params)
    assert _pointers(body) == [pointer]
    assert world.associations.delivery_calls == [], "nothing reaches the store"


async def test_every_bad_parameter_is_named_at_once(client: Client) -> None:
    params = {"integrationId": "../x", "since": "garbage", "until": "2026-12-01T10:00:00", "limit": "x", "after": ""}
    body = await _refused(client, FAILED, params)
    assert _pointers(body) == ["/integrationId", "/since", "/until", "/limit", "/after"]


async def test_another_tenants_integration_looks_like_no_integration(client: Client, world: World) -> None:
    # acme-email is acme's: demo's key is told exactly what it is told for an ID nobody has.
    theirs = await _refused(client, FAILED, {"integrationId": "acme-email"})
    nobodys = await _refused(client, FAILED, {"integrationId": "nobody-has-this"})
    assert theirs == nobodys
    assert world.associations.delivery_calls == []


async def test_a_second_tenant_lists_only_its_own_failures(client: Client, world: World) -> None:
    response = await client.get(FAILED, params={"integrationId": "acme-email"}, headers=ACME)
    assert response.status == 200
    assert [(c["tenant"], c["integration"]) for c in world.associations.delivery_calls] == [("acme", "acme-email")]
    body = await _refused(client, FAILED, {"integrationId": "demo-email"}, headers=ACME)
    assert _pointers(body) == ["/integrationId"]


async def test_a_failed_list_cursor_the_store_refuses_is_a_400_naming_after(client: Client, world: World) -> None:
    world.associations.error = RefusedQueryError("association store answered 400")
    body = await _refused(client, FAILED, {"after": "stale"})
    assert _pointers(body) == ["/after"]


# --- integrations ------------------------------------------------------------------------------------------------


async def test_integrations_merge_the_config_with_the_stores_counts(client: Client, world: World) -> None:
    world.associations.counts = [
        IntegrationCounts(
            integration="demo-email",
            succeeded=5,
            failed=2,
            retrying=1,
            pending=3,
            last_success_at="2026-12-01T09:00:00.000Z",
            last_failure_at="2026-12-01T10:00:00.000Z",
        ),
        # Counted, but no longer configured: not listed.
        IntegrationCounts(integration="removed-long-ago", succeeded=9),
    ]
    response = await client.get(INTEGRATIONS, headers=DEMO)
    assert response.status == 200
    body = await response.json()
    assert world.associations.stats_calls == [{"tenant": "demo", "since_s": 24 * 3600}]
    assert [i["id"] for i in body["integrations"]] == ["demo-email", "demo-raw", "demo-both", "demo-off"]
    email, raw, _, off = body["integrations"]
    assert email == {
        "id": "demo-email",
        "type": "email",
        "description": "",
        "feeds": ["order"],
        "enabled": True,
        "counts": {"succeeded": 5, "failed": 2, "retrying": 1, "pending": 3},
        "windowHours": 24,
        "lastSuccessAt": "2026-12-01T09:00:00.000Z",
        "lastFailureAt": "2026-12-01T10:00:00.000Z",
        # Never paused or resumed: active, no change to show.
        "state": "active",
        "stateChangedAt": None,
        "stateReason": None,
        "stateCause": "operator",
        "stateChangedBy": None,
    }
    assert raw["type"] == "zapier"
    assert raw["feeds"] == ["recipe"]
    assert raw["counts"] == {"succeeded": 0, "failed": 0, "retrying": 0, "pending": 0}
    assert (raw["lastSuccessAt"], raw["lastFailureAt"]) == (None, None)
    assert off["enabled"] is False


async def test_integrations_never_show_hosts_addresses_or_secrets(client: Client) -> None:
    response = await client.get(INTEGRATIONS, headers=DEMO)
    text = await response.text()
    for bit in SECRET_BITS:
        assert bit not in text
    expected = {"id", "type", "description", "feeds", "enabled", "counts", "windowHours", "lastSuccessAt"}
    for integration in json.loads(text)["integrations"]:
        assert set(integration) == expected | {
            "lastFailureAt", "state", "stateChangedAt", "stateReason", "stateCause", "stateChangedBy",
        }  # fmt: skip


async def test_integrations_take_the_window_in_hours(client: Client, world: World) -> None:
    for hours in ("1", "2160", "048"):
        response = await client.get(INTEGRATIONS, params={"hours": hours}, headers=DEMO)
        assert response.status == 200
        assert {i["windowHours"] for i in (await response.json())["integrations"]} == {int(hours)}
    assert [c["since_s"] for c in world.associations.stats_calls] == [3600, 2160 * 3600, 48 * 3600]


@pytest.mark.parametrize(
    "hours", ["0", "2161", "", "-1", "+5", "1.5", "1e2", "\u0663", "\uff13", "24h", "9" * 5000, " 24"]
)
async def test_integrations_refuse_a_bad_window(client: Client, world: World, hours: str) -> None:
    body = await _refused(client, INTEGRATIONS, {"hours": hours})
    assert _pointers(body) == ["/hours"]
    assert world.associations.stats_calls == []


async def test_a_second_tenant_sees_only_its_own_integrations(client: Client, world: World) -> None:
    world.associations.counts = [IntegrationCounts(integration="acme-email", failed=4)]
    response = await client.get(INTEGRATIONS, headers=ACME)
    assert response.status == 200
    body = await response.json()
    assert [i["id"] for i in body["integrations"]] == ["acme-email"]
    assert body["integrations"][0]["counts"]["failed"] == 4
    assert "demo" not in json.dumps(body)
    assert world.associations.stats_calls == [{"tenant": "acme", "since_s": 24 * 3600}]


async def test_a_tenant_without_integrations_gets_an_empty_list(client: Client) -> None:
    response = await client.get(INTEGRATIONS, headers={"Authorization": "Bearer demo-throttled"})
    assert response.status == 200
    assert await response.json() == {"integrations": []}


async def test_counts_over_another_window_are_the_stores_fault(client: Client, world: World) -> None:
    async def other_window(tenant: str, *, since_s: int) -> IntegrationStats:
        return IntegrationStats(window_s=since_s + 1, integrations=[])

    world.associations.integration_stats = other_window  # type: ignore[method-assign]
    response = await client.get(INTEGRATIONS, headers=DEMO)
    assert response.status == 502
    assert (await response.json())["error"] == "upstream_error"


async def test_an_integration_counted_twice_is_the_stores_fault(client: Client, world: World) -> None:
    world.associations.counts = [IntegrationCounts(integration="demo-email")] * 2
    response = await client.get(INTEGRATIONS, headers=DEMO)
    assert response.status == 502


# --- every route -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ROUTES)
async def test_a_key_is_required(client: Client, world: World, path: str) -> None:
    response = await client.get(path)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response = await client.get(path, headers={"Authorization": "Bearer not-a-key"})
    assert response.status == 401
    calls = world.associations
    assert calls.recent_calls == calls.delivery_calls == calls.stats_calls == []


@pytest.mark.parametrize("path", ROUTES)
async def test_order_tracking_is_required(client: Client, world: World, path: str) -> None:
    response = await client.get(path, headers=DEMO_READER)
    assert response.status == 403
    assert "order-tracking" in (await response.json())["message"]
    calls = world.associations
    assert calls.recent_calls == calls.delivery_calls == calls.stats_calls == []


@pytest.mark.parametrize("path", ROUTES)
async def test_the_key_is_checked_before_the_parameters(client: Client, path: str) -> None:
    response = await client.get(path, params={"limit": "x", "hours": "x"}, headers=DEMO_READER)
    assert response.status == 403


@pytest.mark.parametrize("path", ROUTES)
async def test_an_unreachable_store_is_503_with_retry_after(client: Client, world: World, path: str) -> None:
    world.associations.error = TransientError("association store unreachable", retry_after_s=3)
    response = await client.get(path, headers=DEMO)
    assert response.status == 503
    assert response.headers["Retry-After"] == "3"
    assert (await response.json())["error"] == "unavailable"


@pytest.mark.parametrize("path", ROUTES)
async def test_the_api_key_in_the_query_is_no_parameter_of_the_list(client: Client, path: str) -> None:
    response = await client.get(path, params={"apikey": "demo-writer"})
    assert response.status == 200
