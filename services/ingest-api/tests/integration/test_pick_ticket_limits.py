"""``GET /recipe/<id>.pdf`` for schema-valid recipes too big for a ticket cell: 200 with a PDF, never a 500."""

from __future__ import annotations

import io
from typing import Any

import pypdf
import pytest

from relay_ingest_api.schemas import RecipeCreated

pytestmark = pytest.mark.integration

TRUNCATED = "(truncated, see the recipe JSON)"


async def _save(api: Any, recipe: dict[str, Any]) -> str:
    headers = {"Authorization": "Bearer demo-writer"}
    async with api.session.post(f"{api.url}/api/v2/recipes", json=recipe, headers=headers) as response:
        assert response.status == 201, await response.text()
        return RecipeCreated.model_validate(await response.json()).id


async def _pick_ticket_text(api: Any, recipe_id: str) -> str:
    async with api.session.get(f"{api.url}/recipe/{recipe_id}.pdf") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "application/pdf"
        pdf = await response.read()
    assert pdf.startswith(b"%PDF-")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


async def test_a_custom_value_of_500_lines_gets_a_pick_ticket(api: Any) -> None:
    engraving = "\n".join(f"line {i:03d}" for i in range(500))
    recipe_id = await _save(api, {"name": "Engraved Plaque", "custom": {"engraving": engraving}})
    text = await _pick_ticket_text(api, recipe_id)
    assert "line 000" in text
    assert TRUNCATED in text


async def test_an_unbroken_string_as_long_as_the_api_allows_gets_a_pick_ticket(api: Any) -> None:
    unbroken = "Q" * api.settings.recipe_max_string_length
    recipe = {
        "name": unbroken,
        "components": [{"name": "Front", "code": unbroken, "component": {"code": "GOLD-1", "sku": unbroken}}],
        "custom": {"note": unbroken},
    }
    recipe_id = await _save(api, recipe)
    text = await _pick_ticket_text(api, recipe_id)
    assert recipe_id in text
    assert "GOLD-1" in text
    assert TRUNCATED in text


async def test_as_many_components_as_the_api_allows_get_a_pick_ticket_that_counts_those_not_shown(api: Any) -> None:
    assert api.settings.recipe_max_components == 500
    components = [
        {"name": f"Placement {i}", "code": f"P{i}", "component": {"code": f"COMP-{i}", "sku": f"SKU-{i}"}}
        for i in range(500)
    ]
    recipe_id = await _save(api, {"name": "Modular Shelf", "components": components})
    text = await _pick_ticket_text(api, recipe_id)
    assert "Components (500)" in text
    assert "SKU-0" in text
    assert "250 more components not shown, see the recipe JSON" in text
