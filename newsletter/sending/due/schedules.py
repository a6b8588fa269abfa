"""Scheduled issues: ``send ISSUE --list L --at TIME`` (or ``send_at:`` in issue.md), for every provider.

Scheduling prepares the send as a live send would (the issue built and checked, the audience settled,
the fingerprint of what will go out) and records it in the journal, sending nothing: the tool holds it,
so it can be listed (``newsletter status``), moved (schedule it again) or cancelled (``--cancel``) up to
its time. The first ``send --due`` after its time sends it through ``engine.send`` with the recorded
audience; an issue edited since is refused there, as a resume refuses one, unless ``--allow-changed``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...compose.content import ISSUE_FILE, load_issue
from ...config import Settings
from ...errors import NewsletterError, SendFailed, display_path
from .. import journal as jn
from ..identity import load, record_identity
from ..plan import PARTS, SendOptions, command_path, prepare, resume_command
from ..plan import fingerprint as fingerprint_of

SCHEDULED, SENDING, SENT, CANCELLED = "scheduled", "sending", "sent", "cancelled"
WAITING = (SCHEDULED, SENDING)


@dataclass(frozen=True)
class Schedule:
    """One issue held for one list until its time."""

    id: int
    issue: str  # the issue's id
    list_name: str
    at: float
    written: str  # the time as the writer gave it (ISO 8601 with its offset)
    folder: str  # the issue folder, relative to the newsletter's root when inside it
    audience: jn.Audience
    fingerprint: str
    parts: dict[str, str]
    recipients: int  # how many it would reach when it was scheduled
    allow_changed: bool
    state: str
    problem: str

    def describe(self) -> str:
        return f"{self.folder} to list {self.list_name}"


_COLUMNS = ("schedules.id, sends.issue, sends.list, at, zone, schedules.folder, provider, tags, filters, fingerprint, "
            "parts, recipients, allow_changed, state, problem")


def _schedule(row: tuple[Any, ...]) -> Schedule:
    (number, issue, list_name, at, written, folder, provider, tags, filters, fingerprint, parts, recipients, allow,
     state, problem) = row
    audience = jn.Audience(str(provider), tuple(json.loads(tags)), tuple((str(k), str(v)) for k, v in
                                                                        json.loads(filters)))
    return Schedule(int(number), str(issue), str(list_name), float(at), str(written), str(folder), audience,
                    str(fingerprint), json.loads(parts), int(recipients), bool(allow), str(state), str(problem or ""))


def waiting(db: jn.JournalDB) -> list[Schedule]:
    """Every schedule not yet sent or cancelled, soonest first."""
    rows = db.execute(f"SELECT {_COLUMNS} FROM schedules JOIN sends ON sends.id = schedules.send "
                      "WHERE state IN (?, ?) ORDER BY at, schedules.id", WAITING).fetchall()
    return [_schedule(tuple(row)) for row in rows]


def of_send(db: jn.JournalDB, send: int) -> Schedule | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM schedules JOIN sends ON sends.id = schedules.send "
                     "WHERE schedules.send=?", (send,)).fetchone()
    return _schedule(tuple(row)) if row else None


def mark(db: jn.JournalDB, schedule: Schedule, state: str, problem: str, now: dt.datetime) -> None:
    with db.transaction():
        db.execute("UPDATE schedules SET state=?, problem=?, updated=? WHERE id=?",
                   (state, problem, now.timestamp(), schedule.id))


def _folder_text(settings: Settings, folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(settings.root.resolve()))
    except ValueError:
        return str(folder.resolve())


@dataclass(frozen=True)
class Scheduled:
    """What scheduling did, for the CLI to say."""

    schedule: Schedule
    before: Schedule | None  # the schedule it replaced, if any
    issue_dir: Path
    now: float

    @property
    def overdue(self) -> bool:
        return self.schedule.at <= self.now


def schedule_issue(settings: Settings, issue_dir: Path, options: SendOptions, at: dt.datetime,
                   now: dt.datetime) -> Scheduled:
    """Prepare the send as a live one would, then record it for ``at`` instead of sending (moving an
    earlier schedule of the issue to the list, if any). Nothing is delivered."""
    if not options.mode.records or options.resume:
        raise NewsletterError("--at schedules a live send: leave out --dry-run, --test-to and --resume",
                              hint="a dry run or a test send goes at once; an unfinished send goes on with --resume")
    if not options.list_name:
        raise NewsletterError("--at needs --list NAME: the list the issue is scheduled for")
    issue, issue_id = load(issue_dir, record_id=False)
    location = jn.location_of(settings)
    database = jn.open_database(location)
    try:
        issue_id = record_identity(database, issue, issue_id, options.list_name)
        with database.exclusive(issue_id, options.list_name, issue.name):
            journal = jn.Journal(database, issue_id, options.list_name, folder=issue.name)
            if journal.runs.unfinished() is not None:
                raise NewsletterError(f"a send of {display_path(issue_dir)} to list '{options.list_name}' is "
                                      "unfinished: it cannot also be scheduled",
                                      hint=f"finish it with: {resume_command(issue_dir, options.list_name)}")
            # the send prepared as a live one, on a copy of the journal: checks, audience, fingerprint, count
            plan = prepare(settings, issue, issue_id, dataclasses.replace(options, send_at=None, confirmed=False),
                           database=None)
            try:
                recipients = plan.journal.view.selected_status_counts()[jn.PENDING]
                audience, (fingerprint, parts) = plan.audience, fingerprint_of(plan.message)
            finally:
                plan.close()
            before = of_send(database, journal.send)
            stamp = now.timestamp()
            with database.transaction():
                values = (at.timestamp(), at.isoformat(timespec="minutes"), _folder_text(settings, issue.path),
                          audience.provider, json.dumps(list(audience.tags)),
                          json.dumps([list(p) for p in audience.where]), fingerprint, json.dumps(parts), recipients,
                          int(options.allow_changed), SCHEDULED, stamp)
                if before is None:
                    database.execute(
                        "INSERT INTO schedules (at, zone, folder, provider, tags, filters, fingerprint, parts, "
                        "recipients, allow_changed, state, updated, send, created, problem) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '')", (*values, journal.send, stamp))
                else:
                    database.execute(
                        "UPDATE schedules SET at=?, zone=?, folder=?, provider=?, tags=?, filters=?, fingerprint=?, "
                        "parts=?, recipients=?, allow_changed=?, state=?, updated=?, problem='' WHERE send=?",
                        (*values, journal.send))
            made = of_send(database, journal.send)
            assert made is not None
            return Scheduled(made, before if before is not None and before.state in WAITING else None,
                             issue.path, stamp)
    finally:
        database.close()


def cancel(settings: Settings, issue_dir: Path, list_name: str, now: dt.datetime) -> Schedule:
    """Cancel the issue's schedule for ``list_name``; a NewsletterError when there is none to cancel."""
    issue = load_issue(issue_dir)
    location = jn.location_of(settings)
    if not issue.id or not location.may_exist():
        raise NewsletterError(f"{display_path(issue_dir)} is not scheduled for list '{list_name}'")
    database = jn.open_database(location)
    try:
        journal = jn.Journal(database, issue.id, list_name, create=False)
        found = of_send(database, journal.send) if journal.send >= 0 else None
        if found is None or found.state not in WAITING:
            raise NewsletterError(f"{display_path(issue_dir)} is not scheduled for list '{list_name}'",
                                  hint="newsletter status lists what is scheduled")
        if found.state == SENDING:
            raise NewsletterError(f"{display_path(issue_dir)} is already going out to list '{list_name}'",
                                  hint="stop it by abandoning the send: newsletter resolve "
                                       f"{command_path(issue_dir)} --list {list_name} --abandon")
        mark(database, found, CANCELLED, "", now)
        return found
    finally:
        database.close()


def listing(settings: Settings) -> list[Schedule]:
    """What is scheduled (``newsletter status`` with no issue), soonest first; read-only."""
    location = jn.location_of(settings)
    if not location.may_exist():
        return []
    database = jn.open_database(location, read_only=True)
    try:
        return waiting(database) if _has_schedules(database) else []
    finally:
        database.close()


def _has_schedules(db: jn.JournalDB) -> bool:
    """False for a journal of an older version opened read-only (it has no schedules table yet)."""
    try:
        db.execute("SELECT 1 FROM schedules LIMIT 1").fetchone()
    except Exception:  # noqa: BLE001 - an older journal lacks the table: nothing is scheduled in it
        return False
    return True


def folder_of(settings: Settings, schedule: Schedule) -> Path:
    """The scheduled issue's folder: where it was, else the folder of issues/ whose issue.md has its id."""
    recorded = Path(schedule.folder)
    folder = recorded if recorded.is_absolute() else settings.root / recorded
    if (folder / ISSUE_FILE).is_file():
        return folder
    for candidate in sorted(settings.issues_dir.glob(f"*/{ISSUE_FILE}")):
        if f"id: {schedule.issue}" in candidate.read_text(encoding="utf-8-sig", errors="replace"):
            return candidate.parent
    raise NewsletterError(f"the issue scheduled for list '{schedule.list_name}' is gone", where=schedule.folder,
                          hint="put its folder back (git restores it), or cancel the schedule")


def content_check(schedule: Schedule, issue_dir: Path, allow_changed: bool) -> Callable[[str, Mapping[str, str]], None]:
    """The check ``send --due`` hands the engine: the issue must be what was scheduled."""
    def check(fingerprint: str, parts: Mapping[str, str]) -> None:
        if allow_changed or schedule.allow_changed or fingerprint == schedule.fingerprint:
            return
        changed = [p for p in PARTS if schedule.parts.get(p) != parts.get(p)] or ["content"]
        raise SendFailed(
            f"{display_path(issue_dir)} changed since it was scheduled for list '{schedule.list_name}' "
            f"({', '.join(changed)} changed): refusing to send what was not scheduled",
            hint=f"schedule it again to send it as it is now (newsletter send {command_path(issue_dir)} --list "
                 f"{schedule.list_name} --at {schedule.written}), undo the change, or send it anyway with "
                 "newsletter send --due --allow-changed")
    return check


def scheduled_time(issue_dir: Path, at: dt.datetime | None, options: SendOptions,
                   now: dt.datetime) -> dt.datetime | None:
    """When ``send`` should hold the issue until instead of sending it now: ``--at``, else the issue's own
    ``send_at:`` while it is still ahead (a fresh live send only; a time passed means send it now)."""
    if at is not None:
        return at
    if not options.mode.records or options.resume:
        return None
    send_at = load_issue(issue_dir).send_at
    return send_at if send_at is not None and send_at > now else None
