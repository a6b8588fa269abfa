"""Accessibility: can every reader, including one using a screen reader or dark mode, read the email?

Checks the built email as the sample recipient receives it: the document's
language and direction, its title, layout tables marked as presentation,
meaningful alt text, link text that says where it goes, headings in order,
and text contrast (WCAG AA: 4.5:1, or 3:1 for large text) in light mode
(inlined ``style`` colours against the nearest background, any CSS Color 4 colour: colors.py) and in dark mode
(the theme's ``@media (prefers-color-scheme: dark)`` rules applied on top).

Missing alt text is an error reported by the basic checks (basic.py); the
findings here are warnings, because the email still reaches and can be read
by most readers, just not all of them as well as it should.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import lxml.etree
import lxml.html
from cssselect import SelectorError

from .colors import Color, blend, color_in, contrast_ratio, hex_of, parse_color
from .framework import ARTICLES, THEME, WARNING, CheckContext, Finding, Place
from .stylesheet import parse_declarations, parse_stylesheet, selectors_of

AA_NORMAL = 4.5
AA_LARGE = 3.0
VAGUE_LINK_TEXT = {"click here", "click", "here", "read more", "more", "link", "this link", "this",
                   "learn more", "more info", "go", "continue", "details"}
_INVISIBLE = re.compile(r"[\s\u00a0\u034f\u200b-\u200d\u2060\ufeff]+")
_LANG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_FILE_NAME_ALT = re.compile(r"\.(png|jpe?g|gif|webp|svg|avif|bmp|tiff?)$|^(img|dsc|image|photo)[-_ ]?\d+$",
                            re.IGNORECASE)
_GENERIC_ALT = {"image", "img", "photo", "picture", "graphic", "logo", "banner", "icon"}
_DEFAULT_TEXT = (0.0, 0.0, 0.0, 1.0)
_DEFAULT_LINK = (0.0, 0.0, 238 / 255, 1.0)  # browsers' and mail clients' unvisited link blue, #0000ee
_DEFAULT_BACKGROUND = (1.0, 1.0, 1.0, 1.0)
_BOLD_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "b", "strong", "th"}


# --- styles per element ------------------------------------------------------

class Styles:
    """The colours and fonts each element gets: inline styles, presentational attributes, and (for dark
    mode) the theme's dark rules, which win over inline styles when marked !important."""

    def __init__(self, document: lxml.html.HtmlElement, dark: bool = False):
        self.own: dict[lxml.html.HtmlElement, dict[str, str]] = {}
        for element in document.iter():
            if not isinstance(element.tag, str):
                continue
            declared = {d.name: d.value for d in parse_declarations(element.get("style") or "")}
            if element.get("bgcolor") and "background-color" not in declared and "background" not in declared:
                declared["background-color"] = element.get("bgcolor")
            if element.tag == "font" and element.get("color") and "color" not in declared:
                declared["color"] = element.get("color")
            self.own[element] = declared
        if dark:
            self._apply_dark_rules(document)

    def _apply_dark_rules(self, document: lxml.html.HtmlElement) -> None:
        inline = {el: dict(values) for el, values in self.own.items()}
        for style in document.iter("style"):
            for rule in parse_stylesheet(style.text or "").rules:
                if not any(is_dark_media(at) for at in rule.at_rules):
                    continue
                for selector in selectors_of(rule):
                    try:
                        matched = document.cssselect(selector)
                    except (SelectorError, lxml.etree.XPathError):
                        continue
                    for element in matched:
                        for declaration in rule.declarations:
                            if declaration.name not in ("color", "background-color", "background"):
                                continue
                            if declaration.name in inline.get(element, {}) and not declaration.important:
                                continue
                            self.own.setdefault(element, {})[declaration.name] = declaration.value

    def hidden(self, element: lxml.html.HtmlElement) -> bool:
        for node in (element, *element.iterancestors()):
            values = self.own.get(node, {})
            if values.get("display", "").strip().lower() == "none" or \
                    values.get("visibility", "").strip().lower() == "hidden":
                return True
        return False

    def color(self, element: lxml.html.HtmlElement) -> tuple[Color, str]:
        """The text colour and the value as written (empty when it is a default)."""
        for node in (element, *element.iterancestors()):
            value = self.own.get(node, {}).get("color")
            color = parse_color(value) if value else None
            if color is not None:
                return color, value or ""
            if node.tag == "a":  # links do not inherit the text colour: mail clients make them blue
                return _DEFAULT_LINK, ""
        return _DEFAULT_TEXT, ""

    def background(self, element: lxml.html.HtmlElement) -> tuple[Color, str]:
        layers: list[Color] = []
        written = ""
        for node in (element, *element.iterancestors()):
            values = self.own.get(node, {})
            value = values.get("background-color") or values.get("background")
            color = color_in(value) if value else None
            if color is None or color[3] == 0:
                continue
            written = written or value or ""
            layers.append(color)
            if color[3] >= 1:
                break
        result = _DEFAULT_BACKGROUND
        for layer in reversed(layers):
            result = blend(layer, result)
        return result, written

    def is_large(self, element: lxml.html.HtmlElement) -> bool:
        """WCAG large text: at least 24px, or 18.66px (14pt) and bold."""
        size = None
        bold = False
        weight_known = False
        for node in (element, *element.iterancestors()):
            values = self.own.get(node, {})
            if size is None and values.get("font-size"):
                size = _pixels(values["font-size"])
            if not weight_known and values.get("font-weight"):
                weight = values["font-weight"].strip().lower()
                bold = weight in ("bold", "bolder") or (weight.isdigit() and int(weight) >= 700)
                weight_known = True
            if not weight_known and node.tag in _BOLD_TAGS:
                bold, weight_known = True, True
        size = size or 16.0
        return size >= 24 or (bold and size >= 18.66)


def _pixels(value: str) -> float | None:
    match = re.match(r"\s*([\d.]+)\s*(px|pt)?\s*$", value.lower())
    if not match:
        return None
    number = float(match[1])
    return number * 4 / 3 if match[2] == "pt" else number


def is_dark_media(prelude: str) -> bool:
    return bool(re.search(r"prefers-color-scheme\s*:\s*dark", prelude, re.IGNORECASE))


def _own_text(element: lxml.html.HtmlElement) -> str:
    parts = [element.text or ""]
    parts.extend(child.tail or "" for child in element if isinstance(child.tag, str) or child.tail)
    return " ".join(" ".join(parts).split())


def _visible(text: str) -> bool:
    return bool(_INVISIBLE.sub("", text))


# --- where a problem comes from ---------------------------------------------

def _color_pattern(value: str) -> re.Pattern[str]:
    """The colour as written in a style attribute, also matching the other hex spelling (#fff / #ffffff)."""
    value = value.strip()
    forms = {re.escape(value)}
    color = parse_color(value)
    if color is not None and color[3] >= 1:
        long = hex_of(color)
        forms.add(re.escape(long))
        if all(long[i] == long[i + 1] for i in (1, 3, 5)):
            forms.add(re.escape("#" + long[1] + long[3] + long[5]))
    return re.compile(r"(?<![\w#])(?:" + "|".join(sorted(forms, key=len, reverse=True)) + r")(?![\w])", re.IGNORECASE)


_DARK_MEDIA = re.compile(r"prefers-color-scheme\s*:\s*dark", re.IGNORECASE)


def _in_theme(ctx: CheckContext, pattern: re.Pattern[str], prefer: str = ".css") -> Place:
    return ctx.locate(pattern, [THEME], prefer=prefer) or ctx.template_place


# --- checks ------------------------------------------------------------------

def check_document_language(ctx: CheckContext) -> Iterator[Finding]:
    root = ctx.document
    where, line = _in_theme(ctx, re.compile(r"<html\b", re.IGNORECASE), ".j2")
    lang = (root.get("lang") or "").strip()
    if not lang:
        yield Finding(WARNING, "no-lang", "the <html> element has no lang attribute, so screen readers may read "
                      "the email in the wrong language", where, line,
                      fix='add lang="{{ newsletter.language }}" to <html> and set language in newsletter.toml')
    elif not _LANG.match(lang):
        yield Finding(WARNING, "bad-lang", f"lang=\"{lang}\" on <html> is not a language tag", where, line,
                      fix="use a tag like en, en-GB or fr (set language in newsletter.toml)")
    if not (root.get("dir") or "").strip():
        yield Finding(WARNING, "no-dir", "the <html> element has no dir attribute; mail clients that reset "
                      "direction show right-to-left text (and numbers in it) in the wrong order", where, line,
                      fix='add dir="ltr" (or dir="rtl") to <html>')
    title = root.find(".//title")
    if title is None or not (title.text_content() or "").strip():
        where, line = _in_theme(ctx, re.compile(r"<head\b", re.IGNORECASE), ".j2")
        yield Finding(WARNING, "no-title", "the email has no <title>; screen readers and web views announce it "
                      "first", where, line, fix="add <title>{{ issue.subject }}</title> to <head>")


def check_layout_tables(ctx: CheckContext) -> Iterator[Finding]:
    seen = set()
    for table in ctx.document.iter("table"):
        if (table.get("role") or "").strip().lower() in ("presentation", "none"):
            continue
        if any(True for _ in table.iter("th")):  # a data table: its headers are what a screen reader needs
            continue
        classes = (table.get("class") or "").split()
        in_article = ctx.locate(" ".join(table.text_content().split())[:60], [ARTICLES]) if not classes else None
        if in_article:
            where, line = in_article
            fix = "give the table a header row (| a | b | then | --- | --- | in Markdown)"
            message = "a table has no header cells, so screen readers cannot tell what its columns hold"
        else:
            pattern = (rf"<table\b[^>]*class=\"[^\"]*\b{re.escape(classes[0])}\b" if classes
                       else r"<table\b(?![^>]*\brole=)")
            where, line = _in_theme(ctx, re.compile(pattern, re.IGNORECASE), ".j2")
            fix = 'add role="presentation" to the <table>'
            message = ("a layout table has no role=\"presentation\", so screen readers announce its rows and "
                       "columns")
        if (where, line) not in seen:
            seen.add((where, line))
            yield Finding(WARNING, "layout-table", message, where, line, fix=fix)


def _link_name(link: lxml.html.HtmlElement) -> str:
    label = (link.get("aria-label") or "").strip()
    if label:
        return label
    alts = " ".join((img.get("alt") or "").strip() for img in link.iter("img"))
    return " ".join(f"{link.text_content()} {alts}".split())


def check_link_text(ctx: CheckContext) -> Iterator[Finding]:
    seen = set()
    for link in ctx.document.iter("a"):
        href = link.get("href")
        if href is None:
            continue
        name = _link_name(link)
        normal = re.sub(r"[^\w\s]", "", name.lower()).strip()
        if name and normal not in VAGUE_LINK_TEXT:
            continue
        key = (name, href)
        if key in seen:
            continue
        seen.add(key)
        where, line = (ctx.locate(href, [ARTICLES])
                       or _in_theme(ctx, re.compile(re.escape(name) if name else r"<a\b"), ".j2"))
        if not name:
            yield Finding(WARNING, "link-no-text", f"the link to {href} has no text (an image link with empty "
                          "alt?), so screen readers read out the address", where, line,
                          fix="give the link text, or the image inside it alt text that says where it goes")
        else:
            yield Finding(WARNING, "vague-link-text", f"link text \"{name}\" does not say where the link goes "
                          f"({href}); screen-reader users often jump from link to link", where, line,
                          fix=f"use words that name the destination, e.g. \"Read the report on ...\" instead of "
                              f"\"{name}\"")


def check_image_alt(ctx: CheckContext) -> Iterator[Finding]:
    """Alt text that is there but says nothing (a file name, 'image'); missing alt is an error in basic.py."""
    seen = set()
    for img in ctx.document.iter("img"):
        alt = (img.get("alt") or "").strip()
        src = img.get("src") or ""
        if not alt or src in seen:
            continue
        if _FILE_NAME_ALT.search(alt) or alt.lower() in _GENERIC_ALT:
            seen.add(src)
            where, line = (ctx.locate(src.rsplit("/", 1)[-1], [ARTICLES])
                           or _in_theme(ctx, re.compile(re.escape(alt)), ".j2"))
            yield Finding(WARNING, "image-meaningless-alt", f"image {src} has alt text \"{alt}\", which does not "
                          "say what the image shows", where, line,
                          fix="describe what the image shows, or use an empty alt only if it is decorative")


def check_headings(ctx: CheckContext) -> Iterator[Finding]:
    previous: tuple[int, str] | None = None
    for heading in ctx.document.iter("h1", "h2", "h3", "h4", "h5", "h6"):
        level = int(heading.tag[1])
        text = " ".join(heading.text_content().split())
        if previous is not None and level > previous[0] + 1:
            located = ctx.locate(text, [ARTICLES])
            where, line = located or _in_theme(ctx, re.compile(rf"<h{level}\b", re.IGNORECASE), ".j2")
            yield Finding(WARNING, "heading-skipped", f"heading <h{level}> \"{text}\" follows <h{previous[0]}> "
                          f"\"{previous[1]}\": level {previous[0] + 1} is skipped, which breaks the outline "
                          "screen-reader users navigate by", where, line,
                          fix=f"make it a level-{previous[0] + 1} heading ({'#' * (previous[0] + 1)} in Markdown)"
                          if located else f"use <h{previous[0] + 1}> in the template")
        previous = (level, text)


@dataclass(frozen=True)
class _Pair:
    mode: str
    foreground: str
    background: str
    large: bool


def contrast_findings(ctx: CheckContext, dark: bool) -> Iterator[Finding]:
    document = ctx.document
    styles = Styles(document, dark=dark)
    mode = "dark" if dark else "light"
    reported: set[_Pair] = set()
    body = document.find("body")
    for element in (body if body is not None else document).iter():
        if not isinstance(element.tag, str) or element.tag in ("style", "script", "title"):
            continue
        text = _own_text(element)
        if not _visible(text) or styles.hidden(element):
            continue
        foreground, written = styles.color(element)
        background, written_background = styles.background(element)
        if foreground[3] < 1:
            foreground = blend(foreground, background)
        ratio = contrast_ratio(foreground, background)
        large = styles.is_large(element)
        needed = AA_LARGE if large else AA_NORMAL
        if ratio >= needed:
            continue
        pair = _Pair(mode, hex_of(foreground), hex_of(background), large)
        if pair in reported:
            continue
        reported.add(pair)
        source = written or written_background
        if source:  # dark mode: the dark rule that sets it, else the light rule no dark rule overrides
            pattern = _color_pattern(source)
            where, line = ((ctx.locate(pattern, [THEME], after=_DARK_MEDIA) if dark else None)
                           or _in_theme(ctx, pattern))
        else:
            where, line = ctx.template_path, None
        sample = text if len(text) <= 50 else text[:47] + "..."
        yield Finding(WARNING, f"low-contrast-{mode}", f"{mode} mode: text colour {pair.foreground} on "
                      f"{pair.background} has contrast {ratio:.2f}:1, below WCAG AA {needed:g}:1 for "
                      f"{'large' if large else 'normal'} text (e.g. \"{sample}\")", where, line,
                      fix=f"darken or lighten the text or its background until the contrast is at least {needed:g}:1"
                          + (" in the theme's @media (prefers-color-scheme: dark) rules" if dark else ""))


def check_contrast(ctx: CheckContext) -> Iterator[Finding]:
    yield from contrast_findings(ctx, dark=False)
    has_dark_rules = any(is_dark_media(at) for style in ctx.document.iter("style")
                         for at in parse_stylesheet(style.text or "").at_rules)
    if has_dark_rules:
        yield from contrast_findings(ctx, dark=True)


CHECKS = [check_document_language, check_layout_tables, check_image_alt, check_link_text, check_headings,
          check_contrast]
