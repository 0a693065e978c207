"""Saving a recipe stores it, announces it on recipes.saved.v1 and serves it, per the tenant's read mode."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from relay_contracts.messages import RecipeSaved
from relay_contracts.topics import RECIPES_SAVED

pytestmark = pytest.mark.integration


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _save(api: Any, key: str, recipe: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    async with api.session.post(f"{api.url}/api/v2/recipes", json=recipe, headers=_auth(key)) as response:
        return response.status, await response.json()


async def test_saved_recipe_is_stored_announced_and_served(api: Any, tail: Any) -> None:
    recipe = {"name": "Custom Sneaker", "styleCode": "SNK-1", "temporaryRecipe": True, "components": []}
    async with tail(RECIPES_SAVED) as t:
        status, body = await _save(api, "demo-writer", recipe)
        assert status == 201, body
        recipe_id = body["id"]
        assert re.fullmatch(r"999-[0-9A-Za-z]{16}", recipe_id)
        assert body["url"] == f"http://relay.test/recipe/{recipe_id}.json"
        records = await t.wait_for(lambda rs: any(r.key == recipe_id.encode() for r in rs))
    (event,) = [RecipeSaved.model_validate_json(r.value) for r in records if r.key == recipe_id.encode()]
    assert event.tenant == "demo"
    assert event.recipe_key == f"recipes/demo/{recipe_id}.json"
    assert event.temporary is True
    assert event.name == "Custom Sneaker"

    stored = json.loads((api.objects_dir / "recipes" / "demo" / f"{recipe_id}.json").read_bytes())
    assert stored["id"] == recipe_id
    assert stored["created"].endswith("Z")
    assert stored["styleCode"] == "SNK-1"

    async with api.session.get(f"{api.url}/recipe/{recipe_id}.json") as response:
        assert response.status == 200
        assert await response.json() == stored


async def test_supplied_id_must_carry_the_tenants_prefix(api: Any) -> None:
    status, body = await _save(api, "demo-writer", {"id": "777-abc", "created": "2025-01-01T00:00:00Z"})
    assert status == 400
    assert [p["pointer"] for p in body["problems"]] == ["/id"]
    status, body = await _save(api, "demo-writer", {"id": "999-MyOwnId", "created": "2025-01-01T00:00:00Z"})
    assert (status, body["id"]) == (201, "999-MyOwnId")


async def test_schema_violations_are_listed_by_pointer(api: Any) -> None:
    status, body = await _save(api, "demo-writer", {"created": "yesterday", "session": "not-a-uuid", "name": 5})
    assert status == 400
    assert body["error"] == "invalid_recipe"
    assert sorted(p["pointer"] for p in body["problems"]) == ["/created", "/name", "/session"]


async def test_saving_needs_recipes_write(api: Any) -> None:
    status, body = await _save(api, "demo-reader", {})
    assert (status, body["error"]) == (403, "forbidden")


async def test_key_mode_recipe_is_hidden_from_other_tenants_and_anonymous_callers(api: Any) -> None:
    status, body = await _save(api, "acme-writer", {"name": "secret"})
    assert status == 201
    url = f"{api.url}/recipe/{body['id']}.json"
    async with api.session.get(url) as response:
        assert response.status == 401
    async with api.session.get(url, headers=_auth("demo-writer")) as response:
        assert response.status == 404
        assert (await response.json())["error"] == "not_found"
    async with api.session.get(url.replace(body["id"], "777-doesNotExist"), headers=_auth("demo-writer")) as r:
        assert r.status == 404
    async with api.session.get(url, headers=_auth("acme-orders-only")) as response:
        assert response.status == 403
    async with api.session.get(url, params={"apikey": "acme-writer"}) as response:
        assert response.status == 200
        assert (await response.json())["name"] == "secret"
        assert response.headers["Cache-Control"] == "private, no-store"


async def test_unknown_recipe_is_404_json(api: Any) -> None:
    for recipe_id in ("999-nothingHere", "123-unknownPrefix", "no-dash-prefix..x"):
        async with api.session.get(f"{api.url}/recipe/{recipe_id}.json") as response:
            assert response.status == 404
            assert (await response.json())["error"] == "not_found"
