"""A static web archive of the issues: one page per issue, an index, and an Atom feed.

Each issue page is the build's web version (``BuiltIssue.web_html``): merge
fields hold their fallbacks and there is no unsubscribe link, so nothing
about any subscriber is published. ``write_archive`` refuses to write a page
that still carries a merge token or an unsubscribe link, in case a theme
prints one in its web version. Image files of the issue folder are copied
beside its page, where the email's absolute image URLs (``base_url`` +
issue name + file) expect them. Upload the folder to ``base_url`` as it is.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from .build import BuiltIssue, build_issue
from .config import Settings
from .content import ISSUE_FILE
from .errors import NewsletterError, display_path
from .merge import TOKEN_PATTERN
from .personalize import Personalizer
from .preview import IMAGE_TYPES

ATOM = "http://www.w3.org/2005/Atom"
XML = "http://www.w3.org/XML/1998/namespace"
FEED_FILE = "feed.xml"
INDEX_FILE = "index.html"
MARKER_FILE = ".newsletter-archive"  # says a folder holds an archive we wrote and may write again
FEED_ENTRIES = 20


@dataclass(frozen=True)
class ArchivedIssue:
    """One issue as published: where its page is, on disk and on the web."""

    name: str
    subject: str
    preheader: str
    date: dt.date
    url: str
    page: Path
    images: tuple[Path, ...]
    content: str  # the issue's text as HTML, for the feed


@dataclass(frozen=True)
class Archive:
    """What ``write_archive`` wrote."""

    out_dir: Path
    issues: tuple[ArchivedIssue, ...]  # newest first
    index: Path
    feed: Path


def issue_folders(settings: Settings) -> list[Path]:
    """Every folder of issues/ that holds an issue.md, in name order."""
    folder = settings.issues_dir
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / ISSUE_FILE).is_file())


def _refuse_personal_data(settings: Settings, built: BuiltIssue, page: str) -> None:
    """A published page must hold no merge token and no unsubscribe link (a theme could print one)."""
    where = display_path(built.rendered.theme_dir)
    if TOKEN_PATTERN.search(page):
        raise NewsletterError("the web version still holds a merge token", where=where,
                              hint="report this as a bug in newsletter")
    link = settings.unsubscribe_url.split("{token}", 1)[0]
    if link and link in page:
        raise NewsletterError("the web version contains an unsubscribe link, which is personal", where=where,
                              hint="wrap it in {% if not web %} ... {% endif %} in the template")


def _feed_content(built: BuiltIssue) -> str:
    """The introduction and the articles as plain HTML: what a feed reader shows."""
    rendered = built.rendered
    parts = [Personalizer(rendered.intro_html, rendered.fields).fill({})] if rendered.intro_html else []
    for article in rendered.articles:
        parts.append(f"<h2>{html_lib.escape(article.article.title)}</h2>")
        if article.article.author:
            parts.append(f"<p><em>By {html_lib.escape(article.article.author)}</em></p>")
        parts.append(article.html)
    return "\n".join(parts)


def _prepare(out_dir: Path) -> None:
    """Create the output folder; refuse a non-empty folder this module did not write."""
    if out_dir.exists() and not out_dir.is_dir():
        raise NewsletterError("is a file, not a folder", where=display_path(out_dir), hint="pass another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER_FILE).exists():
        raise NewsletterError("folder is not empty and holds no archive written by newsletter",
                              where=display_path(out_dir), hint="pass an empty or new folder with --out")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MARKER_FILE).write_text("Written by `newsletter archive`; safe to rebuild.\n", encoding="utf-8")
    except OSError as err:
        raise NewsletterError(f"cannot write the archive: {err.strerror}", where=display_path(out_dir)) from None


def _write_issue(settings: Settings, built: BuiltIssue, out_dir: Path) -> ArchivedIssue:
    issue = built.issue
    content = _feed_content(built)
    for published in (built.web_html, content):
        _refuse_personal_data(settings, built, published)
    folder = out_dir / issue.name
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / INDEX_FILE
    page.write_text(built.web_html, encoding="utf-8")
    images = []
    for source in sorted(issue.path.rglob("*")):
        if source.is_file() and source.suffix.lower() in IMAGE_TYPES and not source.is_symlink():
            target = folder / source.relative_to(issue.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            images.append(target)
    return ArchivedIssue(issue.name, issue.subject, issue.preheader, issue.date,
                         f"{settings.base_url}{issue.name}/", page, tuple(images), content)


def _index_html(settings: Settings, issues: tuple[ArchivedIssue, ...]) -> str:
    esc = html_lib.escape
    items = "\n".join(
        f'<li><time datetime="{i.date.isoformat()}">{i.date.strftime("%B %-d, %Y")}</time>'
        f'<a href="{esc(i.name)}/">{esc(i.subject)}</a>'
        + (f"<p>{esc(i.preheader)}</p>" if i.preheader else "") + "</li>"
        for i in issues
    )
    return f"""<!DOCTYPE html>
<html lang="{esc(settings.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>{esc(settings.name)}: all issues</title>
<link rel="alternate" type="application/atom+xml" title="{esc(settings.name)}" href="{esc(FEED_FILE)}">
<style>
body {{ margin: 0 auto; max-width: 640px; padding: 24px 16px; font: 18px/1.5 Georgia, 'Times New Roman', serif; }}
h1 {{ font-size: 28px; }}
ol {{ list-style: none; padding: 0; }}
li {{ margin: 0 0 20px; }}
time {{ display: block; font: 14px Helvetica, Arial, sans-serif; color: #52606d; }}
li p {{ margin: 4px 0 0; font-size: 16px; }}
</style>
</head>
<body>
<h1>{esc(settings.name)}</h1>
<p>All issues, newest first. <a href="{esc(FEED_FILE)}">Subscribe to the feed</a>.</p>
<ol>
{items}
</ol>
</body>
</html>
"""


def _timestamp(day: dt.date) -> str:
    return f"{day.isoformat()}T00:00:00Z"


def _feed_xml(settings: Settings, issues: tuple[ArchivedIssue, ...]) -> bytes:
    ET.register_namespace("", ATOM)

    def add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
        element.text = text
        return element

    feed = ET.Element(f"{{{ATOM}}}feed", {f"{{{XML}}}lang": settings.language})
    add(feed, "id", settings.base_url)
    add(feed, "title", settings.name)
    add(feed, "updated", _timestamp(issues[0].date) if issues else _timestamp(dt.date.today()))
    add(feed, "link", href=settings.base_url, rel="alternate", type="text/html")
    add(feed, "link", href=f"{settings.base_url}{FEED_FILE}", rel="self", type="application/atom+xml")
    author = add(feed, "author")
    add(author, "name", settings.from_name or settings.name)
    add(feed, "generator", "newsletter")
    for issue in issues[:FEED_ENTRIES]:
        entry = add(feed, "entry")
        add(entry, "id", issue.url)
        add(entry, "title", issue.subject)
        add(entry, "link", href=issue.url, rel="alternate", type="text/html")
        add(entry, "published", _timestamp(issue.date))
        add(entry, "updated", _timestamp(issue.date))
        if issue.preheader:
            add(entry, "summary", issue.preheader)
        add(entry, "content", issue.content, type="html", **{f"{{{XML}}}base": issue.url})
    ET.indent(feed)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True) + b"\n"


def write_archive(settings: Settings, out_dir: Path, issue_dirs: list[Path] | None = None) -> Archive:
    """Build every issue (or ``issue_dirs``) and write the site into ``out_dir``.

    Links in the feed are absolute, from ``base_url``; the index links each
    issue relatively, so the folder also works opened from disk.
    """
    if not settings.base_url:
        raise NewsletterError("the archive needs 'newsletter.base_url': the feed and the emails link to it",
                              where=display_path(settings.path),
                              hint='add base_url = "https://your.site/newsletter/" under [newsletter]')
    folders = issue_folders(settings) if issue_dirs is None else [Path(p) for p in issue_dirs]
    if not folders:
        raise NewsletterError("no issues to archive", where=display_path(settings.issues_dir),
                              hint='create one with: newsletter new "Title"')
    built = [build_issue(settings, folder) for folder in folders]  # every issue builds before anything is written
    _prepare(out_dir)
    archived = sorted((_write_issue(settings, b, out_dir) for b in built),
                      key=lambda i: (i.date, i.name), reverse=True)
    issues = tuple(archived)
    index = out_dir / INDEX_FILE
    index.write_text(_index_html(settings, issues), encoding="utf-8")
    feed = out_dir / FEED_FILE
    feed.write_bytes(_feed_xml(settings, issues))
    return Archive(out_dir, issues, index, feed)
