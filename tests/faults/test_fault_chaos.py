"""Chaos (issue 8): hundreds of orders over HTTP while random services are SIGKILLed every few seconds during the
whole flow — sending, building, delivering, notifying — then every service and the broker killed at once and
started again.
Every accepted order ends delivered at both destinations: 0 lost, 0 stuck, nothing left unfinished.

The counts and times go to stdout (``pytest -s``) for the closing note of a change that touches the flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay_devservers.seaweedfs import SeaweedS3

sys.path.insert(0, str(Path(__file__).parent))
from fault_harness import Rig, new_recipe_id, order_line, running_rig

pytestmark = pytest.mark.integration

TENANT = "chaos"
INTEGRATIONS = ("chaos-hook", "chaos-s3")
ORDERS = 200
BATCH = 10
SEND_EVERY_S = 0.75  # the OMS's pace: the orders arrive over 15 s, through the kills (the second is the API's)
CHAOS_MAX_S = 90.0  # kills go on until a third of the orders are through, or this long
RECIPES = 3  # the lookup answers at most 100 orders per recipe
KILL_EVERY_S = 5.0
# Every service whose process can die mid-work; the ingest API too (its clients resend until accepted).
VICTIMS = (
    "ingest-api",
    "association-store",
    "bundle-builder",
    "deliver-zapier",
    "deliver-s3",
    "retry",
    "notifier",
)


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedS3) -> AsyncIterator[Rig]:
    async with running_rig(tmp_path_factory.mktemp("faults-chaos"), seaweedfs, durable_broker=True) as running:
        yield running


async def send_until_accepted(rig: Rig, lines: list[dict[str, Any]], *, within: float = 180.0) -> int:
    """What a careful OMS does: resend the same batch until it is accepted (it is idempotent). Returns tries."""
    deadline = time.monotonic() + within
    tries = 0
    while True:
        tries += 1
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            status, _, body = await rig.api.link(TENANT, lines)
            if status == 202:
                assert body["accepted"] == len(lines), body
                return tries
            assert status in {429, 502, 503}, (status, body)
        if time.monotonic() > deadline:
            raise AssertionError(f"batch not accepted within {within:g}s")
        await asyncio.sleep(0.5)


async def api_answers(rig: Rig) -> bool:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with rig.api.session.get(f"{rig.api.base}/readyz") as response:
            return response.status == 200
    return False


async def orders_of(rig: Rig, recipe_id: str) -> list[dict[str, Any]] | None:
    """The recipe's orders, or ``None`` while the lookup is down (its service is being killed and restarted)."""
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        async with rig.api.session.get(
            f"{rig.api.base}/api/v2/orders", params={"recipeId": recipe_id}, headers=rig.api.auth(TENANT)
        ) as response:
            if response.status == 200:
                found: list[dict[str, Any]] = (await response.json())["orders"]
                return found
            assert response.status in {502, 503}, await response.text()
    return None


async def delivered_orders(rig: Rig, recipe_ids: list[str]) -> tuple[set[str], list[dict[str, Any]]]:
    """Order IDs whose every delivery succeeded, and the deliveries not yet final (nothing while it is down)."""
    orders = []
    for recipe_id in recipe_ids:
        found = await orders_of(rig, recipe_id)
        if found is None:
            return set(), []
        orders += found
    done: set[str] = set()
    unfinished: list[dict[str, Any]] = []
    for order in orders:
        statuses = {d["integration"]: d["status"] for d in order["deliveries"]}
        if statuses == dict.fromkeys(INTEGRATIONS, "succeeded"):
            done.add(order["orderId"])
        unfinished += [d for d in order["deliveries"] if d["status"] not in {"succeeded", "failed"}]
    return done, unfinished


async def chaos(rig: Rig, stop: asyncio.Event, kills: list[str], rng: random.Random) -> None:
    """SIGKILL a random service every few seconds and start it again, as an orchestrator would."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), KILL_EVERY_S)
            return
        victim = rng.choice(VICTIMS)
        await rig.stack.kill(victim)
        kills.append(victim)
        await rig.stack.restart(victim)


# Its own deadlines (chaos up to 150 s, the restart 120 s, delivery 420 s) are the test; on a busy 2-core CI machine
# it takes 150-290 s, close to the suite's 300 s cap, so the cap here sits above the deadlines it already has.
@pytest.mark.timeout(720)
async def test_chaos_hundreds_of_orders_while_services_are_killed_all_delivered_none_stuck(rig: Rig) -> None:
    recipe_ids = [new_recipe_id("109") for _ in range(RECIPES)]
    for recipe_id in recipe_ids:
        await rig.api.save_recipe(TENANT, recipe_id)
    # A fixed seed, so a failure replays with the same kills: this one kills the ingest API while orders arrive
    # and every service within the first nine kills.
    rng = random.Random(19)
    kills: list[str] = []
    stop = asyncio.Event()
    started = time.monotonic()
    killer = asyncio.create_task(chaos(rig, stop, kills, rng))
    try:
        resends = 0
        for first in range(0, ORDERS, BATCH):
            lines = [order_line(recipe_ids[n % RECIPES], str(90_000 + n)) for n in range(first, first + BATCH)]
            resends += await send_until_accepted(rig, lines) - 1
            await asyncio.sleep(SEND_EVERY_S)
        sent_s = time.monotonic() - started

        # The kills go on while the accepted orders are built, delivered and reported.
        async def chaos_done() -> bool:
            done, _ = await delivered_orders(rig, recipe_ids)
            return len(done) >= ORDERS // 3 or time.monotonic() - started > CHAOS_MAX_S

        await rig.eventually(chaos_done, within=CHAOS_MAX_S + 60, what="a third delivered under chaos", interval=1)
    finally:
        stop.set()
        await killer
    chaos_s = time.monotonic() - started

    # Then the whole suite at once: every service SIGKILLed and the broker stopped and started again, as a
    # restart of `make run` would. The broker keeps its data in SeaweedFS (as `make run`'s does), so what was
    # accepted and not yet done is not lost.
    for service in rig.stack.services:
        await rig.stack.kill(service)
    rig.restart_broker()
    for service in rig.stack.services:
        await rig.stack.restart(service)
    await rig.eventually(lambda: api_answers(rig), within=120, what="the ingest API back after the restart")

    async def all_delivered() -> bool:
        done, _ = await delivered_orders(rig, recipe_ids)
        return len(done) == ORDERS

    await rig.eventually(all_delivered, within=420, what=f"all {ORDERS} orders delivered", interval=1)
    total_s = time.monotonic() - started

    done, unfinished = await delivered_orders(rig, recipe_ids)
    assert len(done) == ORDERS
    assert not unfinished
    assert await rig.api.audit(TENANT) == []
    expected = {f"id{90_000 + n}" for n in range(ORDERS)}
    assert done == expected
    # Per destination, counted at the destination itself.
    hooked = {r.json()["orderId"] for r in rig.hooks.requests_to("chaos")}
    assert hooked == expected
    client = rig.s3.client()
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=rig.s3_bucket, Prefix="chaos/")
    tickets = {o["Key"] for page in pages for o in page.get("Contents", []) if o["Key"].endswith("_Ticket.pdf")}
    assert len(tickets) == ORDERS, len(tickets)
    # Nothing went to the failure list: every failure along the way was retried to success.
    assert not [m for m in rig.smtp.messages() if "chaos-ops@faults.example" in m.rcpt_tos]
    print(
        f"\nchaos: {ORDERS} orders ({len(kills)} SIGKILLs: {', '.join(kills)}; {resends} batch resends), "
        f"sent in {sent_s:.1f}s, chaos for {chaos_s:.1f}s, all delivered {total_s:.1f}s after the first; "
        f"hook {len(hooked)}, S3 tickets {len(tickets)}, lost 0, stuck 0"
    )
