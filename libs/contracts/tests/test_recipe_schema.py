"""The shipped recipe schema is the seed's, and the validator checks formats and reports JSON pointers."""

from relay_contracts.recipe import recipe_schema, validate_recipe

VALID = {
    "id": "999-63CHGJokGoxPfSba",
    "created": "2026-11-20T10:00:00Z",
    "session": "3f2b8c1e-9d4a-4f5e-8b7c-1a2b3c4d5e6f",
    "name": "Custom Mug",
    "views": [{"code": "front", "previewPng": "https://cdn.example.com/front.png"}],
}


def test_schema_is_draft_2020_12_with_every_seed_definition() -> None:
    schema = recipe_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["$defs"]) == {
        "RecipeAssembly",
        "RecipeAttachment",
        "RecipeProduct",
        "RecipePlacement",
        "RecipeComponent",
        "RecipeVariable",
        "RecipeComponentDescription",
        "RecipeView",
        "RecipeViewVariant",
    }


def test_valid_recipe_has_no_problems() -> None:
    assert validate_recipe(VALID) == []


def test_missing_required_field_is_reported_by_pointer() -> None:
    problems = validate_recipe({"id": "999-x"})
    assert [p.pointer for p in problems] == ["/created"]


def test_formats_are_checked() -> None:
    bad = VALID | {
        "created": "yesterday",
        "session": "not-a-uuid",
        "views": [{"code": "front", "previewPng": "not a uri"}],
    }
    pointers = {p.pointer for p in validate_recipe(bad)}
    assert pointers == {"/created", "/session", "/views/0/previewPng"}


def test_wrong_types_nested_in_components_are_located() -> None:
    bad = VALID | {"components": [{"code": "c1", "component": {"quantityMultiplier": "two"}}]}
    assert [p.pointer for p in validate_recipe(bad)] == ["/components/0/component/quantityMultiplier"]
