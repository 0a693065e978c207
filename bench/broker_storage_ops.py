"""Where the durable broker's work goes: the object-store requests Tansu makes per order, by kind.

A diagnostic, not a figure of ``make bench``: it runs ``bench/e2e.py``'s measurement (the whole suite as ``make run``
starts it) with a counting HTTP proxy between Tansu and its SeaweedFS, then prints the requests per order grouped by
what they are (a record batch written, a watermark, a consumer group's state, an offset, a listing...). Each one is
about 1-3 ms of SeaweedFS CPU on this machine, so this table is the broker's CPU per order, itemised. The proxy adds
latency, so the run's own throughput and latency figures are not comparable with ``make bench``'s.

Run: ``uv run --frozen python bench/broker_storage_ops.py [--smoke]``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
from aiohttp import web

import relay_devservers.kafka as tansu_module
from relay_devservers.processes import free_port, wait_until
from relay_devservers.seaweedfs import SeaweedS3

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import e2e  # noqa: E402  # bench/ is not a package: its scripts import each other from their folder

COUNTS_PATH = "/__counts"


def kind_of(method: str, path: str, query: str) -> str:
    """What a Tansu request is for, with topic, group and partition names and numbers folded away."""
    path = re.sub(r"/topics/[^/]+/partitions/\d+/records/\d+\.batch$", "/topics/T/partitions/P/records/N.batch", path)
    path = re.sub(r"/topics/[^/]+/partitions/\d+/watermark\.json$", "/topics/T/partitions/P/watermark.json", path)
    path = re.sub(r"/groups/consumers/[^/]+/offsets/.*$", "/groups/consumers/G/offsets/T/partitions/P.json", path)
    path = re.sub(r"/groups/consumers/[^/]+\.json$", "/groups/consumers/G.json", path)
    path = re.sub(r"^/[^/]+/clusters/[^/]+", "", path) or "/ (bucket)"
    listing = " (list)" if "list-type" in query else ""
    return f"{method} {path}{listing}"


def serve_proxy(target: str, port: int) -> None:
    """``--role proxy``: forward every request to ``target`` unchanged (the signature covers the Host header, so it is
    kept) and count it by kind; ``GET /__counts`` answers the counts."""
    counts: collections.Counter[str] = collections.Counter()

    async def run() -> None:
        session = aiohttp.ClientSession(auto_decompress=False)

        async def forward(request: web.Request) -> web.Response:
            if request.path == COUNTS_PATH:
                return web.json_response(dict(counts))
            counts[kind_of(request.method, request.path, request.query_string)] += 1
            headers = {k: v for k, v in request.headers.items() if k.lower() != "transfer-encoding"}
            async with session.request(
                request.method, target + request.path_qs, data=await request.read(), headers=headers
            ) as answer:
                body = await answer.read()
                kept = {
                    k: v
                    for k, v in answer.headers.items()
                    if k.lower() not in {"transfer-encoding", "content-encoding", "content-length"}
                }
                return web.Response(status=answer.status, body=body, headers=kept)

        app = web.Application(client_max_size=2**30)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.Event().wait()

    asyncio.run(run())


def measure(smoke: bool) -> int:
    port = free_port()
    proxies: list[subprocess.Popen[bytes]] = []
    original_env = tansu_module.tansu_s3_env

    def through_proxy(s3: SeaweedS3) -> dict[str, str]:
        env = original_env(s3)
        proxies.append(
            subprocess.Popen(  # noqa: S603 - this very script, no shell
                [sys.executable, __file__, "--role", "proxy", "--target", env["AWS_ENDPOINT"], "--port", str(port)]
            )
        )
        wait_until(lambda: _answers(port), timeout=30, what="the counting proxy")
        return env | {"AWS_ENDPOINT": f"http://127.0.0.1:{port}"}

    # The one seam: DurableTansu reads its object-store endpoint through this function when it starts the broker.
    tansu_module.tansu_s3_env = through_proxy
    mode = e2e.SMOKE if smoke else e2e.FULL
    started = time.monotonic()
    try:
        code = e2e._run(mode, keep=False, memory_broker=False)  # the same run make bench makes
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{COUNTS_PATH}", timeout=10) as answer:
            counts: dict[str, int] = json.loads(answer.read())
    finally:
        for proxy in proxies:
            proxy.terminate()
            proxy.wait(timeout=10)
    orders = mode.warmup + mode.light_orders + mode.burst_orders
    total = sum(counts.values())
    lines = [
        f"object-store requests of the broker: {total} for {orders} orders in {time.monotonic() - started:.0f} s "
        f"= {total / orders:.1f} per order (including start-up, topic creation, group joins and heartbeats)",
        *(f"  {n / orders:6.1f}  {kind}" for kind, n in sorted(counts.items(), key=lambda item: -item[1])),
    ]
    sys.stdout.write("\n".join(lines) + "\n")
    return code


def _answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{COUNTS_PATH}", timeout=1):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="e2e.py's tiniest run (14 orders)")
    parser.add_argument("--role", choices=("measure", "proxy"), default="measure", help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "proxy":
        serve_proxy(args.target, args.port)
        return 0
    return measure(args.smoke)


if __name__ == "__main__":
    sys.exit(main())
