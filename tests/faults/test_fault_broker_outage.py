"""Fault injection: the broker goes away under the ingest API and comes back (issue 5, test 5).

The stack runs on a Tansu whose storage engine is ``s3://`` on SeaweedFS, so what was published before the outage
survives the broker's restart on the same port. While it is down the API must answer 503 with ``Retry-After``
quickly; a client that resends afterwards must end up with every item stored exactly once.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay_contracts.topics import ORDERS_EVENTS
from relay_devservers.seaweedfs import SeaweedS3

sys.path.insert(0, str(Path(__file__).parent))
from fault_harness import OutageRig, TopicWatcher, new_recipe_id, order_line, running_outage_rig

pytestmark = pytest.mark.integration

TENANT = "outage"


@pytest.fixture(scope="module")
async def outage_rig(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedS3) -> AsyncIterator[OutageRig]:
    async with running_outage_rig(tmp_path_factory.mktemp("faults-outage"), seaweedfs) as running:
        yield running


async def _items(rig: OutageRig, order_number: str) -> list[dict[str, Any]]:
    orders = await rig.api.orders(TENANT, orderNumber=order_number)
    assert len(orders) <= 1, orders
    items: list[dict[str, Any]] = orders[0]["items"] if orders else []
    return items


async def _resend_until_accepted(rig: OutageRig, lines: list[dict[str, Any]], *, within: float) -> int:
    """What a well-behaved client does: resend after each 503's Retry-After, until accepted. Returns the tries."""
    deadline = time.monotonic() + within
    tries = 0
    while True:
        tries += 1
        status, headers, body = await rig.api.link(TENANT, lines)
        if status == 202:
            assert body["accepted"] == len(lines), body
            return tries
        assert status == 503, (status, body)
        if time.monotonic() > deadline:
            raise AssertionError(f"still 503 after {within:g}s of resending: {body}")
        await asyncio.sleep(float(headers["Retry-After"]))


async def test_fault_broker_outage_gets_503_then_a_resend_stores_each_item_once(outage_rig: OutageRig) -> None:
    rig = outage_rig
    recipe_id = new_recipe_id("107")
    await rig.api.save_recipe(TENANT, recipe_id)
    before = [order_line(recipe_id, "5000", item=str(i), quantity=i) for i in range(1, 6)]
    during = [order_line(recipe_id, "5001", item=str(i), quantity=i) for i in range(1, 6)]

    status, _, body = await rig.api.link(TENANT, before)
    assert status == 202, body
    # Stopped at once: the association store may not have read these yet; the broker's storage keeps them.
    rig.broker.stop()

    started = time.monotonic()
    status, headers, body = await rig.api.link(TENANT, during)
    elapsed = time.monotonic() - started
    assert status == 503, (status, body)
    assert elapsed < 5.0, f"the 503 took {elapsed:.1f}s"
    assert int(headers["Retry-After"]) >= 1
    assert body["error"] == "unavailable", body

    rig.start_broker()  # same port, same bucket

    # What was published before the outage is still on the topic.
    watcher = await TopicWatcher(rig.broker.bootstrap, [ORDERS_EVENTS]).start()
    try:

        async def kept() -> bool:
            return len([v for _, v in watcher.decoded(ORDERS_EVENTS) if v.get("orderNumber") == "5000"]) >= 5

        await rig.eventually(kept, within=30, what="the events published before the outage to survive the restart")
    finally:
        await watcher.stop()

    tries = await _resend_until_accepted(rig, during, within=60)
    # A client unsure whether its earlier batch went through sends it again too.
    assert await _resend_until_accepted(rig, before, within=30) == 1

    expected = {
        "5000": [{"recipeId": recipe_id, "itemId": str(i), "itemQuantity": i} for i in range(1, 6)],
        "5001": [{"recipeId": recipe_id, "itemId": str(i), "itemQuantity": i} for i in range(1, 6)],
    }

    async def stored_once() -> bool:
        found = {number: await _items(rig, number) for number in expected}
        return found == expected

    await rig.eventually(stored_once, within=60, what="both orders with each of their items exactly once")
    print(f"accepted after {tries} tries once the broker was back")
