"""Render the PDF pick ticket a manufacturing worker prints: pure function, plain inputs in, PDF bytes out."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.sax.saxutils import escape

from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from reportlab.graphics import renderPDF
from reportlab.graphics.barcode.code128 import Code128
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import simpleSplit
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
THUMB_BOX = 52 * mm
THUMBS_PER_ROW = 3
# A single table cell taller than a page cannot be laid out; the full text is in the bundle's recipe JSON.
MAX_CELL_CHARS = 600
THUMB_PIXELS = 480
BANNER_MAX_CHARS = 24
BANNER_COLOR = colors.HexColor("#C62828")


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
    """A preview image to show as a thumbnail, captioned with ``label`` (usually the view code or name)."""

    label: str
    data: bytes


def _text(value: object, limit: int = MAX_CELL_CHARS) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dicts(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _created(value: object) -> str:
    text = _text(value, 64)
    try:
        moment = datetime.fromisoformat(text)  # 3.11 reads a trailing "Z"
    except ValueError:
        return text
    return moment.strftime("%Y-%m-%d %H:%M %Z").strip()


def _fit(text: str, font: str, size: float, width: float, lines: int) -> list[str]:
    """Wrap ``text`` into at most ``lines`` lines of ``width``, ending in an ellipsis when cut."""
    wrapped = simpleSplit(text, font, size, width) or [""]
    if len(wrapped) <= lines:
        return wrapped
    kept = wrapped[:lines]
    last = kept[-1]
    while last and canvas_width(last + "…", font, size) > width:
        last = last[:-1]
    kept[-1] = last + "…"
    return kept


def canvas_width(text: str, font: str, size: float) -> float:
    from reportlab.pdfbase.pdfmetrics import stringWidth

    width: float = stringWidth(text, font, size)
    return width


class _Styles:
    def __init__(self) -> None:
        self.cell = ParagraphStyle("cell", fontName=REGULAR, fontSize=7.5, leading=9.2, splitLongWords=True)
        self.cell_bold = ParagraphStyle("cellBold", parent=self.cell, fontName=BOLD)
        self.head = ParagraphStyle("head", parent=self.cell, fontName=BOLD, textColor=colors.white)
        self.section = ParagraphStyle("section", fontName=BOLD, fontSize=10.5, leading=13, spaceBefore=4, spaceAfter=3)
        self.caption = ParagraphStyle("caption", parent=self.cell, fontSize=7, alignment=1)

    def p(self, text: str, *, bold: bool = False) -> Paragraph:
        return Paragraph(escape(text).replace("\n", "<br/>"), self.cell_bold if bold else self.cell)


_TABLE_STYLE = [
    ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#333333")),
    ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
    ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, colors.HexColor("#F0F0F0")]),
    ("LEFTPADDING", (0, 0), (-1, -1), 3),
    ("RIGHTPADDING", (0, 0), (-1, -1), 3),
    ("TOPPADDING", (0, 0), (-1, -1), 2),
    ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
]


def _table(styles: _Styles, header: Sequence[str], rows: list[list[Flowable]], widths: Sequence[float]) -> Table:
    data: list[list[Flowable]] = [[Paragraph(escape(h), styles.head) for h in header], *rows]
    # repeatRows: a components list that flows onto the next page keeps its column headings.
    table = Table(data, colWidths=list(widths), repeatRows=1)
    table.setStyle(TableStyle(_TABLE_STYLE))
    return table


def _name_code(name: object, code: object) -> str:
    name_text, code_text = _text(name), _text(code)
    if name_text and code_text and name_text != code_text:
        return f"{name_text}\n[{code_text}]"
    return name_text or code_text


def _components(styles: _Styles, recipe: Mapping[str, Any]) -> list[Flowable]:
    placements = _dicts(recipe.get("components"))
    flow: list[Flowable] = [Paragraph(f"Components ({len(placements)})", styles.section)]
    if not placements:
        return [*flow, styles.p("No components.")]
    rows: list[list[Flowable]] = []
    for placement in placements:
        component = _mapping(placement.get("component"))
        options = "\n".join(
            _name_code(option.get("name"), option.get("code")) for option in _dicts(component.get("description"))
        )
        variables = "\n".join(
            f"{_text(v.get('code'), 80)} = {_text(v.get('value'))}" for v in _dicts(component.get("variables"))
        )
        rows.append(
            [
                styles.p(_name_code(placement.get("name"), placement.get("code")), bold=True),
                styles.p(_text(component.get("code"))),
                styles.p(_text(options)),
                styles.p(_text(component.get("sku"))),
                styles.p(_text(component.get("upc"))),
                styles.p(_text(component.get("quantityMultiplier"))),
                styles.p(_text(variables)),
            ]
        )
    widths = [34 * mm, 24 * mm, 38 * mm, 22 * mm, 25 * mm, 10 * mm, CONTENT_WIDTH - 153 * mm]
    header = ["Placement", "Component", "Options", "SKU", "UPC", "Qty", "Variables"]
    return [*flow, _table(styles, header, rows, widths)]


def _thumbnail(data: bytes) -> Image | None:
    """A small JPEG copy of a preview (transparent areas on white), or ``None`` when unreadable."""
    try:
        with PILImage.open(io.BytesIO(data)) as source:
            source.thumbnail((THUMB_PIXELS, THUMB_PIXELS))
            image = source.convert("RGBA")
    except (OSError, UnidentifiedImageError, ValueError, PILImage.DecompressionBombError):
        return None
    flat = PILImage.new("RGB", image.size, "white")
    flat.paste(image, mask=image.getchannel("A"))
    buffer = io.BytesIO()
    flat.save(buffer, format="JPEG", quality=85)
    buffer.seek(0)
    scale = min(THUMB_BOX / flat.width, THUMB_BOX / flat.height)
    return Image(buffer, width=flat.width * scale, height=flat.height * scale)


def _previews(styles: _Styles, previews: Sequence[TicketImage]) -> list[Flowable]:
    if not previews:
        return []
    cells: list[list[Flowable]] = []
    for preview in previews:
        image = _thumbnail(preview.data)
        caption = Paragraph(escape(_text(preview.label, 120)), styles.caption)
        body: Flowable = image if image is not None else styles.p("(preview unreadable)")
        cells.append([body, Spacer(1, 1 * mm), caption])
    rows: list[list[list[Flowable] | str]] = []
    for start in range(0, len(cells), THUMBS_PER_ROW):
        row: list[list[Flowable] | str] = list(cells[start : start + THUMBS_PER_ROW])
        rows.append(row + [""] * (THUMBS_PER_ROW - len(row)))
    grid = Table(rows, colWidths=[CONTENT_WIDTH / THUMBS_PER_ROW] * THUMBS_PER_ROW)
    grid.setStyle(TableStyle([("ALIGN", (0, 0), (-1, -1), "CENTER"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
    return [Paragraph(f"Previews ({len(previews)})", styles.section), grid]


def _attachments(styles: _Styles, recipe: Mapping[str, Any]) -> list[Flowable]:
    attachments = _dicts(recipe.get("attachments"))
    if not attachments:
        return []
    rows = [
        [
            styles.p(_name_code(a.get("name"), a.get("code")), bold=True),
            styles.p(_text(a.get("type"))),
            styles.p(_text(a.get("usage"))),
            styles.p(_text(a.get("placement"))),
            styles.p(_text(a.get("notes"))),
        ]
        for a in attachments
    ]
    widths = [46 * mm, 30 * mm, 30 * mm, 30 * mm, CONTENT_WIDTH - 136 * mm]
    table = _table(styles, ["Attachment", "Type", "Usage", "Placement", "Notes"], rows, widths)
    return [Paragraph(f"Attachments ({len(attachments)})", styles.section), table]


def _custom(styles: _Styles, recipe: Mapping[str, Any]) -> list[Flowable]:
    custom = _mapping(recipe.get("custom"))
    if not custom:
        return []
    rows = [[styles.p(_text(key, 200), bold=True), styles.p(_text(value))] for key, value in custom.items()]
    table = _table(styles, ["Attribute", "Value"], rows, [55 * mm, CONTENT_WIDTH - 55 * mm])
    return [Paragraph("Custom attributes", styles.section), table]


class _Header:
    """Draws the header (repeated on every page) and the footer straight onto the canvas."""

    def __init__(
        self, recipe: Mapping[str, Any], order: TicketOrder | None, qr_value: str, banner: str | None = None
    ) -> None:
        self.banner = banner
        self.recipe_id = _text(recipe.get("id"), 128)
        self.name = _text(recipe.get("name"), 300) or "(unnamed product)"
        facts = [
            ("Style", _text(recipe.get("styleCode"), 80)),
            ("Version", _text(recipe.get("version"), 40)),
            ("Created", _created(recipe.get("created"))),
        ]
        self.facts = "    ".join(f"{label}: {value}" for label, value in facts if value)
        self.order_lines: list[str] = []
        if order is not None:
            self.order_lines.append(f"Order {order.order_number}    Order ID: {order.order_id}")
            item = [f"Line item: {order.item_id}"] if order.item_id else []
            if order.item_quantity is not None:
                item.append(f"Quantity: {order.item_quantity}")
            if item:
                self.order_lines.append("    ".join(item))
            if order.status and order.status.lower() not in {"created", "linked", "open", "updated"}:
                self.order_lines.append(f"ORDER STATUS: {order.status.upper()}")
        self.qr_value = qr_value
        self._qr_drawn = False

    def __call__(self, canvas: Canvas, doc: SimpleDocTemplate) -> None:
        canvas.saveState()
        top = PAGE_HEIGHT - MARGIN
        right = PAGE_WIDTH - MARGIN
        # QR code of the recipe URL, top right: encoded once per document as a form, reused on every page.
        if not self._qr_drawn:
            canvas.beginForm("relayQr")
            qr = QrCodeWidget(self.qr_value, barLevel="M", barBorder=1, barWidth=QR_SIZE, barHeight=QR_SIZE)
            drawing = Drawing(QR_SIZE, QR_SIZE)
            drawing.add(qr)
            renderPDF.draw(drawing, canvas, 0, 0)
            canvas.endForm()
            self._qr_drawn = True
        canvas.saveState()
        canvas.translate(right - QR_SIZE, top - QR_SIZE)
        canvas.doForm("relayQr")
        canvas.restoreState()
        # Recipe ID as Code 128, left of the QR code; bars narrowed if a long ID would not fit.
        barcode_room = 72 * mm
        bar_width = 0.33 * mm
        barcode = Code128(self.recipe_id, barHeight=13 * mm, barWidth=bar_width, humanReadable=False, quiet=False)
        if barcode.width > barcode_room:
            barcode = Code128(
                self.recipe_id,
                barHeight=13 * mm,
                barWidth=bar_width * barcode_room / barcode.width,
                humanReadable=False,
                quiet=False,
            )
        barcode_x = right - QR_SIZE - 4 * mm - barcode.width
        barcode.drawOn(canvas, barcode_x, top - 15 * mm)
        canvas.setFont(BOLD, 10)
        canvas.drawCentredString(barcode_x + barcode.width / 2, top - 20 * mm, self.recipe_id)
        # Text column.
        text_width = min(barcode_x, right - QR_SIZE - 4 * mm - barcode_room) - MARGIN - 4 * mm
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
            for part in _fit(line, BOLD, 9.5, right - MARGIN - QR_SIZE - 4 * mm, 1):
                canvas.drawString(MARGIN, y, part)
                y -= 4.4 * mm
        canvas.setStrokeColor(colors.HexColor("#333333"))
        canvas.setLineWidth(0.8)
        rule = PAGE_HEIGHT - MARGIN - HEADER_HEIGHT + 2 * mm
        canvas.line(MARGIN, rule, right, rule)
        canvas.setFont(REGULAR, 7)
        canvas.setFillColor(colors.HexColor("#555555"))
        canvas.drawString(MARGIN, MARGIN / 2, f"Recipe {self.recipe_id}")
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
    text = " ".join(banner.split()).upper()
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
) -> bytes:
    """The pick ticket PDF for ``recipe`` (a seed 001 recipe dict), optionally for one order line.

    Header on every page: recipe ID as Code 128, a QR code of ``recipe_url`` (the ID when absent), product name,
    style code, version, created date and the order line. Body: components table (flows over pages with its
    headings repeated), preview thumbnails, attachments and custom attributes. ``banner`` (say ``"CANCELLED"``)
    stamps a status on the ticket: a red label in the header and large translucent letters across every page,
    so a printed copy cannot be taken for a work order. Output is byte-for-byte deterministic for the same
    inputs, so a rebuilt bundle has the same checksum.
    """
    register_fonts()
    styles = _Styles()
    recipe_id = _text(recipe.get("id"), 128)
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
        subject=_text(recipe.get("name"), 200),
        invariant=True,
    )
    doc.banner = stamp
    story: list[Flowable] = [
        *_components(styles, recipe),
        *_previews(styles, previews),
        *_attachments(styles, recipe),
        *_custom(styles, recipe),
    ]
    doc.build(story, onFirstPage=header, onLaterPages=header)
    return buffer.getvalue()
