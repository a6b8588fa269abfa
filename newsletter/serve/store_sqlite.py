"""The default event store: one SQLite file in the newsletter folder, nothing to install.

Every append is committed with ``synchronous=FULL`` before it returns, so an
answered request survives a killed process or a power cut. SQLite has one
writer at a time, so ids grow in commit order and a list's cursor never skips
an event. One connection is shared by the service's threads under a lock.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from ..errors import NewsletterError, display_path
from .store import SCHEMA_VERSION, Event, event_columns, event_of_row, event_values

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    list_name TEXT NOT NULL, kind TEXT NOT NULL, email TEXT NOT NULL, key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', at TEXT NOT NULL, asked_at TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '', source_id TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS events_by_address ON events (list_name, key, kind, at);
CREATE TABLE IF NOT EXISTS sync_cursors (list_name TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_signatures (signature TEXT PRIMARY KEY, at TEXT NOT NULL);
"""


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is now (device, inode), or None if there is none."""
    try:
        found = path.stat()
    except OSError:
        return None
    return found.st_dev, found.st_ino


class SqliteStore:
    """The event store in one SQLite file (created, with its schema, on first open)."""

    def __init__(self, path: Path, *, create: bool = True):
        self.path = Path(path)
        self.where = display_path(self.path)
        if not create and not self.path.is_file():
            raise NewsletterError("the event store does not exist", where=self.where)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._migrate()
            self._file = _identity(self.path)
        except sqlite3.Error as err:
            raise NewsletterError(f"cannot open the event store: {err}", where=self.where,
                                  hint="check the file's permissions and free disk space") from None

    def _migrate(self) -> None:
        """Create the schema on first start; refuse a store written by a newer version."""
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

    def _run(self, work):
        with self._lock:
            if _identity(self.path) != self._file:  # SQLite would go on writing to the deleted file
                raise NewsletterError("the event store file was deleted or replaced while the service ran",
                                      where=self.where, hint="restart 'newsletter serve' (it creates the file "
                                      "again); nothing was recorded since, and readers were told so")
            try:
                return work(self._db)
            except sqlite3.Error as err:
                raise NewsletterError(f"the event store failed: {err}", where=self.where,
                                      hint="check the file's permissions and free disk space") from None

    def append(self, events: Sequence[Event]) -> int:
        columns = event_columns()
        sql = (f"INSERT INTO events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
               "ON CONFLICT (source_id) DO NOTHING")

        def work(db: sqlite3.Connection) -> int:
            db.execute("BEGIN IMMEDIATE")
            try:
                added = sum(db.execute(sql, event_values(event)).rowcount for event in events)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return added

        return self._run(work)

    def count_since(self, list_name: str, key: str, kind: str, since: str) -> int:
        return self._run(lambda db: db.execute(
            "SELECT count(*) FROM events WHERE list_name = ? AND key = ? AND kind = ? AND at >= ?",
            (list_name, key, kind, since)).fetchone()[0])

    def remember_signature(self, signature: str, at: str) -> bool:
        return self._run(lambda db: db.execute(
            "INSERT INTO webhook_signatures (signature, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (signature, at)).rowcount == 1)

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

    def close(self) -> None:
        with self._lock:
            self._db.close()
