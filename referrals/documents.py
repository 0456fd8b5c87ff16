"""What every PDF the service prints shares: an embedded Unicode font, the language and a title.

reportlab's standard fonts (Helvetica) cover Latin-1 only, so "Łucja Wójcik-Şahin Ελένη" would
print with boxes. DejaVu Sans (shipped in `referrals/data/fonts` under its licence, which allows
redistribution) covers Latin, Greek and Cyrillic; it is embedded, subset, in every PDF. Builders
take their fonts, sample styles and document template from here and nowhere else.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from reportlab.lib.styles import StyleSheet1, getSampleStyleSheet
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import SimpleDocTemplate
from reportlab.platypus.tables import CellStyle

FONTS_DIR = Path(__file__).resolve().parent / "data" / "fonts"
FONT = "DejaVuSans"
FONT_BOLD = "DejaVuSans-Bold"
LANGUAGE = "en-GB"

# reportlab's built-in faces and the embedded ones that replace them. There is no oblique face:
# nothing is set in italics, and <i> falls back to the upright font rather than to Helvetica.
_REPLACEMENTS = {
    "Helvetica": FONT,
    "Helvetica-Oblique": FONT,
    "Helvetica-Bold": FONT_BOLD,
    "Helvetica-BoldOblique": FONT_BOLD,
    "Times-Roman": FONT,
    "Times-Italic": FONT,
    "Times-Bold": FONT_BOLD,
    "Times-BoldItalic": FONT_BOLD,
}


@cache
def register_fonts() -> None:
    """Register the embedded font family with reportlab (once per process)."""
    pdfmetrics.registerFont(TTFont(FONT, str(FONTS_DIR / "DejaVuSans.ttf")))
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(FONTS_DIR / "DejaVuSans-Bold.ttf")))
    pdfmetrics.registerFontFamily(
        FONT, normal=FONT, bold=FONT_BOLD, italic=FONT, boldItalic=FONT_BOLD
    )
    # A table cell's font defaults to Helvetica, fixed when reportlab is imported; every table
    # the service prints is in the embedded font, so the default is set here, once, for all.
    CellStyle.fontname = FONT


def sample_styles() -> StyleSheet1:
    """reportlab's sample style sheet, set in the embedded font."""
    register_fonts()
    styles = getSampleStyleSheet()
    for style in styles.byName.values():
        font = getattr(style, "fontName", None)
        if font in _REPLACEMENTS:
            style.fontName = _REPLACEMENTS[font]
    return styles


class Document(SimpleDocTemplate):
    """A PDF in British English with a title, in the embedded font (tables included)."""

    def __init__(self, filename: Any, *, title: str, **kwargs: Any) -> None:
        register_fonts()
        kwargs.setdefault("lang", LANGUAGE)
        kwargs.setdefault("initialFontName", FONT)  # else every page names Helvetica too
        kwargs.setdefault("displayDocTitle", True)
        super().__init__(filename, title=title, **kwargs)
