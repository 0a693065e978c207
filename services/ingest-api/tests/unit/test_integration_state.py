"""``POST /api/v2/integrations/{integrationId}/pause`` and ``/resume`` on in-memory ports: admin only, the caller's
tenant's integrations only (404 alike for another tenant's and for none), the optional reason checked, the one
``IntegrationStateChanged`` published on ``integrations.control.v1`` with its key; and the overview's state merge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from ingest_fakes import TENANTS_FILE, World

from relay_contracts.internal_api import IntegrationStateEntry
from relay_contracts.messages import IntegrationStateChanged, integration_key
from relay_contracts.topics import INTEGRATIONS_CONTROL
from relay_ingest_api import handlers
from relay_ingest_api.middleware import error_middleware
from relay_ingest_api.settings import Settings
from relay_ingest_api.state import PORTS, SETTINGS
from relay_testing.shared_secrets import link_settings

Client = TestClient[web.Request, web.Application]

ADMIN = {"Authorization": "Bearer demo-admin"}
WRITER = {"Authorization": "Bearer demo-writer"}  # integrations:trigger, not admin
ACME = {"Authorization": "Bearer acme-writer"}


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
async def client(world: World) -> AsyncIterator[Client]:
    app = web.Application(middlewares=[error_middleware(None)])
    app[SETTINGS] = Settings(tenants_file=TENANTS_FILE, links=link_settings(public_base_url="http://relay.test"))
    app[PORTS] = world.ports
    app.add_routes(handlers.routes)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def published(world: World) -> list[IntegrationStateChanged]:
    assert {record.topic for record in world.publisher.published} <= {INTEGRATIONS_CONTROL}
    changes = [record.message for record in world.publisher.published]
    assert all(isinstance(change, IntegrationStateChanged) for change in changes)
    return [change for change in changes if isinstance(change, IntegrationStateChanged)]


async def test_a_pause_publishes_one_state_change_keyed_by_the_integration(client: Client, world: World) -> None:
    before = datetime.now(UTC)
    response = await client.post(
        "/api/v2/integrations/demo-email/pause", json={"reason": "  hook down until 14:00 "}, headers=ADMIN
    )

    assert response.status == 202, await response.text()
    answer = await response.json()
    [change] = published(world)
    [record] = world.publisher.published
    assert record.key == integration_key("demo", "demo-email") == change.kafka_key
    assert (change.tenant, change.integration_id, change.state) == ("demo", "demo-email", "paused")
    assert (change.reason, change.changed_by) == ("hook down until 14:00", "admin")
    assert before <= change.changed_at <= datetime.now(UTC)
    assert answer == {
        "integrationId": "demo-email",
        "state": "paused",
        "changedAt": change.changed_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    }


async def test_resume_without_a_body_and_a_repeated_pause_are_each_a_change(client: Client, world: World) -> None:
    for path in ("pause", "pause", "resume"):
        response = await client.post(f"/api/v2/integrations/demo-off/{path}", headers=ADMIN)
        assert response.status == 202, await response.text()
    changes = published(world)
    assert [c.state for c in changes] == ["paused", "paused", "active"]
    assert len({c.event_id for c in changes}) == 3
    assert all(c.reason is None for c in changes)
    assert (await response.json())["state"] == "active"


@pytest.mark.parametrize("path", ["acme-email", "nobody", "DEMO-EMAIL", "demo-email%20"])
async def test_another_tenants_integration_is_a_404_like_one_nobody_has(
    client: Client, world: World, path: str
) -> None:
    response = await client.post(f"/api/v2/integrations/{path}/pause", json={"reason": "x"}, headers=ADMIN)

    assert response.status == 404
    assert await response.json() == {"error": "not_found", "message": "no such integration"}
    assert world.publisher.published == []


async def test_the_other_tenants_key_cannot_reach_demos_integration(client: Client, world: World) -> None:
    response = await client.post("/api/v2/integrations/demo-email/resume", headers=ACME)
    # acme-writer lacks admin: refused before the integration is even looked at.
    assert response.status == 403
    assert world.publisher.published == []


@pytest.mark.parametrize("path", ["pause", "resume"])
async def test_a_key_without_admin_is_refused(client: Client, world: World, path: str) -> None:
    response = await client.post(f"/api/v2/integrations/demo-email/{path}", headers=WRITER)
    assert response.status == 403
    assert "admin" in (await response.json())["message"]
    no_key = await client.post(f"/api/v2/integrations/demo-email/{path}")
    assert no_key.status == 401
    assert world.publisher.published == []


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ({"reason": "x" * 201}, "/reason"),
        ({"reason": "line one\nline two"}, "/reason"),
        ({"reason": "\u0000"}, "/reason"),
        ({"reason": 42}, "/reason"),
        ({"reason": "fine", "why": "extra"}, "/why"),
        ({"state": "paused"}, "/state"),
        (["reason"], ""),
    ],
)
async def test_a_bad_reason_or_an_extra_field_is_a_400_naming_it(
    client: Client, world: World, body: Any, pointer: str
) -> None:
    response = await client.post("/api/v2/integrations/demo-email/pause", json=body, headers=ADMIN)

    assert response.status == 400, await response.text()
    assert [p["pointer"] for p in (await response.json())["problems"]] == [pointer]
    assert world.publisher.published == []


async def test_malformed_json_is_a_400(client: Client, world: World) -> None:
    response = await client.post(
        "/api/v2/integrations/demo-email/pause",
        data=b"{reason:",
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert world.publisher.published == []


async def test_an_unavailable_broker_is_a_503_and_nothing_is_claimed(client: Client, world: World) -> None:
    world.publisher.connected = False
    response = await client.post("/api/v2/integrations/demo-email/pause", headers=ADMIN)
    assert response.status == 503
    assert "Retry-After" in response.headers


async def test_the_overview_shows_each_integrations_state_from_the_store(client: Client, world: World) -> None:
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    world.associations.states = [
        IntegrationStateEntry(integration="demo-email", state="paused", changed_at=since, reason="hook down"),
        IntegrationStateEntry(integration="demo-both", state="active", changed_at=since),
        # No longer configured: left out like its counts.
        IntegrationStateEntry(integration="gone", state="paused", changed_at=since),
    ]

    response = await client.get("/api/v2/integrations", headers=WRITER)

    assert response.status == 200, await response.text()
    shown = {
        i["id"]: (i["state"], i["stateChangedAt"], i["stateReason"]) for i in (await response.json())["integrations"]
    }
    assert shown == {
        "demo-email": ("paused", since, "hook down"),
        "demo-raw": ("active", None, None),
        "demo-both": ("active", since, None),
        "demo-off": ("active", None, None),
    }


async def test_the_overview_passes_why_and_by_whom_each_state_last_changed(client: Client, world: World) -> None:
    since = "2026-12-01T10:00:00.000Z"
    reason = "5 consecutive failed attempts; last: TransientError: connection refused"
    world.associations.states = [
        IntegrationStateEntry(
            integration="demo-email",
            state="paused",
            changed_at=since,
            reason=reason,
            cause="unhealthy",
            changed_by="destination-health",
        ),
        IntegrationStateEntry(
            integration="demo-both",
            state="active",
            changed_at=since,
            cause="recovered",
            changed_by="destination-health",
        ),
        # A store entry without them (an older replica's answer): an operator's change, by nobody named.
        IntegrationStateEntry.model_validate({"integration": "demo-off", "state": "paused", "changedAt": since}),
    ]

    response = await client.get("/api/v2/integrations", headers=WRITER)

    assert response.status == 200, await response.text()
    shown = {
        i["id"]: (i["state"], i["stateCause"], i["stateChangedBy"], i["stateReason"])
        for i in (await response.json())["integrations"]
    }
    assert shown == {
        "demo-email": ("paused", "unhealthy", "destination-health", reason),
        "demo-raw": ("active", "operator", None, None),
        "demo-both": ("active", "recovered", "destination-health", None),
        "demo-off": ("paused", "operator", None, None),
    }


async def test_an_integration_given_two_states_by_the_store_is_a_502(client: Client, world: World) -> None:
    at = "2026-12-01T10:00:00.000Z"
    world.associations.states = [
        IntegrationStateEntry(integration="demo-email", state="paused", changed_at=at),
        IntegrationStateEntry(integration="demo-email", state="active", changed_at=at),
    ]
    response = await client.get("/api/v2/integrations", headers=WRITER)
    assert response.status == 502
