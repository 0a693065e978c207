"""Every schema-valid recipe gets a ticket: long, many and odd values wrap or are cut with a note, never raise."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pypdf
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from relay_contracts.recipe import validate_recipe
from relay_pickticket import TicketImage, TicketOrder, render_pick_ticket

RECIPE_ID = "999-63CHGJokGoxPfSba"
CREATED = "2026-11-20T09:30:00Z"
TRUNCATED = "(truncated, see the recipe JSON)"
# Every table and the preview grid at their bounds together come to 30 pages; nothing may grow past that.
MAX_PAGES = 32


def pdf_text(pdf: bytes) -> tuple[str, int]:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    return " ".join(text.split()), len(reader.pages)


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), "green").save(buffer, format="PNG")
    return buffer.getvalue()


def schema_valid(recipe: dict[str, Any]) -> dict[str, Any]:
    assert validate_recipe(recipe) == [], validate_recipe(recipe)[:3]
    return recipe


# --- Strategies built by hand from the shape of recipe.schema.json (seed 001) -------------------------------------

# Any code point UTF-8 (so JSON) can carry: control characters, NUL, combining marks, right-to-left scripts, emoji
# and the astral planes all turn up. Lone surrogates cannot be encoded, so no stored recipe holds one.
CHARACTERS = st.characters(codec="utf-8")
SHORT = st.text(CHARACTERS, max_size=40)
# The schema sets no maxLength: long values repeat a generated chunk, which costs hypothesis nothing to build.
LONG = st.builds(lambda chunk, times: chunk * times, st.text(CHARACTERS, min_size=1, max_size=12), st.integers(1, 3000))
UNBROKEN = st.builds(
    lambda char, times: char * times,
    st.characters(codec="utf-8", exclude_categories=["Zs", "Zl", "Zp", "Cc"]),
    st.integers(1000, 20_000),
)
MULTILINE = st.builds(
    lambda line, times, newline: newline.join([line] * times),
    SHORT,
    st.integers(2, 600),
    st.sampled_from(["\n", "\r\n", "\r", "\u2028"]),
)
TEXT = st.one_of(SHORT, SHORT, LONG, UNBROKEN, MULTILINE)
TEXTS = st.lists(TEXT, max_size=4)
CUSTOM = st.dictionaries(TEXT, TEXT, max_size=6)
NUMBER = st.one_of(
    st.integers(min_value=-(10**400), max_value=10**400), st.floats(allow_nan=False, allow_infinity=False)
)
# RFC 3339 as the format checker reads it: an offset (whole minutes) or "Z" is required.
OFFSETS = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda minutes: timezone(timedelta(minutes=minutes)))
DATE_TIME = st.builds(
    lambda moment, zulu: moment.isoformat().replace("+00:00", "Z") if zulu else moment.isoformat(),
    st.datetimes(timezones=st.one_of(st.just(UTC), OFFSETS)),
    st.booleans(),
)
# Links are not printed (only the QR code's, which is not schema-checked): short ones keep the format check cheap.
URI = st.builds(lambda path: f"https://cdn.example/{quote(path, safe='/')}", SHORT)
LONG_URI = st.builds(lambda path: f"https://cdn.example/{quote(path, safe='/')}", TEXT)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | NUMBER | SHORT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SHORT, inner, max_size=3),
    max_leaves=8,
)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional=fields)


DESCRIPTION = optional(code=TEXT, name=TEXT, definition=TEXT, custom=CUSTOM)
VARIABLE = optional(code=TEXT, value=TEXT)
COMPONENT = optional(
    placeholder=st.booleans(),
    code=TEXT,
    trackAs=TEXT,
    upc=TEXT,
    sku=TEXT,
    quantityMultiplier=NUMBER,
    description=st.lists(DESCRIPTION, max_size=5) | st.builds(lambda d, n: [d] * n, DESCRIPTION, st.integers(0, 300)),
    custom=CUSTOM,
    variables=st.lists(VARIABLE, max_size=5),
    addedTags=TEXTS,
)
PLACEMENT = optional(name=TEXT, code=TEXT, description=TEXT, custom=CUSTOM, component=COMPONENT, addedTags=TEXTS)
ATTACHMENT = optional(
    deferred=st.booleans(), type=TEXT, usage=TEXT, code=TEXT, name=TEXT, notes=TEXT, placement=TEXT, url=URI
)
VIEW = optional(
    name=TEXT,
    code=TEXT,
    previewPng=URI,
    previewJpg=URI,
    production=URI,
    productionReady=st.booleans(),
    custom=CUSTOM,
    variants=st.lists(optional(code=TEXT, suffix=TEXT, preview=URI), max_size=3),
)
ASSEMBLY = st.fixed_dictionaries(
    {"component": TEXT, "placement": TEXT},
    optional={"socket": TEXT, "to": TEXT, "recipe": st.dictionaries(SHORT, JSON_VALUE, max_size=3)},
)
RECIPE = st.fixed_dictionaries(
    {"id": TEXT, "created": DATE_TIME},
    optional={
        "session": st.uuids().map(str),
        "designRequest": TEXT,
        "blueprintUrl": URI,
        "createdFrom": TEXT,
        "childRecipe": st.booleans(),
        "temporaryRecipe": st.booleans(),
        "externalInventory": st.booleans(),
        "custom": CUSTOM,
        "name": TEXT,
        "styleCode": TEXT,
        "version": TEXT,
        "humanReadable": URI,
        "attachments": st.lists(ATTACHMENT, max_size=5),
        "related": st.lists(optional(name=TEXT, styleCode=TEXT, custom=CUSTOM), max_size=3),
        # A few placements, or (less often: rendering 250 rows is the slow part) one repeated past the row bound.
        "components": st.one_of(
            st.lists(PLACEMENT, max_size=6),
            st.lists(PLACEMENT, max_size=6),
            st.builds(lambda p, n: [p] * n, PLACEMENT, st.integers(0, 300)),
        ),
        "views": st.lists(VIEW, max_size=4),
        "assembly": st.lists(ASSEMBLY, max_size=3),
        "tags": TEXTS,
        "addedTags": TEXTS,
    },
).map(schema_valid)
ORDER = st.builds(
    TicketOrder,
    order_number=st.text(st.characters(codec="utf-8", min_codepoint=0x80), min_size=128, max_size=128) | SHORT,
    order_id=SHORT,
    item_id=st.none() | SHORT,
    item_quantity=st.none() | st.integers(),
    status=st.none() | st.sampled_from(["created", "cancelled"]) | SHORT,
)
PREVIEWS = st.lists(st.builds(TicketImage, label=TEXT, data=st.sampled_from([png(), b"junk", b""])), max_size=4)


# Rendering is the slow part (up to ~0.5 s for a ticket at its bounds, more on a busy machine, hence no
# deadline): a modest number of examples keeps `make test` fast.
@settings(max_examples=60, deadline=None)
@given(
    recipe=RECIPE,
    order=st.none() | ORDER,
    previews=PREVIEWS,
    recipe_url=st.none() | LONG_URI,
    banner=st.none() | st.just("CANCELLED") | SHORT,
)
def test_every_schema_valid_recipe_renders_a_readable_bounded_pdf(
    recipe: dict[str, Any],
    order: TicketOrder | None,
    previews: list[TicketImage],
    recipe_url: str | None,
    banner: str | None,
) -> None:
    pdf = render_pick_ticket(recipe, order=order, previews=previews, recipe_url=recipe_url, banner=banner)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert 1 <= len(reader.pages) <= MAX_PAGES
    assert "PICK TICKET" in reader.pages[0].extract_text()


# --- Regression cases from issue 8 ---------------------------------------------------------------------------------


def base(**fields: Any) -> dict[str, Any]:
    return schema_valid({"id": RECIPE_ID, "created": CREATED, "name": "Steel Bottle 750 ml", **fields})


def test_a_custom_value_of_500_lines_continues_over_rows_and_pages_then_says_where_the_rest_is() -> None:
    value = "\n".join(f"line {i:03d}" for i in range(500))
    text, pages = pdf_text(render_pick_ticket(base(custom={"engraving": value, "giftWrap": "yes"})))
    assert 2 < pages <= MAX_PAGES
    assert "line 000" in text
    assert "line 197" in text  # 200 lines of one value are shown, the last two being the note
    assert "line 200" not in text
    assert TRUNCATED in text
    assert "giftWrap" in text  # the attributes after it still show


def test_a_20000_character_unbroken_string_wraps_in_its_column_and_is_cut_with_a_pointer() -> None:
    unbroken = "Z" * 20_000
    recipe = base(
        custom={"note": unbroken},
        components=[{"name": unbroken, "code": "FRONT", "component": {"code": unbroken, "sku": unbroken}}],
        attachments=[{"code": "logo", "notes": unbroken}],
    )
    text, pages = pdf_text(render_pick_ticket(recipe, banner="CANCELLED"))
    assert pages <= MAX_PAGES
    assert text.count(TRUNCATED) >= 5


def test_a_long_code_without_spaces_is_broken_over_lines_but_shown_whole() -> None:
    code = "".join(chr(ord("A") + i % 26) for i in range(180))
    recipe = base(components=[{"name": "Front", "component": {"variables": [{"code": "serial", "value": code}]}}])
    text, _ = pdf_text(render_pick_ticket(recipe))
    assert code in "".join(text.split())
    assert TRUNCATED not in text


def test_2000_components_show_the_first_250_and_count_the_rest() -> None:
    components = [
        {"name": f"Placement {i}", "code": f"P{i}", "component": {"code": f"COMP-{i}", "sku": f"SKU-{i}"}}
        for i in range(2000)
    ]
    text, pages = pdf_text(render_pick_ticket(base(components=components)))
    assert pages <= MAX_PAGES
    assert "Components (2,000)" in text
    assert "SKU-249" in text
    assert "SKU-250" not in text
    assert "1,750 more components not shown, see the recipe JSON" in text


def test_every_table_at_its_bounds_stays_within_the_page_bound() -> None:
    wide = " ".join(["word"] * 5000)
    recipe = base(
        components=[{"name": wide, "component": {"code": wide, "sku": wide}}] * 400,
        attachments=[{"name": wide, "notes": wide}] * 400,
        custom={f"key {i}": wide for i in range(400)},
    )
    previews = [TicketImage(f"view {i}", png()) for i in range(100)]
    text, pages = pdf_text(render_pick_ticket(recipe, previews=previews))
    assert pages <= MAX_PAGES
    for note in ("components not shown", "attachments not shown", "custom attributes not shown", "76 more previews"):
        assert note in text, note


def test_many_options_in_one_component_are_cut_in_their_cell() -> None:
    options = [{"code": f"OPT{i}", "name": f"Option {i}"} for i in range(1000)]
    text, _ = pdf_text(render_pick_ticket(base(components=[{"name": "Front", "component": {"description": options}}])))
    assert "Option 0" in text
    assert "Option 999" not in text
    assert TRUNCATED in text


def test_odd_unicode_and_control_characters_render() -> None:
    odd = (
        "NUL\x00 bell\x07 esc\x1b del\x7f c1\x85\x9f tab\tend e\u0301\u0302\u0303 שלום مرحبا \u202eRTL\u202c"
        " 😀🧑\u200d🚒 \U0001d518\U0001d52b\U0001d526 \U0010fffd \ufeff zalgo" + "\u0301" * 5000
    )
    recipe = base(
        name=odd,
        styleCode=odd,
        version=odd,
        components=[{"name": odd, "code": odd, "component": {"sku": odd, "variables": [{"code": odd, "value": odd}]}}],
        custom={odd: odd},
        attachments=[{"name": odd, "type": odd}],
    )
    order = TicketOrder(order_number="Ж" * 128, order_id=odd, item_id=odd, item_quantity=1, status=odd)
    text, _ = pdf_text(
        render_pick_ticket(recipe, order=order, previews=[TicketImage(odd, png())], recipe_url=odd, banner=odd)
    )
    assert "Order ЖЖЖЖ" in text
    assert "tab end" in text


def test_values_beyond_json_render_too() -> None:
    """Callers pass dicts, not only parsed JSON: lone surrogates and integers too long for str() must not raise."""
    recipe = {
        "id": "999-\ud800x",
        "created": "\udfff",
        "name": "lone \ud83d surrogate",
        "components": [{"name": "Front", "component": {"quantityMultiplier": 10**20_000}}],
        "custom": {"\ud800": float("inf")},
    }
    text, _ = pdf_text(render_pick_ticket(recipe, recipe_url="https://x.example/" + "q" * 5000))
    assert "averylargenumber" in "".join(text.split())  # in the narrow Qty column


def test_a_128_character_order_number_fills_its_line() -> None:
    number = "Ünïcødé-" * 16
    order = TicketOrder(order_number=number, order_id="6182665224482", status="cancelled")
    text, _ = pdf_text(render_pick_ticket(base(), order=order, banner="CANCELLED"))
    assert f"Order {number[:20]}" in text
    assert "ORDER STATUS: CANCELLED" in text


def test_bounded_renders_are_still_deterministic() -> None:
    recipe = base(custom={"engraving": "\n".join(["x" * 300] * 300)}, components=[{"name": "A"}] * 600)
    assert render_pick_ticket(recipe) == render_pick_ticket(recipe)


def test_created_is_still_read_from_any_offset() -> None:
    created = datetime(2026, 11, 20, 9, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))).isoformat()
    text, _ = pdf_text(render_pick_ticket(base(created=created)))
    assert "2026-11-20 09:30 UTC+05:30" in text
