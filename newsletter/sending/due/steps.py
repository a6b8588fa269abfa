"""One sequence's turn in ``send --due``: enrol and stop readers as the list says, then send each step
to the readers it is due for, as a send of its own through ``engine.send``.

Each step is an issue with its own id, so its journal (step, list) holds one row per reader: a reader
gets a step once, whatever happens, because that is the journal's unique (send, key). The readers due
for a step are recorded as the run's audience (``journal/audiences.py``), so a run killed mid-step is
resumed for exactly them before anyone new is taken on; ``enrolments.advance`` then reads the step's
journal to move each reader on.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from ...compose.content import load_issue
from ...config import Settings
from ...errors import NewsletterError
from .. import journal as jn
from ..plan import SendOptions
from . import enrolments, triggers
from .report import DueReport, DueSend, Upcoming
from .sequences import Sequence, Step, load_sequence

Send = Callable[[str, Path, SendOptions], DueSend]  # (what it is, the issue folder, options) -> what happened


def run_sequence(settings: Settings, db: jn.JournalDB, name: str, now: dt.datetime, report: DueReport, *,
                 backfill: bool, send: Send) -> None:
    """Bring sequence ``name`` up to ``now``: its readers enrolled and stopped, its due steps sent."""
    sequence = load_sequence(settings, name)
    number, started, new = enrolments.sequence_record(db, name, sequence.list_name, sequence.trigger.describe(),
                                                      now)
    path = settings.list_path(sequence.list_name)
    seen = triggers.list_state(sequence, path)
    if seen == enrolments.list_seen(db, number) and not backfill:
        found = triggers.Changes()  # the list and the rules are as the last run read them: nothing to change
    else:
        found = triggers.changes(sequence, path, enrolments.known(db, number), started, now, backfill=backfill)
    if found.new:
        enrolments.add(db, number, found.new, now)
    if found.stops:
        enrolments.stop(db, number, found.stops, now)
        for reason, count in sorted(Counter(found.stops.values()).items()):
            report.notes.append(f"sequence {name}: {_readers(count)} stopped: {reason}")
    before = sum(1 for reader in found.new if reader.state == enrolments.BEFORE)
    if new:
        report.notes.append(f"sequence {name} started on list {sequence.list_name} (trigger "
                            f"{sequence.trigger.describe()})" + (f"; {_readers(before)} already on the list "
                                                                  f"are not enrolled (--backfill {name} enrols them)"
                                                                  if before else ""))
    if backfill and sequence.steps and not new:
        count = enrolments.backfill(db, number, sequence.steps[0].delay, sequence.zone, now)
        if count:
            report.notes.append(f"sequence {name}: {_readers(count)} already on the list enrolled (--backfill)")
    if seen != enrolments.list_seen(db, number):
        enrolments.saw_list(db, number, seen)
    del found
    for step in sequence.steps:
        _send_step(db, sequence, number, step, now, report, send)


def _readers(count: int) -> str:
    return f"{count} reader" if count == 1 else f"{count} readers"


def _following(sequence: Sequence, step: Step) -> Step | None:
    return sequence.steps[step.number] if step.number < len(sequence.steps) else None


def _send_of(db: jn.JournalDB, step: Step, list_name: str) -> int:
    """The journal's record of the step's send to the list (-1: never sent)."""
    issue_id = load_issue(step.path).id
    return jn.Journal(db, issue_id, list_name, create=False).send if issue_id else -1


def _advance(db: jn.JournalDB, sequence: Sequence, number: int, step: Step, now: dt.datetime) -> int:
    send = _send_of(db, step, sequence.list_name)
    if send < 0:
        return 0
    following = _following(sequence, step)
    return enrolments.advance(db, number, step.number, send, following.delay if following else None, sequence.zone,
                              now)


def _what(sequence: Sequence, step: Step, count: int) -> str:
    return (f"sequence {sequence.name} step {step.number} ({step.name}) to {_readers(count)} of list "
            f"{sequence.list_name}")


def _send_step(db: jn.JournalDB, sequence: Sequence, number: int, step: Step, now: dt.datetime, report: DueReport,
               send: Send) -> None:
    """Resume the step's unfinished run, if any; then send it to the readers due for it now."""
    send_id = _send_of(db, step, sequence.list_name)
    if send_id >= 0:
        journal = jn.Journal(db, load_issue(step.path).id, sequence.list_name, create=False)
        unfinished = journal.runs.unfinished()
        if unfinished is not None:
            what = (f"sequence {sequence.name} step {step.number} ({step.name}) to list {sequence.list_name}, "
                    f"the run stopped earlier, resumed")
            report.sends.append(send(what, step.path, SendOptions(list_name=sequence.list_name, resume=True,
                                                                   confirmed=True)))
    _advance(db, sequence, number, step, now)
    due = enrolments.due(db, number, step.number - 1, now)
    if not due:
        return
    label = f"sequence {sequence.name}, step {step.number} ({step.name})"
    audience = jn.audiences.record(db, due, label)
    done = send(_what(sequence, step, len(due)), step.path,
                SendOptions(list_name=sequence.list_name, readers=audience, confirmed=True, run_note=label))
    report.sends.append(done)
    _advance(db, sequence, number, step, now)
    if done.error or (done.report is not None and (done.report.interrupted or done.report.paused)):
        return  # the rest of them stay due: the next run resumes the step for them
    still = sorted(set(enrolments.due(db, number, step.number - 1, now)) & set(due))  # not moved on: usually none
    send_id = _send_of(db, step, sequence.list_name)
    left = set(still) - enrolments.in_send(db, send_id, still) if send_id >= 0 else set(still)
    if left:  # due, yet not selected by the step's send: they left the list since they were enrolled
        enrolments.stop(db, number, dict.fromkeys(left, f"not selected by step {step.number}'s send "
                                                        "(no longer subscribed)"), now)


def upcoming(settings: Settings, db: jn.JournalDB, names: list[str]) -> list[Upcoming]:
    """For each sequence, each step someone waits for: when the first of them is due."""
    found = []
    for name in names:
        try:
            sequence = load_sequence(settings, name)
        except NewsletterError:
            continue  # said already, where it stopped this run
        record = enrolments.find(db, name, sequence.list_name)
        if record is None:
            continue
        for due in enrolments.waiting(db, record[0]):
            if due.step > len(sequence.steps):
                continue
            step = sequence.steps[due.step - 1]
            found.append(Upcoming(due.first_at, f"sequence {name} step {due.step} ({step.name}): "
                                                f"{_readers(due.readers)} waiting, the first due then"))
    return found
