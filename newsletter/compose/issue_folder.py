"""An issue folder as the writer's commands make and extend it: ``newsletter new`` writes issue.md with the
fields to fill in, and ``newsletter import`` adds an article (written by content.write_article) to the issue's list."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import frontmatter

from ..errors import NewsletterError
from .content import ISSUE_FILE, PLACEHOLDER_INTRO, new_issue_id, read_text, slugify, split_front_matter


def new_issue(issues_dir: Path, title: str, date: dt.date, number: int | None = None) -> Path:
    """Create ``issues/<date>-<slug>/issue.md`` with front matter to fill in; never overwrite."""
    slug = slugify(title)
    if not slug:
        raise NewsletterError(f"title '{title}' has no letters or digits to name a folder with")
    folder = issues_dir / f"{date.isoformat()}-{slug}"
    if folder.exists():
        raise NewsletterError("issue folder already exists", where=folder,
                              hint="choose another title or date")
    folder.mkdir(parents=True)
    meta: dict[str, Any] = {"id": new_issue_id(), "subject": title, "preheader": "", "date": date.isoformat()}
    if number is not None:
        meta["number"] = number
    meta["articles"] = []
    post = frontmatter.Post(
        f"{PLACEHOLDER_INTRO} You can greet each reader: "
        "Hi {{ subscriber.name | default('there') }}!\n",
        **meta,
    )
    (folder / ISSUE_FILE).write_text(frontmatter.dumps(post, sort_keys=False) + "\n", encoding="utf-8")
    return folder


def add_article_to_issue(folder: Path, filename: str) -> None:
    """Append an article file name to the issue's ``articles`` list (once)."""
    path = folder / ISSUE_FILE
    text = read_text(path)
    meta, body, _ = split_front_matter(text, path)
    names = list(meta.get("articles") or [])
    if filename in names:
        return
    names.append(filename)
    meta["articles"] = names
    post = frontmatter.Post(body.strip() + "\n", **meta)
    path.write_text(frontmatter.dumps(post, sort_keys=False, allow_unicode=True, width=1000) + "\n",
                    encoding="utf-8")
