"""End-to-end figures of `make run`'s whole suite: throughput and latency (HTTP 202 -> Zapier hook received, and
-> SFTP pick ticket written), CPU per order of every service, idle RSS of every service.

Run: ``uv run --frozen python bench/e2e.py [--smoke] [--keep] [--memory-broker]``.

The suite runs as ``relay dev`` runs it (DevStack: durable Tansu on its own SeaweedFS, every service its own
process, ``config/dev.yaml``'s demo tenant and its five destinations: SMTP capture, asyncssh SFTP, SeaweedFS S3,
Azurite, the Zapier hook receiver) but on free ports and in a temporary directory. The demo tenant saves four
8-component recipes without images; ``bench/loadgen.py`` (a process of its own) links them to orders, one
association per request:

- warm-up: 2 orders, waited for; then the suite idles (5 s; 3 s in smoke mode) and every service's VmRSS and idle
  CPU rate are read from /proc;
- light load: 4 orders/s open-loop for 20 s (smoke: 3 orders); latency of each order from its ``202`` to the first
  request for it at the Zapier hook receiver (timed on arrival), and to its ``*_Ticket.pdf`` appearing in the SFTP
  root (its ctime, found by polling); then each hop's share, from the producer timestamps (CreateTime) of the
  order's records on the broker: 202 -> ``orders.events.v1`` (ingest-api) -> ``integrations.triggered.v1``
  (association-store) -> ``deliveries.requested.zapier.v1`` (bundle-builder) -> hook received (deliver-zapier);
  ``--light-rate`` sets the rate (the default 4/s is the issue's; 1/s shows the floor of an idle suite);
- throughput: 300 orders (smoke: 10) sent as fast as 64 requests in flight allow; an order is complete when both
  the hook and the ticket arrived; throughput is completions per second between the 10th and 90th percentile
  completion (the steady part). CPU time (utime + stime of each process group: every service, Tansu, its SeaweedFS,
  the destination servers, this process) is read before the burst and once the suite is quiet again; each group's
  idle rate over that time is taken off, the rest divided by the orders (one clock tick at least: the resolution).
  ``loadgen_cpu_pct`` is the load generator's CPU while it sent the burst (% of one core): near 100 it would be
  holding the load back.

``--memory-broker`` runs Tansu with memory storage instead of the durable one, to see what that storage costs.

Prints progress on stderr and the figures as JSON lines (the last lines of stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from _stack import (
    CLOCK_TICK_S,
    DEMO_API_KEY,
    SERVICES,
    BenchDestinations,
    BenchStack,
    CpuSnapshot,
    clean_environment,
    new_stack,
    process_group,
    rss_mb,
    say,
    snapshot,
)
from aiokafka import AIOKafkaConsumer, TopicPartition

from relay_contracts.topics import INTEGRATIONS_TRIGGERED, ORDERS_EVENTS, deliveries_requested
from relay_devservers.kafka import TansuBroker

LOADGEN = Path(__file__).with_name("loadgen.py")
RECIPES = 4
COMPONENTS = 8
# Suite CPU use (% of one core) below which it counts as quiet before its idle use is known (consumers polling an
# idle broker use ~20 %; a busy suite, all of both cores); afterwards, idle use plus this margin.
QUIET_PCT = 50.0
QUIET_MARGIN_PCT = 10.0
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class Mode:
    warmup: int
    idle_s: float
    light_orders: int
    light_rate: float
    burst_orders: int
    burst_concurrency: int


FULL = Mode(warmup=2, idle_s=5.0, light_orders=80, light_rate=4.0, burst_orders=300, burst_concurrency=64)
SMOKE = Mode(warmup=1, idle_s=3.0, light_orders=3, light_rate=4.0, burst_orders=10, burst_concurrency=64)


def recipe(recipe_id: str, n: int) -> dict[str, Any]:
    """A demo-style recipe: 8 engraved/printed components, options and variables, no images."""
    return {
        "id": recipe_id,
        "created": "2026-11-20T10:00:00Z",
        "name": f"Engraved Mug {n}",
        "styleCode": "MUG-11",
        "components": [
            {
                "name": f"Placement {i}",
                "code": f"p{i}",
                "component": {
                    "code": "engraving" if i % 2 else "print",
                    "sku": f"ENG-{i}",
                    "upc": f"{i:012d}",
                    "quantityMultiplier": 1,
                    "description": [{"code": f"o{i}", "name": f"Option {i}"}],
                    "variables": [{"code": "text", "value": f"Line {i} of recipe {n}"}],
                },
            }
            for i in range(COMPONENTS)
        ],
    }


# --- what arrived where -------------------------------------------------------------------------------------------


@dataclass
class TicketWatcher:
    """Polls the SFTP root for ``<orderNumber>/*_Ticket.pdf`` of the orders expected; notes its ctime (the rename
    that made it visible, on ``time.time``)."""

    root: Path
    pending: set[str] = field(default_factory=set)
    found: dict[str, float] = field(default_factory=dict)

    def expect(self, numbers: list[str]) -> None:
        self.pending.update(n for n in numbers if n not in self.found)

    def poll(self) -> None:
        if not self.pending:
            return
        try:
            present = {entry.name for entry in os.scandir(self.root)} & self.pending
        except FileNotFoundError:
            return
        for number in present:
            with contextlib.suppress(FileNotFoundError), os.scandir(self.root / number) as entries:
                for entry in entries:
                    if entry.name.endswith("_Ticket.pdf") and not entry.name.startswith("."):
                        self.found[number] = min(entry.stat().st_ctime, time.time())
                        self.pending.discard(number)
                        break

    async def run(self) -> None:
        while True:
            self.poll()
            await asyncio.sleep(0.05)


@dataclass
class Sent:
    order: str
    accepted: float  # time.monotonic of the 202
    accepted_wall: float


@dataclass
class Bench:
    mode: Mode
    stack: BenchStack
    destinations: BenchDestinations
    tickets: TicketWatcher
    api: str
    bootstrap: str = ""
    recipe_ids: list[str] = field(default_factory=list)
    groups: dict[str, list[int]] = field(default_factory=dict)
    wall_minus_mono: float = field(default_factory=lambda: time.time() - time.monotonic())
    quiet_pct: float = QUIET_PCT

    @property
    def hooks(self) -> dict[str, float]:
        assert self.destinations.hooks is not None
        return self.destinations.hooks.arrivals

    def ticket_mono(self, order: str) -> float:
        return self.tickets.found[order] - self.wall_minus_mono

    async def save_recipes(self) -> None:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            for n in range(RECIPES):
                recipe_id = f"999-{secrets.token_hex(8)}"
                headers = {"Authorization": f"Bearer {DEMO_API_KEY}"}
                async with session.post(f"{self.api}/api/v2/recipes", json=recipe(recipe_id, n), headers=headers) as r:
                    if r.status != 201:
                        raise RuntimeError(f"saving a recipe: {r.status} {await r.text()}")
                self.recipe_ids.append(recipe_id)

    async def send(self, prefix: str, count: int, rate: float, concurrency: int) -> tuple[list[Sent], dict[str, Any]]:
        """Run the load generator; returns the accepted orders and its summary."""
        argv = [
            str(LOADGEN),
            f"--api={self.api}",
            f"--apikey={DEMO_API_KEY}",
            f"--recipes={','.join(self.recipe_ids)}",
            f"--prefix={prefix}",
            f"--count={count}",
            f"--rate={rate}",
            f"--concurrency={concurrency}",
        ]
        process = await asyncio.create_subprocess_exec(
            sys.executable, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await process.communicate()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode != 0:
            raise RuntimeError(f"the load generator failed ({process.returncode}): {err.decode(errors='replace')}")
        lines = [json.loads(line) for line in out.decode().splitlines() if line.strip()]
        summary = next(line for line in lines if line.get("summary"))
        failed = [line for line in lines if not line.get("summary") and line.get("status") != 202]
        if failed:
            raise RuntimeError(f"{len(failed)} of {count} links were not accepted, e.g. {failed[0]}")
        sent = [
            Sent(line["orderNumber"], line["accepted"], line["accepted_wall"])
            for line in lines
            if not line.get("summary")
        ]
        self.tickets.expect([s.order for s in sent])
        return sent, summary

    async def delivered(self, orders: list[str], *, within: float) -> None:
        """Wait until every order reached the Zapier hook and has its SFTP ticket."""
        deadline = time.monotonic() + within
        while True:
            self.stack.check_children()
            missing = [o for o in orders if o not in self.hooks or o not in self.tickets.found]
            if not missing:
                return
            if time.monotonic() > deadline:
                no_hook = sum(1 for o in missing if o not in self.hooks)
                no_ticket = sum(1 for o in missing if o not in self.tickets.found)
                raise TimeoutError(
                    f"{len(missing)} of {len(orders)} orders not delivered within {within:.0f} s "
                    f"({no_hook} without hook, {no_ticket} without ticket)\n"
                    f"--- {self.stack.log_path}, last lines:\n{self.stack.log_tail()}"
                )
            await asyncio.sleep(0.1)

    def cpu(self) -> CpuSnapshot:
        return snapshot(self.groups)

    async def quiet(self, *, within: float = 60.0) -> None:
        """Wait until the suite's CPU use stays below ``quiet_pct`` of a core for a second (trailing deliveries,
        notices and commits done)."""
        suite = [name for name in self.groups if name != "bench"]
        deadline = time.monotonic() + within
        calm = 0
        before = self.cpu()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            after = self.cpu()
            used = sum(after.since(before)[name] for name in suite)
            pct = 100.0 * used / (after.at - before.at)
            calm = calm + 1 if pct < self.quiet_pct else 0
            if calm >= 2:
                return
            before = after
        say(f"the suite did not go quiet (< {self.quiet_pct:.0f}% of a core) within {within:.0f} s; going on")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (q in 0..100)."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def steady_rate(completions: list[float]) -> float:
    """Completions per second between the 10th and the 90th percentile completion."""
    done = sorted(completions)
    first, last = int(len(done) * 0.1), max(math.ceil(len(done) * 0.9) - 1, 0)
    if last > first and done[last] > done[first]:
        return (last - first) / (done[last] - done[first])
    span = done[-1] - done[0]
    return len(done) / span if span > 0 else float("nan")


P50_GOAL, P99_GOAL = "<= 300 ms", "<= 1000 ms"
CPU_GOAL = f"suite <= {1000 * CORES / 50:.0f} ms ({CORES} cores at 50 orders/s)"


def figure(figure_id: str, label: str, value: float, unit: str, *, goal: str, better: str = "lower") -> dict[str, Any]:
    """One figure line of the common bench format (no same-run limit for end-to-end figures)."""
    return {
        "figure": figure_id,
        "label": label,
        "value": round(value, 3),
        "unit": unit,
        "limit_label": None,
        "limit_value": None,
        "goal": goal,
        "better": better,
    }


# --- the run ------------------------------------------------------------------------------------------------------


async def warm_up_and_idle(bench: Bench) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Recipes saved, a first order through, then idle: every service's RSS, and every group's idle CPU rate."""
    await bench.save_recipes()
    say(f"saved {len(bench.recipe_ids)} recipes; warming up with {bench.mode.warmup} order(s)")
    sent, _ = await bench.send("W", bench.mode.warmup, 0, 4)
    await bench.delivered([s.order for s in sent], within=180)
    await bench.quiet()
    before = bench.cpu()
    await asyncio.sleep(bench.mode.idle_s)
    after = bench.cpu()
    idle_rate = {name: used / (after.at - before.at) for name, used in after.since(before).items()}
    bench.quiet_pct = QUIET_MARGIN_PCT + 100.0 * sum(r for n, r in idle_rate.items() if n != "bench")
    say("idle CPU (% of a core): " + ", ".join(f"{n} {100 * r:.1f}" for n, r in idle_rate.items()))
    say("idle RSS (MB): " + ", ".join(f"{n} {rss_mb(p):.0f}" for n, p in bench.groups.items()))
    figures = [
        figure(f"idle_rss_mb_{service}", f"idle RSS, {service}", rss_mb(bench.groups[service]), "MB", goal="< 90 MB")
        for service in SERVICES
    ]
    return figures, idle_rate


HOP_TOPICS = (ORDERS_EVENTS, INTEGRATIONS_TRIGGERED, deliveries_requested("zapier"))


def _order_number(value: Any) -> str | None:
    """The order number of an order event (``orderNumber``) or of a trigger / delivery request (``order``)."""
    if not isinstance(value, dict):
        return None
    number = value.get("orderNumber")
    if isinstance(number, str):
        return number
    return _order_number(value.get("order"))


async def record_times(bootstrap: str, orders: set[str]) -> dict[str, dict[str, float]]:
    """topic -> order number -> the earliest producer timestamp (s, wall clock) of its record there."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for topic in HOP_TOPICS for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: dict[str, dict[str, float]] = {topic: {} for topic in HOP_TOPICS}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            behind = [tp for tp in partitions if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, records in batches.items():
                for record in records:
                    try:
                        number = _order_number(json.loads(record.value or b"null"))
                    except ValueError:
                        continue
                    if number in orders:
                        seen = found[tp.topic]
                        seen[number] = min(seen.get(number, math.inf), record.timestamp / 1000)
        return found
    finally:
        await consumer.stop()


HOP_GOAL = "reference: each hop's part of the latency"
HOPS = (
    ("ingest", "202 -> orders.events record (ingest-api; negative: published before the 202)"),
    ("association", "orders.events -> integrations.triggered (association-store)"),
    ("bundle", "integrations.triggered -> deliveries.requested.zapier (bundle-builder)"),
    ("zapier", "deliveries.requested.zapier -> hook received (deliver-zapier)"),
)


async def hop_shares(bench: Bench, sent: list[Sent], at: str) -> list[dict[str, Any]]:
    """Median time of each hop of the light-load orders, from their records' producer timestamps (printed with its
    share of the whole; the hops after the 202 are figures)."""
    times = await record_times(bench.bootstrap, {s.order for s in sent})
    ordered = [times[topic] for topic in HOP_TOPICS]
    hops: dict[str, list[float]] = {name: [] for name, _ in HOPS}
    total: list[float] = []
    for s in sent:
        marks = [s.accepted_wall, *(t.get(s.order) for t in ordered), bench.hooks[s.order] + bench.wall_minus_mono]
        at_s = [m for m in marks if m is not None]
        if len(at_s) != len(marks):
            continue
        for (name, _), start, end in zip(HOPS, at_s, at_s[1:], strict=False):
            hops[name].append(1000 * (end - start))
        total.append(1000 * (at_s[-1] - at_s[0]))
    if not total:
        say("hop shares: no order had every record")
        return []
    whole = percentile(total, 50)
    lines = [f"hop shares of {len(total)} orders (p50 202 -> hook {whole:.0f} ms):"]
    figures = []
    for name, label in HOPS:
        p50 = percentile(hops[name], 50)
        lines.append(
            f"  {label}: p50 {p50:.0f} ms ({100 * p50 / whole:.0f} %), p99 {percentile(hops[name], 99):.0f} ms"
        )
        if name != "ingest":
            figures.append(figure(f"e2e_hop_{name}_p50", f"hop {label}, p50 {at}", p50, "ms", goal=HOP_GOAL))
    say("\n".join(lines))
    return figures


async def light_load(bench: Bench) -> list[dict[str, Any]]:
    """Latency of each order at a light open-loop load: 202 -> Zapier hook, 202 -> SFTP ticket."""
    mode = bench.mode
    say(f"light load: {mode.light_orders} orders at {mode.light_rate:g}/s")
    sent, summary = await bench.send("L", mode.light_orders, mode.light_rate, 64)
    await bench.delivered([s.order for s in sent], within=90 + mode.light_orders / 2)
    hook = [1000 * (bench.hooks[s.order] - s.accepted) for s in sent]
    ticket = [1000 * (bench.tickets.found[s.order] - s.accepted_wall) for s in sent]
    say(
        f"light load: hook p50 {percentile(hook, 50):.0f} ms p99 {percentile(hook, 99):.0f} ms, "
        f"ticket p50 {percentile(ticket, 50):.0f} ms p99 {percentile(ticket, 99):.0f} ms "
        f"(load generator {summary['cpu_pct']:.1f}% of a core)"
    )
    at = f"({mode.light_rate:g} orders/s)"
    hops = await hop_shares(bench, sent, at)
    await bench.quiet()
    return [
        *hops,
        figure("e2e_latency_p50", f"latency 202 -> Zapier hook, p50 {at}", percentile(hook, 50), "ms", goal=P50_GOAL),
        figure("e2e_latency_p99", f"latency 202 -> Zapier hook, p99 {at}", percentile(hook, 99), "ms", goal=P99_GOAL),
        figure(
            "e2e_ticket_latency_p50",
            f"latency 202 -> SFTP ticket, p50 {at}",
            percentile(ticket, 50),
            "ms",
            goal=P50_GOAL,
        ),
        figure(
            "e2e_ticket_latency_p99",
            f"latency 202 -> SFTP ticket, p99 {at}",
            percentile(ticket, 99),
            "ms",
            goal=P99_GOAL,
        ),
    ]


async def throughput(bench: Bench, idle_rate: dict[str, float]) -> list[dict[str, Any]]:
    """A burst of orders drained by the pipeline as fast as it goes: completions per second in the steady part, and
    CPU per order of every process group (its idle rate over the same time taken off)."""
    mode = bench.mode
    say(f"throughput: {mode.burst_orders} orders, {mode.burst_concurrency} in flight")
    before = bench.cpu()
    sent, burst = await bench.send("T", mode.burst_orders, 0, mode.burst_concurrency)
    orders = [s.order for s in sent]
    await bench.delivered(orders, within=60 + mode.burst_orders * 0.5)
    done = [max(bench.hooks[o], bench.ticket_mono(o)) for o in orders]
    await bench.quiet()
    after = bench.cpu()
    rate = steady_rate(done)
    overall = len(orders) / (max(done) - min(s.accepted for s in sent))
    send_rate = burst["orders"] / burst["wall_s"]
    say(
        f"throughput: {rate:.1f} orders/s steady, {overall:.1f} overall; sent {burst['orders']} in "
        f"{burst['wall_s']:.2f} s ({send_rate:.0f}/s, {burst['retries_429']} answers 429)"
    )
    if send_rate < 2 * rate:
        say("WARNING: orders were sent at less than twice the throughput: the sending may have limited it")

    elapsed = after.at - before.at
    used = after.since(before)
    # Floored at the resolution of /proc's CPU times (one clock tick over all the orders): below it, nothing is seen.
    per_order = {n: max(used[n] - idle_rate.get(n, 0.0) * elapsed, CLOCK_TICK_S) * 1000 / len(orders) for n in used}
    say("CPU ms per order: " + ", ".join(f"{n} {v:.1f}" for n, v in sorted(per_order.items(), key=lambda i: -i[1])))
    broker = sum(v for n, v in per_order.items() if n.startswith("tansu"))
    destinations = sum(v for n, v in per_order.items() if n.startswith("demo-") or n == "bench")
    total = sum(per_order[service] for service in SERVICES) + broker + destinations
    # The load generator's share of a core while sending the burst (when it could have held the rate back).
    over_run = 100 * burst["cpu_s"] / elapsed
    say(f"load generator: {burst['cpu_pct']:.0f}% of a core while sending, {over_run:.1f}% over the run")
    return [
        figure(
            "e2e_throughput",
            "throughput 202 -> Zapier hook and SFTP ticket",
            rate,
            "orders/s",
            goal=">= 50 orders/s",
            better="higher",
        ),
        *(figure(f"cpu_ms_per_order_{s}", f"CPU per order, {s}", per_order[s], "ms", goal=CPU_GOAL) for s in SERVICES),
        figure("cpu_ms_per_order_broker", "CPU per order, broker (Tansu + its SeaweedFS)", broker, "ms", goal=CPU_GOAL),
        figure(
            "cpu_ms_per_order_destinations",
            "CPU per order, demo destinations (and relay dev's log pump)",
            destinations,
            "ms",
            goal=CPU_GOAL,
        ),
        figure(
            "cpu_ms_per_order_total",
            "CPU per order, services + broker + destinations",
            total,
            "ms",
            goal=CPU_GOAL.removeprefix("suite "),
        ),
        figure(
            "loadgen_cpu_pct",
            "load generator CPU while sending the throughput burst",
            burst["cpu_pct"],
            "%",
            goal="< 50 % of a core (not the bottleneck)",
        ),
    ]


async def measure(bench: Bench) -> list[dict[str, Any]]:
    idle, idle_rate = await warm_up_and_idle(bench)
    latency = await light_load(bench)
    return idle + latency + await throughput(bench, idle_rate)


async def main(mode: Mode, *, keep: bool, memory_broker: bool) -> int:
    clean_environment()
    var = Path(tempfile.mkdtemp(prefix="relay-bench-e2e-"))
    destinations = BenchDestinations(var / "dev")
    stack: BenchStack | None = None
    watcher: asyncio.Task[None] | None = None
    memory: TansuBroker | None = None
    started = time.monotonic()
    try:
        say(f"starting the suite in {var}")
        if memory_broker:
            memory = TansuBroker(var / "tansu")
            memory.start()
            os.environ["KAFKA_BOOTSTRAP_SERVERS"] = memory.bootstrap  # DevStack then starts no broker of its own
            say(f"Tansu with memory storage (not make run's durable broker) at {memory.bootstrap}")
        env = await destinations.start()
        tenants = destinations.tenants_file(var / "tenants.yaml")
        stack = new_stack(var, env | {"RELAY_TENANTS_FILE": str(tenants)})
        await stack.start()
        await stack.wait_ready(within_s=120)
        say(f"suite up in {time.monotonic() - started:.0f} s ({len(SERVICES)} services); log: {stack.log_path}")
        tickets = TicketWatcher(destinations.sftp_root)
        watcher = asyncio.create_task(tickets.run())
        bench = Bench(
            mode,
            stack,
            destinations,
            tickets,
            f"http://127.0.0.1:{stack.api_port}",
            bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or f"127.0.0.1:{stack.broker_port}",
        )
        bench.groups = {service: process_group(stack.pid(service)) for service in SERVICES}
        for name, pid in stack.broker_pids().items():
            bench.groups[name] = process_group(pid)
        if memory is not None and memory.server is not None:
            bench.groups["tansu"] = process_group(memory.server.pid)
        for name, pid in destinations.processes().items():
            bench.groups[f"demo-{name}"] = process_group(pid)
        bench.groups["bench"] = [os.getpid()]  # the SFTP server and hook receiver run in this process
        figures = await measure(bench)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if stack is not None:
            await stack.stop()
        await destinations.stop()
        if memory is not None:
            memory.stop()
        if keep:
            say(f"kept {var}")
        else:
            shutil.rmtree(var, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.0f} s")
    width = max(len(f["figure"]) for f in figures)
    for item in figures:
        say(f"  {item['figure']:<{width}}  {item['value']:>10.1f} {item['unit']:<8} goal {item['goal']}")
    sys.stdout.write("".join(json.dumps(item) + "\n" for item in figures))
    sys.stdout.flush()
    return 0


def _run(mode: Mode, *, keep: bool, memory_broker: bool) -> int:
    async def guarded() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        # SIGTERM ends the run like Ctrl-C: through the finally blocks, so the suite is stopped.
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await main(mode, keep=keep, memory_broker=memory_broker)
        except asyncio.CancelledError:
            say("stopped by SIGTERM (everything started was stopped)")
            return 128 + signal.SIGTERM

    return asyncio.run(guarded())


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tiniest run (3 + 10 orders), for `make test`")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, data)")
    parser.add_argument(
        "--memory-broker",
        action="store_true",
        help="Tansu with memory storage instead of make run's durable one (to see what the durable storage costs)",
    )
    parser.add_argument("--light-rate", type=float, help="orders/s of the latency phase (default 4)")
    args = parser.parse_args()
    chosen = SMOKE if args.smoke else FULL
    if args.light_rate:
        chosen = dataclasses.replace(chosen, light_rate=args.light_rate)
    sys.exit(_run(chosen, keep=args.keep, memory_broker=args.memory_broker))
