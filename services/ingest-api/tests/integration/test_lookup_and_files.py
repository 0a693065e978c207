"""Order lookups go to the association store with the caller's tenant; signed links serve artifacts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from itsdangerous import URLSafeSerializer
from pydantic import SecretStr

from relay_platform.links import LinkSettings, LinkSigner
from relay_platform.objectstore import LocalDirectoryStore
from relay_platform.shared_secret import new_shared_secret

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

    other_key = LinkSettings(signing_key=SecretStr(new_shared_secret()))
    forged = LinkSigner(other_key).url_for("artifacts/t1/ticket.pdf", "t.pdf", "application/pdf")
    async with api.session.get(f"{api.url}/files/{forged.rsplit('/', 1)[1]}") as response:
        assert response.status == 404
    missing = signer.url_for("artifacts/none.pdf", "n.pdf", "application/pdf")
    async with api.session.get(f"{api.url}{missing.removeprefix('http://relay.test')}") as response:
        assert response.status == 404


async def test_tampered_or_cross_purpose_tokens_are_404(api: Any) -> None:
    store = LocalDirectoryStore(api.objects_dir)
    await store.put("bundles/acme/t2/ticket.pdf", b"%PDF-1.7 acme", content_type="application/pdf")
    signer = LinkSigner(api.settings.links)
    token = signer.url_for("bundles/demo/t2/ticket.pdf", "t.pdf", "application/pdf").rsplit("/", 1)[1]
    payload, signature = token.rsplit(".", 1)
    # Another tenant's object under the same signature: the key is signed, so the swap breaks it.
    swapped = URLSafeSerializer("unused").dump_payload(
        {"k": "bundles/acme/t2/ticket.pdf", "n": "t.pdf", "m": "application/pdf", "e": 4102444800}
    )
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    # Signed with the right key for another purpose (salt): not a download link.
    key = api.settings.links.signing_key.get_secret_value()
    other_purpose = URLSafeSerializer(key, salt="relay-something-else").dumps(
        {"k": "bundles/acme/t2/ticket.pdf", "n": "t.pdf", "m": "application/pdf", "e": 4102444800}
    )
    for bad in (f"{swapped.decode()}.{signature}", f"{payload}.{flipped}", other_purpose, "garbage", payload):
        async with api.session.get(f"{api.url}/files/{bad}") as response:
            assert response.status == 404, bad
            assert (await response.json())["error"] == "not_found"


async def test_a_wrong_association_store_token_is_refused_and_answered_502(
    kafka_bootstrap: str, association_stub: Any, ingest_server: Any, tmp_path: Path
) -> None:
    refused = association_stub.refused
    wrong = SecretStr(new_shared_secret())
    async with (
        ingest_server(kafka_bootstrap, tmp_path, association_stub.url, association_store_token=wrong) as (url, session),
        session.get(
            f"{url}/api/v2/orders", params={"orderNumber": "1001"}, headers={"Authorization": "Bearer acme-writer"}
        ) as response,
    ):
        assert response.status == 502
        body = await response.text()
    assert association_stub.refused == refused + 1
    assert wrong.get_secret_value() not in body


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
