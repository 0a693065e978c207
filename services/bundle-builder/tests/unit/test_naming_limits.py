"""Names and keys stay within file-system and S3 limits in UTF-8 bytes, for any Unicode the API lets through:
every segment <= 255 bytes, file names <= 200, keys <= 1,024; deterministic, no traversal, apart when apart."""

import re
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from relay_bundle_builder.naming import (
    EVENTS_DIR,
    FILE_NAME_MAX,
    bundle_dir,
    file_name,
    name_prefix,
    object_key,
    sanitize_part,
    unique_names,
)
from relay_contracts.messages import ID_TEXT, OrderLine
from relay_contracts.types import check_id_text
from relay_platform.naming import KEY_MAX_BYTES, SEGMENT_MAX_BYTES, utf8_len

PROPERTIES = settings(database=None, max_examples=200, deadline=None)
HOSTILE = [
    "..", ".", "/", "\\", "\x00", "\x1f", "\x7f", "\x85", "\u2028", "\u202e", "\u0301", "\u200d", "\ufeff",
    "\U0001d518", "😀", "ﷺ", "ש", "~", " ", "\t", "\r\n", "con", "é", "Ж", "*", ":", "?", "<", '"', "|",
]  # fmt: skip
# Any text, hostile pieces over-represented, up to the 128 characters an ID may have; some all astral (512 bytes).
any_text = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(HOSTILE)), max_size=60).map("".join)
ids = st.one_of(
    any_text.map(lambda text: text[:ID_TEXT]),
    st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), min_size=100, max_size=ID_TEXT),
)
required_ids = ids.filter(bool)


def _acceptable_id(text: str) -> bool:
    try:
        check_id_text(text)
    except ValueError:
        return False
    return True


# What a message may carry (no control characters, not only blanks); the names are still built from hostile text.
line_ids = ids.filter(_acceptable_id)
orders = st.tuples(line_ids, line_ids, st.one_of(st.none(), line_ids)).map(
    lambda ids: OrderLine(order_id=ids[0], order_number=ids[1], item_id=ids[2], item_quantity=1)
)
stems = st.one_of(any_text, st.text(min_size=200, max_size=2000))
extensions = st.one_of(st.sampled_from(["pdf", "json", "png", "dst", "bin"]), any_text)
sha256s = st.binary(min_size=32, max_size=32).map(bytes.hex)
# Text that sanitising leaves as it is (unless too long): letters and digits of any script, and a few safe marks.
clean_text = st.text(
    alphabet=st.one_of(st.characters(categories=["Lu", "Ll", "Lo", "Nd"]), st.sampled_from("-~")),
    min_size=1,
    max_size=ID_TEXT,
)


def assert_safe_segment(segment: str) -> None:
    assert segment
    assert segment not in {".", ".."}
    assert "/" not in segment
    assert "\\" not in segment
    assert segment.isprintable()
    assert utf8_len(segment) <= SEGMENT_MAX_BYTES


def assert_safe_key(key: str) -> None:
    assert utf8_len(key) <= KEY_MAX_BYTES
    assert not key.startswith("/")
    for segment in key.split("/"):
        assert_safe_segment(segment)


@PROPERTIES
@given(text=any_text, max_bytes=st.integers(min_value=10, max_value=400))
def test_a_sanitised_part_is_one_safe_segment_within_its_byte_limit(text: str, max_bytes: int) -> None:
    part = sanitize_part(text, max_bytes=max_bytes)

    assert_safe_segment(part)
    assert ".." not in part
    assert utf8_len(part) <= min(max_bytes, SEGMENT_MAX_BYTES)
    assert part == sanitize_part(text, max_bytes=max_bytes)


@PROPERTIES
@given(recipe_id=required_ids, order=st.one_of(st.none(), orders), stem=stems, extension=extensions)
def test_every_file_name_is_one_safe_segment_of_at_most_200_bytes(
    recipe_id: str, order: OrderLine | None, stem: str, extension: str
) -> None:
    name = file_name(name_prefix(recipe_id, order), stem, extension)

    assert_safe_segment(name)
    assert ".." not in name
    assert utf8_len(name) <= FILE_NAME_MAX
    assert name == file_name(name_prefix(recipe_id, order), stem, extension)


@PROPERTIES
@given(tenant=required_ids, recipe_id=required_ids, order=st.one_of(st.none(), orders), stem=stems, sha256=sha256s)
def test_every_object_key_has_safe_segments_and_at_most_1024_bytes(
    tenant: str, recipe_id: str, order: OrderLine | None, stem: str, sha256: str
) -> None:
    directory = bundle_dir(tenant, recipe_id, order)
    name = file_name(name_prefix(recipe_id, order), stem, "pdf")

    for folder in (directory, f"{directory}/{EVENTS_DIR}/cancelled"):
        key = object_key(folder, name, sha256)
        assert_safe_key(key)
        assert key == f"{folder}/{sha256[:16]}/{name}"  # names from file_name are never shortened again
        assert key == object_key(folder, name, sha256)


@PROPERTIES
@given(tenant=required_ids, recipe_id=required_ids, first=orders, second=orders)
def test_different_order_lines_never_share_a_bundle_directory(
    tenant: str, recipe_id: str, first: OrderLine, second: OrderLine
) -> None:
    if (first.order_id, first.item_id) != (second.order_id, second.item_id):
        assert bundle_dir(tenant, recipe_id, first) != bundle_dir(tenant, recipe_id, second)
    assert bundle_dir(tenant, recipe_id, first) == bundle_dir(tenant, recipe_id, first.model_copy())


@PROPERTIES
@given(first=clean_text, second=clean_text, order_id=clean_text)
def test_different_order_numbers_never_share_a_file_name(first: str, second: str, order_id: str) -> None:
    def ticket(number: str) -> str:
        order = OrderLine(order_id=order_id, order_number=number)
        return file_name(name_prefix("999-63CHGJokGoxPfSba", order), "Ticket", "pdf")

    if first != second:
        assert ticket(first) != ticket(second)


@PROPERTIES
@given(stems=st.lists(st.one_of(st.sampled_from(["Ticket", "Preview", "PREVIEW", "é", "é"]), stems), max_size=12))
def test_unique_names_are_distinct_even_to_case_insensitive_systems_and_stay_within_200_bytes(
    stems: list[str],
) -> None:
    prefix = name_prefix("999-63CHGJokGoxPfSba", OrderLine(order_id="6182665224482", order_number="Ж" * 128))
    names = [file_name(prefix, stem, "png") for stem in stems]

    unique = unique_names(names)

    folded = [unicodedata.normalize("NFC", name).casefold() for name in unique]
    assert len(set(folded)) == len(unique) == len(names)
    for name in unique:
        assert_safe_segment(name)
        assert utf8_len(name) <= FILE_NAME_MAX
    assert unique == unique_names(list(names))


def test_an_order_number_of_128_non_ascii_characters_is_cut_with_a_hash_and_the_rest_kept() -> None:
    order = OrderLine(order_id="6182665224482", order_number="Ж" * 128, item_id="14523")

    name = file_name(name_prefix("999-63CHGJokGoxPfSba", order), "Ticket", "pdf")

    assert re.fullmatch(r"Ж{15}~[0-9a-f]{8}_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket\.pdf", name)
    other = order.model_copy(update={"order_number": "Ж" * 127 + "Й"})
    assert name != file_name(name_prefix("999-63CHGJokGoxPfSba", other), "Ticket", "pdf")


def test_object_keys_are_versioned_by_content_so_a_rebuild_never_overwrites_a_delivered_file() -> None:
    directory = "bundles/demo/orders/6182665224482/14523/999-63CHGJokGoxPfSba"
    name = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf"

    first = object_key(directory, name, "a" * 64)

    assert first == f"{directory}/aaaaaaaaaaaaaaaa/{name}"
    assert object_key(directory, name, "a" * 64) == first
    assert object_key(directory, name, "b" * 64) != first
