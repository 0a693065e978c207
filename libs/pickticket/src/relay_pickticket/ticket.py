"""Render the PDF pick ticket a manufacturing worker prints: pure function, plain inputs in, PDF bytes out."""

from __future__ import annotations

import io
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import groupby, islice
from typing import IO, Any
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from reportlab.graphics.barcode.code128 import Code128
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    Flowable,
    Image,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

from relay_pickticket.fonts import BOLD, REGULAR, register_fonts

PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 12 * mm
HEADER_HEIGHT = 40 * mm
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN
QR_SIZE = 27 * mm
BARCODE_ROOM = 72 * mm
BAR_WIDTH = 0.33 * mm
THUMB_BOX = 52 * mm
THUMBS_PER_ROW = 3
THUMB_PIXELS = 480
BANNER_MAX_CHARS = 24
BANNER_COLOR = colors.HexColor("#C62828")
STRIPE_COLOR = colors.HexColor("#F0F0F0")
CELL_FONT_SIZE = 7.5
CELL_LEADING = 9.2
CELL_PADDING = 3  # points, left and right (and the rows' top + bottom padding is 2 + 2)

# Every schema-valid recipe must render, and an anonymous ``GET /recipe/<id>.pdf`` must not be able to make a render
# arbitrarily expensive (the schema has no maxLength or maxItems). So text is wrapped, with over-long words broken
# anywhere; cells, tables and the preview grid are bounded; whatever is cut says so on the ticket and points at the
# recipe JSON, which always holds everything. Worst cases measured: 30 pages, 0.5-1 s of rendering on a busy core.
TRUNCATED = "… (truncated, see the recipe JSON)"
# A row of at most ROW_MAX_LINES lines is well under one page tall (~70 lines fit), so a table can always break
# between rows: reportlab raises LayoutError for a row taller than a page. Shorter rows also leave less blank
# space at the foot of a page when the next one does not fit.
CELL_MAX_LINES = ROW_MAX_LINES = 24
# A custom attribute value is the free text a worker may need in full (an engraving, instructions): it continues
# over several rows.
VALUE_MAX_LINES = 200
# Wrapping counts every character as at least this wide (in ems; DejaVu's narrowest letters are ~0.28): zero-width
# characters (stacks of combining marks, joiners) would otherwise pack a line without limit, making a bounded
# number of lines unbounded work. Text is NFC-normalised first, so accented letters are not affected.
MIN_CHAR_EM = 0.25
# Characters read per cell before wrapping, a safety net over the lines (the widest column holds ~195 a line).
CHARS_PER_LINE = 200
# Per table: records shown, and lines (~70 a page). 250 components of a few lines each fit within the lines.
COMPONENT_ROWS, COMPONENT_LINES = 250, 800
ATTACHMENT_ROWS, ATTACHMENT_LINES = 100, 200
CUSTOM_ROWS, CUSTOM_LINES = 100, 400
MAX_PREVIEWS = 24
# A preview is decoded only when its header says it has at most this many pixels (a 40 MP RGBA image is ~160 MB
# decoded): a small file can claim, or really decompress to, billions of pixels. Pillow's own guard
# (``MAX_IMAGE_PIXELS``, a warning from ~89 MP and an error from ~179 MP, both raised by ``Image.open`` before this
# check) is left as it is, a backstop for every other use of Pillow in the process.
PREVIEW_MAX_PIXELS = 40_000_000
# The only decoders a preview may reach (the bundle-builder's image types): never EPS (Ghostscript) or other rare
# formats whose decoders are a larger attack surface.
PREVIEW_FORMATS = ("PNG", "JPEG", "GIF", "WEBP")
PREVIEW_UNREADABLE = "(preview unreadable)"
PREVIEW_TOO_LARGE = "(preview too large for a thumbnail)"
# A 27 mm QR code stays scannable up to ~250 bytes (version 11, level M), and encoding time grows with the length
# (pure Python): a longer link falls back to the recipe ID, which the ingest API keeps short.
QR_MAX_BYTES = 250
_BIG_INT_BITS = 1024  # str() of an int with more than 4300 digits raises ValueError

# Line breaks reportlab would draw as boxes, or not at all; other control characters and lone surrogates (which
# cannot be encoded into the PDF) become U+FFFD, so damaged text is visible rather than silently dropped.
_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_UNPRINTABLE = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class TicketOrder:
    """The order line a ticket is printed for (non-personal data only)."""

    order_number: str
    order_id: str
    item_id: str | None = None
    item_quantity: int | None = None
    status: str | None = None


@dataclass(frozen=True, slots=True)
class TicketImage:
    """A preview image to show as a thumbnail, captioned with ``label`` (usually the view code or name); ``data`` is
    the encoded image, as bytes or a seekable binary file (read from its start, left open)."""

    label: str
    data: bytes | IO[bytes]


def _plain(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and value.bit_length() > _BIG_INT_BITS:
        return "(a very large number, see the recipe JSON)"
    if isinstance(value, float) and value.is_integer():  # finite: at most 309 digits
        return str(int(value))
    return str(value)


def _clean(text: str) -> str:
    """``text`` fit to draw: line breaks as ``\\n``, tabs as spaces, unprintable characters as U+FFFD."""
    text = _LINE_BREAKS.sub("\n", text).replace("\t", " ")
    # NFC: a letter and its combining accent as the one precomposed glyph the font has (reportlab does no shaping).
    return unicodedata.normalize("NFC", _UNPRINTABLE.sub("\ufffd", text))


def _text(value: object, limit: int, marker: str = TRUNCATED) -> str:
    """``value`` as clean text of at most ``limit`` characters, ending in ``marker`` when cut."""
    text = _plain(value)
    if len(text) > limit:
        text = text[:limit] + marker
    return _clean(text)


def _short(value: object, limit: int) -> str:
    return _text(value, limit, "…")


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _created(value: object) -> str:
    text = _short(value, 64)
    try:
        moment = datetime.fromisoformat(text)  # 3.11 reads a trailing "Z"
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def canvas_width(text: str, font: str, size: float) -> float:
    """Width of ``text`` in points."""
    width: float = stringWidth(text, font, size)
    return width


@lru_cache(maxsize=8192)
def _em(char: str, font: str) -> float:
    """``char``'s width in ``font`` at 1 point, at least MIN_CHAR_EM; cached: reportlab measures in pure Python."""
    return max(canvas_width(char, font, 1), MIN_CHAR_EM)


def _pieces(text: str, font: str, size: float, width: float) -> Iterator[tuple[str, float]]:
    """``text`` cut between characters (not at spaces) into pieces no wider than ``width``, each with its width."""
    start, used = 0, 0.0
    for index, char in enumerate(text):
        char_width = _em(char, font) * size
        # At least one character a piece: a glyph wider than the column still moves on.
        if used + char_width > width and index > start:
            yield text[start:index], used
            start, used = index, 0.0
        used += char_width
    yield text[start:], used


def _wrapped(text: str, font: str, size: float, width: float) -> Iterator[str]:
    """``text``'s lines no wider than ``width``, lazily (callers stop early).

    Unlike reportlab's ``simpleSplit`` and ``Paragraph``, a word wider than ``width`` (a code, a link, text without
    spaces) is broken between characters, so a line never runs past its column.
    """
    space, floor = _em(" ", font) * size, MIN_CHAR_EM * size
    for paragraph in text.split("\n"):
        line, line_width = "", 0.0
        for word in paragraph.split():
            # A word longer than a line could hold even of the narrowest characters is not measured: it is broken.
            too_long = len(word) * floor > width
            word_width = len(word) * floor if too_long else size * sum(_em(char, font) for char in word)
            if line and line_width + space + word_width <= width:
                line, line_width = f"{line} {word}", line_width + space + word_width
                continue
            if line:
                yield line
            line, line_width = word, word_width
            if word_width > width:
                pieces = _pieces(word, font, size, width)
                line, line_width = next(pieces)
                for piece in pieces:
                    yield line
                    line, line_width = piece
        yield line


def _fit(text: str, font: str, size: float, width: float, lines: int) -> list[str]:
    """Wrap ``text`` into at most ``lines`` lines of ``width``, ending in an ellipsis when cut."""
    wrapped = list(islice(_wrapped(text, font, size, width), lines + 1))
    if len(wrapped) <= lines:
        return wrapped
    # The last line is filled up to the ellipsis character by character, so a long word after a short one (say
    # "Order <128-character number>") still shows its start rather than leaving the line at "Order…".
    kept = wrapped[:lines]
    room = max(width - canvas_width("…", font, size), 0.0)
    last, _ = next(_pieces(f"{kept[-1]} {wrapped[lines]}", font, size, room))
    kept[-1] = last.rstrip() + "…"
    return kept


def _cell_lines(text: str, font: str, width: float, max_lines: int) -> list[str]:
    """At most ``max_lines`` wrapped lines; when ``text`` does not fit, the last lines say so."""
    lines = list(islice(_wrapped(text, font, CELL_FONT_SIZE, width), max_lines + 1))
    if len(lines) <= max_lines:
        return lines
    marker = list(islice(_wrapped(TRUNCATED, font, CELL_FONT_SIZE, width), max_lines))
    return lines[: max_lines - len(marker)] + marker


class _Lines(Flowable):  # type: ignore[misc]  # reportlab is untyped
    """Lines wrapped beforehand, drawn as they are: the height is known exactly, so no cell can outgrow a page.

    Used instead of ``Paragraph``, whose height is only known once laid out (a table row taller than a page raises
    ``LayoutError``) and which parses its text as markup.
    """

    def __init__(
        self,
        lines: Sequence[str],
        width: float,
        *,
        font: str = REGULAR,
        color: colors.Color = colors.black,
        centred: bool = False,
    ) -> None:
        super().__init__()
        self.lines = list(lines)
        self.font = font
        self.color = color
        self.centred = centred
        self.width = width
        self.height = len(self.lines) * CELL_LEADING

    def wrap(self, _avail_width: float, _avail_height: float) -> tuple[float, float]:
        return self.width, self.height

    def draw(self) -> None:
        canvas: Canvas = self.canv
        canvas.setFont(self.font, CELL_FONT_SIZE)
        canvas.setFillColor(self.color)
        # Each line's baseline a little above the bottom of its leading slot, as Paragraph places it.
        baseline = self.height - CELL_FONT_SIZE
        for line in self.lines:
            if self.centred:
                canvas.drawCentredString(self.width / 2, baseline, line)
            else:
                canvas.drawString(0, baseline, line)
            baseline -= CELL_LEADING


def _cell(text: str, width: float) -> _Lines:
    return _Lines(_cell_lines(text, REGULAR, width, CELL_MAX_LINES), width)


class _Styles:
    def __init__(self) -> None:
        self.section = ParagraphStyle("section", fontName=BOLD, fontSize=10.5, leading=13, spaceBefore=4, spaceAfter=3)
        self.note = ParagraphStyle(
            "note", fontName=REGULAR, fontSize=CELL_FONT_SIZE, leading=CELL_LEADING, spaceBefore=2
        )


_TABLE_STYLE = [
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#333333")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
    ("LEFTPADDING", (0, 0), (-1, -1), CELL_PADDING),
    ("RIGHTPADDING", (0, 0), (-1, -1), CELL_PADDING),
    ("TOPPADDING", (0, 0), (-1, -1), 2),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
]


@dataclass(frozen=True, slots=True)
class _Column:
    heading: str
    width: float
    bold: bool = False
    max_lines: int = CELL_MAX_LINES

    @property
    def inner(self) -> float:
        return self.width - 2 * CELL_PADDING


def _more(styles: _Styles, count: int, noun: str) -> Paragraph:
    return Paragraph(escape(f"{count:,} more {noun} not shown, see the recipe JSON"), styles.note)


def _table(
    styles: _Styles,
    columns: Sequence[_Column],
    records: Iterable[Sequence[str]],
    *,
    total: int,
    noun: str,
    max_records: int,
    max_lines: int,
) -> list[Flowable]:
    """A table of ``records`` (one text per column) that always lays out and stays within ``max_lines``.

    A record taller than ROW_MAX_LINES continues over several rows; records past ``max_records`` or the line budget
    are counted under the table instead of shown.
    """
    heading = [_Lines([c.heading], c.inner, font=BOLD, color=colors.white) for c in columns]
    rows: list[list[Flowable]] = []
    style = list(_TABLE_STYLE)
    shown = used = 0
    for record in islice(records, max_records):
        cells = [
            _cell_lines(text, BOLD if c.bold else REGULAR, c.inner, c.max_lines)
            for text, c in zip(record, columns, strict=True)
        ]
        height = max(len(lines) for lines in cells)
        if used + height > max_lines:
            break
        used += height
        first = len(rows) + 1
        rows.extend(
            [
                _Lines(lines[start : start + ROW_MAX_LINES], c.inner, font=BOLD if c.bold else REGULAR)
                for lines, c in zip(cells, columns, strict=True)
            ]
            for start in range(0, height, ROW_MAX_LINES)
        )
        # Striped by record, not by row, so a record's continuation rows read as one.
        if shown % 2:
            style.append(("BACKGROUND", (0, first), (-1, len(rows)), STRIPE_COLOR))
        shown += 1
    # repeatRows: a table that flows onto the next page keeps its column headings.
    table = Table([heading, *rows], colWidths=[c.width for c in columns], repeatRows=1)
    table.setStyle(TableStyle(style))
    return [table, _more(styles, total - shown, noun)] if total > shown else [table]


def _name_code(name: object, code: object) -> str:
    limit = CELL_MAX_LINES * CHARS_PER_LINE
    name_text, code_text = _text(name, limit), _text(code, limit)
    if name_text and code_text and name_text != code_text:
        return f"{name_text}\n[{code_text}]"
    return name_text or code_text


def _component_records(placements: Sequence[Mapping[str, Any]]) -> Iterator[list[str]]:
    limit = CELL_MAX_LINES * CHARS_PER_LINE
    for placement in placements:
        component = _mapping(placement.get("component"))
        # Each entry takes a line at least, so entries past a cell's line limit cannot show: not even read.
        options = islice(_dicts(component.get("description")), CELL_MAX_LINES + 1)
        variables = islice(_dicts(component.get("variables")), CELL_MAX_LINES + 1)
        yield [
            _name_code(placement.get("name"), placement.get("code")),
            _text(component.get("code"), limit),
            "\n".join(_name_code(option.get("name"), option.get("code")) for option in options),
            _text(component.get("sku"), limit),
            _text(component.get("upc"), limit),
            _text(component.get("quantityMultiplier"), limit),
            "\n".join(f"{_text(v.get('code'), 80, '…')} = {_text(v.get('value'), limit)}" for v in variables),
        ]


def _components(styles: _Styles, recipe: Mapping[str, Any]) -> list[Flowable]:
    placements = _dicts(recipe.get("components"))
    flow: list[Flowable] = [Paragraph(f"Components ({len(placements):,})", styles.section)]
    if not placements:
        return [*flow, _cell("No components.", CONTENT_WIDTH)]
    columns = [
        _Column("Placement", 34 * mm, bold=True),
        _Column("Component", 24 * mm),
        _Column("Options", 38 * mm),
        _Column("SKU", 22 * mm),
        _Column("UPC", 25 * mm),
        _Column("Qty", 10 * mm),
        _Column("Variables", CONTENT_WIDTH - 153 * mm),
    ]
    table = _table(
        styles,
        columns,
        _component_records(placements),
        total=len(placements),
        noun="components",
        max_records=COMPONENT_ROWS,
        max_lines=COMPONENT_LINES,
    )
    return [*flow, *table]


def _thumbnail(data: bytes | IO[bytes], max_pixels: int) -> Image | str:
    """A small JPEG copy of a preview (transparent areas on white), or the note shown instead of one.

    ``Image.open`` reads only the header: an image over ``max_pixels`` is never decoded. Pillow's decompression bomb
    error (and its warning, when warnings are errors) mean the same.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        stream.seek(0)
        with PILImage.open(stream, formats=PREVIEW_FORMATS) as source:
            if source.width * source.height > max_pixels:
                return PREVIEW_TOO_LARGE
            source.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
            image = source.convert("RGBA")
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning):
        return PREVIEW_TOO_LARGE
    except (OSError, UnidentifiedImageError, ValueError):
        return PREVIEW_UNREADABLE
    flat = PILImage.new("RGB", image.size, "white")
    flat.paste(image, mask=image.getchannel("A"))
    buffer = io.BytesIO()
    flat.save(buffer, format="JPEG", quality=85)
    buffer.seek(0)
    scale = min(THUMB_BOX / flat.width, THUMB_BOX / flat.height)
    return Image(buffer, width=flat.width * scale, height=flat.height * scale)


def _previews(styles: _Styles, previews: Sequence[TicketImage], max_pixels: int) -> list[Flowable]:
    if not previews:
        return []
    # The grid's default cell padding is 6 points a side.
    caption_width = CONTENT_WIDTH / THUMBS_PER_ROW - 12
    cells: list[list[Flowable]] = []
    for preview in previews[:MAX_PREVIEWS]:
        image = _thumbnail(preview.data, max_pixels)
        caption = _fit(_short(preview.label, 120), REGULAR, CELL_FONT_SIZE, caption_width, 2)
        body: Flowable = _cell(image, caption_width) if isinstance(image, str) else image
        cells.append([body, Spacer(1, 1 * mm), _Lines(caption, caption_width, centred=True)])
    rows: list[list[list[Flowable] | str]] = []
    for start in range(0, len(cells), THUMBS_PER_ROW):
        row: list[list[Flowable] | str] = list(cells[start : start + THUMBS_PER_ROW])
        rows.append(row + [""] * (THUMBS_PER_ROW - len(row)))
    grid = Table(rows, colWidths=[CONTENT_WIDTH / THUMBS_PER_ROW] * THUMBS_PER_ROW)
    grid.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    flow: list[Flowable] = [Paragraph(f"Previews ({len(previews):,})", styles.section), grid]
    if len(previews) > MAX_PREVIEWS:
        flow.append(_more(styles, len(previews) - MAX_PREVIEWS, "previews"))
    return flow


def _attachments(styles: _Styles, recipe: Mapping[str, Any]) -> list[Flowable]:
    attachments = _dicts(recipe.get("attachments"))
    if not attachments:
        return []
    limit = CELL_MAX_LINES * CHARS_PER_LINE
    records = (
        [
            _name_code(a.get("name"), a.get("code")),
            _text(a.get("type"), limit),
            _text(a.get("usage"), limit),
            _text(a.get("placement"), limit),
            _text(a.get("notes"), limit),
        ]
        for a in attachments
    )
    columns = [
        _Column("Attachment", 46 * mm, bold=True),
        _Column("Type", 30 * mm),
        _Column("Usage", 30 * mm),
        _Column("Placement", 30 * mm),
        _Column("Notes", CONTENT_WIDTH - 136 * mm),
    ]
    table = _table(
        styles,
        columns,
        records,
        total=len(attachments),
        noun="attachments",
        max_records=ATTACHMENT_ROWS,
        max_lines=ATTACHMENT_LINES,
    )
    return [Paragraph(f"Attachments ({len(attachments):,})", styles.section), *table]


def _custom(styles: _Styles, recipe: Mapping[str, Any]) -> list[Flowable]:
    custom = _mapping(recipe.get("custom"))
    if not custom:
        return []
    records = (
        [_text(key, CELL_MAX_LINES * CHARS_PER_LINE), _text(value, VALUE_MAX_LINES * CHARS_PER_LINE)]
        for key, value in custom.items()
    )
    columns = [
        _Column("Attribute", 55 * mm, bold=True),
        _Column("Value", CONTENT_WIDTH - 55 * mm, max_lines=VALUE_MAX_LINES),
    ]
    table = _table(
        styles,
        columns,
        records,
        total=len(custom),
        noun="custom attributes",
        max_records=CUSTOM_ROWS,
        max_lines=CUSTOM_LINES,
    )
    return [Paragraph("Custom attributes", styles.section), *table]


def _barcode(recipe_id: str) -> Code128:
    """The recipe ID as Code 128, its bars narrowed if a long ID would not fit the room."""
    barcode = Code128(recipe_id, barHeight=13 * mm, barWidth=BAR_WIDTH, humanReadable=False, quiet=False)
    if barcode.width <= BARCODE_ROOM:
        return barcode
    narrower = BAR_WIDTH * BARCODE_ROOM / barcode.width
    return Code128(recipe_id, barHeight=13 * mm, barWidth=narrower, humanReadable=False, quiet=False)


def _qr_value(value: str, fallback: str) -> str:
    """``value`` when a QR code can hold it, else ``fallback`` (the recipe ID), cut to QR_MAX_BYTES if need be.

    Whitespace is collapsed: reportlab picks the QR data mode with ``re.match("[0-9]*$")``, which accepts a
    trailing newline that the numeric encoder then cannot encode.
    """
    for candidate in (value, fallback):
        text = " ".join(_clean(candidate).split())
        if len(text.encode()) <= QR_MAX_BYTES:
            return text
    # Only an ID the ingest API would refuse gets here: its start is still the best thing to encode.
    return text.encode()[:QR_MAX_BYTES].decode(errors="ignore")


QrRun = tuple[int, int, int]
"""A horizontal run of dark modules: row, first column, length."""


@lru_cache(maxsize=1024)
def qr_modules(value: str) -> tuple[int, tuple[QrRun, ...]]:
    """The QR code of ``value`` (level M, as ``QrCodeWidget``): its module count and dark runs, row by row.

    Cached: every ticket of a recipe encodes the same recipe URL, and encoding (mask scoring above all) was a
    sixth of a ticket's CPU time.
    """
    code = QrCodeWidget(value, barLevel="M").qr
    code.make()
    runs: list[QrRun] = []
    for row, modules in enumerate(code.modules):
        column = 0
        for dark, group in groupby(bool(module) for module in modules):
            length = len(list(group))
            if dark:
                runs.append((row, column, length))
            column += length
    return code.getModuleCount(), tuple(runs)


def qr_rects(value: str, size: float, *, border: int = 1) -> list[tuple[float, float, float, float]]:
    """The dark rectangles (x, y, width, height) of the QR code of ``value`` in a ``size`` square with ``border``
    blank modules around it: exactly those ``QrCodeWidget`` would draw as one shape each."""
    count, runs = qr_modules(value)
    box = size / (count + border * 2)
    return [
        ((column + border) * box, size - (row + border + 1) * box, length * box, box) for row, column, length in runs
    ]


def _draw_qr(canvas: Canvas, value: str) -> None:
    """The QR code of ``value`` as one filled path, QR_SIZE square (not a reportlab shape per module)."""
    path = canvas.beginPath()
    for x, y, width, height in qr_rects(value, QR_SIZE):
        path.rect(x, y, width, height)
    canvas.setFillColor(colors.black)
    canvas.drawPath(path, stroke=0, fill=1)


class _Header:
    """Draws the header (repeated on every page) and the footer straight onto the canvas."""

    def __init__(
        self, recipe: Mapping[str, Any], order: TicketOrder | None, qr_value: str, banner: str | None = None
    ) -> None:
        self.banner = banner
        self.recipe_id = _short(recipe.get("id"), 128)
        self.name = _short(recipe.get("name"), 300) or "(unnamed product)"
        facts = [
            ("Style", _short(recipe.get("styleCode"), 80)),
            ("Version", _short(recipe.get("version"), 40)),
            ("Created", _created(recipe.get("created"))),
        ]
        self.facts = "    ".join(f"{label}: {value}" for label, value in facts if value)
        self.order_lines: list[str] = []
        if order is not None:
            self.order_lines.append(
                f"Order {_short(order.order_number, 200)}    Order ID: {_short(order.order_id, 200)}"
            )
            item = [f"Line item: {_short(order.item_id, 200)}"] if order.item_id else []
            if order.item_quantity is not None:
                item.append(f"Quantity: {_short(order.item_quantity, 40)}")
            if item:
                self.order_lines.append("    ".join(item))
            if order.status and order.status.lower() not in {"created", "linked", "open", "updated"}:
                self.order_lines.append(f"ORDER STATUS: {_short(order.status, 80).upper()}")
        self.qr_value = _qr_value(qr_value, self.recipe_id)
        self.barcode = _barcode(self.recipe_id)
        self._forms_drawn = False

    def __call__(self, canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        top = PAGE_HEIGHT - MARGIN
        right = PAGE_WIDTH - MARGIN
        # QR code of the recipe URL and the recipe ID's barcode: drawn once per document as forms, reused on every
        # page (a long ID is hundreds of bars).
        barcode = self.barcode
        if not self._forms_drawn:
            canvas.beginForm("relayQr")
            _draw_qr(canvas, self.qr_value)
            canvas.endForm()
            canvas.beginForm("relayBarcode")
            barcode.drawOn(canvas, 0, 0)
            canvas.endForm()
            self._forms_drawn = True
        canvas.saveState()
        canvas.translate(right - QR_SIZE, top - QR_SIZE)
        canvas.doForm("relayQr")
        canvas.restoreState()
        # Recipe ID as Code 128, left of the QR code.
        barcode_x = right - QR_SIZE - 4 * mm - barcode.width
        canvas.saveState()
        canvas.translate(barcode_x, top - 15 * mm)
        canvas.doForm("relayBarcode")
        canvas.restoreState()
        # The ID in words under the bars: smaller when long, and cut rather than drawn over the text column.
        id_size = min(10.0, max(6.0, 10.0 * BARCODE_ROOM / max(canvas_width(self.recipe_id, BOLD, 10), 1e-6)))
        id_text = _fit(self.recipe_id, BOLD, id_size, BARCODE_ROOM, 1)[0]
        id_half = canvas_width(id_text, BOLD, id_size) / 2
        id_centre = min(barcode_x + barcode.width / 2, right - QR_SIZE - 2 * mm - id_half)
        canvas.setFont(BOLD, id_size)
        canvas.drawCentredString(id_centre, top - 20 * mm, id_text)
        # Text column.
        text_width = min(barcode_x, right - QR_SIZE - 4 * mm - BARCODE_ROOM) - MARGIN - 4 * mm
        y = top - 4 * mm
        canvas.setFont(REGULAR, 7.5)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(MARGIN, y, "PICK TICKET")
        if self.banner:
            self._banner_label(canvas, MARGIN + canvas_width("PICK TICKET", REGULAR, 7.5) + 3 * mm, y)
        canvas.setFillColor(colors.black)
        y -= 5.5 * mm
        for line in _fit(self.name, BOLD, 12, text_width, 2):
            canvas.setFont(BOLD, 12)
            canvas.drawString(MARGIN, y, line)
            y -= 5 * mm
        canvas.setFont(REGULAR, 8)
        for line in _fit(self.facts, REGULAR, 8, text_width, 2):
            canvas.drawString(MARGIN, y, line)
            y -= 3.8 * mm
        canvas.setFont(BOLD, 9.5)
        for line in self.order_lines:
            # Beside the barcode's ID text the line keeps to the text column; below it, it may run to the QR code.
            beside_id = y + 3 * mm > top - 21 * mm
            width = text_width if beside_id else right - MARGIN - QR_SIZE - 4 * mm
            for part in _fit(line, BOLD, 9.5, width, 1):
                canvas.drawString(MARGIN, y, part)
                y -= 4.4 * mm
        canvas.setStrokeColor(colors.HexColor("#333333"))
        canvas.setLineWidth(0.8)
        rule = PAGE_HEIGHT - MARGIN - HEADER_HEIGHT + 2 * mm
        canvas.line(MARGIN, rule, right, rule)
        canvas.setFont(REGULAR, 7)
        canvas.setFillColor(colors.HexColor("#555555"))
        footer = _fit(f"Recipe {self.recipe_id}", REGULAR, 7, CONTENT_WIDTH - 25 * mm, 1)[0]
        canvas.drawString(MARGIN, MARGIN / 2, footer)
        canvas.drawRightString(right, MARGIN / 2, f"Page {doc.page}")
        canvas.restoreState()

    def _banner_label(self, canvas: Canvas, x: float, baseline: float) -> None:
        """The status as white bold text on a red box, beside "PICK TICKET" in the header."""
        if not self.banner:
            return
        size = 9.0
        width = canvas_width(self.banner, BOLD, size) + 4 * mm
        canvas.saveState()
        canvas.setFillColor(BANNER_COLOR)
        canvas.rect(x, baseline - 1.4 * mm, width, 4.6 * mm, stroke=0, fill=1)
        canvas.setFillColor(colors.white)
        canvas.setFont(BOLD, size)
        canvas.drawString(x + 2 * mm, baseline - 0.2 * mm, self.banner)
        canvas.restoreState()


def _stamp(canvas: Canvas, banner: str) -> None:
    """``banner`` in large translucent red letters across the page diagonal, over the content, framed."""
    angle = math.degrees(math.atan2(PAGE_HEIGHT, PAGE_WIDTH))
    room = 0.6 * math.hypot(PAGE_WIDTH, PAGE_HEIGHT)
    size = min(120.0, room / max(canvas_width(banner, BOLD, 1), 1e-6))
    text_width = canvas_width(banner, BOLD, size)
    canvas.saveState()
    canvas.translate(PAGE_WIDTH / 2, PAGE_HEIGHT / 2)
    canvas.rotate(angle)
    canvas.setFillColor(BANNER_COLOR)
    canvas.setStrokeColor(BANNER_COLOR)
    canvas.setFillAlpha(0.28)
    canvas.setStrokeAlpha(0.45)
    canvas.setLineWidth(3)
    pad = size * 0.18
    canvas.rect(
        -text_width / 2 - pad, -size * 0.28 - pad, text_width + 2 * pad, size * 0.95 + 2 * pad, stroke=1, fill=0
    )
    canvas.setFont(BOLD, size)
    canvas.drawCentredString(0, 0, banner)
    canvas.restoreState()


class _TicketDocument(SimpleDocTemplate):  # type: ignore[misc]  # reportlab is untyped
    """A ``SimpleDocTemplate`` that stamps the status banner over each finished page (above tables' fills)."""

    banner: str | None = None

    def afterPage(self) -> None:  # noqa: N802 - reportlab's hook name
        if self.banner:
            _stamp(self.canv, self.banner)


def _banner_text(banner: str | None) -> str | None:
    """Upper case, one line, bounded; ``None`` for nothing to show."""
    if banner is None:
        return None
    text = " ".join(_clean(banner[: BANNER_MAX_CHARS * 8]).split()).upper()
    if len(text) > BANNER_MAX_CHARS:
        text = text[: BANNER_MAX_CHARS - 1] + "…"
    return text or None


def render_pick_ticket(
    recipe: Mapping[str, Any],
    *,
    order: TicketOrder | None = None,
    previews: Sequence[TicketImage] = (),
    recipe_url: str | None = None,
    banner: str | None = None,
    max_preview_pixels: int = PREVIEW_MAX_PIXELS,
) -> bytes:
    """The pick ticket PDF for ``recipe`` (a seed 001 recipe dict), optionally for one order line.

    Header on every page: recipe ID as Code 128, a QR code of ``recipe_url`` (the ID when absent), product name,
    style code, version, created date and the order line. Body: components table (flows over pages with its
    headings repeated), preview thumbnails, attachments and custom attributes. ``banner`` (say ``"CANCELLED"``)
    stamps a status on the ticket: a red label in the header and large translucent letters across every page,
    so a printed copy cannot be taken for a work order. Output is byte-for-byte deterministic for the same
    inputs, so a rebuilt bundle has the same checksum.

    Renders for any recipe that passes the schema (and for odd values beyond it): long text wraps, and what
    exceeds the bounds above (cells, rows, tables, previews) is cut with a note pointing at the recipe JSON. A
    preview over ``max_preview_pixels`` (by its header) or unreadable gets a note instead of its thumbnail.
    """
    register_fonts()
    styles = _Styles()
    recipe_id = _short(recipe.get("id"), 128)
    stamp = _banner_text(banner)
    header = _Header(recipe, order, recipe_url or recipe_id, stamp)
    buffer = io.BytesIO()
    doc = _TicketDocument(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN + HEADER_HEIGHT,
        bottomMargin=MARGIN,
        title=f"Pick ticket {recipe_id}",
        author="Recipe Relay",
        subject=_short(recipe.get("name"), 200),
        invariant=True,
    )
    doc.banner = stamp
    story: list[Flowable] = [
        *_components(styles, recipe),
        *_previews(styles, previews, max_preview_pixels),
        *_attachments(styles, recipe),
        *_custom(styles, recipe),
    ]
    doc.build(story, onFirstPage=header, onLaterPages=header)
    return buffer.getvalue()
