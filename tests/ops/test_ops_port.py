"""The ops port of every service (``relay_platform.ops``): ``/healthz``, ``/readyz`` and ``/metrics`` on the real
broker, and the metrics moving after real deliveries, failures, dead letters and API requests.

All ten services run in this process on the session broker, started together (each group join costs seconds on
Tansu), each with its own consumer group so nothing else in the session is read twice; ``OPS_PORT=0`` (set by
``relay_testing``) gives each its own free port, found through ``ops_server(app).port``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from faststream import FastStream
from faststream.kafka import KafkaBroker
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError

from relay_association_store.main import create_app as association_store_app
from relay_association_store.settings import Settings as AssociationStoreSettings
from relay_bundle_builder.main import create_app as bundle_builder_app
from relay_bundle_builder.settings import Settings as BundleBuilderSettings
from relay_contracts.messages import DeliverBundle, OrderLine, delivery_key
from relay_contracts.topics import deliveries_requested
from relay_deliver_azure_blob.main import create_app as azure_blob_app
from relay_deliver_azure_blob.settings import Settings as AzureBlobSettings
from relay_deliver_email.main import create_app as email_app
from relay_deliver_email.settings import Settings as EmailSettings
from relay_deliver_s3.main import create_app as s3_app
from relay_deliver_s3.settings import Settings as S3Settings
from relay_deliver_sftp.main import create_app as sftp_app
from relay_deliver_sftp.settings import Settings as SftpSettings
from relay_deliver_zapier.main import create_app as zapier_app
from relay_deliver_zapier.settings import Settings as ZapierSettings
from relay_delivery.testing import deliver_bundle
from relay_devservers.processes import free_port
from relay_devservers.webhooks import Reply, WebhookReceiver
from relay_ingest_api.main import OPS_SERVER, start_server
from relay_ingest_api.main import create_app as ingest_app
from relay_ingest_api.settings import Settings as IngestSettings
from relay_notifier.main import create_app as notifier_app
from relay_notifier.settings import Settings as NotifierSettings
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.ops import ops_server
from relay_platform.settings import KafkaSettings, OpsSettings
from relay_retry.main import create_app as retry_app
from relay_retry.settings import ScheduleDatabaseSettings
from relay_retry.settings import Settings as RetrySettings
from relay_testing.shared_secrets import ASSOCIATION_STORE_TOKEN, LINK_SIGNING_KEY, link_settings
from relay_testing.waits import eventually

pytestmark = pytest.mark.integration

TENANTS_FILE = Path(__file__).parent / "tenants.yaml"
API_KEY = "ops-writer-key"
READY_DEADLINE_S = 60.0

KAFKA_SERVICES = (
    "association-store",
    "bundle-builder",
    "retry",
    "notifier",
    "deliver-email",
    "deliver-sftp",
    "deliver-s3",
    "deliver-azure-blob",
    "deliver-zapier",
)
ALL_SERVICES = ("ingest-api", *KAFKA_SERVICES)

# Families each service must show on /metrics besides the shared ones.
OWN_FAMILIES = {
    "ingest-api": {"relay_http_requests", "relay_http_request_duration_seconds"},
    "bundle-builder": {"relay_bundle_build_seconds"},
    "retry": {"relay_retry_backlog", "relay_integrations_unhealthy"},
    **{
        service: {"relay_delivery_attempts", "relay_delivery_duration_seconds", "relay_order_to_delivered_seconds"}
        for service in KAFKA_SERVICES
        if service.startswith("deliver-")
    },
}
CONSUMER_FAMILIES = {
    "relay_messages_consumed",
    "relay_messages_failed",
    "relay_messages_dead_lettered",
    "relay_consumer_lag",
}


@dataclass
class Stack:
    ops_ports: dict[str, int]
    api_url: str
    session: aiohttp.ClientSession
    producer: KafkaBroker
    receiver: WebhookReceiver

    def ops_url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ops_ports[service]}{path}"

    async def get(self, service: str, path: str) -> tuple[int, str, str]:
        async with self.session.get(self.ops_url(service, path)) as response:
            return response.status, response.headers.get("Content-Type", ""), await response.text()

    async def metrics(self, service: str) -> str:
        status, _, text = await self.get(service, "/metrics")
        assert status == 200
        return text


def _kafka(bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=bootstrap, transient_backoff_s=0.1, transient_max_reads=2)


def _kafka_apps(bootstrap: str, root: Path, association_port: int) -> dict[str, FastStream]:
    """Every Kafka service, each in a consumer group of its own (this module's apps read only what it sends)."""
    run = uuid.uuid4().hex[:8]
    kafka = _kafka(bootstrap)
    objects = ObjectStoreSettings(url=f"file://{root / 'objects'}")
    links = link_settings(public_base_url="http://127.0.0.1:1")
    common: dict[str, Any] = {"kafka": kafka, "tenants_file": TENANTS_FILE}
    deliverer: dict[str, Any] = {**common, "object_store": objects, "links": links, "concurrency": 1}
    return {
        "association-store": association_store_app(
            AssociationStoreSettings(
                **common,
                consumer_group=f"ops-association-store-{run}",
                database_url=f"sqlite+aiosqlite:///{root / 'association' / 'store.db'}",
                http_port=association_port,
                api_token=SecretStr(ASSOCIATION_STORE_TOKEN),
            )
        ),
        "bundle-builder": bundle_builder_app(
            BundleBuilderSettings(**common, consumer_group=f"ops-bundle-builder-{run}", object_store=objects)
        ),
        "retry": retry_app(
            RetrySettings(
                **common,
                consumer_group=f"ops-retry-{run}",
                database=ScheduleDatabaseSettings(url=f"sqlite+aiosqlite:///{root / 'retry' / 'retry.db'}"),
            )
        ),
        "notifier": notifier_app(
            NotifierSettings(
                **common,
                consumer_group=f"ops-notifier-{run}",
                database_url=f"sqlite+aiosqlite:///{root / 'notifier' / 'notifier.db'}",
            )
        ),
        "deliver-email": email_app(EmailSettings(**deliverer, consumer_group=f"ops-deliver-email-{run}")),
        "deliver-sftp": sftp_app(SftpSettings(**deliverer, consumer_group=f"ops-deliver-sftp-{run}")),
        "deliver-s3": s3_app(S3Settings(**deliverer, consumer_group=f"ops-deliver-s3-{run}")),
        "deliver-azure-blob": azure_blob_app(
            AzureBlobSettings(**deliverer, consumer_group=f"ops-deliver-azure-blob-{run}")
        ),
        "deliver-zapier": zapier_app(ZapierSettings(**deliverer, consumer_group=f"ops-deliver-zapier-{run}")),
    }


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, webhook_receiver: WebhookReceiver, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    root = tmp_path_factory.mktemp("ops")
    association_port = free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TEST_OPS_HOOK_OK", webhook_receiver.url("ops/ok"))
        env.setenv("TEST_OPS_HOOK_BROKEN", webhook_receiver.url("ops/broken"))
        webhook_receiver.script("ops/broken", Reply(500))
        apps = _kafka_apps(kafka_bootstrap, root, association_port)
        api = ingest_app(
            IngestSettings(
                kafka=_kafka(kafka_bootstrap),
                tenants_file=TENANTS_FILE,
                object_store=ObjectStoreSettings(url=f"file://{root / 'objects'}"),
                links=link_settings(public_base_url="http://127.0.0.1:1"),
                association_store_url=f"http://127.0.0.1:{association_port}",
                association_store_token=SecretStr(ASSOCIATION_STORE_TOKEN),
            )
        )
        # The services with a database one at a time: alembic's `op` is one per process, so two migrations at once
        # would share it. The rest together. Joining the groups happens after start() returns, so they overlap.
        with_database = ("association-store", "retry", "notifier")
        for name in with_database:
            await apps[name].start()
        await asyncio.gather(*(app.start() for name, app in apps.items() if name not in with_database))
        runner = await start_server(api, "127.0.0.1", 0)
        host, port = runner.addresses[0][:2]
        producer = KafkaBroker(kafka_bootstrap, logger=None)
        await producer.connect()
        ports = {name: _port_of(app) for name, app in apps.items()}
        ingest_ops = api[OPS_SERVER].port
        assert ingest_ops is not None
        ports["ingest-api"] = ingest_ops
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
                yield Stack(ports, f"http://{host}:{port}", session, producer, webhook_receiver)
        finally:
            await producer.stop()
            await runner.cleanup()
            await asyncio.gather(*(app.stop() for app in apps.values()))


def _port_of(app: FastStream) -> int:
    server = ops_server(app)
    assert server is not None
    assert server.port is not None
    return server.port


def _value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels`` (0 when there is none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def _families(text: str) -> set[str]:
    return {family.name for family in text_string_to_metric_families(text)}


async def _metric_moves(stack: Stack, service: str, name: str, before: float, /, **labels: str) -> float:
    async def moved() -> float | None:
        value = _value(await stack.metrics(service), name, **labels)
        return value if value > before else None

    result: float = await eventually(moved, within=READY_DEADLINE_S, what=f"{name} {labels} above {before}")
    return result


@pytest.mark.parametrize("service", ALL_SERVICES)
async def test_every_service_answers_health_readiness_and_metrics(stack: Stack, service: str) -> None:
    status, content_type, body = await stack.get(service, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert content_type.startswith("application/json")

    async def ready() -> dict[str, Any] | None:
        status, _, body = await stack.get(service, "/readyz")
        document = json.loads(body)
        assert set(document) == {"status", "checks"}
        return document if status == 200 else None

    document = await eventually(ready, within=READY_DEADLINE_S, what="every service ready")
    assert document["status"] == "ready"
    assert set(document["checks"].values()) == {"ok"}
    if service != "ingest-api":
        assert {"broker", "consumers"} <= set(document["checks"])
    if service in {"association-store", "retry", "notifier"}:
        assert "database" in document["checks"]

    status, content_type, text = await stack.get(service, "/metrics")
    assert status == 200
    assert content_type.startswith("text/plain")
    expected = OWN_FAMILIES.get(service, set()) | (CONSUMER_FAMILIES if service != "ingest-api" else set())
    assert expected <= _families(text)


async def test_deliveries_move_the_attempt_and_latency_metrics_by_outcome(stack: Stack) -> None:
    await eventually(lambda: _ready(stack, "deliver-zapier"), within=READY_DEADLINE_S, what="deliver-zapier ready")
    attempts = "relay_delivery_attempts_total"
    before = await stack.metrics("deliver-zapier")
    succeeded = _value(before, attempts, integration_type="zapier", outcome="succeeded")
    retrying = _value(before, attempts, integration_type="zapier", outcome="retrying")
    latency = _value(before, "relay_order_to_delivered_seconds_count", integration_type="zapier")
    order = OrderLine(order_id=uuid.uuid4().hex, order_number="ops-1", item_id="1", item_quantity=1)

    await _publish(stack, _request("ops-zap", order))
    await _metric_moves(stack, "deliver-zapier", attempts, succeeded, integration_type="zapier", outcome="succeeded")
    await _metric_moves(
        stack, "deliver-zapier", "relay_order_to_delivered_seconds_count", latency, integration_type="zapier"
    )

    await _publish(stack, _request("ops-zap-broken", order))
    await _metric_moves(stack, "deliver-zapier", attempts, retrying, integration_type="zapier", outcome="retrying")
    text = await stack.metrics("deliver-zapier")
    assert order.order_id not in text
    labels = [sample.labels for family in text_string_to_metric_families(text) for sample in family.samples]
    # No tenant label (a tenant's OMS topic does name it, deliberately) and no integration ID (unbounded).
    assert not [found for found in labels if "tenant" in found or "integration_id" in found]
    assert not [found for found in labels if {"opsco", "ops-zap", "ops-zap-broken"} & set(found.values())]


async def test_a_malformed_message_moves_the_dead_letter_and_failure_counters(stack: Stack) -> None:
    await eventually(lambda: _ready(stack, "deliver-zapier"), within=READY_DEADLINE_S, what="deliver-zapier ready")
    topic = deliveries_requested("zapier")
    labels = {"service": "deliver-zapier", "topic": topic}
    before = await stack.metrics("deliver-zapier")
    dead = _value(before, "relay_messages_dead_lettered_total", **labels)
    failed = _value(before, "relay_messages_failed_total", **labels, kind="permanent")

    await stack.producer.publish(b"{not json", topic, key=b"ops-malformed")

    await _metric_moves(stack, "deliver-zapier", "relay_messages_dead_lettered_total", dead, **labels)
    after = await stack.metrics("deliver-zapier")
    assert _value(after, "relay_messages_failed_total", **labels, kind="permanent") > failed
    assert _value(after, "relay_messages_consumed_total", **labels) > 0


async def test_ingest_requests_are_counted_by_route_template_without_ids_or_keys(stack: Stack) -> None:
    order_id = uuid.uuid4().hex
    recipe_id = f"999-ops{uuid.uuid4().hex[:10]}"
    item = {"recipeId": recipe_id, "orderNumber": "ops-2", "orderId": order_id, "itemId": "i1", "itemQuantity": 1}
    labels = {"service": "ingest-api", "route": "/api/v2/recipe/order", "method": "POST", "status": "202"}
    before = _value(await stack.metrics("ingest-api"), "relay_http_requests_total", **labels)

    async with stack.session.post(
        f"{stack.api_url}/api/v2/recipe/order", params={"apikey": API_KEY}, json=[item]
    ) as response:
        assert response.status == 202
    async with stack.session.get(f"{stack.api_url}/recipe/{recipe_id}.json") as response:
        assert response.status in {200, 404}

    await _metric_moves(stack, "ingest-api", "relay_http_requests_total", before, **labels)
    text = await stack.metrics("ingest-api")
    assert _value(text, "relay_http_request_duration_seconds_count", service="ingest-api", route=labels["route"]) > 0
    assert _value(text, "relay_http_requests_total", route="/recipe/{recipe_id}.json") > 0
    for secret in (API_KEY, order_id, recipe_id, LINK_SIGNING_KEY, ASSOCIATION_STORE_TOKEN):
        assert secret not in text


async def test_readyz_names_the_broker_when_it_is_down_while_healthz_still_answers(
    tmp_path: Path, kafka_bootstrap: str
) -> None:
    # A port nothing listens on: start-up waits for the broker, the ops port answers meanwhile.
    nowhere = f"127.0.0.1:{free_port()}"
    app = bundle_builder_app(
        BundleBuilderSettings(
            kafka=_kafka(nowhere),
            tenants_file=TENANTS_FILE,
            consumer_group=f"ops-nowhere-{uuid.uuid4().hex[:8]}",
            object_store=ObjectStoreSettings(url=f"file://{tmp_path / 'objects'}"),
        )
    )
    starting = asyncio.create_task(app.start())
    try:
        server = ops_server(app)
        assert server is not None
        await eventually(lambda: _true(server.port is not None), within=10, what="the ops port bound")
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(f"http://127.0.0.1:{server.port}/healthz") as response:
                assert response.status == 200
            async with session.get(f"http://127.0.0.1:{server.port}/readyz") as response:
                assert response.status == 503
                document = await response.json()
        assert document == {"status": "not_ready", "checks": {"broker": "failing", "consumers": "failing"}}
        assert not starting.done()
    finally:
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
    # The failed start closed the ops port again.
    assert server.port is not None
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", server.port)


async def test_readyz_names_the_database_when_it_becomes_unreachable(
    kafka_bootstrap: str, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    database_dir = tmp_path / "database"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TEST_OPS_HOOK_OK", webhook_receiver.url("ops/ok"))
        env.setenv("TEST_OPS_HOOK_BROKEN", webhook_receiver.url("ops/broken"))
        app = association_store_app(
            AssociationStoreSettings(
                kafka=_kafka(kafka_bootstrap),
                tenants_file=TENANTS_FILE,
                consumer_group=f"ops-db-{uuid.uuid4().hex[:8]}",
                database_url=f"sqlite+aiosqlite:///{database_dir / 'store.db'}",
                http_port=free_port(),
            )
        )
    await app.start()
    try:
        port = _port_of(app)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:

            async def readyz() -> tuple[int, dict[str, Any]]:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    return response.status, await response.json()

            async def database_ok() -> bool:
                return bool((await readyz())[1]["checks"]["database"] == "ok")

            # No need to wait for the group join: the database check passes once the store is open.
            await eventually(database_ok, within=READY_DEADLINE_S, what="the database check ok")
            # The database goes away: pooled connections closed, and its directory gone so none can be opened.
            await app.context.get("ports").store.engine.dispose()
            shutil.rmtree(database_dir)
            status, document = await readyz()
        assert status == 503
        assert document["status"] == "not_ready"
        assert document["checks"]["database"] == "failing"
        assert document["checks"]["broker"] == "ok"
    finally:
        await app.stop()


async def _ready(stack: Stack, service: str) -> bool:
    status, _, _ = await stack.get(service, "/readyz")
    return status == 200


async def _true(value: bool) -> bool:
    return value


def _request(integration_id: str, order: OrderLine) -> DeliverBundle:
    return deliver_bundle(
        tenant="opsco", integration_id=integration_id, integration_type="zapier", files=(), order=order
    )


async def _publish(stack: Stack, request: DeliverBundle) -> None:
    await stack.producer.publish(request, deliveries_requested("zapier"), key=delivery_key(request.delivery_id))


@pytest.mark.parametrize(
    ("name", "value"),
    [("OPS_PORT", "70000"), ("OPS_PORT", "-1"), ("OPS_PORT", "\uff19\uff11\uff10\uff10"), ("OPS_CHECK_TIMEOUT_S", "0")],
)
def test_an_ops_setting_out_of_range_is_refused_naming_it(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as refused:
        OpsSettings()
    assert name.removeprefix("OPS_").lower() in str(refused.value)
