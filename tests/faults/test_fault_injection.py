"""Fault injection on one running stack (issue 5): destinations down, failing or throttling, deliverer and retry
service killed with SIGKILL mid-work, malformed messages on every consumed topic.

Every service runs as its own process (``relay dev``'s DevStack); faults come from outside, as in production:
servers that refuse connections or answer errors, ``kill -9``, raw bytes published on a topic. Each test has its
own tenant (``fault-tenants.yaml``), so they share the stack without seeing each other's deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relay_contracts.messages import (
    DeliverBundle,
    DeliveryAttempted,
    IntegrationsTriggered,
    OrderEventOccurred,
    OrderItem,
    OrderLine,
    RecipeSaved,
    RetryDelivery,
    recipe_object_key,
)
from relay_contracts.topics import (
    DELIVERIES_DEAD,
    DELIVERIES_OUTCOMES,
    DELIVERIES_RETRY,
    INTEGRATION_TYPES,
    INTEGRATIONS_TRIGGERED,
    ORDERS_EVENTS,
    RECIPES_SAVED,
    deliveries_requested,
)
from relay_devservers.seaweedfs import SeaweedS3
from relay_devservers.webhooks import Reply

sys.path.insert(0, str(Path(__file__).parent))
from fault_harness import Record, Rig, new_recipe_id, order_line, running_rig, utcnow

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def rig(tmp_path_factory: pytest.TempPathFactory, seaweedfs: SeaweedS3) -> AsyncIterator[Rig]:
    """One stack of every service, shared by the tests of this module (each with its own tenant)."""
    async with running_rig(tmp_path_factory.mktemp("faults"), seaweedfs) as running:
        yield running


def _artifact(rig: Rig, name: str) -> bytes:
    """A bundle file as the bundle-builder stored it in the artifact store (names are unique per order line)."""
    found = [p for p in (rig.objects / "bundles").rglob(name) if p.is_file()]
    assert len(found) == 1, f"{name}: {found}"
    return found[0].read_bytes()


def _outcomes(rig: Rig, tenant: str) -> list[dict[str, Any]]:
    return [value for _, value in rig.watcher.decoded(DELIVERIES_OUTCOMES) if value.get("tenant") == tenant]


async def _one_delivery(rig: Rig, tenant: str, order_number: str) -> dict[str, Any] | None:
    deliveries = await rig.api.deliveries(tenant, order_number)
    assert len(deliveries) <= 1, deliveries
    return deliveries[0] if deliveries else None


# --- 7. 429 with Retry-After ----------------------------------------------------------------------------------


async def test_fault_429_retry_after_delays_the_next_attempt(rig: Rig) -> None:
    recipe_id = new_recipe_id("106")
    await rig.api.save_recipe("throttled", recipe_id)
    rig.hooks.script("throttled", Reply(429, {"Retry-After": "2"}, '{"status": "slow down"}'))

    status, _, _ = await rig.api.link("throttled", [order_line(recipe_id, "7001")])
    assert status == 202

    async def delivered() -> dict[str, Any] | None:
        found = await _one_delivery(rig, "throttled", "7001")
        return found if found and found["status"] == "succeeded" else None

    delivery = await rig.eventually(delivered, within=60, what="the throttled delivery to succeed")
    arrivals = rig.hooks.arrivals["/throttled"]
    assert len(arrivals) == 2, arrivals
    gap = arrivals[1] - arrivals[0]
    # The integration's back-off is 0.2 s: only the hook's Retry-After can explain a 2 s wait.
    assert gap >= 2.0, f"second attempt only {gap:.2f}s after the 429"
    assert gap < 10.0, f"second attempt {gap:.2f}s after the 429 (Retry-After was 2 s)"
    assert delivery["attempts"] == 2


# --- 1. destination down, back before the last retry --------------------------------------------------------


async def test_fault_sftp_down_then_back_is_delivered_on_a_retry(rig: Rig) -> None:
    recipe_id = new_recipe_id("101")
    await rig.api.save_recipe("down", recipe_id)
    # The SFTP server is not running: its port refuses connections.
    status, _, _ = await rig.api.link("down", [order_line(recipe_id, "1001")])
    assert status == 202

    async def first_attempt_failed() -> dict[str, Any] | None:
        found = await _one_delivery(rig, "down", "1001")
        return found if found and found["status"] == "retrying" else None

    failed = await rig.eventually(first_attempt_failed, within=60, what="the first SFTP attempt to fail")
    assert failed["attempts"] == 1
    assert "cannot connect" in (failed["lastError"] or ""), failed

    account = await rig.sftp.start()  # back, well before the second attempt (back-off 4 s)

    async def delivered() -> dict[str, Any] | None:
        found = await _one_delivery(rig, "down", "1001")
        if found and found["status"] == "failed":
            raise AssertionError(f"the delivery failed: {found}")
        return found if found and found["status"] == "succeeded" else None

    delivery = await rig.eventually(delivered, within=30, what="the SFTP delivery to succeed once the server is back")
    assert delivery["attempts"] == 2
    assert delivery["type"] == "sftp"
    assert sorted(delivery["files"]) == sorted(
        [f"1001_ID_id1001_R_{recipe_id}_Recipe.json", f"1001_ID_id1001_R_{recipe_id}_Ticket.pdf"]
    )
    for name in delivery["files"]:
        assert (account.root / name).read_bytes() == _artifact(rig, name), name
    assert not [p.name for p in account.root.iterdir() if p.name.endswith(".part")], "temporary files left"


# --- 2. destination failing every time ------------------------------------------------------------------------


async def test_fault_failing_destination_gets_three_attempts_then_one_failure_notice(rig: Rig) -> None:
    recipe_id = new_recipe_id("102")
    await rig.api.save_recipe("failing", recipe_id)
    rig.hooks.script("failing", *[Reply(503, body='{"status": "down"}')] * 6)

    status, _, _ = await rig.api.link("failing", [order_line(recipe_id, "2001")])
    assert status == 202

    notice = await rig.smtp.wait_for_async(lambda m: "sad-ops@faults.example" in m.rcpt_tos, deadline_s=60)

    # Barrier instead of a quiet period: every outcome and retry command published so far has been processed.
    async def settled() -> bool:
        probe = rig.probe
        return (
            await probe.caught_up("notifier", DELIVERIES_OUTCOMES)
            and await probe.caught_up("association-store", DELIVERIES_OUTCOMES)
            and await probe.caught_up("retry", DELIVERIES_RETRY)
            and await probe.caught_up("deliver-zapier", deliveries_requested("zapier"))
        )

    await rig.eventually(settled, within=30, what="notifier, association store, retry and deliverer to catch up")
    await rig.watcher.catch_up(DELIVERIES_OUTCOMES, await rig.probe.end_offsets(DELIVERIES_OUTCOMES))
    await rig.watcher.catch_up(
        deliveries_requested("zapier"), await rig.probe.end_offsets(deliveries_requested("zapier"))
    )

    assert len(rig.hooks.requests_to("failing")) == 3, "exactly three attempts reach the destination"
    outcomes = _outcomes(rig, "failing")
    assert len({o["deliveryId"] for o in outcomes}) == 1
    attempts = sorted(o["attempt"] for o in outcomes if not o["final"])
    assert attempts == [1, 2, 3], outcomes
    finals = [o for o in outcomes if o["final"]]
    assert [(o["status"], o["attempt"]) for o in finals] == [("failed", 3)], finals
    requested = [
        v["attempt"]
        for _, v in rig.watcher.decoded(deliveries_requested("zapier"))
        if v["deliveryId"] == outcomes[0]["deliveryId"]
    ]
    assert sorted(requested) == [1, 2, 3], "no fourth attempt is requested"

    delivery = await _one_delivery(rig, "failing", "2001")
    assert delivery is not None
    assert (delivery["status"], delivery["attempts"]) == ("failed", 3)
    assert "503" in (delivery["lastError"] or "")

    mails = rig.smtp.find(lambda m: any(r.endswith("@faults.example") for r in m.rcpt_tos))
    failing_mails = [m for m in mails if "2001" in str(m.message["Subject"])]
    assert len(failing_mails) == 1, [str(m.message["Subject"]) for m in failing_mails]
    assert sorted(notice.rcpt_tos) == ["oncall@faults.example", "sad-ops@faults.example"]
    assert "failed" in str(notice.message["Subject"]).lower()
    assert not rig.smtp.find(lambda m: "happy-ops@faults.example" in m.rcpt_tos), "a success notice was sent"


# --- 4. the retry service killed with retries scheduled --------------------------------------------------------


async def test_fault_retry_service_killed_keeps_its_scheduled_retries(rig: Rig) -> None:
    recipe_id = new_recipe_id("104")
    await rig.api.save_recipe("rescheduled", recipe_id)
    numbers = ["4001", "4002", "4003"]
    rig.hooks.script("later", *[Reply(503, body='{"status": "later"}')] * len(numbers))

    status, _, _ = await rig.api.link("rescheduled", [order_line(recipe_id, n) for n in numbers])
    assert status == 202

    async def scheduled() -> bool:
        commands = [v for _, v in rig.watcher.decoded(DELIVERIES_RETRY) if v["request"]["tenant"] == "rescheduled"]
        return len(commands) == len(numbers) and await rig.probe.caught_up("retry", DELIVERIES_RETRY)

    await rig.eventually(scheduled, within=60, what="three retries to be scheduled (6 s out)")
    await rig.stack.kill("retry")
    # The retries were still pending when the service died: only the three first attempts reached the hook.
    assert len(rig.hooks.requests_to("later")) == len(numbers)
    await rig.stack.restart("retry")

    async def all_delivered() -> list[dict[str, Any]] | None:
        found = [await _one_delivery(rig, "rescheduled", n) for n in numbers]
        done = [d for d in found if d is not None and d["status"] == "succeeded"]
        return done if len(done) == len(numbers) else None

    delivered = await rig.eventually(
        all_delivered, within=90, what="the scheduled retries to be delivered after a restart"
    )
    assert [d["attempts"] for d in delivered] == [2, 2, 2]
    assert len(rig.hooks.requests_to("later")) == 2 * len(numbers)


# --- 3. a deliverer killed in the middle of 200 deliveries ------------------------------------------------------


def _s3_objects(rig: Rig, prefix: str) -> dict[str, str]:
    """``{key: ETag}`` of every object under ``prefix`` in the rig's bucket."""
    client = rig.s3.client()
    found: dict[str, str] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=rig.s3_bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"]] = item["ETag"]
    return found


async def test_fault_deliverer_killed_mid_batch_delivers_everything_once(rig: Rig) -> None:
    recipe_id = new_recipe_id("103")
    await rig.api.save_recipe("bulk", recipe_id)
    numbers = [f"3{i:03d}" for i in range(200)]
    expected = {f"bulk/{n}_ID_id{n}_R_{recipe_id}_{stem}" for n in numbers for stem in ("Recipe.json", "Ticket.pdf")}

    # The deliverer is down while the 200 bundles are built, so it comes back to a backlog and is working through
    # it (several attempts in flight) when it is killed.
    await rig.stack.kill("deliver-s3")
    status, _, body = await rig.api.link("bulk", [order_line(recipe_id, n) for n in numbers])
    assert status == 202, body
    assert body["accepted"] == 200

    async def all_requested() -> bool:
        requests = rig.watcher.decoded(deliveries_requested("s3"))
        return len({v["deliveryId"] for _, v in requests if v["tenant"] == "bulk"}) == len(numbers)

    await rig.eventually(all_requested, within=120, what="the 200 bundles to be built and their deliveries requested")
    await rig.stack.restart("deliver-s3")

    async def landed(at_least: int) -> dict[str, str] | None:
        objects = await asyncio.to_thread(_s3_objects, rig, "bulk/")
        return objects if len(objects) >= at_least else None

    before = await rig.eventually(lambda: landed(60), within=60, what="the first deliveries to land in S3")
    await rig.stack.kill("deliver-s3")
    killed_at = time.monotonic()
    await rig.stack.restart("deliver-s3")

    everything = await rig.eventually(lambda: landed(len(expected)), within=120, what="all 400 files in S3", interval=1)
    print(
        f"{len(before)} files had landed when deliver-s3 was killed; all {len(everything)} "
        f"{time.monotonic() - killed_at:.1f}s later"
    )
    assert set(everything) == expected, "extra or missing objects"

    def contents() -> dict[str, bytes]:
        client = rig.s3.client()
        return {key: client.get_object(Bucket=rig.s3_bucket, Key=key)["Body"].read() for key in sorted(expected)}

    stored = await asyncio.to_thread(contents)
    for key, data in stored.items():
        assert data == _artifact(rig, key.removeprefix("bulk/")), key

    # The delivery log agrees: one delivery per order line, succeeded.
    async def log_of(number: str) -> dict[str, Any] | None:
        return await _one_delivery(rig, "bulk", number)

    async def all_succeeded() -> bool:
        found = await asyncio.gather(*(log_of(n) for n in numbers))
        return all(d is not None and d["status"] == "succeeded" for d in found)

    await rig.eventually(all_succeeded, within=30, what="the lookup to show 200 succeeded deliveries")


# --- 6. malformed messages on every consumed topic --------------------------------------------------------------


def _malformed(topic: str) -> bytes:
    return b'{"this is": "not a message of ' + topic.encode() + b'", "cut off'


async def _valid_messages(rig: Rig, recipe_id: str) -> dict[str, tuple[bytes, bytes, dict[str, str]]]:
    """Per topic: (key, valid value, how to recognise what processing it produced)."""
    now = utcnow()
    order = OrderLine(order_id="id6001", order_number="6001", item_id="1", item_quantity=1)
    request = DeliverBundle(
        delivery_id="dlq-delivery-retry",
        trigger_id="dlq-trigger",
        tenant="dlq",
        integration_id="dlq-hook",
        integration_type="zapier",
        recipe_id=recipe_id,
        feed="order",
        reason="manual",
        order=order,
        attempt=3,
        requested_at=now,
    )
    messages: dict[str, tuple[bytes, bytes, dict[str, str]]] = {
        RECIPES_SAVED: (
            recipe_id.encode(),
            RecipeSaved(
                event_id="dlq-recipe-saved",
                tenant="dlq",
                recipe_id=recipe_id,
                recipe_key=recipe_object_key("dlq", recipe_id),
                created=now,
                occurred_at=now,
            )
            .model_dump_json()
            .encode(),
            {},
        ),
        ORDERS_EVENTS: (
            b"dlq:id6001",
            OrderEventOccurred(
                event_id="dlq-linked",
                tenant="dlq",
                type="linked",
                order_id="id6001",
                order_number="6001",
                items=(OrderItem(recipe_id=recipe_id, item_id="1", item_quantity=1),),
                occurred_at=now,
            )
            .model_dump_json()
            .encode(),
            {},
        ),
        INTEGRATIONS_TRIGGERED: (
            recipe_id.encode(),
            IntegrationsTriggered(
                trigger_id="dlq-trigger-built",
                tenant="dlq",
                recipe_id=recipe_id,
                recipe_key=recipe_object_key("dlq", recipe_id),
                feed="order",
                reason="manual",
                order=order,
                integration_ids=("dlq-hook",),
                occurred_at=now,
            )
            .model_dump_json()
            .encode(),
            {"requested-trigger": "dlq-trigger-built"},
        ),
        DELIVERIES_OUTCOMES: (
            b"dlq-delivery-outcome",
            DeliveryAttempted(
                delivery_id="dlq-delivery-outcome",
                trigger_id="dlq-trigger",
                tenant="dlq",
                integration_id="dlq-hook",
                integration_type="zapier",
                recipe_id=recipe_id,
                feed="order",
                reason="manual",
                order=order,
                attempt=3,
                status="failed",
                final=True,
                error_class="TransientError",
                error_message="injected outcome",
                occurred_at=now,
            )
            .model_dump_json()
            .encode(),
            {"notice": "dlq-delivery-outcome"},
        ),
        DELIVERIES_RETRY: (
            b"dlq-delivery-retry",
            RetryDelivery(
                request=request,
                error_class="TransientError",
                error_message="injected retry",
                failed_at=now,
            )
            .model_dump_json()
            .encode(),
            {"outcome": "dlq-delivery-retry"},
        ),
    }
    for kind in INTEGRATION_TYPES:
        delivery_id = f"dlq-delivery-{kind}"
        unknown = request.model_copy(
            update={
                "delivery_id": delivery_id,
                "integration_id": f"ghost-{kind}",
                "integration_type": kind,
                "attempt": 1,
            }
        )
        messages[deliveries_requested(kind)] = (
            recipe_id.encode(),
            unknown.model_dump_json().encode(),
            {"outcome": delivery_id},
        )
    return messages


CONSUMERS = {
    RECIPES_SAVED: ("association-store",),
    ORDERS_EVENTS: ("association-store", "retry"),
    INTEGRATIONS_TRIGGERED: ("association-store", "bundle-builder"),  # the store records pending deliveries
    DELIVERIES_OUTCOMES: ("association-store", "notifier", "retry"),  # retry: destination health
    DELIVERIES_RETRY: ("retry",),
    **{deliveries_requested(kind): (f"deliver-{kind}",) for kind in INTEGRATION_TYPES},
}


def _dead_letters(rig: Rig) -> list[tuple[Record, dict[str, Any]]]:
    return rig.watcher.decoded(DELIVERIES_DEAD)


async def test_fault_malformed_messages_are_dead_lettered_and_the_next_is_processed(rig: Rig) -> None:
    recipe_id = new_recipe_id("105")
    await rig.api.save_recipe("dlq", recipe_id)
    valid = await _valid_messages(rig, recipe_id)
    assert set(valid) == set(CONSUMERS)

    published: dict[str, tuple[int, int, int]] = {}  # topic -> (partition, malformed offset, valid offset)
    for topic, (key, value, _) in valid.items():
        partition, bad_offset = await rig.probe.publish(topic, _malformed(topic), key=key)
        same_partition, good_offset = await rig.probe.publish(topic, value, key=key)
        assert same_partition == partition
        published[topic] = (partition, bad_offset, good_offset)

    # Every consumer group dead-letters the malformed message, names itself and says why...
    def missing_dead_letters() -> list[str]:
        letters = _dead_letters(rig)
        return [
            f"{service} on {topic}[{partition}]@{bad_offset}"
            for topic, (partition, bad_offset, _) in published.items()
            for service in CONSUMERS[topic]
            if not any(
                v["sourceTopic"] == topic
                and v.get("partition") == partition
                and v.get("offset") == bad_offset
                and v["service"] == service
                for _, v in letters
            )
        ]

    async def all_dead_lettered() -> bool:
        return not missing_dead_letters()

    try:
        await rig.eventually(all_dead_lettered, within=60, what="a dead letter per consumer of each malformed message")
    except AssertionError:
        raise AssertionError(f"no dead letter from: {missing_dead_letters()}") from None

    for topic, (partition, bad_offset, good_offset) in published.items():
        letters = [
            v
            for _, v in _dead_letters(rig)
            if v["sourceTopic"] == topic and v.get("partition") == partition and v.get("offset") == bad_offset
        ]
        assert sorted(v["service"] for v in letters) == sorted(CONSUMERS[topic]), (topic, letters)
        for letter in letters:
            assert letter["reason"].startswith("invalid message: "), letter
            assert letter["errorClass"] == "ValidationError", letter
            # Not JSON, so none of it is kept (it could hold anything): size and hash say which record it was.
            assert (letter["payloadB64"], letter["payloadComplete"]) == ("", False)
            assert letter["payloadSha256"] == hashlib.sha256(_malformed(topic)).hexdigest()
            assert letter["payloadSize"] == len(_malformed(topic))
        # ...and the valid message behind it is processed, not dead-lettered.
        assert not [
            v
            for _, v in _dead_letters(rig)
            if v["sourceTopic"] == topic and v.get("partition") == partition and v.get("offset") == good_offset
        ]

    # Each group committed past the valid message (committed = handled: NACK_ON_ERROR, commit after the handler).
    async def committed_past_valid() -> bool:
        for topic, (partition, _, good_offset) in published.items():
            for group in CONSUMERS[topic]:
                if await rig.probe.committed(group, topic, partition) <= good_offset:
                    return False
        return True

    await rig.eventually(committed_past_valid, within=60, what="every group to commit past the valid message")

    # What the valid messages did.
    for topic, (_, _, expect) in valid.items():
        if "outcome" in expect:
            delivery_id = expect["outcome"]

            async def has_outcome(d: str = delivery_id) -> bool:
                return any(v.get("deliveryId") == d for _, v in rig.watcher.decoded(DELIVERIES_OUTCOMES))

            await rig.eventually(has_outcome, within=30, what=f"an outcome for {delivery_id} ({topic})")
        if "requested-trigger" in expect:
            trigger_id = expect["requested-trigger"]

            async def requested(t: str = trigger_id) -> bool:
                return any(v.get("triggerId") == t for _, v in rig.watcher.decoded(deliveries_requested("zapier")))

            await rig.eventually(requested, within=30, what=f"a delivery request built from {topic}")
        if "notice" in expect:
            await rig.smtp.wait_for_async(
                lambda m: "dlq-ops@faults.example" in m.rcpt_tos and "dlq-delivery-outcome" in str(m.message),
                deadline_s=30,
            )
    orders = await rig.api.orders("dlq", orderNumber="6001")
    assert [o["orderId"] for o in orders] == ["id6001"], "the valid order event was not applied"


# --- issue 13: destination health ---------------------------------------------------------------------------


async def test_fault_sftp_down_is_paused_as_unhealthy_held_probed_and_resumed_once_it_is_up(rig: Rig) -> None:
    # rig.health_sftp is not running: its port refuses connections, as a destination that is down.
    recipe_id = new_recipe_id("111")
    await rig.api.save_recipe("sick", recipe_id)

    status, _, _ = await rig.api.link("sick", [order_line(recipe_id, "7001")])
    assert status == 202
    paused = await rig.smtp.wait_for_async(
        lambda m: "sick-ops@faults.example" in m.rcpt_tos and "paused" in str(m.message["Subject"]).lower(),
        deadline_s=60,
    )
    assert "Sick factory SFTP" in str(paused.message["Subject"])
    assert "2 consecutive failed attempts" in paused.message.get_content(), paused.message.get_content()

    # A later order is held, not attempted; the first one's last attempt is held too, not made and not failed.
    status, _, _ = await rig.api.link("sick", [order_line(recipe_id, "7002")])
    assert status == 202

    async def probed_while_down() -> bool:
        # Probes take the held request whose delivery was accepted first: order 7001's attempt 3 once it is held
        # (its back-off is 6 s). Attempted while the server is down, it fails and is held again, not failed.
        return any(
            o["attempt"] == 3 and o["status"] == "retrying" and (o.get("order") or {}).get("orderNumber") == "7001"
            for o in _outcomes(rig, "sick")
        )

    await rig.eventually(probed_while_down, within=40, what="a probe of order 7001 to fail while the server is down")
    held = await _one_delivery(rig, "sick", "7002")
    assert held is not None
    # Held on arrival; at most one attempt, by a probe made before order 7001's last attempt was held.
    assert held["status"] in ("pending", "retrying"), held
    assert held["attempts"] <= 1, held
    assert not [o for o in _outcomes(rig, "sick") if o["status"] == "failed"], "a held delivery failed"

    account = await rig.health_sftp.start()  # back: the next probe goes through

    async def delivered(number: str) -> dict[str, Any] | None:
        found = await _one_delivery(rig, "sick", number)
        if found and found["status"] == "failed":
            raise AssertionError(f"the delivery failed: {found}")
        return found if found and found["status"] == "succeeded" else None

    first = await rig.eventually(lambda: delivered("7001"), within=30, what="order 7001 delivered by a probe")
    second = await rig.eventually(lambda: delivered("7002"), within=30, what="held order 7002 delivered")
    assert first["attempts"] == 3  # attempts 1 and 2 failed; 3 was held, probed, and went through
    assert second["attempts"] == 1  # a hold, or a failed probe, is not counted
    for delivery in (first, second):
        for name in delivery["files"]:
            assert (account.root / name).read_bytes() == _artifact(rig, name), name

    async def both_successes_read() -> list[tuple[str, str]] | None:
        found = sorted(
            (o["occurredAt"], (o.get("order") or {}).get("orderNumber", ""))
            for o in _outcomes(rig, "sick")
            if o["status"] == "succeeded"
        )
        return found if len(found) >= 2 else None

    successes = await rig.eventually(both_successes_read, within=15, what="the watcher to read both successes")
    assert [number for _, number in successes] == ["7001", "7002"], "the order accepted first goes out first"

    recovered = await rig.smtp.wait_for_async(
        lambda m: "sick-ops@faults.example" in m.rcpt_tos and "resumed" in str(m.message["Subject"]).lower(),
        deadline_s=30,
    )
    assert "Sick factory SFTP" in str(recovered.message["Subject"])
    notices = rig.smtp.find(lambda m: "sick-ops@faults.example" in m.rcpt_tos)
    subjects = sorted(str(m.message["Subject"]) for m in notices)
    assert len(subjects) == 2, subjects  # one pause, one resume: no failure notice, nothing twice


# --- the invariant: nothing left unfinished ------------------------------------------------------------------------


async def test_fault_every_delivery_the_module_caused_has_ended(rig: Rig) -> None:
    """Runs last in this module: after every fault above, `relay audit --older-than 0` becomes empty for each tenant
    (what a test did not wait for, such as the deliveries of the dlq test's valid trigger, ends shortly after)."""
    for tenant in ("down", "failing", "bulk", "rescheduled", "dlq", "throttled", "sick"):

        async def ended(t: str = tenant) -> bool:
            return await rig.api.audit(t) == []

        await rig.eventually(ended, within=60, what=f"every delivery of tenant {tenant} to end")
