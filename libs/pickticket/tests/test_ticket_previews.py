"""Preview thumbnails: only images whose header stays within the pixel limit are decoded; the rest get a note."""

from __future__ import annotations

import io
import struct
import zlib
from functools import cache

import pypdf
import pytest
from PIL import Image

from relay_pickticket import PREVIEW_MAX_PIXELS, TicketImage, render_pick_ticket

RECIPE = {"id": "999-previews", "name": "Preview Mug", "created": "2026-11-20T09:30:00Z"}
TOO_LARGE = "(preview too large for a thumbnail)"
UNREADABLE = "(preview unreadable)"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int, *, rows: int | None = None) -> bytes:
    """A valid 8-bit greyscale PNG, all zero: every row encoded (a real decompression bomb) or only ``rows``."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (1 + width)
    data = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


@cache
def bomb() -> bytes:
    """64 megapixels (64 MB decoded as greyscale, 256 MB as RGBA) in ~62 KB."""
    return png_claiming(8_000, 8_000)


def image(fmt: str, size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "green").save(buffer, format=fmt)
    return buffer.getvalue()


def ticket_text(previews: list[TicketImage], max_preview_pixels: int = PREVIEW_MAX_PIXELS) -> str:
    pdf = render_pick_ticket(RECIPE, previews=previews, max_preview_pixels=max_preview_pixels)
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())


def images_in(pdf: bytes) -> int:
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    return sum(len(page.images) for page in reader.pages)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (100_000, 100_000),  # over twice Pillow's MAX_IMAGE_PIXELS: its DecompressionBombError
        (10_000, 10_000),  # between once and twice: its DecompressionBombWarning (an error under pytest)
        (7_000, 7_000),  # under Pillow's limit, over the ticket's: the header check
    ],
)
def test_a_header_claiming_too_many_pixels_gets_a_note_not_a_decode(width: int, height: int) -> None:
    claim = png_claiming(width, height, rows=1)
    assert len(claim) < 200
    text = ticket_text([TicketImage("front", claim)])
    assert TOO_LARGE in text
    assert "front" in text


def test_a_real_decompression_bomb_under_pillows_own_limit_is_not_decoded() -> None:
    # 64 MP: below Pillow's MAX_IMAGE_PIXELS (~89 MP), so only the ticket's own header check stops it.
    assert len(bomb()) < 100_000
    text = ticket_text([TicketImage("back", bomb())])
    assert TOO_LARGE in text


def test_the_pixel_limit_is_the_callers_setting() -> None:
    small = image("PNG", (100, 100))
    assert TOO_LARGE in ticket_text([TicketImage("v", small)], max_preview_pixels=9_999)
    pdf = render_pick_ticket(RECIPE, previews=[TicketImage("v", small)], max_preview_pixels=10_000)
    assert images_in(pdf) == 1
    assert PREVIEW_MAX_PIXELS == 40_000_000


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_ordinary_previews_get_thumbnails_from_bytes_or_files(fmt: str) -> None:
    data = image(fmt)
    from_bytes = render_pick_ticket(RECIPE, previews=[TicketImage("v", data)])
    stream = io.BytesIO(data)
    stream.seek(5)  # read from its start whatever its position
    from_file = render_pick_ticket(RECIPE, previews=[TicketImage("v", stream)])
    assert from_bytes == from_file
    assert images_in(from_bytes) == 1
    assert not stream.closed


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "PPM"])
def test_other_image_formats_are_not_decoded(fmt: str) -> None:
    assert UNREADABLE in ticket_text([TicketImage("v", image(fmt))])


def test_the_other_previews_keep_their_thumbnails() -> None:
    previews = [TicketImage("bomb", bomb()), TicketImage("ok", image("PNG")), TicketImage("junk", b"not an image")]
    pdf = render_pick_ticket(RECIPE, previews=previews)
    assert images_in(pdf) == 1
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    text = " ".join(page.extract_text() for page in reader.pages)
    assert TOO_LARGE in text
    assert UNREADABLE in text
