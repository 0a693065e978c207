"""The console's files as ingest-api serves them: headers, redirect, content types, nothing outside the package."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from relay_ingest_api import console
from relay_ingest_api.main import create_app
from relay_ingest_api.settings import Settings
from relay_testing.shared_secrets import link_settings

ROOT = Path(__file__).resolve().parents[2]
Client = TestClient[web.Request, web.Application]
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    # The real app as main.create_app builds it (its resources open only on start-up, which the test server skips
    # for nothing: the console routes need none of them).
    settings = Settings(tenants_file=ROOT / "config" / "dev.yaml", links=link_settings(public_base_url="http://t"))
    app = create_app(settings)
    app.on_startup.clear()
    app.cleanup_ctx.clear()
    app.on_cleanup.clear()
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


def _assert_strict(headers: Mapping[str, str]) -> None:
    assert headers.get("Content-Security-Policy") == EXPECTED_CSP
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Referrer-Policy") == "no-referrer"


async def test_the_page_is_served_with_strict_headers(client: Client) -> None:
    response = await client.get("/console/")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-cache"
    _assert_strict(response.headers)
    page = await response.text()
    assert '<script type="module" src="assets/app.js"></script>' in page


async def test_console_without_slash_is_a_permanent_redirect(client: Client) -> None:
    response = await client.get("/console", allow_redirects=False)
    assert response.status == 301
    assert response.headers["Location"] == "/console/"


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("dom.js", "text/javascript; charset=utf-8"),
        ("console.css", "text/css; charset=utf-8"),
    ],
)
async def test_assets_have_their_content_types_and_headers(client: Client, name: str, content_type: str) -> None:
    response = await client.get(f"/console/assets/{name}")
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    _assert_strict(response.headers)


@pytest.mark.parametrize(
    "path",
    [
        "/console/assets/../../settings.py",
        "/console/assets/%2e%2e/%2e%2e/settings.py",
        "/console/assets/%2e%2e%2fconsole.py",
        "/console/assets/..%2f..%2fsettings.py",
        "/console/assets/%2E%2E%5C%2E%2E%5Csettings.py",
        "/console/assets/",
        "/console/assets/missing.js",
        "/console/index.html/../../main.py",
    ],
)
async def test_nothing_outside_the_shipped_files_is_served(client: Client, path: str) -> None:
    response = await client.get(path, allow_redirects=False)
    assert response.status == 404, path
    body = await response.read()
    assert b"from __future__" not in body
    assert b"BaseSettings" not in body


async def test_the_api_keeps_its_routes_beside_the_console(client: Client) -> None:
    response = await client.get("/healthz")
    assert (response.status, await response.json()) == (200, {"status": "ok"})


def test_the_files_come_from_the_installed_package() -> None:
    root = console.console_root()
    index, assets = console.load_console()
    assert root.joinpath("index.html").is_file()
    assert {"app.js", "api.js", "dom.js", "console.css"} <= set(assets)
    assert index.body.startswith(b"<!doctype html>")


@pytest.mark.skipif(shutil.which("uv") is None, reason="uv is not on PATH")
def test_the_wheel_ships_the_console(tmp_path: Path) -> None:
    # uv_build packs every file under the module folder: the console needs no package-data setting, and this
    # says so if a build setting ever leaves it out. --offline: uv builds uv_build projects itself.
    subprocess.run(
        ["uv", "build", "--wheel", "--offline", "--package", "relay-ingest-api", "-o", str(tmp_path)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("relay_ingest_api-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    _, assets = console.load_console()
    assert "relay_ingest_api/console/index.html" in names
    assert {f"relay_ingest_api/console/assets/{name}" for name in assets} <= names


def test_the_page_has_no_inline_script_style_or_external_reference() -> None:
    index, assets = console.load_console()
    page = index.body.decode()
    # Only src/href attributes may reference code or styles; CSP blocks anything inline anyway, this keeps it honest.
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page) is None
    assert "<style" not in page
    assert " style=" not in page
    assert re.search(r"\son[a-z]+=", page) is None
    # Offline: nothing is loaded from another origin.
    assert re.search(r"""(src|href)=["'](https?:)?//""", page) is None
    for name, file in {"index.html": index, **assets}.items():
        text = file.body.decode()
        assert re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", text) is None, name
        assert re.search(r"""import\s.*from\s+["'](?!\./)""", text) is None, name
        assert re.search(r"localStorage\.|localStorage\[", text) is None, name
        assert "document.cookie" not in text, name
