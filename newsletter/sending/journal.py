"""The send journal: one SQLite row per (issue, list, recipient), so each is mailed once.

It is the only record of outcomes: a run's report is read back from it at the
end. An issue is known by its stable id (``id:`` in issue.md's front matter),
not its folder's name, so a renamed or copied folder is the same issue and a
different issue in a folder of the same name is not. Each run records its
audience (list, tags, where), provider and the fingerprint of what went out.

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
``in_flight``. Such rows found when a send starts belong to a run that died
mid-request: their outcome is unknown (for a sequential request, only the
first: the others were never attempted), and they are never resent unless the
writer asks (``--retry-unknown``). Journals of earlier versions marked each row
``in_flight`` instead; those rows are settled the same way.

The journal also holds each pending recipient's merge values, taken from the
list when the send was prepared, so the send loop streams from SQLite with
flat memory; they are cleared once the recipient is settled.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from ..errors import NewsletterError, display_path

PENDING = "pending"
IN_FLIGHT = "in_flight"
SENT = "sent"
FAILED = "failed"
UNKNOWN = "unknown"
STATUSES = (PENDING, IN_FLIGHT, SENT, FAILED, UNKNOWN)
# Not a status of its own: pending rows the latest run did not select (unsubscribed, removed from the
# list or filtered out since). They are never sent unless a later run selects them again; ``status``
# counts them apart so a finished send does not look unfinished.
NOT_SELECTED = "not_selected"
NOT_SELECTED_REASON = ("not selected by the latest send (unsubscribed, removed from the list or filtered out "
                       "since); it is sent only if selected again")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY,
    issue TEXT NOT NULL,
    list TEXT NOT NULL,
    folder TEXT,
    UNIQUE (issue, list)
);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    send INTEGER NOT NULL REFERENCES sends (id),
    key TEXT NOT NULL,
    email TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    fields TEXT,
    status TEXT NOT NULL,
    run INTEGER NOT NULL,
    batch TEXT,
    message_id TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    settled_run INTEGER,
    UNIQUE (send, key)
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    send INTEGER NOT NULL REFERENCES sends (id),
    run INTEGER NOT NULL,
    label TEXT NOT NULL,
    state TEXT NOT NULL,
    ids TEXT,
    size INTEGER NOT NULL,
    started REAL NOT NULL,
    settled REAL
);
CREATE INDEX IF NOT EXISTS batches_by_state ON batches (send, state);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    send INTEGER NOT NULL REFERENCES sends (id),
    started REAL NOT NULL,
    pid INTEGER NOT NULL,
    kind TEXT NOT NULL DEFAULT 'send',
    provider TEXT,
    tags TEXT,
    filters TEXT,
    fingerprint TEXT,
    parts TEXT,
    allow_changed INTEGER NOT NULL DEFAULT 0,
    note TEXT,
    finished REAL
);
"""
# Columns added since the first journals (keyed by folder name): (table, column, declaration).
_ADDED = (("sends", "folder", "TEXT"), ("deliveries", "settled_run", "INTEGER"),
          ("runs", "kind", "TEXT NOT NULL DEFAULT 'send'"), ("runs", "provider", "TEXT"), ("runs", "tags", "TEXT"),
          ("runs", "filters", "TEXT"), ("runs", "fingerprint", "TEXT"), ("runs", "parts", "TEXT"),
          ("runs", "allow_changed", "INTEGER NOT NULL DEFAULT 0"), ("runs", "note", "TEXT"),
          ("runs", "finished", "REAL"))
DISK_HINT = ("free some disk space or make the folder writable (or set [send] journal in newsletter.toml), then "
             "resume the send; recipients whose request was under way are then reported as unknown")


SEQUENTIAL = ":sequential"  # ends the batch id of a request whose recipients are tried one by one, in order


class _SelectStatement:
    """The upsert ``select`` runs: one statement inserts up to ``rows`` recipients (4 parameters each).

    A multi-row VALUES saves the per-call work of a statement on every row (about a third
    less time than ``executemany``); send, run and time are written in as literals (numbers
    this journal made), so a row binds only its own values. ``rows`` stays within SQLite's limits on parameters and
    on the length of a statement, and at most 1,000: from 250 to 8,000 rows a statement took the
    same time for a million rows, and a smaller statement is quicker to prepare and to hold.
    """

    def __init__(self, db: sqlite3.Connection, send: int, run: int, now: float, refresh: Iterable[str],
                 first_wins: bool = False):
        statuses = ", ".join(f"'{s}'" for s in refresh if s in STATUSES)
        fresh = f"status IN ({statuses})"
        self._row = f"({int(send)}, ?, ?, ?, ?, 'pending', {int(run)}, {float(now)!r})"
        self._tail = " ON CONFLICT (send, key) DO NOTHING" if first_wins else (
                      " ON CONFLICT (send, key) DO UPDATE SET run=excluded.run, "
                      f"email=CASE WHEN {fresh} THEN excluded.email ELSE email END, "
                      f"name=CASE WHEN {fresh} THEN excluded.name ELSE name END, "
                      f"fields=CASE WHEN {fresh} THEN excluded.fields ELSE fields END, "
                      f"attempts=CASE WHEN {fresh} THEN 0 ELSE attempts END, "
                      "not_before=0")
        by_length = (db.getlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH) - 200 - len(self._tail)) // (len(self._row) + 1)
        self.rows = max(1, min(1000, db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // 4, by_length))
        self._texts: dict[int, str] = {}  # the same str each time: sqlite3 finds its prepared statement at once

    def sql(self, n: int) -> str:
        text = self._texts.get(n)
        if text is None:
            text = self._texts[n] = ("INSERT INTO deliveries (send, key, email, name, fields, status, run, updated) "
                                     "VALUES " + ",".join([self._row] * n) + self._tail)
        return text


class JournalError(NewsletterError):
    """The journal could not be read or written: nothing more is sent until it can be."""


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns a journal written by an earlier version lacks (its sends keep their folder names
    as issue keys, with ``folder`` empty, until an issue with that folder name adopts them)."""
    for table, column, declaration in _ADDED:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _corrupt(path: Path | str, err: BaseException) -> JournalError:
    where = display_path(path)
    if "not a database" in str(err) or "malformed" in str(err):
        return JournalError(f"the send journal is damaged ({err})", where=where,
                            hint="restore it from a backup; never delete it, it records who was already mailed")
    if "disk is full" in str(err) or "disk I/O" in str(err):
        return JournalError(f"cannot write the send journal: {err}", where=where, hint=DISK_HINT)
    return JournalError(f"cannot use the send journal: {err}", where=where,
                        hint="check the file and its folder are writable; " + DISK_HINT.split("; ")[0])


class Audience(NamedTuple):
    """Who a run was for and how it went out: what ``--resume`` repeats."""

    provider: str
    tags: tuple[str, ...]
    where: tuple[tuple[str, str], ...]


class RunRecord(NamedTuple):
    """One run of a send as ``status`` shows it."""

    id: int
    kind: str  # send | dry run | resolve | abandon
    started: float
    audience: Audience
    fingerprint: str
    parts: dict[str, str]
    allow_changed: bool
    note: str
    counts: dict[str, int]


class Row(NamedTuple):
    """A recipient waiting to be sent, as the send loop reads it back (a tuple: made per recipient)."""

    id: int
    key: str
    email: str
    name: str
    fields: str  # the other columns the issue uses, as the journal holds them: a JSON object ("" for none)
    attempts: int


class Journal:
    """The journal of one issue sent to one list (the database may hold many)."""

    def __init__(self, connection: sqlite3.Connection, issue: str, list_name: str, path: str = ":memory:",
                 *, create: bool = True, folder: str = ""):
        self.db = connection
        self.issue = issue
        self.list = list_name
        self.path = path
        self.folder = folder
        self.run = 0
        # The batches this process has in flight: row id -> batch label, and rows still carried per label.
        self._flying: dict[int, str] = {}
        self._carried: dict[str, int] = {}
        self._selecting: tuple[tuple, _SelectStatement] | None = None  # (run, refresh, first_wins), statement
        try:
            self.send = self._send_id(create)
        except sqlite3.Error as err:
            raise _corrupt(path, err) from None

    def _send_id(self, create: bool) -> int:
        """The row naming this (issue, list) pair; every delivery row refers to it (-1: none yet, read-only).

        A journal from before issues had ids knows the issue by its folder name: the first
        issue with that folder name to be sent adopts that record (it gets the id), once.
        """
        row = self.db.execute("SELECT id FROM sends WHERE issue=? AND list=?", (self.issue, self.list)).fetchone()
        if row:
            return row[0]
        if create:
            legacy = self.folder and self.db.execute(
                "SELECT id FROM sends WHERE issue=? AND list=? AND folder IS NULL",
                (self.folder, self.list)).fetchone()
            if legacy:
                self.db.execute("UPDATE sends SET issue=?, folder=? WHERE id=?", (self.issue, self.folder, legacy[0]))
                return legacy[0]
            return self.db.execute("INSERT INTO sends (issue, list, folder) VALUES (?, ?, ?)",
                                   (self.issue, self.list, self.folder)).lastrowid
        return -1

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, issue: str, list_name: str, folder: str = "") -> Journal:
        """Open (creating) the journal database at ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise JournalError(f"cannot create the journal's folder: {err.strerror}", where=display_path(path.parent),
                               hint="make the folder writable, or set [send] journal in newsletter.toml") from None
        if path.is_dir():
            raise JournalError("the send journal is a folder, not a file", where=display_path(path),
                               hint="move that folder away, or set [send] journal in newsletter.toml")
        try:
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the request it announces goes out, even across a power loss.
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
            _migrate(connection)
        except sqlite3.Error as err:
            raise _corrupt(path, err) from None
        return cls(connection, issue, list_name, str(path), folder=folder)

    @classmethod
    def scratch_copy(cls, path: Path | None, issue: str, list_name: str, folder: str = "") -> Journal:
        """An in-memory copy of the journal at ``path`` (or an empty one), for a run that must leave it untouched."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        try:
            if path is not None and path.is_dir():
                raise JournalError("the send journal is a folder, not a file", where=display_path(path),
                                   hint="move that folder away, or set [send] journal in newsletter.toml")
            if path is not None and path.exists():
                source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                try:
                    source.backup(memory)
                finally:
                    source.close()
            memory.executescript(_SCHEMA)
            _migrate(memory)
        except sqlite3.Error as err:
            raise _corrupt(path or ":memory:", err) from None
        return cls(memory, issue, list_name, folder=folder)

    @classmethod
    def read_only(cls, path: Path, issue: str, list_name: str) -> Journal:
        """The journal at ``path`` opened for reading in place (``status``): no copy, no write."""
        return cls(_read_only(path), issue, list_name, str(path), create=False)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction; a failing disk becomes a JournalError naming the file and the fix.

        ``durable=False`` for records whose loss is safe (an outcome: lost, its row reads as
        in flight, hence unknown, never resent blindly): no fsync of its own, and WAL order
        keeps it behind every durable commit before it.
        """
        try:
            if not durable:
                self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            else:
                self.db.execute("COMMIT")
        except (sqlite3.Error, OSError) as err:
            raise _corrupt(self.path, err) from None
        finally:
            if not durable:
                try:
                    self.db.execute("PRAGMA synchronous=FULL")
                except sqlite3.Error:
                    pass

    # -- preparing a run ----------------------------------------------------------------------------

    def start_run(self, audience: Audience | None = None, fingerprint: str = "", parts: Mapping[str, str] = {},
                  *, kind: str = "send", allow_changed: bool = False, note: str = "") -> int:
        """Record a new run (its audience, provider and fingerprint) and settle rows a dead run left
        in flight as unknown."""
        audience = audience or Audience("", (), ())
        with self.transaction() as db:
            self.run = db.execute(
                "INSERT INTO runs (send, started, pid, kind, provider, tags, filters, fingerprint, parts, "
                "allow_changed, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.send, time.time(), os.getpid(), kind, audience.provider, json.dumps(list(audience.tags)),
                 json.dumps([list(p) for p in audience.where]), fingerprint, json.dumps(dict(parts)),
                 int(allow_changed), note)).lastrowid
            self._recover_batches(db)
            # Journals of earlier versions marked each row in flight. A sequential request (SMTP) journals each
            # answer before the next recipient is tried: of its rows still in flight, the first may have been
            # under way, the others were never attempted.
            db.execute(
                "UPDATE deliveries SET status='pending', batch=NULL, updated=? WHERE send=? AND status='in_flight' "
                "AND batch LIKE '%" + SEQUENTIAL + "' AND id > (SELECT MIN(d.id) FROM deliveries d WHERE "
                "d.send=deliveries.send AND d.batch=deliveries.batch AND d.status='in_flight')",
                (time.time(), self.send))
            db.execute(
                "UPDATE deliveries SET status=?, reason=?, updated=?, settled_run=run WHERE send=? AND status=?",
                (UNKNOWN, "the send stopped while this recipient's request was under way; it may have arrived",
                 time.time(), self.send, IN_FLIGHT))
        return self.run

    def _recover_batches(self, db: sqlite3.Connection) -> None:
        """Settle the batches a dead run left in flight: their carried rows become unknown (for a
        sequential request only the first; the others were never attempted and stay pending)."""
        now = time.time()
        for number, label, ids in db.execute("SELECT id, label, ids FROM batches WHERE send=? AND state='in_flight'",
                                             (self.send,)).fetchall():
            carried = [i for (i,) in db.execute(
                "SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each(?)) AND status='pending' "
                "AND batch IS NOT ? ORDER BY id", (ids or "[]", label))]
            if label.endswith(SEQUENTIAL):
                carried = carried[:1]
            db.execute(
                "UPDATE deliveries SET status=?, reason=?, updated=?, settled_run=run, batch=? "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (UNKNOWN, "the send stopped while this recipient's request was under way; it may have arrived",
                 now, label, json.dumps(carried)))
            db.execute("UPDATE batches SET state='settled', ids=NULL, settled=? WHERE id=?", (now, number))

    def finish_run(self) -> None:
        with self.transaction() as db:
            db.execute("UPDATE runs SET finished=? WHERE id=?", (time.time(), self.run))

    # -- what earlier runs did ---------------------------------------------------------------------

    def runs(self, kinds: Iterable[str] = ("send",)) -> list[RunRecord]:
        """Every run of this send of the given kinds, oldest first, with what each settled."""
        kinds = tuple(kinds)
        marks = ",".join("?" * len(kinds))
        records = []
        try:
            rows = self.db.execute(
                "SELECT id, kind, started, provider, tags, filters, fingerprint, parts, allow_changed, note "
                f"FROM runs WHERE send=? AND kind IN ({marks}) ORDER BY id", (self.send, *kinds)).fetchall()
        except sqlite3.OperationalError:  # a journal from before runs were recorded, read in place
            return []
        for (i, kind, started, provider, tags, filters, fingerprint, parts, allow, note) in rows:
            counts = dict(self.db.execute("SELECT status, COUNT(*) FROM deliveries WHERE settled_run=? "
                                          "GROUP BY status", (i,)).fetchall()) if kind != "dry run" else {}
            audience = Audience(provider or "", tuple(json.loads(tags or "[]")),
                                tuple(tuple(p) for p in json.loads(filters or "[]")))
            records.append(RunRecord(i, kind, started, audience, fingerprint or "", json.loads(parts or "{}"),
                                     bool(allow), note or "", counts))
        return records

    def unfinished(self) -> RunRecord | None:
        """The latest send run, if recipients it selected are still to go (and it was not abandoned)."""
        runs = self.runs(("send", "abandon"))
        if not runs or runs[-1].kind != "send":
            return None
        latest = runs[-1]
        left = self.db.execute("SELECT COUNT(*) FROM deliveries WHERE send=? AND run=? AND status='pending'",
                               (self.send, latest.id)).fetchone()[0]
        return latest if left else None

    def is_fresh(self) -> bool:
        """Nobody of this issue and list is in the journal yet (its first run is being prepared)."""
        return self.db.execute("SELECT 1 FROM deliveries WHERE send=? LIMIT 1", (self.send,)).fetchone() is None

    def sent_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM deliveries WHERE send=? AND status='sent'",
                               (self.send,)).fetchone()[0]

    def select(self, recipients: Iterable[tuple[str, str, str, str | Mapping[str, str]]], chunk: int = 20_000,
               refresh: Iterable[str] = (PENDING,), *, first_wins: bool = False) -> int:
        """Mark this run's selection: new recipients become pending; known ones keep their status.

        Each recipient is (key, email, name, fields): fields as the JSON object text the journal
        keeps ("" for none, as ``select_rows`` yields it) or as a dict to encode.
        Rows whose status is in ``refresh`` (pending, and whatever --retry-* will requeue) take
        the list's current address, name and fields, so a corrected row is what gets sent.
        Pending rows not selected again (unsubscribed since) are left out of this run and never sent.
        Its commits need no fsync of their own (``durable=False``): a lost selection is simply made
        again by the next run, and the first batch's durable commit puts every one before it on disk.

        Each statement inserts up to a thousand rows (``_SelectStatement``: one multi-row VALUES,
        the run's constants written into it), not one row per call: about 1.7 s of the journal's
        time for a million recipients, against 2.4 s before and 1.7 s more for ``json.dumps``.

        ``first_wins``: a later row of a key already in the journal changes nothing (a fresh send's
        list, read without removing its duplicates: ``selection.py``). Returns how many rows were
        left out that way (0 otherwise).
        """
        upsert = self._select_statement(tuple(refresh), first_wins)
        changes = self.db.total_changes
        offered = 0
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        size = upsert.rows * 4  # parameters of one full statement
        values: list = []
        statements: list[list] = []  # those of one transaction, about ``chunk`` rows
        for key, email, name, fields in recipients:
            if fields.__class__ is not str:
                fields = dumps(fields) if fields else None
            values += (key, email, name, fields or None)
            offered += 1
            if len(values) >= size:
                statements.append(values)
                values = []
                if len(statements) * upsert.rows >= chunk:
                    self._insert_selected(upsert, statements)
                    statements = []
        if values:
            statements.append(values)
        if statements:
            self._insert_selected(upsert, statements)
        return offered - (self.db.total_changes - changes) if first_wins else 0

    def _select_statement(self, refresh: tuple[str, ...], first_wins: bool) -> _SelectStatement:
        """The run's selection statement, made once per run: its text holds the run's constants (and the
        time of the run's first selection), and each new text would be prepared and cached by sqlite3
        anew, a large statement each time (a send selecting in steps held a hundred MB of them)."""
        key = (self.run, refresh, first_wins)
        if self._selecting is None or self._selecting[0] != key:
            self._selecting = (key, _SelectStatement(self.db, self.send, self.run, time.time(), refresh, first_wins))
        return self._selecting[1]

    def _insert_selected(self, upsert: _SelectStatement, statements: list[list]) -> None:
        """One transaction of ``select``: its statements' parameters, 4 per recipient."""
        with self.transaction(durable=False) as db:
            for values in statements:
                db.execute(upsert.sql(len(values) // 4), values)

    def resolve(self, status: str, reason: str) -> list[tuple[str, str]]:
        """Settle every unknown recipient of this send as ``status`` (sent, or pending to be resent)."""
        with self.transaction() as db:
            rows = db.execute("SELECT email, COALESCE(reason, '') FROM deliveries WHERE send=? AND status='unknown' "
                              "ORDER BY id", (self.send,)).fetchall()
            if status == PENDING:
                db.execute("UPDATE deliveries SET status='pending', reason=NULL, attempts=0, batch=NULL, "
                           "settled_run=?, updated=? WHERE send=? AND status='unknown'",
                           (self.run, time.time(), self.send))
            else:
                db.execute("UPDATE deliveries SET status=?, reason=?, settled_run=?, updated=? "
                           "WHERE send=? AND status='unknown'", (status, reason, self.run, time.time(), self.send))
        return rows

    def unknown_rows(self, limit: int = 100_000) -> list[tuple[str, str]]:
        return self.db.execute("SELECT email, COALESCE(reason, '') FROM deliveries WHERE send=? AND status='unknown' "
                               "ORDER BY id LIMIT ?", (self.send, limit)).fetchall()

    def run_outcomes(self, limit: int = 1000) -> tuple[dict[str, int], list[tuple[str, str, str]]]:
        """What this run settled: counts by status, and (status, email, reason) of its failed and unknown rows."""
        counts = dict(self.db.execute("SELECT status, COUNT(*) FROM deliveries WHERE settled_run=? GROUP BY status",
                                      (self.run,)).fetchall())
        problems = self.db.execute(
            "SELECT status, email, COALESCE(reason, '') FROM deliveries WHERE settled_run=? AND "
            "status IN ('failed', 'unknown') ORDER BY id LIMIT ?", (self.run, limit)).fetchall()
        return counts, problems

    def deferred(self, max_attempts: int, limit: int = 1000) -> list[tuple[str, str]]:
        """Recipients of this run refused for now too many times to try again in this run."""
        return self.db.execute(
            "SELECT email, COALESCE(reason, '') FROM deliveries WHERE send=? AND run=? AND status='pending' "
            "AND attempts >= ? ORDER BY id LIMIT ?", (self.send, self.run, max_attempts, limit)).fetchall()

    def requeue(self, status: str) -> int:
        """Put this run's ``unknown`` (or ``failed``) recipients back in the queue, on request."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE deliveries SET status='pending', reason=NULL, attempts=0 WHERE send=? AND run=? AND status=?",
                (self.send, self.run, status)).rowcount

    # -- the send loop -----------------------------------------------------------------------------

    def next_pending(self, limit: int, max_attempts: int, after: int = 0) -> list[Row]:
        """Up to ``limit`` pending recipients of this run that may be tried now, in order, after row ``after``.

        The send loop walks forward with ``after`` (the last id it took), so each call reads
        only the rows ahead of it in the table's own order, and no second index has to be
        kept up to date on every insert; it starts again from 0 to pick up retries. (``+send``
        keeps SQLite from choosing the (send, key) index, which would sort the whole send per call.)
        Rows carried by a batch of this process still in flight read ``pending`` in the table and are
        skipped here. A row's other columns stay JSON text: the body workers decode them, not this process.
        """
        sql = ("SELECT id, key, email, name, fields, attempts FROM deliveries "
               "WHERE id > ? AND +send=? AND status='pending' AND run=? AND attempts < ? AND not_before <= ? "
               "ORDER BY id LIMIT ?")
        flying = self._flying
        taken: list[Row] = []
        while True:
            wanted = limit - len(taken)
            rows = self.db.execute(sql, (after, self.send, self.run, max_attempts, time.time(), wanted)).fetchall()
            if not flying:
                return taken + [Row(i, k, e, n, f or "", a) for i, k, e, n, f, a in rows]
            taken += [Row(i, k, e, n, f or "", a) for i, k, e, n, f, a in rows if i not in flying]
            if len(rows) < wanted or len(taken) >= limit:
                return taken
            after = rows[-1][0]

    def next_retry_time(self, max_attempts: int) -> float | None:
        """When the earliest deferred recipient of this run may be tried again, if any."""
        return self.db.execute(
            "SELECT MIN(not_before) FROM deliveries WHERE send=? AND status='pending' AND run=? "
            "AND attempts < ? AND not_before > 0", (self.send, self.run, max_attempts)).fetchone()[0]

    def mark_in_flight(self, ids: list[int], batch: str) -> None:
        """Commit that a request for these rows is about to be made: from here on they are never resent blindly.

        One record for the batch (its label and the ids it carries), not an update of each row.
        """
        with self.transaction() as db:
            db.execute("INSERT INTO batches (send, run, label, state, ids, size, started) "
                       "VALUES (?, ?, ?, 'in_flight', ?, ?, ?)",
                       (self.send, self.run, batch, json.dumps(ids), len(ids), time.time()))
        flying = self._flying
        for i in ids:
            flying[i] = batch
        self._carried[batch] = self._carried.get(batch, 0) + len(ids)

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

    def _close_batches(self, db: sqlite3.Connection, labels: list[str], now: float) -> None:
        """The batches whose last carried row was just settled or released: one statement for all."""
        if labels:
            db.execute("UPDATE batches SET state='settled', ids=NULL, settled=? WHERE send=? AND state='in_flight' "
                       "AND label IN (SELECT value FROM json_each(?))", (now, self.send, json.dumps(labels)))

    def settle(self, outcomes: Iterable[tuple[int, str, str, str]]) -> None:
        """Record (id, status, message_id, reason) after the provider answered; one statement per outcome kind."""
        groups: dict[tuple[str, str, str], list[int]] = {}
        for i, status, message_id, reason in outcomes:
            groups.setdefault((status, message_id or "", reason or ""), []).append(i)
        self.settle_groups(groups)

    def settle_groups(self, groups: Mapping[tuple[str, str, str], list[int]]) -> None:
        """``settle`` for outcomes already grouped: (status, message_id, reason) -> row ids, in one transaction.

        An all-accepted batch is one group: one statement. A batch whose every row is now
        settled (or released) is closed in the same transaction.
        """
        if not groups:
            return
        now = time.time()
        by_batch, over = self._leaving(i for ids in groups.values() for i in ids)
        with self.transaction(durable=False) as db:
            for (status, message_id, reason), ids in groups.items():
                if not ids:
                    continue
                first, last = min(ids), max(ids)
                if last - first + 1 == len(ids):  # every id from first to last (ids are unique): a range
                    rows, arguments = "id BETWEEN ? AND ?", (first, last)
                else:
                    rows, arguments = "id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)
                db.execute(
                    "UPDATE deliveries SET status=?, message_id=NULLIF(?, ''), reason=NULLIF(?, ''), updated=?, "
                    "fields=CASE WHEN ? IN ('sent', 'failed') THEN NULL ELSE fields END, settled_run=? "
                    f"WHERE {rows}", (status, message_id, reason, now, status, self.run, *arguments))
            self._close_batches(db, over, now)
        self._left(by_batch)

    def release(self, ids: list[int], reason: str, *, retry_at: float = 0.0, count_attempt: bool = True) -> None:
        """Put rows back to pending: nothing was delivered (refused connection, 5xx, 4xx, Ctrl-C before sending).

        A row leaving a batch still in flight is stamped with that batch's label: it is pending
        again, no longer carried by that batch (a crash then leaves it pending, not unknown).
        """
        now = time.time()
        by_batch, over = self._leaving(ids)
        with self.transaction(durable=False) as db:
            for label, rows in by_batch.items():
                db.execute(
                    "UPDATE deliveries SET status='pending', batch=?, reason=NULLIF(?, ''), not_before=?, "
                    "attempts=attempts+?, updated=? WHERE id IN (SELECT value FROM json_each(?))",
                    (label, reason, retry_at, 1 if count_attempt else 0, now, json.dumps(rows)))
            self._close_batches(db, over, now)
        self._left(by_batch)

    # -- reporting ---------------------------------------------------------------------------------

    def counts(self, run_only: bool = False) -> dict[str, int]:
        sql = ("SELECT CASE WHEN status='pending' AND id IN (SELECT value FROM json_each(?)) THEN 'in_flight' "
               "ELSE status END AS state, COUNT(*) FROM deliveries WHERE send=?")
        params: tuple = (carried_ids(self.db, self.send), self.send)
        if run_only:
            sql += " AND run=?"
            params += (self.run,)
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(dict(self.db.execute(sql + " GROUP BY state", params).fetchall()))
        return counts

    def selected_status_counts(self) -> dict[str, int]:
        """Status of every recipient selected in this run (sent before, failed before, pending...)."""
        return self.counts(run_only=True)

    def problems(self, limit: int = 1000) -> list[tuple[str, str, str]]:
        """(email, status, reason) of failed, unknown, in-flight, still-deferred and no-longer-selected recipients."""
        latest = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM runs WHERE send=?", (self.send,)).fetchone()[0]
        return self.db.execute(
            "WITH carried(id) AS (SELECT value FROM json_each(:carried)) "
            "SELECT email, CASE WHEN status='in_flight' OR id IN carried THEN 'in_flight' "
            "WHEN status='pending' AND run < :latest THEN :not_selected ELSE status END, "
            "CASE WHEN status='in_flight' OR id IN carried THEN 'a send was delivering it (or stopped "
            "mid-request): it may have arrived' WHEN status='pending' AND run < :latest THEN :reason "
            "ELSE COALESCE(reason, '') END "
            "FROM deliveries WHERE send=:send AND (status IN ('failed', 'unknown', 'in_flight') OR id IN carried "
            "OR (status='pending' AND (reason IS NOT NULL OR run < :latest))) ORDER BY id LIMIT :limit",
            {"latest": latest, "not_selected": NOT_SELECTED.replace("_", " "), "reason": NOT_SELECTED_REASON,
             "send": self.send, "limit": limit, "carried": carried_ids(self.db, self.send)}).fetchall()


def carried_ids(db: sqlite3.Connection, send: int | None = None) -> str:
    """The ids (a JSON array) of the rows a batch in flight carries: ``pending`` in the table, not stamped
    with its label (of a sequential batch, only the first). They read as in flight. (A journal of an earlier version, read in place, has none.)"""
    try:
        batches = db.execute("SELECT label, ids FROM batches WHERE state='in_flight'" +
                             (" AND send=?" if send is not None else ""),
                             (send,) if send is not None else ()).fetchall()
    except sqlite3.OperationalError:
        return "[]"
    ids: list[int] = []
    for label, carried in batches:
        rows = [i for (i,) in db.execute("SELECT id FROM deliveries WHERE id IN (SELECT value FROM json_each(?)) "
                                         "AND status='pending' AND batch IS NOT ? ORDER BY id",
                                         (carried or "[]", label))]
        # A sequential request (SMTP) journals each answer before trying the next recipient: only the
        # first unanswered one can be under way; the rest were not attempted (as _recover_batches decides).
        ids += rows[:1] if label.endswith(SEQUENTIAL) else rows
    return json.dumps(ids)


def _read_only(path: Path) -> sqlite3.Connection:
    """The journal at ``path`` for reading; a JournalError naming the file if it is not a readable journal."""
    if path.is_dir():
        raise JournalError("the send journal is a folder, not a file", where=display_path(path),
                           hint="move that folder away, or set [send] journal in newsletter.toml")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        db.execute("SELECT COUNT(*) FROM sends").fetchone()
    except sqlite3.Error as err:
        raise _corrupt(path, err) from None
    return db


def lists_of(path: Path, issue: str) -> list[str]:
    """The lists ``issue`` (its id) was sent to, from the journal at ``path`` (none if it does not exist)."""
    if not path.exists() and not path.is_symlink():
        return []
    db = _read_only(path)
    try:
        return [row[0] for row in db.execute("SELECT list FROM sends WHERE issue=? ORDER BY list", (issue,))]
    except sqlite3.Error as err:
        raise _corrupt(path, err) from None
    finally:
        db.close()


def summarize(path: Path, issue: str, list_name: str | None = None) -> list[tuple[str, dict[str, int]]]:
    """(list, status counts) for every list ``issue`` was sent to, read-only."""
    if not path.exists():
        return []
    db = _read_only(path)
    try:
        sql = ("SELECT s.list, CASE WHEN d.status='pending' AND d.id IN (SELECT value FROM json_each(?)) "
               "THEN 'in_flight' WHEN d.status='pending' AND d.run < (SELECT MAX(r.id) FROM runs r "
               f"WHERE r.send = s.id) THEN '{NOT_SELECTED}' ELSE d.status END AS state, COUNT(*) "
               "FROM deliveries d JOIN sends s ON s.id = d.send WHERE s.issue=?")
        params: tuple = (carried_ids(db), issue)
        if list_name:
            sql += " AND s.list=?"
            params += (list_name,)
        result: dict[str, dict[str, int]] = {}
        for name, status, count in db.execute(sql + " GROUP BY s.list, state", params):
            result.setdefault(name, dict.fromkeys((*STATUSES, NOT_SELECTED), 0))[status] = count
        return sorted(result.items())
    except sqlite3.Error as err:
        raise _corrupt(path, err) from None
    finally:
        db.close()
