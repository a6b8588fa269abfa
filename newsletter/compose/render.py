"""Render an issue through its theme's Jinja2 templates, once, with merge tokens.

Templates run in Jinja2's sandbox with autoescaping on for HTML and
StrictUndefined everywhere, so a misspelled variable is an error at build
time and article text cannot inject markup. Per-recipient values are never
rendered here: ``subscriber.<field>`` and ``unsubscribe_url`` print as merge
tokens (see merge.py) that personalize.py fills in per recipient.
"""

from __future__ import annotations

import functools
import traceback
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import lxml.html
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg
from markupsafe import Markup

from . import markdown
from ..cache_folder import cache_folder
from ..config import Settings
from .content import ISSUE_FILE, Article, Issue
from ..errors import NewsletterError, display_path, os_error
from .images import ImageSizer
from .merge import MergeField, MergeRegistry, MergeToken, contains_token_prefix
from .plaintext import PlainText, heading
from ..themes import HTML_TEMPLATE, TEXT_TEMPLATE, template_search_path, theme_folder
from ..themes.layout import content_width

STANDARD_FIELDS = ("email", "name")
# Filters that understand merge tokens; any other filter applied to one is refused,
# because it would transform the token instead of the recipient's value.
_TOKEN_FILTERS = {"default", "d", "urlencode", "safe", "e", "escape", "string"}


@dataclass(frozen=True)
class RenderedArticle:
    """An article's HTML fragment, kept so checks can name the article a problem comes from."""

    article: Article
    html: str
    image: str  # absolute (when possible) lead image URL, or ""
    image_size: tuple[int, int] | None  # the lead image's width and height to show, when it is a local file
    tokens: list = field(default_factory=list, repr=False, compare=False)  # parsed once, for the text part


@dataclass(frozen=True)
class RenderedIssue:
    """The issue rendered once: HTML (not yet inlined) and text, both holding merge tokens."""

    issue: Issue
    theme: str
    theme_dir: Path
    html: str
    text: str
    web_html: str
    fields: tuple[MergeField, ...]
    articles: tuple[RenderedArticle, ...]
    intro_html: str
    base: str  # the address relative URLs of this issue resolve against


class SubscriberFields:
    """What templates see as ``subscriber``: each known column becomes a merge token."""

    def __init__(self, registry: MergeRegistry, flavour: str, available: Collection[str] | None):
        self._registry = registry
        self._flavour = flavour
        self._available = None if available is None else set(available) | set(STANDARD_FIELDS)

    def _token(self, field: str) -> MergeToken:
        if self._available is not None and field not in self._available:
            import difflib

            close = difflib.get_close_matches(field, sorted(self._available), n=1)
            hint = f"did you mean 'subscriber.{close[0]}'?" if close else (
                "add a column of that name to your subscriber list, or remove the field")
            raise jinja2.UndefinedError(
                f"merge field 'subscriber.{field}' is not a column of any subscriber list; {hint}")
        return MergeToken(self._registry, f"subscriber.{field}", self._flavour)

    def __getattr__(self, field: str) -> MergeToken:
        if field.startswith("_"):
            raise AttributeError(field)
        return self._token(field)

    def __getitem__(self, field: str) -> MergeToken:
        return self._token(field)


def _merge_default(value: Any, default_value: Any = "", boolean: bool = False) -> Any:
    if isinstance(value, MergeToken):
        return value.with_fallback(default_value)
    return jinja2.filters.do_default(value, default_value, boolean)


def _merge_urlencode(value: Any) -> Any:
    if isinstance(value, MergeToken):
        return value.as_url_component()
    return jinja2.filters.do_urlencode(value)


def _refuse_tokens(name: str, func):
    """Wrap a built-in filter so applying it to a merge field is an error, not a mangled token."""
    pass_arg = _PassArg.from_obj(func)
    offset = 1 if pass_arg is not None else 0

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if len(args) > offset and isinstance(args[offset], MergeToken):
            raise jinja2.TemplateRuntimeError(
                f"filter '{name}' cannot be applied to merge field '{args[offset].name}': its value "
                "is filled in per recipient after rendering; use it as is or with | default('...')")
        return func(*args, **kwargs)

    return wrapper


def _bytecode_cache(folder: Path) -> jinja2.BytecodeCache | None:
    """Compiled templates kept in the cache folder's ``jinja/`` (cache_folder.py), keyed by source.

    Compiling the theme is a large share of a one-off ``newsletter build``; Jinja checks each
    template's source checksum, so an edited template is compiled again.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # no writable home: compile every time
    return jinja2.FileSystemBytecodeCache(str(folder))


def make_environment(settings: Settings, theme_dir: Path) -> SandboxedEnvironment:
    """The sandboxed Jinja2 environment for one theme (see themes.template_search_path)."""
    return _environment(tuple(template_search_path(settings, theme_dir)), cache_folder("jinja"))


@functools.lru_cache(maxsize=8)
def _environment(search_path: tuple[Path, ...], bytecode_folder: Path) -> SandboxedEnvironment:
    """One environment per theme per process: the preview's rebuilds reuse compiled templates
    (Jinja reloads a template whose file changed)."""
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(folder) for folder in search_path]),
        bytecode_cache=_bytecode_cache(bytecode_folder),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2", "htm"),
                                            default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    for name, func in list(env.filters.items()):
        if name not in _TOKEN_FILTERS:
            env.filters[name] = _refuse_tokens(name, func)
    env.filters["default"] = env.filters["d"] = _merge_default
    env.filters["urlencode"] = _merge_urlencode
    return env


def _template_error(err: Exception, fallback_where: str, line_offset: int = 0) -> NewsletterError:
    """Turn a Jinja error into a message with the template file and line."""
    if isinstance(err, jinja2.TemplateSyntaxError):
        where = err.filename or err.name or fallback_where
        if where == "<template>":
            where = fallback_where
        line = (err.lineno or 0) + line_offset
        return NewsletterError(f"template syntax error: {err.message}", where=display_path(where),
                               line=line, hint="fix the {{ }} or {% %} tag on that line")
    if isinstance(err, jinja2.TemplateNotFound):
        return NewsletterError(f"template '{err.name}' not found", where=display_path(fallback_where),
                               hint="check the name in {% extends %} or {% include %}")
    where, line = fallback_where, None
    for frame, lineno in traceback.walk_tb(err.__traceback__):
        filename = frame.f_code.co_filename
        if filename.endswith(".j2") or filename == "<template>":
            where, line = (fallback_where if filename == "<template>" else filename), lineno + (
                line_offset if filename == "<template>" else 0)
    message = getattr(err, "message", None) or str(err)
    if isinstance(err, jinja2.UndefinedError) and "merge field" not in message:
        message = f"{message} (a misspelled variable? see docs/themes.md for what templates can use)"
    return NewsletterError(message, where=display_path(where), line=line)


def _render_fragment(env: SandboxedEnvironment, source: str, context: dict[str, Any],
                     where: Path, line_offset: int) -> str:
    try:
        return env.from_string(source).render(context)
    except (jinja2.TemplateError, TypeError) as err:
        raise _template_error(err, str(where), line_offset) from None


def _render_template(env: SandboxedEnvironment, name: str, context: dict[str, Any], theme_dir: Path) -> str:
    try:
        return env.get_template(name).render(context)
    except (jinja2.TemplateError, TypeError) as err:
        raise _template_error(err, str(theme_dir / name)) from None
    except OSError as err:  # a template (or one it includes) that cannot be read: no permission, a folder
        raise os_error(err, err.filename or theme_dir / name, "read the template") from None
    except UnicodeDecodeError:
        raise _not_utf8(env, theme_dir / name) from None


_TEXT_SUFFIXES = (".j2", ".css", ".html", ".txt")


def _not_utf8(env: SandboxedEnvironment, fallback: Path) -> NewsletterError:
    """Which template of the theme is not UTF-8 (Jinja's error does not say), with its line."""
    loader = env.loader
    folders = loader.searchpath if isinstance(loader, jinja2.FileSystemLoader) else []
    for folder in map(Path, folders):
        for path in sorted(p for p in folder.rglob("*") if p.suffix in _TEXT_SUFFIXES and p.is_file()):
            data = path.read_bytes()
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as err:
                return NewsletterError("is not UTF-8 text", where=display_path(path),
                                       line=data[:err.start].count(b"\n") + 1,
                                       hint="save the file as UTF-8 in your editor")
    return NewsletterError("a template is not UTF-8 text", where=display_path(fallback),
                           hint="save the theme's files as UTF-8 in your editor")


def render_theme_page(settings: Settings, theme_dir: Path, name: str, context: dict[str, Any],
                      fallback_dir: Path) -> str:
    """Render a page that is not an email (the archive's index) from the theme's own ``name``, else
    the one in ``fallback_dir``; either can include the theme's files, such as its ``style.css``.

    The fallback stays outside the theme folders so that checks, which search a theme's files for
    the line of a finding, never point into a page the email does not use.
    """
    env = _environment((*template_search_path(settings, theme_dir), fallback_dir), cache_folder("jinja"))
    if env.cache is not None:
        env.cache.clear()  # the theme may have gained its own page since the fallback was loaded
    try:
        return env.get_template(name).render(context)
    except (jinja2.TemplateError, TypeError) as err:
        raise _template_error(err, str(theme_dir / name)) from None


def subscribe_page(settings: Settings) -> str:
    """Where a reader of the web pages signs up: ``newsletter.subscribe_url`` when set, else the form
    ``newsletter serve`` has for the first of ``[serve] lists`` (at ``serve.public_url``, else
    ``base_url``, as the service itself says), else "" (no sign-up page to link)."""
    if settings.subscribe_url:
        return settings.subscribe_url
    service = settings.serve.public_url or settings.base_url
    if not settings.serve.lists or not service:
        return ""
    return f"{service.rstrip('/')}/subscribe/{quote(settings.serve.lists[0], safe='')}"


def _issue_image(articles: tuple[RenderedArticle, ...]) -> tuple[str, str]:
    """The picture a shared link to the issue shows (``og:image``), with its alt text: the first lead
    image, else the first image of an article, as long as its address is absolute (a link preview
    fetches it from elsewhere); ("", "") when the issue has none."""
    candidates = [(a.image, a.article.image_alt or "") for a in articles if a.image]
    for rendered in articles:
        if "<img" in rendered.html:
            fragment = lxml.html.fragment_fromstring(rendered.html, create_parent="div")
            candidates += [((img.get("src") or "").strip(), img.get("alt") or "") for img in fragment.iter("img")]
    for src, alt in candidates:
        if urlsplit(src).scheme in ("http", "https"):
            return markdown.parser().normalizeLink(src), alt  # "lead photo.png" as a valid address
    return "", ""


def issue_base_url(settings: Settings, issue: Issue) -> str:
    """Where the issue's web version lives; relative URLs in articles resolve against it."""
    return f"{settings.base_url}{issue.name}/" if settings.base_url else ""


def _refuse_token_lookalikes(issue: Issue) -> None:
    for article in issue.articles:
        if contains_token_prefix(article.body):
            raise NewsletterError("article contains text that looks like a merge token (NLMRG followed by "
                                  "digits)", where=display_path(article.path),
                                  hint="reword that text; it is reserved for personalization")


def _render_article(article: Article, base: str, column: int) -> RenderedArticle:
    tokens = markdown.parse(article.body)
    sizer = ImageSizer(article.path.parent, column)
    return RenderedArticle(article, markdown.to_html(article.body, base, tokens, sizer),
                           markdown.absolute_url(article.image, base),
                           sizer(article.image) if article.image else None, tokens)


def _article_context(rendered: RenderedArticle, text: PlainText | None, column: int) -> dict[str, Any]:
    """What templates see of an article; ``text`` renders the plain-text fields (text part only)."""
    article = rendered.article
    return {
        "title": article.title,
        "author": article.author,
        "date": article.date,  # a date, or None
        "source_url": article.source_url,
        "summary": article.summary,
        "image": rendered.image,
        # the lead image's size: measured for a local file, else the column's width and no height
        "image_width": rendered.image_size[0] if rendered.image_size else column,
        "image_height": rendered.image_size[1] if rendered.image_size else "",
        "image_alt": article.image_alt if article.image_alt is not None else "",
        "anchor": article.slug,
        "html": Markup(rendered.html),
        "text": text.render(article.body, rendered.tokens).rstrip("\n") if text else "",
        "summary_text": text.render(article.summary).rstrip("\n") if text and article.summary else "",
    }


def render_issue(settings: Settings, issue: Issue, available_fields: Collection[str] | None = None) -> RenderedIssue:
    """Render HTML, text and web versions of ``issue`` once, leaving merge tokens in place."""
    theme = issue.theme or settings.theme
    theme_dir = theme_folder(settings, theme)
    env = make_environment(settings, theme_dir)
    _refuse_token_lookalikes(issue)
    base = issue_base_url(settings, issue)
    registry = MergeRegistry()

    column = content_width(theme_dir)
    articles = tuple(_render_article(article, base, column) for article in issue.articles)
    issue_md = issue.path / ISSUE_FILE
    image, image_alt = _issue_image(articles)
    common = {
        "newsletter": {
            "name": settings.name, "postal_address": settings.postal_address, "base_url": settings.base_url,
            "why": settings.why, "language": settings.language, "from_name": settings.from_name,
            "from_email": settings.from_email, "reply_to": settings.reply_to,
            "subscribe_url": subscribe_page(settings),
        },
        "issue": {
            "subject": issue.subject, "preheader": issue.preheader, "date": issue.date,
            "number": issue.number, "name": issue.name, "image": image, "image_alt": image_alt,
        },
        "web_url": base,
    }

    def render_part(template: str, flavour: str, web: bool) -> tuple[str, str]:
        subscriber = SubscriberFields(registry, flavour, available_fields)
        unsubscribe = MergeToken(registry, "unsubscribe_url", flavour)
        fragment_context = {**common, "subscriber": subscriber, "unsubscribe_url": unsubscribe, "web": web}
        intro_source = _render_fragment(env, issue.intro, fragment_context, issue_md, issue.intro_line - 1)
        text = PlainText(base_url=base)
        if flavour == "T":
            intro = text.render(intro_source).rstrip("\n") if intro_source.strip() else ""
        else:
            intro = Markup(markdown.to_html(intro_source, base, image_size=ImageSizer(issue.path, column)))
        article_contexts = [_article_context(a, text if flavour == "T" else None, column) for a in articles]
        context = {
            **fragment_context,
            "intro": intro,
            "articles": article_contexts,
            "heading": heading,
            "links": text.references().rstrip("\n"),  # numbered link references of the text part
        }
        output = _render_template(env, template, context, theme_dir)
        return output, (intro if flavour == "H" else "")

    html, intro_html = render_part(HTML_TEMPLATE, "H", web=False)
    text, _ = render_part(TEXT_TEMPLATE, "T", web=False)
    web_html, _ = render_part(HTML_TEMPLATE, "H", web=True)
    return RenderedIssue(
        issue=issue, theme=theme, theme_dir=theme_dir, html=html, text=text, web_html=web_html,
        fields=registry.fields, articles=articles, intro_html=str(intro_html), base=base,
    )
