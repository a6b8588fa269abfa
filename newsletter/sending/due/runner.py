"""``newsletter send --due``: everything whose time has come, sent once, through the same engine as a
manual send (journal, doctor gate, staged send, pacing), then what comes next.

In order: the journal's lock for ``send --due`` (another one running: do nothing); the subscriber
service's events applied to each sequence's list (sign-ups in, departures marked: ``SubscriberService``,
an interface this package owns and the CLI fills with ``newsletter serve``'s store, so ``sending/`` never
imports ``serve/``); scheduled issues whose time has passed; each sequence's due steps. A run with
nothing due writes nothing: no journal record, no file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

from ...compose.content import ISSUE_FILE, load_issue
from ...config import Settings
from ...errors import NewsletterError
from .. import engine
from .. import journal as jn
from ..ab import ClickCounts, waiting_tests
from ..plan import SendOptions
from ..sent_record import for_list, read_record
from ..service import SubscriberService
from . import schedules, steps
from .clock import Clock, duration
from .lock import due_lock
from .report import DueReport, DueSend, Upcoming
from .sequences import load_sequence, sequence_names


def run_due(settings: Settings, clock: Clock, *, service: SubscriberService | None = None,
            clicks: ClickCounts | None = None, backfill: Sequence[str] = (), allow_changed: bool = False,
            ignore_doctor: bool = False, nameserver: str = "",
            say: Callable[[str], None] = lambda _: None) -> DueReport:
    """Send what is due at ``clock()``: scheduled issues, subject A/B tests whose wait is over (the rest goes
    the winner, decided on ``clicks``), sequence steps (digests go as scheduled issues).

    ``ignore_doctor`` and ``nameserver`` apply to each send, as ``send --ignore-doctor`` and
    ``--nameserver`` to a manual one (an override is recorded on each run)."""
    now = clock()
    report = DueReport(now)
    names = sequence_names(settings)
    for name in backfill:
        load_sequence(settings, name)  # a misspelled --backfill is said before anything happens
    location = jn.location_of(settings)
    if not names and not location.may_exist():
        return report  # no sequence and no journal: nothing can be due, and nothing is written
    database = jn.open_database(location)
    try:
        with due_lock(database) as holder:
            if holder:
                report.busy = holder
                return report

            def send(what: str, issue_dir: Path, options: SendOptions) -> DueSend:
                options = dataclasses.replace(options, ignore_doctor=ignore_doctor, nameserver=nameserver)
                return _send(settings, what, issue_dir, options, say, clicks, service)

            _schedule_from_files(settings, database, now, report)
            _scheduled(settings, database, now, report, allow_changed, send)
            _ab_tests(settings, database, now, report, send)
            applied: set[str] = set()
            for name in names:
                try:
                    if service is not None:
                        list_name = load_sequence(settings, name).list_name
                        if list_name not in applied:
                            applied.add(list_name)
                            if line := service.apply_events(list_name):
                                report.notes.append(line)
                    steps.run_sequence(settings, database, name, now, report, backfill=name in backfill, send=send)
                except NewsletterError as err:
                    report.sends.append(DueSend(f"sequence {name}", error=str(err), exit_code=err.exit_code))
            report.upcoming = sorted(_upcoming_schedules(database, now) + steps.upcoming(settings, database, names),
                                     key=lambda item: item.at)
    finally:
        database.close()
    return report


def _send(settings: Settings, what: str, issue_dir: Path, options: SendOptions,
          say: Callable[[str], None], clicks: ClickCounts | None = None,
          service: SubscriberService | None = None) -> DueSend:
    """One send through the engine; its failure is recorded beside the others, never raised past them."""
    try:
        return DueSend(what, engine.send(settings, issue_dir, options, say=say, clicks=clicks, service=service))
    except NewsletterError as err:
        return DueSend(what, err.report, error=str(err), exit_code=err.exit_code)


def _scheduled(settings: Settings, db: jn.JournalDB, now: dt.datetime, report: DueReport, allow_changed: bool,
               send: Callable[[str, Path, SendOptions], DueSend]) -> None:
    """Send each scheduled issue whose time has passed (resuming one a crash stopped)."""
    for schedule in schedules.waiting(db):
        if schedule.at > now.timestamp():
            continue
        late = now.timestamp() - schedule.at
        delay = f"{duration(late)} late" if late >= 60 else ""
        note = f"scheduled for {schedule.written}" + (f", sent {delay}" if delay else "")
        what = f"{schedule.describe()} (scheduled for {schedule.written}" + (f", {delay})" if delay else ")")
        try:
            folder = schedules.folder_of(settings, schedule)
        except NewsletterError as err:
            report.sends.append(DueSend(what, error=str(err), exit_code=err.exit_code))
            continue
        journal = jn.Journal(db, schedule.issue, schedule.list_name, create=False)
        resume = journal.send >= 0 and journal.runs.unfinished() is not None
        options = SendOptions(list_name=schedule.list_name, confirmed=True, run_note=note, resume=resume,
                              allow_changed=allow_changed or schedule.allow_changed,
                              content_check=schedules.content_check(schedule, folder, allow_changed))
        if not resume:
            audience = schedule.audience
            options = dataclasses.replace(options, provider=audience.provider, tags=audience.tags,
                                          where=dict(audience.where))
        schedules.mark(db, schedule, schedules.SENDING, "", now)
        done = send(what, folder, options)
        done.note = note
        report.sends.append(done)
        journal = jn.Journal(db, schedule.issue, schedule.list_name, create=False)
        unfinished = journal.send >= 0 and journal.runs.unfinished() is not None
        if done.error and not unfinished and not (done.report and done.report.sent):
            schedules.mark(db, schedule, schedules.SCHEDULED, done.error, now)  # refused: still waiting
        elif unfinished:
            schedules.mark(db, schedule, schedules.SENDING, done.error, now)  # the next run resumes it
        else:
            schedules.mark(db, schedule, schedules.SENT, done.error, now)


def _schedule_from_files(settings: Settings, db: jn.JournalDB, now: dt.datetime, report: DueReport) -> None:
    """Schedule each issue whose front matter asks for it (``send_at:`` and ``send_to:``) and is not scheduled,
    sent or started for that list yet: an issue merged in git with those lines goes out at its time from CI,
    with no one running ``send ISSUE --list L`` by hand. A schedule cancelled (``--cancel``) stays cancelled."""
    for path in sorted(settings.issues_dir.glob(f"*/{ISSUE_FILE}")):
        folder = path.parent
        try:
            issue = load_issue(folder)
            wanted = [name for name in issue.send_to if not _known_send(db, issue.id, name)
                      and not for_list(read_record(folder), name)]
        except NewsletterError as err:
            if "send_to" in path.read_text(encoding="utf-8-sig", errors="replace"):
                report.sends.append(DueSend(f"{folder.name} (send_to:)", error=str(err), exit_code=err.exit_code))
            continue
        for name in wanted:
            assert issue.send_at is not None  # send_to needs send_at (compose/content.py)
            try:
                done = schedules.schedule_issue(settings, folder, SendOptions(list_name=name), issue.send_at, now)
            except NewsletterError as err:
                report.sends.append(DueSend(f"{folder.name} to list {name} (send_to:)", error=str(err),
                                            exit_code=err.exit_code))
                continue
            report.notes.append(f"Scheduled {done.schedule.describe()} for {done.schedule.written}, as its "
                                "send_at: and send_to: ask.")


def _known_send(db: jn.JournalDB, issue_id: str, list_name: str) -> bool:
    """Whether the journal has the issue's send to the list already: scheduled (or cancelled), or sent to."""
    if not issue_id:
        return False
    journal = jn.Journal(db, issue_id, list_name, create=False)
    return journal.send >= 0 and (schedules.of_send(db, journal.send) is not None
                                  or journal.runs.history() != [])


def _ab_tests(settings: Settings, db: jn.JournalDB, now: dt.datetime, report: DueReport,
              send: Callable[[str, Path, SendOptions], DueSend]) -> None:
    """Each subject A/B test whose slices went out and whose wait is over: resumed, so the rest of its list
    gets the winner (``send --resume`` decides it, with its figures recorded)."""
    for issue, list_name, folder in waiting_tests(db, now.timestamp()):
        path = Path(folder)
        path = path if path.is_absolute() else settings.issues_dir / folder
        if not (path / ISSUE_FILE).is_file():
            report.sends.append(DueSend(f"the A/B test of {folder} to list {list_name}",
                                        error=f"{path}: the issue's folder is gone (its id is {issue})",
                                        exit_code=2))
            continue
        report.sends.append(send(f"the rest of {folder} to list {list_name}, after its A/B test", path,
                                 SendOptions(list_name=list_name, resume=True, confirmed=True)))


def _upcoming_schedules(db: jn.JournalDB, now: dt.datetime) -> list[Upcoming]:
    """Scheduled issues still waiting: ahead, or overdue because this run could not send them."""
    return [Upcoming(s.at, f"{s.describe()} (scheduled)" if s.at > now.timestamp() else
                     f"{s.describe()} (overdue, not sent: {s.problem or 'unfinished'})") for s in schedules.waiting(db)]
