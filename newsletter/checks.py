"""Preflight checks: findings a writer can act on before anything is sent.

Each check is a small function that takes the built issue (``CheckContext``)
and yields ``Finding``s naming the file (article, template or settings), the
line when known, what is wrong and the fix. ``run_checks`` runs them all;
``newsletter check`` and every send call it, so a send can never skip them.
"""

from __future__ import annotations

import dataclasses
import html as html_lib
import tomllib
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import lxml.html

from .build import BuiltIssue, build, sample_message, sample_values
from .config import Settings
from .content import ISSUE_FILE, Issue, load_issue
from .errors import NewsletterError, display_path
from .markdown import is_absolute
from .merge import TOKEN_PREFIX
from .personalize import UNSUBSCRIBE_FIELD, Personalizer
from .themes import HTML_TEMPLATE, SHIPPED_THEMES, TEXT_TEMPLATE

ERROR = "error"
WARNING = "warning"
INFO = "info"  # worth knowing, never blocks a send (a score, a size, partial client support)
SEVERITIES = (ERROR, WARNING, INFO)
GMAIL_CLIP_BYTES = 102 * 1024
MAX_SUBJECT = 78


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class CheckContext:
    """What checks look at: the settings, the issue, and its build filled for a sample recipient."""

    settings: Settings
    issue: Issue
    built: BuiltIssue
    options: dict = field(default_factory=dict)

    @property
    def template_path(self) -> str:
        return display_path(self.built.rendered.theme_dir / HTML_TEMPLATE)

    @property
    def text_template_path(self) -> str:
        return display_path(self.built.rendered.theme_dir / TEXT_TEMPLATE)

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
        """Files a problem in the email can come from: the theme's CSS first, then its templates,
        then the other themes' files (a theme may extend another)."""
        theme_dir = self.built.rendered.theme_dir
        others = sorted(p for folder in (self.settings.templates_dir, SHIPPED_THEMES) for p in folder.rglob("*")
                        if p.is_file() and p.parent != theme_dir and p.suffix in (".css", ".j2"))
        own = sorted((p for p in theme_dir.iterdir() if p.is_file()), key=lambda p: (p.suffix != ".css", p.name))
        return [*own, *others]

    def theme_line(self, needle: str | re.Pattern[str], prefer: str = ".css") -> tuple[str, int | None]:
        """(file, line) of the first theme file line matching ``needle``, searching files ending in
        ``prefer`` first (".css" for CSS, ".j2" for HTML); the email template when none matches."""
        theme_dir = self.built.rendered.theme_dir
        for path in sorted(self.theme_files, key=lambda p: (p.parent != theme_dir, p.suffix != prefer)):
            line = line_of(path, needle)
            if line:
                return display_path(path), line
        return self.template_path, None

    def article_line(self, needle: str | re.Pattern[str]) -> tuple[str, int | None] | None:
        """(file, line) of the first article whose source matches ``needle``, if any does."""
        for rendered in self.built.rendered.articles:
            line = line_of(rendered.article.path, needle)
            if line:
                return display_path(rendered.article.path), line
        return None


Check = Callable[[CheckContext], Iterable[Finding]]


def line_of(path: Path, needle: str | re.Pattern[str], start: int = 1) -> int | None:
    """The first line of ``path`` (from ``start``) that contains ``needle`` (a string, or a compiled
    pattern to search for), for pointing at a problem."""
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


def check_subject(ctx: CheckContext) -> Iterator[Finding]:
    where = display_path(ctx.issue.path / ISSUE_FILE)
    subject = ctx.issue.subject
    if not subject:
        yield Finding(ERROR, "no-subject", "the issue has no subject", where, fix="add 'subject: ...' to the front matter")
    elif len(subject) > MAX_SUBJECT:
        yield Finding(WARNING, "long-subject", f"the subject is {len(subject)} characters; mail clients cut it "
                      f"around {MAX_SUBJECT}", where, line_of(ctx.issue.path / ISSUE_FILE, "subject:"),
                      fix="shorten the subject")
    if not ctx.issue.preheader:
        yield Finding(WARNING, "no-preheader", "the issue has no preheader, so inboxes show the first text of "
                      "the email as its preview", where, fix="add 'preheader: ...' (one sentence) to the front matter")


def _unsubscribe_in_html(ctx: CheckContext) -> bool:
    url = ctx.sample_values.get(UNSUBSCRIBE_FIELD, "")
    return bool(url) and any(a.get("href") == url for a in ctx.document.iter("a"))


def check_unsubscribe(ctx: CheckContext) -> Iterator[Finding]:
    uses_link = any(f.name == UNSUBSCRIBE_FIELD for f in ctx.built.fields)
    configured = bool(ctx.settings.unsubscribe_url) or ctx.settings.sendgrid.unsubscribe_group is not None
    if not configured:
        yield Finding(ERROR, "no-unsubscribe-url", "no unsubscribe address is configured; bulk mail must carry "
                      "an unsubscribe link by law (CAN-SPAM, GDPR) and Gmail and Yahoo require one",
                      display_path(ctx.settings.path),
                      fix="set newsletter.unsubscribe_url = \"https://.../unsubscribe?token={token}\" "
                          "or sendgrid.unsubscribe_group")
    elif not uses_link or not _unsubscribe_in_html(ctx):
        yield Finding(ERROR, "no-unsubscribe-link", "the email has no unsubscribe link", ctx.template_path,
                      fix="add <a href=\"{{ unsubscribe_url }}\">Unsubscribe</a> to the footer")
    elif ctx.sample_values.get(UNSUBSCRIBE_FIELD, "") not in ctx.text:
        yield Finding(WARNING, "no-unsubscribe-text", "the plain-text part has no unsubscribe link",
                      ctx.text_template_path, fix="add 'Unsubscribe: {{ unsubscribe_url }}' to the text template")


def _visible_text(document: lxml.html.HtmlElement) -> str:
    body = document.find("body")
    return " ".join((body if body is not None else document).text_content().split())


def check_postal_address(ctx: CheckContext) -> Iterator[Finding]:
    address = " ".join(html_lib.unescape(ctx.settings.postal_address).split())
    if address not in _visible_text(ctx.document):
        yield Finding(ERROR, "no-postal-address", "the email does not show the postal address, which bulk mail "
                      "must carry by law (CAN-SPAM)", ctx.template_path,
                      fix="print {{ newsletter.postal_address }} in the footer")


def _article_findings(ctx: CheckContext, path: Path, doc: lxml.html.HtmlElement) -> Iterator[Finding]:
    where = display_path(path)
    for img in doc.iter("img"):
        src = img.get("src", "")
        if not (img.get("alt") or "").strip():
            yield Finding(ERROR, "image-no-alt", f"image {src} has no alt text; readers with images off or "
                          "a screen reader get nothing", where, line_of(path, src.rsplit("/", 1)[-1]),
                          fix="describe the image: ![what it shows](" + src + ")")
    for element, attribute in [*((a, "href") for a in doc.iter("a")), *((i, "src") for i in doc.iter("img"))]:
        url = element.get(attribute)
        if url is not None and not is_absolute(url):
            yield Finding(ERROR, "relative-url", f"relative {'link' if attribute == 'href' else 'image'} "
                          f"'{url}' cannot be made absolute", where, line_of(path, url),
                          fix="set base_url in newsletter.toml, or use a full https:// address")


def check_articles(ctx: CheckContext) -> Iterator[Finding]:
    where = display_path(ctx.issue.path / ISSUE_FILE)
    for name in ctx.issue.missing_articles:
        yield Finding(ERROR, "missing-article", f"article '{name}' is listed but the file does not exist", where,
                      line_of(ctx.issue.path / ISSUE_FILE, name),
                      fix=f"create {name} in the issue folder, or remove it from 'articles'")
    for path, doc in ctx.article_documents:
        yield from _article_findings(ctx, path, doc)
    for rendered in ctx.built.rendered.articles:
        article = rendered.article
        if article.image and article.image_alt is None:
            yield Finding(ERROR, "image-no-alt", "the article's image has no image_alt", display_path(article.path),
                          line_of(article.path, "image:"),
                          fix="add 'image_alt: <what the image shows>' (or image_alt: \"\" if purely decorative)")
        if article.image and not is_absolute(rendered.image):
            yield Finding(ERROR, "relative-url", f"image '{article.image}' cannot be made absolute",
                          display_path(article.path), line_of(article.path, "image:"),
                          fix="set base_url in newsletter.toml, or use a full https:// address")


def check_template_urls(ctx: CheckContext) -> Iterator[Finding]:
    """Links and images the template itself writes (article content is checked per article)."""
    article_urls = {el.get(attr) for _, doc in ctx.article_documents
                    for el, attr in [*((a, "href") for a in doc.iter("a")), *((i, "src") for i in doc.iter("img"))]}
    seen = set()
    for element in ctx.document.iter("a", "img"):
        attribute = "href" if element.tag == "a" else "src"
        url = element.get(attribute)
        if url is None or url in article_urls or url in seen:
            continue
        seen.add(url)
        if not url:
            yield Finding(ERROR, "empty-url", f"a <{element.tag}> in the template has an empty {attribute}",
                          ctx.template_path, fix="set base_url in newsletter.toml or remove the link")
        elif not is_absolute(url) and TOKEN_PREFIX not in url:
            yield Finding(ERROR, "relative-url", f"template {'link' if element.tag == 'a' else 'image'} '{url}' "
                          "is relative", ctx.template_path, fix="set base_url in newsletter.toml or use a full URL")
        if element.tag == "img" and element.get("alt") is None:
            yield Finding(ERROR, "image-no-alt", f"template image {url} has no alt attribute", ctx.template_path,
                          fix="add alt=\"...\" (alt=\"\" for decorative images)")


def check_size(ctx: CheckContext) -> Iterator[Finding]:
    size = len(ctx.html.encode("utf-8"))
    total = len(ctx.message_bytes)
    if size > GMAIL_CLIP_BYTES:
        yield Finding(WARNING, "html-too-large", f"the HTML is {size / 1024:.0f} KB; Gmail clips messages over "
                      "102 KB and hides the rest, including the unsubscribe link", ctx.template_path,
                      fix="shorten the issue, or send long articles as links with a summary")
    elif total > GMAIL_CLIP_BYTES:
        yield Finding(WARNING, "message-too-large", f"the whole message is {total / 1024:.0f} KB (HTML "
                      f"{size / 1024:.0f} KB, plus the text part and encoding); Gmail may clip it near 102 KB",
                      ctx.template_path, fix="shorten the issue, or send long articles as links with a summary")
    yield Finding(INFO, "size", f"HTML {size / 1024:.1f} KB of Gmail's 102 KB; whole message {total / 1024:.1f} KB")


CHECKS: list[Check] = [check_subject, check_unsubscribe, check_postal_address, check_articles,
                       check_template_urls, check_size]


def all_checks() -> list[Check]:
    """The basic checks above, then the checks of one module per kind (client support, accessibility,
    links, spam score). Imported here rather than at the top because they build on this module."""
    from . import accessibility, clientsupport, links, spam

    return [*CHECKS, *clientsupport.CHECKS, *accessibility.CHECKS, *links.CHECKS, *spam.CHECKS]


def _order(finding: Finding) -> tuple:
    rank = SEVERITIES.index(finding.severity) if finding.severity in SEVERITIES else len(SEVERITIES)
    return rank, finding.where, finding.line or 0


THEME_ACKNOWLEDGEMENTS = "checks.toml"


def _acknowledgements(folder: Path, cache: dict[Path, dict[str, str]]) -> dict[str, str]:
    """``[acknowledged]`` of a theme folder's checks.toml: finding code -> why it is fine there."""
    if folder not in cache:
        path = folder / THEME_ACKNOWLEDGEMENTS
        table: dict[str, str] = {}
        if path.is_file():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8")).get("acknowledged", {})
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
                raise NewsletterError(f"is not valid TOML: {err}", where=display_path(path)) from None
            if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
                raise NewsletterError("[acknowledged] must map finding codes to reasons (strings)",
                                      where=display_path(path))
            table = data
        cache[folder] = table
    return cache[folder]


def acknowledge(findings: list[Finding], settings: Settings) -> list[Finding]:
    """Turn warnings a theme acknowledges (for its own files) into notes that carry the theme's reason."""
    theme_roots = (settings.templates_dir.resolve(), SHIPPED_THEMES)
    cache: dict[Path, dict[str, str]] = {}
    result = []
    for finding in findings:
        if finding.severity == WARNING and finding.where:
            path = Path(finding.where).resolve()
            if path.parent.parent in theme_roots:
                reason = _acknowledgements(path.parent, cache).get(finding.code)
                if reason:
                    finding = dataclasses.replace(
                        finding, severity=INFO,
                        message=f"{finding.message} (acknowledged by the theme: {reason})")
        result.append(finding)
    return result


def run_checks_on(ctx: CheckContext, checks: Iterable[Check] = ()) -> list[Finding]:
    findings: list[Finding] = []
    for check in (checks or all_checks()):
        findings.extend(check(ctx))
    return sorted(acknowledge(findings, ctx.settings), key=_order)


def check_issue(settings: Settings, issue_dir: Path, available_fields: Collection[str] | None = None,
                **options) -> tuple[CheckContext, list[Finding]]:
    """Build the issue (even with articles missing) and run every check on it."""
    issue = load_issue(Path(issue_dir))
    built = build(settings, dataclasses.replace(issue, missing_articles=()), available_fields)
    ctx = CheckContext(settings, issue, built, dict(options))
    return ctx, run_checks_on(ctx)


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)


def count(findings: Iterable[Finding], severity: str) -> int:
    return sum(1 for f in findings if f.severity == severity)


def format_finding(finding: Finding) -> str:
    location = finding.location()
    text = f"{finding.severity}: {location + ': ' if location else ''}{finding.message}"
    return f"{text}\n    fix: {finding.fix}" if finding.fix else text


def summary_line(findings: list[Finding]) -> str:
    errors, warnings, infos = (count(findings, s) for s in SEVERITIES)
    return (f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
            + (f", {infos} note{'s' * (infos != 1)}" if infos else ""))


def format_report(findings: list[Finding]) -> str:
    """Findings grouped by severity (errors first), each naming its file and line, then a summary line."""
    titles = {ERROR: "Errors", WARNING: "Warnings", INFO: "Notes"}
    blocks = []
    for severity in SEVERITIES:
        group = [f for f in findings if f.severity == severity]
        if group:
            blocks.append(f"{titles[severity]} ({len(group)}):\n" + "\n".join(
                "  " + format_finding(f).replace("\n", "\n  ") for f in group))
    blocks.append(summary_line(findings))
    return "\n\n".join(blocks)


def report_json(findings: list[Finding]) -> str:
    """``{"findings": [...], "errors": N, "warnings": N}`` for scripts and CI."""
    return json.dumps({"findings": [f.to_dict() for f in findings], "errors": count(findings, ERROR),
                       "warnings": count(findings, WARNING)}, indent=2, ensure_ascii=False)

