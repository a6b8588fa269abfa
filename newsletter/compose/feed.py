"""A feed's items, read by feedparser: what a digest is made of (``newsletter digest FEED``).

Atom and every RSS dialect, from a file or an http(s) address; feedparser sanitizes the HTML it
hands back, and this module keeps only text from it (a summary is data, never markup in the email).
An item is known by its id (Atom ``id``, RSS ``guid``), else its link: the same item edited, or moved
in the feed, is still the same item, which is what lets a list get each item once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import lxml.html

from ..errors import NewsletterError, display_path

SUMMARY_CHARS = 800  # a digest shows a taste of each item, with a link to the rest


@dataclass(frozen=True)
class FeedItem:
    identity: str
    title: str
    summary: str  # plain text
    link: str  # "" when the item has none that is http(s)
    image: str  # an http(s) image address, or ""


def _web(url: str) -> str:
    return url if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc else ""


def _text(fragment: str) -> str:
    if not fragment.strip():
        return ""
    try:
        text = lxml.html.fragment_fromstring(fragment, create_parent="div").text_content()
    except (ValueError, lxml.etree.ParserError):
        text = fragment
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > SUMMARY_CHARS:
        text = text[:SUMMARY_CHARS].rsplit(" ", 1)[0] + " …"
    return text


def _image(entry: Any) -> str:
    for media in entry.get("media_thumbnail", []) + entry.get("media_content", []):
        if _web(str(media.get("url", ""))) and str(media.get("medium", "image")) == "image":
            return str(media["url"])
    for link in entry.get("links", []):
        if str(link.get("type", "")).startswith("image/") and _web(str(link.get("href", ""))):
            return str(link["href"])
    for content in [*(c.get("value", "") for c in entry.get("content", [])), entry.get("summary", "")]:
        match = re.search(r"<img[^>]+src=[\"']([^\"']+)", str(content))
        if match and _web(match[1]):
            return match[1]
    return ""


def read_feed(source: str) -> list[FeedItem]:
    """The items of the feed at ``source`` (a file's path or an http(s) address), in the feed's order."""
    if _web(source):
        parsed = feedparser.parse(source)
        where = source
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise NewsletterError(f"cannot read the feed ({err.strerror})", where=display_path(path),
                                  hint="give the path of an Atom or RSS file, or its http(s) address") from None
        parsed = feedparser.parse(data)
        where = display_path(path)
    status = int(parsed.get("status", 200) or 200)
    if status >= 400:
        raise NewsletterError(f"the feed's server answered {status}", where=where, hint="check the address")
    if not parsed.entries and (parsed.bozo or not parsed.get("version")):
        problem = parsed.get("bozo_exception") or "no items"
        raise NewsletterError(f"is not an Atom or RSS feed ({problem})", where=where,
                              hint="give the feed's own address (often /feed.xml or /rss), not its page")
    items = []
    for entry in parsed.entries:
        title = _text(str(entry.get("title", ""))) or "(untitled)"
        summary = _text(str(entry.get("summary", "")))
        link = _web(str(entry.get("link", "")))
        identity = str(entry.get("id") or link or hashlib.sha256(f"{title}\n{summary}".encode()).hexdigest())
        items.append(FeedItem(identity, title, summary, link, _image(entry)))
    return items
