"""Email-client support: what the built email uses that major mail clients do not support.

The answers come from the caniemail.com data set shipped in ``newsletter/data``
(refresh it with ``scripts/refresh_caniemail.sh``). Nothing here lists CSS
properties or HTML elements by hand: an index is built from the data's own
feature titles and keywords (``max-width``, ``@media (prefers-color-scheme)``,
``:hover``, ``<table> element``, ``align attribute`` ...), and every property,
value, unit, function, at-rule, media feature, selector, element and attribute
found in the email is looked up in it. Each feature a major client does not
support is reported once, with the clients and the theme line it comes from.

Severity: not supported ("n") in any major client is a warning, never an
error, because email themes use such features on purpose with fallbacks
(dark mode, media queries that Outlook ignores). Only partly supported ("a")
is a note (info) carrying caniemail's explanation of what is partial.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import lxml.html
import lxml.html.defs

from ..cache_folder import cache_folder, installed_stamp
from .framework import ARTICLES, INFO, THEME, WARNING, CheckContext, Finding, Place
from .stylesheet import Declaration, parse_declarations, parse_stylesheet, selectors_of

DATA_PATH = Path(__file__).parent.parent / "data" / "caniemail.json"

# (family, platform) in the data: Gmail web and apps, Apple Mail, Outlook for Windows, Outlook.com, Yahoo.
MAJOR_CLIENTS: tuple[tuple[str, str], ...] = (
    ("gmail", "desktop-webmail"), ("gmail", "ios"), ("gmail", "android"),
    ("apple-mail", "macos"), ("apple-mail", "ios"),
    ("outlook", "windows"), ("outlook", "outlook-com"),
    ("yahoo", "desktop-webmail"), ("yahoo", "ios"), ("yahoo", "android"),
)
SUPPORTED, PARTIAL, UNSUPPORTED = "y", "a", "n"

# Client-specific and vendor-prefixed properties are hacks aimed at one client on purpose.
_VENDOR_PREFIXES = ("-webkit-", "-moz-", "-ms-", "-o-", "mso-")
_IDENT = re.compile(r"^-?[a-z][a-z0-9-]*$")
_SIDES = re.compile(r"-(top|right|bottom|left)(?=-|$)")  # border-top-left-radius -> border-radius
_FUNCTION = re.compile(r"(?<![\w-])(-?[a-z][a-z0-9-]*)\(")
_UNIT = re.compile(r"(?<![\w#.-])[-+]?(?:\d*\.)?\d+([a-z]+|%)", re.IGNORECASE)
_VALUE_WORD = re.compile(r"(?<![\w#.-])(-?[a-z][a-z0-9-]*)(?![\w(-])", re.IGNORECASE)
_TAG_IN_TITLE = re.compile(r"<([a-z][a-z0-9]*)((?:\s+[a-z-]+=\"[^\"]*\")*)\s*>")
_ATTR_IN_TAG = re.compile(r"([a-z-]+)=\"([^\"]*)\"")
_NAMED = re.compile(r"^([a-z][a-z0-9-]*) (element|attribute)$")
_MEDIA_FEATURE = re.compile(r"\(\s*(-?[a-z][a-z0-9-]*)")
_SELECTOR_PART = re.compile(r"""
    (?P<combinator>\s*[>+~]\s*|\s+)
  | (?P<id>\#[-\w]+)
  | (?P<class>\.[-\w]+)
  | (?P<attribute>\[[^\]]*\])
  | (?P<element>::[-\w]+(?:\([^)]*\))?)
  | (?P<pseudo>:[-\w]+(?:\([^)]*\))?)
  | (?P<universal>\*)
  | (?P<type>[-\w]+)
""", re.VERBOSE)
_COMBINATORS = {">": "child", "+": "adjacent-sibling", "~": "general-sibling", "": "descendant"}


@dataclass(frozen=True)
class Feature:
    """One caniemail feature and its support per client."""

    slug: str
    title: str
    url: str
    category: str
    stats: Mapping[str, Any]  # family -> platform -> version -> 'y #1'
    notes: Mapping[str, str]

    def support(self, family: str, platform: str) -> tuple[str, tuple[str, ...]] | None:
        """(y|a|n|u, notes) for the newest version of a client the data has tested, or None."""
        versions = self.stats.get(family, {}).get(platform)
        if not versions:
            return None
        value = list(versions.values())[-1]  # the data lists versions oldest first
        status, *marks = value.split()
        notes = tuple(self.notes[m[1:]] for m in marks if m.startswith("#") and m[1:] in self.notes)
        return status, notes


@dataclass(frozen=True)
class Usage:
    """Where a feature shows up: what was used (for the message) and how to find it in a source file."""

    what: str
    needle: re.Pattern[str]
    html: bool = False  # an HTML feature: look in the templates before the CSS


class SupportData:
    """The caniemail data set indexed by the names the email's HTML and CSS use."""

    def __init__(self, raw: Mapping[str, Any]):
        self.nicenames = raw.get("nicenames", {})
        self.features: dict[str, Feature] = {}
        self.properties: dict[str, list[str]] = defaultdict(list)
        self.property_aliases: dict[str, list[str]] = defaultdict(list)
        self.declarations: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.functions: dict[str, list[str]] = defaultdict(list)
        self.units: dict[str, list[str]] = defaultdict(list)
        self.value_keywords: dict[str, list[str]] = defaultdict(list)
        self.at_rules: dict[str, list[str]] = defaultdict(list)
        self.media_features: dict[str, list[str]] = defaultdict(list)
        self.pseudo_classes: dict[str, str] = {}
        self.pseudo_elements: dict[str, str] = {}
        self.selectors: dict[str, str] = {}
        self.elements: dict[str, list[tuple[str, dict[str, str]]]] = defaultdict(list)
        self.element_aliases: dict[str, list[str]] = defaultdict(list)
        self.attributes: dict[str, list[str]] = defaultdict(list)
        self.image_formats: dict[str, str] = {}
        self._format_slugs: set[str] = set()
        for item in raw.get("data", []):
            feature = Feature(item["slug"], item.get("title", item["slug"]), item.get("url") or "",
                              item.get("category", ""), item.get("stats") or {},
                              {str(k): v for k, v in (item.get("notes_by_num") or {}).items()})
            self.features[feature.slug] = feature
            keywords = [k.strip() for k in (item.get("keywords") or "").split(",") if k.strip()]
            if feature.category == "css":
                self._index_css(feature, keywords)
            elif feature.category == "html":
                self._index_html(feature, keywords)
            elif feature.category == "image":
                self._index_image(feature, keywords)
        # A title listing several names may list values ("system-ui, ui-serif") or properties
        # ("left, right, top, bottom"); names cssutils knows as properties are not taken as values.
        for word in set(self.value_keywords) & css_property_names():
            del self.value_keywords[word]

    def _index_css(self, feature: Feature, keywords: list[str]) -> None:
        slug, title = feature.slug, feature.title.strip()
        for prefix, table in (("css-pseudo-class-", self.pseudo_classes), ("css-pseudo-element-", self.pseudo_elements),
                              ("css-selector-", self.selectors)):
            if slug.startswith(prefix):
                table[slug[len(prefix):]] = slug
                return
        if title.startswith("@"):
            features = _MEDIA_FEATURE.findall(title)
            if features:
                for name in features:
                    self.media_features[name.lower()].append(slug)
            else:
                self.at_rules[title[1:].split()[0].lower()].append(slug)
            return
        declaration = re.fullmatch(r"([a-z-]+)\s*:\s*([a-z-]+)", title)
        if declaration:
            self.declarations[(declaration[1], declaration[2])].append(slug)
            return
        if title.endswith(" unit"):
            unit = title[:-len(" unit")].strip().lower()
            (self.value_keywords if unit == "initial" else self.units)[unit].append(slug)  # 'initial' is a value
            return
        functions = re.findall(r"([a-z][a-z0-9-]*)\(\)", title)
        if functions:
            for name in functions:
                self.functions[name].append(slug)
            return
        name = re.sub(r"\s+(css property|property|shorthand)$", "", title, flags=re.IGNORECASE)
        tokens = [t.strip() for t in re.split(r",|&|\band\b", name)]
        if all(_IDENT.match(t) for t in tokens if t) and any(tokens):
            for token in filter(None, tokens):
                self.properties[token].append(slug)
                if len(tokens) > 1:  # "system-ui, ui-serif", "fit-content, min-content": may be values
                    self.value_keywords[token].append(slug)
        for keyword in keywords:  # e.g. css-border lists border-top-width, css-margin lists margin-left
            if "-" in keyword and _IDENT.match(keyword):
                self.property_aliases[keyword].append(slug)

    def _index_html(self, feature: Feature, keywords: list[str]) -> None:
        slug, title = feature.slug, feature.title.strip()
        tags = _TAG_IN_TITLE.findall(title)
        for tag, attributes in tags:
            self.elements[tag].append((slug, dict(_ATTR_IN_TAG.findall(attributes))))
        attribute_title = re.fullmatch(r"(.+?) attributes?", title)
        if attribute_title and "<" not in title:
            for name in re.split(r",|\band\b", attribute_title[1]):
                if _IDENT.match(name.strip()):
                    self.attributes[name.strip()].append(slug)
        for keyword in keywords:
            named = _NAMED.match(keyword)
            if named and named[2] == "attribute":
                self.attributes[named[1]].append(slug)
            elif named:
                self.element_aliases[named[1]].append(slug)
            elif keyword.lower() in lxml.html.defs.tags:
                self.element_aliases[keyword.lower()].append(slug)
        if not tags and not attribute_title and title.lower() in lxml.html.defs.tags:
            self.element_aliases[title.lower()].append(slug)

    def _index_image(self, feature: Feature, keywords: list[str]) -> None:
        if feature.slug.startswith("image-"):  # the slug names the format; keywords add spellings (jpeg)
            self.image_formats[feature.slug[len("image-"):]] = feature.slug
            self._format_slugs.add(feature.slug[len("image-"):])
        for keyword in keywords:
            word = keyword.lower()
            if _IDENT.match(word) and word not in self._format_slugs and word not in self.image_formats:
                self.image_formats[word] = feature.slug

    # --- lookups -------------------------------------------------------------

    def property_features(self, name: str) -> list[str]:
        for candidate in (name, _SIDES.sub("", name)):
            if candidate in self.properties:
                return self.properties[candidate]
            if candidate in self.property_aliases:
                return self.property_aliases[candidate]
        return []

    def element_features(self, element: lxml.html.HtmlElement) -> list[str]:
        tag = element.tag
        entries = self.elements.get(tag)
        if not entries:
            return self.element_aliases.get(tag, [])
        plain = [slug for slug, attributes in entries if not attributes]
        typed = [slug for slug, attributes in entries
                 if attributes and all(element.get(k, "submit" if tag == "button" else "text").lower() == v
                                       for k, v in attributes.items())]
        return typed or plain


@lru_cache(maxsize=1)
def css_property_names() -> frozenset[str]:
    """The CSS property names cssutils knows, kept in the cache folder's ``css/`` (cache_folder.py) keyed by
    the installed cssutils: importing cssutils costs more than the checks that ask, and a build whose CSS
    inlining is cached (compose/inline.py) needs it for nothing else. Safe to delete."""
    stamp = installed_stamp("cssutils").encode()
    path = cache_folder("css") / f"property-names-{hashlib.sha256(stamp).hexdigest()[:32]}.json"
    try:
        return frozenset(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        pass
    from cssutils import profile

    names = sorted(set(profile.knownNames))
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_text(json.dumps(names), encoding="utf-8")
        os.replace(temporary, path)
    except OSError:
        temporary.unlink(missing_ok=True)  # a read-only cache only costs speed
    return frozenset(names)


def load_support_data(path: Path = DATA_PATH) -> SupportData:
    """The shipped caniemail data, read and indexed once per process."""
    return SupportData(json.loads(path.read_text(encoding="utf-8")))


# --- what the built email uses ----------------------------------------------

def _word(name: str) -> str:
    return rf"(?<![\w-]){re.escape(name)}(?![\w-])"


def _selector_needle(selector: str) -> str:
    """A pattern for ``selector`` as written in a stylesheet, whatever the spacing around combinators."""
    tokens = re.findall(r"[>+~]|[^\s>+~]+", selector)
    return r"(?<![\w.#-])" + r"\s*".join(re.escape(t) for t in tokens) + r"(?![\w-])"


class _Collector:
    """First usage of each feature slug, in document order."""

    def __init__(self, data: SupportData):
        self.data = data
        self.used: dict[str, Usage] = {}

    def add(self, slugs: Iterable[str], what: str, needle: str) -> None:
        for slug in slugs:
            if slug in self.data.features and slug not in self.used:
                html = self.data.features[slug].category != "css"
                self.used[slug] = Usage(what, re.compile(needle, re.IGNORECASE), html)

    def declaration(self, declaration: Declaration) -> None:
        data, name = self.data, declaration.name
        value = declaration.value.lower()
        if declaration.important:
            self.add(["css-important"], "!important", r"!\s*important")
        if name.startswith("--") or "var(--" in value:
            self.add(["css-variables"], "custom properties", r"var\(--|(?<![\w-])--[\w-]+\s*:")
        if name.startswith(_VENDOR_PREFIXES):
            return
        first = value.split()[0] if value.split() else ""
        specific = data.declarations.get((name, first), [])
        if specific:
            self.add(specific, f"{name}: {first}", rf"{_word(name)}\s*:\s*{re.escape(first)}(?![\w-])")
        else:
            self.add(data.property_features(name), name, rf"{_word(name)}\s*:")
        for function in _FUNCTION.findall(value):
            self.add(data.functions.get(function, []), f"{function}()", rf"{_word(function)}\(")
        for unit in set(_UNIT.findall(value)):
            unit = unit.lower()
            self.add(data.units.get(unit, []), f"{unit} unit", rf"\d{re.escape(unit)}(?![\w-])")
        for word in set(_VALUE_WORD.findall(value)):
            self.add(data.value_keywords.get(word.lower(), []), f"{name}: {word}",
                     rf"{_word(name)}\s*:[^;{{}}]*{_word(word)}")

    def selector(self, selector: str) -> None:
        data = self.data
        needle = _selector_needle(selector)
        simple_count = 0
        position = 0
        while position < len(selector):
            match = _SELECTOR_PART.match(selector, position)
            if not match:
                break
            position = match.end()
            kind = match.lastgroup or ""  # every alternative of the pattern is a named group
            text = match.group()
            if kind == "combinator":
                simple_count = 0
                if position < len(selector):  # trailing whitespace is not a combinator
                    combinator = _COMBINATORS[text.strip()]
                    self.add([data.selectors.get(combinator, "")], f"{combinator} combinator in '{selector}'",
                             needle)
                continue
            if kind in ("element", "pseudo"):
                name = text.lstrip(":").split("(")[0].lower()
                table = data.pseudo_elements if kind == "element" else data.pseudo_classes
                slug = table.get(name) or data.pseudo_elements.get(name)
                self.add([slug or ""], text.split("(")[0], rf"{re.escape(text.split('(')[0])}(?![\w-])")
                continue
            simple_count += 1
            if simple_count == 2:
                self.add([data.selectors.get("chaining", "")], f"chained selector '{selector}'", needle)
            self.add([data.selectors.get(kind, "")], f"{kind} selector '{selector}'", needle)

    def stylesheet(self, css: str) -> None:
        sheet = parse_stylesheet(css)
        if sheet.has_comments:
            self.add(["css-comments"], "CSS comments", r"/\*")
        for prelude in sheet.at_rules:
            name = prelude[1:].split(None, 1)[0].split("(")[0].lower()
            self.add(self.data.at_rules.get(name, []), f"@{name}", rf"@{re.escape(name)}(?![\w-])")
            if name == "media":
                for feature in _MEDIA_FEATURE.findall(prelude):
                    key = re.sub(r"(^|-)(min|max)-", r"\1", feature.lower())
                    self.add(self.data.media_features.get(key, []), f"@media ({feature})",
                             rf"\(\s*{re.escape(feature)}(?![\w-])")
        for rule in sheet.rules:
            selectors = selectors_of(rule)
            if len(selectors) > 1:
                self.add([self.data.selectors.get("grouping", "")], f"grouped selectors '{rule.selector}'",
                         _selector_needle(selectors[0]) + r"\s*,")
            for selector in selectors:
                self.selector(selector)
            for declaration in rule.declarations:
                self.declaration(declaration)

    def element(self, element: lxml.html.HtmlElement) -> None:
        data = self.data
        tag = element.tag
        self.add(data.element_features(element), f"<{tag}>", rf"<{re.escape(tag)}(?![\w-])")
        for attribute in element.attrib:
            name = attribute.lower()
            self.add(data.attributes.get(name, []), f"{name}=\"\" on <{tag}>", rf"\s{re.escape(name)}\s*=")
        href = (element.get("href") or "").strip() if tag == "a" else ""
        if href.startswith("#"):
            # the fragment itself, as HTML (href="#x") or Markdown ([..](#x)) writes it
            self.add(["html-anchor-links"], f"link to {href}", rf"[(\"']{re.escape(href)}[)\"'\s]")
        elif href.lower().startswith("mailto:"):
            self.add(["html-mailto-links"], "mailto: link", r"mailto:")
        if tag == "meta" and (element.get("name") or "").lower() == "color-scheme":
            self.add(["html-meta-color-scheme"], '<meta name="color-scheme">', r"name=\"color-scheme\"")
        if tag == "img":
            src = (element.get("src") or "").strip()
            if src.lower().startswith("data:"):
                self.add([data.image_formats.get("base64", "")], "data: image", r"src=\"data:")
            else:
                extension = Path(urlsplit(src).path).suffix.lstrip(".").lower()
                name = Path(urlsplit(src).path).name
                if extension:
                    self.add([data.image_formats.get(extension, "")], f".{extension} image",
                             re.escape(name) if name else r"<img")


def features_used(html: str, document: lxml.html.HtmlElement, data: SupportData) -> dict[str, Usage]:
    """Every caniemail feature the built email uses, each with its first usage."""
    collector = _Collector(data)
    if html.lstrip()[:9].lower() == "<!doctype":
        collector.add(["html-doctype"], "<!DOCTYPE html>", r"<!doctype")
    for element in document.iter():
        if not isinstance(element.tag, str):  # comments and processing instructions
            if element.tag is lxml.html.HtmlComment:
                collector.add(["html-comments"], "HTML comments", r"<!--")
            continue
        collector.element(element)
        if element.tag == "style":
            collector.stylesheet(element.text or "")
        style = element.get("style")
        if style:
            for declaration in parse_declarations(style):
                collector.declaration(declaration)
    return collector.used


# --- findings ----------------------------------------------------------------

def _client_label(data: SupportData, family: str, platform: str) -> str:
    family_name: str = data.nicenames.get("family", {}).get(family, family)
    platform_name: str = data.nicenames.get("platform", {}).get(platform, platform)
    if family_name.split()[0].lower() in platform_name.lower():
        return platform_name
    return f"{family_name} {platform_name}"


def _grouped(data: SupportData, clients: list[tuple[str, str]]) -> str:
    """'Gmail (Desktop Webmail, iOS), Outlook (Windows)' from (family, platform) pairs."""
    by_family: dict[str, list[str]] = {}
    for family, platform in clients:
        label = _client_label(data, family, platform)
        family_name = data.nicenames.get("family", {}).get(family, family)
        if label.startswith(family_name + " "):
            by_family.setdefault(family_name, []).append(label[len(family_name) + 1:])
        else:
            by_family.setdefault(label, [])
    return ", ".join(f"{name} ({', '.join(platforms)})" if platforms else name for name, platforms in by_family.items())


def support_findings(ctx: CheckContext, data: SupportData | None = None) -> Iterator[Finding]:
    """One finding per feature the email uses that a major client lacks (warning) or only partly has (info)."""
    data = data or load_support_data()
    for slug, usage in features_used(ctx.html, ctx.document, data).items():
        feature = data.features[slug]
        unsupported: list[tuple[str, str]] = []
        partial: list[tuple[str, str]] = []
        notes: dict[str, list[tuple[str, str]]] = {}  # caniemail's note -> the clients it is about
        for family, platform in MAJOR_CLIENTS:
            support = feature.support(family, platform)
            if support is None or support[0] not in (UNSUPPORTED, PARTIAL):
                continue
            status, client_notes = support
            (unsupported if status == UNSUPPORTED else partial).append((family, platform))
            for note in client_notes:
                notes.setdefault(note, []).append((family, platform))
        if not unsupported and not partial:
            continue
        where, line = _where(ctx, usage)
        used = f" (used as {usage.what})" if usage.what.lower() not in feature.title.lower() else ""
        parts = []
        if unsupported:
            parts.append(f"not supported in {_grouped(data, unsupported)}")
        if partial:
            parts.append(f"only partly supported in {_grouped(data, partial)}")
        message = f"{feature.category.upper()} feature '{feature.title}'{used} is {'; '.join(parts)}"
        if notes:
            message += ". " + " ".join(f"[{_grouped(data, clients)}] {note.rstrip()}"
                                       for note, clients in notes.items())
        fix = f"check it has a fallback in those clients: {feature.url}" if unsupported else f"see {feature.url}"
        yield Finding(WARNING if unsupported else INFO, f"client-support:{slug}", message, where, line, fix)


def _where(ctx: CheckContext, usage: Usage) -> Place:
    """The theme line that uses the feature (templates first for HTML features), else an article's."""
    return (ctx.locate(usage.needle, [THEME, ARTICLES], prefer=".j2" if usage.html else ".css")
            or ctx.template_place)


def check_client_support(ctx: CheckContext) -> Iterator[Finding]:
    yield from support_findings(ctx)


CHECKS = [check_client_support]
