"""Articles and issues: the writer's files read into plain, validated data.

An issue is a folder ``issues/<YYYY-MM-DD>-<slug>/`` holding ``issue.md``
(front matter + the editor's introduction) and one Markdown file per
article. Loading never renders anything; it only reads, validates and
reports problems with the file and line to fix.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import frontmatter
import yaml
from frontmatter.default_handlers import YAMLHandler

from ..errors import NewsletterError, display_path, os_error

ISSUE_FILE = "issue.md"
ARTICLE_FIELDS = ("title", "author", "date", "source_url", "summary", "image", "image_alt")
ISSUE_FIELDS = ("id", "subject", "preheader", "date", "number", "theme", "articles", "draft",
                "sent",  # sent: the record a live send writes (sending/sent_record.py)
                "subject_variants", "untracked_links",  # an A/B test's subjects; links never counted (stats)
                "send_at",  # when `send` holds the issue until (sending/due/schedules.py)
                "send_to",  # the lists `send --due` schedules it for by itself, at send_at (docs/ci.md)
                "delay")  # a sequence step's wait after the step before it (sending/due/delays.py)
MAX_SUBJECT_VARIANTS = 4
_DATED_FOLDER = re.compile(r"^(\d{4}-\d{2}-\d{2})-(.+)$")


@dataclass(frozen=True)
class Article:
    """One article of an issue: its front matter and Markdown body."""

    path: Path
    title: str
    body: str
    author: str = ""
    source_url: str = ""
    summary: str = ""
    image: str = ""
    image_alt: str | None = None
    date: dt.date | None = None  # when the article was first published (an import keeps a byline's date)
    body_line: int = 1  # line of the file where the Markdown body starts

    @property
    def slug(self) -> str:
        return slugify(self.title) or self.path.stem


@dataclass(frozen=True)
class Issue:
    """An issue folder read from disk, articles in the order the writer chose."""

    path: Path
    subject: str
    preheader: str
    date: dt.date
    intro: str
    articles: tuple[Article, ...]
    number: int | None = None
    theme: str | None = None
    intro_line: int = 1
    missing_articles: tuple[str, ...] = field(default=())
    draft: bool = False  # `draft: true` keeps the issue out of the web archive until it is published
    id: str = ""  # stable identity from the front matter (given by `new` or the first send); "" until then
    subject_variants: tuple[str, ...] = ()  # `send --ab` sends each to a slice of the list (docs/stats.md)
    untracked_links: tuple[str, ...] = ()  # addresses click counting leaves as they are ("...*": a prefix)
    send_at: dt.datetime | None = None  # `send_at:`: send it then (scheduled by `send`, sent by `send --due`)
    send_to: tuple[str, ...] = ()  # `send_to:`: lists `send --due` schedules it for at send_at (a git-only publish)
    delay: str = ""  # `delay:` of a sequence step, as written ("0", "3d", "10d 09:00"); checked by the sequence

    @property
    def name(self) -> str:
        """The folder name, used for build and outbox folders and the web archive."""
        return self.path.name


def slugify(text: str) -> str:
    """A lowercase ASCII slug for folder and anchor names."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:60].strip("-")


def read_text(path: Path) -> str:
    """Read a UTF-8 file (a BOM is allowed), or say which file is not UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise NewsletterError("file not found", where=path) from None
    except IsADirectoryError:
        raise NewsletterError("is a folder, expected a file", where=path) from None
    except OSError as err:  # no permission, a link loop, a failing disk: one clear error, not a traceback
        raise os_error(err, path, "read") from None
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise NewsletterError(
            "is not UTF-8 text", where=path, line=line,
            hint="save the file as UTF-8 in your editor",
        ) from None


_DATE_LIKE = re.compile(r"(?<![\w-])(\d{4})-(\d{1,2})-(\d{1,2})(?![\w-])")


def _impossible_date(raw_meta: str) -> tuple[int | None, str]:
    """The line (1-based in ``raw_meta``) and text of the first YYYY-MM-DD there that is no real date."""
    for number, text in enumerate(raw_meta.splitlines(), 1):
        for match in _DATE_LIKE.finditer(text):
            try:
                dt.date(*(int(part) for part in match.groups()))
            except ValueError:
                return number, match[0]
    return None, "a YYYY-MM-DD value"


def split_front_matter(text: str, path: Path) -> tuple[dict[str, Any], str, int]:
    """Return (front matter, body, line where the body starts) of a Markdown file."""
    if not text.startswith("---"):
        return {}, text, 1
    raw_meta, body = YAMLHandler().split(text)
    try:
        meta = yaml.safe_load(raw_meta) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None  # raw_meta starts after '---' but keeps its line break
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise NewsletterError(
            f"front matter is not valid YAML: {problem}", where=path, line=line,
            hint="check the quoting and indentation between the '---' lines",
        ) from None
    except ValueError:  # YAML reads 2026-13-45 as a date, and the date does not exist
        number, value = _impossible_date(raw_meta)
        raise NewsletterError(
            f"front matter holds a date that does not exist: {value}", where=path,
            line=number,  # raw_meta's first line is the rest of the opening '---' line
            hint="write it as YYYY-MM-DD with a real month and day, e.g. date: 2026-03-03",
        ) from None
    if not isinstance(meta, dict):
        raise NewsletterError(
            "front matter must be 'key: value' lines", where=path, line=2,
        )
    body_line = text[: len(text) - len(body)].count("\n") + 1 if body else text.count("\n") + 1
    return meta, body, body_line


def _string_field(meta: dict[str, Any], key: str, path: Path, text: str = "") -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        raise NewsletterError(f"front matter field '{key}' must be text", where=path,
                              line=_field_line(text, key))
    if isinstance(value, bool):  # YAML reads true, false, yes, no, on and off unquoted as true or false
        raise NewsletterError(f"front matter field '{key}' must be text, not {str(value).lower()} (YAML reads an "
                              "unquoted true, false, yes, no, on or off as true or false)", where=path,
                              line=_field_line(text, key),
                              hint=f"put the text in quotes, like {key}: \"Yes\"")
    return str(value).strip()


def _field_line(text: str, key: str) -> int | None:
    """The line of the front matter that sets ``key`` (``key: ...``), for pointing at it."""
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---"), len(lines))
    return next((number for number, line in enumerate(lines[:end], start=1)
                 if re.match(rf"{re.escape(key)}\s*:", line)), None)


def _first_text_line(body: str, body_line: int) -> int:
    """The line of the file where ``body.strip()`` starts (the body starts at ``body_line`` with the blank
    lines after the front matter, which stripping drops): what a template error's line is counted from."""
    return body_line + body[:len(body) - len(body.lstrip())].count("\n")


def _check_known_fields(meta: dict[str, Any], known: tuple[str, ...], path: Path) -> None:
    import difflib

    for key in meta:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known fields: {', '.join(known)}"
            raise NewsletterError(f"unknown front matter field '{key}'", where=path, hint=hint)


def load_article(path: Path) -> Article:
    """Read and validate one article file."""
    text = read_text(path)
    meta, body, body_line = split_front_matter(text, path)
    _check_known_fields(meta, ARTICLE_FIELDS, path)
    title = _string_field(meta, "title", path, text)
    if not title:
        raise NewsletterError("article has no 'title' in its front matter", where=path,
                              hint="add 'title: ...' between the '---' lines")
    if not body.strip():
        raise NewsletterError("article is empty", where=path,
                              hint="write the article below the front matter, or remove it from the issue")
    alt = meta.get("image_alt")
    return Article(
        path=path,
        title=title,
        body=body.strip() + "\n",
        author=_string_field(meta, "author", path, text),
        source_url=_string_field(meta, "source_url", path, text),
        summary=_string_field(meta, "summary", path, text),
        image=_string_field(meta, "image", path, text),
        image_alt=None if alt is None else _string_field(meta, "image_alt", path, text),
        date=_article_date(meta, path),
        body_line=_first_text_line(body, body_line),
    )


def _article_date(meta: dict[str, Any], path: Path) -> dt.date | None:
    value = meta.get("date")
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise NewsletterError(f"article date '{value}' is not a date", where=path,
                              hint="write it as YYYY-MM-DD, e.g. date: 2026-03-03") from None


def _issue_date(meta: dict[str, Any], folder: Path, path: Path) -> dt.date:
    value = meta.get("date")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if value:
        try:
            return dt.date.fromisoformat(str(value).strip())
        except ValueError:
            raise NewsletterError(f"date '{value}' is not a date", where=path,
                                  hint="write it as YYYY-MM-DD") from None
    match = _DATED_FOLDER.match(folder.name)
    if match:
        try:
            return dt.date.fromisoformat(match.group(1))
        except ValueError:
            pass
    return dt.date.today()


def _article_path(folder: Path, name: str, issue_file: Path, text: str) -> Path:
    """The file of an article listed in issue.md, which must lie inside the issue folder.

    An entry like ``../../../outside.md`` or ``/etc/passwd`` (or a link that
    resolves outside) would put any file on the disk into an email sent to the
    whole list, so it is refused with the line that names it.
    """
    article_path = folder / name
    try:
        resolved = article_path.resolve()
    except (OSError, RuntimeError):  # a link loop
        resolved = article_path
    if resolved == folder or not resolved.is_relative_to(folder):
        raise NewsletterError(
            f"article '{name}' is not inside the issue folder", where=issue_file,
            line=_line_naming(text, name),
            hint=f"move the file into {display_path(folder)} and list it by its name there, like 'article.md'",
        )
    return article_path


def _line_naming(text: str, value: str) -> int | None:
    """The line of the front matter that lists ``value`` (a '- value' item, else any line holding it)."""
    lines = text.split("\n")
    end = next((i for i, line in enumerate(lines[1:], start=1) if line.strip() == "---"), len(lines))
    for number, line in enumerate(lines[:end], start=1):
        if line.strip().removeprefix("-").strip().strip("'\"") == value:
            return number
    return next((number for number, line in enumerate(lines[:end], start=1) if value in line), None)


def load_issue(folder: Path) -> Issue:
    """Read an issue folder and its articles; missing article files are recorded, not fatal."""
    folder = Path(folder)
    if not folder.is_dir():
        hint = "create one with: newsletter new \"Title\""
        if folder.name == ISSUE_FILE:
            hint = f"pass the folder, not {ISSUE_FILE}"
        raise NewsletterError("issue folder not found", where=folder, hint=hint)
    folder = folder.resolve()  # "." or a symlink name the same issue (and the same journal rows) as its path
    path = folder / ISSUE_FILE
    if not path.exists():
        raise NewsletterError(f"no {ISSUE_FILE} in the issue folder", where=folder,
                              hint="create one with: newsletter new \"Title\"")
    text = read_text(path)
    meta, body, body_line = split_front_matter(text, path)
    _check_known_fields(meta, ISSUE_FIELDS, path)
    names = meta.get("articles") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise NewsletterError("'articles' must be a list of file names", where=path,
                              hint="write one '- file.md' line per article under 'articles:'")
    number = meta.get("number")
    if number is not None and (isinstance(number, bool) or not isinstance(number, int) or number < 1):
        raise NewsletterError(f"'number' must be a whole number from 1 up (the issue's number in the series), not "
                              f"{str(number).lower() if isinstance(number, bool) else repr(number)}",
                              where=path, line=_field_line(text, "number"),
                              hint="write it like number: 12, or remove the line for an issue without a number")
    articles: list[Article] = []
    missing: list[str] = []
    for name in names:
        article_path = _article_path(folder, name, path, text)
        if not article_path.exists():
            missing.append(name)
            continue
        articles.append(load_article(article_path))
    theme = meta.get("theme")
    draft = meta.get("draft", False)
    if not isinstance(draft, bool):
        raise NewsletterError(f"'draft' must be true or false, not '{draft}'", where=path,
                              line=_field_line(text, "draft"))
    return Issue(
        path=folder,
        subject=_string_field(meta, "subject", path, text),
        preheader=_string_field(meta, "preheader", path, text),
        date=_issue_date(meta, folder, path),
        intro=body.strip(),
        articles=tuple(articles),
        number=number,
        theme=str(theme) if theme else None,
        intro_line=_first_text_line(body, body_line),
        missing_articles=tuple(missing),
        draft=draft,
        id=checked_issue_id(meta.get("id"), path),
        subject_variants=_subject_variants(meta, path, text),
        untracked_links=_text_list(meta, "untracked_links", path, text),
        send_at=_send_at(meta.get("send_at"), path, text),
        send_to=_send_to(meta, path, text),
        delay="" if meta.get("delay") is None else str(meta["delay"]).strip(),
    )


def _text_list(meta: dict[str, Any], key: str, path: Path, text: str) -> tuple[str, ...]:
    value = meta.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and item.strip() for item in value):
        raise NewsletterError(f"'{key}' must be a list of texts, one '- ...' line each", where=path,
                              line=_line_naming(text, f"{key}:"))
    return tuple(item.strip() for item in value)


def _subject_variants(meta: dict[str, Any], path: Path, text: str) -> tuple[str, ...]:
    variants = _text_list(meta, "subject_variants", path, text)
    if (variants and not 2 <= len(variants) <= MAX_SUBJECT_VARIANTS) or len(set(variants)) != len(variants):
        raise NewsletterError(f"'subject_variants' needs 2 to {MAX_SUBJECT_VARIANTS} different subjects, not "
                              f"{len(set(variants))}", where=path,
                              line=_line_naming(text, "subject_variants:"),
                              hint="list the subjects to test, one '- ...' line each, or remove the field")
    return variants


def _send_to(meta: dict[str, Any], path: Path, text: str) -> tuple[str, ...]:
    """``send_to:`` as list names (one name, or a list of them), each checked as ``--list`` is; it needs
    ``send_at:`` (when to send)."""
    from ..list_name_rule import check_list_name

    value = meta.get("send_to")
    if value is None:
        return ()
    names = [value] if isinstance(value, str) else value
    line = _line_naming(text, "send_to")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise NewsletterError("'send_to' must name the lists to send the issue to, like send_to: readers",
                              where=path, line=line)
    if meta.get("send_at") in (None, ""):
        raise NewsletterError("'send_to' needs 'send_at': when to send it", where=path, line=line,
                              hint='add send_at: "2027-03-02T09:00+01:00" (quoted), or remove send_to')
    try:
        return tuple(check_list_name(n.strip()) for n in names)
    except NewsletterError as err:
        raise NewsletterError(f"'send_to': {err.reason}", where=path, line=line, hint=err.hint) from None


def _send_at(value: Any, path: Path, text: str) -> dt.datetime | None:
    """``send_at:`` as a moment (a time without a zone is the machine's local time)."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip())
        except ValueError:
            raise NewsletterError(f"'send_at' is not a date and time: {value!r}", where=path,
                                  line=_line_naming(text, "send_at"),
                                  hint='write it like send_at: "2027-03-02T09:00+01:00" (quoted)') from None
    return moment if moment.tzinfo else moment.astimezone()


_ISSUE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


def checked_issue_id(value: Any, path: Path) -> str:
    """The issue's ``id:`` as a plain name (letters, digits, '.', '_', '-'), or "" when there is none.

    The id keys the send journal and names the send's lock file, so a hand-edited one like
    ``../../x`` must not reach a path."""
    if value is None or value == "":
        return ""
    text = str(value).strip() if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if text is None or not _ISSUE_ID.match(text):
        raise NewsletterError(f"'id' must be a plain name of letters, digits, '.', '_' or '-', not {value!r}",
                              where=path,
                              hint="restore the id a send wrote (see git log -p issue.md), or delete the 'id:' "
                                   "line so that the next send gives the issue a new one")
    return text


def require_complete(issue: Issue) -> None:
    """Refuse to build an issue whose article list names files that do not exist."""
    if issue.missing_articles:
        name = issue.missing_articles[0]
        raise NewsletterError(
            f"article '{name}' is listed but the file does not exist",
            where=issue.path / ISSUE_FILE,
            hint=f"create {display_path(issue.path / name)} or remove it from 'articles'",
        )


PLACEHOLDER_INTRO = "Write a short introduction here."  # `newsletter check` warns while it is left in


def new_issue_id() -> str:
    """A stable identity for an issue: the send journal knows it by this, whatever its folder is called."""
    import uuid

    return str(uuid.uuid4())


def write_issue_id(folder: Path, issue_id: str) -> str:
    """Put ``id: <issue_id>`` first in issue.md's front matter, leaving every other byte of the file as it
    was, and return the id the issue has: another send that got there first (the file is locked while
    this one looks) keeps its own."""
    import fcntl

    path = Path(folder) / ISSUE_FILE
    try:
        with open(path, "r+b") as file:
            fcntl.flock(file, fcntl.LOCK_EX)
            data = file.read()
            meta, _, _ = split_front_matter(data.decode("utf-8-sig", "replace"), path)
            if meta.get("id"):
                return checked_issue_id(meta["id"], path)
            first = data.find(b"\n")
            if first < 0 or data[:first].rstrip(b"\r").lstrip(b"\xef\xbb\xbf") != b"---":
                raise NewsletterError("has no front matter to record the issue's id in", where=path,
                                      hint="start the file with a '---' line and the issue's fields")
            newline = b"\r\n" if data[:first].endswith(b"\r") else b"\n"
            file.seek(0)
            file.write(data[:first + 1] + f"id: {issue_id}".encode() + newline + data[first + 1:])
    except OSError as err:
        raise NewsletterError(f"cannot record the issue's id: {err.strerror}", where=path,
                              hint=f"make the file writable, or add the line 'id: {issue_id}' to its front "
                                   "matter yourself") from None
    return issue_id


def write_article(path: Path, article: Article) -> None:
    """Write an article as Markdown with front matter (fields in the documented order)."""
    meta: dict[str, Any] = {"title": article.title}
    for key in ("author", "date", "source_url", "summary", "image"):
        value = getattr(article, key)
        if value:
            meta[key] = value
    if article.image_alt is not None and article.image:
        meta["image_alt"] = article.image_alt
    post = frontmatter.Post(article.body.strip() + "\n", **meta)
    path.write_text(frontmatter.dumps(post, sort_keys=False, allow_unicode=True, width=1000) + "\n", encoding="utf-8")
