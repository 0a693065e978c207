"""The one shortening rule: within the byte limit, cut at a character boundary, ``~<hash>``; deterministic and
apart for apart inputs, whatever the Unicode."""

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from relay_platform.naming import HASH_LENGTH, fit_file_name, fit_utf8, short_hash, utf8_len

FAST = settings(database=None, max_examples=300, deadline=None)
HOSTILE = [
    "..", ".", "/", "\\", "\x00", "\x1f", "\x7f", "\u202e", "\u0301", "\U0001d518", "😀", "\u200d",
    "~", " ", "é", "Ж",
]  # fmt: skip
texts = st.lists(st.one_of(st.text(max_size=40), st.sampled_from(HOSTILE)), max_size=80).map("".join)
limits = st.integers(min_value=HASH_LENGTH + 2, max_value=300)
SUFFIX = re.compile(rf"~[0-9a-f]{{{HASH_LENGTH}}}$")


@FAST
@given(text=texts, max_bytes=limits)
def test_a_fitted_text_is_within_the_limit_and_is_itself_or_its_cut_head_and_hash(text: str, max_bytes: int) -> None:
    fitted = fit_utf8(text, max_bytes)

    assert utf8_len(fitted) <= max_bytes
    fitted.encode()  # valid UTF-8: a cut never splits a character
    if utf8_len(text) <= max_bytes:
        assert fitted == text
    else:
        assert fitted.endswith(f"~{short_hash(text)}")
        assert text.startswith(fitted[: -HASH_LENGTH - 1])
    assert fit_utf8(text, max_bytes) == fitted


@FAST
@given(first=texts, second=texts, max_bytes=limits)
def test_different_texts_never_fit_to_the_same_name(first: str, second: str, max_bytes: int) -> None:
    if first != second:
        assert fit_utf8(first, max_bytes) != fit_utf8(second, max_bytes)


def test_long_texts_sharing_their_head_stay_apart_and_ascii_that_fits_is_untouched() -> None:
    head = "Ж" * 200
    assert fit_utf8(head + "a", 255) != fit_utf8(head + "b", 255)
    assert fit_utf8("1022_ID_6182665224482", 40) == "1022_ID_6182665224482"
    assert SUFFIX.search(fit_utf8("\U0001d518" * 128, 255))


def test_an_identity_marks_a_cleaned_text_even_when_it_fits() -> None:
    assert fit_utf8("a_b", 64, identity="a_b") == "a_b"
    assert fit_utf8("a_b", 64, identity="a/b") == f"a_b~{short_hash('a/b')}"
    assert fit_utf8("a_b", 64, identity="a/b") != fit_utf8("a_b", 64, identity="a b")


EXTENSIONS = st.sampled_from(["pdf", "json", "png", "tar.gz", "x" * 17])


@FAST
@given(stem=texts, extension=EXTENSIONS, max_bytes=st.integers(40, 255))
def test_a_fitted_file_name_keeps_a_short_extension(stem: str, extension: str, max_bytes: int) -> None:
    name = f"{stem or 'x'}.{extension}"

    fitted = fit_file_name(name, max_bytes)

    assert utf8_len(fitted) <= max_bytes
    assert fitted == fit_file_name(name, max_bytes)
    if len(extension) <= 16:
        assert fitted.endswith(f".{extension.rsplit('.', 1)[-1]}")
    if utf8_len(name) <= max_bytes:
        assert fitted == name


def test_a_fitted_file_name_looks_like_the_brief_example() -> None:
    fitted = fit_file_name("Ж" * 150 + "_Ticket.pdf", 200)
    assert re.fullmatch(rf"Ж+~[0-9a-f]{{{HASH_LENGTH}}}\.pdf", fitted)
    assert utf8_len(fitted) <= 200
