"""Fault injection: ``relay dev`` is stopped (as Ctrl-C does) while orders are in flight and started again on the
same ``var/`` (issue 8).

The stack's own broker keeps its data in ``var/dev/broker`` (Tansu on SeaweedFS), so every order the API accepted
before the stop is delivered after the restart. Between the two runs the broker alone is started on that directory
to show what it kept: the topics, the messages and the consumer groups' committed offsets.

Isolated like the other fault tests: demo servers off (their ports are fixed and the walkthrough test may hold
them), an SFTP server and a hook receiver of its own on free ports, the broker and the API on free ports.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from relay_contracts.topics import ALL_TOPICS, ORDERS_EVENTS
from relay_devservers.kafka import DurableTansu
from relay_devservers.processes import free_port
from relay_devservers.sftp import AsyncsshSftp
from relay_devservers.webhooks import WebhookReceiver
from relay_platform.tenants import hash_api_key
from relay_testing.waits import eventually

sys.path.insert(0, str(Path(__file__).parent))
from fault_harness import (
    Api,
    BrokerProbe,
    TopicWatcher,
    _eventually_logged,
    api_key,
    http_session,
    new_recipe_id,
    order_line,
    start_stack,
)

pytestmark = pytest.mark.integration

TENANT = "restart"
ORDERS = 30
# The services an order goes through to these destinations (the other deliverers and the notifier would idle).
FLOW_SERVICES = ["association-store", "bundle-builder", "deliver-sftp", "deliver-zapier", "ingest-api", "retry"]
PARTITIONS = 3  # of every topic (relay_platform.broker.ensure_topics)
SFTP_PASSWORD = "restart-sftp-pw"  # a throwaway test server's password
INTEGRATIONS = {"restart-sftp", "restart-hook"}
TENANTS_YAML = """\
tenants:
  restart:
    recipe-prefix: "109"
    rate-limit: {{per-second: 500, burst: 1000}}
    api-keys:
      - {{name: tests, sha256: "{key_hash}", permissions: [admin]}}
    integrations:
      - id: restart-sftp
        type: sftp
        host: 127.0.0.1
        port: {sftp_port}
        username: relay
        password: ${{RESTART_SFTP_PASSWORD}}
        # The test server makes a new host key at every start.
        insecure-accept-any-host-key: true
        directory: /
        subfolders: order
      - id: restart-hook
        type: zapier
        hook-url: "{hook_url}"
"""


def _ticket(number: str, recipe_id: str) -> str:
    return f"{number}_ID_id{number}_R_{recipe_id}_Ticket.pdf"


async def _topics(bootstrap: str) -> set[str]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return set(await consumer.topics())
    finally:
        await consumer.stop()


async def _committed(bootstrap: str) -> dict[int, int]:
    """The association store's committed offsets on the order events (-1: none)."""
    probe = await BrokerProbe(bootstrap).start()
    try:
        return {p: await probe.committed("association-store", ORDERS_EVENTS, p) for p in range(PARTITIONS)}
    finally:
        await probe.stop()


async def _kept_order_numbers(bootstrap: str, numbers: set[str]) -> set[str]:
    """Which of ``numbers`` have their order event on the topic (read from the beginning)."""
    watcher = await TopicWatcher(bootstrap, [ORDERS_EVENTS]).start()
    try:

        async def all_read() -> set[str] | None:
            found = {str(v.get("orderNumber")) for _, v in watcher.decoded(ORDERS_EVENTS)} & numbers
            return found if found == numbers else None

        with contextlib.suppress(AssertionError):
            return await eventually(all_read, within=15, what="the order events")
        return {str(v.get("orderNumber")) for _, v in watcher.decoded(ORDERS_EVENTS)} & numbers
    finally:
        await watcher.stop()


@pytest.fixture
async def destinations(tmp_path: Path) -> AsyncIterator[tuple[AsyncsshSftp, WebhookReceiver]]:
    sftp = AsyncsshSftp(tmp_path / "sftp-root", password=SFTP_PASSWORD, port=free_port())
    await sftp.start()
    hooks = await WebhookReceiver().start()
    try:
        yield sftp, hooks
    finally:
        await hooks.stop()
        await sftp.stop()


async def test_fault_orders_in_flight_when_relay_dev_stops_are_all_delivered_after_it_starts_again(
    tmp_path: Path, destinations: tuple[AsyncsshSftp, WebhookReceiver]
) -> None:
    sftp, hooks = destinations
    var = tmp_path / "var"
    var.mkdir()
    tenants = tmp_path / "tenants.yaml"
    tenants.write_text(
        TENANTS_YAML.format(key_hash=hash_api_key(api_key(TENANT)), sftp_port=sftp.port, hook_url=hooks.url("/restart"))
    )
    env = {"RELAY_TENANTS_FILE": str(tenants), "RESTART_SFTP_PASSWORD": SFTP_PASSWORD}
    broker_port = free_port()
    recipe_id = new_recipe_id("109")
    numbers = [str(7000 + i) for i in range(ORDERS)]

    def landed() -> set[str]:
        return {p.name for p in sftp.root.rglob("*_Ticket.pdf")}

    started = time.monotonic()
    first = await start_stack(var, env, FLOW_SERVICES, broker_port=broker_port)
    try:
        async with http_session() as session:
            api = Api(f"http://127.0.0.1:{first.api_port}", session)
            await api.save_recipe(TENANT, recipe_id)
            half = ORDERS // 2
            for number in numbers[:half]:
                status, _, body = await api.link(TENANT, [order_line(recipe_id, number)])
                assert status == 202, body

            # Mid-flow: the first orders are going through (offsets committed), the rest are yet to come.
            async def some_landed() -> bool:
                return bool(landed())

            await _eventually_logged(
                first, some_landed, within=90, what="a first ticket on the SFTP server", interval=0.2
            )
            for number in numbers[half:]:
                status, _, body = await api.link(TENANT, [order_line(recipe_id, number)])
                assert status == 202, body
        before_committed = await _committed(f"127.0.0.1:{broker_port}")
    finally:
        # As a Ctrl-C would: services, then the broker, then its storage.
        await first.stop()
    first_run = time.monotonic() - started
    delivered_before_restart = len(landed())
    assert delivered_before_restart < ORDERS, "every order was delivered before the stop: nothing was in flight"
    assert any(offset >= 0 for offset in before_committed.values()), "the association store had committed nothing"

    # The broker alone on the same directory: what it kept across the stop.
    broker = DurableTansu(var / "dev" / "broker", log_dir=var / "dev" / "logs", port=broker_port).start()
    try:
        topics = await _topics(broker.bootstrap)
        after_committed = await _committed(broker.bootstrap)
        kept = await _kept_order_numbers(broker.bootstrap, set(numbers))
    finally:
        broker.stop()
    assert set(ALL_TOPICS) <= topics, f"topics lost: {sorted(set(ALL_TOPICS) - topics)}"
    assert kept == set(numbers), f"order events lost: {sorted(set(numbers) - kept)}"
    for partition, offset in before_committed.items():
        assert after_committed[partition] >= offset, f"committed offset of {ORDERS_EVENTS}[{partition}] lost"

    second = await start_stack(var, env, FLOW_SERVICES, broker_port=broker_port)
    try:
        async with http_session() as session:
            api = Api(f"http://127.0.0.1:{second.api_port}", session)
            expected = {_ticket(number, recipe_id) for number in numbers}

            async def all_landed() -> bool:
                return landed() >= expected

            await _eventually_logged(
                second, all_landed, within=120, what=f"{ORDERS} tickets on the SFTP server", interval=0.5
            )

            async def all_succeeded() -> list[str] | None:
                pending = []
                for number in numbers:
                    deliveries: list[dict[str, Any]] = await api.deliveries(TENANT, number)
                    done = {d["integration"] for d in deliveries if d["status"] == "succeeded"}
                    if done != INTEGRATIONS:
                        pending.append(number)
                return None if pending else numbers

            await _eventually_logged(
                second,
                all_succeeded,
                within=60,
                what="every order's SFTP and hook delivery to have succeeded",
                interval=0.5,
            )
    finally:
        await second.stop()
    hooked = {r.json().get("orderNumber") for r in hooks.requests_to("/restart")}
    assert hooked >= set(numbers)
    print(
        f"first run {first_run:.1f}s, {delivered_before_restart}/{ORDERS} delivered before the stop, "
        f"all delivered after the restart; total {time.monotonic() - started:.1f}s"
    )
