"""The operator console: static HTML, CSS and ES modules shipped as package data under ``console/``.

No auth here (the files hold no data); every data call the page makes goes to the JSON API with the operator's key.
Files are read once into memory and looked up by exact name, so no request path is ever joined to a filesystem
path: ``..``, ``%2e%2e`` or any other name that is not one of the shipped files is a 404.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

from aiohttp import web

CONSOLE_DIR = "console"
"""The package-data folder beside this module (no ``__init__.py``: this module keeps the import name)."""

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self' blob:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# Served with every console file: the page runs only its own scripts and styles, is never framed, sends no referrer.
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # Revalidate every time: an upgraded server's console is never mixed with a cached older module.
    "Cache-Control": "no-cache",
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True)
class ConsoleFile:
    body: bytes
    content_type: str


def console_root() -> Traversable:
    """The console's files in the installed package."""
    return files("relay_ingest_api").joinpath(CONSOLE_DIR)


def load_console() -> tuple[ConsoleFile, dict[str, ConsoleFile]]:
    """``index.html`` and the assets by name (only the types in ``CONTENT_TYPES``); raises if a file is missing."""
    root = console_root()
    index = ConsoleFile(root.joinpath("index.html").read_bytes(), CONTENT_TYPES[".html"])
    assets: dict[str, ConsoleFile] = {}
    for entry in root.joinpath("assets").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in CONTENT_TYPES:
            assets[entry.name] = ConsoleFile(entry.read_bytes(), CONTENT_TYPES[suffix])
    return index, assets


def _answer(file: ConsoleFile) -> web.Response:
    return web.Response(body=file.body, headers={**SECURITY_HEADERS, "Content-Type": file.content_type})


def add_console_routes(app: web.Application) -> None:
    """``GET /console/`` (the page), ``/console`` (301 to it) and ``/console/assets/<name>``."""
    index, assets = load_console()

    async def page(_request: web.Request) -> web.Response:
        return _answer(index)

    async def to_page(_request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/console/", headers=SECURITY_HEADERS)

    async def asset(request: web.Request) -> web.Response:
        found = assets.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound
        return _answer(found)

    app.router.add_get("/console", to_page)
    app.router.add_get("/console/", page)
    app.router.add_get("/console/assets/{name}", asset)
