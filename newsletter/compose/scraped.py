"""Scraped plain text to Markdown: the article's words without the site around them.

Text copied or scraped from a web page carries the page's clutter: the title
twice, lines of non-breaking spaces, share buttons, "Leave a Comment",
"Related Posts" lists and "Advertisement" labels. ``clean`` runs small named
steps over the lines and returns the title (the first line), the author (a
"By NAME" line near the top), the date (written after the name, "By NAME | March 3,
2026", or on a line of its own near the top) and a Markdown body in which ``#``
headings, ``**bold**`` and numbered lists survive and bullet characters become a list.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import NamedTuple

from .dates import written_date

Lines = list[str]


class Scraped(NamedTuple):
    """What ``clean`` finds in scraped text; empty strings (and no date) when absent."""

    title: str
    author: str
    date: dt.date | None
    body: str  # Markdown


def clean(text: str) -> Scraped:
    """The title, author, date and Markdown body of scraped text."""
    lines = [tidy_line(line) for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = drop_boilerplate(lines)
    title, lines = take_title(lines)
    lines = drop_repeated_title(lines, title)
    author, date, lines = take_byline(lines)
    if date is None:
        date, lines = take_date_line(lines)
    return Scraped(title, author, date, to_markdown(lines))


# --- steps ------------------------------------------------------------------


def tidy_line(line: str) -> str:
    """A line without edge whitespace (U+00A0 and zero-width spaces too); blank-looking lines become ''."""
    line = _EDGE_SPACE.sub("", line)
    # A non-breaking space next to an ordinary one is layout, not meaning ("10\u00a0km" is kept).
    return _SPACE_RUN.sub(" ", line)


def drop_boilerplate(lines: Lines) -> Lines:
    """Remove lone site lines (share buttons, "Leave a Comment", "Advertisement") and "Related" blocks."""
    out: Lines = []
    in_related = False
    for line in lines:
        label = _label(line)
        if _RELATED.match(label):
            in_related = True
            continue
        if in_related:
            if not line or not _looks_like_prose(line):
                continue  # the titles and dates of the related posts
            in_related = False
        if line and _BOILERPLATE.match(label):
            continue
        out.append(line)
    return out


def take_title(lines: Lines) -> tuple[str, Lines]:
    """The first non-blank line is the title."""
    for i, line in enumerate(lines):
        if line:
            return _label(line, keep_case=True), lines[i + 1:]
    return "", []


def drop_repeated_title(lines: Lines, title: str) -> Lines:
    """Pages print the title twice (page title and article heading): drop the second one."""
    for i, line in enumerate(lines):
        if line:
            return lines[:i] + lines[i + 1:] if _same(line, title) else lines
    return lines


def take_byline(lines: Lines, within: int = 3) -> tuple[str, dt.date | None, Lines]:
    """A "By NAME" line among the first few lines becomes the author (and the date written after
    the name, if any) and leaves the body."""
    seen = 0
    for i, line in enumerate(lines):
        if not line:
            continue
        author = byline_name(line)
        if author:
            return author, byline_date(line), lines[:i] + lines[i + 1:]
        seen += 1
        if seen >= within:
            break
    return "", None, lines


def take_date_line(lines: Lines, within: int = 3) -> tuple[dt.date | None, Lines]:
    """A line among the first few that is only a date ("March 3, 2026", "Published 3 March 2026")
    becomes the date and leaves the body."""
    seen = 0
    for i, line in enumerate(lines):
        if not line:
            continue
        date = written_date(_DATE_LABEL.sub("", _label(line, keep_case=True)))
        if date is not None:
            return date, lines[:i] + lines[i + 1:]
        seen += 1
        if seen >= within:
            break
    return None, lines


def byline_name(line: str) -> str:
    """NAME from "By NAME", "By NAME | date", "Written by NAME, Agency" or "Author: NAME"; else ''."""
    m = _BYLINE.match(_label(line, keep_case=True))
    if not m:
        return ""
    name = _BYLINE_END.split(m.group("rest"), maxsplit=1)[0].strip()
    words = name.split()
    if not 1 <= len(words) <= 6 or any(ch.isdigit() for ch in name):
        return ""
    if all(w[0].isupper() or w.lower() in _NAME_PARTICLES for w in words) and words[0][0].isupper():
        return name
    return ""


def byline_date(line: str) -> dt.date | None:
    """The date after the name in "By NAME | March 3, 2026", "By NAME, Agency · 3 Mar 2026" or
    "By NAME on March 3, 2026"; None when there is none."""
    m = _BYLINE.match(_label(line, keep_case=True))
    if m is None:
        return None
    end = _BYLINE_END.search(m.group("rest"))
    if not end:
        return None
    for part in _BYLINE_PARTS.split(m.group("rest")[end.start():]):
        part = _DATE_LABEL.sub("", part.strip(" ,|·•–—()"))
        commas = [i for i, ch in enumerate(part) if ch == ","]
        for start in [0] + [i + 1 for i in commas]:  # "Agency, March 3, 2026": try after each comma
            date = written_date(part[start:])
            if date is not None:
                return date
    return None


def to_markdown(lines: Lines) -> str:
    """Group lines into Markdown blocks: one paragraph a line, lists kept together."""
    blocks: list[tuple[str, Lines]] = []
    after_blank = True
    for line in lines:
        if not line:
            after_blank = True
            continue
        kind, line = _classify(line)
        last_kind, last = blocks[-1] if blocks else ("", [])
        if kind in ("bullet", "number") and kind == last_kind:
            last.append(line)
        elif kind == "text" == last_kind and not after_blank and _continues(last[-1], line):
            last[-1] = f"{last[-1]} {line}"  # a hard-wrapped sentence
        else:
            blocks.append((kind, [line]))
        after_blank = False
    parts = []
    for kind, items in blocks:
        loose = kind in ("bullet", "number") and any(len(item) > 200 for item in items)
        parts.append(("\n\n" if loose else "\n").join(items))
    return "\n\n".join(parts) + "\n" if parts else ""


# --- what the steps recognise -----------------------------------------------

_EDGE_SPACE = re.compile(r"^[\s\u200b-\u200d\u2060\ufeff]+|[\s\u200b-\u200d\u2060\ufeff]+$")
_SPACE_RUN = re.compile(r"[ \t]*\u00a0[ \t\u00a0]+|[ \t\u00a0]+\u00a0[ \t]*|[ \t]{2,}")
_SHARE_SITES = (
    r"facebook|twitter|x|linkedin|pinterest|whatsapp|email|e-?mail|print|reddit|telegram|tumblr|pocket"
    r"|messenger|threads|bluesky|mastodon|flipboard|skype|sms|copy link|tweet|pin it|save"
)
_BOILERPLATE = re.compile(
    rf"""^(?:
        leave\ a\ (?:comment|reply) | cancel\ reply | post\ comment | \d+\ comments? | no\ comments(?:\ yet)?
      | comments | share(?:\ this)?(?:\ (?:article|post|story|page))? | like\ this | like | loading(?:\.\.\.|…)?
      | (?:click\ to\ )?(?:share|email|print|post)\ (?:on|via|to|this|a\ link)\b.*
      | {_SHARE_SITES}
      | advertisements? | sponsored(?:\ content)? | ad | skip\ to\ (?:main\ )?content
      | (?:tags|tagged|filed\ under|posted\ in|categories)\s*:.*
    )[\s:.!…]*$""",
    re.IGNORECASE | re.VERBOSE,
)
_RELATED = re.compile(
    r"""^(?:related(?:\ (?:posts|articles|stories|content|reading|news))?
      | you\ (?:may|might)\ also\ (?:like|enjoy) | more\ (?:stories|articles|posts)(?:\ from\ .*)?
      | recommended(?:\ (?:for\ you|reading|articles|stories))? | popular\ posts | trending(?:\ now)?
      | read\ next | also\ read
    )[\s:.!…]*$""",
    re.IGNORECASE | re.VERBOSE,
)
_BYLINE = re.compile(r"^(?:(?:written |posted |words |story |reported )?by|author\s*:)\s+(?P<rest>.+)$", re.IGNORECASE)
_BYLINE_END = re.compile(r"\s*(?:[|·•,–—(]|\s-\s|\son\s|\supdated\b|\spublished\b)", re.IGNORECASE)
_BYLINE_PARTS = re.compile(r"\s*[|·•–—()]\s*|\s-\s")
_DATE_LABEL = re.compile(r"^(?:(?:last\s+)?updated|published|posted|on)(?:\s+on)?\s*:?\s*", re.IGNORECASE)
_NAME_PARTICLES = {"and", "&", "de", "van", "von", "der", "den", "da", "del", "della", "la", "le", "bin", "al", "y"}
_BULLET = re.compile(r"^(?:[•●▪◦■□‣►▸➢➤○·]\s*|[–\-*+]\s+)(?=\S)")
_NUMBERED = re.compile(r"^\d{1,3}[.)]\s+\S")
_HEADING = re.compile(r"^#{1,6}\s+\S")


def _label(line: str, keep_case: bool = False) -> str:
    """The words of a short line without Markdown emphasis or heading marks."""
    text = re.sub(r"^#{1,6}\s+", "", line).replace("**", "").replace("__", "").strip()
    return text if keep_case else text.lower()


def _same(a: str, b: str) -> bool:
    def key(s: str) -> str:
        return re.sub(r"[\W_]+", " ", _label(s)).strip()

    return key(a) == key(b)


def _classify(line: str) -> tuple[str, str]:
    if _HEADING.match(line):
        return "heading", line
    bullet = _BULLET.match(line)
    if bullet:
        return "bullet", "- " + line[bullet.end():]
    if _NUMBERED.match(line):
        return "number", line
    return "text", line


def _looks_like_prose(line: str) -> bool:
    """A heading or a sentence of the article, as opposed to a related post's title or date."""
    words = len(line.split())
    return bool(_HEADING.match(line)) or words > 20 or (words >= 8 and line.rstrip("”\"’')").endswith((".", "!", "?")))


def _continues(previous: str, line: str) -> bool:
    """True when ``line`` carries on the sentence ``previous`` left unfinished (hard-wrapped text)."""
    return not previous.rstrip("”\"’')*_").endswith((".", "!", "?", ":", ";")) and line[:1].islower()
