"""The ticket draws its QR code from cached module runs as one path: the same dark modules, at the same places, as
reportlab's ``QrCodeWidget`` draws one shape at a time."""

from __future__ import annotations

import pytest
from reportlab.graphics.barcode.qr import QrCodeWidget
from reportlab.graphics.shapes import Rect

from relay_pickticket.ticket import QR_SIZE, qr_modules, qr_rects

VALUES = [
    "http://localhost:8080/api/v2/recipe/999-demo1.json",
    "999-7f3c2a",
    "1234567890",
    "https://example.com/r/Gravur Ü Гравировка 雕刻",
    "x" * 250,
]


def _widget_rects(value: str) -> list[tuple[float, float, float, float]]:
    widget = QrCodeWidget(value, barLevel="M", barBorder=1, barWidth=QR_SIZE, barHeight=QR_SIZE)
    rects = [shape for shape in widget.draw().contents if isinstance(shape, Rect) and shape.fillColor is not None]
    return [(rect.x, rect.y, rect.width, rect.height) for rect in rects]


@pytest.mark.parametrize("value", VALUES, ids=lambda value: value[:20])
def test_the_cached_runs_draw_what_the_widget_draws(value: str) -> None:
    expected = _widget_rects(value)
    drawn = qr_rects(value, QR_SIZE)

    assert len(drawn) == len(expected) > 20
    for mine, theirs in zip(drawn, expected, strict=True):
        assert mine == pytest.approx(theirs)


def test_a_value_is_encoded_once() -> None:
    qr_modules.cache_clear()
    qr_rects(VALUES[0], QR_SIZE)
    qr_rects(VALUES[0], QR_SIZE / 2)

    assert qr_modules.cache_info().misses == 1
    assert qr_modules.cache_info().hits == 1
