"""S3 keys and Azure blob names: ``<prefix>/<file name>`` within 1,024 UTF-8 bytes, 255 per segment and 254
segments, a long file name shortened the same way every time; a prefix that leaves no room is refused."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_delivery.naming import MAX_SEGMENTS, prefixed_object_name
from relay_platform.errors import PermanentError
from relay_platform.naming import KEY_MAX_BYTES, SEGMENT_MAX_BYTES, utf8_len

PROPERTIES = settings(database=None, max_examples=200, deadline=None)
# What a bundle file name can be: printable, no separators, up to the 255 characters BundleFile allows.
file_names = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs", "Zl", "Zp", "Cf", "Co", "Cn"], blacklist_characters="/\\"),
    min_size=1,
    max_size=255,
).filter(lambda name: name not in {".", ".."} and name.isprintable())
PREFIX_PARTS = ["acme", "orders", "Ж" * 60, "\U0001d518" * 40, "", "2025"]
prefixes = st.lists(st.sampled_from(PREFIX_PARTS), max_size=5).map("/".join)  # up to 804 bytes


@PROPERTIES
@given(prefix=prefixes, name=file_names, extension=st.sampled_from(["", ".pdf", ".json"]))
def test_every_name_fits_s3_and_azure_and_is_the_same_on_every_redelivery(
    prefix: str, name: str, extension: str
) -> None:
    key = prefixed_object_name(prefix, name + extension)

    assert utf8_len(key) <= KEY_MAX_BYTES
    assert len(key) <= 1024
    segments = key.split("/")
    assert len(segments) <= MAX_SEGMENTS
    assert all(segment and utf8_len(segment) <= SEGMENT_MAX_BYTES for segment in segments)
    assert key.endswith(extension)
    assert key == prefixed_object_name(prefix, name + extension)
    folder = "/".join(part for part in prefix.split("/") if part)
    assert key.startswith(f"{folder}/" if folder else "")
    if utf8_len(name + extension) <= SEGMENT_MAX_BYTES:
        assert segments[-1] == name + extension


@PROPERTIES
@given(first=file_names, second=file_names)
def test_different_file_names_never_share_an_object(first: str, second: str) -> None:
    if first != second:
        assert prefixed_object_name("acme", first) != prefixed_object_name("acme", second)


def test_the_seed_name_is_kept_as_it_is() -> None:
    name = "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf"
    assert prefixed_object_name("/acme//recipes/", name) == f"acme/recipes/{name}"
    assert prefixed_object_name("", name) == name


def test_a_prefix_that_leaves_no_room_is_refused_naming_the_limit() -> None:
    with pytest.raises(PermanentError, match="too long for object name within 1024"):
        prefixed_object_name("/".join(["p" * 250] * 4), "x.pdf")
    with pytest.raises(PermanentError, match="more than 253 segments"):
        prefixed_object_name("/".join(["p"] * 300), "x.pdf")
    with pytest.raises(PermanentError, match="segment over 255 UTF-8 bytes"):
        prefixed_object_name("é" * 128, "x.pdf")
