"""File names, keys and the asset list: seed 000 conventions, sanitising, deterministic collisions."""

from __future__ import annotations

from relay_bundle_builder.domain import asset_refs
from relay_bundle_builder.naming import (
    bundle_dir,
    content_type_extension,
    file_name,
    name_prefix,
    sanitize_part,
    unique_names,
    url_extension,
)
from relay_contracts.messages import OrderLine

SEED_ORDER = OrderLine(order_id="6182665224482", order_number="1022", item_id="14523", item_quantity=2)
SEED_RECIPE = "999-63CHGJokGoxPfSba"


def test_order_ticket_name_matches_the_seed_example_exactly() -> None:
    assert file_name(name_prefix(SEED_RECIPE, SEED_ORDER), "Ticket", "pdf") == (
        "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf"
    )


def test_recipe_feed_names_are_recipe_id_dash_name() -> None:
    prefix = name_prefix(SEED_RECIPE, None)
    assert file_name(prefix, "Recipe", "json") == "999-63CHGJokGoxPfSba-Recipe.json"
    assert file_name(prefix, "front-Preview", "png") == "999-63CHGJokGoxPfSba-front-Preview.png"


def test_names_lose_separators_control_characters_and_dot_dot() -> None:
    for hostile in ("../../etc/passwd", "a/b\\c", "x\x00y\x1fz", "..", "", "   ", "con\r\nname"):
        cleaned = sanitize_part(hostile)
        assert "/" not in cleaned
        assert "\\" not in cleaned
        assert ".." not in cleaned
        assert cleaned
        assert all(ch.isprintable() for ch in cleaned)


def test_names_are_bounded_even_for_huge_codes() -> None:
    name = file_name(name_prefix(SEED_RECIPE, SEED_ORDER), "é" * 5000, "png")
    assert len(name) <= 200
    assert len(name.encode()) <= 255
    assert name.endswith(".png")


def test_order_number_with_a_slash_cannot_escape_the_name() -> None:
    order = OrderLine(order_id="1/2", order_number="../10", item_id=None)
    assert "/" not in name_prefix(SEED_RECIPE, order)


def test_collisions_get_numbered_in_order_so_a_rebuild_names_alike() -> None:
    names = ["a-Preview.png", "A-Preview.png", "a-Preview.png", "b.pdf"]
    assert unique_names(names) == ["a-Preview.png", "A-Preview-2.png", "a-Preview-3.png", "b.pdf"]
    assert unique_names(names) == unique_names(list(names))


def test_bundle_keys_are_deterministic_per_order_line_and_per_recipe() -> None:
    assert bundle_dir("demo", SEED_RECIPE, SEED_ORDER) == (
        "bundles/demo/orders/6182665224482/14523/999-63CHGJokGoxPfSba"
    )
    assert bundle_dir("demo", SEED_RECIPE, None) == "bundles/demo/recipes/999-63CHGJokGoxPfSba"
    hostile = OrderLine(order_id="..", order_number="1", item_id="../x")
    assert ".." not in bundle_dir("demo", SEED_RECIPE, hostile).split("/")


def test_extension_comes_from_url_or_else_content_type() -> None:
    assert url_extension("https://cdn.example.com/a/b.PNG?sig=1") == "png"
    assert url_extension("https://cdn.example.com/render/12345") is None
    assert content_type_extension("image/jpeg") == "jpg"
    assert content_type_extension("application/pdf; charset=binary") == "pdf"
    assert content_type_extension("application/x-unknown-thing") == "bin"


def test_asset_list_covers_production_previews_variants_and_attachments() -> None:
    recipe = {
        "id": SEED_RECIPE,
        "views": [
            {
                "code": "front",
                "production": "https://x/p.dst",
                "previewPng": "https://x/f.png",
                "previewJpg": "https://x/f.jpg",
                "variants": [
                    {"code": "cart", "preview": "https://x/c.webp"},
                    {"suffix": "email", "preview": "https://x/e"},
                ],
            },
            {"name": "Back side", "previewPng": "https://x/b.png"},
            {"previewPng": 7},
        ],
        "attachments": [{"code": "logo", "url": "https://x/l.ai"}, {"name": "Proof", "url": "https://x/p"}, {}],
    }
    refs = asset_refs(recipe)
    assert [(r.kind, r.stem, r.extension) for r in refs] == [
        ("production", "front-Production", "dst"),
        ("preview", "front-Preview", "png"),
        ("preview", "front-Preview", "jpg"),
        ("variant", "front-cart", "webp"),
        ("variant", "front-email", None),
        ("preview", "Back side-Preview", "png"),
        ("attachment", "logo", "ai"),
        ("attachment", "Proof", None),
    ]
