"""The default event store: one SQLite file in the newsletter folder, nothing to install.

Every append is committed with ``synchronous=FULL`` before it returns, so an
answered request survives a killed process or a power cut. SQLite has one
writer at a time, so ids grow in commit order and a list's cursor never skips
an event. One connection is shared by the service's threads under a lock.

``wait`` bounds how long a call waits for that lock and for SQLite's own
write lock (another process writing: a sync, a backup, a ``sqlite3`` shell
left in a transaction): the service opens the store with a short wait, so a
reader gets a 503 within a second instead of a page that hangs.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..errors import NewsletterError, display_path
from .store import (
    SCHEMA_VERSION,
    BatchReport,
    ClickRecord,
    Event,
    MessageEvent,
    batch_report_columns,
    batch_report_of_row,
    batch_report_values,
    click_columns,
    click_of_row,
    click_values,
    event_columns,
    event_of_row,
    event_values,
    message_event_columns,
    message_event_of_row,
    message_event_values,
)

T = TypeVar("T")
@dataclass
class _Waiting:
    click: ClickRecord
    done: bool = False
    id: int = 0
    error: BaseException | None = None


class GroupCommit:
    """Clicks recorded from many threads at once go to the database together, each caller returning once
    the transaction that holds its own click has committed (or raising what that transaction raised).

    The first caller to find no write under way writes everything waiting, its own click included;
    callers arriving meanwhile wait, and are written together by the next one."""

    def __init__(self, write_many: Callable[[Sequence[ClickRecord]], list[int]]):
        self._write_many = write_many
        self._ready = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._writing = False

    def submit(self, click: ClickRecord) -> int:
        mine = _Waiting(click)
        with self._ready:
            self._waiting.append(mine)
            while not mine.done:
                if self._writing:
                    self._ready.wait()
                    continue
                self._writing = True
                batch, self._waiting = self._waiting, []
                self._ready.release()
                ids: list[int] = [0] * len(batch)
                error: BaseException | None = None
                try:
                    ids = self._write_many([waiting.click for waiting in batch])
                except BaseException as err:  # noqa: BLE001 - handed to every caller of the batch
                    error = err
                finally:
                    self._ready.acquire()
                for waiting, click_id in zip(batch, ids, strict=True):
                    waiting.done, waiting.id, waiting.error = True, click_id, error
                self._writing = False
                self._ready.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.id


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list_name TEXT NOT NULL, kind TEXT NOT NULL, email TEXT NOT NULL, key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', at TEXT NOT NULL, asked_at TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '', source_id TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS events_by_address ON events (list_name, key, kind, at);
CREATE TABLE IF NOT EXISTS sync_cursors (list_name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
DROP TABLE IF EXISTS webhook_signatures;
CREATE TABLE IF NOT EXISTS webhook_batches (digest TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS webhook_batches_by_time ON webhook_batches (at);
CREATE TABLE IF NOT EXISTS confirmation_mails (mailbox TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS confirmation_mails_by_mailbox ON confirmation_mails (mailbox, at);
CREATE TABLE IF NOT EXISTS heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS clicks (
    id INTEGER PRIMARY KEY AUTOINCREMENT, issue TEXT NOT NULL, link INTEGER NOT NULL, url TEXT NOT NULL,
    reader TEXT NOT NULL, domain_group INTEGER NOT NULL, variant INTEGER NOT NULL, sent_at INTEGER NOT NULL,
    at TEXT NOT NULL, human INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS clicks_by_issue ON clicks (issue, at);
CREATE TABLE IF NOT EXISTS message_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, issue TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
    reader TEXT NOT NULL DEFAULT '', domain_group INTEGER NOT NULL DEFAULT 0, variant INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '', source_id TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS message_events_by_issue ON message_events (issue, at);
CREATE TABLE IF NOT EXISTS batch_reports (
    run TEXT NOT NULL, batch TEXT NOT NULL, kind TEXT NOT NULL, events INTEGER NOT NULL,
    first_at TEXT NOT NULL, last_at TEXT NOT NULL, PRIMARY KEY (run, batch, kind)
)
"""

OPEN_WAIT_SECONDS = 30.0  # creating or upgrading the schema at start may wait for another writer this long


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is now (device, inode), or None if there is none."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


class SqliteStore:
    """The event store in one SQLite file (created, with its schema, on first open)."""

    def __init__(self, path: Path, *, create: bool = True, wait: float = OPEN_WAIT_SECONDS):
        self.path = Path(path)
        self.where = display_path(self.path)
        self.wait = wait
        if not create and not self.path.is_file():
            raise NewsletterError("the event store does not exist", where=self.where)
        self._lock = threading.Lock()
        self._clicks = GroupCommit(self._record_clicks)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=OPEN_WAIT_SECONDS, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            self._file = _identity(self.path)
        except sqlite3.Error as err:
            raise NewsletterError(f"cannot open the event store: {err}", where=self.where,
                                  hint="check the file's permissions and free disk space") from None

    def _migrate(self) -> None:
        """Create the schema on first start, bring an older one up to date; refuse a newer one."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = db.execute("SELECT max(version) FROM schema_version").fetchone()
            version = row[0] or 0
            if version > SCHEMA_VERSION:
                raise NewsletterError(f"the event store has schema version {version}; this newsletter "
                                      f"knows up to {SCHEMA_VERSION}", where=self.where,
                                      hint="upgrade the newsletter package")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        deadline = time.monotonic() + self.wait
        if not self._lock.acquire(timeout=self.wait):
            raise NewsletterError(f"the event store is busy: no answer within {self.wait:g} s", where=self.where,
                                  hint="try again in a moment; if it lasts, look for a process holding the file")
        try:
            if _identity(self.path) != self._file:  # SQLite would go on writing to the deleted file
                raise NewsletterError("the event store file was deleted or replaced while the service ran",
                                      where=self.where, hint="restart 'newsletter serve' (it creates the file "
                                      "again); nothing was recorded since, and readers were told so")
            try:
                # what is left of the wait, for SQLite's write lock (another process writing)
                left = max(1, int((deadline - time.monotonic()) * 1000))
                self._db.execute(f"PRAGMA busy_timeout = {left}")
                return work(self._db)
            except sqlite3.Error as err:
                raise NewsletterError(f"the event store failed: {err}", where=self.where,
                                      hint="check the file's permissions and free disk space, and that no other "
                                           "process holds it locked") from None
        finally:
            self._lock.release()

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one write transaction, committed durably, or rolled back."""
        def transaction(db: sqlite3.Connection) -> T:
            db.execute("BEGIN IMMEDIATE")
            try:
                result = work(db)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
            return result

        return self._run(transaction)

    def append(self, events: Sequence[Event]) -> int:
        return self._write(lambda db: _insert(db, events))

    def append_batch(self, digest: str, events: Sequence[Event], at: str, forget_before: str,
                     message_events: Sequence[MessageEvent] = (), reports: Sequence[BatchReport] = ()) -> int | None:
        def work(db: sqlite3.Connection) -> int | None:
            db.execute("DELETE FROM webhook_batches WHERE at < ?", (forget_before,))
            if db.execute("INSERT INTO webhook_batches (digest, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                          (digest, at)).rowcount != 1:
                return None
            columns = message_event_columns()
            db.executemany(f"INSERT INTO message_events ({', '.join(columns)}) VALUES "
                           f"({', '.join('?' * len(columns))}) ON CONFLICT (source_id) DO NOTHING",
                           [message_event_values(event) for event in message_events])
            columns = batch_report_columns()
            db.executemany(f"INSERT INTO batch_reports ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                           "ON CONFLICT (run, batch, kind) DO UPDATE SET events = events + excluded.events, "
                           "first_at = min(first_at, excluded.first_at), last_at = max(last_at, excluded.last_at)",
                           [batch_report_values(report) for report in reports])
            return _insert(db, events)

        return self._write(work)

    def batch_reports_of(self, run: str) -> list[BatchReport]:
        return self._run(lambda db: [batch_report_of_row(r) for r in db.execute(
            f"SELECT {', '.join(batch_report_columns())} FROM batch_reports WHERE run = ? ORDER BY batch, kind",
            (run,))])

    def record_click(self, click: ClickRecord) -> int:
        return self._clicks.submit(click)

    def _record_clicks(self, clicks: Sequence[ClickRecord]) -> list[int]:
        """Clicks that arrived together, in one durable transaction (group commit): one fsync for all of
        them, so a burst of readers does not queue behind one fsync each."""
        columns = click_columns()
        sql = f"INSERT INTO clicks ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
        return self._write(lambda db: [int(db.execute(sql, click_values(click)).lastrowid or 0) for click in clicks])

    def mark_clicks(self, ids: Sequence[int], reason: str) -> None:
        if ids:
            self._write(lambda db: db.execute(
                f"UPDATE clicks SET human = 0, reason = ? WHERE id IN ({', '.join('?' * len(ids))})",
                (reason, *ids)))

    def clicks_of(self, issue: str) -> list[ClickRecord]:
        return self._run(lambda db: [click_of_row(r) for r in db.execute(
            f"SELECT id, {', '.join(click_columns())} FROM clicks WHERE issue = ? ORDER BY id", (issue,))])

    def message_events_of(self, issue: str) -> list[MessageEvent]:
        return self._run(lambda db: [message_event_of_row(r) for r in db.execute(
            f"SELECT {', '.join(message_event_columns())} FROM message_events WHERE issue = ? ORDER BY id",
            (issue,))])

    def record_confirmation(self, event: Event, mailbox: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            _insert(db, [event])
            db.execute("INSERT INTO confirmation_mails (mailbox, at) VALUES (?, ?)", (mailbox, event.at))

        self._write(work)

    def confirmations_since(self, mailbox: str, since: str) -> int:
        return self._run(lambda db: int(db.execute(
            "SELECT count(*) FROM confirmation_mails WHERE mailbox = ? AND at >= ?", (mailbox, since)).fetchone()[0]))

    def unsynced(self, list_name: str) -> list[Event]:
        def work(db: sqlite3.Connection) -> list[Event]:
            row = db.execute("SELECT last_id FROM sync_cursors WHERE list_name = ?", (list_name,)).fetchone()
            rows = db.execute(f"SELECT id, {', '.join(event_columns())} FROM events "
                              "WHERE id > ? AND list_name IN (?, '*') ORDER BY id", (row[0] if row else 0, list_name))
            return [event_of_row(r) for r in rows]

        return self._run(work)

    def events_since(self, list_name: str, since: str) -> list[Event]:
        return self._run(lambda db: [event_of_row(r) for r in db.execute(
            f"SELECT id, {', '.join(event_columns())} FROM events "
            "WHERE at >= ? AND list_name IN (?, '*') ORDER BY id", (since, list_name))])

    def mark_synced(self, list_name: str, last_id: int) -> None:
        self._run(lambda db: db.execute(
            "INSERT INTO sync_cursors (list_name, last_id) VALUES (?, ?) "
            "ON CONFLICT (list_name) DO UPDATE SET last_id = max(last_id, excluded.last_id)", (list_name, last_id)))

    def ping(self) -> None:
        self._run(lambda db: db.execute("SELECT 1").fetchone())

    def heartbeat(self, at: str) -> None:
        self._write(lambda db: db.execute(
            "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at", (at,)))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _insert(db: sqlite3.Connection, events: Sequence[Event]) -> int:
    """Insert ``events`` inside the caller's transaction; how many were new (a known source_id is skipped)."""
    columns = event_columns()
    sql = (f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
           "ON CONFLICT (source_id) DO NOTHING")
    return sum(db.execute(sql, event_values(event)).rowcount for event in events)
