"""CSS inlining: the one place that knows premailer.

Many mail clients drop ``<style>`` blocks, so every rule that can be inlined
becomes a ``style=""`` attribute; what cannot (media queries, dark mode) is
kept in a ``<style>`` block, and blocks marked ``data-premailer="ignore"``
pass through untouched. It never fetches anything: remote and ``file://``
stylesheets are refused rather than loaded.

premailer also copies CSS ``width``/``height`` into HTML attributes, overwriting any the
template or article set (``height:auto`` becomes ``height="auto"``, which no client reads and
HTML forbids). Sizes written in the HTML are kept as written, and a copied value is kept only
when it is one an attribute can hold: whole pixels, or a percentage outside ``<img>``.
"""

from __future__ import annotations

import logging
import re

import premailer
from lxml import etree

from ..errors import NewsletterError, display_path

_EXTERNAL_STYLESHEET = re.compile(r"<link\b[^>]*rel=[\"']?stylesheet", re.IGNORECASE)
_SIZE_ATTRIBUTES = ("width", "height")
_PIXELS = re.compile(r"\d+")
_PIXELS_OR_PERCENT = re.compile(r"\d+%?")


def _written_sizes(tree: etree._ElementTree) -> dict[etree._Element, dict[str, str]]:
    """The width and height attributes the HTML itself carries, before premailer touches them."""
    return {element: {name: element.get(name) for name in _SIZE_ATTRIBUTES if element.get(name) is not None}
            for element in tree.iter() if isinstance(element.tag, str)
            and any(element.get(name) is not None for name in _SIZE_ATTRIBUTES)}


def _settle_sizes(tree: etree._ElementTree, written: dict[etree._Element, dict[str, str]]) -> None:
    """Put back the sizes the HTML wrote; drop copied ones that are not valid attribute values."""
    for element in tree.iter():
        if not isinstance(element.tag, str):
            continue
        own = written.get(element, {})
        valid = _PIXELS if element.tag == "img" else _PIXELS_OR_PERCENT
        for name in _SIZE_ATTRIBUTES:
            if name in own:
                element.set(name, own[name])
            elif element.get(name) is not None and not valid.fullmatch(element.get(name).strip()):
                del element.attrib[name]


def inline_css(html: str, *, source: str = "template") -> str:
    """Return ``html`` with its CSS inlined; ``source`` names the template for errors."""
    if _EXTERNAL_STYLESHEET.search(html):
        raise NewsletterError(
            "the template links an external stylesheet, which mail clients do not load",
            where=display_path(source), hint="put the CSS in the theme's style.css instead",
        )
    inliner = premailer.Premailer(
        allow_network=False,
        allow_loading_external_files=False,
        cssutils_logging_level=logging.CRITICAL,
        disable_validation=True,
        remove_classes=False,
        keep_style_tags=False,
        strip_important=False,
        cache_css_parsing=True,
    )
    try:
        tree = etree.fromstring(html.strip(), etree.HTMLParser()).getroottree()
        written = _written_sizes(tree)
        inliner.transform(tree.getroot())
        _settle_sizes(tree, written)
        inlined: str = etree.tostring(tree, method="html", encoding="unicode")
        return inlined
    except (premailer.premailer.ExternalNotFoundError, ValueError) as err:
        raise NewsletterError(f"CSS could not be inlined: {err}", where=display_path(source),
                              hint="check the theme's style.css") from None
