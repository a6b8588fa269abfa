"""Markdown to safe email HTML: article text is data and can never inject markup.

Markdown is parsed with markdown-it-py (CommonMark plus tables and
strikethrough); any raw HTML it contains is cleaned by nh3's allowlist, so
``<script>``, ``on*`` attributes and ``javascript:`` URLs never reach the
email. Relative links and images are made absolute against the issue's web
address, because a mail client has no base to resolve them against. Images the
caller can measure (files in the issue folder, see images.py) get ``width`` and
``height`` attributes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.token import Token

if TYPE_CHECKING:
    from markdown_it.renderer import RendererHTML
    from markdown_it.utils import EnvType, OptionsDict

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "del", "em", "figcaption", "figure",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small",
    "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align", "colspan", "rowspan", "style"},
    "th": {"align", "colspan", "rowspan", "style"},
    "ol": {"start"},
    "abbr": {"title"},
}
URL_SCHEMES = {"http", "https", "mailto"}
ImageSize = Callable[[str], "tuple[int, int] | None"]  # src as written -> (width, height) to show it at
# The one style a table cell keeps: the alignment a Markdown table's ``|---:|`` asks for.
_CELL_ALIGN = re.compile(r"(?:^|;)\s*text-align\s*:\s*(left|right|center)\s*(?:;|$)", re.IGNORECASE)


def _align_cells(state: StateCore) -> None:
    """Give each aligned table cell an ``align`` attribute beside markdown-it's ``text-align`` style.

    Outlook for Windows and older webmail honour ``align`` more reliably than CSS; the style stays
    too, so that the inliner's merge (where it wins over the theme's own ``text-align``) and the
    clients that read CSS agree.
    """
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            align = _CELL_ALIGN.search(str(token.attrGet("style") or ""))
            if align:
                token.attrSet("align", align[1].lower())


@lru_cache(maxsize=1)
def parser() -> MarkdownIt:
    """The one Markdown dialect of the project (CommonMark, tables, strikethrough), shared by both parts."""
    md = MarkdownIt("commonmark", {"html": True, "typographer": False}).enable(["table", "strikethrough"])
    md.core.ruler.push("align_cells", _align_cells)
    md.add_render_rule("image", _render_image)
    return md


def _render_image(renderer: RendererHTML, tokens: list[Token], idx: int, options: OptionsDict, env: EnvType) -> str:
    """An image with the size ``env["image_size"]`` gives it (if any), then the usual ``<img>``."""
    token = tokens[idx]
    image_size: ImageSize | None = env.get("image_size")
    if image_size is not None and token.attrGet("width") is None:
        size = image_size(str(token.attrGet("src") or ""))
        if size is not None:
            token.attrSet("width", str(size[0]))
            token.attrSet("height", str(size[1]))
    return renderer.image(tokens, idx, options, env)


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


def to_html(markdown: str, base: str = "", tokens: list[Token] | None = None,
            image_size: ImageSize | None = None) -> str:
    """Render Markdown (or its ``tokens`` from parse) to sanitized HTML with URLs made absolute
    against ``base``; ``image_size`` measures images by their ``src`` as written."""
    md = parser()
    if tokens is None:
        tokens = md.parse(markdown)
    raw = md.renderer.render(tokens, md.options, {"image_size": image_size})

    def resolve(tag: str, attribute: str, value: str) -> str | None:
        if attribute in ("href", "src"):
            return absolute_url(value, base)
        if attribute == "style":  # only a cell's alignment; any other CSS is dropped
            align = _CELL_ALIGN.search(value)
            return f"text-align:{align[1].lower()}" if align else None
        if attribute in ("width", "height"):  # an <img> size is whole pixels; "auto" or "50%" is invalid HTML
            return value.strip() if value.strip().isdigit() else None
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
