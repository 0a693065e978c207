"""Fixtures for the ingest-api tests: the real app on a real Tansu broker and a stub association store (started only
by the integration tests that ask for them); this directory on ``sys.path`` so tests can import ``ingest_fakes``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import ConsumerRecord
from opentelemetry.sdk.trace import TracerProvider
from pydantic import SecretStr

from relay_ingest_api.main import create_app, start_server
from relay_ingest_api.settings import Settings
from relay_platform.objectstore_settings import ObjectStoreSettings
from relay_platform.settings import KafkaSettings
from relay_testing.shared_secrets import ASSOCIATION_STORE_TOKEN, link_settings

HERE = Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

TENANTS_FILE = HERE / "tenants.yaml"
PUBLIC_BASE = "http://relay.test"

DEMO_WRITER = "demo-writer"
DEMO_READER = "demo-reader"
ACME_WRITER = "acme-writer"
ACME_ORDERS_ONLY = "acme-orders-only"
THROTTLED = "demo-throttled"
DEMO_ADMIN = "demo-admin"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@dataclass
class AssociationStub:
    """The association store's internal HTTP API, recording every lookup it receives. Like the real one it
    answers ``/internal/*`` only with ``ASSOCIATION_STORE_TOKEN`` as the bearer token (401 otherwise)."""

    url: str = ""
    refused: int = 0
    lookups: list[dict[str, str]] = field(default_factory=list)
    ready: bool = True
    # Canned answers by (tenant, criterion, value); any other query gets one generic order.
    answers: dict[tuple[str, str, str], list[dict[str, Any]]] = field(default_factory=dict)
    audits: list[dict[str, str]] = field(default_factory=list)
    # The audit's deliveries by tenant, and an answer that replaces the whole body (status, JSON) when set.
    audit_deliveries: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    audit_override: tuple[int, dict[str, Any]] | None = None
    page_size: int = 100
    # The console's lists: each query received, as (path, query); answers by tenant (the rest get empty lists).
    console_queries: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    recent: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    failed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    counts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def answer(self, tenant: str, criterion: str, value: str, orders: list[dict[str, Any]]) -> None:
        self.answers[(tenant, criterion, value)] = orders


@dataclass
class Api:
    url: str
    settings: Settings
    objects_dir: Path
    session: aiohttp.ClientSession


async def _start_stub(stub: AssociationStub) -> web.AppRunner:
    async def orders(request: web.Request) -> web.Response:
        query = dict(request.query)
        stub.lookups.append(query)
        tenant = query["tenant"]
        for (answer_tenant, criterion, value), orders in stub.answers.items():
            if answer_tenant == tenant and query.get(criterion) == value:
                # Pages like the real store: by order ID, ``after`` the previous page's ``next``.
                after = query.get("after", "")
                rest = sorted((o for o in orders if o["orderId"] > after), key=lambda o: o["orderId"])
                page = rest[: stub.page_size]
                more = len(rest) > stub.page_size
                return web.json_response({"orders": page, "next": page[-1]["orderId"] if more else None})
        body = {
            "orders": [
                {
                    "orderId": f"{tenant}-order",
                    "orderNumber": query.get("orderNumber", "1001"),
                    "status": "created",
                    "items": [{"recipeId": "999-x", "itemId": "i1", "itemQuantity": 1}],
                    "deliveries": [],
                }
            ]
        }
        return web.json_response(body)

    async def audit(request: web.Request) -> web.Response:
        query = dict(request.query)
        stub.audits.append(query)
        if stub.audit_override is not None:
            status, body = stub.audit_override
            return web.json_response(body, status=status)
        return web.json_response(
            {
                "tenant": query["tenant"],
                "olderThanS": int(query["olderThanS"]),
                "cutoff": "2026-12-01T12:00:00.000Z",
                "limit": int(query["limit"]),
                "truncated": False,
                "deliveries": stub.audit_deliveries.get(query["tenant"], []),
            }
        )

    async def recent(request: web.Request) -> web.Response:
        query = dict(request.query)
        stub.console_queries.append((request.path, query))
        return web.json_response({"orders": stub.recent.get(query["tenant"], []), "next": None})

    async def deliveries(request: web.Request) -> web.Response:
        query = dict(request.query)
        stub.console_queries.append((request.path, query))
        if query.get("after") == "unknown-cursor":
            return web.json_response({"error": "bad_request", "message": "after: not a cursor"}, status=400)
        listed = stub.failed.get(query["tenant"], [])
        # Counted only when asked, as the store does (the replay asks).
        total = len(listed) if query.get("withTotal") == "true" else None
        return web.json_response({"deliveries": listed, "next": None, "total": total})

    async def stats(request: web.Request) -> web.Response:
        query = dict(request.query)
        stub.console_queries.append((request.path, query))
        counts = stub.counts.get(query["tenant"], [])
        return web.json_response({"windowS": int(query["sinceS"]), "integrations": counts})

    async def readyz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, status=200 if stub.ready else 503)

    expected = f"Bearer {ASSOCIATION_STORE_TOKEN}"

    @web.middleware
    async def token_required(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/internal/") and request.headers.get("Authorization") != expected:
            stub.refused += 1
            return web.json_response({"error": "unauthorized", "message": "token required"}, status=401)
        return await handler(request)

    app = web.Application(middlewares=[token_required])
    app.router.add_get("/internal/v1/orders", orders)
    app.router.add_get("/internal/v1/audit", audit)
    app.router.add_get("/internal/v1/orders/recent", recent)
    app.router.add_get("/internal/v1/deliveries", deliveries)
    app.router.add_get("/internal/v1/integrations/stats", stats)
    app.router.add_get("/readyz", readyz)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    stub.url = f"http://{host}:{port}"
    return runner


@pytest.fixture(scope="session")
async def association_stub() -> AsyncIterator[AssociationStub]:
    stub = AssociationStub()
    runner = await _start_stub(stub)
    yield stub
    await runner.cleanup()


def make_settings(bootstrap: str, objects_dir: Path, association_store_url: str, **overrides: Any) -> Settings:
    kafka = overrides.pop("kafka", None) or KafkaSettings(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    overrides.setdefault("association_store_token", SecretStr(ASSOCIATION_STORE_TOKEN))
    return Settings(
        host="127.0.0.1",
        port=0,
        kafka=kafka,
        tenants_file=TENANTS_FILE,
        association_store_url=association_store_url,
        object_store=ObjectStoreSettings(url=f"file://{objects_dir}"),
        links=link_settings(public_base_url=PUBLIC_BASE),
        **overrides,
    )


async def wait_ready(session: aiohttp.ClientSession, url: str, timeout_s: float = 30) -> None:
    async with asyncio.timeout(timeout_s):
        while True:
            async with session.get(f"{url}/readyz") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.05)


async def serve(settings: Settings) -> tuple[web.AppRunner, str]:
    # A real tracer provider (as __main__ installs) so traceparent travels into Kafka headers.
    app = create_app(settings, tracer_provider=TracerProvider())
    runner = await start_server(app, settings.host, settings.port)
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}"


@pytest.fixture(scope="session")
async def api(
    kafka_bootstrap: str, association_stub: AssociationStub, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    objects_dir = tmp_path_factory.mktemp("objects")
    settings = make_settings(kafka_bootstrap, objects_dir, association_stub.url)
    runner, url = await serve(settings)
    async with aiohttp.ClientSession() as session:
        await wait_ready(session, url)
        yield Api(url=url, settings=settings, objects_dir=objects_dir, session=session)
    await runner.cleanup()


class TopicTail:
    """Reads a topic from its current end (manual assignment: no group join), for asserting what was published."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.records: list[ConsumerRecord] = []

    async def __aenter__(self) -> TopicTail:
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic)
        async with asyncio.timeout(20):
            while not partitions:
                await self.consumer.client.force_metadata_update()
                partitions = self.consumer.partitions_for_topic(self.topic)
        assigned = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self.consumer.assign(assigned)
        await self.consumer.seek_to_end(*assigned)
        for tp in assigned:
            await self.consumer.position(tp)  # pin the start now, before the action under test
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def wait_for(
        self, predicate: Callable[[list[ConsumerRecord]], bool], timeout_s: float = 20
    ) -> list[ConsumerRecord]:
        async with asyncio.timeout(timeout_s):
            while not predicate(self.records):
                batches = await self.consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    self.records.extend(records)
        return self.records

    async def drain(self, idle_s: float = 0.5) -> list[ConsumerRecord]:
        """Whatever has arrived, reading until the topic stays quiet for ``idle_s``."""
        while True:
            batches = await self.consumer.getmany(timeout_ms=int(idle_s * 1000))
            if not batches:
                return self.records
            for records in batches.values():
                self.records.extend(records)


def values(records: list[ConsumerRecord]) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in records]


@pytest.fixture
def tail(kafka_bootstrap: str) -> Callable[[str], TopicTail]:
    """``async with tail(topic) as t``: read what gets published to ``topic`` from now on."""
    return lambda topic: TopicTail(kafka_bootstrap, topic)


@pytest.fixture
def ingest_server() -> Callable[..., AbstractAsyncContextManager[tuple[str, aiohttp.ClientSession]]]:
    """``async with ingest_server(bootstrap, workdir, association_url, ready=False, **settings) as (url, session)``:
    a separate app instance (short publish timeout) for broker/association-store outage tests."""

    @asynccontextmanager
    async def run(
        bootstrap: str, workdir: Path, association_url: str, *, ready: bool = False, **overrides: Any
    ) -> AsyncIterator[tuple[str, aiohttp.ClientSession]]:
        settings = make_settings(
            bootstrap,
            workdir / "objects",
            association_url,
            kafka=KafkaSettings(bootstrap_servers=bootstrap, request_timeout_ms=2000),
            publish_timeout_s=2.0,
            **overrides,
        )
        runner, url = await serve(settings)
        try:
            async with aiohttp.ClientSession() as session:
                if ready:
                    await wait_ready(session, url)
                yield url, session
        finally:
            await runner.cleanup()

    return run
