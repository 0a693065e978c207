"""The limit of one pipeline hop: raw aiokafka consume -> produce (acks=all) -> commit, on the broker ``make run``
uses, with the services' fetch settings.

Run: ``uv run --frozen python bench/limits_hop.py [--smoke] [--memory-broker]``.

One durable Tansu (as ``make run`` starts it); the hop is a process of its own (this file, ``--role hop``): one
``AIOKafkaConsumer`` of a 3-partition topic with the consumer settings every service states
(``relay_platform.broker.consumer_options`` over ``KafkaSettings()``'s defaults: ``fetch_max_wait_ms``,
``max_poll_interval_ms``, ``auto_offset_reset``; commits after handling), one producer with the services' options
(``producer_options``: acks=all). Per ``getmany`` batch it issues every send, awaits all confirmations, then
commits: the pipelined shape the services aim for.

- latency at a light load: once the hop's consumer has its partitions, this process publishes one message every
  1/10 s (smoke: 5 messages); a message's latency runs from just before its publish to the hop's commit of it
  (consumed, republished and confirmed, offset committed) on ``time.monotonic`` (one clock for every process).
- throughput: a second topic is filled beforehand (50,000 messages of ~100 bytes; smoke 1,000) and a new hop
  drains it; messages per second from its first fetched record to its last commit, and its CPU per message.

Figures: ``hop_latency_p50``, ``hop_latency_p99`` (ms), ``hop_throughput`` (msgs/s), ``hop_cpu_ms_per_msg``.

``--memory-broker`` runs Tansu with memory storage instead of the durable one, to see what that storage costs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _limits import durable_broker, emit, figure, percentile, python_child, run_measurement, say

TAG = "hop"
LIGHT_IN, LIGHT_OUT = "bench.hop.light.in.v1", "bench.hop.light.out.v1"
BULK_IN, BULK_OUT = "bench.hop.bulk.in.v1", "bench.hop.bulk.out.v1"
PARTITIONS = 3
PADDING = "x" * 64  # a message of ~100 bytes, like a small order event's key fields


@dataclass(frozen=True)
class Mode:
    light_messages: int
    light_rate: float
    bulk_messages: int


FULL = Mode(light_messages=100, light_rate=10.0, bulk_messages=50_000)
SMOKE = Mode(light_messages=5, light_rate=10.0, bulk_messages=1_000)


def _client_options(bootstrap: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Consumer and producer options as the services get them from ``relay_platform``."""
    from relay_platform.broker import consumer_options, producer_options
    from relay_platform.settings import KafkaSettings

    settings = KafkaSettings(bootstrap_servers=bootstrap)
    stated = consumer_options(settings, group_id=f"bench-hop-{uuid.uuid4().hex[:8]}")
    consumer = {
        "bootstrap_servers": bootstrap,
        "group_id": stated["group_id"],
        "auto_offset_reset": stated["auto_offset_reset"],
        "max_poll_interval_ms": stated["max_poll_interval_ms"],
        "fetch_max_wait_ms": stated["fetch_max_wait_ms"],
        "request_timeout_ms": settings.request_timeout_ms,
        # Commit after handling (FastStream's ack policy does the same with auto-commit off).
        "enable_auto_commit": False,
    }
    return consumer, producer_options(settings, service="bench-hop")


# --- --role hop: the hop itself -----------------------------------------------------------------------------------


async def hop(bootstrap: str, source: str, target: str, count: int) -> dict[str, Any]:
    """Consume ``count`` messages of ``source`` and republish them to ``target``, batch by batch: every send
    issued, every confirmation awaited, then the commit. Prints ``ready`` once it holds its partitions."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    consumer_kwargs, producer_kwargs = _client_options(bootstrap)
    consumer = AIOKafkaConsumer(source, **consumer_kwargs)
    producer = AIOKafkaProducer(**producer_kwargs)
    await producer.start()
    await consumer.start()
    done_at: dict[int, float] = {}
    first: float | None = None
    cpu_start = 0.0
    try:
        pending = await consumer.getmany(timeout_ms=100)
        while not consumer.assignment():
            pending = await consumer.getmany(timeout_ms=100)
        print("ready", flush=True)
        handled = 0
        while handled < count:
            batches = pending or await consumer.getmany(timeout_ms=1000)
            pending = {}
            records = [record for batch in batches.values() for record in batch]
            if not records:
                continue
            if first is None:
                first, cpu_start = time.monotonic(), time.process_time()
            futures = [await producer.send(target, record.value, key=record.key) for record in records]
            await asyncio.gather(*futures)
            await consumer.commit()
            now = time.monotonic()
            for record in records:
                done_at[json.loads(record.value)["i"]] = now
            handled += len(records)
        last = time.monotonic()
        cpu = time.process_time() - cpu_start
    finally:
        await consumer.stop()
        await producer.stop()
    assert first is not None
    return {"done_at": done_at, "first": first, "last": last, "cpu_s": cpu}


# --- the measurement --------------------------------------------------------------------------------------------------


@dataclass
class HopProcess:
    """``--role hop`` as a child (``hop_process``): its JSON result once it has handled its messages."""

    process: asyncio.subprocess.Process

    async def result(self, timeout_s: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout_s):
            out = await self.process.stdout.read()
            await self.process.wait()
        if self.process.returncode != 0:
            raise RuntimeError(f"the hop exited with {self.process.returncode}")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result


@contextlib.asynccontextmanager
async def hop_process(bootstrap: str, source: str, target: str, count: int) -> AsyncIterator[HopProcess]:
    """The hop started and waited for until it holds its partitions; killed on the way out if still running."""
    argv = python_child(
        Path(__file__), "--role", "hop", "--bootstrap", bootstrap, "--source", source, "--target", target,
        "--count", str(count),
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
    try:
        started = time.monotonic()
        assert process.stdout is not None
        async with asyncio.timeout(60):
            line = await process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the hop did not start: {line!r}")
        say(TAG, f"hop holds its partitions of {source} after {time.monotonic() - started:.1f} s")
        yield HopProcess(process)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def _value(i: int) -> bytes:
    return json.dumps({"i": i, "pad": PADDING}).encode()


async def measure(mode: Mode, *, memory_broker: bool = False) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaProducer

    from relay_platform.broker import ensure_topics

    with tempfile.TemporaryDirectory(prefix="relay-bench-hop-") as tmp:
        async with durable_broker(Path(tmp), TAG, memory=memory_broker) as bootstrap:
            await ensure_topics(bootstrap, (LIGHT_IN, LIGHT_OUT, BULK_IN, BULK_OUT), partitions=PARTITIONS)
            _, producer_kwargs = _client_options(bootstrap)
            producer = AIOKafkaProducer(**producer_kwargs)
            await producer.start()
            try:
                # Light load: one message at a time, the hop waiting for it.
                sent_at: dict[int, float] = {}
                async with hop_process(bootstrap, LIGHT_IN, LIGHT_OUT, mode.light_messages) as hop_light:
                    begin = time.monotonic()
                    for i in range(mode.light_messages):
                        await asyncio.sleep(max(0.0, begin + i / mode.light_rate - time.monotonic()))
                        sent_at[i] = time.monotonic()
                        await producer.send_and_wait(LIGHT_IN, _value(i), key=str(i).encode())
                    done = await hop_light.result(timeout_s=60)
                latencies = [1000 * (done["done_at"][str(i)] - sent_at[i]) for i in sent_at]
                p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
                say(TAG, f"light load ({mode.light_rate:g}/s): p50 {p50:.1f} ms, p99 {p99:.1f} ms")

                # Throughput: a full topic drained.
                futures = [
                    await producer.send(BULK_IN, _value(i), key=str(i).encode()) for i in range(mode.bulk_messages)
                ]
                await asyncio.gather(*futures)
                say(TAG, f"{mode.bulk_messages} messages waiting in {BULK_IN}")
                async with hop_process(bootstrap, BULK_IN, BULK_OUT, mode.bulk_messages) as bulk:
                    drained = await bulk.result(timeout_s=300)
            finally:
                await producer.stop()
    span = drained["last"] - drained["first"]
    rate = mode.bulk_messages / span
    cpu_ms = 1000 * drained["cpu_s"] / mode.bulk_messages
    say(TAG, f"throughput: {rate:.0f} msgs/s ({mode.bulk_messages} in {span:.2f} s), {cpu_ms:.3f} ms CPU per message")
    goal = "reference: the floor of a service hop"
    light = f"{mode.light_rate:g} msgs/s"
    return [
        figure("hop_latency_p50", f"raw aiokafka hop consume->produce->commit, p50 ({light})", p50, "ms", goal=goal,
               better="lower"),
        figure("hop_latency_p99", f"raw aiokafka hop consume->produce->commit, p99 ({light})", p99, "ms", goal=goal,
               better="lower"),
        figure("hop_throughput", "raw aiokafka hop, batched, draining a full topic", rate, "msgs/s", goal=goal,
               better="higher"),
        figure("hop_cpu_ms_per_msg", "raw aiokafka hop, CPU per message (batched)", cpu_ms, "ms", goal=goal,
               better="lower"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--memory-broker", action="store_true", help="Tansu with memory storage, not make run's durable broker"
    )
    parser.add_argument("--smoke", action="store_true", help="the tiniest run, for `make test`")
    parser.add_argument("--role", choices=("measure", "hop"), default="measure", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "hop":
        print(json.dumps(asyncio.run(hop(args.bootstrap, args.source, args.target, args.count))))
        return
    started = time.monotonic()
    figures = run_measurement(measure(SMOKE if args.smoke else FULL, memory_broker=args.memory_broker))
    say(TAG, f"done in {time.monotonic() - started:.0f} s")
    emit(figures)


if __name__ == "__main__":
    main()
