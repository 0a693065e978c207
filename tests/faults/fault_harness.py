"""What the fault-injection tests drive: the stack (``relay dev``'s DevStack, logging to a file), the HTTP API,
the broker seen from outside (a watcher reading every topic, committed offsets per consumer group, raw publishes),
the servers around the stack, and condition polling with deadlines.

``running_rig`` is one stack of every service on its own Tansu broker, with an SMTP capture, a webhook receiver,
an S3 bucket and an SFTP server that is *not* started. ``running_outage_rig`` is a small stack (ingest API and
association store) on a Tansu that keeps its data in SeaweedFS, so the broker can be stopped and started again on
the same port. Test modules wrap them in module-scoped fixtures (this directory has no conftest.py: mypy checks
``tests`` with the root ``conftest.py`` and two modules named ``conftest`` would collide).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

import aiohttp
from aiohttp import web
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from relay_cli.dev import DevStack, discover_services
from relay_contracts.topics import ALL_TOPICS
from relay_devservers.kafka import TansuBroker
from relay_devservers.processes import free_port
from relay_devservers.seaweedfs import SeaweedS3
from relay_devservers.sftp import AsyncsshSftp
from relay_devservers.smtp import SmtpCapture
from relay_devservers.webhooks import WebhookReceiver
from relay_platform.tenants import hash_api_key
from relay_testing.waits import eventually

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = Path(__file__).with_name("fault-tenants.yaml")
# Every service of the suite; each consumer group is named after its service and has one member per subscriber
# (deliverers: one per concurrent attempt, 3 by default).
SERVICES = discover_services(ROOT)
GROUP_MEMBERS = {
    "association-store": 2,  # orders.events.v1, and one subscriber for its three internal topics
    "bundle-builder": 1,
    "retry": 1,
    "notifier": 1,
    **{s: 3 for s in SERVICES if s.startswith("deliver-")},
}
# Environment a stack must not inherit from the developer's shell.
_UNINHERITED = ("KAFKA_BOOTSTRAP_SERVERS", "OTEL_EXPORTER_OTLP_ENDPOINT", "RELAY_TENANTS_FILE", "OBJECT_STORE_URL")

T = TypeVar("T")


def api_key(tenant: str) -> str:
    """The (test-only) API key of a tenant of ``fault-tenants.yaml``."""
    return f"faults-{tenant}-key"


def write_tenants(path: Path, values: Mapping[str, object]) -> Path:
    """``fault-tenants.yaml`` with every ``{{name}}`` filled in (``{{sha256:<tenant>}}`` = its key's hash)."""
    text = re.sub(r"\{\{sha256:([a-z0-9-]+)\}\}", lambda m: hash_api_key(api_key(m.group(1))), TEMPLATE.read_text())
    for name, value in values.items():
        text = text.replace(f"{{{{{name}}}}}", str(value))
    if "{{" in text:
        raise ValueError(f"unfilled placeholder in {TEMPLATE}: {text[text.index('{{') :][:40]!r}")
    path.write_text(text)
    return path


# --- the stack ---------------------------------------------------------------------------------------------------


@dataclass
class FaultStack(DevStack):
    """``relay dev``'s stack with its output in ``var/stack.log`` (read it when a test fails)."""

    log_path: Path = field(default_factory=lambda: Path(os.devnull))

    def say(self, source: str, line: str, colour: str = "1") -> None:
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write("".join(f"{source:>20} | {part}\n" for part in line.rstrip("\n").split("\n")))

    def log_tail(self, lines: int = 80) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    with mock.patch.dict(os.environ, clear=False):
        for name in _UNINHERITED:
            os.environ.pop(name, None)
        os.environ.update(values)
        yield


async def start_stack(
    var: Path, env: Mapping[str, str], services: Iterable[str] = SERVICES, *, broker_port: int | None = None
) -> FaultStack:
    """Start ``services`` (demo servers off) against the broker in ``env["KAFKA_BOOTSTRAP_SERVERS"]``, with
    ``env`` added to each service's environment; returns once the ingest API is ready. Without that variable
    the stack starts ``relay dev``'s own durable broker (in ``var``, on ``broker_port`` if given)."""
    var.mkdir(parents=True, exist_ok=True)
    stack = FaultStack(
        root=ROOT, var=var, api_port=free_port(), services=list(services), demo=False, log_path=var / "stack.log"
    )
    if broker_port is not None:
        stack.broker_port = broker_port
    with _environment(env):
        try:
            await stack.start()
            await stack.wait_ready(within_s=120)
        except BaseException:
            await stack.stop()
            raise
    return stack


# --- the HTTP API ------------------------------------------------------------------------------------------------


def recipe_body(recipe_id: str, name: str = "Fault Mug") -> dict[str, Any]:
    return {
        "id": recipe_id,
        "created": "2026-11-20T10:00:00Z",
        "name": name,
        "styleCode": "MUG-11",
        "components": [{"name": "Front", "code": "front", "component": {"code": "engraving", "sku": "ENG-1"}}],
    }


def new_recipe_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


@dataclass
class Api:
    base: str
    session: aiohttp.ClientSession

    @staticmethod
    def auth(tenant: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {api_key(tenant)}"}

    async def save_recipe(self, tenant: str, recipe_id: str) -> None:
        async with self.session.post(
            f"{self.base}/api/v2/recipes", json=recipe_body(recipe_id), headers=self.auth(tenant)
        ) as response:
            assert response.status == 201, await response.text()

    async def link(self, tenant: str, lines: list[dict[str, Any]]) -> tuple[int, dict[str, str], Any]:
        """POST /api/v2/recipe/order; returns status, headers and the decoded body."""
        async with self.session.post(
            f"{self.base}/api/v2/recipe/order", json=lines, headers=self.auth(tenant)
        ) as response:
            return response.status, dict(response.headers), await response.json(content_type=None)

    async def orders(self, tenant: str, **query: str) -> list[dict[str, Any]]:
        async with self.session.get(f"{self.base}/api/v2/orders", params=query, headers=self.auth(tenant)) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            found: list[dict[str, Any]] = body["orders"]
            return found

    async def audit(self, tenant: str, older_than: str = "0") -> list[dict[str, Any]]:
        """``relay audit``'s API: the tenant's deliveries not ended for ``older_than`` (all of them, by default)."""
        async with self.session.get(
            f"{self.base}/api/v2/admin/audit", params={"olderThan": older_than}, headers=self.auth(tenant)
        ) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
        assert not body["truncated"], body
        found: list[dict[str, Any]] = body["deliveries"]
        return found

    async def deliveries(self, tenant: str, order_number: str) -> list[dict[str, Any]]:
        orders = await self.orders(tenant, orderNumber=order_number)
        return [d for order in orders for d in order["deliveries"]]


def order_line(recipe_id: str, number: str, item: str = "1", quantity: int = 1) -> dict[str, Any]:
    return {
        "recipeId": recipe_id,
        "orderNumber": number,
        "orderId": f"id{number}",
        "itemId": item,
        "itemQuantity": quantity,
    }


# --- the broker, seen from outside --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes

    def json(self) -> Any:
        return json.loads(self.value)


class TopicWatcher:
    """Reads every topic from the beginning (no consumer group: nothing to join) into ``records``."""

    def __init__(self, bootstrap: str, topics: Iterable[str] = ALL_TOPICS) -> None:
        self.bootstrap = bootstrap
        self.topics = tuple(topics)
        self.records: list[Record] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> TopicWatcher:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        self._consumer = consumer
        await consumer.topics()
        partitions = [
            TopicPartition(topic, partition)
            for topic in self.topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        self._task = asyncio.create_task(self._run(consumer), name="topic-watcher")
        return self

    async def _run(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                self.records.extend(Record(m.topic, m.partition, m.offset, m.key, m.value or b"") for m in batch)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._consumer is not None:
            await self._consumer.stop()

    async def catch_up(self, topic: str, ends: Mapping[int, int], *, within: float = 15.0) -> None:
        """Wait until every record before ``ends`` (partition -> end offset, from ``BrokerProbe.end_offsets``)
        of ``topic`` has been read."""

        async def read_all() -> bool:
            seen: dict[int, int] = {}
            for record in self.on(topic):
                seen[record.partition] = max(seen.get(record.partition, -1), record.offset)
            return all(seen.get(partition, -1) + 1 >= end for partition, end in ends.items())

        await eventually(read_all, within=within, what=f"the watcher to read {topic} up to {dict(ends)}")

    def on(self, topic: str) -> list[Record]:
        if self._task is not None and self._task.done():
            self._task.result()  # the watcher died: say why
        return [r for r in self.records if r.topic == topic]

    def decoded(self, topic: str) -> list[tuple[Record, dict[str, Any]]]:
        """The records of ``topic`` that are JSON objects, with their decoded values."""
        found = []
        for record in self.on(topic):
            with contextlib.suppress(ValueError):
                value = record.json()
                if isinstance(value, dict):
                    found.append((record, value))
        return found


class BrokerProbe:
    """Raw publishes, consumer-group state and committed offsets of the stack's broker."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._offset_readers: dict[str, AIOKafkaConsumer] = {}

    async def start(self) -> BrokerProbe:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all")
        await self._producer.start()
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self._admin.start()
        return self

    async def stop(self) -> None:
        for reader in self._offset_readers.values():
            await reader.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._admin is not None:
            await self._admin.close()

    async def publish(self, topic: str, value: bytes, key: bytes) -> tuple[int, int]:
        """Publish one raw message; returns its (partition, offset)."""
        assert self._producer is not None
        metadata = await self._producer.send_and_wait(topic, value, key=key)
        return metadata.partition, metadata.offset

    async def committed(self, group: str, topic: str, partition: int) -> int:
        """The next offset ``group`` will read on the partition (what it committed), -1 if nothing."""
        reader = self._offset_readers.get(group)
        if reader is None:
            # A member of no subscription: it never joins the group, it only reads the group's offsets.
            reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False)
            await reader.start()
            self._offset_readers[group] = reader
        offset = await reader.committed(TopicPartition(topic, partition))
        return -1 if offset is None else int(offset)

    async def group_members(self, group: str) -> int:
        """How many members ``group`` has when it is ``Stable`` (0 while empty or rebalancing)."""
        assert self._admin is not None
        # One group per request: Tansu 0.6 mis-encodes the answer to a DescribeGroups naming several.
        for response in await self._admin.describe_consumer_groups([group]):
            for described in response.groups:
                error_code, state, members = described[0], described[2], described[5]
                if error_code == 0 and state == "Stable":
                    return len(members)
        return 0

    async def groups_joined(self, members: Mapping[str, int]) -> bool:
        """Is every group ``Stable`` with (at least) its expected number of members?"""
        for group, expected in members.items():
            if await self.group_members(group) < expected:
                return False
        return True

    async def end_offsets(self, topic: str) -> dict[int, int]:
        reader = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await reader.start()
        try:
            await reader.topics()
            partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic) or ())]
            ends = await reader.end_offsets(partitions)
            return {tp.partition: int(offset) for tp, offset in ends.items()}
        finally:
            await reader.stop()

    async def caught_up(self, group: str, topic: str) -> bool:
        """Has ``group`` committed everything on ``topic`` published so far?"""
        for partition, end in (await self.end_offsets(topic)).items():
            if end > 0 and await self.committed(group, topic, partition) < end:
                return False
        return True


# --- destinations -------------------------------------------------------------------------------------------------


@dataclass
class TimedWebhookReceiver(WebhookReceiver):
    """The webhook receiver, also noting when (monotonic clock) each request arrived, per path."""

    arrivals: dict[str, list[float]] = field(default_factory=dict)

    async def _handle(self, request: web.Request) -> web.Response:
        self.arrivals.setdefault(request.path, []).append(time.monotonic())
        return await super()._handle(request)


def utcnow() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


# --- the rigs -----------------------------------------------------------------------------------------------------

SFTP_PASSWORD = "faults-sftp-pw"  # a throwaway test server's password
SHOPIFY_SECRET = "faults-shopify-webhook-secret"  # the "hostile" tenant's Shopify webhook secret (tests only)


@dataclass
class Rig:
    """One running stack of every service and the servers around it."""

    var: Path
    stack: FaultStack
    api: Api
    broker: TansuBroker
    watcher: TopicWatcher
    probe: BrokerProbe
    hooks: TimedWebhookReceiver
    smtp: SmtpCapture
    sftp: AsyncsshSftp
    # Not started until the destination-health test brings it up.
    health_sftp: AsyncsshSftp
    s3: SeaweedS3
    s3_bucket: str
    brokers_started: list[TansuBroker] = field(default_factory=list)

    def restart_broker(self) -> TansuBroker:
        """Stop the broker and start another on its port and storage (a durable rig's keeps everything)."""
        self.broker.stop()
        again = TansuBroker(
            self.broker.workdir,
            port=self.broker.port,
            storage_engine=self.broker.storage_engine,
            extra_env=self.broker.extra_env,
        )
        self.brokers_started.append(again)
        self.broker = again.start()
        return again

    @property
    def objects(self) -> Path:
        """The artifact store (``OBJECT_STORE_URL=file://var/objects``)."""
        return self.var / "objects"

    async def eventually(
        self, check: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float = 0.2
    ) -> T:
        """``eventually``, with the end of the stack's log in the failure."""
        return await _eventually_logged(self.stack, check, within=within, what=what, interval=interval)


@dataclass
class OutageRig:
    var: Path
    stack: FaultStack
    api: Api
    s3: SeaweedS3
    bucket: str
    broker: TansuBroker
    brokers_started: list[TansuBroker] = field(default_factory=list)

    def start_broker(self) -> TansuBroker:
        """Tansu on the rig's port, keeping its data in the SeaweedFS bucket (so it survives a restart)."""
        broker = TansuBroker.on_s3(self.var / "tansu", self.s3, self.bucket, port=self.broker.port)
        self.brokers_started.append(broker)
        self.broker = broker.start()
        return broker

    async def eventually(
        self, check: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float = 0.2
    ) -> T:
        return await _eventually_logged(self.stack, check, within=within, what=what, interval=interval)


async def _eventually_logged(
    stack: FaultStack, check: Callable[[], Awaitable[T | None]], *, within: float, what: str, interval: float
) -> T:
    try:
        return await eventually(check, within=within, what=what, interval=interval)
    except AssertionError as error:
        raise AssertionError(f"{error}\n--- stack log ({stack.log_path}), last lines:\n{stack.log_tail(60)}") from None


def service_env(bootstrap: str, tenants_file: Path, smtp_port: int, s3: SeaweedS3) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "RELAY_TENANTS_FILE": str(tenants_file),
        "FAULTS_SFTP_PASSWORD": SFTP_PASSWORD,
        "FAULTS_SHOPIFY_SECRET": SHOPIFY_SECRET,
        "FAULTS_S3_ACCESS_KEY": s3.access_key,
        "FAULTS_S3_SECRET_KEY": s3.secret_key,
        "NOTIFIER_SMTP_HOST": "127.0.0.1",
        "NOTIFIER_SMTP_PORT": str(smtp_port),
        "NOTIFIER_SMTP_START_TLS": "false",
        "DELIVER_EMAIL_SMTP_HOST": "127.0.0.1",
        "DELIVER_EMAIL_SMTP_PORT": str(smtp_port),
        "DELIVER_EMAIL_SMTP_SECURITY": "none",
    }


@contextlib.asynccontextmanager
async def running_rig(var: Path, s3: SeaweedS3, *, durable_broker: bool = False) -> AsyncIterator[Rig]:
    """Every service on a broker of its own, every consumer group joined; all stopped (by PID) on exit.

    ``durable_broker``: the broker keeps its data in a SeaweedFS bucket, as ``make run``'s does, so
    ``Rig.restart_broker`` brings it back with every topic, message and committed offset."""
    async with contextlib.AsyncExitStack() as cleanup:
        if durable_broker:
            broker = TansuBroker.on_s3(var / "tansu", s3, s3.create_bucket())
        else:
            broker = TansuBroker(var / "tansu")
        brokers = [broker]

        def stop_brokers() -> None:
            for started in brokers:
                started.stop()

        cleanup.callback(stop_brokers)
        broker.start()
        smtp = SmtpCapture(var / "smtp")
        cleanup.callback(smtp.stop)
        smtp.start()
        hooks = TimedWebhookReceiver()
        cleanup.push_async_callback(hooks.stop)
        await hooks.start()
        sftp = AsyncsshSftp(var / "sftp-root", password=SFTP_PASSWORD, port=free_port())
        cleanup.push_async_callback(sftp.stop)
        # Down from the start, for the destination-health test: stopping a server that served would leave the
        # deliverer's pooled connection to it open (asyncssh closes the listener only), so it would not look down.
        health_sftp = AsyncsshSftp(var / "health-sftp-root", password=SFTP_PASSWORD, port=free_port())
        cleanup.push_async_callback(health_sftp.stop)
        bucket = s3.create_bucket()
        values = {
            "sftp_port": sftp.port,
            "health_sftp_port": health_sftp.port,
            "hooks": hooks.url("").rstrip("/"),
            "s3_endpoint": s3.endpoint_url,
        }
        tenants = write_tenants(var / "tenants.yaml", values | {"s3_bucket": bucket})
        stack = await start_stack(var, service_env(broker.bootstrap, tenants, smtp.port, s3))
        cleanup.push_async_callback(stack.stop)
        watcher = await TopicWatcher(broker.bootstrap).start()
        cleanup.push_async_callback(watcher.stop)
        probe = BrokerProbe(broker.bootstrap)
        cleanup.push_async_callback(probe.stop)
        await probe.start()
        session = await cleanup.enter_async_context(http_session())
        rig = Rig(
            var=var,
            stack=stack,
            api=Api(f"http://127.0.0.1:{stack.api_port}", session),
            broker=broker,
            watcher=watcher,
            probe=probe,
            hooks=hooks,
            smtp=smtp,
            sftp=sftp,
            health_sftp=health_sftp,
            s3=s3,
            s3_bucket=bucket,
            brokers_started=brokers,
        )

        async def all_joined() -> bool:
            return await probe.groups_joined(GROUP_MEMBERS)

        await rig.eventually(all_joined, within=90, what="every consumer of every group to have joined", interval=0.5)
        yield rig


@contextlib.asynccontextmanager
async def running_outage_rig(var: Path, s3: SeaweedS3) -> AsyncIterator[OutageRig]:
    """The ingest API and the association store on a Tansu whose data lives in SeaweedFS."""
    async with contextlib.AsyncExitStack() as cleanup:
        bucket = s3.create_bucket()
        first = TansuBroker.on_s3(var / "tansu", s3, bucket)
        started = [first]

        def stop_brokers() -> None:
            for broker in started:
                broker.stop()

        cleanup.callback(stop_brokers)
        first.start()
        values = {
            "sftp_port": 1,
            "health_sftp_port": 1,
            "hooks": "http://127.0.0.1:1",
            "s3_endpoint": s3.endpoint_url,
            "s3_bucket": bucket,
        }
        tenants = write_tenants(var / "tenants.yaml", values)
        # No SMTP server: nothing in this stack sends mail.
        env = service_env(first.bootstrap, tenants, 1, s3)
        stack = await start_stack(var, env, services=["association-store", "ingest-api"])
        cleanup.push_async_callback(stack.stop)
        probe = await BrokerProbe(first.bootstrap).start()
        try:

            async def joined() -> bool:
                return await probe.groups_joined({"association-store": GROUP_MEMBERS["association-store"]})

            await _eventually_logged(stack, joined, within=60, what="the association store's consumers", interval=0.5)
        finally:
            await probe.stop()
        session = await cleanup.enter_async_context(http_session())
        yield OutageRig(
            var=var,
            stack=stack,
            api=Api(f"http://127.0.0.1:{stack.api_port}", session),
            s3=s3,
            bucket=bucket,
            broker=first,
            brokers_started=started,
        )
