"""Reading the journal back: counts, problem rows and a run's outcomes, for reports and ``status``.

Nothing here writes. Rows carried by a batch in flight are ``pending`` in the
table; they read as ``in_flight`` (``carried_ids``). Pending rows the latest run
did not select (unsubscribed, removed from the list or filtered out since)
read as ``not_selected``: they are never sent unless a later run selects them
again, and a finished send does not look unfinished because of them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ...providers.base import Status
from .database import JournalDB, open_database
from .location import Location

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .core import JournalCore

STATUSES = (Status.PENDING, Status.IN_FLIGHT, Status.SENT, Status.FAILED, Status.UNKNOWN)
NOT_SELECTED = "not_selected"
NOT_SELECTED_REASON = ("not selected by the latest send (unsubscribed, removed from the list or filtered out "
                       "since); it is sent only if selected again")
IN_FLIGHT_REASON = "a send was delivering it (or stopped mid-request): it may have arrived"


class JournalView:
    """What one send's journal says, read-only."""

    def __init__(self, journal: JournalCore):
        self.journal = journal

    def counts(self, run_only: bool = False) -> dict[str, int]:
        journal = self.journal
        db = journal.db
        sql = (f"SELECT CASE WHEN status='pending' AND id IN {db.id_set} THEN 'in_flight' "
               "ELSE status END AS state, COUNT(*) FROM deliveries WHERE send=?")
        params: tuple[object, ...] = (db.ids(carried_ids(db, journal.send)), journal.send)
        if run_only:
            sql += " AND run=?"
            params += (journal.run,)
        counts: dict[str, int] = dict.fromkeys(map(str, STATUSES), 0)
        counts.update({str(state): int(n) for state, n in db.execute(sql + " GROUP BY state", params).fetchall()})
        return {str(status): n for status, n in counts.items()}

    def selected_status_counts(self) -> dict[str, int]:
        """Status of every recipient selected in this run (sent before, failed before, pending...)."""
        return self.counts(run_only=True)

    def sent_count(self) -> int:
        journal = self.journal
        return int(journal.db.execute("SELECT COUNT(*) FROM deliveries WHERE send=? AND status='sent'",
                                      (journal.send,)).fetchone()[0])

    def problems(self, limit: int = 1000) -> list[tuple[str, str, str]]:
        """(email, status, reason) of failed, unknown, in-flight, still-deferred and no-longer-selected recipients."""
        journal = self.journal
        db = journal.db
        latest = db.execute("SELECT COALESCE(MAX(id), 0) FROM runs WHERE send=?", (journal.send,)).fetchone()[0]
        carried = db.ids(carried_ids(db, journal.send))
        rows = db.execute(
            f"SELECT email, CASE WHEN status='in_flight' OR id IN {db.id_set} THEN 'in_flight' "
            "WHEN status='pending' AND run < ? THEN ? ELSE status END, "
            f"CASE WHEN status='in_flight' OR id IN {db.id_set} THEN ? "
            "WHEN status='pending' AND run < ? THEN ? ELSE COALESCE(reason, '') END "
            f"FROM deliveries WHERE send=? AND (status IN ('failed', 'unknown', 'in_flight') OR id IN {db.id_set} "
            "OR (status='pending' AND (reason IS NOT NULL OR run < ?))) ORDER BY id LIMIT ?",
            (carried, latest, NOT_SELECTED.replace("_", " "), carried, IN_FLIGHT_REASON, latest, NOT_SELECTED_REASON,
             journal.send, carried, latest, limit)).fetchall()
        return [(str(e), str(s), str(r)) for e, s, r in rows]

    def unknown_rows(self, limit: int = 100_000) -> list[tuple[str, str]]:
        journal = self.journal
        rows = journal.db.execute("SELECT email, COALESCE(reason, '') FROM deliveries WHERE send=? AND "
                                  "status='unknown' ORDER BY id LIMIT ?", (journal.send, limit)).fetchall()
        return [(str(e), str(r)) for e, r in rows]

    def run_outcomes(self, limit: int = 1000, *, with_joined: bool = False
                     ) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
        """What this process's run settled: counts by status, and (status, email, reason) of its failed and
        unknown rows; ``with_joined``: with what the workers that joined its send settled."""
        journal = self.journal
        db = journal.db
        run = journal.own_run or journal.run
        runs = "settled_run=?" + (" OR settled_run IN (SELECT id FROM runs WHERE joined=?)" if with_joined else "")
        params: tuple[int, ...] = (run, run) if with_joined else (run,)
        counts = {str(s): int(n) for s, n in db.execute(
            f"SELECT status, COUNT(*) FROM deliveries WHERE {runs} GROUP BY status", params).fetchall()}
        problems = db.execute(
            f"SELECT status, email, COALESCE(reason, '') FROM deliveries WHERE ({runs}) AND "
            "status IN ('failed', 'unknown') ORDER BY id LIMIT ?", (*params, limit)).fetchall()
        return counts, [(str(s), str(e), str(r)) for s, e, r in problems]

    def outcome_counts(self, max_attempts: int, *, with_joined: bool = False) -> tuple[dict[str, int], int, int, int]:
        """In one pass over the send: what this process's run settled by status (``with_joined``: with its
        workers), how many recipients of the send are unknown, how many of the run's are deferred for
        good, and how many of the send are sent by now (the sent record's count); a report then reads the
        recipients themselves only where there are some. (Each pass is about 0.3 s for a million.)"""
        journal = self.journal
        run = journal.own_run or journal.run
        mine = "settled_run=?" + (" OR settled_run IN (SELECT id FROM runs WHERE joined=?)" if with_joined else "")
        params: tuple[object, ...] = (run, run) if with_joined else (run,)
        counts: dict[str, int] = {}
        unknown = deferred = sent = 0
        for status, settled_here, waits, n in journal.db.execute(
                f"SELECT status, CASE WHEN {mine} THEN 1 ELSE 0 END, CASE WHEN status='pending' AND run=? AND "
                "attempts >= ? THEN 1 ELSE 0 END, COUNT(*) FROM deliveries WHERE send=? GROUP BY 1, 2, 3",
                (*params, journal.run, max_attempts, journal.send)).fetchall():
            if settled_here:
                counts[str(status)] = counts.get(str(status), 0) + int(n)
            unknown += int(n) if status == "unknown" else 0
            sent += int(n) if status == "sent" else 0
            deferred += int(n) if waits else 0
        return counts, unknown, deferred, sent

    def sent_by_joined(self) -> dict[int, int]:
        """Recipients sent by each worker that joined this process's send run (pid -> how many)."""
        journal = self.journal
        rows = journal.db.execute(
            "SELECT r.pid, COUNT(*) FROM runs r JOIN deliveries d ON d.settled_run = r.id WHERE r.joined=? "
            "AND d.status='sent' GROUP BY r.pid ORDER BY r.pid", (journal.run,)).fetchall()
        return {int(pid): int(n) for pid, n in rows}

    def deferred(self, max_attempts: int, limit: int = 1000) -> list[tuple[str, str]]:
        """Recipients of this run refused for now too many times to try again in this run."""
        journal = self.journal
        rows = journal.db.execute(
            "SELECT email, COALESCE(reason, '') FROM deliveries WHERE send=? AND run=? AND status='pending' "
            "AND attempts >= ? ORDER BY id LIMIT ?", (journal.send, journal.run, max_attempts, limit)).fetchall()
        return [(str(e), str(r)) for e, r in rows]


def carried_ids(db: JournalDB, send: int | None = None) -> list[int]:
    """The ids of the rows a batch in flight carries: ``pending`` in the table, not stamped with its label
    (of a sequential batch, only the first). They read as in flight."""
    from .flight import SEQUENTIAL

    batches = db.execute("SELECT label, ids FROM batches WHERE state='in_flight'" +
                         (" AND send=?" if send is not None else ""),
                         (send,) if send is not None else ()).fetchall()
    ids: list[int] = []
    for label, carried in batches:
        rows = [int(i) for (i,) in db.execute(
            f"SELECT id FROM deliveries WHERE id IN {db.id_set} AND status='pending' "
            "AND (batch IS NULL OR batch <> ?) ORDER BY id", (db.ids(json.loads(carried or "[]")), label)).fetchall()]
        # A sequential request (SMTP) journals each answer before trying the next recipient: only the
        # first unanswered one can be under way; the rest were not attempted (as ``flight.recover`` decides).
        ids += rows[:1] if label.endswith(SEQUENTIAL) else rows
    return ids


def lists_of(location: Location, issue: str) -> list[str]:
    """The lists ``issue`` (its id) was sent to, from the journal at ``location`` (none if it does not exist)."""
    if not location.may_exist():
        return []
    db = open_database(location, read_only=True)
    try:
        return [str(row[0]) for row in db.execute("SELECT list FROM sends WHERE issue=? ORDER BY list",
                                                  (issue,)).fetchall()]
    finally:
        db.close()


def summarize(location: Location, issue: str, list_name: str | None = None) -> list[tuple[str, dict[str, int]]]:
    """(list, status counts) for every list ``issue`` was sent to, read-only."""
    if not location.may_exist():
        return []
    db = open_database(location, read_only=True)
    try:
        return summarize_in(db, issue, list_name)
    finally:
        db.close()


def summarize_in(db: JournalDB, issue: str, list_name: str | None = None) -> list[tuple[str, dict[str, int]]]:
    """``summarize`` on an open journal."""
    sql = (f"SELECT s.list, CASE WHEN d.status='pending' AND d.id IN {db.id_set} "
           "THEN 'in_flight' WHEN d.status='pending' AND d.run < (SELECT MAX(r.id) FROM runs r "
           f"WHERE r.send = s.id) THEN '{NOT_SELECTED}' ELSE d.status END AS state, COUNT(*) "
           "FROM deliveries d JOIN sends s ON s.id = d.send WHERE s.issue=?")
    params: tuple[object, ...] = (db.ids(carried_ids(db)), issue)
    if list_name:
        sql += " AND s.list=?"
        params += (list_name,)
    result: dict[str, dict[str, int]] = {}
    for name, status, count in db.execute(sql + " GROUP BY s.list, state", params).fetchall():
        result.setdefault(str(name), dict.fromkeys((*map(str, STATUSES), NOT_SELECTED), 0))[str(status)] = int(count)
    return sorted(result.items())
