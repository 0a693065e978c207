"""Bundles per second: a 20-component recipe with 3 preview images, local asset server, local artifact store.

Run: ``uv run python services/bundle-builder/bench/bench_bundles.py [--bundles N] [--concurrency C]``.
Measures ``build_bundle`` end to end (fetch assets over loopback HTTP, render the PDF pick ticket, store files and
manifest); Kafka is not involved.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web
from PIL import Image

from relay_bundle_builder.adapters.assets import HttpAssetFetcher, make_session
from relay_bundle_builder.ports import BuildContext
from relay_bundle_builder.service import build_bundle
from relay_bundle_builder.settings import AssetFetchSettings
from relay_contracts.messages import IntegrationsTriggered, OrderLine, recipe_object_key
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import Tenant


def _png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (800, 800), color).save(buffer, format="PNG")
    return buffer.getvalue()


def _recipe(recipe_id: str, base: str) -> dict[str, Any]:
    return {
        "id": recipe_id,
        "created": "2026-11-20T09:30:00Z",
        "name": "Benchmark Bottle — Gravur Ü / Гравировка",
        "styleCode": "BENCH-1",
        "version": "1",
        "components": [
            {
                "name": f"Placement {i}",
                "code": f"P{i}",
                "component": {
                    "code": f"C{i}",
                    "sku": f"SKU-{i}",
                    "upc": f"{i:012d}",
                    "quantityMultiplier": 1,
                    "description": [{"code": f"O{i}", "name": f"Option {i}"}],
                    "variables": [{"code": "text", "value": f"Value {i}"}],
                },
            }
            for i in range(20)
        ],
        "views": [{"code": view, "previewPng": f"{base}/{view}.png"} for view in ("front", "back", "side")],
    }


async def run(bundles: int, concurrency: int) -> float:
    images = {name: _png(color) for name, color in (("front", "red"), ("back", "blue"), ("side", "green"))}

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=images[request.match_info["view"]], content_type="image/png")

    app = web.Application()
    app.router.add_get("/{view}.png", image)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    base = f"http://127.0.0.1:{port}"
    tenant = Tenant(recipe_prefix="999", allowed_asset_hosts=("127.0.0.1:*",))
    policy = AssetFetchSettings(concurrency=16)
    with tempfile.TemporaryDirectory() as directory:
        store = LocalDirectoryStore(Path(directory))
        triggers = []
        for n in range(bundles):
            recipe_id = f"999-bench{n:05d}"
            await store.put(
                recipe_object_key("bench", recipe_id),
                json.dumps(_recipe(recipe_id, base)).encode(),
                content_type="application/json",
            )
            triggers.append(
                IntegrationsTriggered(
                    trigger_id=f"bench-{n}",
                    tenant="bench",
                    recipe_id=recipe_id,
                    recipe_key=recipe_object_key("bench", recipe_id),
                    feed="order",
                    reason="order_created",
                    order=OrderLine(order_id=f"{n}", order_number=f"{1000 + n}", item_id="1", item_quantity=1),
                    integration_ids=("x",),
                    occurred_at=datetime.now(UTC),
                )
            )
        async with make_session(policy) as session:
            ctx = BuildContext(
                store=store,
                fetcher=HttpAssetFetcher(session, policy),
                recipe_url=lambda rid: f"{base}/recipe/{rid}.json",
            )
            await build_bundle(triggers[0], tenant, ctx)  # warm-up: fonts, imports
            limit = asyncio.Semaphore(concurrency)

            async def one(trigger: IntegrationsTriggered) -> None:
                async with limit:
                    await build_bundle(trigger, tenant, ctx)

            started = time.perf_counter()
            await asyncio.gather(*(one(t) for t in triggers))
            elapsed = time.perf_counter() - started
    await runner.cleanup()
    return bundles / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bundles", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    rate = asyncio.run(run(args.bundles, args.concurrency))
    print(
        f"{rate:.1f} bundles/s ({args.bundles} bundles, concurrency {args.concurrency}, 20 components, "
        "3 preview PNGs 800x800)"
    )


if __name__ == "__main__":
    main()
