"""The event store in PostgreSQL (psycopg 3), shared by several ``serve`` instances behind a balancer.

The password is never in ``database_url``: it comes from the environment
variable ``serve.database_password_env`` names. Ids come from a sequence, so
two instances may commit ids out of order; reading a list's unsynced events
therefore takes a SHARE lock on the table, which waits for appends in flight
and holds new ones back for the moment of the read, so a cursor never steps
over an event that commits later.

``wait`` bounds how long a call waits for a working connection, and for a
lock another session holds (``lock_timeout``). The service opens the store
with a short wait, so while PostgreSQL is down, or a stuck transaction holds
the tables, every request gets its 503 within a second; connections are
checked before use, and a connection that cannot be made is tried again at
the next request (not after a back-off grown to minutes), so the service
answers again as soon as the server is back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import NewsletterError
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
CONNECT_SECONDS = 10  # the first connection at start (a server that is down fails now, not later)
POOL_CONNECT_SECONDS = 5  # each later connection attempt, made in the pool's own threads
RECONNECT_SECONDS = 5.0  # the pool gives up re-trying a lost connection after this; the next request tries anew

_SCHEMA = """
CREATE TABLE IF NOT EXISTS newsletter_events (
    id BIGSERIAL PRIMARY KEY,
    list_name TEXT NOT NULL, kind TEXT NOT NULL, email TEXT NOT NULL, key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', at TEXT NOT NULL, asked_at TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '', source_id TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS newsletter_events_by_address ON newsletter_events (list_name, key, kind, at);
CREATE TABLE IF NOT EXISTS newsletter_sync_cursors (list_name TEXT PRIMARY KEY, last_id BIGINT NOT NULL);
DROP TABLE IF EXISTS newsletter_webhook_signatures;
CREATE TABLE IF NOT EXISTS newsletter_webhook_batches (digest TEXT PRIMARY KEY, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS newsletter_webhook_batches_by_time ON newsletter_webhook_batches (at);
CREATE TABLE IF NOT EXISTS newsletter_confirmation_mails (mailbox TEXT NOT NULL, at TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS newsletter_confirmation_mails_by_mailbox ON newsletter_confirmation_mails (mailbox, at);
CREATE TABLE IF NOT EXISTS newsletter_heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS newsletter_clicks (
    id BIGSERIAL PRIMARY KEY, issue TEXT NOT NULL, link INTEGER NOT NULL, url TEXT NOT NULL,
    reader TEXT NOT NULL, domain_group INTEGER NOT NULL, variant INTEGER NOT NULL, sent_at BIGINT NOT NULL,
    at TEXT NOT NULL, human INTEGER NOT NULL, reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS newsletter_clicks_by_issue ON newsletter_clicks (issue, at);
CREATE TABLE IF NOT EXISTS newsletter_message_events (
    id BIGSERIAL PRIMARY KEY, issue TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
    reader TEXT NOT NULL DEFAULT '', domain_group INTEGER NOT NULL DEFAULT 0, variant INTEGER NOT NULL DEFAULT 0,
    detail TEXT NOT NULL DEFAULT '', source TEXT NOT NULL DEFAULT '', source_id TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS newsletter_message_events_by_issue ON newsletter_message_events (issue, at);
CREATE TABLE IF NOT EXISTS newsletter_batch_reports (
    run TEXT NOT NULL, batch TEXT NOT NULL, kind TEXT NOT NULL, events BIGINT NOT NULL,
    first_at TEXT NOT NULL, last_at TEXT NOT NULL, PRIMARY KEY (run, batch, kind)
)
"""


def describe(url: str) -> str:
    """The URL without any password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"postgresql://{user}{host}{port}{parts.path}"


class PostgresStore:
    """The event store in a PostgreSQL database (tables prefixed ``newsletter_``, created on first open)."""

    def __init__(self, url: str, *, password: str | None = None, max_connections: int = 8, wait: float = 10.0):
        self.where = describe(url)
        self.wait = wait
        if urlsplit(url).password:
            raise NewsletterError("serve.database_url holds a password", where=self.where,
                                  hint="remove it from the URL and put it in the environment variable "
                                       "named by serve.database_password_env")
        conninfo = make_conninfo(url, password=password) if password else url
        try:  # one direct connection first: a server that is down fails now, not after the pool's retries
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=CONNECT_SECONDS) as conn:
                self._migrate(conn)
        except psycopg.Error as err:
            raise self._unreachable(err) from None
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=max_connections, timeout=wait,
                                    kwargs={"autocommit": True, "connect_timeout": POOL_CONNECT_SECONDS},
                                    check=ConnectionPool.check_connection, reconnect_timeout=RECONNECT_SECONDS,
                                    configure=self._configure, open=False)
        try:
            self._pool.open(wait=True, timeout=CONNECT_SECONDS)
        except (PoolTimeout, psycopg.Error) as err:
            self._pool.close()
            raise self._unreachable(err) from None

    def _configure(self, conn: psycopg.Connection) -> None:
        """Each pooled connection waits for another session's lock no longer than ``wait``."""
        conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, round(self.wait * 1000))}ms",))

    def _unreachable(self, err: Exception) -> NewsletterError:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return NewsletterError(f"cannot reach the event store: {detail}", where=self.where,
                               hint="check that PostgreSQL is running, the URL in serve.database_url and the "
                                    "password variable named by serve.database_password_env")

    def _run(self, work: Callable[[psycopg.Connection], T]) -> T:
        try:
            with self._pool.connection() as conn:
                return work(conn)
        except (PoolTimeout, psycopg.OperationalError) as err:
            raise self._unreachable(err) from None
        except psycopg.Error as err:
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise NewsletterError(f"the event store failed: {detail}", where=self.where,
                                  hint="check that the database accepts writes (not a read-only replica, "
                                       "disk space) and the role's privileges") from None

    def _migrate(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(80211401)")  # one instance creates the schema
            conn.execute("CREATE TABLE IF NOT EXISTS newsletter_schema_version (version INTEGER NOT NULL)")
            found = conn.execute("SELECT max(version) FROM newsletter_schema_version").fetchone()
            version = (found[0] if found else 0) or 0
            if version > SCHEMA_VERSION:
                raise NewsletterError(f"the event store has schema version {version}; this newsletter "
                                      f"knows up to {SCHEMA_VERSION}", where=self.where,
                                      hint="upgrade the newsletter package")
            if version < SCHEMA_VERSION:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("INSERT INTO newsletter_schema_version (version) VALUES (%s)", (SCHEMA_VERSION,))

    def append(self, events: Sequence[Event]) -> int:
        def work(conn: psycopg.Connection) -> int:
            with conn.transaction():
                return _insert(conn, events)

        return self._run(work)

    def append_batch(self, digest: str, events: Sequence[Event], at: str, forget_before: str,
                     message_events: Sequence[MessageEvent] = (), reports: Sequence[BatchReport] = ()) -> int | None:
        def work(conn: psycopg.Connection) -> int | None:
            with conn.transaction():
                conn.execute("DELETE FROM newsletter_webhook_batches WHERE at < %s", (forget_before,))
                if conn.execute("INSERT INTO newsletter_webhook_batches (digest, at) VALUES (%s, %s) "
                                "ON CONFLICT DO NOTHING", (digest, at)).rowcount != 1:
                    return None
                if message_events:
                    columns = message_event_columns()
                    with conn.cursor() as cur:
                        cur.executemany(f"INSERT INTO newsletter_message_events ({', '.join(columns)}) VALUES "
                                        f"({', '.join(['%s'] * len(columns))}) ON CONFLICT (source_id) DO NOTHING",
                                        [message_event_values(event) for event in message_events])
                if reports:
                    columns = batch_report_columns()
                    with conn.cursor() as cur:
                        cur.executemany(
                            f"INSERT INTO newsletter_batch_reports AS r ({', '.join(columns)}) VALUES "
                            f"({', '.join(['%s'] * len(columns))}) ON CONFLICT (run, batch, kind) DO UPDATE SET "
                            "events = r.events + excluded.events, first_at = LEAST(r.first_at, excluded.first_at), "
                            "last_at = GREATEST(r.last_at, excluded.last_at)",
                            [batch_report_values(report) for report in reports])
                return _insert(conn, events)

        return self._run(work)

    def batch_reports_of(self, run: str) -> list[BatchReport]:
        return self._run(lambda conn: [batch_report_of_row(r) for r in conn.execute(
            f"SELECT {', '.join(batch_report_columns())} FROM newsletter_batch_reports WHERE run = %s "
            "ORDER BY batch, kind", (run,)).fetchall()])

    def record_click(self, click: ClickRecord) -> int:
        columns = click_columns()
        sql = (f"INSERT INTO newsletter_clicks ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))}) "
               "RETURNING id")

        def work(conn: psycopg.Connection) -> int:
            row = conn.execute(sql, click_values(click)).fetchone()
            return int(row[0]) if row else 0

        return self._run(work)

    def mark_clicks(self, ids: Sequence[int], reason: str) -> None:
        if ids:
            self._run(lambda conn: conn.execute(
                "UPDATE newsletter_clicks SET human = 0, reason = %s WHERE id = ANY(%s)", (reason, list(ids))))

    def clicks_of(self, issue: str) -> list[ClickRecord]:
        return self._run(lambda conn: [click_of_row(r) for r in conn.execute(
            f"SELECT id, {', '.join(click_columns())} FROM newsletter_clicks WHERE issue = %s ORDER BY id",
            (issue,)).fetchall()])

    def message_events_of(self, issue: str) -> list[MessageEvent]:
        return self._run(lambda conn: [message_event_of_row(r) for r in conn.execute(
            f"SELECT {', '.join(message_event_columns())} FROM newsletter_message_events WHERE issue = %s "
            "ORDER BY id", (issue,)).fetchall()])

    def record_confirmation(self, event: Event, mailbox: str) -> None:
        def work(conn: psycopg.Connection) -> None:
            with conn.transaction():
                _insert(conn, [event])
                conn.execute("INSERT INTO newsletter_confirmation_mails (mailbox, at) VALUES (%s, %s)",
                             (mailbox, event.at))

        self._run(work)

    def confirmations_since(self, mailbox: str, since: str) -> int:
        def work(conn: psycopg.Connection) -> int:
            row = conn.execute("SELECT count(*) FROM newsletter_confirmation_mails WHERE mailbox = %s AND at >= %s",
                               (mailbox, since)).fetchone()
            return int(row[0]) if row else 0

        return self._run(work)

    def unsynced(self, list_name: str) -> list[Event]:
        def work(conn: psycopg.Connection) -> list[Event]:
            with conn.transaction():
                conn.execute("LOCK TABLE newsletter_events IN SHARE MODE")
                cursor = conn.execute("SELECT last_id FROM newsletter_sync_cursors WHERE list_name = %s",
                                      (list_name,)).fetchone()
                rows = conn.execute(f"SELECT id, {', '.join(event_columns())} FROM newsletter_events "
                                    "WHERE id > %s AND list_name IN (%s, '*') ORDER BY id",
                                    (cursor[0] if cursor else 0, list_name)).fetchall()
            return [event_of_row(r) for r in rows]

        return self._run(work)

    def events_since(self, list_name: str, since: str) -> list[Event]:
        return self._run(lambda conn: [event_of_row(r) for r in conn.execute(
            f"SELECT id, {', '.join(event_columns())} FROM newsletter_events "
            "WHERE at >= %s AND list_name IN (%s, '*') ORDER BY id", (since, list_name)).fetchall()])

    def mark_synced(self, list_name: str, last_id: int) -> None:
        self._run(lambda conn: conn.execute(
            "INSERT INTO newsletter_sync_cursors (list_name, last_id) VALUES (%s, %s) ON CONFLICT (list_name) "
            "DO UPDATE SET last_id = GREATEST(newsletter_sync_cursors.last_id, excluded.last_id)",
            (list_name, last_id)))

    def ping(self) -> None:
        self._run(lambda conn: conn.execute("SELECT 1").fetchone())

    def heartbeat(self, at: str) -> None:
        self._run(lambda conn: conn.execute(
            "INSERT INTO newsletter_heartbeat (id, at) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET at = excluded.at",
            (at,)))

    def close(self) -> None:
        self._pool.close()


def _insert(conn: psycopg.Connection, events: Sequence[Event]) -> int:
    """Insert ``events`` inside the caller's transaction; how many were new (a known source_id is skipped)."""
    columns = event_columns()
    sql = (f"INSERT INTO newsletter_events ({', '.join(columns)}) "
           f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT (source_id) DO NOTHING")
    added = 0
    with conn.cursor() as cur:
        for event in events:
            cur.execute(sql, event_values(event))
            added += cur.rowcount
    return added
