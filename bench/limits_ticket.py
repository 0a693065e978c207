"""The bundle-builder's per-bundle build time against its limit: reportlab rendering the same pick ticket alone.

Run: ``uv run --frozen python bench/limits_ticket.py [--smoke]``.

The recipe is the end-to-end benchmark's demo-style recipe (``bench/e2e.py``: 8 components, no images), prepared
and stored as the ingest API stores it (``relay_ingest_api.domain.prepare_recipe``), for the demo tenant of
``config/dev.yaml``; every bundle is for another order line linking that one recipe (one order, one item).

- ``ticket_render_ms``: ``relay_pickticket.render_pick_ticket`` of that recipe for one order line (as the
  bundle-builder calls it: order line, recipe URL for the QR code, no previews), in this thread.
- ``bundle_build_ms``: the bundle-builder's use case for one trigger (``service.request_deliveries``: tenant and
  ownership checks, recipe read, ticket render in a worker thread, files and manifest written, one delivery
  request per integration of the demo tenant's order feed), with the artifact store ``make run`` uses (a local
  directory) and the clients its ``create_app`` opens. Its limit is the render alone.

Renders and bundles alternate, one at a time, 200 of each (smoke: 5) after one warm-up of each; the figures are
medians of wall time (the CPU time, all threads, is printed on stderr).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _limits import ROOT, emit, figure, run_measurement, say
from e2e import recipe

from relay_bundle_builder.adapters.assets import HttpAssetFetcher, make_session
from relay_bundle_builder.ports import BuildContext
from relay_bundle_builder.service import request_deliveries
from relay_bundle_builder.settings import Settings
from relay_contracts.messages import DeliverBundle, IntegrationsTriggered, OrderLine, recipe_object_key
from relay_contracts.recipe import RECIPE_LIMITS
from relay_ingest_api.domain import prepare_recipe
from relay_pickticket import TicketOrder, render_pick_ticket
from relay_platform.objectstore import ObjectStore
from relay_platform.objectstore_settings import ObjectStoreSettings, open_object_store
from relay_platform.outgoing import Outgoing
from relay_platform.tenants import TenantsConfig, load_tenants

TAG = "ticket"
TENANT = "demo"
RECIPE_ID = "999-benchticket0001"


def stored_recipe() -> bytes:
    """The end-to-end benchmark's recipe (``bench/e2e.py``, so both measure the same ticket) as the ingest API
    stores it."""
    prepared = prepare_recipe(recipe(RECIPE_ID, 0), tenant_prefix="999", now=datetime.now(UTC), limits=RECIPE_LIMITS)
    return prepared.body


@dataclass
class Builder:
    """The bundle-builder's use case with what its ``create_app`` opens, for the demo tenant and one stored recipe."""

    tenants: TenantsConfig
    ctx: BuildContext
    integration_ids: tuple[str, ...]
    recipe: dict[str, Any]
    recipe_url: str

    @property
    def store(self) -> ObjectStore:
        return self.ctx.store

    def trigger(self, n: int) -> IntegrationsTriggered:
        """Order line ``n`` linking the recipe, for every integration of the demo tenant's order feed."""
        return IntegrationsTriggered(
            trigger_id=f"bench-ticket-{n}",
            tenant=TENANT,
            recipe_id=RECIPE_ID,
            recipe_key=recipe_object_key(TENANT, RECIPE_ID),
            feed="order",
            reason="order_linked",
            order=OrderLine(order_id=f"BT-id-{n}", order_number=f"BT-{n}", item_id="1", item_quantity=1, status="open"),
            integration_ids=self.integration_ids,
            occurred_at=datetime.now(UTC),
        )

    async def build(self, n: int) -> list[Outgoing]:
        """The messages the bundle-builder publishes for order line ``n``: one delivery request per integration."""
        messages = await request_deliveries(self.trigger(n), self.tenants, self.ctx, final_read=True)
        if len(messages) != len(self.integration_ids) or not all(
            isinstance(m.message, DeliverBundle) for m in messages
        ):
            raise RuntimeError(f"bundle {n} gave {messages}, not one delivery request per integration")
        return messages

    def render(self, n: int) -> bytes:
        """The ticket alone, as the bundle-builder renders it for order line ``n``: order line, recipe URL (for the
        QR code), no previews."""
        order = TicketOrder(f"BT-{n}", f"BT-id-{n}", "1", 1, "open")
        return render_pick_ticket(self.recipe, order=order, recipe_url=self.recipe_url)


@asynccontextmanager
async def bundle_builder(objects: Path, tenants_file: Path = ROOT / "config" / "dev.yaml") -> AsyncIterator[Builder]:
    """A ``Builder`` over a local artifact store in ``objects`` (what ``make run`` uses), the recipe stored."""
    settings = Settings(
        tenants_file=tenants_file,
        object_store=ObjectStoreSettings(url=f"file://{objects}"),
        recipe_base_url="http://127.0.0.1:8080/recipe/",
    )
    tenants = load_tenants(settings.tenants_file)
    tenant = tenants.tenant(TENANT)
    if tenant is None:
        raise RuntimeError(f"{tenants_file} has no {TENANT!r} tenant")
    body = stored_recipe()
    async with make_session(settings.assets) as session, open_object_store(settings.object_store) as store:
        await store.put(recipe_object_key(TENANT, RECIPE_ID), body, content_type="application/json")
        ctx = BuildContext(
            store=store,
            fetcher=HttpAssetFetcher(session, settings.assets),
            recipe_url=settings.recipe_url,
            store_concurrency=settings.store_concurrency,
            budget=settings.bundle,
        )
        yield Builder(tenants, ctx, tenant.order_feed("linked"), json.loads(body), settings.recipe_url(RECIPE_ID))


@dataclass
class Timings:
    """Wall and CPU seconds (this process, every thread) of each render and each bundle."""

    render_wall: list[float] = field(default_factory=list)
    render_cpu: list[float] = field(default_factory=list)
    build_wall: list[float] = field(default_factory=list)
    build_cpu: list[float] = field(default_factory=list)


async def measure_both(builder: Builder, count: int) -> Timings:
    """Renders and bundles alternately, so a busy moment of the shared machine weighs on both alike."""
    timings = Timings()
    builder.render(-1)  # warm-up: fonts, imports, caches
    await builder.build(-1)
    for n in range(count):
        wall, cpu = time.perf_counter(), time.process_time()
        builder.render(n)
        timings.render_wall.append(time.perf_counter() - wall)
        timings.render_cpu.append(time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        await builder.build(n)
        timings.build_wall.append(time.perf_counter() - wall)
        timings.build_cpu.append(time.process_time() - cpu)
    return timings


def _ms(values: list[float]) -> float:
    return 1000 * statistics.median(values)


async def measure(count: int) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="relay-bench-ticket-") as tmp:
        async with bundle_builder(Path(tmp) / "objects") as builder:
            timings = await measure_both(builder, count)
            integrations = len(builder.integration_ids)
    render_ms, build_ms = _ms(timings.render_wall), _ms(timings.build_wall)
    say(TAG, f"render alone: median {render_ms:.2f} ms wall, {_ms(timings.render_cpu):.2f} ms CPU ({count} renders)")
    say(
        TAG,
        f"whole bundle: median {build_ms:.2f} ms wall, {_ms(timings.build_cpu):.2f} ms CPU ({count} bundles, "
        f"{integrations} delivery requests each)",
    )
    return [
        figure(
            "ticket_render_ms", "reportlab pick ticket alone (8 components, no images), per render", render_ms, "ms",
            goal="reference: the floor of a bundle", better="lower",
        ),
        figure(
            "bundle_build_ms", "bundle-builder, whole bundle for one order line (same recipe and ticket)", build_ms,
            "ms", goal="< 40 ms (the whole suite's CPU per order at 50 orders/s on 2 cores)", better="lower",
            limit_label="the ticket render alone, ms", limit_value=render_ms,
        ),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="the tiniest run (5 renders, 5 bundles), for `make test`")
    parser.add_argument("--count", type=int, help="renders and bundles to time (200 by default)")
    args = parser.parse_args()
    count = args.count or (5 if args.smoke else 200)
    started = time.monotonic()
    figures = run_measurement(measure(count))
    say(TAG, f"done in {time.monotonic() - started:.0f} s")
    emit(figures)


if __name__ == "__main__":
    main()
