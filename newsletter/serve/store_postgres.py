"""The event store in PostgreSQL (psycopg 3), shared by several ``serve`` instances behind a balancer.

The password is never in ``database_url``: it comes from the environment
variable ``serve.database_password_env`` names. Ids come from a sequence, so
two instances may commit ids out of order; reading a list's unsynced events
therefore takes a SHARE lock on the table, which waits for appends in flight
and holds new ones back for the moment of the read, so a cursor never steps
over an event that commits later.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout

from ..errors import NewsletterError
from .store import SCHEMA_VERSION, Event, event_columns, event_of_row, event_values

_SCHEMA = """
CREATE TABLE IF NOT EXISTS newsletter_events (
    id BIGSERIAL PRIMARY KEY,
    list_name TEXT NOT NULL, kind TEXT NOT NULL, email TEXT NOT NULL, key TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '', at TEXT NOT NULL, asked_at TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT '', source_id TEXT UNIQUE
);
CREATE INDEX IF NOT EXISTS newsletter_events_by_address ON newsletter_events (list_name, key, kind, at);
CREATE TABLE IF NOT EXISTS newsletter_sync_cursors (list_name TEXT PRIMARY KEY, last_id BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS newsletter_webhook_signatures (signature TEXT PRIMARY KEY, at TEXT NOT NULL)
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

    def __init__(self, url: str, *, password: str | None = None, max_connections: int = 8, timeout: float = 10.0):
        self.where = describe(url)
        if urlsplit(url).password:
            raise NewsletterError("serve.database_url holds a password", where=self.where,
                                  hint="remove it from the URL and put it in the environment variable "
                                       "named by serve.database_password_env")
        conninfo = make_conninfo(url, password=password) if password else url
        try:  # one direct connection first: a server that is down fails now, not after the pool's retries
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=max(1, int(timeout))) as conn:
                self._migrate(conn)
        except psycopg.Error as err:
            raise self._unreachable(err) from None
        self._pool = ConnectionPool(conninfo, min_size=1, max_size=max_connections, timeout=timeout,
                                    kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout))},
                                    open=False)
        try:
            self._pool.open(wait=True, timeout=timeout)
        except (PoolTimeout, psycopg.Error) as err:
            self._pool.close()
            raise self._unreachable(err) from None

    def _unreachable(self, err: Exception) -> NewsletterError:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return NewsletterError(f"cannot reach the event store: {detail}", where=self.where,
                               hint="check that PostgreSQL is running, the URL in serve.database_url and the "
                                    "password variable named by serve.database_password_env")

    def _run(self, work):
        try:
            with self._pool.connection() as conn:
                return work(conn)
        except (PoolTimeout, psycopg.OperationalError) as err:
            raise self._unreachable(err) from None
        except psycopg.Error as err:
            raise NewsletterError(f"the event store failed: {err}", where=self.where) from None

    def _migrate(self, conn: psycopg.Connection) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(80211401)")  # one instance creates the schema
            conn.execute("CREATE TABLE IF NOT EXISTS newsletter_schema_version (version INTEGER NOT NULL)")
            version = conn.execute("SELECT max(version) FROM newsletter_schema_version").fetchone()[0] or 0
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
        columns = event_columns()
        sql = (f"INSERT INTO newsletter_events ({', '.join(columns)}) "
               f"VALUES ({', '.join(['%s'] * len(columns))}) ON CONFLICT (source_id) DO NOTHING")

        def work(conn: psycopg.Connection) -> int:
            added = 0
            with conn.transaction(), conn.cursor() as cur:
                for event in events:
                    cur.execute(sql, event_values(event))
                    added += cur.rowcount
            return added

        return self._run(work)

    def count_since(self, list_name: str, key: str, kind: str, since: str) -> int:
        return self._run(lambda conn: conn.execute(
            "SELECT count(*) FROM newsletter_events WHERE list_name = %s AND key = %s AND kind = %s AND at >= %s",
            (list_name, key, kind, since)).fetchone()[0])

    def remember_signature(self, signature: str, at: str) -> bool:
        return self._run(lambda conn: conn.execute(
            "INSERT INTO newsletter_webhook_signatures (signature, at) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (signature, at)).rowcount == 1)

    def unsynced(self, list_name: str) -> list[Event]:
        def work(conn: psycopg.Connection) -> list[Event]:
            with conn.transaction():
                conn.execute("LOCK TABLE newsletter_events IN SHARE MODE")
                row = conn.execute("SELECT last_id FROM newsletter_sync_cursors WHERE list_name = %s",
                                   (list_name,)).fetchone()
                rows = conn.execute(f"SELECT id, {', '.join(event_columns())} FROM newsletter_events "
                                    "WHERE id > %s AND list_name IN (%s, '*') ORDER BY id",
                                    (row[0] if row else 0, list_name)).fetchall()
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

    def close(self) -> None:
        self._pool.close()
