"""A saved web page to Markdown: the one place that knows trafilatura.

trafilatura finds the main article of a page (title, author, body with
headings, lists, links and images) and leaves navigation, ads, sidebars,
comments and footers behind; it also decodes the page by its declared
charset. The page's own address (``<link rel=canonical>`` or ``og:url``) is
returned so relative links can be resolved when the user gave no ``--url``. The
publication date comes from the page's markup (``article:published_time``, ``<time>``,
a byline) through htmldate's quick search only: its extensive search guesses from any
year on the page (a footer's "© 2024" becomes 2024-01-01), and no date is better than a
wrong one.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import trafilatura
from trafilatura.utils import decode_file

from ..errors import NewsletterError


@dataclass(frozen=True)
class Page:
    """What was found in a web page; ``body`` is Markdown, not yet made safe."""

    title: str
    author: str
    body: str
    url: str
    summary: str
    date: dt.date | None = None


def extract(data: bytes, source: Path) -> Page:
    """The main article of an HTML page, or an error saying what could not be found."""
    page = decode_file(data)
    meta = trafilatura.extract_metadata(page, extensive=False)
    body = trafilatura.extract(
        page, output_format="markdown", include_links=True, include_images=True, include_formatting=True,
        include_tables=True, include_comments=False,
    )
    title = (meta.title or "").strip() if meta else ""
    if not title:
        raise NewsletterError(
            "found no title in the page (no <title>, <h1> or og:title)", where=source,
            hint="save the article as Markdown with 'title:' front matter and import that file",
        )
    if not body or not body.strip():
        raise NewsletterError(
            "found no article text in the page", where=source,
            hint="check that this is the article's page, or save its text as .txt and import that",
        )
    url = (meta.url or "").strip()
    return Page(
        title=title,
        author=_author(meta.author or ""),
        body=_without_title_heading(body, title),
        url=url if re.match(r"(?i)https?://", url) else "",
        summary=(meta.description or "").strip(),
        date=_date(meta.date or ""),
    )


def _author(found: str) -> str:
    """trafilatura's author without what a byline put beside the name: "Marta Oyelaran; March 3"
    (from "By Marta Oyelaran | March 3, 2026") is Marta Oyelaran. Names hold no digits."""
    names = [name.strip() for name in found.split(";")]
    return "; ".join(name for name in names if name and not any(ch.isdigit() for ch in name))


def _date(found: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(found.strip()[:10])
    except ValueError:
        return None


def _without_title_heading(body: str, title: str) -> str:
    """The email prints the title itself, so a first heading repeating it goes."""
    lines = body.strip().split("\n")
    first = re.sub(r"^#{1,6}\s+", "", lines[0]).strip()
    if lines[0].startswith("#") and first.casefold() == title.casefold():
        return "\n".join(lines[1:])
    return body
