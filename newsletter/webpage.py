"""A saved web page to Markdown: the one place that knows trafilatura.

trafilatura finds the main article of a page (title, author, body with
headings, lists, links and images) and leaves navigation, ads, sidebars,
comments and footers behind; it also decodes the page by its declared
charset. The page's own address (``<link rel=canonical>`` or ``og:url``) is
returned so relative links can be resolved when the user gave no ``--url``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import trafilatura
from trafilatura.utils import decode_file

from .errors import NewsletterError, display_path


@dataclass(frozen=True)
class Page:
    """What was found in a web page; ``body`` is Markdown, not yet made safe."""

    title: str
    author: str
    body: str
    url: str
    summary: str


def extract(data: bytes, source: Path) -> Page:
    """The main article of an HTML page, or an error saying what could not be found."""
    page = decode_file(data)
    meta = trafilatura.extract_metadata(page)
    body = trafilatura.extract(
        page, output_format="markdown", include_links=True, include_images=True, include_formatting=True,
        include_tables=True, include_comments=False,
    )
    title = (meta.title or "").strip() if meta else ""
    if not title:
        raise NewsletterError(
            "found no title in the page (no <title>, <h1> or og:title)", where=display_path(source),
            hint="save the article as Markdown with 'title:' front matter and import that file",
        )
    if not body or not body.strip():
        raise NewsletterError(
            "found no article text in the page", where=display_path(source),
            hint="check that this is the article's page, or save its text as .txt and import that",
        )
    url = (meta.url or "").strip()
    return Page(
        title=title,
        author=(meta.author or "").strip(),
        body=_without_title_heading(body, title),
        url=url if re.match(r"(?i)https?://", url) else "",
        summary=(meta.description or "").strip(),
    )


def _without_title_heading(body: str, title: str) -> str:
    """The email prints the title itself, so a first heading repeating it goes."""
    lines = body.strip().split("\n")
    first = re.sub(r"^#{1,6}\s+", "", lines[0]).strip()
    if lines[0].startswith("#") and first.casefold() == title.casefold():
        return "\n".join(lines[1:])
    return body
