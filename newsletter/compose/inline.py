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

The result is kept in the cache folder's ``inline/`` (cache_folder.py), keyed by the HTML, this
module's code and the installed premailer, cssutils and lxml: ``build``, ``check``, ``preview`` and
``send`` inline the same issue again and again, and importing premailer (with requests and cssutils)
and running it is most of a build. An edit to the issue or its theme is a new key; the folder keeps
the most recently used results only, and is safe to delete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..cache_folder import cache_folder, installed_stamp
from ..errors import NewsletterError, display_path

if TYPE_CHECKING:
    from lxml import etree

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
    path = cache_folder("inline") / f"{_cache_key(html)}.html"
    try:
        inlined = path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        pass
    else:
        try:
            os.utime(path)  # recently used: kept when the folder is pruned
        except OSError:
            pass
        return inlined
    inlined = _inline(html, source)
    _remember(path, inlined)
    return inlined


KEPT_RESULTS = 64  # inline/ keeps this many results, the most recently used


def _cache_key(html: str) -> str:
    """What the inlined HTML depends on: the HTML, this module's code, and the installed libraries that
    inline it (their files' times, found without importing them, which is what the cache saves)."""
    parts = [Path(__file__).read_bytes()]
    parts += [installed_stamp(name).encode() for name in ("premailer", "cssutils", "lxml")]
    parts.append(html.encode("utf-8", "surrogatepass"))
    return hashlib.sha256(b"\0".join(parts)).hexdigest()


def _remember(path: Path, inlined: str) -> None:
    """Keep ``inlined`` at ``path`` (written whole, then renamed), and the folder at KEPT_RESULTS files."""
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(inlined, encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a read-only or full cache only costs speed
        return
    try:
        kept = sorted(path.parent.glob("*.html"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in kept[KEPT_RESULTS:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass  # another process pruned it meanwhile


def _inline(html: str, source: str) -> str:
    """premailer's inlining, with the sizes the HTML wrote kept as written."""
    import premailer  # here, not at the top: a cached result needs neither premailer nor its imports
    from lxml import etree

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
