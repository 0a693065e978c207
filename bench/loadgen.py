"""Open-loop load generator for ``bench/e2e.py``, run as a process of its own so it never shares the suite's event
loops: links one recipe per order (``POST /api/v2/recipe/order``, one association per request) at a fixed rate.

Run: ``python bench/loadgen.py --api URL --apikey KEY --recipes ID[,ID...] --prefix P --count N [--rate R]
[--concurrency C]``. Order ``i`` is ``<prefix><i>`` and links recipe ``i mod len(recipes)``. Request ``i`` is
sent at ``start + i / rate`` whether or not earlier ones were answered (``--rate 0``: as fast as ``--concurrency``
requests in flight allow). A ``429`` is retried after its ``Retry-After``. Prints one JSON line per order
(``orderNumber``, ``status``, ``sent``/``accepted`` on ``time.monotonic`` — one clock for every process on Linux
— and ``accepted_wall`` on ``time.time``), then a summary line with this process's CPU time while sending.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import aiohttp

MAX_429_RETRIES = 50


async def _link(
    session: aiohttp.ClientSession, url: str, apikey: str, line: dict[str, Any], gate: asyncio.Semaphore
) -> dict[str, Any]:
    result: dict[str, Any] = {"orderNumber": line["orderNumber"], "recipeId": line["recipeId"]}
    async with gate:
        result["sent"] = time.monotonic()
        for _ in range(MAX_429_RETRIES):
            try:
                async with session.post(url, json=[line], headers={"Authorization": f"Bearer {apikey}"}) as response:
                    await response.read()
                    status, retry_after = response.status, response.headers.get("Retry-After", "1")
            except (aiohttp.ClientError, TimeoutError) as error:
                result |= {"status": 0, "error": repr(error)}
                return result
            if status != 429:
                break
            result["retries_429"] = result.get("retries_429", 0) + 1
            with contextlib.suppress(ValueError):
                await asyncio.sleep(min(float(retry_after), 5.0))
        result |= {"status": status, "accepted": time.monotonic(), "accepted_wall": time.time()}
    return result


async def run(args: argparse.Namespace) -> None:
    recipes = args.recipes.split(",")
    lines = [
        {
            "recipeId": recipes[i % len(recipes)],
            "orderNumber": f"{args.prefix}{i}",
            "orderId": f"{args.prefix}-id-{i}",
            "itemId": "1",
            "itemQuantity": 1,
        }
        for i in range(args.count)
    ]
    url = f"{args.api.rstrip('/')}/api/v2/recipe/order"
    gate = asyncio.Semaphore(args.concurrency)
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        # One request first (not timed): the connection and the first-call costs are not part of the load.
        async with session.get(f"{args.api.rstrip('/')}/healthz") as response:
            await response.read()
        cpu_start, wall_start = time.process_time(), time.monotonic()
        tasks = []
        for i, line in enumerate(lines):
            if args.rate > 0:
                delay = wall_start + i / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_link(session, url, args.apikey, line, gate)))
        results = await asyncio.gather(*tasks)
        cpu, wall = time.process_time() - cpu_start, time.monotonic() - wall_start
    out = sys.stdout
    for result in results:
        out.write(json.dumps(result) + "\n")
    summary = {
        "summary": True,
        "orders": len(results),
        "accepted": sum(1 for r in results if r.get("status") == 202),
        "cpu_s": cpu,
        "wall_s": wall,
        "cpu_pct": 100.0 * cpu / wall if wall > 0 else 0.0,
        "retries_429": sum(r.get("retries_429", 0) for r in results),
    }
    out.write(json.dumps(summary) + "\n")
    out.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", required=True, help="the ingest API's base URL")
    parser.add_argument("--apikey", required=True)
    parser.add_argument("--recipes", required=True, help="comma-separated recipe IDs (saved beforehand)")
    parser.add_argument("--prefix", required=True, help="order numbers are <prefix><i>")
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0, help="requests per second; 0: as fast as possible")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight at most")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
