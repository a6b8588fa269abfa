"""The send journal: one SQLite row per (issue, list, recipient), so each is mailed once.

State follows what actually happened. A row becomes ``in_flight`` (with its
batch id) in a committed transaction *before* the request, and ``sent``
only *after* the provider accepted it. A row found ``in_flight`` when a
send starts belongs to a run that died mid-request: its outcome is unknown,
and it is never resent unless the writer asks (``--retry-unknown``).

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
from types import MappingProxyType
from typing import NamedTuple

from .errors import NewsletterError, display_path

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
    UNIQUE (send, key)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    send INTEGER NOT NULL REFERENCES sends (id),
    started REAL NOT NULL,
    pid INTEGER NOT NULL
);
"""


class Row(NamedTuple):
    """A recipient waiting to be sent, as the send loop reads it back (a tuple: made per recipient)."""

    id: int
    key: str
    email: str
    name: str
    fields: Mapping[str, str]
    attempts: int


_NO_FIELDS: Mapping[str, str] = MappingProxyType({})  # shared by every row without extra columns


class Journal:
    """The journal of one issue sent to one list (the database may hold many)."""

    def __init__(self, connection: sqlite3.Connection, issue: str, list_name: str, path: str = ":memory:",
                 *, create: bool = True):
        self.db = connection
        self.issue = issue
        self.list = list_name
        self.path = path
        self.run = 0
        self.send = self._send_id(create)

    def _send_id(self, create: bool) -> int:
        """The row naming this (issue, list) pair; every delivery row refers to it (-1: none yet, read-only)."""
        if create:
            self.db.execute("INSERT OR IGNORE INTO sends (issue, list) VALUES (?, ?)", (self.issue, self.list))
        row = self.db.execute("SELECT id FROM sends WHERE issue=? AND list=?", (self.issue, self.list)).fetchone()
        return row[0] if row else -1

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, issue: str, list_name: str) -> Journal:
        """Open (creating) the journal database at ``path``."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, timeout=30, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the request it announces goes out, even across a power loss.
            connection.execute("PRAGMA synchronous=FULL")
            connection.executescript(_SCHEMA)
        except sqlite3.Error as err:
            raise NewsletterError(f"cannot open the send journal: {err}", where=display_path(path),
                                  hint="check the folder is writable; set [send] journal in newsletter.toml") from None
        return cls(connection, issue, list_name, str(path))

    @classmethod
    def scratch_copy(cls, path: Path, issue: str, list_name: str) -> Journal:
        """An in-memory copy of the journal at ``path``, for a dry run that must leave it untouched."""
        memory = sqlite3.connect(":memory:", isolation_level=None)
        if path.exists():
            source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                source.backup(memory)
            finally:
                source.close()
        memory.executescript(_SCHEMA)
        return cls(memory, issue, list_name)

    @classmethod
    def read_only(cls, path: Path, issue: str, list_name: str) -> Journal:
        """The journal at ``path`` opened for reading in place (``status``): no copy, no write."""
        return cls(sqlite3.connect(f"file:{path}?mode=ro", uri=True), issue, list_name, str(path), create=False)

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        else:
            self.db.execute("COMMIT")

    # -- preparing a run ----------------------------------------------------------------------------

    def start_run(self) -> int:
        """Record a new run and settle rows a dead run left in flight as unknown."""
        with self.transaction() as db:
            self.run = db.execute("INSERT INTO runs (send, started, pid) VALUES (?, ?, ?)",
                                  (self.send, time.time(), os.getpid())).lastrowid
            db.execute(
                "UPDATE deliveries SET status=?, reason=?, updated=? WHERE send=? AND status=?",
                (UNKNOWN, "the send stopped while this batch was being delivered; it may have arrived",
                 time.time(), self.send, IN_FLIGHT))
        return self.run

    def select(self, recipients: Iterable[tuple[str, str, str, dict[str, str]]], chunk: int = 5000,
               refresh: Iterable[str] = (PENDING,)) -> None:
        """Mark this run's selection: new recipients become pending; known ones keep their status.

        Rows whose status is in ``refresh`` (pending, and whatever --retry-* will requeue) take
        the list's current address, name and fields, so a corrected row is what gets sent.
        Pending rows not selected again (unsubscribed since) are left out of this run and never sent.
        """
        statuses = ", ".join(f"'{s}'" for s in refresh if s in STATUSES)
        fresh = f"status IN ({statuses})"
        sql = (
            "INSERT INTO deliveries (send, key, email, name, fields, status, run, updated) "
            "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) "
            "ON CONFLICT (send, key) DO UPDATE SET run=excluded.run, "
            f"email=CASE WHEN {fresh} THEN excluded.email ELSE email END, "
            f"name=CASE WHEN {fresh} THEN excluded.name ELSE name END, "
            f"fields=CASE WHEN {fresh} THEN excluded.fields ELSE fields END, "
            f"attempts=CASE WHEN {fresh} THEN 0 ELSE attempts END, "
            "not_before=0"
        )
        now = time.time()
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        buffer: list[tuple] = []
        for key, email, name, fields in recipients:
            buffer.append((self.send, key, email, name, dumps(fields) if fields else None, self.run, now))
            if len(buffer) >= chunk:
                with self.transaction() as db:
                    db.executemany(sql, buffer)
                buffer.clear()
        if buffer:
            with self.transaction() as db:
                db.executemany(sql, buffer)

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
        """
        rows = self.db.execute(
            "SELECT id, key, email, name, fields, attempts FROM deliveries "
            "WHERE id > ? AND +send=? AND status='pending' AND run=? AND attempts < ? AND not_before <= ? "
            "ORDER BY id LIMIT ?",
            (after, self.send, self.run, max_attempts, time.time(), limit)).fetchall()
        loads = json.loads
        return [Row(i, k, e, n, loads(f) if f else _NO_FIELDS, a) for i, k, e, n, f, a in rows]

    def next_retry_time(self, max_attempts: int) -> float | None:
        """When the earliest deferred recipient of this run may be tried again, if any."""
        return self.db.execute(
            "SELECT MIN(not_before) FROM deliveries WHERE send=? AND status='pending' AND run=? "
            "AND attempts < ? AND not_before > 0", (self.send, self.run, max_attempts)).fetchone()[0]

    def mark_in_flight(self, ids: list[int], batch: str) -> None:
        """Commit that a request for these rows is about to be made: from here on they are never resent blindly."""
        with self.transaction() as db:
            db.execute("UPDATE deliveries SET status='in_flight', batch=?, updated=? "
                       "WHERE id IN (SELECT value FROM json_each(?))", (batch, time.time(), json.dumps(ids)))

    def settle(self, outcomes: Iterable[tuple[int, str, str, str]]) -> None:
        """Record (id, status, message_id, reason) after the provider answered; one statement per outcome kind."""
        groups: dict[tuple[str, str, str], list[int]] = {}
        for i, status, message_id, reason in outcomes:
            groups.setdefault((status, message_id or "", reason or ""), []).append(i)
        self.settle_groups(groups)

    def settle_groups(self, groups: Mapping[tuple[str, str, str], list[int]]) -> None:
        """``settle`` for outcomes already grouped: (status, message_id, reason) -> row ids, in one transaction."""
        if not groups:
            return
        now = time.time()
        with self.transaction() as db:
            for (status, message_id, reason), ids in groups.items():
                db.execute(
                    "UPDATE deliveries SET status=?, message_id=NULLIF(?, ''), reason=NULLIF(?, ''), updated=?, "
                    "fields=CASE WHEN ? IN ('sent', 'failed') THEN NULL ELSE fields END "
                    "WHERE id IN (SELECT value FROM json_each(?))",
                    (status, message_id, reason, now, status, json.dumps(ids)))

    def release(self, ids: list[int], reason: str, *, retry_at: float = 0.0, count_attempt: bool = True) -> None:
        """Put rows back to pending: nothing was delivered (refused connection, 5xx, 4xx, Ctrl-C before sending)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status='pending', batch=NULL, reason=NULLIF(?, ''), not_before=?, "
                "attempts=attempts+?, updated=? WHERE id IN (SELECT value FROM json_each(?))",
                (reason, retry_at, 1 if count_attempt else 0, time.time(), json.dumps(ids)))

    # -- reporting ---------------------------------------------------------------------------------

    def counts(self, run_only: bool = False) -> dict[str, int]:
        sql = "SELECT status, COUNT(*) FROM deliveries WHERE send=?"
        params: tuple = (self.send,)
        if run_only:
            sql += " AND run=?"
            params += (self.run,)
        counts = dict.fromkeys(STATUSES, 0)
        counts.update(dict(self.db.execute(sql + " GROUP BY status", params).fetchall()))
        return counts

    def selected_status_counts(self) -> dict[str, int]:
        """Status of every recipient selected in this run (sent before, failed before, pending...)."""
        return self.counts(run_only=True)

    def problems(self, limit: int = 1000) -> list[tuple[str, str, str]]:
        """(email, status, reason) of failed, unknown, in-flight, still-deferred and no-longer-selected recipients."""
        latest = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM runs WHERE send=?", (self.send,)).fetchone()[0]
        return self.db.execute(
            "SELECT email, CASE WHEN status='pending' AND run < :latest THEN :not_selected ELSE status END, "
            "CASE WHEN status='in_flight' THEN 'a send was delivering it (or stopped mid-request): it may have "
            "arrived' WHEN status='pending' AND run < :latest THEN :reason ELSE COALESCE(reason, '') END "
            "FROM deliveries WHERE send=:send AND (status IN ('failed', 'unknown', 'in_flight') "
            "OR (status='pending' AND (reason IS NOT NULL OR run < :latest))) ORDER BY id LIMIT :limit",
            {"latest": latest, "not_selected": NOT_SELECTED.replace("_", " "), "reason": NOT_SELECTED_REASON,
             "send": self.send, "limit": limit}).fetchall()


def summarize(path: Path, issue: str, list_name: str | None = None) -> list[tuple[str, dict[str, int]]]:
    """(list, status counts) for every list ``issue`` was sent to, read-only."""
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        sql = ("SELECT s.list, CASE WHEN d.status='pending' AND d.run < (SELECT MAX(r.id) FROM runs r "
               f"WHERE r.send = s.id) THEN '{NOT_SELECTED}' ELSE d.status END AS state, COUNT(*) "
               "FROM deliveries d JOIN sends s ON s.id = d.send WHERE s.issue=?")
        params: tuple = (issue,)
        if list_name:
            sql += " AND s.list=?"
            params += (list_name,)
        result: dict[str, dict[str, int]] = {}
        for name, status, count in db.execute(sql + " GROUP BY s.list, state", params):
            result.setdefault(name, dict.fromkeys((*STATUSES, NOT_SELECTED), 0))[status] = count
        return sorted(result.items())
    except sqlite3.Error:
        return []
    finally:
        db.close()
