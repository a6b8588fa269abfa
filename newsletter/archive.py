"""A static web archive of the issues: one page per issue, an index, and an Atom feed.

Each issue page is the build's web version (``BuiltIssue.web_html``): merge
fields hold their fallbacks and there is no unsubscribe link, so nothing
about any subscriber is published. ``write_archive`` refuses to write a page
that still carries a merge token or an unsubscribe link, in case a theme
prints one in its web version. The files of the issue folder the email uses (its
images, a PDF an article links to) are copied beside its page, and nothing else, where the email's absolute image URLs (``base_url`` +
issue name + file) expect them. Upload the folder to ``base_url`` as it is.

Only what was published goes in: an issue with ``draft: true`` or dated in the
future stays out unless ``drafts`` is asked for, and ``sent_only`` keeps only
the issues the send journal shows as sent. The index page carries the theme's
own styles (a theme may also bring its own ``archive-index.html.j2``), and canonical,
Open Graph and feed-discovery tags so a shared link and a feed reader find it.
"""

from __future__ import annotations

import datetime as dt
import html as html_lib
import shutil
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree as ET

from .compose.relative_links import relative_addresses
from .compose.build import BuiltIssue, build_issue
from .config import Settings
from .compose.content import ISSUE_FILE, Issue, load_issue
from .errors import NewsletterError, display_path
from .compose.merge import TOKEN_PATTERN
from .compose.personalize import Personalizer
from .compose.render import issue_base_url, render_theme_page, subscribe_page
from .themes import theme_folder

ATOM = "http://www.w3.org/2005/Atom"
XML = "http://www.w3.org/XML/1998/namespace"
FEED_FILE = "feed.xml"
INDEX_FILE = "index.html"
MARKER_FILE = ".newsletter-archive"  # says a folder holds an archive we wrote and may write again
FEED_ENTRIES = 20
INDEX_TEMPLATE = "archive-index.html.j2"  # a theme may have its own; else this package's, in PAGES_DIR
PAGES_DIR = Path(__file__).resolve().parent / "static"


@dataclass(frozen=True)
class ArchivedIssue:
    """One issue as published: where its page is, on disk and on the web."""

    name: str
    subject: str
    preheader: str
    date: dt.date
    url: str
    page: Path
    images: tuple[Path, ...]  # files copied beside the page: its images and the files it links to
    content: str  # the issue's text as HTML, for the feed


@dataclass(frozen=True)
class LeftOut:
    """An issue the archive did not publish, and why (said to the writer, who may have expected it)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Archive:
    """What ``write_archive`` wrote."""

    out_dir: Path
    issues: tuple[ArchivedIssue, ...]  # newest first
    index: Path
    feed: Path
    left_out: tuple[LeftOut, ...] = ()


def issue_folders(settings: Settings) -> list[Path]:
    """Every folder of issues/ that holds an issue.md, in name order."""
    folder = settings.issues_dir
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if (p / ISSUE_FILE).is_file())


def sent_issue_keys(settings: Settings) -> set[str]:
    """The issues the send journal shows as sent to at least one recipient of some list.

    The archive's one reading of the journal: test sends and dry runs leave no
    trace there, so only a real send counts.
    """
    from .sending.journal import SENT, location_of, summarize

    def journal_key(folder: Path) -> str:
        # The journal knows an issue by the id in its front matter; a journal written before ids
        # existed still knows it by its folder's name until its next send adopts that record.
        return load_issue(folder).id or folder.name

    location = location_of(settings)
    return {folder.name for folder in issue_folders(settings)
            if any(counts.get(SENT, 0) for _, counts in summarize(location, journal_key(folder)))}


def _reason_left_out(issue: Issue, today: dt.date, drafts: bool, sent: set[str] | None) -> str | None:
    """Why ``issue`` is not published, or None when it is."""
    if sent is not None and issue.name not in sent:
        return "not sent yet (archive --sent-only publishes only sent issues)"
    if drafts:
        return None
    if issue.draft:
        return "draft: true in its issue.md (remove it, or pass --drafts)"
    if issue.date > today:
        return f"dated {issue.date.isoformat()}, in the future (pass --drafts to include it)"
    return None


def select_published(settings: Settings, folders: list[Path], *, drafts: bool = False, sent_only: bool = False,
                     today: dt.date | None = None) -> tuple[list[Path], list[LeftOut]]:
    """Split issue folders into those to publish and those left out, with the reason for each."""
    today = today or dt.date.today()
    sent = sent_issue_keys(settings) if sent_only else None
    published: list[Path] = []
    left_out: list[LeftOut] = []
    for folder in folders:
        issue = load_issue(folder)
        reason = _reason_left_out(issue, today, drafts, sent)
        if reason is None:
            published.append(folder)
        else:
            left_out.append(LeftOut(issue.name, reason))
    return published, left_out


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
    files = []
    for source in sorted(set(_linked_files(settings, built))):
        target = folder / source.relative_to(issue.path.resolve())
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        files.append(target)
    return ArchivedIssue(issue.name, issue.subject, issue.preheader, issue.date,
                         f"{settings.base_url}{issue.name}/", page, tuple(files), content)


def _linked_files(settings: Settings, built: BuiltIssue) -> list[Path]:
    """Files of the issue folder the email uses: images and files (a PDF) the introduction or an
    article names, and each article's lead ``image``. The email points at them under ``base_url``,
    so they are published beside the page; nothing else of the folder is (the archive is public).
    Symbolic links that lead out of the folder are not followed."""
    issue = built.issue
    base = issue_base_url(settings, issue)
    sources = [issue.intro, *(rendered.article.body for rendered in built.rendered.articles),
               *(f"![]({rendered.article.image})" for rendered in built.rendered.articles if rendered.article.image)]
    return [address.local for markdown in sources for address in relative_addresses(markdown, issue.path, base)
            if address.local is not None and address.local.is_file()]


def _index_html(settings: Settings, issues: tuple[ArchivedIssue, ...]) -> str:
    """The index page: the theme's ``archive-index.html.j2`` if it has one, else ours, with the theme's styles."""
    context = {
        "newsletter": {"name": settings.name, "language": settings.language, "base_url": settings.base_url,
                       "subscribe_url": subscribe_page(settings), "postal_address": settings.postal_address},
        "issues": [{"href": f"{i.name}/", "url": i.url, "subject": i.subject, "preheader": i.preheader,
                    "date": i.date} for i in issues],
        "index_url": settings.base_url,
        "feed_url": f"{settings.base_url}{FEED_FILE}",
        "description": f"Every issue of {settings.name}, newest first.",
    }
    theme_dir = theme_folder(settings, settings.theme)
    return render_theme_page(settings, theme_dir, INDEX_TEMPLATE, context, PAGES_DIR)


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


def write_archive(settings: Settings, out_dir: Path, issue_dirs: list[Path] | None = None, *,
                  drafts: bool = False, sent_only: bool = False, today: dt.date | None = None,
                  stats: bool = False) -> Archive:
    """Build every published issue (or those of ``issue_dirs``) and write the site into ``out_dir``.

    Links in the feed are absolute, from ``base_url``; the index links each
    issue relatively, so the folder also works opened from disk. The page of
    an issue left out this time is removed, so a site once published with it
    does not keep serving it. ``stats``: each sent issue's stats page too (``<issue>/stats.html``).
    """
    if not settings.base_url:
        raise NewsletterError("the archive needs 'newsletter.base_url': the feed and the emails link to it",
                              where=display_path(settings.path),
                              hint='add base_url = "https://your.site/newsletter/" under [newsletter]')
    folders = issue_folders(settings) if issue_dirs is None else [Path(p) for p in issue_dirs]
    if not folders:
        raise NewsletterError("no issues to archive", where=display_path(settings.issues_dir),
                              hint='create one with: newsletter new "Title"')
    folders, left_out = select_published(settings, folders, drafts=drafts, sent_only=sent_only, today=today)
    if not folders:
        reasons = "; ".join(f"{item.name}: {item.reason}" for item in left_out)
        raise NewsletterError(f"no published issues to archive ({reasons})", where=display_path(settings.issues_dir))
    built = [build_issue(settings, folder) for folder in folders]  # every issue builds before anything is written
    _prepare(out_dir)
    archived = sorted((_write_issue(settings, b, out_dir) for b in built),
                      key=lambda i: (i.date, i.name), reverse=True)
    issues = tuple(archived)
    for item in left_out:
        stale = out_dir / item.name
        if stale.is_dir() and (stale / INDEX_FILE).is_file():
            shutil.rmtree(stale)
    index = out_dir / INDEX_FILE
    index.write_text(_index_html(settings, issues), encoding="utf-8")
    feed = out_dir / FEED_FILE
    feed.write_bytes(_feed_xml(settings, issues))
    if stats:
        from .stats.page import write_archive_pages

        write_archive_pages(settings, folders, out_dir)
    return Archive(out_dir, issues, index, feed, tuple(left_out))
