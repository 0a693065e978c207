"""The ingest API against its limit: a bare aiohttp + aiokafka (acks=all) endpoint on the same broker, same load,
same run.

Run: ``uv run --frozen python bench/limits_ingest.py [--smoke] [--slot-s S] [--concurrency C] [--memory-broker]``.

One durable Tansu (as ``make run`` starts it) serves two processes: the real ingest API (``python -m
relay_ingest_api``, built by ``create_app``, with ``make run``'s environment and log settings and the demo tenant
of ``config/dev.yaml`` with its rate limit lifted) and the bare endpoint (this file, ``--role bare``: parse the
JSON, one ``producer.send`` per item with the API's producer options, await every confirmation, ``202``).
``POST /api/v2/recipe/order`` is driven with 1-item and 100-item batches (bodies built as
``services/ingest-api/bench/bench_ingest.py`` builds them) by a closed-loop load generator in a process of its
own (``--role drive``: keep-alive HTTP/1.1 over plain asyncio streams, far cheaper per request than an HTTP
client library; its CPU time is measured and reported). Each batch size is measured in four slots ordered bare,
API, API, bare, so a drift of the shared machine weighs on both alike.

Figures: ``ingest_single_pct_of_bare`` and ``ingest_batch100_pct_of_bare`` (the API's req/s as % of bare's; the
limit is bare's req/s), ``ingest_single_p99_ms`` (limit: bare's p99), ``ingest_loadgen_cpu_pct`` (the load
generator's busiest slot, % of one core).

``--memory-broker`` runs Tansu with memory storage instead of the durable one, to see what that storage costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _limits import ROOT, Child, durable_broker, emit, figure, percentile, python_child, run_child, run_measurement, say

TAG = "ingest"
PATH = "/api/v2/recipe/order"
API_KEY = "demo-key"  # config/dev.yaml's demo key (only its hash is in the file)
DISTINCT_BODIES = 64
# Settings a benchmark must not inherit from the caller's shell (they would point the API at other servers).
_UNINHERITED = ("KAFKA_BOOTSTRAP_SERVERS", "OTEL_EXPORTER_OTLP_ENDPOINT", "RELAY_TENANTS_FILE", "OBJECT_STORE_URL")


@dataclass(frozen=True)
class Mode:
    slot_s: float
    warmup_s: float
    concurrency: int


FULL = Mode(slot_s=4.0, warmup_s=2.0, concurrency=32)
SMOKE = Mode(slot_s=0.5, warmup_s=0.3, concurrency=8)


# --- request bodies ------------------------------------------------------------------------------------------------


def batch(size: int, n: int) -> list[dict[str, object]]:
    """A ``POST /api/v2/recipe/order`` body of ``size`` associations (as ``bench_ingest.py`` builds them)."""
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


def raw_requests(port: int, size: int) -> list[bytes]:
    """Complete HTTP/1.1 requests (keep-alive), ``DISTINCT_BODIES`` different ones to cycle through."""
    requests = []
    for n in range(DISTINCT_BODIES):
        body = json.dumps(batch(size, n)).encode()
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        requests.append(head.encode() + body)
    return requests


# --- --role drive: the load generator ---------------------------------------------------------------------------


@dataclass
class Load:
    """What every connection of the load generator shares: the requests to cycle through and what came back."""

    port: int
    requests: list[bytes]
    deadline: float
    latencies: list[float]
    statuses: dict[int, int]


async def _connection(load: Load, offset: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", load.port)
    requests, latencies, statuses = load.requests, load.latencies, load.statuses
    try:
        i = offset
        while time.monotonic() < load.deadline:
            request = requests[i % len(requests)]
            i += 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def drive(port: int, size: int, seconds: float, concurrency: int) -> dict[str, Any]:
    """Closed loop: ``concurrency`` connections, each sending its next request when the last was answered."""
    requests = raw_requests(port, size)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    cpu_start, wall_start = time.process_time(), time.monotonic()
    load = Load(port, requests, wall_start + seconds, latencies, statuses)
    await asyncio.gather(*(_connection(load, i) for i in range(concurrency)))
    cpu, wall = time.process_time() - cpu_start, time.monotonic() - wall_start
    return {
        "requests": len(latencies),
        "statuses": statuses,
        "wall_s": wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p99_ms": 1000 * percentile(latencies, 99),
        "cpu_pct": 100 * cpu / wall,
    }


# --- --role bare: the limit -----------------------------------------------------------------------------------------


async def serve_bare(port: int, bootstrap: str) -> None:
    """Parse the JSON, publish one record per item (acks=all, the API's producer options), answer ``202``."""
    from aiohttp import web
    from aiokafka import AIOKafkaProducer

    from relay_contracts.topics import ORDERS_EVENTS
    from relay_platform.broker import producer_options
    from relay_platform.settings import KafkaSettings

    producer = AIOKafkaProducer(**producer_options(KafkaSettings(bootstrap_servers=bootstrap), service="bench-bare"))
    await producer.start()

    async def link(request: web.Request) -> web.Response:
        items = json.loads(await request.read())
        futures = [
            await producer.send(ORDERS_EVENTS, json.dumps(item).encode(), key=str(item["orderNumber"]).encode())
            for item in items
        ]
        await asyncio.gather(*futures)
        return web.json_response({"accepted": len(items)}, status=202)

    app = web.Application()
    app.router.add_post(PATH, link)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await producer.stop()


# --- the measurement --------------------------------------------------------------------------------------------------


def tenants_file(path: Path) -> Path:
    """``config/dev.yaml`` with the demo tenant's rate limit lifted: the limit compared is the framework's cost,
    not the tenant's allowance (200/s)."""
    import yaml

    config: dict[str, Any] = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text())
    config["tenants"]["demo"]["rate-limit"] = {"per-second": 1_000_000, "burst": 1_000_000}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


async def _slot(port: int, size: int, seconds: float, concurrency: int) -> dict[str, Any]:
    argv = python_child(
        Path(__file__), "--role", "drive", "--port", str(port), "--size", str(size),
        "--seconds", str(seconds), "--concurrency", str(concurrency),
    )  # fmt: skip
    result: dict[str, Any] = await run_child(argv, timeout_s=seconds + 60)
    bad = {status: n for status, n in result["statuses"].items() if status != "202"}
    if bad or not result["requests"]:
        raise RuntimeError(f"load on port {port}: unexpected answers {result['statuses']}")
    return result


def _combined(slots: list[dict[str, Any]]) -> dict[str, float]:
    requests = sum(s["requests"] for s in slots)
    wall = sum(s["wall_s"] for s in slots)
    return {
        "rps": requests / wall,
        # Per-slot p99s, averaged: each slot's p99 is over thousands of requests.
        "p99_ms": sum(s["p99_ms"] for s in slots) / len(slots),
        "p50_ms": sum(s["p50_ms"] for s in slots) / len(slots),
        "loadgen_pct": max(s["cpu_pct"] for s in slots),
    }


async def measure(mode: Mode, *, memory_broker: bool = False) -> list[dict[str, Any]]:
    from relay_devservers.processes import free_port
    from relay_testing.shared_secrets import secrets_env

    with tempfile.TemporaryDirectory(prefix="relay-bench-ingest-") as tmp:
        work = Path(tmp)
        async with durable_broker(work, TAG, memory=memory_broker) as bootstrap:
            base = {k: v for k, v in os.environ.items() if k not in _UNINHERITED}
            api_port, bare_port = free_port(), free_port()
            api_env = (
                base
                | secrets_env()
                | {
                    # As `relay dev` sets them (relay_cli.dev.DevStack.environment).
                    "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                    "RELAY_TENANTS_FILE": str(tenants_file(work / "tenants.yaml")),
                    "RELAY_LOG_FORMAT": "text",
                    "OBJECT_STORE_URL": f"file://{work / 'objects'}",
                    "LINKS_PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
                    "INGEST_API_PORT": str(api_port),
                    "PYTHONUNBUFFERED": "1",
                }
            )
            api = await Child.start(
                "ingest-api", [sys.executable, "-m", "relay_ingest_api"], env=api_env, log=work / "api.log"
            )
            bare = await Child.start(
                "bare",
                python_child(Path(__file__), "--role", "bare", "--port", str(bare_port), "--bootstrap", bootstrap),
                env=base,
                log=work / "bare.log",
            )
            try:
                await api.wait_for_port(api_port)
                await bare.wait_for_port(bare_port)
                ports = {"api": api_port, "bare": bare_port}
                for name, port in ports.items():  # producer metadata, connections, first-call costs
                    await _slot(port, 1, mode.warmup_s, mode.concurrency)
                    say(TAG, f"{name} warmed up")
                results: dict[tuple[str, int], dict[str, float]] = {}
                for size in (1, 100):
                    slots: dict[str, list[dict[str, Any]]] = {"api": [], "bare": []}
                    for name in ("bare", "api", "api", "bare"):
                        slots[name].append(await _slot(ports[name], size, mode.slot_s, mode.concurrency))
                    for name in ports:
                        results[name, size] = got = _combined(slots[name])
                        say(
                            TAG,
                            f"{name:>4}, {size:>3} items: {got['rps']:8.0f} req/s, p50 {got['p50_ms']:6.1f} ms, "
                            f"p99 {got['p99_ms']:6.1f} ms (load generator {got['loadgen_pct']:.0f}% of a core)",
                        )
            finally:
                await api.stop()
                await bare.stop()
    bare_label = "bare aiohttp + aiokafka (acks=all), req/s"
    single, batch100 = (results["api", 1], results["bare", 1]), (results["api", 100], results["bare", 100])
    return [
        figure(
            "ingest_single_pct_of_bare", "ingest API, 1-item batches, req/s as % of bare",
            100 * single[0]["rps"] / single[1]["rps"], "%", goal=">= 70 %", better="higher",
            limit_label=bare_label, limit_value=single[1]["rps"],
        ),
        figure(
            "ingest_batch100_pct_of_bare", "ingest API, 100-item batches, req/s as % of bare",
            100 * batch100[0]["rps"] / batch100[1]["rps"], "%", goal=">= 70 %", better="higher",
            limit_label=bare_label, limit_value=batch100[1]["rps"],
        ),
        figure(
            "ingest_single_p99_ms", f"ingest API, 1-item batches, p99 at {mode.concurrency} connections",
            single[0]["p99_ms"], "ms", goal="close to bare", better="lower",
            limit_label="bare endpoint p99, ms", limit_value=single[1]["p99_ms"],
        ),
        figure(
            "ingest_loadgen_cpu_pct", "ingest load generator CPU (busiest slot, % of a core)",
            max(r["loadgen_pct"] for r in results.values()), "%", goal="well under 100 % (not the bottleneck)",
            better="lower",
        ),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--memory-broker", action="store_true", help="Tansu with memory storage, not make run's durable broker"
    )
    parser.add_argument("--smoke", action="store_true", help="the tiniest run (half-second slots), for `make test`")
    parser.add_argument("--slot-s", type=float, help="seconds per measuring slot (4 slots per batch size)")
    parser.add_argument("--concurrency", type=int, help="connections kept busy by the load generator")
    parser.add_argument("--role", choices=("measure", "drive", "bare"), default="measure", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "drive":
        print(json.dumps(asyncio.run(drive(args.port, args.size, args.seconds, args.concurrency))))
        return
    if args.role == "bare":
        asyncio.run(serve_bare(args.port, args.bootstrap))
        return
    mode = SMOKE if args.smoke else FULL
    mode = Mode(
        slot_s=args.slot_s or mode.slot_s,
        warmup_s=mode.warmup_s,
        concurrency=args.concurrency or mode.concurrency,
    )
    started = time.monotonic()
    figures = run_measurement(measure(mode, memory_broker=args.memory_broker))
    say(TAG, f"done in {time.monotonic() - started:.0f} s")
    emit(figures)


if __name__ == "__main__":
    main()
