"""Unicode fonts for the PDF reports: DejaVu Sans, as shipped inside matplotlib's wheel.

reportlab's built-in Helvetica draws Latin-1 only, so a protocol, product or goal written in Polish,
Czech, Greek or Cyrillic would print as empty boxes. DejaVu Sans covers those scripts; matplotlib
(already a pinned dependency, for the charts) ships it, so nothing is downloaded or vendored.
:func:`stylesheet` is reportlab's sample stylesheet with every Helvetica replaced by DejaVu Sans
(``<b>`` and ``<i>`` in paragraphs map to the bold and oblique faces).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

REGULAR, BOLD, OBLIQUE, BOLD_OBLIQUE = (
    "DejaVuSans",
    "DejaVuSans-Bold",
    "DejaVuSans-Oblique",
    "DejaVuSans-BoldOblique",
)
_BY_HELVETICA = {
    "Helvetica": REGULAR,
    "Helvetica-Bold": BOLD,
    "Helvetica-Oblique": OBLIQUE,
    "Helvetica-BoldOblique": BOLD_OBLIQUE,
}


@lru_cache(maxsize=1)
def register() -> None:
    """Register the four DejaVu Sans faces with reportlab (once per process)."""
    import matplotlib
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in (REGULAR, BOLD, OBLIQUE, BOLD_OBLIQUE):
        pdfmetrics.registerFont(TTFont(name, str(folder / f"{name}.ttf")))
    for bold, italic, name in (
        (0, 0, REGULAR),
        (1, 0, BOLD),
        (0, 1, OBLIQUE),
        (1, 1, BOLD_OBLIQUE),
    ):
        addMapping(REGULAR, bold, italic, name)


def stylesheet() -> Any:
    """reportlab's ``getSampleStyleSheet()`` in DejaVu Sans."""
    from reportlab.lib.styles import getSampleStyleSheet

    register()
    styles = getSampleStyleSheet()
    for name in styles.byName:
        style = styles[name]
        if getattr(style, "fontName", None) in _BY_HELVETICA:
            style.fontName = _BY_HELVETICA[style.fontName]
    return styles
