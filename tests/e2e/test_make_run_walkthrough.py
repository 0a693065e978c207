"""`make run`'s stack (``relay dev``) brought up as a user would, driven through the README walk-through."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay_testing.processes import free_port, wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PII = ("Jane Q. Customer", "jane.customer@example.com", "4111 1111 1111 1111", "221B Baker Street")
RECIPE_ID = "999-63CHGJokGoxPfSba"


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    api: str
    var: Path
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    var = tmp_path_factory.mktemp("var")
    log = var / "relay-dev.out"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"KAFKA_BOOTSTRAP_SERVERS", "OTEL_EXPORTER_OTLP_ENDPOINT"}}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "relay_cli", "dev", "--port", str(port), "--var", str(var)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    running = RunningStack(process, f"http://127.0.0.1:{port}", var, log)
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"relay dev exited early:\n{running.output()[-4000:]}")
            return "Recipe Relay is up" in running.output()

        wait_until(up, timeout=120, what="relay dev to report the suite is up", interval=0.2)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


async def _orders(http: aiohttp.ClientSession, api: str, **query: str) -> list[dict[str, Any]]:
    async with http.get(f"{api}/api/v2/orders", params=query, headers={"Authorization": "Bearer demo-key"}) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
        orders: list[dict[str, Any]] = body["orders"]
        return orders


async def _eventually(check: Any, *, within: float = 60.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s; last result {result!r}")
        await asyncio.sleep(0.2)


async def test_readme_walkthrough_saves_links_updates_and_looks_up(
    stack: RunningStack, http: aiohttp.ClientSession
) -> None:
    api = stack.api
    recipe = {
        "id": RECIPE_ID, "created": "2026-11-20T10:00:00Z", "name": "Engraved Mug", "styleCode": "MUG-11",
        "components": [{"name": "Front", "code": "front", "component": {"code": "engraving", "sku": "ENG-1"}}],
    }
    async with http.post(f"{api}/api/v2/recipes", json=recipe, headers={"Authorization": "Bearer demo-key"}) as r:
        assert r.status == 201, await r.text()
        saved = await r.json()
    assert saved["id"] == RECIPE_ID
    assert saved["url"].endswith(f"/recipe/{RECIPE_ID}.json")

    async with http.get(f"{api}/recipe/{RECIPE_ID}.json") as r:
        assert r.status == 200
        assert (await r.json())["name"] == "Engraved Mug"

    association = [{
        "recipeId": RECIPE_ID, "orderNumber": "1022", "orderId": "6182665224482", "itemId": "2222222222222",
        "itemQuantity": 2, "customerName": PII[0], "email": PII[1], "card": PII[2], "shippingAddress": PII[3],
    }]
    async with http.post(f"{api}/api/v2/recipe/order", params={"apikey": "demo-key"}, json=association) as r:
        assert r.status == 202, await r.text()
        assert await r.json() == {"accepted": 1, "droppedFields": 4}

    async def linked() -> list[dict[str, Any]]:
        return await _orders(http, api, orderNumber="1022")

    orders = await _eventually(linked)
    assert orders[0]["orderId"] == "6182665224482"
    assert orders[0]["items"] == [{"recipeId": RECIPE_ID, "itemId": "2222222222222", "itemQuantity": 2}]

    update = [{
        "type": "updated", "orderId": "6182665224482", "orderNumber": "1022", "occurredAt": "2099-01-01T00:00:00Z",
        "items": [{"recipeId": RECIPE_ID, "itemId": "2222222222222", "itemQuantity": 3}],
    }]
    async with http.post(f"{api}/api/v2/orders/events", json=update, headers={"Authorization": "Bearer demo-key"}) as r:
        assert r.status == 202, await r.text()

    async def updated() -> bool:
        found = await _orders(http, api, recipeId=RECIPE_ID)
        return bool(found) and found[0]["items"][0]["itemQuantity"] == 3

    await _eventually(updated)

    # No PII anywhere the suite keeps or prints: the data directory (database, objects) and every log line.
    for path in [p for p in stack.var.rglob("*") if p.is_file()]:
        data = path.read_bytes()
        for text in PII:
            assert text.encode() not in data, f"{text!r} found in {path}"


def test_ctrl_c_stops_every_process(stack: RunningStack) -> None:
    pids = [int(m) for m in re.findall(r"started [\w-]+ \(pid (\d+)\)", stack.output())]
    assert len(pids) >= 3, "expected the broker and at least two services to have been started"
    assert all(_alive(pid) for pid in pids)
    os.killpg(stack.process.pid, signal.SIGINT)
    assert stack.process.wait(timeout=60) == 0
    wait_until(lambda: not any(_alive(pid) for pid in pids), timeout=30, what="every process of the stack to exit")
    assert stack.output().rstrip().endswith("stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
