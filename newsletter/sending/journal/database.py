"""Where the send journal lives, and one way to talk to it: a SQLite file, or a PostgreSQL database
that several senders, machines and CI jobs share.

The journal's SQL is written once, for both: statements use ``?`` placeholders
(turned into psycopg's ``%s`` for PostgreSQL, once per statement text) and the
few things the two dialects spell differently are fragments of this module
(``id_set``: "these ids", given as one parameter). ``JournalDB.execute`` returns
a cursor with ``fetchone``, ``fetchall`` and ``rowcount`` on both.

SQLite keeps its connection as it is: the send loop's statements run on the
``sqlite3`` connection's own ``execute`` (a million-recipient send makes a few
thousand of them a second). PostgreSQL keeps its tables in a schema of their
own (``newsletter_journal``), so the journal can share a database with
``newsletter serve``'s event store.

The password of a PostgreSQL journal comes only from the environment variable
``[send] journal_password_env`` names; a URL holding one is refused, and no
message ever shows it.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import NewsletterError, display_path
from ...redaction import hold, redact
from ...secret_names import variable_name
from . import schema
from .basics import Cursor, JournalError
from .location import Dialect, Location

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass

PG_SCHEMA = "newsletter_journal"
DISK_HINT = ("free some disk space or make the folder writable (or set [send] journal in newsletter.toml), then "
             "resume the send; recipients whose request was under way are then reported as unknown")


# -- the connection ----------------------------------------------------------------------------------


class JournalDB:
    """One connection to a journal database, SQLite or PostgreSQL, with the schema in place."""

    def __init__(self, location: Location, connection: Any, *, read_only: bool = False):
        self.location = location
        self.dialect: Dialect = location.dialect
        self.connection = connection
        self.read_only = read_only
        password = os.environ.get(location.password_env, "") if location.password_env else ""
        if password:
            hold(password)  # never in a message, even when the server quotes it (redaction.py)
        self._texts: dict[str, str] = {}
        self._levels: list[Any] = []  # the open transactions, outermost first (SQLite: each one's durability)
        # ``execute(sql, params)``: SQLite's own (the hot path: no translation, no wrapper), else translated.
        self.execute: Callable[..., Cursor]
        if self.dialect == "sqlite":
            self.execute = connection.execute
            self.id_set = self.text_set = "(SELECT value FROM json_each(?))"
        else:
            import psycopg

            self._driver_error: type[Exception] = psycopg.Error  # what the server or the connection raised
            self.execute = self._translated
            self.id_set = "(SELECT unnest(?::bigint[]))"
            self.text_set = "(SELECT unnest(?::text[]))"

    # -- statements ------------------------------------------------------------------------------

    def _translated(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        text = self._texts.get(sql)
        if text is None:
            text = self._texts[sql] = sql.replace("%", "%%").replace("?", "%s")
        try:
            return self.connection.execute(text, params)  # type: ignore[no-any-return]
        except self._driver_error as err:
            raise self.error(err) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """One statement for many rows of parameters (``journal copy``)."""
        if self.dialect == "sqlite":
            self.connection.executemany(sql, rows)
            return
        try:
            with self.connection.cursor() as cursor:
                cursor.executemany(sql.replace("%", "%%").replace("?", "%s"), list(rows))
        except self._driver_error as err:
            raise self.error(err) from None

    def ids(self, values: Iterable[int]) -> object:
        """``values`` as the one parameter ``id_set`` takes ("these rows": ``id IN {db.id_set}``)."""
        return json.dumps(list(values)) if self.dialect == "sqlite" else list(values)

    def texts(self, values: Iterable[str]) -> object:
        """``values`` as the one parameter ``text_set`` takes."""
        return json.dumps(list(values)) if self.dialect == "sqlite" else [str(v) for v in values]

    def insert(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run an INSERT and return the new row's id."""
        row = self.execute(sql + " RETURNING id", params).fetchone()
        return int(row[0])

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[JournalDB]:
        """One transaction; a failing disk or server becomes a JournalError naming the journal and the fix.

        ``durable=False`` for records whose loss is safe (an outcome: lost, its row reads as in
        flight, hence unknown, never resent blindly): no flush to disk of its own; what was
        committed durably before it stays ahead of it.

        A transaction inside another (``begin`` without its ``commit`` yet: a run being prepared,
        ``Journal(provisional=True)``) is a savepoint of it: rolled back on its own when it fails,
        committed only with the outer one, and as durably as the outer one is.
        """
        self.begin(durable)
        try:
            yield self
        except BaseException as err:
            self.rollback(quietly=True)
            if isinstance(err, JournalError) or not self._is_fault(err):
                raise
            raise self.error(err) from None
        self.commit()

    @property
    def in_transaction(self) -> bool:
        """Whether a transaction (``begin``) is open on this connection."""
        return bool(self._levels)

    def begin(self, durable: bool = True) -> None:
        """Open a transaction, or a savepoint inside the one open (see ``transaction``); ``commit`` or
        ``rollback`` ends it, the innermost first."""
        outer = not self._levels
        try:
            if self.dialect == "postgresql":
                level = self.connection.transaction()  # psycopg makes an inner one a savepoint itself
                level.__enter__()
                self._levels.append(level)
                if outer and not durable:
                    try:
                        self.connection.execute("SET LOCAL synchronous_commit = off")
                    except BaseException:
                        self.rollback(quietly=True)
                        raise
            elif not outer:
                self.connection.execute(f"SAVEPOINT level{len(self._levels)}")
                self._levels.append(durable)
            else:
                if not durable:
                    self.connection.execute("PRAGMA synchronous=NORMAL")
                try:
                    self.connection.execute("BEGIN IMMEDIATE")
                except BaseException:
                    self._restore_synchronous(durable)
                    raise
                self._levels.append(durable)
        except Exception as err:
            if isinstance(err, JournalError) or not self._is_fault(err):
                raise
            raise self.error(err) from None

    def commit(self) -> None:
        """End the innermost open transaction, keeping what it wrote (the outermost: commit it)."""
        level = self._levels.pop()
        try:
            if self.dialect == "postgresql":
                level.__exit__(None, None, None)
                return
            depth = len(self._levels)
            if depth:
                self.connection.execute(f"RELEASE level{depth}")
                return
            try:
                self.connection.execute("COMMIT")
            except BaseException:
                if self.connection.in_transaction:  # not committed (the disk, a lock): nothing of it stays
                    self.connection.execute("ROLLBACK")
                raise
            finally:
                self._restore_synchronous(level)
        except Exception as err:
            if not self._is_fault(err):
                raise
            raise self.error(err) from None

    def rollback(self, *, quietly: bool = False) -> None:
        """End the innermost open transaction, undoing what it wrote. ``quietly``: a failure to roll back
        is not raised (an error that came first is the one to tell)."""
        level = self._levels.pop()
        try:
            if self.dialect == "postgresql":
                import psycopg

                level.__exit__(psycopg.Rollback, psycopg.Rollback(level), None)
                return
            depth = len(self._levels)
            try:
                if self.connection.in_transaction:  # SQLite may have rolled it back itself (a full disk)
                    if depth:
                        self.connection.execute(f"ROLLBACK TO level{depth}")
                        self.connection.execute(f"RELEASE level{depth}")
                    else:
                        self.connection.execute("ROLLBACK")
            finally:
                if not depth:
                    self._restore_synchronous(level)
        except Exception as err:
            if quietly:
                return
            if not self._is_fault(err):
                raise
            raise self.error(err) from None

    def _restore_synchronous(self, durable: bool) -> None:
        if not durable:
            try:
                self.connection.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error:
                pass

    def _is_fault(self, err: BaseException) -> bool:
        """Whether ``err`` is the journal's own failure (its disk, its server), to be told as a JournalError."""
        if self.dialect == "sqlite":
            return isinstance(err, (sqlite3.Error, OSError))
        return _is_journal_fault(err)

    def error(self, err: BaseException) -> JournalError:
        """What went wrong with the journal, said for the writer, without a password."""
        where = self.location.describe()
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        text = redact(text)
        if self.dialect == "postgresql":
            return JournalError(f"cannot use the send journal: {text}", where=where,
                                hint="check that the PostgreSQL server is up and [send] journal_url is right (the "
                                     "password comes from "
                                     f"{variable_name('send.journal_password_env', self.location.password_env)}), "
                                     "then resume the send")
        return sqlite_error(where, err)

    def close(self) -> None:
        try:
            self.connection.close()
        except Exception:  # noqa: BLE001 - closing a connection that already failed: nothing left to do
            pass

    # -- what the journal knows of itself --------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def journal_id(self) -> str:
        """This journal's own id (made when it was created): the sent record names it."""
        return self.meta("journal_id") or ""

    # -- locks of the senders that share a PostgreSQL journal --------------------------------------

    def serialize(self, name: str, *, shared: bool = False) -> None:
        """Inside a transaction: wait for, then hold until it ends, the lock that orders the senders'
        decisions about ``name`` (the pacing caps, a stage's verdict); ``shared``: many may hold it at once,
        but none while one holds it alone. SQLite has one sender, and its write transaction already
        keeps every other writer out: nothing to do."""
        if self.dialect == "postgresql":
            function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
            self.execute(f"SELECT {function}(hashtextextended(?, 0))", (name,))

    def hold(self, name: str) -> None:
        """Hold ``name``'s lock for as long as this connection lives (PostgreSQL): a sender's sign of life,
        which the server lets go of as soon as the sender's session ends, a kill -9 included."""
        if self.dialect == "postgresql":
            self.execute("SELECT pg_advisory_lock(hashtextextended(?, 0))", (name,))

    def held_elsewhere(self, name: str) -> bool:
        """Whether another session holds ``name``'s lock (``hold``, ``exclusive``): its sender is alive.
        (Asked by trying the lock for a moment: inside a transaction it is kept until the end.)"""
        if self.dialect != "postgresql":
            return False
        return not self.execute("SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0))", (name,)).fetchone()[0]

    # -- the one send of an issue to a list at a time ----------------------------------------------

    @contextmanager
    def exclusive(self, issue: str, list_name: str, label: str = "") -> Iterator[None]:
        """Hold the lock for sending ``issue`` to ``list_name``; refuse if another sender holds it.

        SQLite: a lock file beside the journal. PostgreSQL: a session advisory lock, so the
        lock is the same for every machine that shares the journal. Both die with their process.
        """
        if self.dialect == "sqlite":
            from ..lock import exclusive

            assert self.location.path is not None
            with exclusive(self.location.path, issue, list_name, label):
                yield
            return
        key = send_lock_name(issue, list_name)
        row = self.execute("SELECT pg_try_advisory_lock(hashtextextended(?, 0))", (key,)).fetchone()
        if not row[0]:
            raise NewsletterError(f"another send of {label or issue} to list '{list_name}' is running (it holds the "
                                  f"lock in {self.location.describe()})",
                                  hint="wait for it to finish, or stop that process; a killed send leaves no lock "
                                       "behind. To share the send, run: newsletter send ISSUE --resume --worker")
        try:
            yield
        finally:
            try:
                self.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", (key,))
            except JournalError:
                pass  # the connection is gone: so is the lock


def send_lock_name(issue: str, list_name: str) -> str:
    """The name of the advisory lock one send (an issue to a list) is started under (PostgreSQL)."""
    return f"newsletter send {issue} {list_name}"


def sender_lock_name(uid: str) -> str:
    """The name of the lock a sender holds on its own run's uid while it runs (``JournalDB.hold``)."""
    return f"newsletter sender {uid}"


def _is_journal_fault(err: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dependency
        return False
    return isinstance(err, psycopg.Error)


def sqlite_error(where: str, err: BaseException) -> JournalError:
    """A SQLite failure as the writer should read it: damaged, disk full, or not writable."""
    if "not a database" in str(err) or "malformed" in str(err):
        return JournalError(f"the send journal is damaged ({err})", where=where,
                            hint="restore it from a backup; never delete it, it records who was already mailed")
    if "database is locked" in str(err):
        return JournalError("the send journal is busy: another newsletter process has held it for 30 s", where=where,
                            hint="a send being prepared holds the journal until its first request goes out, or until "
                                 "its question (Send ...?) is answered: answer or stop it, then run this again; "
                                 "nothing was sent by this command")
    if "disk is full" in str(err) or "disk I/O" in str(err):
        return JournalError(f"cannot write the send journal: {err}", where=where, hint=DISK_HINT)
    return JournalError(f"cannot use the send journal: {err}", where=where,
                        hint="check the file and its folder are writable; " + DISK_HINT.split("; ")[0])


# -- opening ------------------------------------------------------------------------------------------


def open_database(location: Location, *, read_only: bool = False) -> JournalDB:
    """Connect to the journal at ``location``, creating it and its schema on first use (unless ``read_only``)."""
    if location.dialect == "sqlite":
        return _open_sqlite(location, read_only=read_only)
    return _open_postgres(location, read_only=read_only)


def memory_database() -> JournalDB:
    """An empty journal in memory: a dry run's or a test send's, which must leave the real one untouched."""
    connection = sqlite3.connect(":memory:", isolation_level=None)
    db = JournalDB(Location("sqlite", path=Path(":memory:")), connection)
    schema.create(db)
    return db


def _open_sqlite(location: Location, *, read_only: bool) -> JournalDB:
    path = location.path
    assert path is not None
    where = display_path(path)
    if path.is_dir():
        raise JournalError("the send journal is a folder, not a file", where=where,
                           hint="move that folder away, or set [send] journal in newsletter.toml")
    if read_only:
        try:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
            connection.execute("SELECT COUNT(*) FROM sends").fetchone()
        except sqlite3.Error as err:
            raise sqlite_error(where, err) from None
        return JournalDB(location, connection, read_only=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise JournalError(f"cannot create the journal's folder: {err.strerror}", where=path.parent,
                           hint="make the folder writable, or set [send] journal in newsletter.toml") from None
    try:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before the request it announces goes out, even across a power loss.
        connection.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as err:
        raise sqlite_error(where, err) from None
    db = JournalDB(location, connection)
    schema.create(db)
    return db


def _open_postgres(location: Location, *, read_only: bool) -> JournalDB:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import make_conninfo

    password = os.environ.get(location.password_env) or None
    if password:
        hold(password)
    conninfo = make_conninfo(location.url, password=password) if password else location.url
    where = location.describe()
    try:
        connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
    except psycopg.Error as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise JournalError(f"cannot reach the send journal: {redact(text)}", where=where,
                           hint="start the PostgreSQL server or correct [send] journal_url; its password comes "
                                f"from {variable_name('send.journal_password_env', location.password_env)}") from None
    db = JournalDB(location, connection, read_only=read_only)
    try:
        name = _schema_named_by(location.url)
        if name is None:  # the journal's own schema, beside whatever else the database holds
            name = PG_SCHEMA
            connection.execute(f"SET search_path TO {PG_SCHEMA}")
        if not read_only:
            connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(name)))
    except psycopg.Error as err:
        db.close()
        raise db.error(err) from None
    if not read_only:
        schema.create(db)
    return db


def _schema_named_by(url: str) -> str | None:
    """The schema a URL's ``options=-c search_path=NAME`` puts first, if it names one: the journal then
    keeps its tables there instead of in ``newsletter_journal``."""
    from psycopg.conninfo import conninfo_to_dict

    options = str(conninfo_to_dict(url).get("options") or "")
    match = re.search(r"search_path\s*=\s*([A-Za-z_][A-Za-z0-9_]*)", options)
    return match.group(1) if match else None

