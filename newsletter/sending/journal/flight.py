"""The send loop's side of the journal: the next recipients, requests in flight, and what came back.

State follows what actually happened, recorded per batch where per-row state
is not needed. A request's batch record (its label, state and the ids of the
rows it carries) is committed as ``in_flight`` *before* the request: one row
of ``batches``, not an update of each recipient. A recipient becomes ``sent``
only *after* the provider accepted it (an all-accepted batch is one statement),
and only recipients whose outcome differs (failed, deferred, unknown) are
written on their own. A row that leaves its batch before the batch is over (a
deferred recipient put back in the queue) is stamped with the batch's label,
so it no longer counts as carried by it. While a batch is in flight, the rows
it carries that are still ``pending`` and not stamped with its label read as
``in_flight`` (``reading.carried_ids``). Such rows found when a run starts
belong to a run that died mid-request: ``recover`` makes them unknown (for a
sequential request, only the first: the others were never attempted).
Journals of earlier versions marked each row ``in_flight`` instead; those rows
are settled the same way.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ...providers.base import Status
from .runs import DIED

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .core import JournalCore, Row
    from .database import JournalDB

SEQUENTIAL = ":sequential"  # ends the batch id of a request whose recipients are tried one by one, in order

# (status, message id, reason) -> the row ids settled so
Outcomes = Mapping[tuple[str, str, str], list[int]]


def id_rows(db: JournalDB, ids: list[int]) -> tuple[str, tuple[object, ...]]:
    """A WHERE term for the deliveries ``ids`` and its arguments: a range when they are every id from the
    first to the last (ids are unique), else a set."""
    first, last = min(ids), max(ids)
    if last - first + 1 == len(ids):
        return "id BETWEEN ? AND ?", (first, last)
    return f"id IN {db.id_set}", (db.ids(ids),)


class InFlight:
    """The batches this process has in flight for one send, and the outcomes it records (a SQLite journal,
    one sender at a time: the send lock keeps every other out). ``leased.LeasedFlight`` is the same
    interface for a journal several senders share."""

    def __init__(self, journal: JournalCore):
        self.journal = journal
        # The batches this process has in flight: row id -> batch label, and rows still carried per label.
        self._flying: dict[int, str] = {}
        self._carried: dict[str, int] = {}
        self._waiting_runs: set[int] = set()  # runs in which this process put rows back to wait (``release``)

    # -- taking recipients -----------------------------------------------------------------------

    def next_pending(self, limit: int, max_attempts: int, after: int = 0) -> list[Row]:
        """Up to ``limit`` pending recipients of this run that may be tried now, in order, after row ``after``.

        The send loop walks forward with ``after`` (the last id it took), so each call reads
        only the rows ahead of it in the table's own order, and no second index has to be
        kept up to date on every insert; it starts again from 0 to pick up retries. (``+send``
        keeps SQLite from choosing the (send, key) index, which would sort the whole send per call.)
        Rows carried by a batch of this process still in flight read ``pending`` in the table and are
        skipped here. A row's other columns stay JSON text: the body workers decode them, not this process.
        Each row is made a ``Row`` as the database gives it (``Row._make``: no unpacking and packing again
        per recipient), its fields read as "" rather than NULL by the query itself.
        """
        from .core import Row

        journal = self.journal
        sql = ("SELECT id, key, email, name, COALESCE(fields, ''), attempts FROM deliveries "
               "WHERE id > ? AND +send=? AND status='pending' AND run=? AND attempts < ? AND not_before <= ? "
               "ORDER BY id LIMIT ?")
        flying = self._flying
        make = Row._make
        taken: list[Row] = []
        execute = journal.db.execute
        while True:
            wanted = limit - len(taken)
            rows = execute(sql, (after, journal.send, journal.run, max_attempts, time.time(), wanted)).fetchall()
            if not flying:
                return taken + list(map(make, rows))
            taken += [make(row) for row in rows if row[0] not in flying]
            if len(rows) < wanted or len(taken) >= limit:
                return taken
            after = rows[-1][0]

    def next_retry_time(self, max_attempts: int) -> float | None:
        """When the earliest deferred recipient of this run may be tried again, if any.

        (The loop asks when it has nothing left to take, at the end of every send: a pass over the
        send, about 0.3 s for a million, skipped when no row of this run can be waiting.)
        """
        if not self._some_may_wait():
            return None
        journal = self.journal
        row = journal.db.execute(
            "SELECT MIN(not_before) FROM deliveries WHERE send=? AND status='pending' AND run=? "
            "AND attempts < ? AND not_before > 0", (journal.send, journal.run, max_attempts)).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def _some_may_wait(self) -> bool:
        """Whether a row of this run may have a time to wait for. Only ``release`` gives a row one (a new run's
        selection clears it), and one process sends a run on this journal: so only if this one did."""
        return self.journal.run in self._waiting_runs

    def announce(self) -> None:
        """This process's run has begun (``runs.start``): one sender, nobody to tell."""

    def renew(self) -> None:
        """Called by the send loop as it goes: one sender holds no lease to renew."""

    def give_back(self) -> None:
        """The loop is over: this process took nothing it has not settled or released."""

    def mark_in_flight(self, ids: list[int], batch: str) -> str:
        """Commit that a request for these rows is about to be made: from here on they are never resent blindly.

        One record for the batch (its label and the ids it carries), not an update of each row.
        Returns the label the request is journaled under (``batch``; "" would mean it must not go, never
        for one sender): the request carries it to the provider (``Payload.labels``).
        """
        journal = self.journal
        journal.commit_run()  # the run's first request: the run and its selection go on record first, durably
        with journal.transaction() as db:
            db.execute("INSERT INTO batches (send, run, label, state, ids, size, started) "
                       "VALUES (?, ?, ?, 'in_flight', ?, ?, ?)",
                       (journal.send, journal.run, batch, json.dumps(ids), len(ids), time.time()))
        flying = self._flying
        for i in ids:
            flying[i] = batch
        self._carried[batch] = self._carried.get(batch, 0) + len(ids)
        return batch

    # -- outcomes ----------------------------------------------------------------------------------

    def _leaving(self, ids: Iterable[int]) -> tuple[dict[str | None, list[int]], list[str]]:
        """The rows among ``ids`` by the batch in flight that carries them (None: none), and the batches
        they were the last rows of. Changes nothing: ``_left`` does once the transaction is committed."""
        flying = self._flying
        ids = list(ids)
        labels = set(map(flying.get, ids))
        if len(labels) == 1:  # the usual case, a whole answer about one request: no per-row grouping
            by_batch: dict[str | None, list[int]] = {labels.pop(): ids}
        else:
            by_batch = {}
            for i in ids:
                by_batch.setdefault(flying.get(i), []).append(i)
        over = [label for label, rows in by_batch.items() if label is not None and self._carried[label] == len(rows)]
        return by_batch, over

    def _left(self, by_batch: Mapping[str | None, list[int]]) -> None:
        flying, carried = self._flying, self._carried
        for label, rows in by_batch.items():
            if label is None:
                continue
            for i in rows:
                del flying[i]
            carried[label] -= len(rows)
            if not carried[label]:
                del carried[label]

    def _close_batches(self, db: JournalDB, labels: list[str], now: float) -> None:
        """The batches whose last carried row was just settled or released: one statement for all."""
        if labels:
            db.execute("UPDATE batches SET state='settled', ids=NULL, settled=? WHERE send=? AND state='in_flight' "
                       f"AND label IN {db.text_set}", (now, self.journal.send, db.texts(labels)))

    def settle(self, outcomes: Iterable[tuple[int, str, str, str]]) -> None:
        """Record (id, status, message_id, reason) after the provider answered; one statement per outcome kind."""
        groups: dict[tuple[str, str, str], list[int]] = {}
        for i, status, message_id, reason in outcomes:
            groups.setdefault((status, message_id or "", reason or ""), []).append(i)
        self.settle_groups(groups)

    def settle_groups(self, groups: Outcomes) -> None:
        """``settle`` for outcomes already grouped: (status, message_id, reason) -> row ids, in one transaction.

        An all-accepted batch is one group: one statement. A batch whose every row is now
        settled (or released) is closed in the same transaction.
        """
        if not groups:
            return
        journal = self.journal
        now = time.time()
        by_batch, over = self._leaving(i for ids in groups.values() for i in ids)
        with journal.transaction(durable=False) as db:
            for (status, message_id, reason), ids in groups.items():
                if not ids:
                    continue
                rows, arguments = id_rows(db, ids)
                status = str(status)
                db.execute(
                    "UPDATE deliveries SET status=?, message_id=NULLIF(?, ''), reason=NULLIF(?, ''), updated=?, "
                    "fields=CASE WHEN ? IN ('sent', 'failed') THEN NULL ELSE fields END, settled_run=? "
                    f"WHERE {rows}", (status, message_id, reason, now, status, journal.own_run or journal.run,
                                      *arguments))
            unknown = {i for (status, _, _), ids in groups.items() if status == Status.UNKNOWN for i in ids}
            for label, rows_of_batch in by_batch.items():  # unknown rows keep their request's label: resolution.py
                mine = [i for i in rows_of_batch if i in unknown] if unknown and label is not None else []
                if mine:
                    db.execute(f"UPDATE deliveries SET batch=? WHERE id IN {db.id_set}", (label, db.ids(mine)))
            self._close_batches(db, over, now)
        self._left(by_batch)

    def release(self, ids: list[int], reason: str, *, retry_at: float = 0.0, count_attempt: bool = True,
                keep: bool = False) -> None:
        """Put rows back to pending: nothing was delivered (refused connection, 5xx, 4xx, Ctrl-C before sending).

        A row leaving a batch still in flight is stamped with that batch's label: it is pending
        again, no longer carried by that batch (a crash then leaves it pending, not unknown).
        ``keep``: this process sends them again at once (the halves of a refused batch); with one
        sender that is no different.
        """
        now = time.time()
        by_batch, over = self._leaving(ids)
        if retry_at:
            self._waiting_runs.add(self.journal.run)
        with self.journal.transaction(durable=False) as db:
            for label, rows in by_batch.items():
                db.execute(
                    "UPDATE deliveries SET status='pending', batch=?, reason=NULLIF(?, ''), not_before=?, "
                    f"attempts=attempts+?, updated=? WHERE id IN {db.id_set}",
                    (label, reason, retry_at, 1 if count_attempt else 0, now, db.ids(rows)))
            self._close_batches(db, over, now)
        self._left(by_batch)

    # -- a run that died -------------------------------------------------------------------------

    def recover(self, db: JournalDB) -> None:
        """Settle what a dead run left in flight (inside the transaction that starts a new run): the rows its
        batches carried become unknown (for a sequential request only the first; the others were never
        attempted and stay pending)."""
        journal = self.journal
        now = time.time()
        for number, label, ids in db.execute("SELECT id, label, ids FROM batches WHERE send=? AND state='in_flight'",
                                             (journal.send,)).fetchall():
            carried = [i for (i,) in db.execute(
                f"SELECT id FROM deliveries WHERE id IN {db.id_set} AND status='pending' "
                "AND (batch IS NULL OR batch <> ?) ORDER BY id", (db.ids(json.loads(ids or "[]")), label)).fetchall()]
            if label.endswith(SEQUENTIAL):
                carried = carried[:1]
            db.execute(
                "UPDATE deliveries SET status=?, reason=?, updated=?, settled_run=run, batch=? "
                f"WHERE id IN {db.id_set}", (str(Status.UNKNOWN), DIED, now, label, db.ids(carried)))
            db.execute("UPDATE batches SET state='settled', ids=NULL, settled=? WHERE id=?", (now, number))
        # Journals of earlier versions marked each row in flight. A sequential request (SMTP) journals each
        # answer before the next recipient is tried: of its rows still in flight, the first may have been
        # under way, the others were never attempted.
        db.execute(
            "UPDATE deliveries SET status='pending', batch=NULL, updated=? WHERE send=? AND status='in_flight' "
            "AND batch LIKE '%" + SEQUENTIAL + "' AND id > (SELECT MIN(d.id) FROM deliveries d WHERE "
            "d.send=deliveries.send AND d.batch=deliveries.batch AND d.status='in_flight')",
            (now, journal.send))
        db.execute("UPDATE deliveries SET status=?, reason=?, updated=?, settled_run=run WHERE send=? AND status=?",
                   (str(Status.UNKNOWN), DIED, now, journal.send, str(Status.IN_FLIGHT)))
