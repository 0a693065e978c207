"""``GET /recipe/<id>.pdf`` does bounded work for anonymous callers: cached per recipe version, one render for
many callers, 429 past a client's render rate, 503 when every render slot stays busy, 304 for a known ETag."""

from __future__ import annotations

import asyncio
import hashlib
import io
import ipaddress
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pypdf
import pytest
from multidict import CIMultiDict

from relay_ingest_api.main import create_app, start_server
from relay_ingest_api.renders import PickTicketRenders
from relay_ingest_api.schemas import RecipeCreated
from relay_ingest_api.state import RENDERS

pytestmark = pytest.mark.integration


class GatedRenderer:
    """The real renderer behind a gate the test opens: holds render slots for as long as the test needs."""

    def __init__(self, inner: Callable[..., bytes]) -> None:
        self.inner = inner
        self.gate = threading.Event()

    def __call__(self, recipe: dict[str, Any], **kwargs: Any) -> bytes:
        self.gate.wait(timeout=30)
        return self.inner(recipe, **kwargs)


@asynccontextmanager
async def ticket_server(api: Any, **overrides: Any) -> AsyncIterator[tuple[str, PickTicketRenders]]:
    """Another ingest API on the shared objects directory (recipes saved through ``api`` are readable), with its
    own render settings; yields its URL and its renders (for their counters and renderer)."""
    app = create_app(api.settings.model_copy(update=overrides))
    renders = app[RENDERS]
    runner = await start_server(app, "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", renders
    finally:
        await runner.cleanup()


async def save(api: Any, name: str) -> str:
    headers = {"Authorization": "Bearer demo-writer"}
    async with api.session.post(f"{api.url}/api/v2/recipes", json={"name": name}, headers=headers) as response:
        assert response.status == 201, await response.text()
        return RecipeCreated.model_validate(await response.json()).id


def stored_file(api: Any, recipe_id: str) -> Path:
    (path,) = api.objects_dir.rglob(f"{recipe_id}.json")
    return Path(path)


async def get_pdf(api: Any, url: str, recipe_id: str, **kwargs: Any) -> tuple[int, CIMultiDict[str], bytes]:
    async with api.session.get(f"{url}/recipe/{recipe_id}.pdf", **kwargs) as response:
        return response.status, response.headers.copy(), await response.read()


def text(pdf: bytes) -> str:
    return " ".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)


async def until(condition: Callable[[], bool], timeout_s: float = 10) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_cached_pick_ticket_is_served_again_without_rendering(api: Any) -> None:
    recipe_id = await save(api, "Cached Mug")
    async with ticket_server(api) as (url, renders):
        first = await get_pdf(api, url, recipe_id)
        second = await get_pdf(api, url, recipe_id)
    assert first[0] == second[0] == 200
    assert first[2] == second[2]
    assert renders.stats.renders == 1
    assert renders.stats.hits == 1
    assert first[1]["ETag"] == second[1]["ETag"] == f'"{hashlib.sha256(first[2]).hexdigest()}"'
    assert first[1]["Cache-Control"] == "public, max-age=60"


async def test_a_known_etag_answers_304_without_the_body(api: Any) -> None:
    recipe_id = await save(api, "Conditional Mug")
    async with ticket_server(api) as (url, renders):
        status, headers, _ = await get_pdf(api, url, recipe_id)
        assert status == 200
        again = await get_pdf(api, url, recipe_id, headers={"If-None-Match": headers["ETag"]})
        other = await get_pdf(api, url, recipe_id, headers={"If-None-Match": '"something-else"'})
    assert again[0] == 304
    assert again[1]["ETag"] == headers["ETag"]
    assert again[2] == b""
    assert other[0] == 200
    assert renders.stats.renders == 1


async def test_callers_asking_at_once_for_an_uncached_ticket_share_one_render(api: Any) -> None:
    recipe_id = await save(api, "Popular Mug")
    async with ticket_server(api) as (url, renders):
        gated = GatedRenderer(renders.renderer)
        renders.renderer = gated
        try:
            requests = [asyncio.ensure_future(get_pdf(api, url, recipe_id)) for _ in range(5)]
            await until(lambda: renders.stats.renders == 1 and renders.stats.joined == 4)
        finally:
            gated.gate.set()
        answers = await asyncio.gather(*requests)
    assert {status for status, _, _ in answers} == {200}
    assert len({body for _, _, body in answers}) == 1
    assert renders.stats.renders == 1


async def test_a_recipe_saved_again_with_other_bytes_gets_a_new_pick_ticket(api: Any) -> None:
    recipe_id = await save(api, "First Edition Mug")
    async with ticket_server(api) as (url, renders):
        first = await get_pdf(api, url, recipe_id)
        path = stored_file(api, recipe_id)
        path.write_bytes(json.dumps(json.loads(path.read_bytes()) | {"name": "Second Edition Mug"}).encode())
        second = await get_pdf(api, url, recipe_id)
    assert first[0] == second[0] == 200
    assert "First Edition Mug" in text(first[2])
    assert "Second Edition Mug" in text(second[2])
    assert first[1]["ETag"] != second[1]["ETag"]
    assert renders.stats.renders == 2


async def test_renders_past_a_clients_rate_get_429_with_retry_after(api: Any) -> None:
    recipe_ids = [await save(api, f"Rated Mug {n}") for n in range(3)]
    async with ticket_server(api, render_burst=2, render_rate_per_s=0.05) as (url, renders):
        assert (await get_pdf(api, url, recipe_ids[0]))[0] == 200
        assert (await get_pdf(api, url, recipe_ids[1]))[0] == 200
        status, headers, body = await get_pdf(api, url, recipe_ids[2])
        assert status == 429
        assert json.loads(body)["error"] == "rate_limited"
        assert 1 <= int(headers["Retry-After"]) <= 20
        # A ticket already rendered costs no render: still served.
        assert (await get_pdf(api, url, recipe_ids[0]))[0] == 200
        # X-Forwarded-For is not believed from an untrusted peer: still the same client.
        forged = {"X-Forwarded-For": "203.0.113.50"}
        assert (await get_pdf(api, url, recipe_ids[2], headers=forged))[0] == 429
        # A caller with a valid API key is counted by its key, not by its address.
        keyed = {"Authorization": "Bearer demo-reader"}
        assert (await get_pdf(api, url, recipe_ids[2], headers=keyed))[0] == 200
    assert renders.stats.renders == 3
    assert renders.stats.rate_limited == 2


async def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_rate(api: Any) -> None:
    recipe_ids = [await save(api, f"Proxied Mug {n}") for n in range(3)]
    proxies = (ipaddress.ip_network("127.0.0.1/32"),)
    async with ticket_server(api, render_burst=1, render_rate_per_s=0.05, trusted_proxies=proxies) as (url, _):
        first = {"X-Forwarded-For": "198.51.100.1"}
        assert (await get_pdf(api, url, recipe_ids[0], headers=first))[0] == 200
        assert (await get_pdf(api, url, recipe_ids[1], headers=first))[0] == 429
        second = {"X-Forwarded-For": "198.51.100.2"}
        assert (await get_pdf(api, url, recipe_ids[1], headers=second))[0] == 200


async def test_with_every_render_slot_busy_a_render_gets_503_with_retry_after(api: Any) -> None:
    held, waiting = await save(api, "Slow Mug"), await save(api, "Queued Mug")
    async with ticket_server(api, max_concurrent_renders=1, render_slot_wait_s=0.2) as (url, renders):
        gated = GatedRenderer(renders.renderer)
        renders.renderer = gated
        try:
            holder = asyncio.ensure_future(get_pdf(api, url, held))
            await until(lambda: renders.stats.renders == 1)
            status, headers, body = await get_pdf(api, url, waiting)
        finally:
            gated.gate.set()
        assert status == 503
        assert json.loads(body)["error"] == "unavailable"
        assert headers["Retry-After"] == str(api.settings.retry_after_s)
        assert renders.stats.busy == 1
        assert (await holder)[0] == 200
        # Once the slot is free again the same request renders.
        assert (await get_pdf(api, url, waiting))[0] == 200
