"""The checks' framework: what a finding is, what a check looks at, and where a problem is written.

Every check module builds on this one and on nothing else in ``checks/``;
this module imports none of them, so the package has no import loop. A check
is a function from ``CheckContext`` to ``Finding``s. ``CheckContext.locate``
is the one way a check points at the source line a problem comes from (an
article, the issue's ``issue.md``, or a theme file), so every finding names
its file and line the same way.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import lxml.html

from ..compose.build import BuiltIssue, sample_message, sample_values
from ..compose.content import ISSUE_FILE, Issue
from ..compose.personalize import Personalizer
from ..config import Settings
from ..errors import display_path
from ..themes import HTML_TEMPLATE, SHIPPED_THEMES, TEXT_TEMPLATE

ERROR = "error"
WARNING = "warning"
INFO = "info"  # worth knowing, never blocks a send (a score, a size, partial client support)
SEVERITIES = (ERROR, WARNING, INFO)

# Where ``CheckContext.locate`` looks: the issue's issue.md, its articles, the theme's files.
ISSUE = "issue"
ARTICLES = "articles"
THEME = "theme"


@dataclass(frozen=True)
class Finding:
    """One problem: how bad, where (file and line), what, and how to fix it."""

    severity: str
    code: str
    message: str
    where: str = ""
    line: int | None = None
    fix: str = ""

    def location(self) -> str:
        if not self.where:
            return ""
        return f"{self.where}:{self.line}" if self.line else self.where

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Place(NamedTuple):
    """A file (as shown to the writer) and, when known, the line in it; unpacks as ``where, line``."""

    where: str
    line: int | None = None


@dataclass(frozen=True)
class CheckOptions:
    """What a run of the checks may do beyond reading the built issue."""

    check_links: bool = False  # request every http(s) link and image (network)
    archive_dir: Path | None = None  # the published web archive; None: <root>/site


@dataclass
class CheckContext:
    """What checks look at: the settings, the issue, and its build filled for a sample recipient."""

    settings: Settings
    issue: Issue
    built: BuiltIssue
    options: CheckOptions = field(default_factory=CheckOptions)

    @property
    def template_path(self) -> str:
        return display_path(self.built.rendered.theme_dir / HTML_TEMPLATE)

    @property
    def text_template_path(self) -> str:
        return display_path(self.built.rendered.theme_dir / TEXT_TEMPLATE)

    @property
    def template_place(self) -> Place:
        """The email template, line unknown: where a problem of the email as a whole is fixed."""
        return Place(self.template_path)

    @property
    def issue_file(self) -> Path:
        return self.issue.path / ISSUE_FILE

    @cached_property
    def sample_values(self) -> dict[str, str]:
        return sample_values(self.settings)

    @cached_property
    def html(self) -> str:
        """The inlined email HTML as the sample recipient receives it."""
        return Personalizer(self.built.html, self.built.fields).fill(self.sample_values)

    @cached_property
    def text(self) -> str:
        return Personalizer(self.built.text, self.built.fields).fill(self.sample_values)

    @cached_property
    def document(self) -> lxml.html.HtmlElement:
        return lxml.html.document_fromstring(self.html)

    @cached_property
    def article_documents(self) -> list[tuple[Path, lxml.html.HtmlElement]]:
        return [(ra.article.path, lxml.html.fragment_fromstring(ra.html or "<p></p>", create_parent="div"))
                for ra in self.built.rendered.articles]

    @cached_property
    def message_bytes(self) -> bytes:
        """The complete message (headers, text and HTML parts) the sample recipient receives."""
        return sample_message(self.settings, self.built, self.sample_values).as_bytes()

    @cached_property
    def theme_files(self) -> list[Path]:
        """Files a problem in the email can come from: the theme's own files (CSS first), then the
        other themes' files (a theme may extend another)."""
        theme_dir = self.built.rendered.theme_dir
        folders = [folder for folder in (self.settings.templates_dir, SHIPPED_THEMES) if folder.is_dir()]
        others = sorted(p for folder in folders for p in folder.rglob("*")
                        if p.is_file() and p.parent != theme_dir and p.suffix in (".css", ".j2"))
        own = sorted((p for p in theme_dir.iterdir() if p.is_file()), key=lambda p: (p.suffix != ".css", p.name))
        return [*own, *others]

    @cached_property
    def _rendered_articles(self) -> list[tuple[Path, str, str]]:
        """(source, markup, text) of each article as rendered, to tell which article an element came from."""
        return [(path, lxml.html.tostring(doc, encoding="unicode"), " ".join(doc.text_content().split()))
                for path, doc in self.article_documents]

    def _files(self, area: str | Path, prefer: str) -> list[Path]:
        if isinstance(area, Path):
            return [area]
        if area == ISSUE:
            return [self.issue_file]
        if area == ARTICLES:
            return [ra.article.path for ra in self.built.rendered.articles]
        if area == THEME:
            theme_dir = self.built.rendered.theme_dir
            return sorted(self.theme_files, key=lambda p: (p.parent != theme_dir, p.suffix != prefer))
        raise ValueError(f"unknown place to search: {area!r}")

    def locate(self, needle: str | re.Pattern[str], search: Sequence[str | Path] = (ARTICLES, THEME), *,
               prefer: str = ".css", after: re.Pattern[str] | None = None) -> Place | None:
        """Where ``needle`` (text, or a pattern to search for) is written: the first line that holds
        it, in the places of ``search`` taken in order (``ISSUE``, ``ARTICLES``, ``THEME`` or a file).

        In the theme, files ending in ``prefer`` are read first (".css" for CSS, ".j2" for HTML).
        With ``after``, only lines after the first line matching it count (a rule inside a block).
        An article whose source does not hold a text needle but whose rendered HTML does (Markdown
        wrote it differently) is the place, line unknown. None when nothing holds it.
        """
        if not needle:
            return None
        for area in search:
            for path in self._files(area, prefer):
                start = 1
                if after is not None:
                    opening = line_of(path, after)
                    if opening is None:
                        continue
                    start = opening + 1
                line = line_of(path, needle, start)
                if line:
                    return Place(display_path(path), line)
            if area == ARTICLES and isinstance(needle, str):
                for path, markup, text in self._rendered_articles:
                    if needle in text or needle in markup:
                        return Place(display_path(path))
        return None

    def place_in(self, path: Path, *needles: str) -> Place:
        """The first line of ``path`` holding one of ``needles`` (tried in order); the file alone when none does."""
        for needle in needles:
            place = self.locate(needle, [path])
            if place:
                return place
        return Place(display_path(path))

    def place_of_address(self, url: str) -> Place:
        """Where a link or image address of the email is written: the article it comes from (the
        source line of the address or of its file name; its ``image:`` line for the article's
        image), else the theme line of the link's text or image's alt, else the email template."""
        tail = urlsplit(url).path.rsplit("/", 1)[-1]
        for path, doc in self.article_documents:
            if any(((el.get("href") if el.tag == "a" else el.get("src")) or "").strip() == url
                   for el in doc.iter("a", "img")):
                return self.place_in(path, url, tail)
        for rendered in self.built.rendered.articles:
            if url and rendered.image == url:
                return self.place_in(rendered.article.path, "image:")
        for element in self.document.iter("a", "img"):
            if ((element.get("href") if element.tag == "a" else element.get("src")) or "").strip() == url:
                text = " ".join(element.text_content().split()) or (element.get("alt") or "").strip()
                if text:
                    return self.locate(re.compile(re.escape(text)), [THEME], prefer=".j2") or self.template_place
                break
        return self.template_place


Check = Callable[[CheckContext], Iterable[Finding]]


def line_of(path: Path, needle: str | re.Pattern[str], start: int = 1) -> int | None:
    """The first line of ``path`` (from ``start``) that contains ``needle`` (a string, or a compiled
    pattern to search for); the primitive under ``CheckContext.locate``."""
    if not needle:
        return None
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for number, text in enumerate(lines, 1):
        if number >= start and (needle in text if isinstance(needle, str) else needle.search(text)):
            return number
    return None
