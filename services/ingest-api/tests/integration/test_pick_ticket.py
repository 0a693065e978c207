"""``GET /recipe/<id>.pdf``: the stored recipe's pick ticket, under the same read rules as its JSON."""

from __future__ import annotations

import io
from typing import Any

import pypdf
import pytest

from relay_ingest_api.schemas import RecipeCreated

pytestmark = pytest.mark.integration


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _save(api: Any, key: str, recipe: dict[str, Any]) -> str:
    async with api.session.post(f"{api.url}/api/v2/recipes", json=recipe, headers=_auth(key)) as response:
        assert response.status == 201, await response.text()
        return RecipeCreated.model_validate(await response.json()).id


def _text(pdf: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


async def test_pick_ticket_is_a_pdf_showing_the_recipe_id_and_product_name(api: Any) -> None:
    recipe = {
        "name": "Engraved Steel Bottle",
        "styleCode": "BTL-750",
        "components": [{"name": "Front", "code": "FRONT", "component": {"code": "GOLD-1", "sku": "SKU-GOLD"}}],
    }
    recipe_id = await _save(api, "demo-writer", recipe)
    async with api.session.get(f"{api.url}/recipe/{recipe_id}.pdf") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "application/pdf"
        assert response.headers["Content-Disposition"] == f'inline; filename="{recipe_id}.pdf"'
        assert response.headers["Cache-Control"] == "public, max-age=60"
        pdf = await response.read()
    assert pdf.startswith(b"%PDF-")
    text = _text(pdf)
    for expected in (recipe_id, "Engraved Steel Bottle", "BTL-750", "SKU-GOLD"):
        assert expected in text, expected


async def test_key_mode_pick_ticket_needs_the_owners_key(api: Any) -> None:
    recipe_id = await _save(api, "acme-writer", {"name": "Acme Secret Mug"})
    url = f"{api.url}/recipe/{recipe_id}.pdf"
    async with api.session.get(url) as response:
        assert response.status == 401
        assert (await response.json())["error"] == "unauthorized"
    async with api.session.get(url, headers=_auth("demo-writer")) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    async with api.session.get(url, headers=_auth("acme-orders-only")) as response:
        assert response.status == 403
    async with api.session.get(url, params={"apikey": "acme-writer"}) as response:
        assert response.status == 200
        assert response.headers["Cache-Control"] == "private, no-store"
        assert "Acme Secret Mug" in _text(await response.read())


async def test_unknown_or_malformed_recipe_id_pick_ticket_is_404_json(api: Any) -> None:
    for recipe_id in ("999-doesNotExist", "not_an_id", "000-unknownPrefix"):
        async with api.session.get(f"{api.url}/recipe/{recipe_id}.pdf") as response:
            assert response.status == 404, recipe_id
            assert (await response.json())["error"] == "not_found"
