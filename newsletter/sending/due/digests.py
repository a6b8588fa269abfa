"""``newsletter digest FEED --issue-from TEMPLATE --list L``: a draft issue of the feed's items not yet
sent to the list, one article per item (title, summary, image, link).

Each item goes into one digest per list: the journal's ``digest_items`` holds (list, item) once, naming
the digest issue that carries it, and the digest's own send journal holds who got that issue. So a
reader is never mailed an item twice, whatever the feed does (items reordered, edited, new ones added)
and however often the digest is made again. A digest not yet sent is rebuilt in place (the same folder
and id, with the feed's current text and any new items); once its send has started, its items are
settled and new ones go into the next digest. Nothing new: no digest.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import frontmatter

from ...compose.content import (
    ISSUE_FILE,
    Article,
    load_issue,
    new_issue_id,
    read_text,
    slugify,
    split_front_matter,
    write_article,
)
from ...compose.feed import FeedItem, read_feed
from ...compose.importing import finish_body
from ...config import Settings
from ...errors import NewsletterError
from ...lists import check_list_name
from .. import journal as jn
from . import schedules

KEPT = ("subject", "preheader", "theme", "number")  # what a digest takes from its template's front matter


@dataclass(frozen=True)
class Digest:
    folder: Path
    issue_id: str
    items: tuple[FeedItem, ...]
    rebuilt: bool  # an unsent digest made again in place
    scheduled_at: dt.datetime | None  # the rebuilt digest was scheduled: schedule it again with its new content


def _draft(db: jn.JournalDB, list_name: str) -> str:
    """The id of the list's digest whose items are recorded but whose send has not started ("" for none)."""
    rows = db.execute("SELECT DISTINCT issue FROM digest_items WHERE list=? AND issue NOT IN (SELECT sends.issue "
                      "FROM sends JOIN deliveries ON deliveries.send = sends.id WHERE sends.list=?)",
                      (list_name, list_name)).fetchall()
    return str(rows[-1][0]) if rows else ""


def _taken(db: jn.JournalDB, list_name: str, draft: str) -> set[str]:
    rows = db.execute("SELECT item FROM digest_items WHERE list=? AND issue<>?", (list_name, draft)).fetchall()
    return {str(row[0]) for row in rows}


def _folder_of(settings: Settings, issue_id: str) -> Path | None:
    for candidate in sorted(settings.issues_dir.glob(f"*/{ISSUE_FILE}")):
        text = candidate.read_text(encoding="utf-8-sig", errors="replace")
        if re.search(rf"(?m)^id: {re.escape(issue_id)}\s*$", text):
            return candidate.parent
    return None


def make_digest(settings: Settings, feed: str, template: Path, list_name: str, date: dt.date) -> Digest | None:
    """Write the digest of ``feed``'s items not yet sent to ``list_name`` (None when there are none)."""
    check_list_name(list_name)
    settings.list_path(list_name)
    head = _template(template)
    items = read_feed(feed)
    database = jn.open_database(jn.location_of(settings))
    try:
        draft = _draft(database, list_name)
        taken = _taken(database, list_name, draft)
        fresh = list({item.identity: item for item in items if item.identity not in taken}.values())
        folder = _folder_of(settings, draft) if draft else None
        if not fresh:
            return None
        rebuilt = folder is not None
        issue_id = draft if rebuilt else new_issue_id()
        folder = folder or _new_folder(settings, head, date)
        _write(folder, head, issue_id, date, fresh)
        with database.transaction():
            # the unsent digest's items move to this one (the same, rebuilt, unless its folder was deleted)
            database.execute("DELETE FROM digest_items WHERE list=? AND issue IN (?, ?)", (list_name, issue_id, draft))
            for item in fresh:
                database.execute("INSERT INTO digest_items (list, item, issue, title, link, added) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", (list_name, item.identity, issue_id, item.title,
                                                               item.link, time.time()))
        scheduled_at = None
        if rebuilt:
            journal = jn.Journal(database, issue_id, list_name, create=False)
            found = schedules.of_send(database, journal.send) if journal.send >= 0 else None
            if found is not None and found.state == schedules.SCHEDULED:
                scheduled_at = dt.datetime.fromisoformat(found.written)
        return Digest(folder, issue_id, tuple(fresh), rebuilt, scheduled_at)
    finally:
        database.close()


def _template(template: Path) -> dict[str, Any]:
    """The template's front matter a digest keeps, and its introduction (``body``)."""
    load_issue(template)  # a template that is not an issue folder is said as such, with its line
    path = template / ISSUE_FILE
    meta, body, _ = split_front_matter(read_text(path), path)
    head = {key: meta[key] for key in KEPT if meta.get(key) not in (None, "")}
    if not head.get("subject"):
        raise NewsletterError("the digest's template has no subject", where=path,
                              hint="add subject: ... to its front matter")
    head["body"] = body
    return head


def _new_folder(settings: Settings, head: dict[str, Any], date: dt.date) -> Path:
    stem = f"{date.isoformat()}-{slugify(str(head['subject'])) or 'digest'}"
    folder, number = settings.issues_dir / stem, 1
    while folder.exists():
        number += 1
        folder = settings.issues_dir / f"{stem}-{number}"
    return folder


def _write(folder: Path, head: dict[str, Any], issue_id: str, date: dt.date, items: list[FeedItem]) -> None:
    """issue.md and one article per item (a rebuilt digest's old articles replaced)."""
    folder.mkdir(parents=True, exist_ok=True)
    old = folder / ISSUE_FILE
    if old.exists():
        meta, _, _ = split_front_matter(read_text(old), old)
        for name in meta.get("articles") or []:
            (folder / str(name)).unlink(missing_ok=True)
    names = []
    for number, item in enumerate(items, 1):
        name = f"{number:02d}-{slugify(item.title) or 'item'}.md"
        body = finish_body(item.summary or item.title, item.link or None)
        write_article(folder / name, Article(path=folder / name, title=item.title, body=body, source_url=item.link,
                                             image=item.image, image_alt=item.title if item.image else None))
        names.append(name)
    fields = {"id": issue_id, **{k: v for k, v in head.items() if k != "body"}, "date": date.isoformat(),
              "articles": names}
    post = frontmatter.Post(str(head["body"]).strip() + "\n", **fields)
    old.write_text(frontmatter.dumps(post, sort_keys=False, allow_unicode=True, width=1000) + "\n", encoding="utf-8")
