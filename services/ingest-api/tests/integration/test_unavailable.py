"""With Kafka or the association store unreachable the API still starts and answers 503 + Retry-After, fast."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from relay_contracts.topics import ORDERS_EVENTS, RECIPES_SAVED
from relay_devservers.kafka import TansuBroker
from relay_devservers.processes import free_port
from relay_ingest_api.adapters import kafka as kafka_adapter
from relay_platform.broker import ensure_topics
from relay_platform.settings import KafkaSettings

pytestmark = pytest.mark.integration

WRITER = {"Authorization": "Bearer demo-writer"}
GOOD = [{"recipeId": "999-r", "orderNumber": "1", "orderId": "2", "itemId": "3", "itemQuantity": 1}]


async def _timed_post(session: aiohttp.ClientSession, url: str, body: Any) -> tuple[int, str | None, float]:
    started = time.monotonic()
    async with session.post(url, json=body, headers=WRITER) as response:
        await response.read()
        return response.status, response.headers.get("Retry-After"), time.monotonic() - started


async def test_api_starts_without_kafka_and_answers_503(
    tmp_path: Path, association_stub: Any, ingest_server: Any
) -> None:
    dead = f"127.0.0.1:{free_port()}"
    async with ingest_server(dead, tmp_path, f"http://127.0.0.1:{free_port()}") as (url, session):
        status, retry_after, took = await _timed_post(session, f"{url}/api/v2/recipe/order", GOOD)
        assert status == 503
        assert retry_after is not None
        assert int(retry_after) >= 1
        assert took < 5
        status, _, _ = await _timed_post(session, f"{url}/api/v2/recipes", {"name": "n"})
        assert status == 503
        assert not any((tmp_path / "objects").rglob("*.json")), "nothing is stored when it cannot be announced"
        async with session.get(f"{url}/readyz") as response:
            assert response.status == 503
            checks = (await response.json())["checks"]
        assert checks["broker"] == "down"
        assert checks["association-store"] == "down"
        async with session.get(f"{url}/api/v2/orders", params={"orderId": "1"}, headers=WRITER) as response:
            assert response.status == 503
            assert response.headers["Retry-After"]
            assert (await response.json())["error"] == "unavailable"


async def test_broker_lost_after_start_gives_503_within_5_seconds(
    tmp_path: Path, association_stub: Any, ingest_server: Any
) -> None:
    broker = TansuBroker(tmp_path).start()
    try:
        await ensure_topics(broker.bootstrap, (ORDERS_EVENTS, RECIPES_SAVED), partitions=1)
        async with ingest_server(broker.bootstrap, tmp_path, association_stub.url, ready=True) as (url, session):
            status, _, _ = await _timed_post(session, f"{url}/api/v2/recipe/order", GOOD)
            assert status == 202
            await asyncio.to_thread(broker.stop)
            status, retry_after, took = await _timed_post(session, f"{url}/api/v2/recipe/order", GOOD)
            assert status == 503
            assert retry_after is not None
            assert took < 5
            async with session.get(f"{url}/readyz") as response:
                assert response.status == 503
                assert (await response.json())["checks"]["broker"] == "down"
    finally:
        broker.stop()


async def test_trigger_without_kafka_is_503_with_retry_after(
    tmp_path: Path, association_stub: Any, ingest_server: Any
) -> None:
    association_stub.answer(
        "demo",
        "orderNumber",
        "kafka-down",
        [
            {
                "orderId": "kd",
                "orderNumber": "kafka-down",
                "items": [{"recipeId": "999-r", "itemId": "i", "itemQuantity": 1}],
            }
        ],
    )
    dead = f"127.0.0.1:{free_port()}"
    async with ingest_server(dead, tmp_path, association_stub.url) as (url, session):
        status, retry_after, took = await _timed_post(
            session, f"{url}/api/v2/integrations/trigger", {"orderNumber": "kafka-down"}
        )
    assert status == 503
    assert retry_after is not None
    assert int(retry_after) >= 1
    assert took < 5


async def test_closing_while_the_broker_connection_starts_closes_that_connection(
    kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shutdown (or a test) that comes while the producer is still starting must not leak it: its sockets and
    tasks would linger until garbage collection."""
    producers: list[AIOKafkaProducer] = []
    starting = asyncio.Event()

    class WatchedProducer(AIOKafkaProducer):  # type: ignore[misc]
        def __init__(self, **options: Any) -> None:
            super().__init__(**options)
            producers.append(self)

        async def start(self) -> None:
            starting.set()
            await super().start()

    monkeypatch.setattr(kafka_adapter, "AIOKafkaProducer", WatchedProducer)
    publisher = kafka_adapter.EventPublisher(
        KafkaSettings(bootstrap_servers=kafka_bootstrap),
        service="ingest-api-test",
        publish_timeout_s=2,
        retry_after_s=1,
    )
    publisher.start()
    async with asyncio.timeout(10):
        await starting.wait()
    await publisher.close()

    assert producers
    assert all(producer._closed for producer in producers)
    assert not publisher.connected
