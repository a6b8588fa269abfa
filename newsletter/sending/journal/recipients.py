"""Who a run is for: the selection into the journal, requeues on request, and the writer's resolutions.

The journal holds each pending recipient's merge values, taken from the list
when the send was prepared, so the send loop streams from the journal with
flat memory; they are cleared once the recipient is settled.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Mapping
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from ...providers.base import Status

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .core import JournalCore
    from .database import JournalDB

# One selected recipient: (key, email, name, fields), fields as JSON object text ("" for none) or a mapping.
Selected = tuple[str, str, str, "str | Mapping[str, str]"]


class _SelectStatement:
    """The upsert ``select`` runs: one statement inserts up to ``rows`` recipients (4 parameters each).

    A multi-row VALUES saves the per-call work of a statement on every row (about a third
    less time than ``executemany``); send, run and time are written in as literals (numbers
    this journal made), so a row binds only its own values. ``rows`` stays within SQLite's limits on parameters and
    on the length of a statement, and at most 1,000: from 250 to 8,000 rows a statement took the
    same time for a million rows, and a smaller statement is quicker to prepare and to hold.
    """

    def __init__(self, db: JournalDB, send: int, run: int, now: float, refresh: Iterable[str],
                 first_wins: bool = False):
        statuses = ", ".join(f"'{s}'" for s in refresh if s in set(Status))
        fresh = f"deliveries.status IN ({statuses})"
        self.first_wins = first_wins
        self._row = f"({int(send)}, ?, ?, ?, NULLIF(?, ''), 'pending', {int(run)}, {float(now)!r})"
        self._tail = " ON CONFLICT (send, key) DO NOTHING" if first_wins else (
                      " ON CONFLICT (send, key) DO UPDATE SET run=excluded.run, "
                      f"email=CASE WHEN {fresh} THEN excluded.email ELSE deliveries.email END, "
                      f"name=CASE WHEN {fresh} THEN excluded.name ELSE deliveries.name END, "
                      f"fields=CASE WHEN {fresh} THEN excluded.fields ELSE deliveries.fields END, "
                      f"attempts=CASE WHEN {fresh} THEN 0 ELSE deliveries.attempts END, "
                      "not_before=0")
        if db.dialect == "sqlite":
            connection: sqlite3.Connection = db.connection
            by_length = ((connection.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH) - 200 - len(self._tail))
                         // (len(self._row) + 1))
            self.rows = max(1, min(1000, connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 4, by_length))
        else:
            self.rows = 1000  # 4,000 parameters, well within PostgreSQL's 65,535
        self._texts: dict[int, str] = {}  # the same str each time: the driver finds its prepared statement at once

    def sql(self, n: int) -> str:
        text = self._texts.get(n)
        if text is None:
            text = self._texts[n] = ("INSERT INTO deliveries (send, key, email, name, fields, status, run, updated) "
                                     "VALUES " + ",".join([self._row] * n) + self._tail)
        return text


def _later_wins(values: list[Any]) -> list[Any]:
    """One statement's rows with a key given twice merged, as SQLite's upsert does row by row: the first's
    place, the later one's values. (PostgreSQL refuses to update one row twice in one statement.)"""
    keys = values[0::4]
    if len(set(keys)) == len(keys):
        return values
    place: dict[str, int] = {}
    merged: list[list[Any]] = []
    for i in range(0, len(values), 4):
        row = values[i:i + 4]
        if row[0] in place:
            merged[place[row[0]]] = row
        else:
            place[row[0]] = len(merged)
            merged.append(row)
    return [value for row in merged for value in row]


_dumps = json.JSONEncoder(ensure_ascii=False).encode


def _parameters(rows: list[Selected]) -> list[Any]:
    """One statement's parameters, 4 a recipient: the rows' values chained in one call (no loop of the
    interpreter per recipient, a million times in a large send). Fields given as a mapping are written
    as JSON text (an empty one as NULL); the statement itself stores "" as NULL (``NULLIF``)."""
    values: list[Any] = list(chain.from_iterable(rows))
    fields = values[3::4]
    if set(map(type, fields)) != {str}:  # not all JSON text already (a list's rows are)
        values[3::4] = [f if f.__class__ is str else _dumps(f) if f else None for f in fields]
    return values


class Recipients:
    """The selection of one send's recipients into the journal, and what changes their status on request."""

    def __init__(self, journal: JournalCore):
        self.journal = journal
        self._statement: tuple[tuple[Any, ...], _SelectStatement] | None = None  # (run, refresh, first_wins), made

    def select(self, recipients: Iterable[Selected], chunk: int = 20_000,
               refresh: Iterable[str] = (Status.PENDING,), *, first_wins: bool = False) -> int:
        """Mark this run's selection: new recipients become pending; known ones keep their status.

        Rows whose status is in ``refresh`` (pending, and whatever --retry-* will requeue) take
        the list's current address, name and fields, so a corrected row is what gets sent.
        Pending rows not selected again (unsubscribed since) are left out of this run and never sent.
        Its commits need no flush of their own (``durable=False``): a lost selection is simply made
        again by the next run, and the first batch's durable commit puts every one before it on disk.

        ``first_wins``: a later row of a key already in the journal changes nothing (a fresh send's
        list, read without removing its duplicates: ``sending/selection.py``). Returns how many rows
        were left out that way (0 otherwise).
        """
        upsert = self._select_statement(tuple(refresh), first_wins)
        offered = inserted = 0
        rows = iter(recipients)
        statements: list[list[Any]] = []  # those of one transaction, about ``chunk`` rows
        while part := list(islice(rows, upsert.rows)):
            offered += len(part)
            statements.append(_parameters(part))
            if len(statements) * upsert.rows >= chunk:
                inserted += self._insert_selected(upsert, statements)
                statements = []
        if statements:
            inserted += self._insert_selected(upsert, statements)
        return offered - inserted if first_wins else 0

    def _select_statement(self, refresh: tuple[str, ...], first_wins: bool) -> _SelectStatement:
        """The run's selection statement, made once per run: its text holds the run's constants (and the
        time of the run's first selection), and each new text would be prepared and cached anew, a large
        statement each time (a send selecting in steps held a hundred MB of them)."""
        journal = self.journal
        key = (journal.run, refresh, first_wins)
        if self._statement is None or self._statement[0] != key:
            self._statement = (key, _SelectStatement(journal.db, journal.send, journal.run, time.time(), refresh,
                                                     first_wins))
        return self._statement[1]

    def _insert_selected(self, upsert: _SelectStatement, statements: list[list[Any]]) -> int:
        """One transaction of ``select``: its statements' parameters, 4 per recipient; rows written."""
        written = 0
        with self.journal.transaction(durable=False) as db:
            for values in statements:
                if db.dialect == "postgresql" and not upsert.first_wins:
                    values = _later_wins(values)
                written += db.execute(upsert.sql(len(values) // 4), values).rowcount
        return written

    def requeue(self, status: str) -> int:
        """Put this run's ``unknown`` (or ``failed``) recipients back in the queue, on request."""
        journal = self.journal
        with journal.transaction() as db:
            return int(db.execute(
                "UPDATE deliveries SET status='pending', reason=NULL, attempts=0 WHERE send=? AND run=? AND status=?",
                (journal.send, journal.run, str(status))).rowcount)

    def resolve(self, status: str, reason: str) -> list[tuple[str, str]]:
        """Settle every unknown recipient of this send as ``status`` (sent, or pending to be resent)."""
        journal = self.journal
        with journal.transaction() as db:
            rows = db.execute("SELECT email, COALESCE(reason, '') FROM deliveries WHERE send=? AND status='unknown' "
                              "ORDER BY id", (journal.send,)).fetchall()
            if status == Status.PENDING:
                db.execute("UPDATE deliveries SET status='pending', reason=NULL, attempts=0, batch=NULL, "
                           "settled_run=?, updated=? WHERE send=? AND status='unknown'",
                           (journal.run, time.time(), journal.send))
            else:
                db.execute("UPDATE deliveries SET status=?, reason=?, settled_run=?, updated=? "
                           "WHERE send=? AND status='unknown'",
                           (str(status), reason, journal.run, time.time(), journal.send))
        return [(str(email), str(why)) for email, why in rows]
