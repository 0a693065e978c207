"""Asset spools: memory within the bundle's allowance, the rest on disk; every spool closed whatever happens."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay_bundle_builder.domain import AssetError, BundleFailedError, ByteBudget
from relay_bundle_builder.ports import BuildContext, BundleBudget, FetchedAsset
from relay_bundle_builder.service import build_bundle
from relay_bundle_builder.spool import AssetSpool
from relay_contracts.messages import IntegrationsTriggered, recipe_object_key
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import Tenant

RECIPE_ID = "999-spooled"


async def spooled(data: bytes, *, allowance: ByteBudget | None = None, chunk: int = 1000) -> AssetSpool:
    spool = AssetSpool(allowance=allowance, memory_max=4000)
    for start in range(0, len(data), chunk):
        await spool.write(data[start : start + chunk])
    return spool


async def test_a_small_asset_stays_in_memory_and_a_large_one_rolls_over_to_disk() -> None:
    budget = ByteBudget(10**9, memory_limit=10**6)
    with await spooled(b"a" * 3000, allowance=budget) as small, await spooled(b"b" * 9000, allowance=budget) as big:
        assert not small.on_disk
        assert big.on_disk
        assert budget.in_memory == 3000  # the large one gave its memory back when it rolled over
        assert big.read_bytes() == b"b" * 9000
        assert (big.size, big.sha256) == (9000, hashlib.sha256(b"b" * 9000).hexdigest())
    assert budget.in_memory == 0


async def test_once_the_bundle_allowance_is_used_even_small_assets_go_to_disk() -> None:
    budget = ByteBudget(10**9, memory_limit=5000)
    spools = [await spooled(b"c" * 2000, allowance=budget) for _ in range(4)]
    assert [s.on_disk for s in spools] == [False, False, True, True]
    assert budget.in_memory == 4000
    for spool in spools:
        assert spool.read_bytes() == b"c" * 2000
        spool.close()
    assert budget.in_memory == 0


async def test_a_closed_spool_refuses_reads_and_writes() -> None:
    spool = await spooled(b"d" * 100)
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        spool.reader()
    with pytest.raises(ValueError, match="closed"):
        await spool.write(b"x")


class Fetcher:
    """Spools every asset to disk (memory_max 0), after ``delays[label]`` seconds; fails ``fail``; remembers every
    spool it made. Like the real fetcher, it closes its spool when it fails or is cancelled."""

    def __init__(self, fail: str | None = None, delays: dict[str, float] | None = None) -> None:
        self.fail = fail
        self.delays = delays or {}
        self.spools: list[AssetSpool] = []

    async def fetch(
        self, url: str, *, label: str, allowed_hosts: Sequence[str], budget: ByteBudget | None = None
    ) -> FetchedAsset:
        del url, allowed_hosts
        spool = AssetSpool(allowance=budget, memory_max=0)
        self.spools.append(spool)
        try:
            await spool.write(label.encode() * 100)
            await asyncio.sleep(self.delays.get(label, 0))
            if label == self.fail:
                raise AssetError(f"{label}: not found (HTTP 404)")
        except BaseException:
            spool.close()
            raise
        return FetchedAsset(spool, "application/octet-stream")


def trigger() -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id="t-spool",
        tenant="bb",
        recipe_id=RECIPE_ID,
        recipe_key=recipe_object_key("bb", RECIPE_ID),
        feed="recipe",
        reason="recipe_saved",
        integration_ids=("factory-mail",),
        occurred_at=datetime.now(UTC),
    )


async def store_with_recipe(tmp_path: Path, views: int) -> LocalDirectoryStore:
    store = LocalDirectoryStore(tmp_path)
    recipe = {
        "id": RECIPE_ID,
        "name": "Spooled Mug",
        "views": [{"code": f"v{n}", "production": f"https://assets.example.com/{n}.pdf"} for n in range(views)],
    }
    await store.put(recipe_object_key("bb", RECIPE_ID), json.dumps(recipe).encode(), content_type="application/json")
    return store


def context(store: LocalDirectoryStore, fetcher: Fetcher) -> BuildContext:
    return BuildContext(
        store=store,
        fetcher=fetcher,
        recipe_url=lambda rid: f"https://relay.example/recipe/{rid}.json",
        render_in_thread=False,
        budget=BundleBudget(),
    )


async def test_a_built_bundle_streams_its_spooled_assets_and_closes_them(tmp_path: Path) -> None:
    fetcher = Fetcher()
    store = await store_with_recipe(tmp_path, 3)
    bundle = await build_bundle(trigger(), Tenant(recipe_prefix="999"), context(store, fetcher))
    assert len(fetcher.spools) == 3
    for spool in fetcher.spools:
        with pytest.raises(ValueError, match="closed"):
            spool.reader()
    stored = {f.name: (tmp_path / f.key).read_bytes() for f in bundle.files if f.name.endswith("Production.pdf")}
    assert sorted(stored.values()) == sorted(f"view v{n} production file".encode() * 100 for n in range(3))


async def test_when_one_asset_fails_the_other_fetches_stop_and_every_spool_is_closed(tmp_path: Path) -> None:
    # v0 is fetched before v1 fails; v2 and v3 would take a minute: they are cancelled, not waited for.
    delays = {"view v1 production file": 0.05, "view v2 production file": 60, "view v3 production file": 60}
    fetcher = Fetcher(fail="view v1 production file", delays=delays)
    store = await store_with_recipe(tmp_path, 4)
    async with asyncio.timeout(10):
        with pytest.raises(BundleFailedError, match="v1"):
            await build_bundle(trigger(), Tenant(recipe_prefix="999"), context(store, fetcher))
    assert len(fetcher.spools) == 4
    for spool in fetcher.spools:
        with pytest.raises(ValueError, match="closed"):
            spool.reader()
