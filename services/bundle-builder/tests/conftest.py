"""bundle-builder test fixtures: a local asset server (real aiohttp on loopback) and recipe factories."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from PIL import Image

from relay_platform.tenants import TenantsConfig, load_tenants

TENANTS_FILE = Path(__file__).with_name("tenants.yaml")
LARGE_BYTES = 512 * 1024
SIZE_CAP = 256 * 1024
NON_ASCII_PLACEMENT = "Gravur Ü / Гравировка / Χάραξη"


def image_bytes(fmt: str, color: str, size: tuple[int, int] = (320, 240)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


@dataclass
class AssetServer:
    """Serves test assets on 127.0.0.1; ``hits`` counts requests per path."""

    port: int
    hits: dict[str, int] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def fetched(self, prefix: str) -> int:
        """Requests made to paths starting with ``prefix``."""
        return sum(n for path, n in self.hits.items() if path.startswith(prefix))


@pytest.fixture(scope="session")
async def asset_server() -> AsyncIterator[AssetServer]:
    server = AssetServer(port=0)
    png = {color: image_bytes("PNG", color) for color in ("red", "green", "blue", "orange")}
    jpg = image_bytes("JPEG", "purple")

    async def count(request: web.Request) -> None:
        server.hits[request.path] = server.hits.get(request.path, 0) + 1

    async def image(request: web.Request) -> web.Response:
        await count(request)
        name = request.match_info["name"]
        color, _, ext = name.partition(".")
        if ext == "jpg":
            return web.Response(body=jpg, content_type="image/jpeg")
        if color not in png:
            raise web.HTTPNotFound
        return web.Response(body=png[color], content_type="image/png")

    async def production(request: web.Request) -> web.Response:
        # No extension in the URL: the name takes it from the content type.
        await count(request)
        return web.Response(body=PDF_BYTES, content_type="application/pdf")

    async def attachment(request: web.Request) -> web.Response:
        await count(request)
        return web.Response(body=b"logo-vector-data", content_type="application/postscript")

    async def large(request: web.Request) -> web.Response:
        await count(request)
        return web.Response(body=b"x" * LARGE_BYTES, content_type="application/octet-stream")

    async def streamed_large(request: web.Request) -> web.StreamResponse:
        # No Content-Length: the cap must hold while reading.
        await count(request)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for _ in range(LARGE_BYTES // 65536):
            await response.write(b"y" * 65536)
        await response.write_eof()
        return response

    async def missing(request: web.Request) -> web.Response:
        await count(request)
        raise web.HTTPNotFound

    async def failing(request: web.Request) -> web.Response:
        # For assets that must never be fetched: counted, and an error if they were.
        await count(request)
        raise web.HTTPInternalServerError

    async def slow(request: web.Request) -> web.Response:
        await count(request)
        await asyncio.sleep(5)
        return web.Response(body=png["red"], content_type="image/png")

    async def flaky(request: web.Request) -> web.Response:
        await count(request)
        if server.hits[request.path] == 1:
            raise web.HTTPServiceUnavailable
        return web.Response(body=png["green"], content_type="image/png")

    async def redirect_private(request: web.Request) -> web.Response:
        await count(request)
        raise web.HTTPFound(f"http://localhost:{server.port}/img/red.png")

    async def long_content_type(request: web.Request) -> web.Response:
        # A real server may send anything here; 4,000 characters is still under aiohttp's header-line limit.
        await count(request)
        return web.Response(body=png["red"], headers={"Content-Type": "image/" + "x" * 3000 + "; p=q"})

    async def redirect_ok(request: web.Request) -> web.Response:
        await count(request)
        raise web.HTTPFound("/img/blue.png")

    app = web.Application()
    app.router.add_get("/img/{name}", image)
    app.router.add_get("/files/production", production)
    app.router.add_get("/files/logo.eps", attachment)
    app.router.add_get("/large.bin", large)
    app.router.add_get("/streamed-large", streamed_large)
    app.router.add_get("/missing.png", missing)
    app.router.add_get("/long-content-type.png", long_content_type)
    app.router.add_get("/fail/{name}", failing)
    app.router.add_get("/slow.png", slow)
    app.router.add_get("/flaky.png", flaky)
    app.router.add_get("/redirect-private", redirect_private)
    app.router.add_get("/redirect-ok", redirect_ok)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server
    finally:
        await runner.cleanup()


@pytest.fixture(scope="session")
def tenants() -> TenantsConfig:
    return load_tenants(TENANTS_FILE)


RecipeFactory = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def make_failing_recipe(asset_server: AssetServer) -> Callable[[str, str], dict[str, Any]]:
    """A recipe whose every asset URL answers 500 under ``/fail/<tag>-``: building its bundle would fail, and
    ``asset_server.fetched(f"/fail/{tag}")`` tells whether anything was fetched."""

    def factory(recipe_id: str, tag: str) -> dict[str, Any]:
        def fail(name: str) -> str:
            return asset_server.url(f"/fail/{tag}-{name}")

        return {
            "id": recipe_id,
            "created": "2026-11-20T09:30:00Z",
            "name": "Engraved Bottle",
            "components": [{"name": "Front", "code": "P0", "component": {"code": "C0", "sku": "SKU-0"}}],
            "views": [
                {
                    "code": "front",
                    "previewPng": fail("front.png"),
                    "production": fail("front.pdf"),
                    "variants": [{"code": "cart", "preview": fail("cart.png")}],
                }
            ],
            "attachments": [{"code": "logo", "url": fail("logo.eps")}],
        }

    return factory


@pytest.fixture(scope="session")
def make_recipe(asset_server: AssetServer) -> RecipeFactory:
    """A seed-001-shaped recipe whose assets live on the asset server; ``extra_views`` add broken assets."""

    def factory(
        recipe_id: str = "999-63CHGJokGoxPfSba",
        *,
        components: int = 3,
        extra_views: list[dict[str, Any]] | None = None,
        attachments: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return {
            "id": recipe_id,
            "created": "2026-11-20T09:30:00Z",
            "name": "Engraved Bottle — Édition spéciale",
            "styleCode": "BTL-750",
            "version": "4",
            "custom": {"giftMessage": "Alles Gute, Jürgen"},
            "components": [
                {
                    "name": NON_ASCII_PLACEMENT if i == 0 else f"Placement {i}",
                    "code": f"P{i}",
                    "component": {
                        "code": f"C{i}",
                        "sku": f"SKU-{i:04d}",
                        "upc": f"0{i:011d}",
                        "quantityMultiplier": 1,
                        "description": [{"code": f"O{i}", "name": f"Option {i}"}],
                        "variables": [{"code": "text", "value": f"Line {i}"}],
                    },
                }
                for i in range(components)
            ],
            "views": [
                {
                    "code": "front",
                    "name": "Front",
                    "previewPng": asset_server.url("/img/red.png"),
                    "previewJpg": asset_server.url("/img/front.jpg"),
                    "production": asset_server.url("/files/production"),
                    "productionReady": True,
                    "variants": [{"code": "cart", "preview": asset_server.url("/img/green.png")}],
                },
                {"code": "back", "previewPng": asset_server.url("/img/blue.png")},
                *(extra_views or []),
            ],
            "attachments": attachments
            if attachments is not None
            else [
                {
                    "code": "logo",
                    "name": "Logo",
                    "type": "application/postscript",
                    "url": asset_server.url("/files/logo.eps"),
                },
            ],
        }

    return factory
