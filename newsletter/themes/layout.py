"""What the code needs to know of a theme's layout: the width of its content column and the
screen width below which its phone layout applies.

The content column is declared in the theme's ``theme.toml`` (``[layout] content_width``),
because images are sized to it before the template runs; the phone breakpoint is read from the
theme's own CSS (its ``@media (max-width: …)`` rule), so it cannot disagree with what the
stylesheet actually does. A theme folder without one of these files is a theme built on the
default one (as docs/themes.md shows, and as base.html.j2 includes the default's style.css
then), so the shipped default theme's file answers for it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from ..errors import NewsletterError

LAYOUT_FILE = "theme.toml"
STYLESHEET = "style.css"
FALLBACK_THEME = Path(__file__).resolve().parent / "default"
# When neither the theme nor the default theme says: the 600 px column nearly every email design uses.
DEFAULT_CONTENT_WIDTH = 600


def _own_or_default(theme_dir: Path, name: str) -> Path:
    own = theme_dir / name
    return own if own.is_file() else FALLBACK_THEME / name
_MAX_WIDTH_QUERY = re.compile(r"@media[^{]*\(\s*max-width\s*:\s*(\d+(?:\.\d+)?)px\s*\)", re.IGNORECASE)


def content_width(theme_dir: Path) -> int:
    """The widest an image in an article can be shown, in CSS pixels (``[layout] content_width``)."""
    path = _own_or_default(theme_dir, LAYOUT_FILE)
    if not path.is_file():
        return DEFAULT_CONTENT_WIDTH
    try:
        layout = tomllib.loads(path.read_text(encoding="utf-8")).get("layout", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise NewsletterError(f"{LAYOUT_FILE} does not parse: {err}", where=path,
                              hint="fix the TOML syntax") from None
    width = layout.get("content_width", DEFAULT_CONTENT_WIDTH) if isinstance(layout, dict) else None
    if not isinstance(width, int) or isinstance(width, bool) or not 1 <= width <= 4000:
        raise NewsletterError("[layout] content_width must be a whole number of pixels, like 536",
                              where=path, hint="set it to the width of the theme's article column "
                                               "(the container minus its padding)")
    return width


def phone_breakpoint(theme_dir: Path) -> int | None:
    """The largest ``max-width`` of the theme's media queries: at and below it, the phone layout.

    None when the stylesheet has no such query (a theme with one layout for every width).
    """
    path = _own_or_default(theme_dir, STYLESHEET)
    try:
        css = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    widths = [float(match[1]) for match in _MAX_WIDTH_QUERY.finditer(css)]
    return int(max(widths)) if widths else None
