"""Markdown to safe email HTML: article text is data and can never inject markup.

Markdown is parsed with markdown-it-py (CommonMark plus tables and
strikethrough); any raw HTML it contains is cleaned by nh3's allowlist, so
``<script>``, ``on*`` attributes and ``javascript:`` URLs never reach the
email. Relative links and images are made absolute against the issue's web
address, because a mail client has no base to resolve them against.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "del", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "ol": {"start"},
    "abbr": {"title"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def parser() -> MarkdownIt:
    """The one Markdown dialect of the project (CommonMark, tables, strikethrough), shared by both parts."""
    return MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(["table", "strikethrough"])


def parse(markdown: str) -> list[Token]:
    """Parse once; the tokens serve both the HTML (to_html) and the plain-text part."""
    return parser().parse(markdown)


def is_absolute(url: str) -> bool:
    """True for URLs a mail client can open without a base (http, https, mailto, or a fragment)."""
    scheme = urlsplit(url).scheme.lower()
    return bool(scheme) or url.startswith("#")


def absolute_url(url: str, base: str) -> str:
    """``url`` resolved against ``base``; unchanged when it is absolute or there is no base."""
    url = url.strip()
    if not url or is_absolute(url) or not base:
        return url
    return urljoin(base, url)


def to_html(markdown: str, base: str = "", tokens: list[Token] | None = None) -> str:
    """Render Markdown (or its ``tokens`` from parse) to sanitized HTML with URLs made absolute against ``base``."""
    md = parser()
    if tokens is None:
        tokens = md.parse(markdown)
    raw = md.renderer.render(tokens, md.options, {})

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute in ("href", "src"):
            return absolute_url(value, base)
        return value

    return nh3.clean(
        raw,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        attribute_filter=resolve,
        link_rel=None,
        strip_comments=True,
    )
