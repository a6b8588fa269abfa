"""Turn scraped text, an HTML page or a Markdown file into a clean Article.

One reader per kind of source, each declaring the file extensions it reads
(a file with any other extension is sniffed). Scraped text and web pages are
turned into Markdown by their own module (``scraped.py``, ``webpage.py``) and
then pass through the same finishing steps here: sections start at ``###``
(the email shows article titles as ``<h2>``), relative links are made
absolute against the page's address, links with a scheme outside the
allowlist (``javascript:``, ``data:``...) lose their target and text that looks
like an HTML tag is escaped, because an imported article is data and must
never carry markup into the email. Markdown files are the writer's own and
are kept as they are, only validated.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from ..errors import NewsletterError, display_path, os_error
from . import scraped
from .content import ISSUE_FILE, Article, load_article, read_text, slugify, split_front_matter, write_article
from .issue_folder import add_article_to_issue

LINK_SCHEMES = frozenset({"http", "https", "mailto"})
IMAGE_SCHEMES = frozenset({"http", "https"})
FIRST_SECTION_LEVEL = 3  # "###": the email shows the article title one level above


# --- the API ----------------------------------------------------------------


def import_article(source: Path, *, url: str | None = None) -> Article:
    """Read one source file into an Article.

    The Article's ``path`` is the bare file name it gets inside an issue
    (``<slug>.md``), since the article is not written anywhere yet. ``url``
    is the page's address: it becomes ``source_url`` and the base for
    relative links (for a web page, its canonical URL is used when no
    ``url`` is given).
    """
    source = Path(source)
    if url is not None:
        url = checked_url(url)
    article = reader_for(source).read(source, url)
    name = slugify(article.title) or slugify(source.stem) or "article"
    return replace(article, path=Path(f"{name}.md"))


def import_into_issue(source: Path, issue_dir: Path, *, url: str | None = None, overwrite: bool = False) -> Path:
    """Write the imported article as ``<issue_dir>/<slug>.md``, list it in issue.md, return its path.

    An existing article file is never replaced unless ``overwrite`` is true.
    """
    issue_dir = Path(issue_dir)
    issue_file = issue_dir / ISSUE_FILE
    if not issue_file.is_file():
        what = "issue folder not found" if not issue_dir.is_dir() else f"no {ISSUE_FILE} in the issue folder"
        raise NewsletterError(what, where=issue_dir,
                              hint='create the issue first with: newsletter new "Title"')
    split_front_matter(read_text(issue_file), issue_file)  # a broken issue.md fails before anything is written
    article = import_article(source, url=url)
    target = issue_dir / article.path.name
    if target.exists() and not overwrite and not _same_file(target, Path(source)):
        raise NewsletterError(
            "an article file with this name already exists", where=target,
            hint="pass --force to replace it, or rename the existing file",
        )
    write_article(target, replace(article, path=target))
    add_article_to_issue(issue_dir, target.name)
    return target


def import_warnings(article_path: Path, *, page_address_known: bool) -> list[tuple[str, str]]:
    """(warning, fix) for what an imported article would ship broken, said at once (``newsletter
    check`` reports the same, with their lines): a local image the issue folder does not hold (a
    draft's images stay beside the draft), and, when the page's address is unknown, relative
    addresses the page wrote for its own site, which land on the newsletter's own site."""
    from ..config import find_root, load_settings
    from .relative_links import relative_addresses

    issue_dir = article_path.parent
    try:
        base_url = load_settings(find_root(issue_dir)).base_url
    except NewsletterError:
        base_url = ""
    base = f"{base_url}{issue_dir.name}/" if base_url else ""
    warnings: list[tuple[str, str]] = []
    own_site_fix = ("import it again with --url <the page's web address>, "
                    "or write full https:// addresses in the article")
    for address in relative_addresses(load_article(article_path).body, issue_dir, base):
        if address.tag == "img" and address.local is not None and not address.local.is_file():
            warnings.append((f"image '{address.url}' is not in the issue folder, so every reader would get a "
                             "broken image", f"copy it to {display_path(address.local)}"))
        elif address.on_own_site and not page_address_known:
            warnings.append((f"{address.kind} '{address.url}' was relative in the page; in the email it points "
                             f"to {address.resolved or 'an address'} on the newsletter's own site", own_site_fix))
    return warnings


def word_count(markdown: str) -> int:
    """Words a reader sees in a Markdown body (link targets and image sources not counted)."""
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", markdown)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return len(re.findall(r"[^\W_]+(?:['’.\-][^\W_]+)*", text))


def checked_url(url: str) -> str:
    """The page address given by the user, if it is a full http(s) address."""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise NewsletterError(f"--url '{url}' is not a full web address",
                              hint="give the page's address, e.g. https://example.org/2024/the-article")
    return url.strip()


# --- readers: one per kind of source ---------------------------------------


@dataclass(frozen=True)
class Reader:
    """How to read one kind of source file into an Article."""

    kind: str
    file_extensions: tuple[str, ...]
    read: Callable[[Path, str | None], Article]


def read_markdown(source: Path, url: str | None) -> Article:
    """A Markdown article with front matter, kept as it is; ``url`` only fills a missing source_url."""
    article = load_article(source)
    if url and not article.source_url:
        article = replace(article, source_url=url)
    return article


def read_scraped_text(source: Path, url: str | None) -> Article:
    """Text copied or scraped from a web page: title on the first line, site clutter around it."""
    found = scraped.clean(read_text(source))
    if not found.title:
        raise NewsletterError("has no text to import", where=source)
    return _article(source, title=found.title, author=found.author, body=found.body, url=url, date=found.date)


def read_web_page(source: Path, url: str | None) -> Article:
    """A saved web page: the main article is extracted, navigation, ads and comments are left behind."""
    from . import webpage  # trafilatura takes a while to import: only when a page is read

    page = webpage.extract(read_bytes(source), source)
    return _article(source, title=page.title, author=page.author, body=page.body, url=url or page.url,
                    summary=page.summary, date=page.date)


READERS: tuple[Reader, ...] = (
    Reader("markdown", (".md", ".markdown", ".mdown", ".mkd"), read_markdown),
    Reader("web page", (".html", ".htm", ".xhtml"), read_web_page),
    Reader("scraped text", (".txt", ".text"), read_scraped_text),
)


def reader_for(source: Path) -> Reader:
    """The reader for a file's extension, or the one its first bytes suggest."""
    by_kind = {reader.kind: reader for reader in READERS}
    for reader in READERS:
        if source.suffix.lower() in reader.file_extensions:
            return reader
    head = read_bytes(source)[:4096]
    known = ", ".join(ext for reader in READERS for ext in reader.file_extensions[:2])
    try:
        text = head.decode("utf-8-sig") if b"\0" not in head else None
    except UnicodeDecodeError as err:  # a multi-byte character cut at 4096 is still text
        text = head[: err.start].decode("utf-8") if err.start > len(head) - 4 else None
    if text is None:
        raise NewsletterError(f"cannot import a '{source.suffix or 'extensionless'}' file: it is not text",
                              where=source,
                              hint=f"save the article as scraped text, a web page or Markdown ({known})")
    start = text.lstrip()
    if start.startswith("---"):
        return by_kind["markdown"]
    if start.startswith("<") or "<html" in text.lower():
        return by_kind["web page"]
    return by_kind["scraped text"]


def read_bytes(path: Path) -> bytes:
    """A source file's bytes, or an error naming the file."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise NewsletterError("file not found", where=path) from None
    except IsADirectoryError:
        raise NewsletterError("is a folder, expected a file", where=path) from None
    except OSError as err:
        raise os_error(err, path, "read") from None


def _article(source: Path, *, title: str, author: str, body: str, url: str | None, summary: str = "",
             date: dt.date | None = None) -> Article:
    """The finished Article; ``url``, the page's address, is also the base for its relative links."""
    body = finish_body(body, url)
    if not body.strip():
        raise NewsletterError("found no article text to import", where=source,
                              hint="check that this is the article's page or text")
    return Article(path=source, title=title, body=body, author=author, source_url=url or "", summary=summary,
                   date=date)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


# --- finishing steps shared by scraped text and web pages -------------------


def finish_body(markdown: str, base: str | None) -> str:
    """Imported Markdown made consistent and safe: section levels, links, no raw HTML, tidy spacing."""
    lines = markdown.split("\n")
    lines = shift_headings(lines)
    lines = _outside_code(lines, lambda line: safe_inline(line, base))
    return tidy_blank_lines(lines)


def shift_headings(lines: list[str]) -> list[str]:
    """Demote headings so the highest one is ``###`` (levels below stay relative)."""
    levels = [len(m.group(1)) for m in map(_HEADING.match, _outside_code(lines, None)) if m]
    shift = FIRST_SECTION_LEVEL - min(levels) if levels and min(levels) < FIRST_SECTION_LEVEL else 0
    if not shift:
        return lines

    def demote(line: str) -> str:
        m = _HEADING.match(line)
        return "#" * min(6, len(m.group(1)) + shift) + line[m.end(1):] if m else line

    return _outside_code(lines, demote)


def safe_inline(line: str, base: str | None) -> str:
    """One line of Markdown with links checked and made absolute, and tag-like text escaped."""
    return _INLINE.sub(lambda m: _safe_token(m, base), line)


def safe_url(url: str, base: str | None, schemes: frozenset[str] = LINK_SCHEMES) -> str | None:
    """``url`` made absolute against ``base``; None when its scheme is not on the allowlist."""
    # Browsers ignore whitespace, control characters and entities inside a scheme: so do we.
    probe = re.sub(r"[\x00-\x20\x7f\\]+", "", html.unescape(url)).lower()
    head = re.split(r"[/?#]", probe, maxsplit=1)[0]
    if ":" in head:
        return url if head.split(":", 1)[0] in schemes else None
    if not url or not base:
        return url
    return urljoin(base, url)


def tidy_blank_lines(lines: list[str]) -> str:
    """Trailing spaces gone, at most one blank line in a row, one newline at the end."""
    text = "\n".join(line.rstrip() for line in lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n") + "\n"


_HEADING = re.compile(r"^(#{1,6})(?=\s)")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_INLINE = re.compile(
    r"""(?P<keep>\\.|(?P<code>`+).+?(?P=code))                      # an escaped character, a code span
      | (?P<bang>!?)\[(?P<text>(?:[^\[\]\\]|\\.|\[[^\]]*\])*)\]     # [text] or ![alt]
        \(\s*(?P<dest><[^<>\n]*>|(?:[^()\s]|\([^()\s]*\))*)          # (url) or (<url>)
        (?P<title>\s+(?:"[^"]*"|'[^']*'))?\s*\)                     # optional "title"
      | <(?P<auto>[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^<>\s]*)>           # <https://autolink>
      | (?P<tag><(?=[A-Za-z/!?]))                                   # the start of raw HTML
    """,
    re.VERBOSE,
)
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?")


def _safe_token(m: re.Match[str], base: str | None) -> str:
    if m.group("keep"):
        return m.group(0)
    if m.group("tag"):
        return "\\<"
    if m.group("auto") is not None:
        url = safe_url(m.group("auto"), None)
        return m.group(0) if url else "\\<" + m.group(0)[1:]
    image = m.group("bang") == "!"
    text = safe_inline(m.group("text"), base)
    dest = m.group("dest")
    url = safe_url(dest[1:-1] if dest.startswith("<") else dest, base, IMAGE_SCHEMES if image else LINK_SCHEMES)
    if url is None:
        return "" if image else text
    url = url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E")
    if "(" in url or ")" in url:
        url = f"<{url}>"
    return f"{m.group('bang')}[{text}]({url}{m.group('title') or ''})"


def _outside_code(lines: list[str], change: Callable[[str], str] | None) -> list[str]:
    """Apply ``change`` to every line outside fenced code blocks (with None: return only those lines)."""
    out: list[str] = []
    fence = ""
    for line in lines:
        m = _FENCE.match(line)
        if fence:
            fence = "" if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) else fence
            if change is not None:
                out.append(line)
        elif m:
            fence = m.group(1)
            if change is not None:
                out.append(line)
        elif change is None:
            out.append(line)
        else:
            ref = _REFERENCE.match(line)
            if ref and safe_url(ref.group(1), None) is None:
                continue  # a reference definition pointing at javascript: and the like
            out.append(change(line))
    return out
