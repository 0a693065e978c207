"""``relay trigger`` against a small stub of the ingest API: the request it makes, the table, the errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from typer.testing import CliRunner, Result

from relay_cli.main import app
from relay_cli.trigger import TriggerFailedError, api_error_message, trigger_integrations
from relay_devservers.processes import free_port

SECRET_KEY = "sk-live-do-not-print-0123456789"


@dataclass
class ApiStub:
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 202
    answer: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


@pytest.fixture
async def api_stub() -> AsyncIterator[ApiStub]:
    stub = ApiStub()

    async def trigger(request: web.Request) -> web.Response:
        stub.requests.append(
            {"authorization": request.headers.get("Authorization"), "query": dict(request.query)}
            | {"body": await request.json()}
        )
        return web.json_response(stub.answer, status=stub.status, headers=stub.headers)

    app_ = web.Application()
    app_.router.add_post("/api/v2/integrations/trigger", trigger)
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


def _triggers(*entries: tuple[str, str | None, str | None, str | None, list[str]]) -> dict[str, Any]:
    triggers = [
        {
            "triggerId": f"trig-{n}",
            "feed": "order" if order_id else "recipe",
            "recipeId": recipe_id,
            "orderId": order_id,
            "orderNumber": order_number,
            "itemId": item_id,
            "integrationIds": ids,
        }
        for n, (recipe_id, order_id, order_number, item_id, ids) in enumerate(entries)
    ]
    return {"triggered": len(triggers), "triggers": triggers}


async def test_trigger_by_order_number_posts_the_criterion_with_the_key_and_prints_a_table(api_stub: ApiStub) -> None:
    api_stub.answer = _triggers(
        ("999-63CHGJokGoxPfSba", "6182665224482", "1022", "line-1", ["email-ops", "sftp-plant"]),
        ("999-Second", "6182665224482", "1022", "line-2", ["email-ops"]),
    )
    result = await _relay(
        ["trigger", "--order-number", "1022", "--integration", "email-ops", "--integration", "sftp-plant"],
        env={"RELAY_API_URL": api_stub.url, "RELAY_API_KEY": SECRET_KEY},
    )
    assert result.exit_code == 0, result.output
    (request,) = api_stub.requests
    assert request["body"] == {"orderNumber": "1022", "integrationIds": ["email-ops", "sftp-plant"]}
    assert request["authorization"] == f"Bearer {SECRET_KEY}"
    assert request["query"] == {}, "the key never goes into the URL"
    lines = result.output.splitlines()
    assert lines[0].split() == ["TRIGGER", "FEED", "RECIPE", "ORDER", "NO", "ORDER", "ID", "ITEM", "INTEGRATIONS"]
    assert lines[2].split() == [
        "trig-0",
        "order",
        "999-63CHGJokGoxPfSba",
        "1022",
        "6182665224482",
        "line-1",
        "email-ops,sftp-plant",
    ]
    assert "2 trigger(s) published" in result.output
    assert SECRET_KEY not in result.output


async def test_trigger_by_recipe_id_with_the_api_option_and_key_option(api_stub: ApiStub) -> None:
    api_stub.answer = _triggers(("999-R", None, None, None, ["raw-feed"]))
    result = await _relay(["trigger", "--recipe-id", "999-R", "--api", api_stub.url, "--api-key", SECRET_KEY])
    assert result.exit_code == 0, result.output
    assert api_stub.requests[-1]["body"] == {"recipeId": "999-R"}
    assert "recipe  999-R" in result.output
    assert SECRET_KEY not in result.output


async def test_api_error_exits_non_zero_with_the_apis_message(api_stub: ApiStub) -> None:
    api_stub.status = 400
    api_stub.answer = {
        "error": "invalid_integrations",
        "message": "1 unusable integration ID(s)",
        "problems": [{"pointer": "/integrationIds/0", "message": "not an enabled integration of this tenant"}],
    }
    result = await _relay(
        ["trigger", "--order-id", "X", "--integration", "nope"],
        env={"RELAY_API_URL": api_stub.url, "RELAY_API_KEY": SECRET_KEY},
    )
    assert result.exit_code == 1
    assert "HTTP 400 invalid_integrations: 1 unusable integration ID(s)" in result.output
    assert "/integrationIds/0: not an enabled integration of this tenant" in result.output
    assert SECRET_KEY not in result.output


async def test_unavailable_api_message_carries_retry_after(api_stub: ApiStub) -> None:
    api_stub.status = 503
    api_stub.headers = {"Retry-After": "2"}
    api_stub.answer = {"error": "unavailable", "message": "event broker unavailable: not connected; try again later"}
    with pytest.raises(TriggerFailedError, match=r"HTTP 503 unavailable: .*; retry after 2 s"):
        await trigger_integrations(api_stub.url, SECRET_KEY, "orderNumber", "1")


async def test_unreachable_api_exits_non_zero_without_printing_the_key() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = await _relay(["trigger", "--order-number", "1"], env={"RELAY_API_URL": url, "RELAY_API_KEY": SECRET_KEY})
    assert result.exit_code == 1
    assert f"cannot reach the API at {url}" in result.output
    assert SECRET_KEY not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["trigger"],
        ["trigger", "--order-number", "1", "--order-id", "2"],
        ["trigger", "--order-number", "1", "--recipe-id", "999-x"],
    ],
)
async def test_exactly_one_criterion_is_required(api_stub: ApiStub, args: list[str]) -> None:
    result = await _relay(args, env={"RELAY_API_URL": api_stub.url, "RELAY_API_KEY": SECRET_KEY})
    assert result.exit_code == 2
    assert "exactly one of --order-number, --order-id or --recipe-id" in result.output
    assert api_stub.requests == []


async def test_missing_api_key_is_a_usage_error(api_stub: ApiStub) -> None:
    result = await _relay(["trigger", "--order-number", "1", "--api", api_stub.url], env={"RELAY_API_KEY": ""})
    assert result.exit_code == 2
    assert "RELAY_API_KEY" in result.output
    assert api_stub.requests == []


def test_error_message_without_a_json_body_names_the_status() -> None:
    assert api_error_message(502, "<html>bad gateway</html>") == "HTTP 502: the API answered without a JSON error body"
    assert api_error_message(404, json.dumps({"error": "not_found", "message": "no order or recipe matches"})) == (
        "HTTP 404 not_found: no order or recipe matches"
    )
