"""Order associations accepted per second by the ingest API, every one published (acks=all) before the answer.

Run: ``uv run python services/ingest-api/bench/bench_ingest.py [--seconds S] [--concurrency C]``.
Starts a Tansu broker and ``python -m relay_ingest_api`` as separate processes on loopback (as in production,
the API and the load generator do not share a CPU budget more than the machine forces), then drives
``POST /api/v2/recipe/order`` with one-item and 100-item batches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from relay_devservers.kafka import TansuBroker
from relay_devservers.processes import ServerProcess, free_port
from relay_platform.broker import ensure_topics
from relay_testing.shared_secrets import secrets_env

ROOT = Path(__file__).resolve().parents[3]


def _batch(size: int, n: int) -> list[dict[str, object]]:
    return [
        {
            "recipeId": "999-63CHGJokGoxPfSba",
            "orderNumber": f"B{n}",
            "orderId": f"{n}",
            "itemId": f"{n}-{i}",
            "itemQuantity": 1,
        }
        for i in range(size)
    ]


async def _drive(url: str, size: int, seconds: float, concurrency: int) -> tuple[int, int, list[float]]:
    latencies: list[float] = []
    items = 0
    requests = 0
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal items, requests
            while time.monotonic() < deadline:
                body = _batch(size, next(counter))
                started = time.perf_counter()
                async with session.post(url, json=body, headers={"Authorization": "Bearer demo-key"}) as r:
                    await r.read()
                    if r.status != 202:
                        raise RuntimeError(f"unexpected {r.status}")
                latencies.append(time.perf_counter() - started)
                items += size
                requests += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests, items, latencies


async def main(seconds: float, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        broker = TansuBroker(Path(tmp)).start()
        await ensure_topics(broker.bootstrap)
        port = free_port()
        env = {
            **os.environ,
            **secrets_env(),
            "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "INGEST_API_PORT": str(port),
            "RELAY_TENANTS_FILE": str(ROOT / "services/ingest-api/tests/fuzz/fuzz_tenants.yaml"),
            "OBJECT_STORE_URL": f"file://{tmp}/objects",
            "INGEST_API_LOG_LEVEL": "WARNING",
        }
        api = ServerProcess(
            "ingest-api", [sys.executable, "-m", "relay_ingest_api"], log_path=Path(tmp) / "api.log", env=env
        )
        try:
            api.wait_for_port(port)
            url = f"http://127.0.0.1:{port}/api/v2/recipe/order"
            await _drive(url, 1, 2.0, concurrency)  # warm-up: producer metadata, connections
            print(f"{'batch':>6} {'req/s':>9} {'items/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
            for size in (1, 100):
                requests, items, latencies = await _drive(url, size, seconds, concurrency)
                latencies.sort()
                p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
                print(
                    f"{size:>6} {requests / seconds:>9.0f} {items / seconds:>10.0f} "
                    f"{statistics.median(latencies) * 1000:>8.1f} {p99:>8.1f}"
                )
        finally:
            api.stop()
            broker.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.concurrency))
