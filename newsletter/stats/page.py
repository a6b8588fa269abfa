"""The stats page written to a file (``stats --html``), or kept for the preview server and the archive."""

from __future__ import annotations

from pathlib import Path

from ..errors import NewsletterError, display_path
from .figures import IssueFigures
from .report import html_page
from .sources import Overview


def page_title(data: IssueFigures | Overview) -> str:
    return f"Stats: {data.folder}" if isinstance(data, IssueFigures) else "Stats: the last issues"


def write_page(data: IssueFigures | Overview, path: Path) -> str:
    """Write the page; returns the path as the writer would type it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html_page(data, page_title(data)), encoding="utf-8")
    except OSError as err:
        raise NewsletterError(f"cannot write the stats page: {err.strerror}", where=display_path(path)) from None
    return display_path(path)
