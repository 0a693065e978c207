"""Hostile but accepted input on the full multi-process stack (issue 8): every bad order ends — delivered, or failed
with one notice per integration to its failure list — and an ordinary order sent right behind it, on the same
partitions, is delivered in normal time. Nothing is left stuck: every delivery of the tenant is final at the end.

Classes, not single examples: names long in UTF-8 bytes, recipes whose text cannot fit a ticket cell, asset URLs
that cannot be requested, recipes over the bundle budget, and records on ``orders.events.v1`` that cannot be
processed (near the broker's size limit; full of personal data).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from pydantic import SecretStr

from relay_contracts.topics import ALL_TOPICS, DELIVERIES_DEAD, ORDERS_EVENTS
from relay_devservers.seaweedfs import SeaweedS3
from relay_devservers.webhooks import Reply
from relay_platform.links import LinkSettings, LinkSigner
from relay_testing.files import read_tree

sys.path.insert(0, str(Path(__file__).parent))
from fault_harness import (
    ROOT,
    SFTP_PASSWORD,
    SHOPIFY_SECRET,
    Rig,
    api_key,
    new_recipe_id,
    recipe_body,
    running_rig,
)

pytestmark = pytest.mark.integration

TENANT = "hostile"
INTEGRATIONS = ("hostile-hook", "hostile-s3")
FAILURE_LIST = "hostile-ops@faults.example"
PARTITIONS = 3  # every topic of the stack (relay_platform.broker.ensure_topics)
# What "normal time" means for the ordinary order behind a bad one, on a 2-core machine running the whole suite.
NORMAL_S = 60.0
PERSONAL = ("Jane Roe", "jane.roe@example.com", "+44 20 7946 0000", "1 Main Street, Springfield")


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedS3) -> AsyncIterator[Rig]:
    async with running_rig(tmp_path_factory.mktemp("faults-hostile"), seaweedfs) as running:
        yield running


# --- partitions: the ordinary order must queue behind the bad one ----------------------------------------------


def partition_of(key: str) -> int:
    """The partition the producers' default partitioner (murmur2, as in Kafka's Java client) picks for ``key``."""
    every = list(range(PARTITIONS))
    return int(DefaultPartitioner()(key.encode(), every, every))


def same_partition_as(key: str, candidate: Callable[[int], str]) -> int:
    """The first ``n`` whose ``candidate(n)`` lands on ``key``'s partition."""
    wanted = partition_of(key)
    return next(n for n in range(1000) if partition_of(candidate(n)) == wanted)


# --- the API, for odd bodies ------------------------------------------------------------------------------------


async def save_recipe(rig: Rig, body: dict[str, Any]) -> None:
    async with rig.api.session.post(
        f"{rig.api.base}/api/v2/recipes", json=body, headers=rig.api.auth(TENANT)
    ) as response:
        assert response.status == 201, await response.text()


async def link(rig: Rig, recipe_id: str, order_number: str, order_id: str) -> None:
    line = {"recipeId": recipe_id, "orderNumber": order_number, "orderId": order_id, "itemId": "1", "itemQuantity": 1}
    status, _, body = await rig.api.link(TENANT, [line])
    assert status == 202, body


async def order_events(rig: Rig, events: list[dict[str, Any]]) -> None:
    async with rig.api.session.post(
        f"{rig.api.base}/api/v2/orders/events", json=events, headers=rig.api.auth(TENANT)
    ) as response:
        assert response.status == 202, await response.text()


async def deliveries_of(rig: Rig, order_id: str) -> dict[str, dict[str, Any]]:
    orders = await rig.api.orders(TENANT, orderId=order_id)
    return {d["integration"]: d for order in orders for d in order["deliveries"]}


async def ended(rig: Rig, order_id: str, *, within: float) -> dict[str, dict[str, Any]]:
    """The order's deliveries once each integration's is final (succeeded or failed)."""

    async def final() -> dict[str, dict[str, Any]] | None:
        found = await deliveries_of(rig, order_id)
        done = set(found) == set(INTEGRATIONS) and all(d["status"] in {"succeeded", "failed"} for d in found.values())
        return found if done else None

    return await rig.eventually(final, within=within, what=f"every delivery of order {order_id!r} to end")


def failure_notices(rig: Rig, order_id: str, integration_id: str) -> list[str]:
    return [
        str(mail.message)
        for mail in rig.smtp.messages()
        if FAILURE_LIST in mail.rcpt_tos
        and f"Order ID:     {order_id}" in _text(mail.message)
        and f"id:         {integration_id}" in _text(mail.message)
    ]


def _text(message: Any) -> str:
    body = message.get_body(preferencelist=("plain",))
    return str(body.get_content()) if body is not None else ""


# --- the cases ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    recipe: Callable[[str], dict[str, Any]]
    order_number: str
    order_id: str
    outcome: str  # "delivered" or the text each failure's lastError and notice must carry


def plain(recipe_id: str) -> dict[str, Any]:
    return recipe_body(recipe_id)


def unfit_for_a_ticket(recipe_id: str) -> dict[str, Any]:
    body = recipe_body(recipe_id, name="Ж" * 3000)
    # Each string just under the API's recipe_max_string_length (10,000 characters), together far over a cell.
    body["custom"] = {
        "notes": "\n".join(f"line {n} of the engraving notes" for n in range(300)),
        "unbroken": "W" * 9_999,
        "emoji": "👩🏽‍🔧" * 1400,
    }
    body["components"] = [
        {"name": f"Part {n} " + "Ü" * 200, "code": f"p{n}", "component": {"code": "c" * 500, "sku": "S" * 300}}
        for n in range(300)
    ]
    return body


def unrequestable_asset(recipe_id: str) -> dict[str, Any]:
    body = recipe_body(recipe_id)
    body["views"] = [
        {"code": "front", "production": "http://assets..example.com/front.pdf"},
        {"code": "back", "previewPng": f"http://{'a' * 64}.example.com/back.png"},
    ]
    return body


ASSETS = "https://assets.example.com"


def over_the_asset_budget(recipe_id: str) -> dict[str, Any]:
    body = recipe_body(recipe_id)
    # Within every limit of the API (100 attachments, 100 views), over the bundle's 200 assets together.
    body["attachments"] = [{"code": f"a{n}", "url": f"https://assets.example.com/{n}.png"} for n in range(100)]
    body["views"] = [
        {"code": f"v{n}", "production": f"{ASSETS}/v{n}.pdf", "previewPng": f"{ASSETS}/v{n}.png"} for n in range(51)
    ]
    return body


CASES = [
    # 128 characters each, 384 and 512 UTF-8 bytes: names and keys must be shortened by bytes, deterministically.
    Case("ids-long-in-utf8-bytes", plain, "№" * 128, "\U0001d518" * 128, "delivered"),
    Case("ids-of-odd-unicode", plain, "../\u202e\u0301 " * 21, "\u200d\ufeff~\\" * 32, "delivered"),
    Case("text-that-cannot-fit-a-ticket-cell", unfit_for_a_ticket, "8001", "id8001", "delivered"),
    Case("asset-hosts-that-cannot-be-encoded", unrequestable_asset, "8002", "id8002", "cannot be encoded"),
    Case("more-assets-than-a-bundle-takes", over_the_asset_budget, "8003", "id8003", "lists 202 asset files"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_hostile_order_ends_and_the_ordinary_order_behind_it_is_delivered(rig: Rig, case: Case) -> None:
    bad_recipe = new_recipe_id("108")
    await save_recipe(rig, case.recipe(bad_recipe))
    tag = uuid.uuid4().hex[:6]
    # Behind the bad order on every partition it takes: its order events' and its triggers'.
    n = same_partition_as(f"{TENANT}:{case.order_id}", lambda k: f"{TENANT}:ok-{tag}-{k}")
    m = same_partition_as(bad_recipe, lambda k: f"108-ok{tag}{k:04d}")
    ordinary_recipe, ordinary_order = f"108-ok{tag}{m:04d}", f"ok-{tag}-{n}"
    await save_recipe(rig, plain(ordinary_recipe))

    await link(rig, bad_recipe, case.order_number, case.order_id)
    sent = time.monotonic()
    await link(rig, ordinary_recipe, f"ok{tag}", ordinary_order)

    ordinary = await ended(rig, ordinary_order, within=NORMAL_S)
    assert {i: d["status"] for i, d in ordinary.items()} == dict.fromkeys(INTEGRATIONS, "succeeded"), ordinary
    took = time.monotonic() - sent

    bad = await ended(rig, case.order_id, within=NORMAL_S)
    if case.outcome == "delivered":
        assert {i: d["status"] for i, d in bad.items()} == dict.fromkeys(INTEGRATIONS, "succeeded"), bad
        await _landed_with_bounded_names(rig, case, bad)
    else:
        for integration_id, delivery in bad.items():
            assert delivery["status"] == "failed", delivery
            assert case.outcome in (delivery["lastError"] or ""), delivery

            async def notified(i: str = integration_id) -> list[str]:
                return failure_notices(rig, case.order_id, i)

            notices = await rig.eventually(notified, within=30, what=f"a failure notice for {integration_id}")
            assert len(notices) == 1, notices
    assert took < NORMAL_S


async def _landed_with_bounded_names(rig: Rig, case: Case, deliveries: dict[str, dict[str, Any]]) -> None:
    """Each file is at the S3 destination, under a key of at most 1,024 bytes with segments of at most 255, with
    the bytes the bundle-builder stored; the hook got links whose files are the same bytes."""
    files = deliveries["hostile-s3"]["files"]
    assert files, deliveries
    client = rig.s3.client()
    listed = client.list_objects_v2(Bucket=rig.s3_bucket, Prefix="hostile/")
    keys = [o["Key"] for o in listed.get("Contents", [])]
    for name in files:
        assert len(name.encode()) <= 255, name
        matching = [k for k in keys if k.endswith("/" + name)]
        assert len(matching) == 1, (name, keys)
        key = matching[0]
        assert len(key.encode()) <= 1024
        assert all(len(part.encode()) <= 255 for part in key.split("/"))
        landed = client.get_object(Bucket=rig.s3_bucket, Key=key)["Body"].read()
        stored = [p for p in (rig.objects / "bundles").rglob("*") if p.is_file() and p.name == name]
        assert any(p.read_bytes() == landed for p in stored), name
    hooks = [r.json() for r in rig.hooks.requests_to("hostile") if r.json().get("orderId") == case.order_id]
    assert hooks, "the hook was not called for the order"
    assert sorted(f["name"] for f in hooks[-1]["files"]) == sorted(files)


# --- records on orders.events.v1 that no consumer can process -----------------------------------------------------


def _dead_letters_of(rig: Rig, partition: int, offset: int) -> list[dict[str, Any]]:
    return [
        value
        for record, value in rig.watcher.decoded(DELIVERIES_DEAD)
        if value.get("sourceTopic") == ORDERS_EVENTS
        and value.get("partition") == partition
        and value.get("offset") == offset
        and record.topic == DELIVERIES_DEAD
    ]


@pytest.mark.parametrize("kind", ["near-the-size-limit", "full-of-personal-data"])
async def test_unprocessable_order_event_is_dead_lettered_without_pii_and_does_not_hold_its_partition(
    rig: Rig, kind: str
) -> None:
    tag = uuid.uuid4().hex[:6]
    bad_order = f"bad-{tag}"
    event: dict[str, Any] = {
        "eventId": f"ev-{tag}",
        "tenant": TENANT,
        "type": "created",
        "orderId": bad_order,
        "orderNumber": "9" * 129,  # one character over the limit: invalid
        "occurredAt": "2026-11-20T10:00:00Z",
        "customer": {"name": PERSONAL[0], "email": PERSONAL[1], "phone": PERSONAL[2], "address": PERSONAL[3]},
        "items": [{"recipeId": "108-x", "itemId": "1", "itemQuantity": 1, "giftMessage": PERSONAL[0]}],
    }
    if kind == "near-the-size-limit":
        # In a field the message defines, so it survives the PII pruning: base64 of it would not fit a letter.
        event["orderNumber"] = "9" * 900_000
    value = json.dumps(event).encode()
    key = f"{TENANT}:{bad_order}"
    n = same_partition_as(key, lambda k: f"{TENANT}:ok-{tag}-{k}")
    ordinary_order = f"ok-{tag}-{n}"
    recipe_id = new_recipe_id("108")
    await save_recipe(rig, plain(recipe_id))

    partition, offset = await rig.probe.publish(ORDERS_EVENTS, value, key=key.encode())
    await link(rig, recipe_id, f"ok{tag}", ordinary_order)

    ordinary = await ended(rig, ordinary_order, within=NORMAL_S)
    assert {d["status"] for d in ordinary.values()} == {"succeeded"}, ordinary

    async def both_consumers_parked_it() -> list[dict[str, Any]] | None:
        letters = _dead_letters_of(rig, partition, offset)
        return letters if {v["service"] for v in letters} >= {"association-store", "retry"} else None

    letters = await rig.eventually(both_consumers_parked_it, within=NORMAL_S, what="a dead letter per consumer")
    for letter in letters:
        assert letter["payloadSha256"] == hashlib.sha256(value).hexdigest()
        assert letter["payloadSize"] == len(value)
        kept = base64.b64decode(letter["payloadB64"])
        assert not [p for p in PERSONAL if p.encode() in kept], kept[:400]
        if kind == "near-the-size-limit":
            assert (kept, letter["payloadComplete"]) == (b"", False)
        else:
            assert letter["payloadComplete"]
            assert json.loads(kept)["orderId"] == bad_order
    # Nothing personal anywhere on the dead-letter topic, whatever the letter, nor in any service's log.
    raw = b"".join(r.value for r in rig.watcher.on(DELIVERIES_DEAD))
    assert not [p for p in PERSONAL if p.encode() in raw]
    logged = rig.stack.log_path.read_text(errors="replace")
    assert not [p for p in PERSONAL if p in logged]
    assert await rig.api.orders(TENANT, orderId=bad_order) == []


async def test_a_rebuild_while_a_delivery_is_retrying_does_not_fail_the_retry(rig: Rig) -> None:
    """An order update rebuilds the ticket under the same name while the first delivery waits for its retry: the
    retry still finds the files it was requested with (content-versioned keys), so no false failure notice."""
    recipe_id = new_recipe_id("108")
    await save_recipe(rig, plain(recipe_id))
    tag = uuid.uuid4().hex[:6]
    order_id, order_number = f"rebuild-{tag}", f"rb{tag}"
    rig.hooks.script("hostile", Reply(429, {"Retry-After": "3"}))
    await link(rig, recipe_id, order_number, order_id)

    def hook_calls() -> list[dict[str, Any]]:
        return [r.json() for r in rig.hooks.requests_to("hostile") if r.json().get("orderId") == order_id]

    async def refused_once() -> bool:
        return len(hook_calls()) >= 1

    await rig.eventually(refused_once, within=NORMAL_S, what="the first, throttled, hook call")
    update = {
        "type": "updated",
        "orderId": order_id,
        "orderNumber": order_number,
        "occurredAt": datetime.now(UTC).isoformat(),
        "items": [{"recipeId": recipe_id, "itemId": "1", "itemQuantity": 3}],
    }
    await order_events(rig, [update])

    async def both_delivered() -> list[dict[str, Any]] | None:
        orders = await rig.api.orders(TENANT, orderId=order_id)
        hook = [d for order in orders for d in order["deliveries"] if d["integration"] == "hostile-hook"]
        return hook if len(hook) == 2 and all(d["status"] == "succeeded" for d in hook) else None

    deliveries = await rig.eventually(both_delivered, within=NORMAL_S, what="the retried and the update's delivery")
    assert sorted(d["attempts"] for d in deliveries) == [1, 2], deliveries
    assert not failure_notices(rig, order_id, "hostile-hook")
    # Each delivery's ticket link downloads the ticket it was built with: the quantity differs.
    tickets = []
    for call in hook_calls()[1:]:
        url = next(f["url"] for f in call["files"] if f["name"].endswith("_Ticket.pdf"))
        async with rig.api.session.get(url) as response:
            assert response.status == 200, await response.text()
            tickets.append(hashlib.sha256(await response.read()).hexdigest())
    assert len(set(tickets)) == 2, tickets


async def test_a_stale_cancellation_does_not_drop_a_pending_retry(rig: Rig) -> None:
    """A cancellation whose occurredAt is older than the order's status changes nothing: not the order, and not the
    retry the hook's 429 scheduled, which is delivered (before, it was dropped and stayed `retrying`)."""
    recipe_id = new_recipe_id("108")
    await save_recipe(rig, plain(recipe_id))
    tag = uuid.uuid4().hex[:6]
    order_id, order_number = f"stale-{tag}", f"st{tag}"
    rig.hooks.script("hostile", Reply(429, {"Retry-After": "3"}))
    items = [{"recipeId": recipe_id, "itemId": "1", "itemQuantity": 1}]
    created = {"type": "created", "orderId": order_id, "orderNumber": order_number, "items": items}
    await order_events(rig, [created | {"occurredAt": datetime.now(UTC).isoformat()}])

    async def refused_once() -> bool:
        return any(r.json().get("orderId") == order_id for r in rig.hooks.requests_to("hostile"))

    await rig.eventually(refused_once, within=NORMAL_S, what="the first, throttled, hook call")
    cancelled = {"type": "cancelled", "orderId": order_id, "orderNumber": order_number}
    await order_events(rig, [cancelled | {"occurredAt": "2020-01-01T00:00:00Z"}])

    async def delivered_on_the_retry() -> dict[str, Any] | None:
        hook = (await deliveries_of(rig, order_id)).get("hostile-hook")
        return hook if hook is not None and hook["status"] == "succeeded" else None

    delivery = await rig.eventually(delivered_on_the_retry, within=NORMAL_S, what="the retried hook delivery")
    assert delivery["attempts"] == 2, delivery
    orders = await rig.api.orders(TENANT, orderId=order_id)
    assert [o["status"] for o in orders] == ["open"]
    assert not failure_notices(rig, order_id, "hostile-hook")


# --- tenant boundaries (issue 9): "hostile" tries to reach "victim" ----------------------------------------------

VICTIM = "victim"


async def _status(rig: Rig, method: str, path: str, tenant: str | None, body: object = None) -> tuple[int, Any]:
    headers = rig.api.auth(tenant) if tenant else {}
    async with rig.api.session.request(method, f"{rig.api.base}{path}", json=body, headers=headers) as response:
        return response.status, await response.json(content_type=None)


def _hook_calls(rig: Rig, hook: str, order_id: str) -> list[dict[str, Any]]:
    return [r.json() for r in rig.hooks.requests_to(hook) if r.json().get("orderId") == order_id]


async def test_another_tenant_cannot_reach_a_tenants_recipes_orders_or_factory(rig: Rig) -> None:
    tag = uuid.uuid4().hex[:6]
    private = new_recipe_id("110")
    async with rig.api.session.post(
        f"{rig.api.base}/api/v2/recipes", json=plain(private), headers=rig.api.auth(VICTIM)
    ) as response:
        assert response.status == 201, await response.text()
    victim_order = f"v-{tag}"
    line = {"recipeId": private, "orderNumber": f"v{tag}", "orderId": victim_order, "itemId": "1", "itemQuantity": 1}
    status, _, body = await rig.api.link(VICTIM, [line])
    assert status == 202, body

    async def victim_delivered() -> list[dict[str, Any]] | None:
        return _hook_calls(rig, "victim", victim_order) or None

    await rig.eventually(victim_delivered, within=NORMAL_S, what="the victim's own order at its hook")

    # The victim's file links work; the same link altered, or one minted with the old built-in key, does not.
    link = next(f["url"] for f in _hook_calls(rig, "victim", victim_order)[0]["files"] if f["name"].endswith(".pdf"))
    async with rig.api.session.get(link) as response:
        assert response.status == 200
    token = link.rsplit("/", 1)[1]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    minted = LinkSigner(
        LinkSettings.model_construct(
            signing_key=SecretStr("dev-only-signing-key-change-me"), public_base_url="", ttl_s=60
        )
    ).url_for(f"bundles/{VICTIM}/recipes/{private}/x/{private}-Ticket.pdf", "x.pdf", "application/pdf")
    for forged in (f"{rig.api.base}/files/{tampered}", f"{rig.api.base}{minted}"):
        async with rig.api.session.get(forged) as response:
            assert response.status == 404, forged

    # Over HTTP: the hostile tenant can neither link, nor trigger, nor read the victim's private recipe.
    stolen = {**line, "orderId": f"h-{tag}", "orderNumber": f"h{tag}"}
    status, _, body = await rig.api.link(TENANT, [stolen])
    assert (status, [p["pointer"] for p in body["problems"]]) == (400, ["/0/recipeId"])
    status, body = await _status(rig, "POST", "/api/v2/integrations/trigger", TENANT, {"recipeId": private})
    assert (status, [p["pointer"] for p in body["problems"]]) == (400, ["/recipeId"])
    status, body = await _status(rig, "POST", "/api/v2/integrations/trigger", TENANT, {"orderId": victim_order})
    assert status == 404, body  # the victim's order does not exist for the hostile tenant
    assert (await _status(rig, "GET", f"/recipe/{private}.json", TENANT))[0] == 404
    assert (await _status(rig, "GET", f"/recipe/{private}.json", None))[0] == 401
    assert (await _status(rig, "GET", f"/recipe/{private}.pdf", TENANT))[0] == 404
    assert await rig.api.orders(TENANT, orderId=victim_order) == []

    # Over Kafka: the hostile OMS may write only its own topic, and whatever the payload says, it speaks for the
    # hostile tenant: a cancellation "for the victim" and a link of the victim's recipe are dead-lettered.
    oms_topic = "oms.hostile.orders.v1"
    now = datetime.now(UTC).isoformat()
    spoofed_cancel = {
        "eventId": f"spoof-{tag}",
        "tenant": VICTIM,
        "type": "cancelled",
        "orderId": victim_order,
        "orderNumber": f"v{tag}",
        "occurredAt": now,
    }
    foreign_link = {
        "eventId": f"foreign-{tag}",
        "type": "linked",
        "orderId": f"h-{tag}",
        "orderNumber": f"h{tag}",
        "occurredAt": now,
        "items": [{"recipeId": private, "itemId": "1", "itemQuantity": 1}],
    }
    own_recipe = new_recipe_id("108")
    await save_recipe(rig, plain(own_recipe))
    own_link = {
        **foreign_link,
        "eventId": f"own-{tag}",
        "orderId": f"own-{tag}",
        "items": [{"recipeId": own_recipe, "itemId": "1", "itemQuantity": 1}],
        "customer": {"email": PERSONAL[1]},
    }
    spoof_at = await rig.probe.publish(oms_topic, json.dumps(spoofed_cancel).encode(), key=victim_order.encode())
    foreign_at = await rig.probe.publish(oms_topic, json.dumps(foreign_link).encode(), key=f"h-{tag}".encode())
    await rig.probe.publish(oms_topic, json.dumps(own_link).encode(), key=f"own-{tag}".encode())

    own = await ended(rig, f"own-{tag}", within=NORMAL_S)
    assert {d["status"] for d in own.values()} == {"succeeded"}, own
    assert _hook_calls(rig, "hostile", f"own-{tag}"), "the OMS topic's own order did not reach the hostile hook"

    def letters_at(partition_offset: tuple[int, int]) -> list[dict[str, Any]]:
        partition, offset = partition_offset
        return [
            value
            for _, value in rig.watcher.decoded(DELIVERIES_DEAD)
            if value.get("sourceTopic") == oms_topic
            and (value.get("partition"), value.get("offset")) == (partition, offset)
        ]

    async def both_parked() -> bool:
        return bool(letters_at(spoof_at)) and bool(letters_at(foreign_at))

    await rig.eventually(both_parked, within=NORMAL_S, what="the spoofed events dead-lettered")
    assert "not 'hostile'" in letters_at(spoof_at)[0]["reason"]
    assert "items/0/recipeId" in letters_at(foreign_at)[0]["reason"]
    orders = await rig.api.orders(VICTIM, orderId=victim_order)
    assert [o["status"] for o in orders] == ["open"]
    # The victim's factory got its one order, never a cancellation.
    assert [call["event"] for call in _hook_calls(rig, "victim", victim_order)] == ["order_linked"]
    assert await rig.api.orders(TENANT, orderId=f"h-{tag}") == []
    assert not _hook_calls(rig, "hostile", f"h-{tag}")
    # The OMS's personal data never got further than its own topic.
    assert not [r for r in rig.watcher.on(DELIVERIES_DEAD) if PERSONAL[1].encode() in r.value]


MALFORMED = (
    b"GET /api/v2/orders?apikey={key}\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/v2/orders?orderId=1 HTTP/1.1\r\nAuthorization: Bearer {key}\r\nBad\x00Header: 1\r\n\r\n",
    b"GET /api/v2/orders?apikey={key}&" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/v2/recipe/order?apikey={key} HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{key}\r\n",
    b"GET /recipe/{key}.json HTTP/1.1\r\nHost: x\r\nContent-Length: {key}\r\n\r\n",
    b"{key} /api/v2/orders HTTP/1.1\r\n\r\n",
)


async def test_no_api_key_or_secret_anywhere_after_malformed_requests(rig: Rig) -> None:
    """Requests that carry a key in every malformed way: the answers are 4xx, and no key or configured secret
    (nor a 12-character piece of one) is in any service's log, on any topic, or in a stored object."""
    key = api_key(TENANT).encode()
    host, port = rig.api.base.removeprefix("http://").split(":")
    for template in MALFORMED:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(template.replace(b"{key}", key))
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), timeout=10)
        writer.close()
        await writer.wait_closed()
        assert status_line[9:10] == b"4", (template[:40], status_line)
    for params in ({"apikey": api_key(TENANT)}, {"apikey": "wrong-" + api_key(VICTIM)}):
        async with rig.api.session.get(f"{rig.api.base}/api/v2/orders", params={**params, "orderId": "x"}) as response:
            assert response.status in {200, 401}
            assert api_key(VICTIM) not in await response.text()
    env = rig.stack.environment(rig.broker.bootstrap)
    secrets = {
        "api keys": [api_key(t) for t in (TENANT, VICTIM)],
        "configured secrets": [SFTP_PASSWORD, rig.s3.secret_key, env["LINKS_SIGNING_KEY"]],
        "internal token": [env["ASSOCIATION_STORE_API_TOKEN"]],
    }
    pieces = {s[i : i + 12] for values in secrets.values() for s in values for i in range(0, len(s) - 11, 6)}
    logged = rig.stack.log_path.read_text(errors="replace")
    on_topics = b"".join(r.value + (r.key or b"") for topic in ALL_TOPICS for r in rig.watcher.on(topic))
    stored = b"".join(read_tree(rig.objects, max_size=1_000_000).values())
    assert [p for p in pieces if p in logged] == []
    assert [p for p in pieces if p.encode() in on_topics] == []
    assert [p for p in pieces if p.encode() in stored] == []
    # Nor in any database row (the SQLite files of the association store, retry and notifier, with their WALs).
    rows = b"".join(read_tree(rig.var, "*.db*").values())
    assert rows, "no database file found under the rig"
    assert [p for p in pieces if p.encode() in rows] == []


def ssrf_targets(port: int) -> list[str]:
    """Ways to name the stack's own loopback API (and the cloud metadata service) that must all be refused."""
    return [
        f"http://127.0.0.1:{port}/api/v2/openapi.json",
        f"http://localhost:{port}/healthz",
        f"http://2130706433:{port}/healthz",  # 127.0.0.1 as one decimal number
        f"http://0x7f.1:{port}/healthz",  # ... in hex, with a short form
        f"http://[::ffff:127.0.0.1]:{port}/healthz",  # IPv4-mapped
        f"http://[::127.0.0.1]:{port}/healthz",  # IPv4-compatible
        f"http://[64:ff9b::7f00:1]:{port}/healthz",  # NAT64 of 127.0.0.1
        f"http://[2002:7f00:1::1]:{port}/healthz",  # 6to4 of 127.0.0.1
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    ]


async def test_asset_urls_that_point_inside_are_refused_and_the_order_fails_with_a_notice(rig: Rig) -> None:
    port = int(rig.api.base.rsplit(":", 1)[1])
    tag = uuid.uuid4().hex[:6]
    orders = {}
    for n, url in enumerate(ssrf_targets(port)):
        recipe_id = new_recipe_id("108")
        body = recipe_body(recipe_id)
        body["views"] = [{"code": "front", "previewPng": url}]
        await save_recipe(rig, body)
        order_id = f"ssrf-{tag}-{n}"
        await link(rig, recipe_id, f"ss{tag}{n}", order_id)
        orders[order_id] = url
    for order_id, url in orders.items():
        ended_deliveries = await ended(rig, order_id, within=NORMAL_S)
        for integration_id, delivery in ended_deliveries.items():
            assert delivery["status"] == "failed", (url, delivery)
            assert "refused" in (delivery["lastError"] or "") or "non-public" in (delivery["lastError"] or ""), (
                url,
                delivery["lastError"],
            )

            async def notified(i: str = integration_id, o: str = order_id) -> list[str]:
                return failure_notices(rig, o, i)

            await rig.eventually(notified, within=30, what=f"a failure notice for {integration_id} of {url}")


# --- issue 14: a Shopify order webhook full of personal data -------------------------------------------------

SHOPIFY_FIXTURE = ROOT / "services" / "ingest-api" / "tests" / "fixtures" / "shopify" / "orders_create.json"
# Every personal value of the fixture: names, e-mails, phones, addresses, the buyer's IP, notes, the order key.
SHOPIFY_PII = (
    "Piidoe",
    "Piichild",
    "Janey",
    "customer-pii.example",
    "555 0100",
    "5550100",
    "Piistreet",
    "Piiville",
    "Piitown",
    "Piigift",
    "203.0.113.77",
    "PII-Agent",
    "secretorderkey999",
    "gift wrap",
)


def shopify_delivery(document: dict[str, Any], topic: str, webhook_id: str) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(document).encode()
    signature = base64.b64encode(hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()).decode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": signature,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": datetime.now(UTC).isoformat(),
        "X-Shopify-Shop-Domain": "pii-shop.myshopify.com",
    }
    return body, headers


async def test_a_shopify_order_full_of_personal_data_is_delivered_and_none_of_it_is_kept_anywhere(rig: Rig) -> None:
    tag = uuid.uuid4().hex[:8]
    mug, cap = new_recipe_id("108"), new_recipe_id("108")
    for recipe_id in (mug, cap):
        await save_recipe(rig, recipe_body(recipe_id))
    document = json.loads(SHOPIFY_FIXTURE.read_text())
    assert any(marker in json.dumps(document) for marker in SHOPIFY_PII)
    order_id, number = f"9{int(tag, 16)}", f"S{tag}"
    document |= {"id": int(order_id), "order_number": number, "name": f"#{number}"}
    document["line_items"][0]["properties"][0]["value"] = mug
    document["line_items"][1]["properties"][0]["value"] = f"https://relay.example/recipe/{cap}.json"
    url = f"{rig.api.base}/api/v2/integrations/shopify/{TENANT}/webhooks"

    body, headers = shopify_delivery(document, "orders/create", f"create-{tag}")
    for _ in range(2):  # Shopify resends a delivery it did not see acknowledged: the same event, applied once
        async with rig.api.session.post(url, data=body, headers=headers) as response:
            assert response.status == 202, await response.text()
            assert (await response.json())["accepted"] == 1
    # A delivery of an older state arriving late (updated_at before the create's) changes nothing.
    stale = json.loads(json.dumps(document))
    stale["updated_at"] = "2026-11-29T00:00:00Z"
    stale["line_items"][0]["current_quantity"] = 7
    body, headers = shopify_delivery(stale, "orders/updated", f"stale-{tag}")
    async with rig.api.session.post(url, data=body, headers=headers) as response:
        assert response.status == 202, await response.text()

    deliveries = await ended(rig, order_id, within=NORMAL_S)
    assert {d["status"] for d in deliveries.values()} == {"succeeded"}, deliveries
    async with rig.api.session.get(
        f"{rig.api.base}/api/v2/orders", params={"orderId": order_id}, headers=rig.api.auth(TENANT)
    ) as response:
        [found] = (await response.json())["orders"]
    assert found["orderNumber"] == number
    assert sorted((i["recipeId"], i["itemId"], i["itemQuantity"]) for i in found["items"]) == sorted(
        [(mug, "866550311766439020", 2), (cap, "141249953214522974", 1)]
    )
    hook_requests = [r for r in rig.hooks.requests_to("hostile") if order_id in r.body.decode(errors="replace")]
    assert hook_requests, "the factory hook received nothing for the order"

    # Every sink: each service's log, every topic (dead letters included), the object store, every database row,
    # what the destinations received (hook, e-mails).
    await rig.watcher.catch_up(ORDERS_EVENTS, await rig.probe.end_offsets(ORDERS_EVENTS))
    sinks = {
        "logs": rig.stack.log_path.read_bytes(),
        "topics": b"".join(r.value + (r.key or b"") for topic in ALL_TOPICS for r in rig.watcher.on(topic)),
        "objects": b"".join(read_tree(rig.objects, max_size=5_000_000).values()),
        "database rows": b"".join(read_tree(rig.var, "*.db*").values()),
        "hook requests": b"".join(r.body for r in rig.hooks.requests_to("hostile")),
        "e-mails": b"".join(mail.data for mail in rig.smtp.messages()),
    }
    leaks = {
        sink: [marker for marker in SHOPIFY_PII if marker.lower().encode() in data.lower()]
        for sink, data in sinks.items()
    }
    assert leaks == {sink: [] for sink in sinks}, leaks
    assert order_id.encode() in sinks["topics"]  # the order itself did go through


async def test_nothing_of_the_tenant_is_left_unfinished(rig: Rig) -> None:
    """Runs last in this module: every delivery the tests above caused has ended."""
    orders = await rig.api.orders(TENANT, orderNumber="8001")
    assert orders, "the module's cases did not run first"
    unfinished = []
    for case in CASES:
        for integration_id, delivery in (await deliveries_of(rig, case.order_id)).items():
            if delivery["status"] not in {"succeeded", "failed"}:
                unfinished.append((case.name, integration_id, delivery))
    assert not unfinished
    assert await rig.api.audit(TENANT) == []
