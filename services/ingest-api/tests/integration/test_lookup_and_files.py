"""Order lookups go to the association store with the caller's tenant; signed links serve artifacts."""

from __future__ import annotations

import time
from typing import Any

import pytest

from relay_platform.links import LinkSettings, LinkSigner
from relay_platform.objectstore import LocalDirectoryStore

pytestmark = pytest.mark.integration


async def test_lookup_is_answered_by_the_association_store_for_the_keys_tenant(api: Any, association_stub: Any) -> None:
    params = {"orderNumber": "1001", "tenant": "demo"}
    async with api.session.get(
        f"{api.url}/api/v2/orders", params=params, headers={"Authorization": "Bearer acme-writer"}
    ) as response:
        assert response.status == 200
        body = await response.json()
    assert association_stub.lookups[-1] == {"tenant": "acme", "orderNumber": "1001"}
    assert body["orders"][0]["orderId"] == "acme-order"


async def test_lookup_needs_exactly_one_criterion(api: Any) -> None:
    headers = {"Authorization": "Bearer demo-writer"}
    for params in ({}, {"orderNumber": "1", "recipeId": "999-x"}):
        async with api.session.get(f"{api.url}/api/v2/orders", params=params, headers=headers) as response:
            assert response.status == 400
            assert (await response.json())["error"] == "invalid_query"


async def test_readyz_names_the_association_store_when_it_is_down(api: Any, association_stub: Any) -> None:
    association_stub.ready = False
    try:
        async with api.session.get(f"{api.url}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["checks"]["association-store"] == "down"
    finally:
        association_stub.ready = True


async def test_signed_link_serves_the_file_and_expired_link_is_410(api: Any) -> None:
    store = LocalDirectoryStore(api.objects_dir)
    await store.put("artifacts/t1/ticket.pdf", b"%PDF-1.7 test", content_type="application/pdf")
    signer = LinkSigner(api.settings.links)
    url = signer.url_for("artifacts/t1/ticket.pdf", "1022_ID_6_R_999-x_Ticket.pdf", "application/pdf")
    path = url.removeprefix("http://relay.test")
    async with api.session.get(f"{api.url}{path}") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/pdf"
        assert 'filename="1022_ID_6_R_999-x_Ticket.pdf"' in response.headers["Content-Disposition"]
        assert await response.read() == b"%PDF-1.7 test"

    expired = signer.url_for("artifacts/t1/ticket.pdf", "t.pdf", "application/pdf", now=time.time() - 10**8)
    async with api.session.get(f"{api.url}{expired.removeprefix('http://relay.test')}") as response:
        assert response.status == 410
        assert (await response.json())["error"] == "link_expired"

    forged = LinkSigner(LinkSettings.model_validate({"signing_key": "other"})).url_for("x", "x", "text/plain")
    async with api.session.get(f"{api.url}/files/{forged.rsplit('/', 1)[1]}") as response:
        assert response.status == 404
    missing = signer.url_for("artifacts/none.pdf", "n.pdf", "application/pdf")
    async with api.session.get(f"{api.url}{missing.removeprefix('http://relay.test')}") as response:
        assert response.status == 404


async def test_health_and_openapi(api: Any) -> None:
    async with api.session.get(f"{api.url}/healthz") as response:
        assert (response.status, await response.json()) == (200, {"status": "ok"})
    async with api.session.get(f"{api.url}/readyz") as response:
        assert response.status == 200
        assert set((await response.json())["checks"].values()) == {"up"}
    async with api.session.get(f"{api.url}/api/v2/openapi.json") as response:
        document = await response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) >= {
        "/api/v2/recipe/order",
        "/api/v2/orders/events",
        "/api/v2/recipes",
        "/recipe/{id}.json",
        "/files/{token}",
        "/api/v2/orders",
        "/healthz",
        "/readyz",
    }
