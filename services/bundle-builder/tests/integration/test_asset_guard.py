"""The asset fetcher against real loopback servers: allow-list ports, redirect hops, numeric and IPv6 host forms,
spooling large assets to disk and streaming them to the store, and preview images that are decompression bombs."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import struct
import tempfile
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pypdf
import pytest
from aiohttp import web
from PIL import Image

from relay_bundle_builder.adapters.assets import HttpAssetFetcher, make_session
from relay_bundle_builder.domain import AssetError, ByteBudget
from relay_bundle_builder.ports import BuildContext, BundleBudget
from relay_bundle_builder.service import build_bundle
from relay_bundle_builder.settings import AssetFetchSettings
from relay_bundle_builder.spool import SPOOL_MEMORY_MAX
from relay_contracts.messages import IntegrationsTriggered, OrderLine, recipe_object_key
from relay_platform.errors import TransientError
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.tenants import TenantsConfig

pytestmark = pytest.mark.integration

BIG_BYTES = 3 * 1024 * 1024 + 17
BIG = hashlib.sha256(b"big").digest() * (BIG_BYTES // 32) + b"x" * (BIG_BYTES % 32)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, *, rows: int | None = None) -> bytes:
    """A valid 8-bit greyscale PNG of ``width`` x ``height`` whose pixel rows are all zero: ``rows`` of them
    really encoded (all by default, a real decompression bomb: ~1000:1), else just the header's claim."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + width)
    data = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


@cache
def bomb_png() -> bytes:
    """64 megapixels (64 MB decoded) in ~62 KB."""
    return png_claiming(8_000, 8_000)


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class Servers:
    """Two loopback servers: ``main`` serves the assets, ``other`` (another port) only counts hits."""

    main: int = 0
    other: int = 0
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, path: str, *, host: str = "127.0.0.1", port: int | None = None) -> str:
        return f"http://{host}:{port or self.main}{path}"


@pytest.fixture(scope="module")
async def servers() -> AsyncIterator[Servers]:
    found = Servers()
    bodies = {
        "/ok.png": (small_png(), "image/png"),
        "/big.bin": (BIG, "application/octet-stream"),
        "/claims-huge.png": (png_claiming(100_000, 100_000, rows=1), "image/png"),
        "/bomb.png": (bomb_png(), "image/png"),
    }

    async def asset(request: web.Request) -> web.Response:
        found.hits[request.path] = found.hits.get(request.path, 0) + 1
        if request.path == "/hop-to-other-port":
            raise web.HTTPFound(found.url("/ok.png", port=found.other))
        if request.path == "/hop-same-port":
            raise web.HTTPFound("/ok.png")
        if request.path not in bodies:
            raise web.HTTPNotFound
        body, content_type = bodies[request.path]
        return web.Response(body=body, content_type=content_type)

    async def other(request: web.Request) -> web.Response:
        found.hits[f"other:{request.path}"] = found.hits.get(f"other:{request.path}", 0) + 1
        return web.Response(body=small_png(), content_type="image/png")

    runners = []
    for handler in (asset, other):
        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        runner = web.AppRunner(app, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
    found.main, found.other = (runner.addresses[0][1] for runner in runners)
    try:
        yield found
    finally:
        for runner in runners:
            await runner.cleanup()


@pytest.fixture(scope="module")
async def fetcher() -> AsyncIterator[HttpAssetFetcher]:
    policy = AssetFetchSettings(timeout_s=2, max_bytes=8 * 1024 * 1024, retries=0)
    async with make_session(policy) as session:
        yield HttpAssetFetcher(session, policy)


# --- allow-list ports and redirect hops ---------------------------------------------------------------------------


async def test_an_allow_listed_host_and_port_is_fetched(fetcher: HttpAssetFetcher, servers: Servers) -> None:
    asset = await fetcher.fetch(servers.url("/ok.png"), label="view a", allowed_hosts=[f"127.0.0.1:{servers.main}"])
    with asset.body:
        assert asset.body.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("entry", ["127.0.0.1", "127.0.0.1:{other}", "localhost:{main}", "127.0.0.2:{main}"])
async def test_a_port_or_host_not_on_the_allow_list_is_refused_without_connecting(
    fetcher: HttpAssetFetcher, servers: Servers, entry: str
) -> None:
    before = servers.hits.get("/ok.png", 0)
    allowed = [entry.format(main=servers.main, other=servers.other)]
    with pytest.raises(AssetError, match=r"refused.*allowed-asset-hosts"):
        await fetcher.fetch(servers.url("/ok.png"), label="view a", allowed_hosts=allowed)
    assert servers.hits.get("/ok.png", 0) == before


async def test_a_name_on_the_allow_list_with_its_port_is_fetched(fetcher: HttpAssetFetcher, servers: Servers) -> None:
    url = servers.url("/ok.png", host="localhost")
    asset = await fetcher.fetch(url, label="view a", allowed_hosts=[f"localhost:{servers.main}"])
    asset.body.close()
    with pytest.raises(AssetError, match="refused"):
        await fetcher.fetch(url, label="view a", allowed_hosts=[f"localhost:{servers.other}"])


async def test_each_redirect_hop_is_checked_against_the_allow_list_with_its_port(
    fetcher: HttpAssetFetcher, servers: Servers
) -> None:
    main_only = [f"127.0.0.1:{servers.main}"]
    with pytest.raises(AssetError, match="refused"):
        await fetcher.fetch(servers.url("/hop-to-other-port"), label="view a", allowed_hosts=main_only)
    assert servers.hits.get("other:/ok.png", 0) == 0
    same = await fetcher.fetch(servers.url("/hop-same-port"), label="view a", allowed_hosts=main_only)
    same.body.close()
    both = [*main_only, f"127.0.0.1:{servers.other}"]
    hopped = await fetcher.fetch(servers.url("/hop-to-other-port"), label="view a", allowed_hosts=both)
    hopped.body.close()
    assert servers.hits["other:/ok.png"] == 1


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "0x7f000001", "017700000001", "127.1", "0177.0.0.1"])
async def test_numeric_ipv4_forms_are_refused_early_even_for_an_allow_listed_address(
    fetcher: HttpAssetFetcher, servers: Servers, host: str
) -> None:
    with pytest.raises(AssetError, match=r"numeric host .* means 127\.0\.0\.1 \(not public\)"):
        await fetcher.fetch(servers.url("/ok.png", host=host), label="view a", allowed_hosts=["127.0.0.1:*"])


@pytest.mark.parametrize(
    "host",
    [
        "[::1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::127.0.0.1]",
        "[2002:7f00:1::1]",
        "[fe80::1%25lo]",
        "0.0.0.0",
        "[::]",
        "169.254.169.254",
    ],
)
async def test_non_public_ip_literals_are_refused_before_connecting(
    fetcher: HttpAssetFetcher, servers: Servers, host: str
) -> None:
    with pytest.raises(AssetError, match="refused"):
        await fetcher.fetch(servers.url("/ok.png", host=host), label="view a", allowed_hosts=["127.0.0.1:*"])


# --- spooling and streaming ---------------------------------------------------------------------------------------


async def test_a_large_asset_is_spooled_to_disk_and_streamed_to_the_store(
    fetcher: HttpAssetFetcher, servers: Servers, tmp_path: Path
) -> None:
    budget = ByteBudget(64 * 1024 * 1024, memory_limit=SPOOL_MEMORY_MAX)
    allowed = [f"127.0.0.1:{servers.main}"]
    small = await fetcher.fetch(servers.url("/ok.png"), label="view a", allowed_hosts=allowed, budget=budget)
    big = await fetcher.fetch(servers.url("/big.bin"), label="view b", allowed_hosts=allowed, budget=budget)
    try:
        assert not small.body.on_disk
        assert big.body.on_disk
        assert budget.in_memory == small.body.size  # only the small one holds memory
        assert (big.body.size, big.body.sha256) == (len(BIG), hashlib.sha256(BIG).hexdigest())
        store = LocalDirectoryStore(tmp_path)
        await store.put_stream("a/big.bin", big.body.reader(), content_type="application/octet-stream")
        assert (tmp_path / "a" / "big.bin").read_bytes() == BIG
    finally:
        small.body.close()
        big.body.close()
    assert budget.in_memory == 0


async def test_a_bundle_over_its_memory_allowance_keeps_the_rest_on_disk(
    fetcher: HttpAssetFetcher, servers: Servers
) -> None:
    budget = ByteBudget(64 * 1024 * 1024, memory_limit=len(small_png()) + 10)
    allowed = [f"127.0.0.1:{servers.main}"]
    assets = [
        await fetcher.fetch(servers.url("/ok.png"), label=f"view {n}", allowed_hosts=allowed, budget=budget)
        for n in range(3)
    ]
    try:
        assert [a.body.on_disk for a in assets] == [False, True, True]
        assert {a.body.read_bytes() for a in assets} == {small_png()}
    finally:
        for asset in assets:
            asset.body.close()
    assert budget.in_memory == 0


async def test_a_full_temporary_disk_is_a_transient_failure(
    fetcher: HttpAssetFetcher, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", disk_full)
    budget = ByteBudget(64 * 1024 * 1024)
    with pytest.raises(TransientError, match=r"view b: cannot spool to a temporary file: ENOSPC"):
        await fetcher.fetch(servers.url("/big.bin"), label="view b", allowed_hosts=["127.0.0.1:*"], budget=budget)
    assert budget.in_memory == 0


# --- previews that are decompression bombs -------------------------------------------------------------------------


def bomb_trigger(recipe_id: str) -> IntegrationsTriggered:
    return IntegrationsTriggered(
        trigger_id=f"t-{recipe_id}",
        tenant="bb",
        recipe_id=recipe_id,
        recipe_key=recipe_object_key("bb", recipe_id),
        feed="order",
        reason="order_created",
        order=OrderLine(order_id="9001", order_number="9001", item_id="1", item_quantity=1),
        integration_ids=("factory-mail",),
        occurred_at=datetime.now(UTC),
    )


async def test_a_bundle_with_bomb_previews_is_delivered_with_the_files_but_without_their_thumbnails(
    fetcher: HttpAssetFetcher, servers: Servers, tenants: TenantsConfig, tmp_path: Path
) -> None:
    recipe_id = "999-bombPreviews"
    recipe: dict[str, Any] = {
        "id": recipe_id,
        "created": "2026-11-20T09:30:00Z",
        "name": "Bomb Mug",
        "views": [
            {"code": "front", "previewPng": servers.url("/claims-huge.png")},
            {"code": "back", "previewPng": servers.url("/bomb.png")},
            {"code": "side", "previewPng": servers.url("/ok.png")},
        ],
    }
    store = LocalDirectoryStore(tmp_path)
    key = recipe_object_key("bb", recipe_id)
    await store.put(key, json.dumps(recipe).encode(), content_type="application/json")
    ctx = BuildContext(
        store=store,
        fetcher=fetcher,
        recipe_url=lambda rid: f"https://relay.example/recipe/{rid}.json",
        budget=BundleBudget(max_preview_pixels=40_000_000),
    )
    bundle = await build_bundle(bomb_trigger(recipe_id), tenants.tenants["bb"], ctx)
    files = {f.name: f for f in bundle.files}
    ticket = next(f for name, f in files.items() if name.endswith(".pdf"))
    reader = pypdf.PdfReader(io.BytesIO((tmp_path / ticket.key).read_bytes()))
    text = " ".join(" ".join(page.extract_text() for page in reader.pages).split())
    assert text.count("(preview too large for a thumbnail)") == 2
    assert "(preview unreadable)" not in text
    # The preview files themselves are delivered untouched.
    bomb = next(f for name, f in files.items() if "back" in name)
    assert (tmp_path / bomb.key).read_bytes() == bomb_png()
    assert bomb.sha256 == hashlib.sha256(bomb_png()).hexdigest()
