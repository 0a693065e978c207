"""``relay audit`` against a small stub of the ingest API: the request, the table or JSON, and the exit status."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner, Result

from relay_cli.audit import AuditFailedError, fetch_audit
from relay_cli.main import app
from relay_devservers.processes import free_port

SECRET_KEY = "sk-admin-do-not-print-0123456789"
PENDING = {
    "deliveryId": "8a1f0c2e",
    "orderId": "6182665224482",
    "orderNumber": "1022",
    "recipeId": "999-63CHGJokGoxPfSba",
    "integration": "email-ops",
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
RETRYING = PENDING | {
    "deliveryId": "77b2",
    "orderId": None,
    "orderNumber": None,
    "integration": "sftp-plant",
    "type": "sftp",
    "trigger": "recipe_saved",
    "status": "retrying",
    "attempts": 2,
    "lastError": "ConnectionRefusedError: sftp.plant.example:22 refused",
    "lastChange": "2026-12-01T10:30:00.000Z",
    "reason": "retrying: ConnectionRefusedError: sftp.plant.example:22 refused",
}


@dataclass
class ApiStub:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    truncated: bool = False
    error: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
async def api_stub() -> AsyncIterator[ApiStub]:
    stub = ApiStub()

    async def audit(request: web.Request) -> web.Response:
        stub.requests.append({"authorization": request.headers.get("Authorization"), "query": dict(request.query)})
        if stub.status != 200:
            return web.json_response(stub.error, status=stub.status)
        return web.json_response(
            {
                "tenant": "demo",
                "olderThanS": 900,
                "cutoff": "2026-12-01T11:45:00.000Z",
                "limit": int(request.query["limit"]),
                "truncated": stub.truncated,
                "deliveries": stub.deliveries,
            }
        )

    app_ = web.Application()
    app_.router.add_get("/api/v2/admin/audit", audit)
    runner = web.AppRunner(app_)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    stub.url = f"http://{host}:{port}"
    yield stub
    await runner.cleanup()


async def _relay(args: Sequence[str], env: dict[str, str] | None = None) -> Result:
    # The command runs its own event loop (asyncio.run), so it runs in a thread beside the stub's loop.
    def invoke() -> Result:
        return CliRunner().invoke(app, list(args), env=env)

    return await asyncio.to_thread(invoke)


def _env(stub: ApiStub) -> dict[str, str]:
    return {"RELAY_API_URL": stub.url, "RELAY_API_KEY": SECRET_KEY}


async def test_nothing_stuck_exits_zero_after_asking_with_the_key_and_the_default_deadline(api_stub: ApiStub) -> None:
    result = await _relay(["audit"], env=_env(api_stub))
    assert result.exit_code == 0, result.output
    (request,) = api_stub.requests
    assert request["authorization"] == f"Bearer {SECRET_KEY}"
    assert request["query"] == {"olderThan": "15m", "limit": "100"}, "the key never goes into the URL"
    assert "0 delivery(ies) of tenant demo not ended within 15m" in result.output
    assert "LAST CHANGE" not in result.output
    assert SECRET_KEY not in result.output


async def test_listed_deliveries_print_a_table_with_the_reason_and_exit_one(api_stub: ApiStub) -> None:
    api_stub.deliveries = [PENDING, RETRYING]
    result = await _relay(["audit", "--older-than", "1h", "--limit", "5"], env=_env(api_stub))
    assert result.exit_code == 1, result.output
    assert api_stub.requests[-1]["query"] == {"olderThan": "1h", "limit": "5"}
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["LAST", "CHANGE", "ORDER", "NO"]
    assert lines[2].split()[:9] == [
        "2026-12-01T11:00:00.000Z",
        "1022",
        "6182665224482",
        "999-63CHGJokGoxPfSba",
        "email-ops",
        "email",
        "pending",
        "0",
        "8a1f0c2e",
    ]
    assert lines[2].endswith("no outcome yet since 2026-12-01T11:00:00Z")
    assert lines[3].split()[1:3] == ["-", "-"]  # raw recipe feed: no order
    assert lines[3].endswith("retrying: ConnectionRefusedError: sftp.plant.example:22 refused")
    assert "2 delivery(ies) of tenant demo not ended within 1h" in result.output
    assert SECRET_KEY not in result.output


async def test_json_prints_the_apis_answer_and_keeps_the_exit_status(api_stub: ApiStub) -> None:
    api_stub.deliveries = [RETRYING]
    api_stub.truncated = True
    result = await _relay(["audit", "--json", "--older-than", "0"], env=_env(api_stub))
    assert result.exit_code == 1, result.output
    document = json.loads(result.output)
    assert document["deliveries"] == [RETRYING]
    assert document["truncated"] is True
    api_stub.deliveries = []
    empty = await _relay(["audit", "--json"], env=_env(api_stub))
    assert empty.exit_code == 0
    assert json.loads(empty.output)["deliveries"] == []


async def test_a_truncated_page_says_so(api_stub: ApiStub) -> None:
    api_stub.deliveries = [PENDING]
    api_stub.truncated = True
    result = await _relay(["audit", "--limit", "1"], env=_env(api_stub))
    assert result.exit_code == 1
    assert "more not shown: raise --limit above 1" in result.output


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        (
            400,
            {
                "error": "invalid_query",
                "message": "1 invalid query parameter(s)",
                "problems": [{"pointer": "/olderThan", "message": "must be a duration such as 900, 15m"}],
            },
            "HTTP 400 invalid_query: 1 invalid query parameter(s) (/olderThan: must be a duration such as 900, 15m)",
        ),
        (
            403,
            {"error": "forbidden", "message": "this API key lacks the admin permission"},
            "HTTP 403 forbidden: this API key lacks the admin permission",
        ),
    ],
)
async def test_api_errors_exit_two_with_the_apis_message(
    api_stub: ApiStub, status: int, error: dict[str, Any], expected: str
) -> None:
    api_stub.status, api_stub.error = status, error
    result = await _relay(["audit", "--older-than", "soon"], env=_env(api_stub))
    assert result.exit_code == 2
    assert expected in result.output
    assert SECRET_KEY not in result.output


async def test_unreachable_api_exits_two_without_printing_the_key() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await _relay(["audit"], env={"RELAY_API_URL": url, "RELAY_API_KEY": SECRET_KEY})
    assert result.exit_code == 2
    assert f"cannot reach the API at {url}" in result.output
    assert SECRET_KEY not in result.output
    with pytest.raises(AuditFailedError, match="cannot reach"):
        await fetch_audit(url, SECRET_KEY, older_than="15m")


async def test_missing_api_key_is_a_usage_error(api_stub: ApiStub) -> None:
    result = await _relay(["audit", "--api", api_stub.url], env={"RELAY_API_KEY": ""})
    assert result.exit_code == 2
    assert "RELAY_API_KEY" in result.output
    assert api_stub.requests == []


async def test_an_unreadable_answer_is_an_error_not_an_empty_audit(api_stub: ApiStub) -> None:
    api_stub.deliveries = [{"no": "deliveryId"}]
    result = await _relay(["audit"], env=_env(api_stub))
    assert result.exit_code == 2
    assert "unreadable delivery" in result.output
