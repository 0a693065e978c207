"""Register a Unicode TTF (DejaVu Sans) so accents, Cyrillic and Greek render, not as empty boxes.

DejaVu Sans (free licence, ``fonts/LICENSE_DEJAVU``) ships inside this package so every install renders the same.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont

REGULAR = "RelaySans"
BOLD = "RelaySans-Bold"
FONT_DIR_ENV = "RELAY_PICKTICKET_FONT_DIR"

_PACKAGED = Path(__file__).parent / "fonts"
# Debian/Ubuntu `fonts-dejavu-core`, a fallback.
_SYSTEM_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
_lock = threading.Lock()


class FontNotFoundError(RuntimeError):
    """No DejaVu Sans TTF was found; the ticket cannot render non-ASCII text."""


def _candidate_dirs() -> list[Path]:
    dirs: list[Path] = []
    if override := os.environ.get(FONT_DIR_ENV):
        dirs.append(Path(override))
    dirs.append(_PACKAGED)
    dirs.extend(_SYSTEM_DIRS)
    return dirs


def font_files() -> tuple[Path, Path]:
    """Paths of the regular and bold DejaVu Sans TTF files."""
    for directory in _candidate_dirs():
        regular, bold = directory / "DejaVuSans.ttf", directory / "DejaVuSans-Bold.ttf"
        if regular.is_file() and bold.is_file():
            return regular, bold
    searched = ", ".join(str(d) for d in _candidate_dirs())
    raise FontNotFoundError(f"DejaVuSans.ttf not found (searched {searched}); set {FONT_DIR_ENV}")


def register_fonts() -> None:
    """Register the fonts with reportlab once per process (thread-safe: tickets render in worker threads)."""
    with _lock:
        if REGULAR in pdfmetrics.getRegisteredFontNames():
            return
        regular, bold = font_files()
        pdfmetrics.registerFont(TTFont(REGULAR, str(regular)))
        pdfmetrics.registerFont(TTFont(BOLD, str(bold)))
        pdfmetrics.registerFontFamily(REGULAR, normal=REGULAR, bold=BOLD, italic=REGULAR, boldItalic=BOLD)
