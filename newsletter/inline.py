"""CSS inlining: the one place that knows premailer.

Many mail clients drop ``<style>`` blocks, so every rule that can be inlined
becomes a ``style=""`` attribute; what cannot (media queries, dark mode) is
kept in a ``<style>`` block, and blocks marked ``data-premailer="ignore"``
pass through untouched. It never fetches anything: remote and ``file://``
stylesheets are refused rather than loaded.
"""

from __future__ import annotations

import logging
import re

import premailer

from .errors import NewsletterError, display_path

_EXTERNAL_STYLESHEET = re.compile(r"<link\b[^>]*rel=[\"']?stylesheet", re.IGNORECASE)


def inline_css(html: str, *, source: str = "template") -> str:
    """Return ``html`` with its CSS inlined; ``source`` names the template for errors."""
    if _EXTERNAL_STYLESHEET.search(html):
        raise NewsletterError(
            "the template links an external stylesheet, which mail clients do not load",
            where=display_path(source), hint="put the CSS in the theme's style.css instead",
        )
    inliner = premailer.Premailer(
        html,
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
        return inliner.transform(pretty_print=False)
    except (premailer.premailer.ExternalNotFoundError, ValueError) as err:
        raise NewsletterError(f"CSS could not be inlined: {err}", where=display_path(source),
                              hint="check the theme's style.css") from None
