"""``newsletter sequence status NAME``: how many readers are at each step, who is due next, and when."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections import Counter
from dataclasses import dataclass, field

from ...config import Settings
from .. import journal as jn
from . import enrolments
from .clock import shown
from .sequences import Sequence, load_sequence


@dataclass
class SequenceStatus:
    sequence: Sequence
    now: dt.datetime
    started: float | None = None  # None: no send --due has seen it yet
    counts: Counter[tuple[str, int]] = field(default_factory=Counter)
    stops: Counter[str] = field(default_factory=Counter)
    waiting: list[enrolments.Due] = field(default_factory=list)
    next: list[tuple[float, int, str]] = field(default_factory=list)

    def had(self, number: int) -> int:
        """Readers who have had step ``number``."""
        return sum(n for (state, step), n in self.counts.items() if state != enrolments.BEFORE and step >= number)

    def lines(self) -> list[str]:
        s = self.sequence
        stops = f", stops when tagged {', '.join(s.stop_tags)}" if s.stop_tags else ""
        head = f"Sequence {s.name}: list {s.list_name}, trigger {s.trigger.describe()}{stops}"
        if self.started is None:
            return [head, "Not started: the first `newsletter send --due` starts it (readers already on the list "
                          f"are enrolled only with --backfill {s.name})."]
        out = [f"{head}; started {shown(self.started)}"]
        waiting = {due.step: due for due in self.waiting}
        for step in s.steps:
            line = f"  step {step.number}  {step.name:<28} delay {step.delay.text:<10} had it: {self.had(step.number)}"
            if step.number in waiting:
                due = waiting[step.number]
                line += f"; waiting for it: {due.readers} (the first due {shown(due.first_at)})"
            out.append(line)
        finished = sum(n for (state, _), n in self.counts.items() if state == enrolments.DONE)
        before = sum(n for (state, _), n in self.counts.items() if state == enrolments.BEFORE)
        stopped = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.stops.items()))
        out.append(f"  finished: {finished}; stopped: {sum(self.stops.values())}" + (f" ({stopped})" if stopped else "")
                   + f"; on the list before it started (not enrolled): {before}")
        if self.next:
            out.append(f"Due next (as of {shown(self.now)}):")
            for at, number, email in self.next:
                name = s.steps[number - 1].name if number <= len(s.steps) else "?"
                when = "due now" if at <= self.now.timestamp() else shown(at)
                out.append(f"  {when:<20}  {email}  step {number} ({name})")
        return out


def sequence_status(settings: Settings, name: str, now: dt.datetime, *, show: int = 10) -> SequenceStatus:
    """The sequence's files and what the journal records of its readers; read-only."""
    sequence = load_sequence(settings, name)
    status = SequenceStatus(sequence, now)
    location = jn.location_of(settings)
    if not location.may_exist():
        return status
    db = jn.open_database(location, read_only=True)
    try:
        try:
            record = enrolments.find(db, name, sequence.list_name)
        except (jn.JournalError, sqlite3.Error):
            return status  # a journal of an older version: no sequence has started in it
        if record is None:
            return status
        number, status.started = record
        status.counts = enrolments.counts(db, number)
        status.stops = enrolments.stop_reasons(db, number)
        status.waiting = enrolments.waiting(db, number)
        status.next = enrolments.next_readers(db, number, show)
    finally:
        db.close()
    return status
