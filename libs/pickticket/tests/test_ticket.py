"""The pick ticket read back with pypdf: content, Unicode text, pages that grow, deterministic bytes."""

from __future__ import annotations

import io
from typing import Any

import pypdf
from PIL import Image

from relay_pickticket import TicketImage, TicketOrder, render_pick_ticket

RECIPE_ID = "999-63CHGJokGoxPfSba"
NON_ASCII = "Gravur Ü / Гравировка / Χάραξη"


def recipe(components: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "id": RECIPE_ID,
        "created": "2026-11-20T09:30:00Z",
        "name": "Steel Bottle 750 ml",
        "styleCode": "BTL-750",
        "version": "4",
        "components": [
            {
                "name": NON_ASCII if i == 0 else f"Placement {i}",
                "code": f"P{i}",
                "component": {
                    "code": f"COMP-{i}",
                    "sku": f"SKU-{i}",
                    "upc": "012345678905",
                    "quantityMultiplier": 2,
                    "description": [{"code": "GOLD", "name": "Gold finish"}],
                    "variables": [{"code": "text", "value": "Für dich ❤ — Привет"}],
                },
            }
            for i in range(components)
        ],
        "attachments": [{"code": "logo", "name": "Customer logo", "type": "image/svg+xml", "usage": "print"}],
        "custom": {"giftWrap": "yes", "Widmung": "Schöne Grüße"},
        **extra,
    }


def text_of(pdf: bytes) -> tuple[str, int]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    return " ".join(text.split()), len(reader.pages)


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (600, 400), color).save(buffer, format="PNG")
    return buffer.getvalue()


def test_ticket_shows_recipe_header_components_attachments_and_custom_attributes() -> None:
    text, pages = text_of(render_pick_ticket(recipe(), recipe_url=f"https://cz.example/recipe/{RECIPE_ID}.json"))
    assert pages == 1
    for expected in (
        RECIPE_ID,
        "Steel Bottle 750 ml",
        "BTL-750",
        "Version: 4",
        "2026-11-20",
        "COMP-1",
        "SKU-2",
        "012345678905",
        "Gold finish",
        "[GOLD]",
        "text = Für dich",
        "Customer logo",
        "giftWrap",
        "Schöne Grüße",
    ):
        assert expected in text, expected


def test_non_ascii_text_renders_as_real_characters() -> None:
    text, _ = text_of(render_pick_ticket(recipe()))
    assert NON_ASCII in text
    assert "Привет" in text


def test_order_line_is_printed_when_the_trigger_is_an_order() -> None:
    order = TicketOrder(
        order_number="1022", order_id="6182665224482", item_id="14523", item_quantity=3, status="cancelled"
    )
    text, _ = text_of(render_pick_ticket(recipe(), order=order))
    for expected in ("Order 1022", "6182665224482", "Line item: 14523", "Quantity: 3", "CANCELLED"):
        assert expected in text


def test_long_recipes_flow_onto_more_pages_with_the_header_repeated() -> None:
    _, short_pages = text_of(render_pick_ticket(recipe(components=5)))
    long_pdf = render_pick_ticket(recipe(components=120))
    text, long_pages = text_of(long_pdf)
    assert long_pages > short_pages
    assert text.count("PICK TICKET") == long_pages
    assert text.count("Placement Component Options") == long_pages  # table headings repeat too


def test_preview_thumbnails_are_embedded_and_bad_images_do_not_break_the_ticket() -> None:
    previews = [TicketImage("front", png("red")), TicketImage("back", png("blue")), TicketImage("side", b"junk")]
    pdf = render_pick_ticket(recipe(), previews=previews)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    images = [image for page in reader.pages for image in page.images]
    assert len(images) == 2
    assert "(preview unreadable)" in text_of(pdf)[0]


def test_same_inputs_give_identical_bytes() -> None:
    assert render_pick_ticket(recipe()) == render_pick_ticket(recipe())


def test_odd_recipe_values_do_not_break_rendering() -> None:
    odd = {
        "id": RECIPE_ID,
        "created": "not a date",
        "components": [{"component": "x"}, 7, {"name": "a" * 5000}],
        "views": "nope",
        "custom": ["x"],
        "name": "<b>&amp; tags</b>",
    }
    text, _ = text_of(render_pick_ticket(odd))
    assert "<b>&amp; tags</b>" in text


def test_status_banner_stamps_every_page_and_the_header() -> None:
    order = TicketOrder(order_number="1022", order_id="6182665224482", item_id="14523", item_quantity=2)
    pdf = render_pick_ticket(recipe(components=120), order=order, banner="cancelled")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) > 1
    for page in reader.pages:
        text = page.extract_text()
        assert text.count("CANCELLED") >= 2, text  # the header label and the stamp across the page
        assert "PICK TICKET" in text
    assert render_pick_ticket(recipe(), order=order, banner="CANCELLED") == render_pick_ticket(
        recipe(), order=order, banner="CANCELLED"
    )


def test_no_banner_means_no_stamp_and_blank_banner_is_none() -> None:
    order = TicketOrder(order_number="1022", order_id="6182665224482", item_quantity=2)
    plain = render_pick_ticket(recipe(), order=order)
    assert "CANCELLED" not in text_of(plain)[0]
    assert render_pick_ticket(recipe(), order=order, banner="   ") == plain


def test_long_banner_is_bounded_to_one_line() -> None:
    text, pages = text_of(render_pick_ticket(recipe(), banner="cancelled " * 20))
    assert pages == 1
    assert "CANCELLED CANCELLED" in text
