"""An issue's stable id, given on its first live send and written into issue.md.

An issue is known to the journal by its id (front matter ``id:``), not its folder's name: a renamed or
copied folder is the same issue. A live send (or a schedule) of an issue without one gives it one now,
unless the journal already knows the same issue under an id that this copy lacks.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..compose.content import Issue, load_issue, new_issue_id, write_issue_id
from ..errors import NewsletterError
from . import journal as jn


def issue_identity(issue: Issue, *, record: bool) -> str:
    """The issue's stable id: its front matter's, or a new one (written to issue.md when ``record``)."""
    if issue.id:
        return issue.id
    issue_id = new_issue_id()
    if record:
        issue_id = write_issue_id(issue.path, issue_id)
    return issue_id


def refuse_an_unrecorded_id(database: jn.JournalDB, issue: Issue, list_name: str) -> None:
    """An issue without an id whose folder and subject the journal already sent to this list under an id: the
    same issue in a clone that lacks the commit recording its id (sending it would mail everyone again)."""
    subject = hashlib.sha256(issue.subject.encode("utf-8")).hexdigest()[:16]  # as ``fingerprint`` digests it
    rows = database.execute("SELECT s.issue, r.parts FROM sends s JOIN runs r ON r.send = s.id WHERE s.folder=? "
                            "AND s.list=? AND r.kind='send' AND EXISTS (SELECT 1 FROM deliveries d WHERE "
                            "d.send = s.id AND d.status <> 'pending')", (issue.name, list_name)).fetchall()
    same = [str(known) for known, parts in rows if json.loads(parts or "{}").get("subject") == subject]
    if not same:
        return  # nothing sent from a folder of this name, or a different issue (another subject) that had it
    known = same[0]
    raise NewsletterError(
        f"this issue has no 'id:' yet, but the journal ({database.location.describe()}) records a send of an issue "
        f"in a folder of the same name, {issue.name}, to list '{list_name}', with id {known}",
        where=issue.path / "issue.md",
        hint=f"if it is the same issue, pull the commit that recorded its id and sent record (or add 'id: {known}' to "
             "its front matter) and send again; if it is a new issue, give its folder another name")


def record_identity(database: jn.JournalDB, issue: Issue, issue_id: str, list_name: str) -> str:
    """The id a live send (or a schedule) of ``issue`` to ``list_name`` uses: its own, or, on its first send,
    ``issue_id`` written into issue.md now, unless the journal knows the issue under another id
    (``refuse_an_unrecorded_id``)."""
    if issue.id:
        return issue.id
    refuse_an_unrecorded_id(database, issue, list_name)
    return write_issue_id(issue.path, issue_id)


def load(issue_dir: Path, *, record_id: bool) -> tuple[Issue, str]:
    """The issue in ``issue_dir`` and its id (given to it now, in issue.md, if it has none and ``record_id``)."""
    issue = load_issue(Path(issue_dir))
    return issue, issue_identity(issue, record=record_id)
