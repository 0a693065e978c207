"""``relay sync associations`` as an operator runs it (a subprocess) against the real ingest API and association
store on Tansu, with a tenant rate limit low enough (2 a second, burst 2) that the run meets 429s all the way.

(a) a CSV full of PII completes despite the 429s, the real API's 400 (another tenant's recipe) is mapped to its
lines, and the counts are right; (b) a second run sends nothing; (c) a run stopped by SIGINT halfway exits 130 and a
rerun completes, every order then found exactly once through ``GET /api/v2/orders``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import aiohttp
import pytest

from relay_cli.dev import DevStack
from relay_devservers.processes import free_port
from relay_platform.tenants import hash_api_key
from relay_testing.waits import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
API_KEY = "sync-stack-test-key-0123456789"
PREFIX = "314"
LINES = 300
BATCH = "30"
PII = ("Jane Q. Customer", "jane.customer@example.com", "+44 20 7946 0958")
TENANTS = f"""
tenants:
  history:
    recipe-prefix: "{PREFIX}"
    rate-limit: {{per-second: 2, burst: 2}}
    api-keys:
      - {{name: sync, sha256: "{hash_api_key(API_KEY)}", permissions: [order-tracking]}}
"""
# Environment the stack must not inherit from the developer's shell.
_UNINHERITED = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OBJECT_STORE_URL", "ASSOCIATION_STORE_DATABASE_URL")


@dataclass
class Stack:
    url: str
    dev: DevStack


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    var = tmp_path_factory.mktemp("sync-stack")
    tenants = var / "tenants.yaml"
    tenants.write_text(TENANTS)
    dev = DevStack(
        root=ROOT,
        var=var,
        api_port=free_port(),
        services=["association-store", "ingest-api"],
        demo=False,
        log_path=var / "stack.log",
        default_ports=False,
    )
    with mock.patch.dict(os.environ, clear=False):
        for name in _UNINHERITED:
            os.environ.pop(name, None)
        os.environ.update({"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "RELAY_TENANTS_FILE": str(tenants)})
        try:
            await dev.start()
            await dev.wait_ready(within_s=120)
        except BaseException:
            await dev.stop()
            raise
    try:
        yield Stack(f"http://127.0.0.1:{dev.api_port}", dev)
    finally:
        await dev.stop()


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


def _cli(stack: Stack, path: Path) -> list[str]:
    return [sys.executable, "-m", "relay_cli", "sync", "associations", str(path), "--batch", BATCH]


def _env(stack: Stack) -> dict[str, str]:
    return os.environ | {"RELAY_API_URL": stack.url, "RELAY_API_KEY": API_KEY, "PYTHONUNBUFFERED": "1"}


async def relay_sync(stack: Stack, path: Path, *, interrupt_when: Path | None = None) -> Run:
    """The real CLI; with ``interrupt_when``, one SIGINT once that state file shows progress (not completion)."""
    process = await asyncio.create_subprocess_exec(
        *_cli(stack, path), cwd=ROOT, env=_env(stack), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        if interrupt_when is not None:

            async def some_progress() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"the sync ended (exit {process.returncode}) before it could be interrupted")
                with contextlib.suppress(FileNotFoundError, ValueError):
                    state = json.loads(interrupt_when.read_text())
                    return bool(state["linesDone"] > 0 and not state["completed"])
                return False

            await eventually(some_progress, within=30, what="the sync to have confirmed a batch", interval=0.05)
            process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Run(process.returncode or 0, out.decode(), err.decode())


async def find_order(stack: Stack, order_number: str) -> list[dict[str, Any]]:
    """The orders with that number, once the association store has them (a 429 is waited out by polling)."""

    async def found() -> list[dict[str, Any]] | None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{stack.url}/api/v2/orders",
                params={"orderNumber": order_number},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as response,
        ):
            if response.status != 200:
                return None
            orders: list[dict[str, Any]] = (await response.json())["orders"]
            return orders or None

    return await eventually(found, within=30, what=f"order {order_number} in the association store", interval=0.3)


def _state(path: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(path.with_name(path.name + ".relay-sync.json").read_text())
    return state


async def test_a_csv_with_pii_completes_through_429s_and_a_second_run_sends_nothing(
    stack: Stack, tmp_path: Path
) -> None:
    foreign = {41, 200}  # another tenant's recipe: the real API's 400 points at these rows
    rows = [
        f"{'999' if n in foreign else PREFIX}-SyncMug,{PII[0]},A{n},,{n},{1 + n % 3},{PII[1]},{PII[2]}"
        for n in range(1, LINES + 1)
    ]
    path = tmp_path / "history.csv"
    path.write_text("recipeId,customerName,orderNumber,orderId,itemId,itemQuantity,email,phone\n" + "\n".join(rows))

    first = await relay_sync(stack, path)
    assert first.code == 0, first.stderr + first.stdout
    assert "HTTP 429 (retry 1 of 8)" in first.stderr, "the tenant's limit was met and waited out"
    assert f"lines read: {LINES + 1}" in first.stdout
    assert f"sent: {LINES - 2} in " in first.stdout
    assert f"accepted: {LINES - 2} this run; {LINES - 2} in all" in first.stdout
    assert "rejected: 2 in all (2 this run)" in first.stdout
    for n in sorted(foreign):
        # Line n + 1: the header is line 1.
        assert f"line {n + 1}: refused by the API: /recipeId: not a recipe of this tenant" in first.stdout
    assert "columns dropped, never sent: customerName, email, phone" in first.stdout
    for text in (first.stdout, first.stderr, path.with_name("history.csv.relay-sync.json").read_text()):
        assert all(value not in text for value in (*PII, API_KEY))
    assert _state(path)["completed"] is True

    second = await relay_sync(stack, path)
    assert second.code == 0, second.stderr
    assert "already completed" in second.stdout
    assert "nothing sent" in second.stdout
    assert "HTTP 429" not in second.stderr, "not one call was made"

    (order,) = await find_order(stack, "A7")
    assert order["items"] == [{"recipeId": f"{PREFIX}-SyncMug", "itemId": "7", "itemQuantity": 2}]


async def test_a_run_stopped_by_sigint_halfway_resumes_and_every_order_lands_once(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    lines = [
        json.dumps(
            {"recipeId": f"{PREFIX}-SyncMug", "orderNumber": f"B{n}", "orderId": f"ob{n}", "itemId": "1"}
            | {"itemQuantity": n % 5 + 1, "customer": {"name": PII[0], "email": PII[1]}}
        )
        for n in range(1, LINES + 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    state_file = path.with_name(path.name + ".relay-sync.json")

    stopped = await relay_sync(stack, path, interrupt_when=state_file)
    assert stopped.code == 130, stopped.stderr + stopped.stdout
    assert "Stopping after the current batch" in stopped.stderr
    done = _state(path)
    assert 0 < done["linesDone"] < LINES
    assert done["linesDone"] % int(BATCH) == 0, "stopped on a batch boundary, that batch confirmed"
    assert done["completed"] is False

    resumed = await relay_sync(stack, path)
    assert resumed.code == 0, resumed.stderr + resumed.stdout
    assert f"skipped, already done by an earlier run: {done['linesDone']}" in resumed.stdout
    assert f"sent: {LINES - done['linesDone']} in " in resumed.stdout
    assert f"{LINES} in all" in resumed.stdout
    final = _state(path)
    assert (final["sent"], final["accepted"], final["rejected"], final["completed"]) == (LINES, LINES, 0, True)

    boundary = done["linesDone"]
    for n in sorted({1, boundary - 1, boundary, boundary + 1, boundary + 2, LINES}):
        orders = await find_order(stack, f"B{n}")
        assert len(orders) == 1, orders
        assert orders[0]["orderId"] == f"ob{n}"
        assert orders[0]["items"] == [{"recipeId": f"{PREFIX}-SyncMug", "itemId": "1", "itemQuantity": n % 5 + 1}]
