"""The deliverer's scale-out: one deliverer service (deliver-zapier) with 1 and with 2 replicas in one consumer group.

Run: ``uv run --frozen python bench/limits_scaleout.py [--smoke] [--requests N] [--reply-delay-ms MS]
[--concurrency C] [--memory-broker] [--partitions P]``.

Issue 11 asks of one deliverer, 1 -> 2 replicas, >= 1.7x the deliveries per second. The deliverer measured is
deliver-zapier against the Zapier hook receiver (``relay_devservers.webhooks``) answering each POST after an
artificial delay (30 ms; smoke 20 ms): of the five destinations its attempt costs the least CPU (one JSON POST of
links, no file upload: ~7 ms CPU per order in ``bench/e2e.py``) and waits on the network the most once the
endpoint is remote, as a real catch hook is. So the deliverer is latency-bound, not CPU-bound, and a second
replica has spare time to add on this 2-core machine; a CPU-bound deliverer would measure the machine instead.

One durable Tansu (``make run``'s broker, ``durable_broker``), the hook receiver as a process of its own
(``--role hooks``), a tenants file with one tenant and one zapier integration pointing at it, and one bundle (a
~40 KiB PDF and a ~8 KiB recipe JSON) in a local artifact store (``OBJECT_STORE_URL``) that every request names.
Phases of 1, 2, then again 1 replica (smoke: 1, 2), the 1-replica rate the mean of its two phases; per phase:

- a fresh consumer group (``DELIVER_ZAPIER_CONSUMER_GROUP``) whose offsets are first committed at the end of
  ``deliveries.requested.zapier.v1``, since a new group starts at the earliest offset and would otherwise deliver
  every earlier phase's requests again;
- the replicas: the real service, ``python -m relay_deliver_zapier``, with its settings' defaults (``concurrency``
  3 unless ``--concurrency``), each in a process of its own;
- warm-up: a few requests, then a wait until the group is stable with every replica's consumers in it (each member
  joining on Tansu costs seconds of rebalance, which must not fall inside the timing);
- N fresh ``DeliverBundle`` requests (600; smoke 6), each its own delivery and order, published at once (keyed by
  delivery ID, as the bundle-builder does), then every outcome awaited on ``deliveries.outcomes.v1`` (read by
  this process without a group, filtered by delivery ID: Tansu tails may show old records); each must succeed.

The rate is outcomes per second between the 10th and the 90th percentile of the outcomes' Kafka record
timestamps, as ``bench/e2e.py`` measures throughput: the start and the tail, where fewer
partitions than consumers have work left, are left out. Progress lines give each process's CPU per delivery, to
tell a busy replica from one waiting on the broker or the hook. Figures: ``deliver_scaleout_x`` (2-replica rate
over 1-replica rate), ``deliver_1_replica_per_s``, ``deliver_2_replicas_per_s``.

What bounds the figure: ``deliveries.requested.zapier.v1`` has 3 partitions (``ensure_topics``) and every replica
runs ``concurrency`` consumers of the group (FastStream's concurrent subscriber with commit-after-handling: one
``AIOKafkaConsumer`` per worker, each handling one message at a time). A partition goes to one consumer only, so
with the default concurrency of 3 one replica already keeps all 3 partitions busy; with two replicas the group has
6 consumers, 3 of them (spread over both replicas) holding a partition and 3 idle, so the messages in flight stay 3.
More replicas help only while replicas x concurrency <= partitions, and even then 2 consumers of 3 partitions
split them 2/1 (at most 1.5x). ``--concurrency 1`` shows that case; ``--memory-broker`` (Tansu with memory storage)
shows what the durable broker's storage adds to each delivery's hop. The bundle-builder's scale-out is not
measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from _limits import Child, cpu_seconds, durable_broker, emit, figure, python_child, run_measurement, say

TAG = "scaleout"
TENANT, INTEGRATION_ID = "bench", "bench-zapier"
SERVICE_MODULE = "relay_deliver_zapier"
# Settings a replica must not inherit from the caller's shell (they would point it at other servers).
_UNINHERITED = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "RELAY_TENANTS_FILE",
    "OBJECT_STORE_URL",
    "LINKS_SIGNING_KEY",
    "DELIVER_ZAPIER_CONSUMER_GROUP",
    "DELIVER_ZAPIER_CONCURRENCY",
)


@dataclass(frozen=True)
class Mode:
    requests: int
    warmup_per_replica: int
    reply_delay_ms: float
    concurrency: int | None  # None: the service's default
    # Replica counts of the phases, in order: 1, 2, 1 brackets the 2-replica phase, so a slow spell of this shared
    # machine weighs on both sides of the ratio.
    phases: tuple[int, ...]
    # Of the deliverer's request topic: ensure_topics' 3, or more as an operator scaling a deliverer creates it.
    partitions: int


FULL = Mode(requests=600, warmup_per_replica=6, reply_delay_ms=30.0, concurrency=None, phases=(1, 2, 1), partitions=3)
SMOKE = Mode(requests=6, warmup_per_replica=3, reply_delay_ms=20.0, concurrency=None, phases=(1, 2), partitions=3)


# --- --role hooks: the slow hook receiver -----------------------------------------------------------------------


async def serve_hooks(port: int, delay_s: float) -> None:
    """The demo hook receiver answering every POST ``delay_s`` late, as a remote endpoint does, until killed."""
    from aiohttp import web

    from relay_devservers.webhooks import WebhookReceiver

    @dataclass
    class SlowHooks(WebhookReceiver):
        async def _handle(self, request: web.Request) -> web.Response:
            await asyncio.sleep(delay_s)
            response = await super()._handle(request)
            # Nothing reads them back here: keep the memory flat over thousands of requests.
            self.received.clear()
            return response

    receiver = await SlowHooks(port=port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await receiver.stop()


# --- outcomes -----------------------------------------------------------------------------------------------------


@dataclass
class Outcomes:
    """Every ``DeliveryAttempted`` of ``deliveries.outcomes.v1`` from now on, read without a consumer group (no
    join to wait for); ``wait`` returns the record timestamps (s) of the outcomes of the wanted delivery IDs."""

    bootstrap: str
    at: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[Outcomes]:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from relay_contracts.topics import DELIVERIES_OUTCOMES

        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100)
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(DELIVERIES_OUTCOMES) or set()
            if not partitions:
                raise RuntimeError(f"{DELIVERIES_OUTCOMES} has no partitions")
            consumer.assign([TopicPartition(DELIVERIES_OUTCOMES, p) for p in partitions])
            await consumer.seek_to_end()
            task = asyncio.create_task(self._read(consumer))
            try:
                yield self
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        finally:
            await consumer.stop()

    async def _read(self, consumer: Any) -> None:
        from pydantic import ValidationError

        from relay_contracts.messages import DeliveryAttempted

        while True:
            batches = await consumer.getmany(timeout_ms=500)
            records = [record for batch in batches.values() for record in batch]
            if not records:
                continue
            async with self._changed:
                for record in records:
                    try:
                        outcome = DeliveryAttempted.model_validate_json(record.value)
                    except ValidationError:
                        continue  # not ours to judge
                    self.at.setdefault(outcome.delivery_id, record.timestamp / 1000)
                    if outcome.status != "succeeded":
                        self.failed[outcome.delivery_id] = f"{outcome.status}: {outcome.error_message}"
                self._changed.notify_all()

    async def wait(self, delivery_ids: Sequence[str], timeout_s: float) -> list[float]:
        wanted = set(delivery_ids)

        def done() -> bool:
            return wanted <= self.at.keys() or bool(wanted & self.failed.keys())

        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(done)
        except TimeoutError:
            missing = len(wanted - self.at.keys())
            raise TimeoutError(f"{missing} of {len(wanted)} outcomes still missing after {timeout_s:g} s") from None
        bad = wanted & self.failed.keys()
        if bad:
            some = min(bad)
            raise RuntimeError(f"{len(bad)} deliveries did not succeed, e.g. {some}: {self.failed[some]}")
        return [self.at[d] for d in delivery_ids]


def steady_rate(times: Sequence[float]) -> float:
    """Outcomes per second between the 10th and the 90th percentile outcome (``bench/e2e.py``'s throughput)."""
    done = sorted(times)
    first, last = int(len(done) * 0.1), max(math.ceil(len(done) * 0.9) - 1, 0)
    if last > first and done[last] > done[first]:
        return (last - first) / (done[last] - done[first])
    span = done[-1] - done[0]
    return len(done) / span if span > 0 else math.nan


# --- the group and the replicas -------------------------------------------------------------------------------


async def start_group_at_end(bootstrap: str, topic: str, group: str) -> None:
    """Commit ``group``'s offsets at the end of ``topic``: a new group starts at the earliest offset otherwise
    (``auto_offset_reset``), and would deliver every request an earlier phase published."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        await consumer.seek_to_end()
        await consumer.commit({tp: await consumer.position(tp) for tp in partitions})
    finally:
        await consumer.stop()


async def group_members(bootstrap: str, group: str) -> tuple[str, int]:
    """The group's state and member count."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    for response in responses:
        for described in response.groups:
            # (error_code, group, state, protocol_type, protocol, members, ...) in every version aiokafka reads.
            return str(described[2]), len(described[5])
    return "unknown", 0


async def wait_for_group(bootstrap: str, group: str, members: int, timeout_s: float) -> None:
    """Wait until ``group`` is stable with ``members`` members (every replica's consumers joined)."""
    deadline = time.monotonic() + timeout_s
    state, seen = "unknown", 0
    while time.monotonic() < deadline:
        state, seen = await group_members(bootstrap, group)
        if state.lower() == "stable" and seen >= members:
            return
        await asyncio.sleep(0.5)
    raise TimeoutError(f"group {group}: {seen} of {members} members, state {state}, after {timeout_s:g} s")


def broker_pids(work: Path, bootstrap: str) -> dict[str, int]:
    """Tansu and its SeaweedFS: the processes whose command line names Tansu's listener or ``work`` (where
    ``durable_broker`` keeps SeaweedFS's data; nothing else started here names either)."""
    marks = (f"tcp://{bootstrap}".encode(), str(work).encode())
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if any(mark in cmdline for mark in marks):
                    found[f"{(entry / 'comm').read_text().strip()}-{entry.name}"] = int(entry.name)
    return found


@dataclass
class Fixture:
    """What every phase shares: broker, hook receiver, tenants file, the bundle in the store."""

    work: Path
    bootstrap: str
    env: dict[str, str]
    files: tuple[Any, ...]
    producer: Any
    outcomes: Outcomes
    hooks_pid: int

    def request(self, n: int) -> Any:
        from relay_contracts.messages import OrderLine
        from relay_delivery.testing import deliver_bundle

        order = OrderLine(order_id=f"SO-{n}", order_number=f"BS-{n}", item_id="1", item_quantity=1, status="paid")
        return deliver_bundle(
            tenant=TENANT, integration_id=INTEGRATION_ID, integration_type="zapier", files=self.files, order=order
        )

    async def publish(self, count: int, first: int) -> list[str]:
        """``count`` fresh requests published at once (every send issued, then every acknowledgement awaited)."""
        from relay_contracts.messages import delivery_key
        from relay_contracts.topics import deliveries_requested

        topic = deliveries_requested("zapier")
        requests = [self.request(first + i) for i in range(count)]
        futures = [
            await self.producer.send(topic, r.model_dump_json().encode(), key=delivery_key(r.delivery_id))
            for r in requests
        ]
        await asyncio.gather(*futures)
        return [r.delivery_id for r in requests]


async def phase(fixture: Fixture, replicas: int, mode: Mode, first: int) -> float:
    """Deliveries per second of ``replicas`` replicas in a fresh group."""
    from relay_contracts.topics import deliveries_requested

    group = f"bench-scaleout-{replicas}-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(fixture.bootstrap, deliveries_requested("zapier"), group)
    concurrency = mode.concurrency or 3
    # OPS_PORT=0: each replica's ops port (/healthz, /metrics) on a free port; on the shared default (9100) the
    # second replica could not start, and the group never reached its members.
    env = fixture.env | {"DELIVER_ZAPIER_CONSUMER_GROUP": group, "OPS_PORT": "0"}
    if mode.concurrency is not None:
        env["DELIVER_ZAPIER_CONCURRENCY"] = str(mode.concurrency)
    children: list[Child] = []
    try:
        started = time.monotonic()
        for i in range(1, replicas + 1):
            log = fixture.work / "logs" / f"{group}-{i}.log"
            children.append(
                await Child.start(f"deliver-zapier-{i}", [sys.executable, "-m", SERVICE_MODULE], env=env, log=log)
            )
        warmup = await fixture.publish(mode.warmup_per_replica * replicas, first)
        await fixture.outcomes.wait(warmup, timeout_s=120)
        await wait_for_group(fixture.bootstrap, group, replicas * concurrency, timeout_s=120)
        for child in children:
            if child.process.returncode is not None:
                raise RuntimeError(f"{child.name} exited with {child.process.returncode}")
        say(TAG, f"{replicas} replica(s) of deliver-zapier joined and warm in {time.monotonic() - started:.1f} s")
        # CPU per delivery of each process, to tell a busy replica from one waiting on the broker or the hook.
        pids = {child.name: child.pid for child in children} | {"hooks": fixture.hooks_pid}
        pids |= broker_pids(fixture.work, fixture.bootstrap)
        cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"this": time.process_time()}
        ids = await fixture.publish(mode.requests, first + len(warmup))
        times = await fixture.outcomes.wait(ids, timeout_s=max(60.0, mode.requests / 5))
        cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()} | {"this": time.process_time()}
    finally:
        await asyncio.gather(*(child.stop() for child in children))
    rate = steady_rate(times)
    span = max(times) - min(times)
    cpu = ", ".join(f"{name} {1000 * (cpu_after[name] - cpu_before[name]) / len(ids):.1f}" for name in cpu_before)
    say(TAG, f"{replicas} replica(s): {rate:.1f} deliveries/s ({len(ids)} in {span:.2f} s overall); CPU ms per "
        f"delivery: {cpu}")  # fmt: skip
    return rate


@contextlib.asynccontextmanager
async def fixture(work: Path, mode: Mode, *, memory_broker: bool) -> AsyncIterator[Fixture]:
    from aiokafka import AIOKafkaProducer

    from relay_contracts.topics import deliveries_requested
    from relay_delivery.testing import store_bundle
    from relay_devservers.processes import free_port
    from relay_platform.broker import producer_options
    from relay_platform.objectstore import LocalDirectoryStore
    from relay_platform.settings import KafkaSettings
    from relay_platform.tenants import load_tenants
    from relay_testing.shared_secrets import secrets_env

    topic_partitions = {deliveries_requested("zapier"): mode.partitions}
    async with durable_broker(work, TAG, memory=memory_broker, partitions=topic_partitions) as bootstrap:
        port = free_port()
        hooks = await Child.start(
            "hooks",
            python_child(
                Path(__file__), "--role", "hooks", "--port", str(port), "--delay-ms", f"{mode.reply_delay_ms}"
            ),
            env=None,
            log=work / "logs" / "hooks.log",
        )
        try:
            await hooks.wait_for_port(port)
            tenants = work / "tenants.yaml"
            integration = {"id": INTEGRATION_ID, "type": "zapier", "hook-url": f"http://127.0.0.1:{port}/hooks/bench"}
            config = {"tenants": {TENANT: {"recipe-prefix": "999", "integrations": [integration]}}}
            tenants.write_text(yaml.safe_dump(config, sort_keys=False))
            load_tenants(tenants)  # a bad file fails here, not in every replica
            objects = work / "objects"
            files = await store_bundle(
                LocalDirectoryStore(objects),
                {
                    "pick-ticket.pdf": (b"%PDF-1.4\n" + secrets.token_bytes(40 * 1024), "application/pdf"),
                    "recipe.json": (b'{"recipe": "' + secrets.token_hex(4 * 1024).encode() + b'"}', "application/json"),
                },
            )
            env = (
                {k: v for k, v in os.environ.items() if k not in _UNINHERITED}
                | secrets_env()
                | {
                    "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "RELAY_TENANTS_FILE": str(tenants),
                    "OBJECT_STORE_URL": f"file://{objects}",
                    "RELAY_LOG_FORMAT": "text",
                    "PYTHONUNBUFFERED": "1",
                }
            )
            producer = AIOKafkaProducer(**producer_options(KafkaSettings(bootstrap_servers=bootstrap), service=TAG))
            await producer.start()
            try:
                async with Outcomes(bootstrap).reading() as outcomes:
                    yield Fixture(work, bootstrap, env, files, producer, outcomes, hooks.pid)
            finally:
                await producer.stop()
        finally:
            await hooks.stop()


async def measure(mode: Mode, *, memory_broker: bool = False) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="relay-bench-scaleout-") as tmp:
        async with fixture(Path(tmp), mode, memory_broker=memory_broker) as shared:
            rates: dict[int, list[float]] = {}
            for n, replicas in enumerate(mode.phases):
                rates.setdefault(replicas, []).append(await phase(shared, replicas, mode, first=100_000 * n))
    one, two = statistics.mean(rates[1]), statistics.mean(rates[2])
    say(TAG, f"1 -> 2 replicas: {two / one:.2f}x ({one:.1f} -> {two:.1f} deliveries/s)")
    concurrency = f"concurrency {mode.concurrency or 3} each"
    setup = f"{mode.reply_delay_ms:g} ms hook replies, {concurrency}, {mode.partitions} partitions"
    return [
        figure(
            "deliver_scaleout_x",
            f"deliver-zapier, 1 -> 2 replicas, deliveries/s ratio ({setup})",
            two / one,
            "x",
            goal=">= 1.7x",
            better="higher",
            limit_label="1 replica, deliveries/s",
            limit_value=one,
        ),
        figure(
            "deliver_1_replica_per_s",
            f"deliver-zapier, 1 replica, deliveries/s ({setup})",
            one,
            "deliveries/s",
            goal="reference for the scale-out",
            better="higher",
        ),
        figure(
            "deliver_2_replicas_per_s",
            f"deliver-zapier, 2 replicas, deliveries/s ({setup})",
            two,
            "deliveries/s",
            goal="reference for the scale-out",
            better="higher",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tiniest run (6 requests per phase), for `make test`")
    parser.add_argument("--requests", type=int, help="measured requests per phase (600 by default)")
    parser.add_argument("--reply-delay-ms", type=float, help="the hook receiver's delay per POST (30 by default)")
    parser.add_argument("--concurrency", type=int, help="DELIVER_ZAPIER_CONCURRENCY per replica (service default: 3)")
    parser.add_argument(
        "--memory-broker", action="store_true", help="Tansu with memory storage, not make run's durable broker"
    )
    parser.add_argument("--partitions", type=int, help="partitions of the deliverer's request topic (default 3)")
    parser.add_argument("--role", choices=("measure", "hooks"), default="measure", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--delay-ms", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "hooks":
        asyncio.run(serve_hooks(args.port, args.delay_ms / 1000))
        return
    mode = SMOKE if args.smoke else FULL
    mode = Mode(
        requests=args.requests or mode.requests,
        warmup_per_replica=mode.warmup_per_replica,
        reply_delay_ms=mode.reply_delay_ms if args.reply_delay_ms is None else args.reply_delay_ms,
        concurrency=args.concurrency or mode.concurrency,
        phases=mode.phases,
        partitions=args.partitions or mode.partitions,
    )
    started = time.monotonic()
    figures = run_measurement(measure(mode, memory_broker=args.memory_broker))
    say(TAG, f"done in {time.monotonic() - started:.0f} s")
    emit(figures)


if __name__ == "__main__":
    main()
